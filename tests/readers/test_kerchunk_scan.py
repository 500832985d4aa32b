"""The NumPy scan of kerchunk JSON (readers/kerchunk/scan.py, columns.py) against the
entry-by-entry parse (ujson): for every document, scanned or not, the same virtual group
or the same error -- and the scan really taken for the documents writers produce."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import ujson
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import virtualizarr as vz
from virtualizarr.errors import VirtualiZarrError
from virtualizarr.io.objects import Location
from virtualizarr.manifests import VirtualGroup
from virtualizarr.readers.kerchunk import parse, scan
from virtualizarr.readers.kerchunk.arrays import references_to_group
from virtualizarr.readers.kerchunk.columns import columnarize
from virtualizarr.readers.kerchunk.parse import parse_kerchunk_json


def write_sample(path: Path) -> Path:
    """Two compressed variables (one with missing chunks), a string variable (inline),
    a nested-looking name, time/x coordinates."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.title = "scan"
        nc.createDimension("time", 6)
        nc.createDimension("x", 4)
        nc.createVariable("time", "f8", ("time",))[:] = np.arange(6)
        nc.createVariable("x", "i4", ("x",))[:] = np.arange(4)
        v = nc.createVariable("v", "f4", ("time", "x"), zlib=True, chunksizes=(1, 2))
        v[:] = np.arange(24, dtype="f4").reshape(6, 4)
        w = nc.createVariable("w", "i2", ("time", "x"), chunksizes=(2, 4), fill_value=-9)
        w[0:2] = np.ones((2, 4), "i2")  # chunks 1 and 2 never written
        s = nc.createVariable("label", str, ("x",))
        s[:] = np.array(["a", "bé", "c", "d"], dtype=object)
    return path


@pytest.fixture
def sample(tmp_path: Path) -> Path:
    return write_sample(tmp_path / "sample.nc")


def references(path: Path) -> dict[str, Any]:
    refs = vz.open_virtual_dataset(path).virtualize.to_kerchunk(format="dict")
    return json.loads(json.dumps(refs))


WRITERS: dict[str, Callable[[Any], bytes]] = {
    "ujson (escaped slashes)": lambda d: ujson.dumps(d).encode(),
    "ujson, unescaped": lambda d: ujson.dumps(d, escape_forward_slashes=False).encode(),
    "json (spaces)": lambda d: json.dumps(d).encode(),
    "json, compact": lambda d: json.dumps(d, separators=(",", ":")).encode(),
    "json, indented": lambda d: json.dumps(d, indent=2).encode(),
    "json, ascii off": lambda d: json.dumps(d, ensure_ascii=False).encode(),
}


def slow(raw: bytes, where: str = "doc.json") -> parse.ParsedReferences:
    return parse.parse_kerchunk_dict(json.loads(raw), where)


def groups_equal(a: VirtualGroup, b: VirtualGroup) -> None:
    assert list(a.variables) == list(b.variables)
    for name, va in a.variables.items():
        vb = b.variables[name]
        assert va.dims == vb.dims and va.data.metadata == vb.data.metadata, name
        assert va.data.manifest.equals(vb.data.manifest), name
        assert sorted(va.data.manifest.paths) == sorted(vb.data.manifest.paths), name
        assert va.attrs.keys() == vb.attrs.keys(), name
        for k in va.attrs:
            np.testing.assert_array_equal(va.attrs[k], vb.attrs[k])
    assert a.attrs == b.attrs


def outcome(fn: Callable[[], VirtualGroup]) -> VirtualGroup | tuple[type, str]:
    try:
        return fn()
    except VirtualiZarrError as e:
        return type(e), str(e)


