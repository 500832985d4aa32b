"""The manifest-store reader on its own: stores written by ``ds.virtualize.to_zarr`` (local
and on fsspec's memory filesystem), their files, size limits, malformed documents, groups
and detection."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import fsspec
import netCDF4
import numpy as np
import pytest
import xarray as xr
import zarr

import virtualizarr as vz
from virtualizarr.backend import _VirtualDataStore
from virtualizarr.errors import (
    InvalidArgumentError,
    InvalidReferencesError,
    SourceNotFoundError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
    UntrustedReferenceError,
)
from virtualizarr.io.objects import Location
from virtualizarr.manifests import MISSING, VirtualGroup
from virtualizarr.readers import Probe
from virtualizarr.readers.zarr_manifest import ZarrManifestReader, open_manifest_store
from virtualizarr.readers.zarr_manifest.files import ListedStoreFiles, store_files
from virtualizarr.security import ReferenceLimits

KEYS = {
    "zarr.json",
    "v/zarr.json",
    "v/manifest.paths.json",
    "v/manifest.bin",
    "time/zarr.json",
    "time/c/0",
}
"""A store of the sample: virtual 'v' (a binary manifest), loaded 'time' (one chunk file)."""


def write_sample(path: Path) -> Path:
    """netCDF4: packed int16 (float32 scale, _FillValue, shuffle+zlib) with an unwritten
    record (a missing chunk), a time coordinate, an int32 global attribute."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.setncatts({"title": "sample", "version": np.int32(3)})
        nc.createDimension("time", None)
        nc.createDimension("x", 4)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t[:] = [0.0, 1.0, 2.0]
        v = nc.createVariable(
            "v", "i2", ("time", "x"), fill_value=np.int16(-999), zlib=True, shuffle=True,
            chunksizes=(1, 4),
        )  # fmt: skip
        v.scale_factor = np.float32(0.5)
        v[0:2] = [[1, 2, 3, 4], [5, 6, 7, 8]]
    return path


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample(tmp_path / "sample.nc")


@pytest.fixture
def store(sample: Path, tmp_path: Path) -> Path:
    vz.open_virtual_dataset(sample).virtualize.to_zarr(tmp_path / "s.zarr")
    return tmp_path / "s.zarr"


@pytest.fixture
def json_store(sample: Path, tmp_path: Path) -> Path:
    """The same store with JSON manifests (``manifest_format="json"``)."""
    vz.open_virtual_dataset(sample).virtualize.to_zarr(tmp_path / "j.zarr", manifest_format="json")
    return tmp_path / "j.zarr"


@pytest.fixture
def memory_url() -> Iterator[str]:
    """A fresh prefix on fsspec's (process-wide) memory filesystem, removed afterwards."""
    prefix = f"vz-test-{uuid.uuid4().hex}"
    yield f"memory://{prefix}/s.zarr"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{prefix}"):
        fs.rm(f"/{prefix}", recursive=True)


