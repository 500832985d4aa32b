"""Hypothesis over the fields of documents the readers trust: netCDF3 headers, kerchunk JSON
references and our manifest stores' ``zarr.json``/``manifest.json``.

Each example is built field by field from strategies that mix plausible values with lies
(huge counts and lengths, negative or unknown codes, wrong types, out-of-range ids), written
to disk and opened with ``open_virtual_dataset``. The outcome must be a dataset that
serializes with ``to_kerchunk``, or a ``VirtualiZarrError`` with a message -- within the
time budget and without a large allocation (these readers are pure Python, so they run
in-process under ``tracemalloc``).
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import tempfile
import time
import tracemalloc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import fuzzlib
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtualizarr import open_virtual_dataset
from virtualizarr.errors import VirtualiZarrError

MAX_EXAMPLES = int(os.environ.get("VZ_FUZZ_EXAMPLES", 60))
FUZZ = settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,  # the budget is checked below, outside hypothesis' flaky-deadline logic
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    derandomize=True,
)


@contextmanager
def bounded() -> Iterator[None]:
    """Fail if the body takes longer than the time budget or allocates past the bound."""
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        yield
    finally:
        secs = time.perf_counter() - t0
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert secs < fuzzlib.TIME_BUDGET, f"took {secs:.1f} s"
    assert peak < fuzzlib.MEMORY_BUDGET, f"allocated {peak / 2**20:.0f} MiB"


def open_clean_or_ours(path: Path, filetype: str) -> None:
    """Open ``path``; a success must also serialize, a failure must be ours, with a message."""
    with bounded():
        try:
            ds = open_virtual_dataset(str(path), filetype=filetype)
            ds.virtualize.to_kerchunk(format="dict")
        except VirtualiZarrError as e:
            assert str(e).strip(), f"{type(e).__name__} without a message"


@pytest.fixture(scope="module", autouse=True)
def warm(corpus: Path) -> None:
    """Open each reader once: xarray's lazy imports (dask, scipy) must not count as work."""
    for fmt in fuzzlib.FORMATS:
        open_virtual_dataset(
            str(corpus / fuzzlib.CORPUS_FILES[fmt][0]), filetype=fuzzlib.FILETYPE[fmt]
        ).virtualize.to_kerchunk(format="dict")


@pytest.fixture
def scratch() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="vzfuzz-hyp-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


