"""Round trips through engine="virtualizarr": kerchunk JSON, kerchunk Parquet, manifest stores."""

from __future__ import annotations

import filecmp
import json
from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.backend import VirtualiZarrBackendEntrypoint
from virtualizarr.errors import ChunkReadError, InvalidReferencesError, OutputExistsError


def make_sample(path: Path, fmt: str) -> Path:
    """Packed int16 with float32 scale/offset/_FillValue, noleap time, chars, partial records."""
    with netCDF4.Dataset(path, "w", format=fmt) as nc:
        nc.title = "sample"
        nc.version = np.int32(3)
        nc.createDimension("time", None)
        nc.createDimension("lat", 4)
        nc.createDimension("lon", 5)
        nc.createDimension("nchar", 6)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t.calendar = "noleap"
        t[:] = np.arange(3)
        lat = nc.createVariable("lat", "f4", ("lat",))
        lat[:] = np.linspace(-10, 10, 4)
        lat.units = "degrees_north"
        nc4 = fmt == "NETCDF4"
        kw = {"zlib": True, "shuffle": True, "chunksizes": (1, 4, 5)} if nc4 else {}
        p = nc.createVariable(
            "packed", "i2", ("time", "lat", "lon"), fill_value=np.int16(-999), **kw
        )
        p.scale_factor = np.float32(0.01)
        p.add_offset = np.float32(273.15)
        p.units = "K"
        p.valid_range = np.array([-500, 500], dtype="i2")
        p[0:2] = np.random.default_rng(0).uniform(260, 280, (2, 4, 5))
        z = nc.createVariable("zeros", "f4", ("lat", "lon"))
        z[:] = 0.0
        c = nc.createVariable("name", "S1", ("lat", "nchar"))
        c[:] = netCDF4.stringtochar(np.array(["ab", "cdef", "", "xyzuvw"], dtype="S6"))
        u = nc.createVariable(
            "partial", "f4", ("time", "lon"), **({"chunksizes": (1, 5)} if nc4 else {})
        )
        u[0] = np.arange(5)
    return path


