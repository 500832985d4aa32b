"""Bulk parsing of chunk references for the reference readers (kerchunk, manifest store).

A reference document lists one entry per chunk; walking tens of thousands of them in
Python dominates opening. These helpers parse the common, well-formed case with a few
C-level passes and return None for anything unusual, so that the caller falls back to
its per-entry walk (which produces the precise error messages).
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import repeat

import numpy as np
import numpy.typing as npt

__all__ = ["parse_chunk_keys", "parse_ints"]


def parse_chunk_keys(
    keys: Sequence[str], separator: str, grid: tuple[int, ...], prefix: str = ""
) -> npt.NDArray[np.int64] | None:
    """Grid coordinates of chunk keys such as ``"3.0.1"`` (or ``"c/3/0/1"``), or None.

    Parameters
    ----------
    keys : sequence of str
    separator : str
        Between the indices of a key.
    grid : tuple of int
        The chunk grid's shape; every key must have ``len(grid)`` indices inside it.
    prefix : str, optional
        A prefix every key must carry (``"c/"`` for Zarr v3's default encoding).

    Returns
    -------
    ndarray of int64, shape (len(keys), len(grid)), or None
        None if a key is malformed or outside the grid.
    """
    ndim, n = len(grid), len(keys)
    if not ndim or not n or separator.isdigit() or not separator:
        return None
    if prefix:
        if not all(map(str.startswith, keys, repeat(prefix))):
            return None
        keys = [k[len(prefix) :] for k in keys]
    joined = separator.join(keys)
    if not (joined.isascii() and joined.replace(separator, "").isdigit()):
        return None
    if set(map(str.count, keys, repeat(separator))) != {ndim - 1}:
        return None
    try:
        flat = np.fromstring(joined.replace(separator, " "), dtype=np.int64, sep=" ")
    except ValueError:
        return None
    if flat.size != ndim * n:
        return None
    coords = flat.reshape(n, ndim)
    if (coords >= np.array(grid)).any():
        return None
    return coords


def parse_ints(values: Sequence[object]) -> npt.NDArray[np.int64] | None:
    """Non-negative integers (offsets, lengths) as an array, or None if any is not one."""
    if set(map(type, values)) != {int}:
        return None
    try:
        arr = np.array(values, dtype=np.int64)
    except OverflowError:
        return None
    if arr.size and arr.min() < 0:
        return None
    return arr