# ====================================================================== netCDF3 headers
U32 = st.one_of(
    st.integers(0, 8),
    st.sampled_from([0, 1, 2, 3, 4, 2**31 - 1, 2**31, 2**32 - 2, 2**32 - 1]),
    st.integers(0, 2**32 - 1),
)
U64 = st.one_of(U32, st.sampled_from([2**63 - 1, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1))
NAMES = st.one_of(
    st.sampled_from(["time", "x", "y", "v", "a b", "", "\u00e9t\u00e9"]),
    st.binary(max_size=6).map(lambda b: b.decode("latin-1")),
)


@st.composite
def netcdf3_files(draw: st.DrawFn) -> bytes:
    """A netCDF3 header from drawn fields (some lying), then some data bytes."""
    version = draw(st.sampled_from([1, 2, 5]))
    wide = version == 5
    count = U64 if wide else U32
    fmt_n = ">Q" if wide else ">I"

    def n(value: int) -> bytes:
        return struct.pack(fmt_n, value % (2**64 if wide else 2**32))

    def lie(true: int) -> int:  # mostly the truth, so that examples reach deeper fields
        return true if draw(st.integers(0, 7)) else draw(count)

    def name(s: str) -> bytes:
        raw = s.encode("utf-8")
        length = lie(len(raw))
        return n(length) + raw + b"\0" * (-len(raw) % 4)

    def begin(value: int) -> bytes:
        return struct.pack(
            ">I" if version == 1 else ">Q", value % (2 ** (32 if version == 1 else 64))
        )

    def attrs() -> bytes:
        items = draw(
            st.lists(
                st.tuples(NAMES, st.integers(1, 11).map(lie), st.integers(0, 4)),
                max_size=3,
                unique_by=lambda t: t[0],
            )
        )
        if not items and draw(st.booleans()):
            return struct.pack(">I", 0) + n(0)
        out = struct.pack(">I", 0x0C) + n(lie(len(items)))
        for aname, nc_type, nelems in items:
            size = {1: 1, 2: 1, 3: 2, 4: 4, 5: 4, 6: 8, 7: 1, 8: 2, 9: 4, 10: 8, 11: 8}.get(
                nc_type, 1
            )
            out += name(aname) + struct.pack(">I", nc_type % 2**32)
            out += n(lie(nelems))
            payload = draw(st.binary(min_size=nelems * size, max_size=nelems * size))
            out += payload + b"\0" * (-len(payload) % 4)
        return out

    out = b"CDF" + bytes([version]) + n(lie(draw(st.integers(0, 4))))
    drawn = draw(
        st.lists(st.tuples(NAMES, st.integers(0, 5)), max_size=4, unique_by=lambda t: t[0])
    )
    dims = [(name_, lie(length)) for name_, length in drawn]
    tag_absent = not dims and draw(st.booleans())
    out += struct.pack(">I", 0 if tag_absent else 0x0A)
    out += n(lie(len(dims)))
    for dname, length in dims:
        out += name(dname) + n(length)
    out += attrs()
    nvars = draw(st.integers(0, 4))
    out += struct.pack(">I", 0x0B if nvars or draw(st.booleans()) else 0)
    out += n(lie(nvars))
    for _ in range(nvars):
        ids = [lie(i) for i in draw(st.lists(st.integers(0, max(len(dims), 1)), max_size=3))]
        out += name(draw(NAMES)) + n(lie(len(ids)))
        out += b"".join(n(i) for i in ids)
        out += attrs()
        out += struct.pack(">I", lie(draw(st.integers(1, 11 if wide else 6))) % 2**32)
        out += n(lie(draw(st.integers(0, 64))))  # vsize
        out += begin(lie(draw(st.integers(0, 2 * len(out) + 96))))  # begin
    tail = draw(st.binary(min_size=64, max_size=256))
    cut = None if draw(st.integers(0, 4)) else draw(st.integers(8, len(out) + len(tail)))
    return (out + tail)[:cut]


@FUZZ
@given(data=netcdf3_files())
def test_netcdf3_header_fields(data: bytes, scratch: Path) -> None:
    path = scratch / "h.nc"
    path.write_bytes(data)
    open_clean_or_ours(path, "netcdf3")


# ====================================================================== kerchunk JSON
INTS = st.one_of(
    st.integers(-2, 12),
    st.sampled_from([0, 2**31, 2**40, 2**62, 2**63, 2**64 + 1, 10**30]),
)
ANY_JSON = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        INTS,
        st.floats(allow_nan=True),
        st.text(max_size=8),
        st.sampled_from(["base64:", "base64:AAAA", "base64:@@", "<f4", "|S1", "file:///x"]),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=5), inner, max_size=3)
    ),
    max_leaves=6,
)
DTYPES = st.one_of(
    st.sampled_from(["<f4", ">i2", "|u1", "<f8", "|S1", "|S4", "<U3", "|O", "<M8[s]", "<c8"]),
    st.sampled_from(["<f3", "xyz", "", "|V2", "<f16", "<m8"]),
    ANY_JSON,
)
CODECS = st.one_of(
    st.sampled_from(
        [
            {"id": "zlib", "level": 1},
            {"id": "shuffle", "elementsize": 4},
            {"id": "zstd", "level": 3},
            {"id": "nosuch"},
            {"id": "zlib", "level": "x"},
            {"id": 3},
            {},
        ]
    ),
    ANY_JSON,
)


@st.composite
def zarrays(draw: st.DrawFn) -> Any:
    ndim = draw(st.integers(0, 3))
    shape = draw(st.lists(INTS, min_size=ndim, max_size=ndim))
    chunks = draw(st.one_of(st.lists(INTS, min_size=ndim, max_size=ndim), ANY_JSON))
    doc: dict[str, Any] = {
        "zarr_format": 2,
        "shape": draw(st.one_of(st.just(shape), ANY_JSON)),
        "chunks": chunks,
        "dtype": draw(DTYPES),
        "fill_value": draw(st.one_of(st.none(), INTS, st.sampled_from(["NaN", "x"]), ANY_JSON)),
        "order": draw(st.sampled_from(["C", "F", 3])),
        "filters": draw(st.one_of(st.none(), st.lists(CODECS, max_size=2), ANY_JSON)),
        "compressor": draw(st.one_of(st.none(), CODECS)),
    }
    if draw(st.booleans()):
        doc["dimension_separator"] = draw(st.sampled_from([".", "/", "-", None, 1]))
    for key in draw(st.lists(st.sampled_from(sorted(doc)), max_size=2)):
        doc.pop(key, None)
    return doc if draw(st.integers(0, 9)) else draw(ANY_JSON)


CHUNK_KEYS = st.one_of(
    st.sampled_from(["0", "0.0", "1.0", "0.0.0", "0/0", "-1.0", "9.9", "a.b", "0..0", ""]),
    st.text(alphabet="0123456789./", max_size=7),
)
CHUNK_REFS = st.one_of(
    st.tuples(st.just("file:///no/such.nc"), INTS, INTS).map(list),
    st.sampled_from([["file:///no/such.nc"], [], [1, 2, 3], ["{{u}}/a", 0, 4], [None, 0, 1]]),
    st.text(max_size=6),
    st.sampled_from(["base64:AAAAAA==", "base64:%%%", "base64:"]),
    ANY_JSON,
)


