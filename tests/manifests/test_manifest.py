"""ChunkManifest: construction, dict round trips, table merging, selection."""

from __future__ import annotations

import pickle
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virtualizarr.errors import InvalidReferencesError
from virtualizarr.manifests import MISSING, ChunkManifest
from virtualizarr.manifests.concat import concatenate_manifests, stack_manifests


def entries(n: int, path: str = "file:///a.nc") -> dict:
    return {str(i): {"path": path, "offset": 100 * i, "length": 10 + i} for i in range(n)}


def test_from_dict_round_trip():
    d = {
        "0.0": {"path": "file:///a.nc", "offset": 0, "length": 5},
        "0.1": {"path": "file:///b.nc", "offset": 5, "length": 6},
        "1.1": {"path": "file:///a.nc", "offset": 11, "length": 7},
    }
    m = ChunkManifest.from_dict(d)
    assert m.shape_chunk_grid == (2, 2)
    assert len(m) == 3
    assert m.to_dict() == d
    assert m.get_chunk((1, 0)) is None
    assert m.path_ids[1, 0] == MISSING
    assert sorted(m.paths) == ["file:///a.nc", "file:///b.nc"]


def test_from_dict_explicit_shape_keeps_trailing_missing_chunks():
    m = ChunkManifest.from_dict(entries(2), shape=(5,))
    assert m.shape_chunk_grid == (5,)
    assert len(m) == 2


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"a.b": {"path": "x", "offset": 0, "length": 1}}, "dot-separated integers"),
        ({"0": {"path": "x", "offset": 0}}, "each chunk entry must be"),
        ({"0": {"path": "x", "offset": -1, "length": 1}}, "each chunk entry must be"),
        (
            {
                "0": {"path": "x", "offset": 0, "length": 1},
                "0.0": {"path": "x", "offset": 0, "length": 1},
            },
            "same number of indices",
        ),
    ],
)
def test_from_dict_rejects_malformed_entries(bad, match):
    with pytest.raises(InvalidReferencesError, match=match):
        ChunkManifest.from_dict(bad)


def test_constructor_validates_shapes_and_ids():
    with pytest.raises(InvalidReferencesError, match="same shape"):
        ChunkManifest(["p"], np.zeros(2), np.zeros(3), np.zeros(2))
    with pytest.raises(InvalidReferencesError, match="path ids must lie"):
        ChunkManifest(["p"], [1], [0], [1])


def test_missing_and_inline_chunks_have_zero_offsets():
    m = ChunkManifest.inlined(np.array([b"abc", None, b"de"], dtype=object))
    assert m.get_chunk((0,)) == b"abc"
    assert m.get_chunk((1,)) is None
    assert m.get_chunk((2,)) == b"de"
    assert m.to_dict() == {}  # inline chunks are not byte-range references
    assert m.offsets.tolist() == [0, 0, 0]


def test_concatenate_merges_path_tables_and_inline_tables():
    a = ChunkManifest.from_dict(entries(2, "file:///a.nc"))
    b = ChunkManifest.from_dict(entries(3, "file:///b.nc"))
    c = ChunkManifest.inlined(np.array([b"x", None], dtype=object))
    d = ChunkManifest.from_dict(entries(1, "file:///a.nc"))
    out = concatenate_manifests([a, c, b, c, d], axis=0)
    assert out.shape_chunk_grid == (10,)
    assert out.paths == ("file:///a.nc", "file:///b.nc")
    assert out.get_chunk((2,)) == b"x"
    assert out.get_chunk((3,)) is None
    assert out.get_chunk((4,)) == {"path": "file:///b.nc", "offset": 0, "length": 10}
    assert out.get_chunk((7,)) == b"x"
    assert out.get_chunk((9,)) == {"path": "file:///a.nc", "offset": 0, "length": 10}


def test_stack_adds_a_grid_axis():
    a = ChunkManifest.from_dict(entries(3))
    out = stack_manifests([a, a], axis=0)
    assert out.shape_chunk_grid == (2, 3)
    assert out.equals(concatenate_manifests([a.reshape((1, 3)), a.reshape((1, 3))], axis=0))


def test_equals_compares_resolved_paths_not_ids():
    a = ChunkManifest(["file:///x", "file:///y"], [0, 1], [1, 2], [3, 4])
    b = ChunkManifest(["file:///y", "file:///x"], [1, 0], [1, 2], [3, 4])
    assert a.equals(b)
    assert not a.equals(ChunkManifest(["file:///x", "file:///y"], [0, 0], [1, 2], [3, 4]))
    assert not a.equals("not a manifest")


