"""The Zarr store reader (``filetype="zarr"``): stores written by zarr-python and xarray,
v2 and v3, every layout in :mod:`zarr_cases`, read back through kerchunk references and
manifest stores and compared with ``xr.open_zarr`` of the original; detection, groups,
sharding, and the errors for what cannot be virtualized."""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import warnings
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import pytest
import xarray as xr
import zarr

import virtualizarr as vz
from tests.readers.zarr_cases import CASES, open_original
from virtualizarr.errors import (
    FileFormatError,
    SourceNotFoundError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
    VirtualiZarrError,
)
from virtualizarr.io.objects import Location
from virtualizarr.manifests import ManifestArray
from virtualizarr.readers import READERS, Probe, find_reader
from virtualizarr.readers.zarr import open_zarr_store

TRANSPOSED = {"forder", "transposed"}
"""Arrays whose codecs include transpose, which kerchunk's Zarr v2 metadata cannot express."""


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, bool]]:
    d = tmp_path_factory.mktemp("zarr_cases")
    return {name: case(d) for name, case in CASES.items()}


def _via_kerchunk(vds: xr.Dataset) -> xr.Dataset:
    refs = vds.virtualize.to_kerchunk(format="dict")
    with xr.open_dataset(refs, engine="virtualizarr") as ds:
        return ds.load()


def _via_manifest_store(vds: xr.Dataset, dest: Path) -> xr.Dataset:
    shutil.rmtree(dest, ignore_errors=True)
    vds.virtualize.to_zarr(dest)
    with xr.open_dataset(dest, engine="virtualizarr") as ds:
        return ds.load()


# ---------------------------------------------------------------------- fidelity
@pytest.mark.parametrize("case", sorted(CASES))
def test_identical_to_open_zarr(
    case: str, built: dict[str, tuple[Path, bool]], tmp_path: Path
) -> None:
    store, consolidated = built[case]
    truth = open_original(store, consolidated)
    vds = vz.open_virtual_dataset(store, loadable_variables=[])
    assert all(isinstance(v.data, ManifestArray) for v in vds.variables.values())
    kerchunkable = [k for k in vds.variables if k not in TRANSPOSED]
    xr.testing.assert_identical(_via_kerchunk(vds[kerchunkable]), truth[kerchunkable])
    xr.testing.assert_identical(_via_manifest_store(vds, tmp_path / "m.zarr"), truth)
    # the default: dimension coordinates loaded (and decoded) by open_virtual_dataset
    loaded = vz.open_virtual_dataset(store)
    for name in truth.indexes:
        xr.testing.assert_identical(loaded[name].variable, truth[name].variable)
    xr.testing.assert_identical(_via_manifest_store(loaded, tmp_path / "l.zarr"), truth)


def test_groups(built: dict[str, tuple[Path, bool]], tmp_path: Path) -> None:
    store, consolidated = built["zarr_v2_groups"]
    inner = vz.open_virtual_dataset(store, group="inner", loadable_variables=[])
    truth = open_original(store, consolidated, group="inner")
    xr.testing.assert_identical(_via_kerchunk(inner), truth)
    root = vz.open_virtual_dataset(store, loadable_variables=[])
    assert list(root.variables) == ["w"] and root.attrs == {"level": "root"}
    with pytest.raises(FileFormatError, match="no Zarr group 'nope'"):
        vz.open_virtual_dataset(store, group="nope")


def test_v3_group_and_unconsolidated_listing(built: dict[str, tuple[Path, bool]]) -> None:
    store, _ = built["zarr_v3_codecs"]
    vds = vz.open_virtual_dataset(store, loadable_variables=[], drop_variables=["crc"])
    assert "crc" not in vds and "_nc_hidden" not in vds.attrs
    assert vds.attrs == {"source": "zarr-python"}


def test_each_chunk_is_a_whole_object(built: dict[str, tuple[Path, bool]]) -> None:
    store, _ = built["zarr_v2_codecs"]
    group = open_zarr_store(Location.of(store))
    m = group.variables["slash"].data.manifest
    assert m.to_dict()["1.1"]["path"] == Location.of(store / "slash" / "1" / "1").url
    assert m.to_dict()["1.1"]["offset"] == 0
    assert m.to_dict()["1.1"]["length"] == (store / "slash" / "1" / "1").stat().st_size
    holes = group.variables["nanfill"].data.manifest  # zeros are written: not the fill
    assert set(holes.to_dict()) == {"0.0", "1.1"}  # the others were never written
    assert set(group.variables["nofill"].data.manifest.to_dict()) == {"0.0"}


