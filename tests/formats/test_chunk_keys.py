"""Bulk parsing of chunk references: the well-formed case parses, anything else gives None."""

from __future__ import annotations

import numpy as np
import pytest

from virtualizarr.formats.chunk_keys import parse_chunk_keys, parse_ints


def test_parse_chunk_keys() -> None:
    got = parse_chunk_keys(["0.1.2", "3.0.0"], ".", (4, 2, 3))
    assert got is not None
    np.testing.assert_array_equal(got, [[0, 1, 2], [3, 0, 0]])
    got = parse_chunk_keys(["c/1/0", "c/0/1"], "/", (2, 2), prefix="c/")
    assert got is not None
    np.testing.assert_array_equal(got, [[1, 0], [0, 1]])


@pytest.mark.parametrize(
    ("keys", "sep", "grid", "prefix"),
    [
        (["0.0", "0.0.0.0"], ".", (2, 2, 2), ""),  # right total, wrong per key
        (["0..0", "0 1.0.0"], ".", (2, 2, 2), ""),
        (["-1.0"], ".", (2, 2), ""),
        (["+1.0"], ".", (2, 2), ""),
        (["2.0"], ".", (2, 2), ""),  # outside the grid
        (["a.0"], ".", (2, 2), ""),
        (["1/0"], "/", (2, 2), "c/"),  # missing prefix
        (["0"], ".", (), ""),
        ([], ".", (2,), ""),
        (["٣.0"], ".", (5, 2), ""),  # a non-ASCII digit
    ],
)
def test_parse_chunk_keys_refuses(
    keys: list[str], sep: str, grid: tuple[int, ...], prefix: str
) -> None:
    assert parse_chunk_keys(keys, sep, grid, prefix) is None


def test_parse_ints() -> None:
    got = parse_ints([0, 5, 2**40])
    assert got is not None and got.tolist() == [0, 5, 2**40]
    for bad in ([1, -1], [1, 2.0], [True], [1, "2"], [2**64], []):
        assert parse_ints(bad) is None, bad
