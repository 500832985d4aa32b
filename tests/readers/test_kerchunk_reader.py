"""The kerchunk reader on its own: parsing JSON documents, dicts and Parquet stores, turning
parsed references into virtual arrays, and the reader's detection, paths and options."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.backend import _VirtualDataStore
from virtualizarr.errors import (
    InvalidReferencesError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
    UntrustedReferenceError,
)
from virtualizarr.io.objects import Location
from virtualizarr.manifests import MISSING, VirtualGroup
from virtualizarr.readers import Probe
from virtualizarr.readers.kerchunk import KerchunkReader
from virtualizarr.readers.kerchunk.arrays import references_to_group
from virtualizarr.readers.kerchunk.parquet import parse_kerchunk_parquet
from virtualizarr.readers.kerchunk.parse import parse_kerchunk_dict, parse_kerchunk_json
from virtualizarr.security import ReferenceLimits

GROUP = '{"zarr_format": 2}'
DIMS_X = '{"_ARRAY_DIMENSIONS": ["x"]}'
B_DIMS_X = {"b/.zarray": '{"shape": [5], "chunks": [5], "dtype": "<i4"}', "b/.zattrs": DIMS_X}
A_DIMS_XY = {"a/.zattrs": '{"_ARRAY_DIMENSIONS": ["x", "y"]}'}


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
def refs(sample: Path) -> dict[str, Any]:
    vds = vz.open_virtual_dataset(sample, loadable_variables=[])
    return dict(vds.virtualize.to_kerchunk(format="dict"))


@pytest.fixture
def refs_file(refs: dict[str, Any], tmp_path: Path) -> Path:
    (path := tmp_path / "refs.json").write_text(json.dumps(refs))
    return path


def spy(calls: list[Any], fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn``, recording its first argument (a URL, or the Location of a method) in ``calls``."""

    def recorded(*args: Any) -> Any:
        calls.append(getattr(args[0], "url", args[0]))
        return fn(*args)

    return recorded


def as_dataset(vgroup: VirtualGroup) -> xr.Dataset:
    """The group's values, as engine="virtualizarr" would show them."""
    with xr.open_dataset(_VirtualDataStore(vgroup), engine="store") as ds:
        return ds.load()


def zarray(**fields: Any) -> str:
    """A .zarray document: 1-D int32, 3 chunks of 2, unless ``fields`` say otherwise."""
    doc = {"zarr_format": 2, "shape": [6], "chunks": [2], "dtype": "<i4", "fill_value": None}
    return json.dumps({**doc, "order": "C", "filters": None, **fields})


def original(path: Path) -> xr.Dataset:
    with xr.open_dataset(path) as ds:
        return ds.load()


def one_array(**extra: Any) -> dict[str, Any]:
    """A v0 document with one 1-D array 'a' of 3 chunks of 2 int32 and dimension 'x'."""
    return {".zgroup": GROUP, "a/.zarray": zarray(**extra), "a/.zattrs": DIMS_X}


# ------------------------------------------------------------------ parse_kerchunk_dict
def test_versions_0_and_1_split_metadata_from_chunks(refs: dict[str, Any]) -> None:
    parsed = parse_kerchunk_dict(refs, "src.json")
    assert parsed.source == "src.json"
    assert list(parsed.metadata) == [k for k in refs["refs"] if k.rpartition("/")[2][:2] == ".z"]
    assert parsed.metadata["v/.zarray"]["shape"] == [3, 4]  # JSON strings parsed
    assert {a: sorted(c) for a, c in parsed.chunks.items()} == {"v": ["0.0", "1.0"], "time": ["0"]}
    assert parsed.chunks["v"]["1.0"] == refs["refs"]["v/1.0"]
    assert parsed.extension == refs["virtualizarr"] and parsed.templates == {}
    v0 = parse_kerchunk_dict(refs["refs"])  # version 0: the refs alone
    assert v0.metadata == parsed.metadata and v0.chunks == parsed.chunks
    assert v0.extension == {}  # the attribute-type record lives beside "refs" only
    with pytest.raises(UnsupportedFeatureError, match="'gen'"):  # generated references
        parse_kerchunk_dict({"version": 1, "refs": {}, "gen": [{"key": "a/{{i}}"}]})


