"""Scanned kerchunk references (:mod:`~virtualizarr.readers.kerchunk.scan`) to columns.

Once the arrays' metadata is known, :func:`columnarize` turns the keys of the
``[url, offset, length]`` references into grid coordinates per array and their URLs into
path ids, with byte matrices of the document (a row per key or URL) instead of a Python
object per reference:

* a key belongs to the array whose ``name/`` it starts with (compared as one 64-bit word
  for names up to seven bytes); what follows must be ``ndim`` integers joined by the
  array's separator, inside its grid, each chunk named once (``\\/``, as ujson writes
  ``/``, is read as ``/``; any other escape leaves the document to the slow path);
* consecutive references mostly share a URL: rows equal to the previous one are skipped,
  the others hashed, and only the distinct URLs become Python strings (decoded with
  ``json`` when they hold escapes).

Whatever it cannot place exactly makes :func:`columnarize` return None, and the document
is parsed entry by entry instead, which reports the precise error.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from virtualizarr.readers.kerchunk.scan import Positions, Scan, digits, rows

__all__ = ["ColumnRefs", "columnarize"]

Int64s = npt.NDArray[np.int64]
_BYTES_PER_BLOCK = 8 << 20
"""Size of the byte matrix built at once."""


@dataclass(frozen=True, slots=True)
class ColumnRefs:
    """The ``[url, offset, length]`` references of one array, as columns.

    Attributes
    ----------
    coords : ndarray of int64, shape (n, ndim)
        Grid coordinates of each reference.
    paths : list of str
        The URLs they use.
    path_ids : ndarray of int32
        Each reference's index into ``paths``.
    offsets, lengths : ndarray of int64
    """

    coords: Int64s
    paths: list[str]
    path_ids: npt.NDArray[np.int32]
    offsets: Int64s
    lengths: Positions


def _matrix(
    a: npt.NDArray[np.uint8], first: Positions, lengths: Positions, width: int = 0
) -> npt.NDArray[np.uint8]:
    """The bytes from ``first`` (``lengths`` of them) as a zero-padded matrix (at least
    ``width`` columns). The scan has made sure no string holds a control character."""
    width = max(int(lengths.max()), width, 1)
    out = rows(a, first, width).copy()
    out *= np.arange(width) < lengths[:, None]  # zero past each end
    return out


def _unescape_slashes(
    rows_: npt.NDArray[np.uint8], lengths: Positions
) -> tuple[npt.NDArray[np.uint8], Int64s] | None:
    """Rows with ``\\/`` turned into ``/``; None for any other escape."""
    bs = rows_ == 92
    if not bs.any():
        return rows_, lengths
    following = np.zeros_like(bs)
    following[:, :-1] = rows_[:, 1:] == 47
    if (bs & ~following).any():
        return None
    keep = ~bs
    new = np.zeros_like(rows_)
    r, c = np.nonzero(keep)
    new[r, (np.cumsum(keep, axis=1) - 1)[r, c]] = rows_[r, c]
    return new, lengths - bs.sum(axis=1)


def _coordinates(
    region: npt.NDArray[np.uint8], lengths: Positions, ndim: int, sep: int
) -> Int64s | None:
    """Chunk coordinates of keys such as ``3.0.1`` (rows of bytes), or None unless every
    row is ``ndim`` integers (of at most 18 digits) joined by ``sep``."""
    n, width = region.shape
    if (lengths <= 0).any():
        return None
    inside = np.arange(width) < lengths[:, None]
    digit = (region >= 48) & (region <= 57)
    starts = digit.copy()
    starts[:, 1:] &= ~digit[:, :-1]
    # one pass for three counts: digit runs, separators, anything else
    other = ~digit & (region != sep) & inside
    weights = starts.astype(np.int32) + (region == sep).astype(np.int32) * 256
    weights += other.astype(np.int32) * 65536
    tally = weights.sum(axis=1)
    at = np.arange(n)
    if (
        (tally != ndim + ((ndim - 1) << 8)).any()
        or not digit[:, 0].all()
        or not digit[at, lengths - 1].all()
    ):
        return None
    if width > 18:
        many = np.flatnonzero(digit.sum(axis=1) > 18)
        for row in digit[many]:
            edges = np.flatnonzero(np.diff(np.concatenate([[0], row.astype(np.int8), [0]])))
            if (edges[1::2] - edges[::2]).max() > 18:
                return None
    text = np.full((n, width + 1), 32, np.uint8)  # a space ends each row
    text[:, :-1] = np.where(digit, region, np.uint8(32))
    values = np.fromstring(text.tobytes(), dtype=np.int64, sep=" ")
    if values.size != n * ndim:
        return None
    return values.reshape(n, ndim)


def _rebuilt(
    a: npt.NDArray[np.uint8],
    first: Positions,
    keys: npt.NDArray[np.uint8],
    lengths: Positions,
    skip: int,
    ndim: int,
    sep: str,
) -> Int64s | None:
    """Coordinates of keys ``prefix`` + ``i.j.k`` (no escapes), checked by rebuilding each
    key from its digit runs: its length, and a separator where each must be. None if a
    key is otherwise (the careful way, :func:`_coordinates`, then decides)."""
    n, width = keys.shape
    digit = (keys - np.uint8(48) < 10) & (np.arange(width) >= skip)
    text = np.full((n, width + 1), 32, np.uint8)  # a space ends each row
    text[:, :-1] = np.where(digit, keys, np.uint8(32))
    parsed = np.fromstring(text.tobytes(), dtype=np.int64, sep=" ")
    if parsed.size != n * ndim or (parsed < 0).any() or (parsed >= 10**18).any():
        return None
    values = parsed.reshape(n, ndim)
    widths = digits(values)
    if (lengths != skip + widths.sum(axis=1) + ndim - 1).any():
        return None
    at = first.copy()
    for k in range(ndim - 1):
        at += widths[:, k]
        if (a[at] != ord(sep)).any():
            return None
        at += 1
    return values


def _heads(keys: npt.NDArray[np.uint8]) -> npt.NDArray[np.uint64]:
    """The first eight bytes of each row as one little-endian integer."""
    head = np.zeros((len(keys), 8), np.uint8)
    head[:, : min(8, keys.shape[1])] = keys[:, :8]
    words: npt.NDArray[np.uint64] = head.view("<u8").ravel()
    return words


def _prefix_match(
    keys: npt.NDArray[np.uint8], words: npt.NDArray[np.uint64], prefix: bytes
) -> npt.NDArray[np.bool_]:
    """Rows starting with ``prefix`` (``words``: their :func:`_heads`)."""
    n = len(prefix)
    if n == 0:
        return np.ones(len(keys), bool)
    if n > keys.shape[1]:
        return np.zeros(len(keys), bool)
    if n <= 8:
        mask = np.uint64((1 << (8 * n)) - 1) if n < 8 else np.uint64(2**64 - 1)
        head_match: npt.NDArray[np.bool_] = (words & mask) == np.uint64(
            int.from_bytes(prefix, "little")
        )
        return head_match
    match: npt.NDArray[np.bool_] = (keys[:, :n] == np.frombuffer(prefix, np.uint8)).all(axis=1)
    return match


def _keys(
    a: npt.NDArray[np.uint8],
    scan: Scan,
    layouts: Mapping[str, tuple[tuple[int, ...], str]],
) -> tuple[Int64s, dict[str, Int64s]] | None:
    """Each reference's array (index into the names, longest first) and, per array, the
    grid coordinates of its references; None if a key belongs to no array or is
    malformed."""
    lengths = scan.key_end - scan.key_start - 1
    keys = _matrix(a, scan.key_start + 1, lengths)
    escaped = bool((keys == 92).any())
    unescaped = _unescape_slashes(keys, lengths)
    if unescaped is None:
        return None
    keys, lengths = unescaped
    owner = np.full(len(keys), -1, np.int64)
    coords: dict[str, Int64s] = {}
    words = _heads(keys)
    for i, name in enumerate(sorted(layouts, key=len, reverse=True)):  # "g/air" before "g"
        grid, sep = layouts[name]
        prefix = f"{name}/".encode() if name else b""
        mine = (owner < 0) & (lengths > len(prefix)) & _prefix_match(keys, words, prefix)
        if not mine.any():
            continue
        if not grid:  # a scalar's one key: left to the slow path
            return None
        at = np.flatnonzero(mine)
        got = (
            None
            if escaped
            else _rebuilt(
                a,
                scan.key_start[at] + 1 + len(prefix),
                keys[at],
                lengths[at],
                len(prefix),
                len(grid),
                sep,
            )
        )
        if got is None:  # escapes, or an unusual key: the careful way
            got = _coordinates(
                keys[at, len(prefix) :], lengths[at] - len(prefix), len(grid), ord(sep)
            )
        if got is None or (got >= np.array(grid)).any():
            return None
        owner[at] = i
        coords[name] = got
    if (owner < 0).any():
        return None
    return owner, coords


_PRIME = np.uint64(0x9E3779B97F4A7C15)


def _urls(a: npt.NDArray[np.uint8], scan: Scan) -> tuple[list[str], npt.NDArray[np.int32]] | None:
    """The distinct URLs (first-seen order) and each reference's index into them."""
    lengths = scan.url_end - scan.url_start - 1
    n = len(lengths)
    width = -(-max(int(lengths.max()), 1) // 8) * 8  # whole 64-bit words
    block = max(1, _BYTES_PER_BLOCK // width)
    run_rows: list[npt.NDArray[np.uint64]] = []
    run_of = np.empty(n, np.int64)
    runs = 0
    last_row: npt.NDArray[np.uint64] | None = None
    for lo in range(0, n, block):
        hi = min(lo + block, n)
        words = _matrix(a, scan.url_start[lo:hi] + 1, lengths[lo:hi], width).view("<u8")
        changed = np.ones(hi - lo, bool)
        changed[1:] = (words[1:] != words[:-1]).any(axis=1)
        if last_row is not None:
            changed[0] = bool((words[0] != last_row).any())
        run_of[lo:hi] = runs - 1 + np.cumsum(changed)
        runs += int(changed.sum())
        run_rows.append(words[changed])
        last_row = words[-1]
    starts = np.concatenate(run_rows)  # one row per run of equal URLs
    hashes = np.zeros(len(starts), np.uint64)
    with np.errstate(over="ignore"):
        for w in starts.T:
            hashes = hashes * _PRIME + w
    _, first, which = np.unique(hashes, return_index=True, return_inverse=True)
    if not (starts == starts[first[which]]).all():
        return None  # a hash collision: the slow path
    order = np.argsort(first, kind="stable")  # first-seen order
    rank = np.empty(len(first), np.int64)
    rank[order] = np.arange(len(first))
    decoded: dict[str, int] = {}
    remap = np.empty(len(first), np.int32)
    try:
        for k in order.tolist():
            text = starts[first[k]].tobytes().rstrip(b"\0")
            url = json.loads(b'"' + text + b'"') if b"\\" in text else text.decode()
            remap[rank[k]] = decoded.setdefault(url, len(decoded))
    except (ValueError, UnicodeDecodeError):
        return None
    return list(decoded), remap[rank[which]][run_of]


def _taken(flat: Int64s, grid: tuple[int, ...]) -> Any:
    """A test of whether a flat cell index is among ``flat``; None if ``flat`` repeats one."""
    cells = int(np.prod(grid, dtype=np.int64))
    if cells <= 4 * len(flat) + (1 << 22):
        seen = np.zeros(cells, bool)
        seen[flat] = True
        if int(np.count_nonzero(seen)) != len(flat):
            return None
        return lambda f: bool(seen[f])
    if len(np.unique(flat)) != len(flat):
        return None
    return set(flat.tolist()).__contains__


def columnarize(
    raw: bytes,
    scan: Scan,
    layouts: Mapping[str, tuple[tuple[int, ...], str]],
    others: Mapping[str, Mapping[str, Any]],
) -> dict[str, ColumnRefs] | None:
    """The scanned ``[url, offset, length]`` references as columns, per array.

    Parameters
    ----------
    raw : bytes
        The document.
    scan : Scan
    layouts : mapping
        Per array (its path, ``""`` for a root array): its chunk grid's shape and its
        chunk keys' separator.
    others : mapping
        Per array, its other chunk entries (inline chunks, ``[url]``), by key suffix:
        none may name a chunk a reference here names.

    Returns
    -------
    dict of str to ColumnRefs, or None
        None if a key belongs to no array, is malformed, lies outside its grid, or names
        a chunk twice; the document is then better parsed entry by entry.
    """
    if not len(scan.key_start):
        return {}
    a = np.frombuffer(raw, np.uint8)
    keys = _keys(a, scan, layouts)
    urls = _urls(a, scan)
    if keys is None or urls is None:
        return None
    owner, coords = keys
    table, ids = urls
    out: dict[str, ColumnRefs] = {}
    for i, name in enumerate(sorted(layouts, key=len, reverse=True)):
        if name not in coords:
            continue
        grid, sep = layouts[name]
        at = np.flatnonzero(owner == i)
        flat = np.ravel_multi_index(tuple(coords[name].T), grid)
        taken = _taken(flat, grid)
        if taken is None:
            return None  # a duplicate key: JSON keeps the last; let the slow path do so
        for tail in others.get(name, {}):
            try:
                c = tuple(int(x) for x in tail.split(sep))
            except ValueError:
                continue  # malformed: the per-entry reader reports it
            inside = len(c) == len(grid) and all(0 <= x < g for x, g in zip(c, grid, strict=True))
            if inside and taken(int(np.ravel_multi_index(c, grid))):
                return None
        mine = ids[at]
        used = np.flatnonzero(np.bincount(mine, minlength=len(table)))
        local = np.zeros(len(table), np.int32)
        local[used] = np.arange(len(used), dtype=np.int32)
        out[name] = ColumnRefs(
            coords[name],
            [table[u] for u in used.tolist()],
            local[mine],
            scan.offsets[at],
            scan.lengths[at],
        )
    return out
