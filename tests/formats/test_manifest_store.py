"""The manifest-store format's pure parts: binary manifest columns, records, transformers."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virtualizarr.formats.manifest_store import (
    BINARY_TRANSFORMER,
    PATH_ID_TYPES,
    binary_transformer,
    columns_size,
    crc32,
    decode_columns,
    encode_columns,
    extension,
    transformer,
)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.integers(1, 4), min_size=0, max_size=3),
    st.integers(0, 40_000),
    st.randoms(use_true_random=False),
)
def test_columns_round_trip(grid: list[int], n_paths: int, rnd) -> None:
    """Ids below -1 (inline chunks: chunk files in the store) are written as -1."""
    shape = tuple(grid)
    cells = int(np.prod(shape, dtype=np.int64))
    ids = np.array([rnd.randint(-3, n_paths - 1) for _ in range(cells)], np.int32).reshape(shape)
    offs = np.array([rnd.randint(0, 2**63) for _ in range(cells)], np.uint64).reshape(shape)
    lens = np.array([rnd.randint(0, 2**40) for _ in range(cells)], np.uint64).reshape(shape)
    data, kind, refs = encode_columns(ids, offs, lens, n_paths)
    assert len(data) == columns_size(cells, kind)
    assert np.iinfo(PATH_ID_TYPES[kind]).max >= n_paths - 1
    assert refs == int(np.count_nonzero(ids >= 0))
    back_ids, back_offs, back_lens = decode_columns(data, shape, kind)
    ref = ids >= 0
    np.testing.assert_array_equal(back_ids, np.where(ref, ids, -1))
    np.testing.assert_array_equal(back_offs, np.where(ref, offs, 0))
    np.testing.assert_array_equal(back_lens, np.where(ref, lens, 0))
    assert back_offs.dtype == np.uint64 and back_ids.shape == shape


def test_the_layout_is_offsets_lengths_ids_little_endian() -> None:
    ids = np.array([0, -1, 1])
    offs = np.array([1, 2, 3], np.uint64)
    lens = np.array([4, 5, 6], np.uint64)
    data, kind, refs = encode_columns(ids, offs, lens, 2)
    assert (kind, refs) == ("int8", 2)
    expected = (
        np.array([1, 0, 3], "<u8").tobytes()
        + np.array([4, 0, 6], "<u8").tobytes()
        + np.array([0, -1, 1], "<i1").tobytes()
    )
    assert data == expected
    assert crc32(data) == zlib.crc32(expected)


@pytest.mark.parametrize(
    ("n_paths", "kind"), [(0, "int8"), (128, "int8"), (129, "int16"), (40_000, "int32")]
)
def test_the_narrowest_id_type(n_paths: int, kind: str) -> None:
    assert (
        encode_columns(
            np.zeros(1, np.int32), np.zeros(1, np.uint64), np.zeros(1, np.uint64), n_paths
        )[1]
        == kind
    )


def test_a_file_of_the_wrong_size_is_refused() -> None:
    data, kind, _ = encode_columns(
        np.zeros((2, 2), np.int32), np.zeros((2, 2), np.uint64), np.zeros((2, 2), np.uint64), 1
    )
    with pytest.raises(ValueError, match="needs 68"):
        decode_columns(data[:-1], (2, 2), kind)
    with pytest.raises(ValueError, match=r"grid of \(2, 3\) needs 102"):
        decode_columns(data, (2, 3), kind)


def test_records_and_transformers() -> None:
    ext = extension({"scale_factor": np.float32(0.5)}, chunk_files={})
    assert ext == {
        "must_understand": True,
        "chunk_files": {},
        "attribute_dtypes": {"scale_factor": "<f4"},
    }
    assert transformer() == {
        "name": "chunk-manifest-json",
        "configuration": {"manifest": "./manifest.json"},
    }
    assert binary_transformer("int16", 3, 7) == {
        "name": BINARY_TRANSFORMER,
        "configuration": {
            "paths": "./manifest.paths.json",
            "columns": "./manifest.bin",
            "path_id_type": "int16",
            "references": 3,
            "crc32": 7,
        },
    }