def test_rename_paths_callable_mapping_and_merge():
    m = ChunkManifest(["file:///d/a.nc", "file:///d/b.nc"], [0, 1, 0], [0, 1, 2], [1, 1, 1])
    moved = m.rename_paths(lambda p: p.replace("file:///d", "s3://bucket"))
    assert moved.paths == ("s3://bucket/a.nc", "s3://bucket/b.nc")
    mapped = m.rename_paths({"file:///d/a.nc": "file:///e/a.nc"})
    assert mapped.paths == ("file:///e/a.nc", "file:///d/b.nc")
    merged = m.rename_paths(lambda p: "file:///one.nc")
    assert merged.paths == ("file:///one.nc",)
    assert merged.path_ids.tolist() == [0, 0, 0]
    assert merged.offsets.tolist() == [0, 1, 2]


def test_getitem_and_broadcast():
    m = ChunkManifest.from_dict(entries(4))
    assert m[(slice(1, 3),)].to_dict() == {
        "0": {"path": "file:///a.nc", "offset": 100, "length": 11},
        "1": {"path": "file:///a.nc", "offset": 200, "length": 12},
    }
    one = ChunkManifest.single("file:///a.nc", 8, 16, ndim=2)
    assert one.broadcast_to((3, 1)).shape_chunk_grid == (3, 1)
    assert len(one.broadcast_to((3, 1))) == 3


def test_referenced_paths_are_the_ones_chunks_still_use():
    m = ChunkManifest.from_arrays(
        np.array(["file:///b.nc", "", "file:///a.nc", "file:///b.nc"]), [1, 0, 2, 3], [4, 0, 5, 6]
    )
    assert set(m.referenced_paths()) == {"file:///a.nc", "file:///b.nc"}
    first = m[(slice(0, 2),)]
    assert set(first.paths) >= {"file:///b.nc"}
    assert first.referenced_paths() == ("file:///b.nc",)  # a.nc may stay in the table
    assert m[(slice(1, 2),)].referenced_paths() == ()
    assert ChunkManifest.empty((3,)).referenced_paths() == ()


def test_memory_per_reference_is_at_most_20_bytes_plus_tables():
    n = 100_000
    m = ChunkManifest(["file:///a.nc"], np.zeros(n, np.int32), np.arange(n), np.ones(n))
    # offsets and lengths are uint64; one path needs only an int8 id
    assert m.offsets.nbytes + m.lengths.nbytes == 16 * n
    assert m.nbytes < 17 * n + 200
    assert m.path_ids.dtype == np.int32  # the public view is widened
    wide = ChunkManifest(
        [f"file:///{i}" for i in range(40_000)], np.arange(n) % 40_000, np.zeros(n), np.ones(n)
    )
    assert wide.nbytes - sum(len(p) + 49 for p in wide.paths) == 20 * n  # int32 ids


@pytest.mark.parametrize(
    ("n_paths", "n_inline", "itemsize"),
    [(0, 0, 1), (128, 0, 1), (129, 0, 2), (1, 127, 1), (1, 128, 2), (32_768, 0, 2), (32_769, 0, 4)],
)
def test_path_ids_use_the_narrowest_type_that_holds_the_tables(n_paths, n_inline, itemsize):
    paths = [f"file:///p{i}" for i in range(n_paths)]
    inline = [b"%d" % i for i in range(n_inline)]
    lowest, highest = -1 - n_inline, n_paths - 1
    ids = np.array([lowest, highest, MISSING], np.int64)
    m = ChunkManifest(paths, ids, [1, 2, 3], [4, 5, 6], inline)
    assert (
        m.nbytes - 16 * 3 - sum(len(p) + 49 for p in paths) - sum(len(b) + 33 for b in inline)
        == 3 * itemsize
    )
    assert m.path_ids.tolist() == [lowest, highest, MISSING]
    expected_first = inline[-1] if n_inline else None
    assert m.get_chunk((0,)) == expected_first
    if n_paths:
        assert m.get_chunk((1,)) == {"path": paths[-1], "offset": 2, "length": 5}


def test_concatenation_widens_ids_when_the_merged_table_outgrows_int8():
    parts = [ChunkManifest([f"file:///f{i}.nc"], [0, MISSING], [i, 0], [1, 0]) for i in range(300)]
    for axis_parts in (parts[:100], parts):  # the per-manifest and the vectorised branch
        out = concatenate_manifests(axis_parts, axis=0)
        assert len(out.paths) == len(axis_parts)
        assert [out.get_chunk((2 * i,)) for i in range(len(axis_parts))] == [
            {"path": f"file:///f{i}.nc", "offset": i, "length": 1} for i in range(len(axis_parts))
        ]
        assert all(out.get_chunk((2 * i + 1,)) is None for i in range(len(axis_parts)))