def test_sharded_inner_chunks_are_byte_ranges(built: dict[str, tuple[Path, bool]]) -> None:
    store, _ = built["zarr_v3_sharded"]
    group = open_zarr_store(Location.of(store))
    arr = group.variables["end"].data
    assert arr.chunk_sizes == (2, 3)
    refs = arr.manifest.to_dict()
    shard = Location.of(store / "end" / "c" / "0" / "0").url
    assert "0.0" not in refs  # all fill values: not written
    first = refs["0.1"]
    assert first["path"] == shard and first["length"] > 0
    raw = (store / "end" / "c" / "0" / "0").read_bytes()
    chunk = raw[first["offset"] : first["offset"] + first["length"]]
    expect = np.arange(63, dtype="i4").reshape(7, 9)[0:2, 3:6]
    decoded = numcodecs.Zstd().decode(chunk)
    np.testing.assert_array_equal(np.frombuffer(decoded, "<i4").reshape(2, 3), expect)
    partial = group.variables["partial"].data.manifest
    assert set(partial.paths) == {Location.of(store / "partial" / "c" / "0" / "0").url}


def test_loaded_variables_are_decoded_like_open_zarr(built: dict[str, tuple[Path, bool]]) -> None:
    for case in ("xarray_v2", "xarray_v3"):
        store, consolidated = built[case]
        truth = open_original(store, consolidated)
        vds = vz.open_virtual_dataset(store, loadable_variables=list(truth.variables))
        xr.testing.assert_identical(vds, truth)


# ---------------------------------------------------------------------- detection and names
def test_detection_and_filetypes(built: dict[str, tuple[Path, bool]], tmp_path: Path) -> None:
    for case in CASES:
        store, _ = built[case]
        assert find_reader(Probe(Location.of(store))).name == "zarr"
    # a manifest store is found by its own reader, also when filetype="zarr" is given
    vds = vz.open_virtual_dataset(built["xarray_v3"][0], loadable_variables=[])
    vds.virtualize.to_zarr(tmp_path / "manifest.zarr")
    probe = Probe(Location.of(tmp_path / "manifest.zarr"))
    assert find_reader(probe).name == "manifest_store"
    assert find_reader(probe, "zarr").name == "manifest_store"
    assert find_reader(probe, "zarr_manifest").name == "manifest_store"
    truth = open_original(*built["xarray_v3"])
    for filetype in ("zarr", "manifest_store", None):
        back = vz.open_virtual_dataset(tmp_path / "manifest.zarr", filetype=filetype)
        some = ["temp", "counts"]
        xr.testing.assert_identical(_via_kerchunk(back[some]), truth[some])
    with xr.open_dataset(tmp_path / "manifest.zarr", engine="virtualizarr", filetype="zarr") as ds:
        xr.testing.assert_identical(ds.load(), truth)
    # called directly, the plain reader names the right filetype
    with pytest.raises(UnsupportedFeatureError, match="filetype='manifest_store'"):
        READERS["zarr"].open(Location.of(tmp_path / "manifest.zarr"))
    # kerchunk Parquet references (a .zmetadata too) are not taken for a Zarr v2 store
    vds[["counts"]].virtualize.to_kerchunk(tmp_path / "refs.parq", format="parquet")
    assert find_reader(Probe(Location.of(tmp_path / "refs.parq"))).name == "kerchunk"


def test_not_a_store(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceNotFoundError, match="holds nothing"):
        open_zarr_store(Location.of(tmp_path / "empty"))
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "readme.txt").write_text("hi")
    with pytest.raises(FileFormatError, match=r"no Zarr store found \(expected zarr.json"):
        vz.open_virtual_dataset(tmp_path / "other", filetype="zarr")
    with pytest.raises(UnexpectedOptionError, match="no options"):
        vz.open_virtual_dataset(tmp_path / "other", filetype="zarr", reader_options={"x": 1})
    with pytest.raises(UnsupportedFeatureError, match="HTTP"):
        open_zarr_store(Location("https://example.invalid/a.zarr"))


