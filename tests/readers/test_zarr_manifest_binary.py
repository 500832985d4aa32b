"""Binary manifests of manifest stores: opened lazily (path tables now, columns on the first
chunk read), checked (sizes, CRC-32, reference counts, limits, source policy) and refused
when damaged or rewritten after opening -- never misread."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.errors import (
    InvalidReferencesError,
    StaleReferenceError,
    UnsupportedFeatureError,
    UntrustedReferenceError,
)
from virtualizarr.formats.manifest_store import crc32
from virtualizarr.io.objects import Location
from virtualizarr.readers.zarr_manifest import open_manifest_store
from virtualizarr.security import ReferenceLimits


def write_sample(path: Path, offset: float = 0.0) -> Path:
    """Four records of a zlib-compressed float32 variable, one never written (missing)."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.createDimension("time", 4)
        nc.createDimension("x", 3)
        nc.createVariable("time", "f8", ("time",))[:] = np.arange(4) + offset
        v = nc.createVariable("v", "f4", ("time", "x"), zlib=True, chunksizes=(1, 3))
        v.units = "K"
        v[0:3] = np.arange(9, dtype="f4").reshape(3, 3) + offset
    return path


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample(tmp_path / "sample.nc")


@pytest.fixture
def store(sample: Path, tmp_path: Path) -> Path:
    vz.open_virtual_dataset(sample).virtualize.to_zarr(tmp_path / "s.zarr")
    return tmp_path / "s.zarr"


@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Keys read from manifest stores (Location.get, get_many and get_bounded)."""
    keys: list[str] = []
    get, get_many, get_bounded = Location.get, Location.get_many, Location.get_bounded

    def spy_get(self: Location, key: str) -> bytes:
        keys.append(key)
        return get(self, key)

    def spy_get_many(self: Location, wanted: Iterable[str]) -> dict[str, bytes]:
        keys.extend(wanted := list(wanted))
        return get_many(self, wanted)

    def spy_get_bounded(self: Location, key: str, max_bytes: int) -> bytes:
        keys.append(key)
        return get_bounded(self, key, max_bytes)

    monkeypatch.setattr(Location, "get", spy_get)
    monkeypatch.setattr(Location, "get_many", spy_get_many)
    monkeypatch.setattr(Location, "get_bounded", spy_get_bounded)
    return keys


def original(path: Path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return ds.load()


def edit(path: Path, change: Callable[[Any], Any]) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def configure(store: Path, **changes: Any) -> None:
    """Change fields of v's binary-manifest configuration."""

    def change(doc: dict[str, Any]) -> dict[str, Any]:
        doc["storage_transformers"][0]["configuration"].update(changes)
        return doc

    edit(store / "v" / "zarr.json", change)


def rewrite_columns(store: Path, fn: Callable[[bytearray], None], fix_crc: bool = True) -> None:
    """Change v's columns file in place (and record its new CRC-32, unless told not to)."""
    path = store / "v" / "manifest.bin"
    data = bytearray(path.read_bytes())
    fn(data)
    path.write_bytes(bytes(data))
    if fix_crc:
        configure(store, crc32=crc32(bytes(data)))


# ------------------------------------------------------------------ laziness
def test_opening_reads_the_path_table_but_not_the_columns(
    sample: Path, store: Path, fetched: list[str]
) -> None:
    ds = xr.open_dataset(store, engine="virtualizarr")
    assert "v/manifest.paths.json" in fetched
    assert "v/manifest.bin" not in fetched  # opening is O(arrays), not O(references)
    np.testing.assert_array_equal(ds.v[1].values, [3.0, 4.0, 5.0])
    assert fetched.count("v/manifest.bin") == 1  # loaded on the first chunk read...
    xr.testing.assert_identical(ds.load(), original(sample))
    assert fetched.count("v/manifest.bin") == 1  # ...and only then
    ds.close()


