"""The bulk JSON formatter of chunk references against a json.dumps-per-reference oracle."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from unittest import mock

import numpy as np
import pytest
import xarray as xr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from virtualizarr.manifests import ChunkManifest, ManifestArray, make_array_metadata
from virtualizarr.writers import json_format as jf
from virtualizarr.writers.kerchunk import (
    _chunk_ref_json,
    _json,
    _json_strings,
    dataset_to_kerchunk_json,
    dataset_to_kerchunk_refs,
)

# Settings that steer every input through each code path: plain Python; NumPy in one
# block; NumPy in blocks of a row or a few, dropping NULs by bytes.replace or by a mask.
MODES = {
    "python": {"_SMALL": 10**9},
    "numpy-replace": {"_SMALL": 0, "_REPLACE_MAX_NUL": 10**9},
    "numpy-tiny-blocks": {"_SMALL": 0, "_BLOCK_BYTES": 1},
    "numpy-small-blocks-mask": {"_SMALL": 0, "_BLOCK_BYTES": 600, "_REPLACE_MAX_NUL": -1},
}


@contextmanager
def mode(name: str) -> Iterator[None]:
    with ExitStack() as stack:
        for attr, value in MODES[name].items():
            stack.enter_context(mock.patch.object(jf, attr, value))
        yield


def oracle(name: str, m: ChunkManifest) -> list[tuple[str, object]]:
    """The entries the writer must produce, one json.dumps-able pair per chunk."""
    ids = m.path_ids
    refs, inline = [], []
    for coords in np.ndindex(ids.shape):
        key = f"{name}/" + (".".join(map(str, coords)) if coords else "0")
        pid = int(ids[coords])
        if pid >= 0:
            value = [m.paths[pid], int(m.offsets[coords]), int(m.lengths[coords])]
            refs.append((key, value))
        elif pid < -1:
            inline.append((key, "base64:" + _b64(m.inline[-2 - pid])))
    return refs + inline


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode("ascii")


def parse_entries(text: bytes) -> list[tuple[str, object]]:
    """``,"k":v,"k":v`` text as (key, value) pairs, in order, by the standard parser."""
    if not text:
        return []
    assert text.startswith(b",")
    return json.loads(b"{" + text[1:] + b"}", object_pairs_hook=list)


# ---------------------------------------------------------------------- digits
EDGES = [0, 1, 9, 10, 99, 100, 9999, 10_000, 99_999_999, 10**8, 10**8 + 1, 2**32 - 1, 2**32]
EDGES += [10**15, 10**16 - 1, 10**16, 10**19 - 1, 10**19, 2**63, 2**64 - 2, 2**64 - 1]


def test_digit_matrix_edges_and_random() -> None:
    rng = np.random.default_rng(0)
    x = np.concatenate(
        [
            np.array(EDGES, np.uint64),
            rng.integers(0, 2**64 - 1, 20_000, dtype=np.uint64, endpoint=True),
            rng.integers(0, 10**9, 20_000).astype(np.uint64),
            np.arange(100_000, dtype=np.uint64),
        ]
    )
    got = jf.digit_matrix(x, 20)
    assert got.shape == (len(x), 20)
    assert [bytes(r).lstrip(b"\x00") for r in got] == [str(v).encode() for v in x.tolist()]
    assert all(b"\x00" not in bytes(r).lstrip(b"\x00") for r in got)


@pytest.mark.parametrize("width", range(1, 21))
def test_digit_matrix_each_width(width: int) -> None:
    hi = 10**width - 1 if width < 20 else 2**64 - 1
    x = np.array(sorted({0, 1, hi, hi // 7, 10 ** (width - 1)}), np.uint64)
    got = jf.digit_matrix(x, width)
    assert got.shape == (len(x), width)
    assert [bytes(r).lstrip(b"\x00").decode() for r in got] == [str(v) for v in x.tolist()]


@given(st.lists(st.integers(0, 2**64 - 1), min_size=1, max_size=50))
def test_digit_matrix_property(values: list[int]) -> None:
    x = np.array(values, np.uint64)
    width = max(len(str(v)) for v in values)
    got = jf.digit_matrix(x, width)
    assert [bytes(r).lstrip(b"\x00").decode() for r in got] == [str(v) for v in values]


# ---------------------------------------------------------------------- manifests
paths_st = st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
names_st = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=12
).filter(lambda s: "/" not in s and not s.startswith("."))
uint64_st = st.one_of(
    st.sampled_from([0, 1, 2**32 - 1, 2**32, 10**16, 2**64 - 1]), st.integers(0, 2**64 - 1)
)


@st.composite
def manifests(draw: st.DrawFn) -> ChunkManifest:
    ndim = draw(st.integers(0, 4))
    grid = tuple(draw(st.lists(st.integers(1, 5), min_size=ndim, max_size=ndim)))
    size = int(np.prod(grid))
    paths = draw(st.lists(paths_st, min_size=1, max_size=6, unique=True))
    inline = draw(st.lists(st.binary(max_size=30), max_size=3))
    kinds = st.integers(-1 - len(inline), len(paths) - 1)  # inline ids, missing, paths
    ids = draw(st.lists(kinds, min_size=size, max_size=size))
    offsets = draw(st.lists(uint64_st, min_size=size, max_size=size))
    lengths = draw(st.lists(uint64_st, min_size=size, max_size=size))

    def shaped(values: list[int], dtype: type) -> np.ndarray:
        return np.array(values, dtype=dtype).reshape(grid)

    return ChunkManifest(
        paths,
        shaped(ids, np.int32),
        shaped(offsets, np.uint64),
        shaped(lengths, np.uint64),
        inline=inline,
    )


def virtual_array(m: ChunkManifest, name: str) -> ManifestArray:
    grid = m.shape_chunk_grid
    meta = make_array_metadata(
        shape=tuple(2 * g for g in grid),
        dtype=np.dtype("<i2"),
        chunks=(2,) * len(grid),
        fill_value=0,
        dimension_names=tuple(f"{name}_{ax}" for ax in range(len(grid))),
    )
    return ManifestArray(meta, m, name=name)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=manifests(), name=names_st)
def test_chunk_entries_match_the_oracle_in_every_mode(m: ChunkManifest, name: str) -> None:
    arr = virtual_array(m, name)
    expected = oracle(name, m)
    texts = {}
    for mode_name in MODES:
        with mode(mode_name):
            texts[mode_name] = b"".join(_chunk_ref_json(name, arr))
        assert parse_entries(texts[mode_name]) == expected, mode_name
    assert len(set(texts.values())) == 1  # byte-identical across paths


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ms=st.lists(manifests(), min_size=1, max_size=3), names=st.data())
def test_document_equals_the_dict_writer(ms: list[ChunkManifest], names: st.DataObject) -> None:
    keys = names.draw(st.lists(names_st, min_size=len(ms), max_size=len(ms), unique=True))
    ds = xr.Dataset(
        {
            k: (virtual_array(m, k).metadata.dimension_names, virtual_array(m, k))
            for k, m in zip(keys, ms, strict=True)
        }
    )
    expected = dataset_to_kerchunk_refs(ds)
    for mode_name in MODES:
        with mode(mode_name):
            doc = json.loads(dataset_to_kerchunk_json(ds))
        assert doc == json.loads(json.dumps(expected)), mode_name


# ---------------------------------------------------------------------- larger cases
def big_manifest(rng: np.random.Generator, grid: tuple[int, ...]) -> ChunkManifest:
    paths = ["file:///data/a.nc", 's3://b/"quoted"\\x.nc', "file:///dåta/ü.nc", "\x01\n\t"]
    paths += [f"file:///data/{'d' * k}/f{k}.nc" for k in range(20)]  # varied lengths
    ids = rng.integers(-3, len(paths), grid).astype(np.int32)
    offsets = rng.integers(0, 2**64 - 1, grid, dtype=np.uint64, endpoint=True)
    offsets[rng.random(grid) < 0.5] //= np.uint64(10**12)
    lengths = rng.integers(0, 10**6, grid).astype(np.uint64)
    return ChunkManifest(paths, ids, offsets, lengths, inline=[b"\x00\x01", b"x" * 40])


@pytest.mark.parametrize("grid", [(5000,), (70, 1, 80), (1, 3000, 1), (9, 1, 11, 13), (1,)])
@pytest.mark.parametrize("mode_name", list(MODES))
def test_many_chunks_match_the_oracle(grid: tuple[int, ...], mode_name: str) -> None:
    m = big_manifest(np.random.default_rng(len(grid)), grid)
    name = 'we"ird\\näme'
    with mode(mode_name):
        text = b"".join(_chunk_ref_json(name, virtual_array(m, "v")))
    assert parse_entries(text) == oracle(name, m)


def test_all_present_single_path_is_byte_identical_to_plain_formatting() -> None:
    """The common layout (one path, dense grid): exactly ``,"k":["p",o,n]`` per chunk."""
    n = 20_000
    offsets = np.arange(n, dtype=np.uint64) * np.uint64(1000) + np.uint64(7)
    lengths = np.full(n, 999, np.uint64)
    m = ChunkManifest(
        ["file:///x.nc"], np.zeros((n, 1), np.int32), offsets[:, None], lengths[:, None]
    )
    text = b"".join(_chunk_ref_json("t", virtual_array(m, "t")))
    expected = "".join(
        f',"t/{i}.0":["file:///x.nc",{o},999]' for i, o in enumerate(offsets.tolist())
    )
    assert text == expected.encode()


def test_wide_inline_chunks_use_the_python_path_and_still_match() -> None:
    n = 600
    inline = [bytes(range(256)) * 2, b"short"]
    ids = np.where(np.arange(n) % 3 == 0, -2, np.where(np.arange(n) % 3 == 1, -3, 0))
    zeros = np.zeros(n, np.uint64)
    m = ChunkManifest(["p"], ids.astype(np.int32), zeros, zeros, inline=inline)
    with mode("numpy-replace"):
        text = b"".join(_chunk_ref_json("v", virtual_array(m, "v")))
    assert parse_entries(text) == oracle("v", m)


def test_a_table_entry_with_a_nul_byte_is_refused() -> None:
    flat = np.arange(3)
    with pytest.raises(ValueError, match="NUL"):
        list(jf.format_entries(b"v/", (3,), flat, [b'"a\x00",'], np.zeros(3, np.int32)))


def test_no_entries_yield_nothing() -> None:
    empty = np.zeros(0, np.intp)
    assert list(jf.format_entries(b"v/", (0,), empty, [], np.zeros(0, np.int32))) == []


@pytest.mark.parametrize("mode_name", list(MODES))
def test_long_paths_of_similar_length(mode_name: str) -> None:
    n = 3000
    paths = [f"s3://bucket/{'x' * 1000}/{k}.nc?token={'t' * 300}" for k in range(12)]
    ids = (np.arange(n) % 12).astype(np.int32)
    offsets = np.arange(n, dtype=np.uint64) * np.uint64(2**40)
    m = ChunkManifest(paths, ids, offsets, offsets // np.uint64(7))
    with mode(mode_name):
        text = b"".join(_chunk_ref_json("v", virtual_array(m, "v")))
    assert parse_entries(text) == oracle("v", m)


@given(st.lists(paths_st, max_size=8))
def test_json_strings_are_the_encoders_bytes(strings: list[str]) -> None:
    expected = [(_json(s) + ",").encode() for s in strings]
    assert _json_strings(strings, b",") == expected
    clean = [s for s in strings if s.isascii() and s.isprintable()]
    clean = [s for s in clean if '"' not in s and "\\" not in s]
    assert _json_strings(clean) == [_json(s).encode() for s in clean]


@pytest.mark.parametrize("mode_name", ["numpy-replace", "numpy-small-blocks-mask"])
def test_many_chunks_read_back_through_fsspec_and_our_reader(tmp_path, mode_name: str) -> None:
    """Thousands of real chunks (some never written, so missing) survive the JSON file."""
    import netCDF4

    from virtualizarr import open_virtual_dataset
    from virtualizarr.testing import open_kerchunk_refs

    src = tmp_path / "many.nc"
    with netCDF4.Dataset(src, "w") as nc:
        nc.createDimension("t", 900)
        nc.createDimension("y", 12)
        a = nc.createVariable("a", "i4", ("t",), chunksizes=(1,), fill_value=-7)
        a[:] = np.arange(900)
        b = nc.createVariable("b", "f4", ("t", "y"), chunksizes=(10, 3), zlib=True)
        b[:500, :] = np.arange(6000, dtype="f4").reshape(500, 12)  # t >= 500: missing
    vds = open_virtual_dataset(src, loadable_variables=[])
    assert len(vds.a.data.manifest) == 900 and len(vds.b.data.manifest) == 200
    refs = tmp_path / "refs.json"
    with mode(mode_name):
        vds.virtualize.to_kerchunk(refs, format="json")
    with xr.open_dataset(src) as expected:
        with open_kerchunk_refs(refs) as got:
            xr.testing.assert_equal(got.load(), expected.load())
        with xr.open_dataset(refs, engine="virtualizarr") as got:
            xr.testing.assert_identical(got.load(), expected.load())