# ---------------------------------------------------------------------- refusals
def _v2_store(tmp_path: Path, **kw: Any) -> Path:
    p = tmp_path / "s.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = zarr.open_group(p, mode="w", zarr_format=2)
        a = g.create_array("a", shape=(4,), chunks=(2,), **kw)
        a[:] = np.arange(4).astype(a.dtype) if a.dtype.kind != "O" else ["a", "b", "c", "d"]
        a.attrs["_ARRAY_DIMENSIONS"] = ["x"]
    return p


def test_refusals_name_the_feature(tmp_path: Path) -> None:
    p = _v2_store(tmp_path, dtype="i4")
    (p / "a" / ".zattrs").write_text("{}")
    with pytest.raises(FileFormatError, match="no _ARRAY_DIMENSIONS attribute"):
        vz.open_virtual_dataset(p)
    assert vz.open_virtual_dataset(p, drop_variables=["a"]).variables == {}
    p = _v2_store(tmp_path / "b", dtype="i4")
    zarray = json.loads((p / "a" / ".zarray").read_text())
    (p / "a" / ".zarray").write_text(json.dumps(zarray | {"filters": [{"id": "pickle"}]}))
    with pytest.raises(UnsupportedFeatureError, match="'pickle' has no Zarr v3 equivalent"):
        vz.open_virtual_dataset(p)
    (p / "a" / ".zarray").write_text(json.dumps(zarray | {"dtype": [["f0", "<i4"]]}))
    with pytest.raises(UnsupportedFeatureError, match="structured dtypes"):
        vz.open_virtual_dataset(p)
    (p / "a" / ".zarray").write_text(json.dumps(zarray | {"shape": "x"}))
    with pytest.raises(FileFormatError, match="'shape' must be a list"):
        vz.open_virtual_dataset(p)
    (p / "a" / ".zarray").write_text("{not json")
    with pytest.raises(FileFormatError, match="is not valid JSON"):
        vz.open_virtual_dataset(p)
    # v3: no dimension names; a compressed shard index
    q = tmp_path / "v3.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = zarr.open_group(q, mode="w", zarr_format=3)
        g.create_array("nodims", shape=(3,), dtype="f4")[:] = 1
    with pytest.raises(FileFormatError, match="no dimension_names"):
        vz.open_virtual_dataset(q)
    doc = json.loads((q / "nodims" / "zarr.json").read_text())
    doc["dimension_names"] = ["x"]
    doc["codecs"] = [{"name": "no-such-codec", "configuration": {}}]
    (q / "nodims" / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(FileFormatError, match="not valid Zarr v3 array metadata"):
        vz.open_virtual_dataset(q)
    doc["codecs"] = [{"name": "bytes"}, {"name": "numcodecs.delta", "configuration": {}}]
    (q / "nodims" / "zarr.json").write_text(json.dumps(doc))
    with pytest.raises(VirtualiZarrError):
        vz.open_virtual_dataset(q)


def test_corrupt_shard_index(built: dict[str, tuple[Path, bool]], tmp_path: Path) -> None:
    src, _ = built["zarr_v3_sharded"]
    store = tmp_path / "s.zarr"
    shutil.copytree(src, store)
    shard = store / "end" / "c" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    raw[-20] ^= 0xFF  # inside the index: the crc32c no longer matches
    shard.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match=r"(CRC-32C|points past)"):
        vz.open_virtual_dataset(store, loadable_variables=[])
    shard.write_bytes(bytes(raw[:10]))
    with pytest.raises(FileFormatError, match="shorter than its index"):
        vz.open_virtual_dataset(store, loadable_variables=[])
    start = store / "start" / "c" / "0" / "0"
    data = bytearray(start.read_bytes())
    data[0:8] = (2**40).to_bytes(8, "little")  # the first inner chunk's offset, far away
    start.write_bytes(bytes(data))
    with pytest.raises(FileFormatError, match="points past"):
        vz.open_virtual_dataset(store, loadable_variables=[], drop_variables=["end"])