def test_virtual_datasets_of_a_store_combine_loading_on_demand(
    sample: Path, store: Path, tmp_path: Path
) -> None:
    group = open_manifest_store(Location.of(store))
    manifest = group.variables["v"].data.manifest
    assert not manifest.loaded and len(manifest) == 3  # the recorded count, not loaded
    assert manifest.paths == (sample.as_uri(),) and manifest.sources[0] is not None
    vds = vz.open_virtual_dataset(store, loadable_variables=[])
    first = vds.drop_vars("time").isel(time=slice(0, 2))  # slicing stays lazy
    assert not first.v.data.manifest.loaded
    source = vz.open_virtual_dataset(sample, loadable_variables=["time"])
    assert first.v.data.manifest.equals(source.isel(time=slice(0, 2)).v.data.manifest)
    other = write_sample(tmp_path / "other.nc", offset=100.0)
    both = xr.concat(
        [vz.open_virtual_dataset(store), vz.open_virtual_dataset(other)],
        dim="time",
        data_vars="minimal",
        coords="minimal",
        compat="override",
    )
    both.virtualize.to_zarr(tmp_path / "both.zarr")
    with xr.open_dataset(tmp_path / "both.zarr", engine="virtualizarr") as back:
        expected = xr.concat([original(sample), original(other)], dim="time")
        xr.testing.assert_identical(back.load(), expected)


def test_a_lazy_manifest_pickles_with_its_columns(store: Path) -> None:
    manifest = open_manifest_store(Location.of(store)).variables["v"].data.manifest
    back = pickle.loads(pickle.dumps(manifest))
    assert back.loaded and back.equals(manifest)


# ------------------------------------------------------------------ checks before any chunk
def test_stale_sources_are_refused_at_open(sample: Path, store: Path, fetched: list[str]) -> None:
    write_sample(sample, offset=1.0)  # the source changed after it was virtualized
    with pytest.raises(StaleReferenceError, match="changed or disappeared"):
        xr.open_dataset(store, engine="virtualizarr")
    assert "v/manifest.bin" not in fetched


def test_the_source_policy_checks_the_path_table_at_open(
    store: Path, fetched: list[str], sample: Path
) -> None:
    with pytest.raises(UntrustedReferenceError, match="allowed_sources does not allow"):
        open_manifest_store(Location.of(store), allowed_sources=["s3"])
    assert "v/manifest.bin" not in fetched
    assert open_manifest_store(Location.of(store), allowed_sources=[str(sample.parent)])


@pytest.mark.parametrize(
    ("limits", "match"),
    [
        (ReferenceLimits(max_references=2), r"the number of chunks is 301; expected at most 2"),
        (ReferenceLimits(max_document_bytes=6000), r"v/manifest\.bin is 6800 bytes; expected"),
    ],
)
def test_limits_are_checked_from_the_records_at_open(
    sample: Path, tmp_path: Path, fetched: list[str], limits: ReferenceLimits, match: str
) -> None:
    """v: 400 chunks, 300 referenced (x 17 bytes), plus time's one chunk file."""
    vds = vz.open_virtual_dataset(sample)
    big = xr.concat([vds] * 100, "time", data_vars="minimal", coords="minimal", compat="override")
    big.virtualize.to_zarr(tmp_path / "big.zarr")
    with pytest.raises(UntrustedReferenceError, match=match):
        open_manifest_store(Location.of(tmp_path / "big.zarr"), limits=limits)
    assert "v/manifest.bin" not in fetched


# ------------------------------------------------------------------ damage
def _flip(i: int) -> Callable[[bytearray], None]:
    def fn(data: bytearray) -> None:
        data[i] ^= 0x01

    return fn


@pytest.mark.parametrize(
    ("damage", "error", "match"),
    [
        (
            lambda s: (s / "v" / "manifest.bin").unlink(),
            InvalidReferencesError,
            r"v/manifest\.bin is missing from the manifest store",
        ),
        (
            lambda s: rewrite_columns(s, lambda d: d.__delitem__(slice(-1, None))),
            InvalidReferencesError,
            r"v/manifest\.bin is 67 bytes; a chunk grid of \(4, 1\) with int8 path ids needs 68",
        ),
        (
            lambda s: configure(s, path_id_type="int64"),
            InvalidReferencesError,
            r"'chunk-manifest-binary' configuration needs 'path_id_type'",
        ),
        (
            lambda s: configure(s, references=-1),
            InvalidReferencesError,
            "configuration needs",
        ),
        (
            lambda s: configure(s, references=5),
            InvalidReferencesError,
            r"5 references recorded for a chunk grid of 4 cells",
        ),
        (
            lambda s: configure(s, columns="../../elsewhere.bin"),
            InvalidReferencesError,
            r"the manifest columns location must be a path inside the store",
        ),
        (
            lambda s: edit(s / "v" / "manifest.paths.json", lambda t: {"paths": t}),
            InvalidReferencesError,
            r"manifest\.paths\.json: a path table is a JSON list of path strings",
        ),
        (
            lambda s: edit(
                s / "v" / "zarr.json",
                lambda d: (
                    d
                    | {
                        "storage_transformers": [
                            *d["storage_transformers"],
                            {"name": "chunk-manifest-json", "configuration": {}},
                        ]
                    }
                ),
            ),
            UnsupportedFeatureError,
            r"a binary manifest \('chunk-manifest-binary'\) must be the array's only one",
        ),
    ],
)
def test_damage_found_at_open(
    store: Path, damage: Callable[[Path], None], error: type[Exception], match: str
) -> None:
    damage(store)
    with pytest.raises(error, match=match) as info:
        xr.open_dataset(store, engine="virtualizarr")
    assert str(store) in str(info.value)