def test_ids_beyond_int32_are_refused_not_wrapped():
    with pytest.raises(InvalidReferencesError, match="path ids must lie"):
        ChunkManifest(["file:///a.nc"], np.array([2**32], np.int64), [0], [1])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.lists(
            st.tuples(st.integers(0, 3), st.integers(0, 2**40), st.integers(0, 2**20)),
            min_size=0,
            max_size=6,
        ),
        min_size=1,
        max_size=5,
    )
)
def test_concatenate_agrees_with_per_chunk_model(parts):
    """Concatenation equals concatenating the per-chunk lists (path, offset, length)."""
    manifests = []
    model: list = []
    for part in parts:
        paths = [f"file:///p{pid}" if pid < 3 else "" for pid, _, _ in part]
        offs = [o for _, o, _ in part]
        lens = [n for _, _, n in part]
        manifests.append(ChunkManifest.from_arrays(np.array(paths, dtype=str), offs, lens))
        model.extend(
            None if p == "" else {"path": p, "offset": o, "length": n}
            for p, o, n in zip(paths, offs, lens, strict=True)
        )
    out = concatenate_manifests(manifests, axis=0)
    assert [out.get_chunk((i,)) for i in range(len(model))] == model
    assert len(set(out.paths)) == len(out.paths)


def test_zero_dimensional_grid():
    m = ChunkManifest(["file:///a.nc"], np.int32(0), np.uint64(8), np.uint64(4))
    assert m.shape_chunk_grid == ()
    assert list(m.iter_keys()) == [("0", ())]
    assert m.to_dict() == {"0": {"path": "file:///a.nc", "offset": 8, "length": 4}}
    empty = ChunkManifest([], np.int32(MISSING), np.uint64(0), np.uint64(0))
    assert list(empty.iter_keys()) == []


def test_fill_missing_shares_one_inline_chunk():
    m = ChunkManifest.from_dict(entries(2), shape=(4,))
    filled = m.fill_missing(b"fill")
    assert [filled.get_chunk((i,)) for i in (2, 3)] == [b"fill", b"fill"]
    assert filled.inline == (b"fill",)
    assert filled.get_chunk((0,)) == m.get_chunk((0,))
    assert m.fill_missing(b"x").fill_missing(b"y").inline == (b"x",)


def test_vectorised_and_per_manifest_concatenation_agree(monkeypatch):
    import virtualizarr.manifests.columns as mm

    rng = np.random.default_rng(0)
    parts = []
    for i in range(80):
        n = int(rng.integers(0, 4))
        kinds = rng.integers(0, 3, n)  # 0 missing, 1 reference, 2 inline
        chunks = np.array(
            [
                None if k == 0 else (f"file:///p{rng.integers(0, 5)}" if k == 1 else b"i%d" % i)
                for k in kinds
            ],
            dtype=object,
        )
        ids = np.full(n, MISSING, np.int32)
        paths = sorted({c for c in chunks if isinstance(c, str)})
        inline = [c for c in chunks if isinstance(c, bytes)]
        for j, c in enumerate(chunks):
            if isinstance(c, str):
                ids[j] = paths.index(c)
            elif isinstance(c, bytes):
                ids[j] = -2 - inline.index(c)
        parts.append(ChunkManifest(paths, ids, np.arange(n) + i, np.full(n, 7), inline))
    vectorised = concatenate_manifests(parts, axis=0)
    monkeypatch.setattr(mm, "_VECTORISE_ABOVE", 10**9)
    looped = concatenate_manifests(parts, axis=0)
    assert vectorised.paths == looped.paths and vectorised.inline == looped.inline
    np.testing.assert_array_equal(vectorised.path_ids, looped.path_ids)
    total = sum(p.shape_chunk_grid[0] for p in parts)
    expected = [p.get_chunk((j,)) for p in parts for j in range(p.shape_chunk_grid[0])]
    assert [vectorised.get_chunk((k,)) for k in range(total)] == expected


# ---------------------------------------------------------------------- lazy manifests
def lazy_copy(m: ChunkManifest, calls: list[int] | None = None) -> ChunkManifest:
    """The same manifest, its columns given by a loader (counting its calls)."""

    def loader() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if calls is not None:
            calls.append(1)
        return m.path_ids, m.offsets, m.lengths

    return ChunkManifest.lazy(
        m.paths, m.shape_chunk_grid, loader, inline=m.inline, sources=m.sources, present=len(m)
    )


def grid_manifest() -> ChunkManifest:
    ids = np.array([[0, 1, MISSING], [-2, 0, 1]], np.int32)
    return ChunkManifest(
        ["file:///a.nc", "file:///b.nc"],
        ids,
        np.arange(6).reshape(2, 3) * 10,
        np.full((2, 3), 4),
        [b"inline"],
        ['{"size":1}', None],
    )