def test_every_failure_is_ours(built: dict[str, tuple[Path, bool]], tmp_path: Path) -> None:
    """Truncating every metadata document of every case gives our errors or a dataset."""
    for case in CASES:
        src, _ = built[case]
        for doc in sorted(src.rglob("*")):
            if doc.name not in ("zarr.json", ".zarray", ".zmetadata", ".zattrs", ".zgroup"):
                continue
            store = tmp_path / f"{case}-{abs(hash(str(doc)))}"
            shutil.copytree(src, store)
            target = store / doc.relative_to(src)
            text = target.read_bytes()
            for cut in (0, len(text) // 2, len(text) - 1):
                target.write_bytes(text[:cut])
                with contextlib.suppress(VirtualiZarrError):
                    vz.open_virtual_dataset(store, filetype="zarr", loadable_variables=[])
            shutil.rmtree(store)


# ---------------------------------------------------------------------- stores zarr 2 wrote
FIXTURE = Path(__file__).parent.parent / "data" / "zarr" / "zarr-python-2-fixture"


@pytest.fixture(scope="module")
def zarr2_fixture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """zarr-python 2.x's compatibility fixture, with the _ARRAY_DIMENSIONS xarray needs."""
    store = tmp_path_factory.mktemp("zarr2") / "fixture"
    shutil.copytree(FIXTURE, store)
    for zarray in store.rglob(".zarray"):
        ndim = len(json.loads(zarray.read_text())["shape"])
        name = zarray.parent.relative_to(store).as_posix().replace("/", "_")
        zattrs = zarray.with_name(".zattrs")
        attrs = json.loads(zattrs.read_text()) if zattrs.exists() else {}
        attrs["_ARRAY_DIMENSIONS"] = [f"{name}_{i}" for i in range(ndim)]
        zattrs.write_text(json.dumps(attrs))
    return store


@pytest.mark.parametrize("group", [None, "0", "10", "20"])
def test_stores_written_by_zarr_2(zarr2_fixture: Path, group: str | None, tmp_path: Path) -> None:
    """Every compressor zarr 2 wrote, Fortran order, both key layouts: identical to
    xr.open_zarr (through a manifest store: kerchunk cannot express Fortran order)."""
    truth = open_original(zarr2_fixture, False, group=group)
    assert truth.data_vars
    vds = vz.open_virtual_dataset(zarr2_fixture, group=group, loadable_variables=[])
    xr.testing.assert_identical(_via_manifest_store(vds, tmp_path / "m.zarr"), truth)
    if group == "20":  # C order: kerchunk too
        xr.testing.assert_identical(_via_kerchunk(vds), truth)
    if group is None:  # a nested store without dimension_separator reads as flat, as zarr's
        assert np.isnan(truth["nested_legacy"].values).all()
        np.testing.assert_array_equal(truth["nested"].values, truth["flat"].values)


def test_shard_index_without_google_crc32c(
    built: dict[str, tuple[Path, bool]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without the optional checksum package the index is still bounds-checked."""
    monkeypatch.setitem(sys.modules, "google_crc32c", None)  # import fails
    src, consolidated = built["zarr_v3_sharded"]
    store = tmp_path / "s.zarr"
    shutil.copytree(src, store)
    vds = vz.open_virtual_dataset(store, loadable_variables=[])
    xr.testing.assert_identical(_via_kerchunk(vds), open_original(store, consolidated))
    shard = store / "end" / "c" / "0" / "0"
    raw = bytearray(shard.read_bytes())
    index_start = len(raw) - (16 * 4 + 4)  # 2x2 inner chunks per shard, then the crc
    raw[index_start + 16 : index_start + 24] = (2**40).to_bytes(8, "little")
    shard.write_bytes(bytes(raw))
    with pytest.raises(FileFormatError, match="points past"):
        vz.open_virtual_dataset(store, loadable_variables=[])


def test_a_variable_named_like_a_dimension_it_is_not(tmp_path: Path) -> None:
    """xarray cannot hold a scalar 'x' beside a dimension 'x': both refuse the store."""
    store = _v2_store(tmp_path, dtype="i4")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = zarr.open_group(store, mode="a", zarr_format=2)
        g.create_array("x", shape=(), dtype="f8").attrs["_ARRAY_DIMENSIONS"] = []
    with pytest.raises(ValueError, match="'x'"):
        xr.open_zarr(store, consolidated=False).load()
    with pytest.raises(FileFormatError, match="variable 'x' has the name of a dimension"):
        vz.open_virtual_dataset(store, loadable_variables=[])