def test_nested_group_keys_and_encoded_metadata() -> None:
    attrs = base64.b64encode(b'{"_ARRAY_DIMENSIONS": ["y", "x"], "u": "m"}').decode()
    doc = {
        ".zgroup": GROUP,
        "b/.zarray": zarray(shape=[2]),
        "b/0": ["file:///b.bin", 0, 8],
        "g/.zgroup": GROUP.encode(),  # bytes, as a dict built in memory may hold
        "g/a/.zarray": zarray(shape=[4, 4], chunks=[2, 2], dimension_separator="/"),
        "g/a/.zattrs": "base64:" + attrs,
        "g/a/0/1": ["file:///a.bin", 0, 16],
        "g/a/1/0": ["file:///a.bin", 16, 16],
    }
    parsed = parse_kerchunk_dict(doc)
    assert parsed.chunks == {
        "b": {"0": ["file:///b.bin", 0, 8]},
        "g/a": {"0/1": ["file:///a.bin", 0, 16], "1/0": ["file:///a.bin", 16, 16]},
    }
    assert parsed.metadata["g/a/.zattrs"] == {"_ARRAY_DIMENSIONS": ["y", "x"], "u": "m"}
    assert parsed.metadata["g/.zgroup"] == {"zarr_format": 2}
    inner = references_to_group(parsed, group="g")
    assert list(inner.variables) == ["a"] and inner.variables["a"].dims == ("y", "x")
    assert inner.variables["a"].data.manifest.path_ids.tolist() == [[MISSING, 0], [0, MISSING]]
    root = references_to_group(parsed).variables
    assert list(root) == ["b"] and root["b"].dims == ("dim_0",)  # no _ARRAY_DIMENSIONS


@pytest.mark.parametrize("inline", [False, True])  # all references (bulk) or mixed (walk)
def test_templates_expand_in_urls(inline: bool) -> None:
    refs = {**one_array(), "a/0": ["{{d}}/f.bin", 0, 8], "a/2": ["{{ d }}/g.bin", 8, 8]}
    if inline:
        refs["a/1"] = "abcdefgh"
    doc = {"version": 1, "templates": {"d": "file:///data"}, "refs": refs}
    parsed = parse_kerchunk_dict(doc)
    assert parsed.templates == {"d": "file:///data"}
    assert parsed.chunks["a"]["0"] == ["{{d}}/f.bin", 0, 8]  # expanded later, per array
    manifest = references_to_group(parsed).variables["a"].data.manifest
    assert manifest.paths == ("file:///data/f.bin", "file:///data/g.bin")
    assert manifest.path_ids.tolist() == [0, -2 if inline else MISSING, 1]


@pytest.mark.parametrize(
    ("doc", "match"),
    [
        ([1], "a kerchunk document is a JSON object; found list"),
        ({"version": 2, "refs": {}}, "found version 2"),
        ({"version": 1, "refs": ["a"]}, "refs of type list"),
        ({"version": 1, "refs": {}, "templates": ["u"]}, "'templates' must be an object"),
        ({"a/.zarray": "{nope"}, "'a/.zarray' is not a valid JSON object"),
        ({"a/.zattrs": "[1, 2]"}, "'a/.zattrs' is not a valid JSON object.*not list"),
        ({"a/.zattrs": 5}, "'a/.zattrs' must be a JSON string"),
        ({"a/.zattrs": "base64:!!"}, "'a/.zattrs' is not a valid JSON object"),
        ({".zgroup": GROUP, "b/0": ["f", 0, 1]}, "chunk key 'b/0' belongs to no array"),
    ],
)
def test_malformed_documents_name_the_key(doc: Any, match: str) -> None:
    with pytest.raises(InvalidReferencesError, match=match) as info:
        parse_kerchunk_dict(doc, "doc.json")
    assert str(info.value).startswith("doc.json")
    assert isinstance(info.value, ValueError)


