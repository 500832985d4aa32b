"""Code written for VirtualiZarr 2.x (and 1.x) runs where only a name differs, and gets a
``MigrationError`` saying what to write instead where we differ on purpose.

The parser and registry classes below stand in for VirtualiZarr 2.x's and obspec-utils'
(neither is a dependency): what matters to our check is their class name and the
``group``/``drop_variables`` attributes VirtualiZarr's parsers carry.
"""

from __future__ import annotations

import concurrent.futures as cf
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.accessor import VirtualiZarrDatasetAccessor
from virtualizarr.errors import (
    InvalidArgumentError,
    InvalidReferencesError,
    MigrationError,
    OutputExistsError,
    VirtualiZarrError,
)
from virtualizarr.manifests import ChunkManifest, ManifestArray, make_array_metadata


class HDFParser:  # VirtualiZarr 2.x: virtualizarr.parsers.HDFParser
    def __init__(self, group: str | None = None, drop_variables: list[str] | None = None):
        self.group = group
        self.drop_variables = drop_variables


class NetCDF3Parser(HDFParser):
    pass


class ObjectStoreRegistry:  # obspec_utils.registry.ObjectStoreRegistry
    pass


def make_file(path: Path, start: int = 0) -> Path:
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("time", 3)
        nc.createDimension("x", 4)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t[:] = np.arange(start, start + 3)
        v = nc.createVariable("air", "f4", ("time", "x"), chunksizes=(1, 4), zlib=True)
        v[:] = np.arange(12, dtype="f4").reshape(3, 4) + start
        g = nc.createGroup("g")
        g.createVariable("z", "i2", ("x",))[:] = np.arange(4)
    return path


def test_vz_is_the_virtualize_accessor(tmp_path: Path) -> None:
    vds = vz.open_virtual_dataset(make_file(tmp_path / "a.nc"))
    assert isinstance(vds.vz, VirtualiZarrDatasetAccessor)
    assert vds.vz.to_kerchunk() == vds.virtualize.to_kerchunk()
    dt = vz.open_virtual_datatree(tmp_path / "a.nc")
    assert dt.vz.to_kerchunk() == dt.virtualize.to_kerchunk()


def test_nrefs_counts_present_chunks_of_virtual_variables(tmp_path: Path) -> None:
    vds = vz.open_virtual_dataset(make_file(tmp_path / "a.nc"))
    assert vds.vz.nrefs() == 3  # air's three chunks; time is loaded
    every = vz.open_virtual_dataset(tmp_path / "a.nc", loadable_variables=[])
    assert every.vz.nrefs() == 4  # plus time's one chunk
    assert vz.open_virtual_datatree(tmp_path / "a.nc").vz.nrefs() == 4  # plus /g/z


@pytest.mark.parametrize("alias", ["url", "filepath"])
def test_path_aliases(tmp_path: Path, alias: str) -> None:
    path = make_file(tmp_path / "a.nc")
    expected = vz.open_virtual_dataset(path).virtualize.to_kerchunk()
    assert vz.open_virtual_dataset(**{alias: path}).virtualize.to_kerchunk() == expected
    assert "g" in vz.open_virtual_datatree(**{alias: path}).children


def test_urls_alias_and_executor_class(tmp_path: Path) -> None:
    paths = [make_file(tmp_path / f"{i}.nc", start=3 * i) for i in range(2)]
    combined = vz.open_virtual_mfdataset(
        urls=paths, combine="nested", concat_dim="time", parallel=cf.ThreadPoolExecutor
    )
    assert combined.sizes["time"] == 6
    assert combined["air"].data.manifest.paths == tuple(p.as_uri() for p in paths)


def test_path_given_twice_is_refused(tmp_path: Path) -> None:
    path = make_file(tmp_path / "a.nc")
    with pytest.raises(MigrationError, match="path twice"):
        vz.open_virtual_dataset(path, url=path)


def test_parser_object_says_which_filetype_to_pass(tmp_path: Path) -> None:
    path = make_file(tmp_path / "a.nc")
    with pytest.raises(MigrationError) as info:
        vz.open_virtual_dataset(url=path, parser=HDFParser(group="g"))
    message = str(info.value)
    assert "filetype='hdf5', group='g'" in message
    assert "docs/migration.md" in message
    assert isinstance(info.value, TypeError) and isinstance(info.value, VirtualiZarrError)
    with pytest.raises(MigrationError, match="filetype='netcdf3'"):
        vz.open_virtual_mfdataset(urls=[path], parser=NetCDF3Parser())


def test_registry_says_storage_options(tmp_path: Path) -> None:
    path = make_file(tmp_path / "a.nc")
    with pytest.raises(MigrationError, match=r"storage_options=\{"):
        vz.open_virtual_dataset(path, registry=ObjectStoreRegistry())