def original(path: Path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return ds.load()


def as_dataset(vgroup: VirtualGroup) -> xr.Dataset:
    """The group's values, as engine="virtualizarr" would show them."""
    with xr.open_dataset(_VirtualDataStore(vgroup), engine="store") as ds:
        return ds.load()


def edit(path: Path, change: Callable[[dict[str, Any]], Any]) -> None:
    path.write_text(json.dumps(change(json.loads(path.read_text()))))


def manifest_at(rel: str) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """An array document's change: its manifest is at ``rel``."""
    transformer = {"name": "chunk-manifest-json", "configuration": {"manifest": rel}}
    return lambda doc: doc | {"storage_transformers": [transformer]}


# ------------------------------------------------------------------ reading stores
def test_store_reads_back_like_the_source(sample: Path, store: Path) -> None:
    group = open_manifest_store(Location.of(store))
    assert list(group.variables) == ["v", "time"]  # the "arrays" record's order
    v, time = group.variables["v"], group.variables["time"]
    assert v.dims == ("time", "x") and v.data.metadata.fill_value == -999
    assert type(v.attrs["_FillValue"]) is np.int16 and type(v.attrs["scale_factor"]) is np.float32
    assert type(group.attrs["version"]) is np.int32 and group.attrs["title"] == "sample"
    assert v.data.manifest.paths == (sample.as_uri(),)
    assert v.data.manifest.path_ids.tolist() == [[0], [0], [MISSING]]  # record 2 unwritten
    assert v.data.manifest.sources[0] is not None  # the identity recorded at virtualization
    # 'time' was loaded: its one chunk is a file in the store, read as an inline chunk
    assert time.data.manifest.paths == () and time.data.manifest.path_ids.tolist() == [-2]
    assert time.data.manifest.inline == ((store / "time" / "c" / "0").read_bytes(),)
    assert np.isnan(time.attrs["_FillValue"]) and type(time.attrs["_FillValue"]) is np.float64
    xr.testing.assert_identical(as_dataset(group), original(sample))


@pytest.mark.parametrize("manifest_format", ["binary", "json"])
def test_relative_paths_move_with_the_store(tmp_path: Path, manifest_format: str) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    vds = vz.open_virtual_dataset(write_sample(old / "sample.nc"))
    vds.virtualize.to_zarr(old / "s.zarr", relative_paths=True, manifest_format=manifest_format)
    if manifest_format == "json":
        manifest = json.loads((old / "s.zarr" / "v" / "manifest.json").read_text())
        assert {e["path"] for e in manifest.values()} == {"../../sample.nc"}
    else:
        table = json.loads((old / "s.zarr" / "v" / "manifest.paths.json").read_text())
        assert table == ["../../sample.nc"]
    expected = original(old / "sample.nc")
    shutil.move(old, new)
    group = open_manifest_store(Location.of(new / "s.zarr"))
    assert group.variables["v"].data.manifest.paths == ((new / "sample.nc").as_uri(),)
    assert group.variables["v"].data.manifest.sources[0] is not None  # record keys resolved too
    xr.testing.assert_identical(as_dataset(group), expected)


def test_dropped_variables_are_not_read(store: Path) -> None:
    (store / "time" / "zarr.json").write_text("{broken")
    with pytest.raises(InvalidReferencesError, match=r"time/zarr\.json is not valid JSON"):
        open_manifest_store(Location.of(store))
    group = open_manifest_store(Location.of(store), drop_variables=["time"])
    assert list(group.variables) == ["v"]


def test_groups_by_hand(sample: Path, tmp_path: Path) -> None:
    """The writer makes one group per store; a subgroup is a store inside another."""
    vds = vz.open_virtual_dataset(sample)
    vds.virtualize.to_zarr(tmp_path / "root.zarr")
    vds.drop_vars("v").assign_attrs(title="inner").virtualize.to_zarr(tmp_path / "sub.zarr")
    shutil.move(tmp_path / "sub.zarr", tmp_path / "root.zarr" / "inner")
    root = Location.of(tmp_path / "root.zarr")
    inner = open_manifest_store(root, group="inner")
    assert list(inner.variables) == ["time"] and inner.attrs["title"] == "inner"
    expected = original(sample).drop_vars("v").assign_attrs(title="inner")
    xr.testing.assert_identical(as_dataset(inner), expected)
    assert list(open_manifest_store(root).variables) == ["v", "time"]
    # without the "arrays" record the listing is used, and the subgroup is no array
    edit(tmp_path / "root.zarr" / "zarr.json", lambda d: d | {"virtualizarr": {}})
    assert sorted(open_manifest_store(root).variables) == ["time", "v"]
    with pytest.raises(InvalidReferencesError, match=r"nope/zarr\.json is missing"):
        open_manifest_store(root, group="nope")
    with pytest.raises(InvalidReferencesError, match="a path of group names"):
        open_manifest_store(root, group="inner/../..")


# ------------------------------------------------------------------ the store's files
@pytest.mark.parametrize("where", ["local", "memory"])
def test_listed_store_files(sample: Path, store: Path, memory_url: str, where: str) -> None:
    url = store.as_uri() if where == "local" else memory_url
    if where == "memory":
        vz.open_virtual_dataset(sample).virtualize.to_zarr(memory_url)
    files = store_files(Location(url), None, None)
    assert isinstance(files, ListedStoreFiles) and files.uri == url
    assert set(files.listing) == KEYS
    assert all(files.listing[k] == len(files.read(k)) for k in KEYS)
    assert files.read("time/c/0") == (store / "time" / "c" / "0").read_bytes()
    assert files.subdirectories() == ["time", "v"] and files.is_array("v")
    assert files.chunk_files("time", {}) == ["c/0"] and files.chunk_files("v", {}) == []
    assert files.resolve("../../data.nc", "v") == url.rsplit("/", 1)[0] + "/data.nc"
    assert files.resolve("s3://bucket/a.nc", "v") == "s3://bucket/a.nc"
    inner = files.sub("v")
    assert inner.uri == f"{url}/v" and inner.size("zarr.json") == files.size("v/zarr.json")
    with pytest.raises(FileNotFoundError):
        files.read("v/c/0/0")


def test_a_store_in_memory_reads_like_the_local_one(
    sample: Path, store: Path, memory_url: str
) -> None:
    vz.open_virtual_dataset(sample).virtualize.to_zarr(memory_url)
    with pytest.raises(UntrustedReferenceError, match="local file, refused by default"):
        open_manifest_store(Location(memory_url))  # remote references may not read local files
    group = open_manifest_store(Location(memory_url), allowed_sources=["file"])
    local = open_manifest_store(Location.of(store))
    for name in ("v", "time"):
        assert group.variables[name].data.manifest.equals(local.variables[name].data.manifest)
    xr.testing.assert_identical(as_dataset(group), original(sample))


def test_store_files_refuse_what_is_no_manifest_store(sample: Path, tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(InvalidReferencesError, match=r"holds no zarr\.json"):
        store_files(Location.of(tmp_path / "empty"), None, None)
    vz.open_virtual_dataset(sample).virtualize.to_kerchunk(tmp_path / "p.parq", format="parquet")
    with pytest.raises(InvalidReferencesError, match="is kerchunk Parquet references"):
        open_manifest_store(Location.of(tmp_path / "p.parq"))


# ------------------------------------------------------------------ limits
@pytest.fixture
def fetched(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Keys of the store's files as they are downloaded (Location.get and get_many)."""
    keys: list[str] = []
    get, get_many = Location.get, Location.get_many

    def spy_get(self: Location, key: str) -> bytes:
        keys.append(key)
        return get(self, key)

    def spy_get_many(self: Location, wanted: Iterable[str]) -> dict[str, bytes]:
        keys.extend(wanted := list(wanted))
        return get_many(self, wanted)

    monkeypatch.setattr(Location, "get", spy_get)
    monkeypatch.setattr(Location, "get_many", spy_get_many)
    return keys


@pytest.mark.parametrize(
    ("field", "match"),
    [
        ("max_document_bytes", r"v/zarr\.json is \d+ bytes; expected at most \d+ \(limits"),
        ("max_inline_chunk_bytes", r"time/c/0: a chunk file of 24 bytes"),
        ("max_inline_total_bytes", r"time/c/0: .*in all \(limits\.max_inline_total_bytes\)"),
    ],
)
def test_size_limits_refuse_before_download(
    store: Path, fetched: list[str], field: str, match: str
) -> None:
    sizes = {p.relative_to(store).as_posix(): p.stat().st_size for p in store.rglob("*.json")}
    assert max(sizes, key=sizes.__getitem__) == "v/zarr.json"
    needed = sizes["v/zarr.json"] if field == "max_document_bytes" else 24
    with pytest.raises(UntrustedReferenceError, match=match):
        open_manifest_store(Location.of(store), limits=ReferenceLimits(**{field: needed - 1}))
    assert fetched == ["zarr.json"]  # the root group, and nothing refused was downloaded
    group = open_manifest_store(Location.of(store), limits=ReferenceLimits(**{field: needed}))
    assert group.variables["time"].data.manifest.inline[0] == (store / "time/c/0").read_bytes()


# ------------------------------------------------------------------ malformed stores
def remove(key: str) -> Callable[[Path], None]:
    return lambda s: (s / key).unlink()


def change(key: str, fn: Callable[[Any], Any]) -> Callable[[Path], None]:
    return lambda s: edit(s / key, fn)


@pytest.mark.parametrize(
    ("damage", "error", "match"),
    [
        (remove("v/manifest.json"), InvalidReferencesError, r"v/manifest\.json is missing"),
        (
            remove("v/manifest.paths.json"),
            InvalidReferencesError,
            r"v/manifest\.paths\.json is missing",
        ),
        (
            change("v/zarr.json", lambda d: d | {"storage_transformers": {"name": "x"}}),
            InvalidReferencesError,
            r"v/zarr\.json: 'storage_transformers' must be a list",
        ),
        (
            change("v/zarr.json", lambda d: d | {"storage_transformers": [{"name": "other"}]}),
            UnsupportedFeatureError,
            r"v/zarr\.json uses the storage transformer 'other'",
        ),
        (
            change("v/zarr.json", manifest_at("../../outside.json")),
            InvalidReferencesError,
            r"v/zarr\.json: the manifest location must be a path inside the store",
        ),
        (
            change("v/zarr.json", manifest_at("/etc/manifest.json")),
            InvalidReferencesError,
            r"v/zarr\.json: the manifest location must be a path inside the store",
        ),
        (
            change("v/manifest.json", lambda d: d | {"c/7/0": d["c/0/0"]}),
            InvalidReferencesError,
            r"/v: chunk key 'c/7/0' is not a chunk of 'v' \(grid \(3, 1\)\)",
        ),
        (
            lambda s: (s / "v/c/5").mkdir(parents=True) or (s / "v/c/5/0").write_bytes(b"x"),
            InvalidReferencesError,
            r"/v: chunk key 'c/5/0' is not a chunk of 'v'",
        ),
        (
            change("v/manifest.json", lambda d: d | {"c/0/0": {"path": "f", "offset": -1}}),
            InvalidReferencesError,
            r"v/manifest\.json: entry 'c/0/0' must be",
        ),
        (
            change("zarr.json", lambda d: d | {"node_type": "array"}),
            InvalidReferencesError,
            r"zarr\.json does not describe a Zarr v3 group",
        ),
        (
            change("zarr.json", lambda d: d | {"virtualizarr": {"arrays": ["../v"]}}),
            InvalidReferencesError,
            r"zarr\.json: 'virtualizarr\.arrays' must list",
        ),
        (
            change("v/zarr.json", lambda d: d | {"shape": [5, 4]}),
            InvalidReferencesError,
            "dimension 'time' has length 5 in 'v' but 3 in 'time'",
        ),
    ],
)
def test_malformed_stores_name_the_file(
    store: Path,
    json_store: Path,
    damage: Callable[[Path], None],
    error: type[Exception],
    match: str,
) -> None:
    """Damage to JSON manifests (and a shape that only the JSON manifest does not contradict:
    a binary manifest's size follows from it) on the JSON store, the rest on the default."""
    on_json = any(m in match for m in ("manifest\\.json", "c/7/0", "dimension 'time'"))
    target = json_store if on_json else store
    damage(target)
    with pytest.raises(error, match=match) as info:
        open_manifest_store(Location.of(target))
    assert str(target) in str(info.value)


def test_manifests_elsewhere_in_the_store(json_store: Path) -> None:
    store = json_store
    before = open_manifest_store(Location.of(store)).variables["v"].data.manifest
    (store / "shared").mkdir()  # a directory without zarr.json is no array
    shutil.move(store / "v" / "manifest.json", store / "shared" / "v.json")
    edit(store / "v" / "zarr.json", manifest_at("../shared/v.json"))
    assert open_manifest_store(Location.of(store)).variables["v"].data.manifest.equals(before)


def test_a_manifest_with_another_name_beside_zarr_json(json_store: Path) -> None:
    store = json_store
    before = open_manifest_store(Location.of(store)).variables["v"].data.manifest
    shutil.move(store / "v" / "manifest.json", store / "v" / "refs.json")
    edit(store / "v" / "zarr.json", manifest_at("./refs.json"))
    assert open_manifest_store(Location.of(store)).variables["v"].data.manifest.equals(before)


# ------------------------------------------------------------------ the reader
def test_guess_can_open(store: Path, sample: Path, tmp_path: Path) -> None:
    reader = ZarrManifestReader()
    assert reader.guess_can_open(Probe(Location.of(store)))
    plain = zarr.open_group(tmp_path / "plain.zarr", mode="w", zarr_format=3)
    plain.create_array("a", shape=(4,), dtype="i4")[:] = 1
    plain.attrs["note"] = "no virtualizarr record"
    assert not reader.guess_can_open(Probe(Location.of(tmp_path / "plain.zarr")))
    assert not reader.guess_can_open(Probe(Location.of(sample)))  # a file
    assert not reader.guess_can_open(Probe({"version": 1, "refs": {}}))  # a document
    with pytest.raises(SourceNotFoundError, match="does not exist"):
        reader.guess_can_open(Probe(Location.of(tmp_path / "missing.zarr")))


def test_guess_can_open_a_store_with_large_attributes(sample: Path, tmp_path: Path) -> None:
    vds = vz.open_virtual_dataset(sample).assign_attrs(history="ncks ...\n" * 10_000)
    vds.virtualize.to_zarr(tmp_path / "s.zarr")
    assert ZarrManifestReader().guess_can_open(Probe(Location.of(tmp_path / "s.zarr")))


def test_reader_open(store: Path, sample: Path) -> None:
    reader = ZarrManifestReader()
    group = reader.open(Location.of(store), drop_variables=["v"])
    assert list(group.variables) == ["time"]
    with pytest.raises(InvalidArgumentError, match="reads files; found an in-memory document"):
        reader.open({"version": 1, "refs": {}})
    with pytest.raises(UnexpectedOptionError, match=r"\['inline_threshold'\]"):
        reader.open(Location.of(store), inline_threshold=1)