# ------------------------------------------------------------------ parse_kerchunk_json
def test_json_file_parses_like_its_dict(refs: dict[str, Any], refs_file: Path) -> None:
    path, size = refs_file, refs_file.stat().st_size
    parsed = parse_kerchunk_json(Location.of(path), ReferenceLimits(max_document_bytes=size))
    from_dict = parse_kerchunk_dict(refs)
    assert parsed.source == path.as_uri() and parsed.extension == from_dict.extension
    assert parsed.metadata == from_dict.metadata
    # the file's [url, offset, length] references are scanned into columns, not a dict
    assert set(parsed.columns) == {"v", "time"} and not any(parsed.chunks.values())
    a, b = references_to_group(parsed), references_to_group(from_dict)
    for name in ("v", "time"):
        assert a.variables[name].data.manifest.equals(b.variables[name].data.manifest)
    with pytest.raises(UntrustedReferenceError, match=f"{size} bytes.*max_document_bytes"):
        parse_kerchunk_json(Location.of(path), ReferenceLimits(max_document_bytes=size - 1))
    path.write_text('{"version": 1, "refs": {".zgroup": "{}"}, "virtualizarr": {"x": NaN}}')
    assert np.isnan(parse_kerchunk_json(Location.of(path)).extension["x"])  # not for ujson
    path.write_text('{"a": ')
    with pytest.raises(InvalidReferencesError, match=f"{path.as_uri()} is not valid JSON"):
        parse_kerchunk_json(Location.of(path))