def both_ways(tmp_path: Path, raw: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """Reading ``raw`` scanned and entry by entry gives the same group or error."""
    path = tmp_path / "doc.json"
    path.write_bytes(raw)
    location = Location.of(path)

    def read() -> VirtualGroup:
        return references_to_group(parse_kerchunk_json(location))

    fast = outcome(read)
    with monkeypatch.context() as m:
        m.setattr(parse, "scan_document", lambda raw: None)
        ref = outcome(read)
    if isinstance(ref, VirtualGroup):
        assert isinstance(fast, VirtualGroup), fast
        groups_equal(fast, ref)
    else:
        assert fast == ref


# ------------------------------------------------------------------ real documents
@pytest.mark.parametrize("writer", WRITERS)
def test_documents_of_every_writer_are_scanned(
    sample: Path, writer: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    raw = WRITERS[writer](references(sample))
    slow_gaps: list[int] = []
    general = scan._general_kinds
    monkeypatch.setattr(
        scan, "_general_kinds", lambda a, s, n: slow_gaps.extend(s.tolist()) or general(a, s, n)
    )
    got = scan.scan_document(raw)
    assert got is not None  # the scan takes the document...
    assert len(got.key_start) == 12 + 1  # v: 6 x 2 chunks, w: the one chunk written
    if "indented" not in writer:  # ...reading the gaps of the references the fast way, but
        # the one that ends them (and those of the "virtualizarr" record after them)
        end = raw.index(b'"virtualizarr"')
        assert min(slow_gaps) > end - 100
    refs = parse.parse_kerchunk_dict(got.document, "doc.json")
    layouts = parse._layouts(refs)
    assert layouts is not None
    assert columnarize(raw, got, layouts, refs.chunks) is not None
    monkeypatch.undo()
    both_ways(tmp_path, raw, monkeypatch)


@pytest.mark.parametrize("writer", ["ujson (escaped slashes)", "json (spaces)"])
def test_scanned_references_read_back(sample: Path, writer: str, tmp_path: Path) -> None:
    path = tmp_path / "refs.json"
    path.write_bytes(WRITERS[writer](references(sample)))
    with xr.open_dataset(path, engine="virtualizarr") as ds, xr.open_dataset(sample) as orig:
        xr.testing.assert_identical(ds.load(), orig.load())


def test_many_files_many_arrays_and_nested_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Interleaved URLs (no runs), a grouped array name, '/' separators, a root array."""
    rng = np.random.default_rng(0)
    refs: dict[str, Any] = {".zgroup": '{"zarr_format":2}'}
    for name, sep in (("g/a", "."), ("g/ab", "/"), ("", ".")):
        head = f"{name}/" if name else ""
        zarray = {
            "shape": [40, 6],
            "chunks": [2, 3],
            "dtype": "<f8",
            "compressor": None,
            "filters": None,
            "fill_value": None,
            "order": "C",
            "zarr_format": 2,
            "dimension_separator": sep,
        }
        refs[f"{head}.zarray"] = json.dumps(zarray)
        refs[f"{head}.zattrs"] = '{"_ARRAY_DIMENSIONS": ["t", "x"]}'
        cells = [(i, j) for i in range(20) for j in range(2)]
        for k in rng.permutation(len(cells)):
            i, j = cells[k]
            url = f"s3://bucket/d{rng.integers(0, 7)}/é{rng.integers(0, 3)}.nc"
            refs[f"{head}{i}{sep}{j}"] = [url, int(rng.integers(0, 2**40)), 48]
    refs["g/.zgroup"] = '{"zarr_format":2}'
    for writer in WRITERS.values():
        raw = writer({"version": 1, "refs": refs})
        assert scan.scan_document(raw) is not None
        both_ways(tmp_path, raw, monkeypatch)
    raw = json.dumps(refs).encode()  # version 0: the document is the references
    assert scan.scan_document(raw) is not None
    both_ways(tmp_path, raw, monkeypatch)


# ------------------------------------------------------------------ edge cases
BASE = {
    ".zgroup": '{"zarr_format": 2}',
    "a/.zarray": json.dumps(
        {
            "shape": [4, 4],
            "chunks": [2, 2],
            "dtype": "<i4",
            "compressor": None,
            "filters": None,
            "fill_value": 0,
            "order": "C",
            "zarr_format": 2,
        }
    ),
    "a/.zattrs": '{"_ARRAY_DIMENSIONS": ["y", "x"]}',
    "a/0.0": ["file:///data/a.nc", 100, 16],
    "a/0.1": ["file:///data/a.nc", 116, 16],
    "a/1.0": ["file:///data/b.nc", 0, 16],
}


def doc(changes: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"version": 1, "refs": {**BASE, **(changes or {})}}


def text_doc(replace: tuple[str, str]) -> bytes:
    return json.dumps(doc(), separators=(",", ":")).replace(*replace).encode()


EDGE_CASES: dict[str, bytes] = {
    "plain": json.dumps(doc()).encode(),
    "inline chunk": json.dumps(doc({"a/1.1": "base64:AAAAAQAAAAIAAAADAAAABA=="})).encode(),
    "whole-file reference": json.dumps(doc({"a/1.1": ["file:///data/c.nc"]})).encode(),
    "key outside the grid": json.dumps(doc({"a/5.0": ["file:///data/a.nc", 0, 16]})).encode(),
    "key of no array": json.dumps(doc({"b/0.0": ["file:///data/a.nc", 0, 16]})).encode(),
    "malformed key": json.dumps(doc({"a/0.x": ["file:///data/a.nc", 0, 16]})).encode(),
    "three indices": json.dumps(doc({"a/0.0.0": ["file:///data/a.nc", 0, 16]})).encode(),
    "empty index": json.dumps(doc({"a/.1": ["file:///data/a.nc", 0, 16]})).encode(),
    "leading zero": text_doc(('"a/1.0"', '"a/01.0"')),
    "duplicate key": text_doc(('"a/0.1":', '"a/0.0":["file:///x.nc",1,2],"a/0.1":')),
    "duplicate with an inline chunk": text_doc(('"a/0.1":', '"a/0.0":"base64:AAAA","a/0.1":')),
    "negative offset": text_doc((",100,16]", ",-100,16]")),
    "fractional length": text_doc((",100,16]", ",100,16.0]")),
    "exponent": text_doc((",100,16]", ",1e2,16]")),
    "huge offset": text_doc((",100,16]", ",123456789012345678901234,16]")),
    "18-digit offset": text_doc((",100,16]", ",123456789012345678,16]")),
    "four elements": text_doc((",100,16]", ",100,16,7]")),
    "null url": text_doc(('["file:///data/b.nc"', "[null")),
    "number key": text_doc(('"a/1.0":[', '"a/1.0":{"x":1},"a/1.1":[')),
    "escaped quote in url": text_doc(("b.nc", 'b\\".nc')),
    "unicode escape in url": text_doc(("b.nc", "b\\u00e9.nc")),
    "unicode escape in key": text_doc(('"a/1.0"', '"a\\u002f1.0"')),
    "escaped slash in key": text_doc(('"a/1.0"', '"a\\/1.0"')),
    "tab in url": text_doc(("b.nc", "b\t.nc")),
    "newline between tokens": text_doc((',"a/1.0"', ',\n\t"a/1.0"')),
    "empty refs": b'{"version": 1, "refs": {}}',
    "refs last, extra keys first": json.dumps(
        {"templates": {"u": "file:///data"}, "version": 1, "refs": doc()["refs"]}
    ).encode(),
    "template": json.dumps(
        {
            "version": 1,
            "templates": {"u": "file:///data"},
            "refs": doc({"a/1.1": ["{{u}}/t.nc", 0, 16]})["refs"],
        }
    ).encode(),
    "generated references": json.dumps({**doc(), "gen": [{"key": "x"}]}).encode(),
    "version 2": json.dumps({**doc(), "version": 2}).encode(),
    "trailing garbage": json.dumps(doc()).encode() + b" x",
    "truncated": json.dumps(doc()).encode()[:-40],
    "unbalanced quote": json.dumps(doc()).encode().replace(b'"a/0.1"', b'"a/0.1'),
    "nan attribute": json.dumps(doc()).encode().replace(b'"version": 1', b'"version": 1, "x": NaN'),
    "a list of documents": b"[" + json.dumps(doc()).encode() + b"]",
    "one key, no value": b'{"a": ',
    "version 0, one key": b'{"a/.zarray": ',
    "nested refs in version 0": json.dumps({**BASE, "sub": {"a": 1}}).encode(),
}


@pytest.mark.parametrize("case", EDGE_CASES)
def test_edge_cases_read_as_the_slow_path_reads_them(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    both_ways(tmp_path, EDGE_CASES[case], monkeypatch)


def test_documents_the_scan_leaves_to_ujson() -> None:
    for case in ("duplicate key", "key of no array", "malformed key", "negative offset"):
        raw = EDGE_CASES[case]
        got = scan.scan_document(raw)
        if got is not None:
            refs = parse.parse_kerchunk_dict(got.document, "doc.json")
            layouts = parse._layouts(refs)
            assert layouts is None or columnarize(raw, got, layouts, refs.chunks) is None, case


# ------------------------------------------------------------------ random documents
_names = st.sampled_from(["a", "g/b", "c_d", "é"])
_urls = st.sampled_from(
    [
        "file:///x/a.nc",
        "s3://b/k/é.nc",
        "https://h/p?q=1&r=2",
        "file:///x/a\u00e9b.nc",
        "{{t}}/f.nc",
    ]
)
_ws = st.sampled_from(["", " ", "\n  ", "\t"])


@st.composite
def documents(draw: st.DrawFn) -> bytes:
    """Random kerchunk documents, mostly valid, written with random spacing and escaping."""
    refs: dict[str, Any] = {".zgroup": '{"zarr_format": 2}'}
    for name in draw(st.lists(_names, min_size=1, max_size=3, unique=True)):
        shape = draw(st.lists(st.integers(0, 5), min_size=1, max_size=3))
        chunks = [draw(st.integers(1, 3)) for _ in shape]
        sep = draw(st.sampled_from([".", "/"]))
        zarray = {"shape": shape, "chunks": chunks, "dtype": "<i2", "compressor": None}
        zarray |= {"filters": None, "fill_value": 0, "order": "C", "zarr_format": 2}
        zarray["dimension_separator"] = sep
        refs[f"{name}/.zarray"] = json.dumps(zarray)
        refs[f"{name}/.zattrs"] = json.dumps({"_ARRAY_DIMENSIONS": [f"d{i}" for i in shape]})
        grid = [-(-s // c) for s, c in zip(shape, chunks, strict=True)]
        cells = [np.unravel_index(k, grid) for k in range(int(np.prod(grid)))]
        for cell in draw(st.lists(st.sampled_from(cells), max_size=8)) if cells else []:
            key = f"{name}/" + sep.join(str(int(c)) for c in cell)
            kind = draw(st.integers(0, 9))
            if kind < 7:
                refs[key] = [draw(_urls), draw(st.integers(0, 2**45)), draw(st.integers(0, 99))]
            elif kind == 7:
                refs[key] = "base64:AAE="
            elif kind == 8:  # a whole file (a local one: sizing it must not reach out)
                refs[key] = ["file:///nonexistent/whole.nc"]
            else:  # something a little wrong
                refs[key + draw(st.sampled_from(["", ".0", "x"]))] = draw(
                    st.sampled_from([[draw(_urls), -1, 2], [draw(_urls), 1.5, 2], [1, 2, 3]])
                )
    document = {"version": 1, "templates": {"t": "file:///tpl"}, "refs": refs}
    if draw(st.booleans()):
        document = {"version": 1, "refs": refs, "virtualizarr": {"sources": {}}}
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    if draw(st.booleans()):
        text = text.replace("/", "\\/")  # as ujson escapes
    spacing = draw(_ws)
    for token in (", ", ": "):
        text = text.replace(token, token.strip() + spacing)
    return text.encode()


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(documents())
def test_random_documents_read_as_the_slow_path_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: bytes
) -> None:
    both_ways(tmp_path, raw, monkeypatch)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid document with a few bytes deleted, replaced or inserted."""
    raw = bytearray(draw(st.sampled_from([EDGE_CASES["plain"], EDGE_CASES["inline chunk"]])))
    raw = bytearray(WRITERS[draw(st.sampled_from(sorted(WRITERS)))](json.loads(raw)))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(raw) - 1))
        what = draw(st.integers(0, 2))
        piece = draw(st.sampled_from([b'"', b",", b":", b"[", b"]", b"{", b"}", b"\\", b"7", b" "]))
        if what == 0:
            del raw[at : at + draw(st.integers(1, 4))]
        elif what == 1:
            raw[at : at + 1] = piece
        else:
            raw[at:at] = piece
    return bytes(raw)


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mutated())
def test_damaged_documents_read_as_the_slow_path_reads_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, raw: bytes
) -> None:
    """The scan never raises on its own and never takes what ujson would refuse."""
    scan.scan_document(raw)  # returns or gives up; does not raise
    both_ways(tmp_path, raw, monkeypatch)