@pytest.fixture(params=["NETCDF4", "NETCDF3_CLASSIC"])
def sample(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    return make_sample(tmp_path / f"sample_{request.param}.nc", request.param)


def write(vds: xr.Dataset, kind: str, dest: Path) -> None:
    if kind == "json":
        vds.virtualize.to_kerchunk(dest, format="json")
    elif kind == "parquet":
        vds.virtualize.to_kerchunk(dest, format="parquet", record_size=2)
    else:
        vds.virtualize.to_zarr(dest)


KINDS = ["json", "parquet", "zarr"]


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_identical(sample: Path, tmp_path: Path, kind: str) -> None:
    dest = tmp_path / f"out.{kind}"
    write(vz.open_virtual_dataset(sample), kind, dest)
    with xr.open_dataset(sample) as orig, xr.open_dataset(dest, engine="virtualizarr") as ds:
        assert ds.packed.dtype == np.float32
        xr.testing.assert_identical(ds.load(), orig.load())
        assert (ds.zeros.values == 0).all()


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_all_virtual_and_options(sample: Path, tmp_path: Path, kind: str) -> None:
    dest = tmp_path / f"out.{kind}"
    write(vz.open_virtual_dataset(sample, loadable_variables=[]), kind, dest)
    opts = {"decode_times": False, "drop_variables": ["zeros"]}
    with (
        xr.open_dataset(sample, **opts) as orig,
        xr.open_dataset(dest, engine="virtualizarr", chunks={}, **opts) as ds,
    ):
        assert ds.packed.chunks is not None
        xr.testing.assert_identical(ds.load(), orig.load())


@pytest.mark.parametrize("kind", KINDS)
def test_write_read_write_is_byte_identical(sample: Path, tmp_path: Path, kind: str) -> None:
    a, b = tmp_path / f"a.{kind}", tmp_path / f"b.{kind}"
    write(vz.open_virtual_dataset(sample), kind, a)
    write(vz.open_virtual_dataset(a), kind, b)
    if kind == "json":
        assert json.loads(a.read_bytes()) == json.loads(b.read_bytes())
        assert a.read_bytes() == b.read_bytes()
    else:
        cmp = filecmp.dircmp(a, b)
        files = [p.relative_to(a) for p in a.rglob("*") if p.is_file()]
        assert files and not cmp.diff_files and not cmp.left_only and not cmp.right_only
        for f in files:
            assert (a / f).read_bytes() == (b / f).read_bytes(), f


@pytest.mark.parametrize("kind", KINDS)
def test_manifests_round_trip(sample: Path, tmp_path: Path, kind: str) -> None:
    vds = vz.open_virtual_dataset(sample, loadable_variables=[])
    dest = tmp_path / f"out.{kind}"
    write(vds, kind, dest)
    back = vz.open_virtual_dataset(dest, loadable_variables=[])
    for name in ("packed", "partial", "zeros"):
        # kerchunk materializes missing chunks whose fill is not zero as inline chunks
        assert back[name].data.manifest.to_dict() == vds[name].data.manifest.to_dict()
        if kind == "zarr":
            assert back[name].data.manifest.equals(vds[name].data.manifest)
        assert back[name].attrs.keys() == vds[name].attrs.keys()
    assert back.packed.attrs["scale_factor"].dtype == np.float32


def test_guess_can_open(sample: Path, tmp_path: Path) -> None:
    vds = vz.open_virtual_dataset(sample)
    for kind in KINDS:
        write(vds, kind, tmp_path / f"o.{kind}")
        assert VirtualiZarrBackendEntrypoint().guess_can_open(str(tmp_path / f"o.{kind}"))
    assert not VirtualiZarrBackendEntrypoint().guess_can_open(str(sample))
    refs = vds.virtualize.to_kerchunk(format="dict")
    xr.testing.assert_identical(
        xr.open_dataset(refs, engine="virtualizarr").load(), xr.open_dataset(sample).load()
    )


def test_fsspec_ignores_extension_key(sample: Path, tmp_path: Path) -> None:
    from virtualizarr.testing import open_kerchunk_refs

    dest = tmp_path / "r.json"
    vz.open_virtual_dataset(sample).virtualize.to_kerchunk(dest, format="json")
    assert "virtualizarr" in json.loads(dest.read_bytes())
    with open_kerchunk_refs(dest) as ds, xr.open_dataset(sample) as orig:
        np.testing.assert_array_equal(ds.lat.values, orig.lat.values)


def test_modes(sample: Path, tmp_path: Path) -> None:
    vds = vz.open_virtual_dataset(sample)
    dest = tmp_path / "s.zarr"
    vds.virtualize.to_zarr(dest)
    with pytest.raises(OutputExistsError):
        vds.virtualize.to_zarr(dest)
    vds.virtualize.to_zarr(dest, mode="w")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([sample.name, "s.zarr"])


def test_missing_file_and_truncation(sample: Path, tmp_path: Path) -> None:
    copy = tmp_path / "copy.nc"
    copy.write_bytes(sample.read_bytes())
    vds = vz.open_virtual_dataset(copy)
    vds.virtualize.to_kerchunk(tmp_path / "r.json", format="json")
    data = vds.packed.data.manifest.to_dict()["1.0.0"]
    copy.write_bytes(sample.read_bytes()[: data["offset"] + 1])
    # verify_sources=False: the read-time errors (open-time detection: tests/test_identity.py)
    opts = {"engine": "virtualizarr", "verify_sources": False}
    with pytest.raises(ChunkReadError, match=r"copy\.nc") as e:
        xr.open_dataset(tmp_path / "r.json", **opts).load()
    assert "chunk" in str(e.value)
    copy.unlink()
    with pytest.raises(ChunkReadError, match="does not exist"):
        xr.open_dataset(tmp_path / "r.json", **opts).load()


def test_malformed_references(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InvalidReferencesError, match=r"bad\.json"):
        xr.open_dataset(bad, engine="virtualizarr")
    doc = {
        "version": 1,
        "refs": {
            ".zgroup": '{"zarr_format": 2}',
            "x/.zarray": json.dumps(
                {
                    "shape": [4],
                    "chunks": [2],
                    "dtype": "<i4",
                    "fill_value": None,
                    "order": "C",
                    "compressor": None,
                    "filters": None,
                    "zarr_format": 2,
                }
            ),
            "x/.zattrs": '{"_ARRAY_DIMENSIONS": ["x"]}',
            "x/7": ["file:///nowhere", 0, 8],
        },
    }
    with pytest.raises(InvalidReferencesError, match="x/7"):
        xr.open_dataset(doc, engine="virtualizarr")
    doc["refs"]["x/0"] = ["file:///nowhere", "zero", 8]  # type: ignore[index]
    del doc["refs"]["x/7"]  # type: ignore[attr-defined]
    with pytest.raises(InvalidReferencesError, match="x/0"):
        xr.open_dataset(doc, engine="virtualizarr")
    pq = tmp_path / "p.parq"
    pq.mkdir()
    (pq / ".zmetadata").write_text('{"metadata": 3}')
    with pytest.raises(InvalidReferencesError, match="zmetadata"):
        xr.open_dataset(pq, engine="virtualizarr")


@pytest.mark.parametrize("kind", KINDS)
def test_native_path_matches_zarr_path(sample: Path, tmp_path: Path, kind: str) -> None:
    from xarray.backends.store import StoreBackendEntrypoint

    from virtualizarr.api import open_virtual_group
    from virtualizarr.backend import _VirtualDataStore

    dest = tmp_path / f"out.{kind}"
    write(vz.open_virtual_dataset(sample, loadable_variables=[]), kind, dest)
    group = open_virtual_group(dest)
    native, via_zarr = _VirtualDataStore(group), _VirtualDataStore(group, native=False)
    with (
        StoreBackendEntrypoint().open_dataset(native) as a,
        StoreBackendEntrypoint().open_dataset(via_zarr) as b,
    ):
        xr.testing.assert_identical(a.load(), b.load())
        for name in a.variables:
            assert a[name].encoding == b[name].encoding, name


@pytest.mark.parametrize("bulk", [True, False])
def test_reference_readers_bulk_and_walk_agree(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, bulk: bool
) -> None:
    """Manifests built in bulk equal those built entry by entry (templates, nested keys)."""
    from virtualizarr.readers.kerchunk import arrays as kerchunk_arrays
    from virtualizarr.readers.zarr_manifest import reader as zarr_manifest

    if not bulk:
        monkeypatch.setattr(kerchunk_arrays, "_bulk_manifest", lambda *a: None)
        monkeypatch.setattr(zarr_manifest, "_bulk_refs", lambda *a: None)
    vds = vz.open_virtual_dataset(sample, loadable_variables=[])
    refs = vds.virtualize.to_kerchunk(format="dict")
    uri = sample.as_uri()
    templated = {
        "version": 1,
        "templates": {"src": uri},
        "virtualizarr": refs["virtualizarr"],
        "refs": {
            k: [v[0].replace(uri, "{{src}}"), *v[1:]] if isinstance(v, list) else v
            for k, v in refs["refs"].items()
        },
    }
    write(vds, "zarr", tmp_path / "s.zarr")
    with xr.open_dataset(sample) as orig:
        for source in (refs, templated, tmp_path / "s.zarr"):
            with xr.open_dataset(source, engine="virtualizarr") as ds:  # type: ignore[arg-type]
                xr.testing.assert_identical(ds.load(), orig.load())