def test_json_size_limit_refuses_a_local_file_before_reading_it(
    refs_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[str] = []
    monkeypatch.setattr(Location, "read", spy(reads, Location.read))
    with pytest.raises(UntrustedReferenceError):
        parse_kerchunk_json(Location.of(refs_file), ReferenceLimits(max_document_bytes=10))
    assert reads == []  # docs/security.md: "checked before a local file is read"


# ------------------------------------------------------------------ references_to_group
def test_netcdf_references_become_v3_arrays(sample: Path, refs: dict[str, Any]) -> None:
    group = references_to_group(parse_kerchunk_dict(refs))
    v = group.variables["v"]
    meta: dict[str, Any] = v.data.metadata.to_dict()
    assert v.dims == ("time", "x") and meta["dimension_names"] == ("time", "x")
    assert meta["data_type"] == "int16" and meta["fill_value"] == -999
    assert [c["name"] for c in meta["codecs"]] == ["bytes", "numcodecs.shuffle", "numcodecs.zlib"]
    assert list(v.attrs) == ["_FillValue", "scale_factor"]  # the source's order
    assert type(v.attrs["_FillValue"]) is np.int16 and type(v.attrs["scale_factor"]) is np.float32
    assert "_ARRAY_DIMENSIONS" not in v.attrs
    assert v.data.manifest.path_ids.tolist() == [[0], [0], [MISSING]]  # record 2 unwritten
    assert type(group.attrs["version"]) is np.int32
    xr.testing.assert_identical(as_dataset(group), original(sample))


def test_v2_fill_values_and_byte_order() -> None:
    def read(**extra: Any) -> Any:
        return references_to_group(parse_kerchunk_dict(one_array(**extra))).variables["a"]

    big = read(dtype=">f8", fill_value=1.5)
    assert type(big.attrs["_FillValue"]) is np.float64 and big.attrs["_FillValue"] == 1.5
    assert big.data.metadata.to_dict()["codecs"][0]["configuration"] == {"endian": "big"}
    nan = read(dtype="<f4", fill_value="NaN").attrs["_FillValue"]
    assert type(nan) is np.float32 and np.isnan(nan)
    null = read(compressor={"id": "zlib"})  # v2 null: no _FillValue, missing chunks read 0
    meta: dict[str, Any] = null.data.metadata.to_dict()
    assert "_FillValue" not in null.attrs and meta["fill_value"] == 0
    assert [c["name"] for c in meta["codecs"]] == ["bytes", "numcodecs.zlib"]


def test_inline_chunks_and_missing_chunks_read_back() -> None:
    doc = one_array()
    doc["a/0"] = "base64:" + base64.b64encode(np.array([1, 2], "<i4").tobytes()).decode()
    doc["a/1"] = "abcdefgh"  # a plain string is the chunk's bytes
    v = references_to_group(parse_kerchunk_dict(doc)).variables["a"]
    assert v.data.manifest.inline == (np.array([1, 2], "<i4").tobytes(), b"abcdefgh")
    assert v.data.manifest.path_ids.tolist() == [-2, -3, MISSING]
    values = as_dataset(references_to_group(parse_kerchunk_dict(doc))).a.values
    expected = [1, 2, *np.frombuffer(b"abcdefgh", "<i4"), 0, 0]
    np.testing.assert_array_equal(values, expected)


def test_whole_file_references_are_sized_through_size_of(tmp_path: Path) -> None:
    data = tmp_path / "chunk.bin"
    data.write_bytes(np.array([7, 8], "<i4").tobytes())
    doc = one_array()
    doc["a/0"] = doc["a/2"] = [data.as_uri()]
    parsed = parse_kerchunk_dict(doc)
    asked: list[str] = []
    parsed.size_of = spy(asked, lambda url: Location(url).size())
    v = references_to_group(parsed).variables["a"]
    assert asked == [data.as_uri()] * 2
    assert v.data.manifest.lengths.tolist() == [8, 0, 8]
    np.testing.assert_array_equal(as_dataset(references_to_group(parsed)).a, [7, 8, 0, 0, 7, 8])
    data.unlink()
    with pytest.raises(InvalidReferencesError, match="chunk 'a/0' references the whole of"):
        references_to_group(parse_kerchunk_dict(doc))


def test_drop_variables_and_groups(sample: Path, refs: dict[str, Any]) -> None:
    parsed = parse_kerchunk_dict(refs)
    assert list(references_to_group(parsed, drop_variables=["v"]).variables) == ["time"]
    # the same arrays one group down, with the attribute-type record keyed by path
    dtypes = refs["virtualizarr"]["attribute_dtypes"]
    nested = {
        "version": 1,
        "refs": {".zgroup": GROUP, **{f"g/{k}": v for k, v in refs["refs"].items()}},
        "virtualizarr": {"attribute_dtypes": {f"g/{k}".rstrip("/"): v for k, v in dtypes.items()}},
    }
    parsed = parse_kerchunk_dict(nested)
    assert references_to_group(parsed).variables == {}
    group = references_to_group(parsed, group="/g/")
    assert type(group.variables["v"].attrs["scale_factor"]) is np.float32
    xr.testing.assert_identical(as_dataset(group), original(sample))
    with pytest.raises(InvalidReferencesError, match="has no group 'nope'"):
        references_to_group(parsed, group="nope")


def test_attribute_types_come_back_from_the_record() -> None:
    doc = one_array()
    doc["a/.zattrs"] = json.dumps(
        {"_ARRAY_DIMENSIONS": ["x"], "s": 1.0, "b": "hi", "r": [1, 2], "c": [1.0, 2.0], "n": "NaN"}
    )
    record = {"s": "<f4", "b": "py:bytes", "r": ["<i2"], "c": "py:complex", "n": "py:float"}
    typed = {"version": 1, "refs": doc, "virtualizarr": {"attribute_dtypes": {"a": record}}}
    attrs = references_to_group(parse_kerchunk_dict(typed)).variables["a"].attrs
    assert type(attrs["s"]) is np.float32 and attrs["b"] == b"hi" and attrs["c"] == 1 + 2j
    assert attrs["r"].dtype == np.int16 and attrs["r"].tolist() == [1, 2]
    assert isinstance(attrs["n"], float) and np.isnan(attrs["n"])
    plain = references_to_group(parse_kerchunk_dict(doc)).variables["a"].attrs
    assert plain == {"s": 1.0, "b": "hi", "r": [1, 2], "c": [1.0, 2.0], "n": "NaN"}


@pytest.mark.parametrize(
    ("more", "extra", "error", "match"),
    [
        ({"a/5": ["f", 0, 8]}, {}, InvalidReferencesError, r"chunk key 'a/5' .*chunk grid \(3,\)"),
        ({"a/0": ["f", -1, 8]}, {}, InvalidReferencesError, "chunk 'a/0' is malformed.*negative"),
        ({"a/0": ["f", 0]}, {}, InvalidReferencesError, r"chunk 'a/0' is malformed.*\[url\]"),
        ({"a/0": {"p": 1}}, {}, InvalidReferencesError, "chunk 'a/0' is malformed"),
        ({}, {"dtype": "<q9"}, InvalidReferencesError, "a/.zarray: bad or missing dtype"),
        ({}, {"fill_value": "x"}, InvalidReferencesError, "a/.zarray: fill_value 'x'"),
        ({}, {"chunks": [0]}, InvalidReferencesError, "a/.zarray.*'chunks' .0. do not match"),
        ({}, {"dimension_separator": "-"}, InvalidReferencesError, "dimension_separator"),
        ({}, {"filters": {"id": "zlib"}}, InvalidReferencesError, "a/.zarray: 'filters' must"),
        ({}, {"compressor": {"level": 1}}, InvalidReferencesError, "string 'id'"),
        ({}, {"shape": [6, 2], "chunks": [2, 2], "order": "F"}, UnsupportedFeatureError, "Fortran"),
        (B_DIMS_X, {}, InvalidReferencesError, "dimension 'x' has length 6 in 'a' but 5 in 'b'"),
        (A_DIMS_XY, {}, InvalidReferencesError, "_ARRAY_DIMENSIONS .* one name per axis"),
    ],
)
def test_malformed_arrays_say_where(
    more: dict[str, Any], extra: dict[str, Any], error: type[Exception], match: str
) -> None:
    doc = {**one_array(**extra), **more}
    with pytest.raises(error, match=match):
        references_to_group(parse_kerchunk_dict(doc, "doc.json"))


# ------------------------------------------------------------------ Parquet stores
def test_parquet_store_written_by_the_library(sample: Path, tmp_path: Path) -> None:
    vds = vz.open_virtual_dataset(sample)  # time loaded: an inline chunk in the 'raw' column
    store = tmp_path / "refs.parq"
    vds.virtualize.to_kerchunk(store, format="parquet", record_size=2)
    assert sorted(p.name for p in (store / "v").iterdir()) == ["refs.0.parq", "refs.1.parq"]
    parsed = parse_kerchunk_parquet(Location.of(store), pytest.fail)
    assert parsed.source == store.as_uri() and parsed.chunks == {}
    assert parsed.extension["attribute_dtypes"]["v"]["scale_factor"] == "<f4"
    from_json = references_to_group(parse_kerchunk_dict(vds.virtualize.to_kerchunk()))
    for name in ("v", "time"):
        assert parsed.manifests[name].equals(from_json.variables[name].data.manifest), name
    assert parsed.manifests["time"].path_ids.tolist() == [-2]
    group = references_to_group(parsed)
    xr.testing.assert_identical(as_dataset(group), original(sample))


def parquet_store(path: Path, tables: list[Any], zmetadata: str | None = None) -> Path:
    """A hand-made store of array 'a' (3 chunks of 2 int32, 2 per record file)."""
    path.mkdir()
    metadata = {k: json.loads(v) for k, v in one_array().items()}
    default = json.dumps({"metadata": metadata, "record_size": 2})
    (path / ".zmetadata").write_text(default if zmetadata is None else zmetadata)
    (path / "a").mkdir()
    for i, table in enumerate(tables):
        if isinstance(table, bytes):
            (path / "a" / f"refs.{i}.parq").write_bytes(table)
        else:
            pq.write_table(pa.table(table), path / "a" / f"refs.{i}.parq")
    return path


def columns(paths: list[str | None], offsets: list[int], sizes: list[int], raws: list[Any]) -> Any:
    types = {"path": pa.string(), "offset": pa.int64(), "size": pa.int64(), "raw": pa.binary()}
    values = (paths, offsets, sizes, raws)
    return {k: pa.array(v, t) for (k, t), v in zip(types.items(), values, strict=True)}


GOOD = [
    columns(["file:///d.bin", None], [4, 0], [8, 0], [None, b"\1\0\0\0\2\0\0\0"]),
    columns(["file:///w.bin"], [0], [0], [None]),  # offset 0, size 0: the whole file
]


def test_hand_made_parquet_store(tmp_path: Path) -> None:
    asked: list[str] = []
    store = parquet_store(tmp_path / "p.parq", GOOD)
    parsed = parse_kerchunk_parquet(Location.of(store), spy(asked, lambda u: 24))
    m = parsed.manifests["a"]
    assert m.paths == ("file:///d.bin", "file:///w.bin") and asked == ["file:///w.bin"]
    assert m.path_ids.tolist() == [0, -2, 1] and m.inline == (b"\1\0\0\0\2\0\0\0",)
    assert m.offsets.tolist() == [4, 0, 0] and m.lengths.tolist() == [8, 0, 24]
    (store / ".zmetadata").unlink()
    with pytest.raises(InvalidReferencesError, match=r"p\.parq is not a kerchunk Parquet store"):
        parse_kerchunk_parquet(Location.of(store), pytest.fail)


BAD_ARRAY = json.dumps({"metadata": {"a/.zarray": {"shape": "x"}}, "record_size": 2})


@pytest.mark.parametrize(
    ("tables", "zmetadata", "match"),
    [
        ([], "{oops", r"p.parq/.zmetadata is malformed"),
        ([], '{"metadata": {}, "record_size": 0}', "'record_size' positive"),
        ([], '{"metadata": [], "record_size": 2}', "'metadata' must be an object"),
        ([], BAD_ARRAY, "a/.zarray: .zarray needs integer lists"),
        (GOOD[:1], None, r"a/refs.1.parq is missing: .* 2 record files for 'a'"),
        ([b"PAR1 no", GOOD[1]], None, r"a/refs.0.parq is not a readable Parquet file"),
        ([GOOD[0], columns([], [], [], [])], None, "2 rows for 3 chunks"),
        ([columns(["f", None], [-1, 0], [8, 0], [None, None]), GOOD[1]], None, "negative"),
    ],
)
def test_broken_parquet_stores(
    tmp_path: Path, tables: list[Any], zmetadata: str | None, match: str
) -> None:
    store = parquet_store(tmp_path / "p.parq", tables, zmetadata)
    with pytest.raises(InvalidReferencesError, match=match):
        parse_kerchunk_parquet(Location.of(store), lambda u: 24)


# ------------------------------------------------------------------ the reader
def test_guess_can_open(refs: dict[str, Any], sample: Path, tmp_path: Path) -> None:
    reader = KerchunkReader()
    assert reader.guess_can_open(Probe(refs))
    assert reader.guess_can_open(Probe(refs["refs"]))  # version 0
    assert not reader.guess_can_open(Probe({"title": "not references"}))
    (doc := tmp_path / "spaced.json").write_text("\n  " + json.dumps(refs))
    assert reader.guess_can_open(Probe(Location.of(doc)))
    vz.open_virtual_dataset(sample).virtualize.to_kerchunk(tmp_path / "p.parq", format="parquet")
    assert reader.guess_can_open(Probe(Location.of(tmp_path / "p.parq")))
    (tmp_path / "empty").mkdir()
    (tmp_path / "list.json").write_text("[1, 2]")
    for other in (sample, tmp_path / "empty", tmp_path / "list.json"):
        assert not reader.guess_can_open(Probe(Location.of(other))), other


def test_open_location_and_dict(sample: Path, refs: dict[str, Any], refs_file: Path) -> None:
    reader = KerchunkReader()
    from_file = reader.open(Location.of(refs_file), drop_variables=["time"])
    from_dict = reader.open(refs)
    assert list(from_file.variables) == ["v"]
    for group in (from_file, from_dict):
        manifest = group.variables["v"].data.manifest
        assert manifest.paths == (sample.as_uri(),)
        assert manifest.sources[0] is not None  # the identity recorded at virtualization
    bare = reader.open({"version": 1, "refs": refs["refs"]})
    assert bare.variables["v"].data.manifest.sources == (None,)
    xr.testing.assert_identical(as_dataset(from_dict), original(sample))
    with pytest.raises(UnexpectedOptionError, match=r"\['inline_threshold'\]") as info:
        reader.open(refs, inline_threshold=10)
    assert isinstance(info.value, TypeError)


def test_relative_paths_resolve_against_the_document(tmp_path: Path) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    vds = vz.open_virtual_dataset(write_sample(old / "sample.nc"))
    vds.virtualize.to_kerchunk(old / "refs" / "r.json", format="json", relative_paths=True)
    vds.virtualize.to_kerchunk(old / "refs" / "r.parq", format="parquet", relative_paths=True)
    doc = json.loads((old / "refs" / "r.json").read_text())
    assert doc["refs"]["v/0.0"][0] == "../sample.nc"
    expected = original(old / "sample.nc")
    shutil.move(old, new)  # references and data move together
    reader = KerchunkReader()
    for refs in ("r.json", "r.parq"):
        group = reader.open(Location.of(new / "refs" / refs))
        assert group.variables["v"].data.manifest.paths == ((new / "sample.nc").as_uri(),)
        xr.testing.assert_identical(as_dataset(group), expected)
    in_memory = reader.open(doc)  # nothing to resolve against: kept as written
    assert in_memory.variables["v"].data.manifest.paths == ("../sample.nc",)


def test_whole_file_target_is_checked_before_it_is_sized(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "chunk.bin"
    data.write_bytes(bytes(24))
    doc = {**one_array(), "a/0": [data.as_uri()]}
    sized: list[str] = []
    monkeypatch.setattr(Location, "size", spy(sized, Location.size))
    with pytest.raises(UntrustedReferenceError, match="allowed_sources does not allow"):
        KerchunkReader().open(doc, allowed_sources=["s3"])
    assert sized == []  # a crafted document cannot make us stat local files
    group = KerchunkReader().open(doc)
    assert sized == [data.as_uri()] and group.variables["a"].data.manifest.lengths[0] == 24