@pytest.mark.parametrize(
    ("damage", "match"),
    [
        (  # an offset changed, CRC not updated: a store damaged (or swapped) after writing
            lambda s: rewrite_columns(s, _flip(0), fix_crc=False),
            r"manifest\.bin: expected 68 bytes with the CRC-32 \d+ recorded .* found 68 bytes "
            r"with CRC-32 \d+",
        ),
        (  # the recorded number of references disagrees with the columns
            lambda s: configure(s, references=2),
            r"manifest\.bin holds 3 references; zarr\.json records 2",
        ),
        (  # a path id beyond the path table (the CRC recomputed to match)
            lambda s: rewrite_columns(s, lambda d: d.__setitem__(64, 7)),
            r"path ids must lie in \[-1, 0\]",
        ),
        (  # a chunk file where the manifest has a reference
            lambda s: (
                (s / "v" / "c" / "0").mkdir(parents=True)
                or (s / "v" / "c" / "0" / "0").write_bytes(b"x")
                or edit(
                    s / "v" / "zarr.json",
                    lambda d: (
                        d | {"virtualizarr": d["virtualizarr"] | {"chunk_files": {"c/0/0": 1}}}
                    ),
                )
            ),
            r"both a manifest reference and a chunk file",
        ),
    ],
)
def test_damage_found_at_the_first_chunk_read(
    store: Path, damage: Callable[[Path], None], match: str
) -> None:
    damage(store)
    ds = xr.open_dataset(store, engine="virtualizarr")  # the columns are not read yet
    with pytest.raises(InvalidReferencesError, match=match):
        ds.v.values  # noqa: B018
    ds.close()


def test_a_store_rewritten_after_opening_is_refused_not_misread(
    sample: Path, store: Path, tmp_path: Path
) -> None:
    ds = xr.open_dataset(store, engine="virtualizarr")
    other = write_sample(tmp_path / "other.nc", offset=50.0)
    vds = vz.open_virtual_dataset(other)
    vds.virtualize.to_zarr(store, mode="w")  # same shapes, other references
    with pytest.raises(InvalidReferencesError, match="rewritten since it was opened"):
        ds.v.values  # noqa: B018
    ds.close()
    with xr.open_dataset(store, engine="virtualizarr") as again:
        xr.testing.assert_identical(again.load(), original(other))


def test_a_store_removed_after_opening_names_the_file(store: Path, tmp_path: Path) -> None:
    ds = xr.open_dataset(store, engine="virtualizarr")
    store.rename(tmp_path / "moved.zarr")
    with pytest.raises(InvalidReferencesError, match=r"v/manifest\.bin could not be read"):
        ds.v.values  # noqa: B018
    ds.close()


def test_a_scalar_and_an_empty_array(tmp_path: Path) -> None:
    src = tmp_path / "odd.nc"
    with netCDF4.Dataset(src, "w", format="NETCDF4") as nc:
        nc.createDimension("empty", 0)
        nc.createVariable("s", "f8", ())[...] = 2.5
        nc.createVariable("e", "i4", ("empty",))
        nc.createVariable("w", str, ())[0] = "inline"
    vz.open_virtual_dataset(src, loadable_variables=[]).virtualize.to_zarr(tmp_path / "s.zarr")
    assert (tmp_path / "s.zarr" / "e" / "manifest.bin").stat().st_size == 0
    with xr.open_dataset(tmp_path / "s.zarr", engine="virtualizarr") as back:
        xr.testing.assert_identical(back.load(), original(src))