def test_positional_registry_and_parser_as_in_virtualizarr_2(tmp_path: Path) -> None:
    path = make_file(tmp_path / "a.nc")
    with pytest.raises(MigrationError, match="filetype='hdf5'"):
        vz.open_virtual_dataset(str(path), ObjectStoreRegistry(), HDFParser())  # type: ignore[misc]
    with pytest.raises(MigrationError, match="only positional argument"):
        vz.open_virtual_dataset(str(path), "hdf5")  # type: ignore[misc]


@pytest.mark.parametrize(
    ("argument", "value", "says"),
    [
        ("indexes", {}, "default index"),
        ("cftime_variables", ["time"], "decode_times=False"),
        ("virtual_array_class", object, "ManifestArray"),
        ("backend", object, "filetype="),
    ],
)
def test_virtualizarr_1_arguments_are_explained(
    tmp_path: Path, argument: str, value: object, says: str
) -> None:
    path = make_file(tmp_path / "a.nc")
    with pytest.raises(MigrationError, match=says):
        vz.open_virtual_dataset(path, **{argument: value})


def test_categorical_threshold_is_accepted_for_parquet(tmp_path: Path) -> None:
    path = make_file(tmp_path / "a.nc")
    vds = vz.open_virtual_dataset(path)
    vds.vz.to_kerchunk(tmp_path / "r.parq", format="parquet", categorical_threshold=10)
    with xr.open_dataset(tmp_path / "r.parq", engine="virtualizarr") as got:
        xr.testing.assert_identical(got.load(), xr.open_dataset(path).load())
    with pytest.raises(InvalidArgumentError, match="positive integer"):
        vds.vz.to_kerchunk(tmp_path / "s.parq", categorical_threshold=0)


def test_zarr_format_3_points_at_manifest_stores(tmp_path: Path) -> None:
    vds = vz.open_virtual_dataset(make_file(tmp_path / "a.nc"))
    assert vds.vz.to_kerchunk(zarr_format=2) == vds.vz.to_kerchunk()
    with pytest.raises(InvalidArgumentError, match=r"to_zarr"):
        vds.vz.to_kerchunk(zarr_format=3)


def test_overwrite_refusal_mentions_the_migration_guide(tmp_path: Path) -> None:
    vds = vz.open_virtual_dataset(make_file(tmp_path / "a.nc"))
    vds.vz.to_kerchunk(tmp_path / "r.json")
    with pytest.raises(OutputExistsError, match=r"mode='w'.*docs/migration\.md"):
        vds.vz.to_kerchunk(tmp_path / "r.json")


def test_manifest_store_imports_from_manifests_as_in_virtualizarr_2(tmp_path: Path) -> None:
    from virtualizarr.manifests import ManifestStore  # VirtualiZarr 2.x's import

    path = make_file(tmp_path / "a.nc")
    store = ManifestStore(vz.api.open_virtual_group(path))
    with xr.open_zarr(store, consolidated=False, zarr_format=3) as got:
        xr.testing.assert_identical(got.load(), xr.open_dataset(path).load())


def test_chunk_manifest_from_entries_as_in_virtualizarr_2() -> None:
    entries = {
        "0.0": {"path": "file:///a.nc", "offset": 100, "length": 10},
        "1.1": {"path": "file:///b.nc", "offset": 200, "length": 20},
    }
    expected = ChunkManifest.from_dict(entries)
    assert ChunkManifest(entries=entries).equals(expected)
    assert ChunkManifest(entries).equals(expected)  # positionally, as 2.x allowed
    slashed = {k.replace(".", "/"): v for k, v in entries.items()}
    assert ChunkManifest(entries=slashed, separator="/").equals(expected)
    wider = ChunkManifest(entries=entries, shape=(2, 3))
    assert wider.shape_chunk_grid == (2, 3) and len(wider) == 2
    with pytest.raises(InvalidReferencesError, match="not both"):
        ChunkManifest(["file:///a.nc"], entries=entries)


def test_manifest_array_from_dicts_as_in_virtualizarr_2() -> None:
    meta = make_array_metadata(shape=(4,), dtype=np.dtype("<i4"), chunks=(2,), fill_value=0)
    entries = {
        "0": {"path": "file:///a.bin", "offset": 0, "length": 8},
        "1": {"path": "file:///a.bin", "offset": 8, "length": 8},
    }
    arr = ManifestArray(meta.to_dict(), chunkmanifest=entries)
    assert arr.metadata == meta
    assert arr.manifest.equals(ChunkManifest.from_dict(entries))
    assert arr.nbytes_virtual == arr.manifest.nbytes > 0
    with pytest.raises(TypeError, match="once"):
        ManifestArray(meta, arr.manifest, chunkmanifest=arr.manifest)