def test_a_lazy_manifest_answers_table_questions_without_loading():
    calls: list[int] = []
    m = lazy_copy(eager := grid_manifest(), calls)
    assert not m.loaded
    assert m.paths == eager.paths and m.sources == eager.sources and m.inline == eager.inline
    assert m.shape_chunk_grid == (2, 3) and m.ndim_chunk_grid == 2
    assert len(m) == 5 and m.nbytes == eager.nbytes
    assert "present=5" in repr(m)
    renamed = m.rename_paths(lambda p: p.replace("file:///", "s3://bucket/"))
    recorded = renamed.with_sources({"s3://bucket/b.nc": '{"size":2}'})
    sliced = recorded[(slice(1, 2), slice(0, 2))].reshape((2,))
    assert calls == [] and not sliced.loaded
    assert sliced.paths == ("s3://bucket/a.nc", "s3://bucket/b.nc")
    assert sliced.sources == ('{"size":1}', '{"size":2}')
    assert sliced.get_chunk((0,)) == b"inline"
    assert sliced.get_chunk((1,)) == {"path": "s3://bucket/a.nc", "offset": 40, "length": 4}
    assert calls == [1] and m.loaded and renamed.loaded  # one load serves them all
    assert m.equals(eager) and m.to_dict() == eager.to_dict()


def test_lazy_manifests_concatenate_broadcast_and_merge_paths_like_eager_ones():
    eager = grid_manifest()
    lazy = lazy_copy(eager)
    both = concatenate_manifests([lazy, lazy_copy(eager)], axis=1)
    assert both.equals(concatenate_manifests([eager, eager], axis=1))
    one = ChunkManifest.single("file:///a.nc", 8, 16, ndim=2)
    assert lazy_copy(one).broadcast_to((3, 1)).equals(one.broadcast_to((3, 1)))
    merged = lazy_copy(eager).rename_paths(lambda p: "file:///one.nc")
    assert not merged.loaded and merged.paths == ("file:///one.nc",)
    assert merged.equals(eager.rename_paths(lambda p: "file:///one.nc"))
    assert merged.sources == ('{"size":1}',)
    assert lazy_copy(eager).fill_missing(b"f").equals(eager.fill_missing(b"f"))
    with pytest.raises(ValueError, match="cannot reshape"):
        lazy_copy(eager).reshape((4,))


def test_a_lazy_manifest_checks_what_its_loader_gives():
    ok = (np.array([0, MISSING]), np.array([1, 0]), np.array([2, 0]))
    grid = ChunkManifest.lazy(["file:///a.nc"], (3,), lambda: ok)
    with pytest.raises(InvalidReferencesError, match=r"columns have the shape \(2,\); expected"):
        grid.get_chunk((0,))
    count = ChunkManifest.lazy(["file:///a.nc"], (2,), lambda: ok, present=2)
    assert len(count) == 2  # as recorded, until loaded
    with pytest.raises(InvalidReferencesError, match="holds 1 chunks; its metadata records 2"):
        count.path_ids  # noqa: B018
    ids = ChunkManifest.lazy(["file:///a.nc"], (2,), lambda: (np.array([0, 3]), *ok[1:]))
    with pytest.raises(InvalidReferencesError, match="path ids must lie"):
        ids.offsets  # noqa: B018


def test_a_failed_load_is_retried_and_a_load_happens_once_across_threads():
    attempts: list[int] = []
    gate = threading.Event()

    def loader() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("flaky")
        gate.wait(5)
        return np.zeros(4, np.int8), np.arange(4), np.ones(4)

    m = ChunkManifest.lazy(["file:///a.nc"], (4,), loader)
    with pytest.raises(OSError, match="flaky"):
        len(m)
    with ThreadPoolExecutor(8) as pool:
        futures = [pool.submit(lambda: m.offsets.tolist()) for _ in range(8)]
        gate.set()
        assert all(f.result() == [0, 1, 2, 3] for f in futures)
    assert len(attempts) == 2


def test_a_lazy_manifest_pickles_loaded():
    m = lazy_copy(grid_manifest())
    back = pickle.loads(pickle.dumps(m))
    assert back.loaded and back.equals(grid_manifest()) and back.sources == m.sources


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.integers(-3, 2), min_size=1, max_size=12),
    st.integers(0, 11),
    st.integers(0, 12),
)
def test_lazy_and_eager_slicing_agree(ids, start, stop):
    paths = ["file:///p0", "file:///p1", "file:///p2"]
    inline = [b"i0", b"i1"]
    m = ChunkManifest(paths, np.array(ids), np.arange(len(ids)), np.full(len(ids), 3), inline)
    key = (slice(start, stop),)
    assert lazy_copy(m)[key].equals(m[key])
    assert [lazy_copy(m)[key].get_chunk((i,)) for i in range(len(m[key].path_ids))] == [
        m[key].get_chunk((i,)) for i in range(len(m[key].path_ids))
    ]