@st.composite
def kerchunk_docs(draw: st.DrawFn) -> Any:
    refs: dict[str, Any] = {".zgroup": json.dumps({"zarr_format": 2})}
    for var in draw(st.lists(st.sampled_from(["x", "y", "g/z", ""]), max_size=2, unique=True)):
        prefix = f"{var}/" if var else ""
        zarray = draw(zarrays())
        refs[f"{prefix}.zarray"] = draw(
            st.one_of(st.just(json.dumps(zarray)), st.just(zarray), ANY_JSON)
        )
        zattrs = {"_ARRAY_DIMENSIONS": draw(st.one_of(st.lists(st.text(max_size=3)), ANY_JSON))}
        if draw(st.booleans()):
            refs[f"{prefix}.zattrs"] = json.dumps(zattrs)
        for key in draw(st.lists(CHUNK_KEYS, max_size=4)):
            refs[prefix + key] = draw(CHUNK_REFS)
    doc: dict[str, Any] = {"version": draw(st.sampled_from([1, 1, 1, 0, 2, "1"])), "refs": refs}
    if draw(st.booleans()):
        doc["templates"] = draw(st.one_of(st.just({"u": "file:///t"}), ANY_JSON))
    if draw(st.booleans()):
        doc["virtualizarr"] = draw(
            st.one_of(
                st.just({"attribute_dtypes": {"x": {"_FillValue": "<f4"}}}),
                st.fixed_dictionaries({"attribute_dtypes": ANY_JSON}),
                ANY_JSON,
            )
        )
    return doc if draw(st.integers(0, 19)) else refs  # version-0 documents too


@FUZZ
@given(doc=kerchunk_docs())
def test_kerchunk_json_structure(doc: Any, scratch: Path) -> None:
    path = scratch / "refs.json"
    path.write_text(json.dumps(doc))
    open_clean_or_ours(path, "kerchunk")


# ====================================================================== manifest stores
MANIFEST_ENTRIES = st.one_of(
    st.fixed_dictionaries(
        {"path": st.sampled_from(["file:///no/such.nc", "rel.nc", "/abs.nc"]), "offset": INTS}
    ).map(lambda d: {**d, "length": 4}),
    st.fixed_dictionaries({"path": ANY_JSON, "offset": INTS, "length": INTS}),
    ANY_JSON,
)
STORE_KEYS = st.one_of(
    st.sampled_from(["c/0", "c/0/0", "c/1/0", "c/9/9", "c", "0", "c/-1", "c/a", "c//0"]),
    st.text(alphabet="c0123/.", max_size=6),
)


@st.composite
def store_edits(draw: st.DrawFn) -> dict[str, Any]:
    """New ``manifest.json`` and edited ``zarr.json`` fields for one array of a store."""
    manifest = draw(st.one_of(st.dictionaries(STORE_KEYS, MANIFEST_ENTRIES, max_size=4), ANY_JSON))
    fields: dict[str, Any] = {}
    for field in draw(
        st.lists(
            st.sampled_from(
                [
                    "shape",
                    "chunk_grid",
                    "data_type",
                    "fill_value",
                    "codecs",
                    "attributes",
                    "dimension_names",
                    "storage_transformers",
                    "virtualizarr",
                    "chunk_key_encoding",
                ]
            ),
            max_size=3,
            unique=True,
        )
    ):
        if field == "shape":
            fields[field] = draw(st.one_of(st.lists(INTS, max_size=3), ANY_JSON))
        elif field == "chunk_grid":
            fields[field] = draw(
                st.one_of(
                    st.lists(INTS, min_size=1, max_size=3).map(
                        lambda c: {"name": "regular", "configuration": {"chunk_shape": c}}
                    ),
                    ANY_JSON,
                )
            )
        else:
            fields[field] = draw(ANY_JSON)
    return {"manifest": manifest, "fields": fields}


@FUZZ
@given(edit=store_edits(), which=st.sampled_from(["temp", "time", "scalar", "station"]))
def test_manifest_store_fields(
    edit: dict[str, Any], which: str, corpus: Path, scratch: Path
) -> None:
    store = scratch / "store.zarr"
    shutil.rmtree(store, ignore_errors=True)
    shutil.copytree(corpus / "store_model.zarr", store)
    adir = store / which
    doc = json.loads((adir / "zarr.json").read_text())
    doc.update(edit["fields"])
    (adir / "zarr.json").write_text(json.dumps(doc))
    (adir / "manifest.json").write_text(json.dumps(edit["manifest"]))
    open_clean_or_ours(store, "manifest_store")
