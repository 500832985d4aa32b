"""Chunk references as JSON text, formatted a block of references at a time with NumPy.

Writing millions of ``"name/i.j":["path",offset,length]`` entries one by one in Python
costs about a microsecond each. Here a block of entries becomes one ``uint8`` matrix, a
row per entry and a fixed column range per field:

* constant text (``,"name/``, ``.0``, ``":[``, ``,``, ``]``) is written once, in a
  template row that is broadcast down the matrix;
* integers (chunk indices, offsets, lengths) are right-aligned ASCII decimals, eight
  digits at a time per 64-bit word (:func:`digit_matrix`), with NUL bytes before them;
* table entries (JSON strings of paths, or of inline chunks) are escaped once per table
  entry, left-aligned and NUL-padded, and gathered by each row's table index (a block
  whose rows all use one entry puts it in the template instead).

JSON text never contains a NUL byte (control characters are escaped), so the block's
text is the matrix with its NUL bytes dropped.

Small inputs are formatted in plain Python instead, where NumPy's cost per call would
dominate. Both give the same bytes. Everything here is pure: bytes and arrays in, bytes
out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = ["digit_matrix", "format_entries"]

_BLOCK_BYTES = 1 << 21
"""Size of the matrix formatted at once (small enough to stay in cache)."""

_SMALL = 256
"""Fewer entries than this are formatted in Python."""

_MAX_TABLE_WIDTH = 4096
"""Widest table entry put in the matrix (rows that wide are mostly copying anyway)."""

_MAX_TABLE_PADDING = 256
"""Largest difference in length between table entries (padding to drop in every row)."""

_REPLACE_MAX_NUL = 3
"""Most NUL bytes per row for which ``bytes.replace`` drops them faster than a mask."""

_U64 = np.uint64
_ASCII_ZEROS = _U64(0x3030303030303030)
_LAST_ZERO = _U64(0x30 << 56)
_E8 = _U64(10**8)

# A row is a sequence of parts: constant text, or one of these field markers (an int is
# an axis of the chunk grid, whose chunk index is printed).
_TABLE, _OFFSET, _LENGTH = "table", "offset", "length"
_Part = bytes | int | str


def _swar8(x: npt.NDArray[np.uint64]) -> npt.NDArray[np.uint64]:
    """The 8 decimal digits of each ``x < 10**8`` as byte values 0-9, first digit lowest.

    SIMD within a register: split into two 4-digit halves (32-bit lanes), each into two
    2-digit quarters (16-bit lanes), each into two digits (8-bit lanes); the
    multiply-shifts divide exactly in those ranges and never carry across lanes.
    """
    a = x // _U64(10_000)
    v = a | ((x - a * _U64(10_000)) << _U64(32))
    q = ((v * _U64(10486)) >> _U64(20)) & _U64(0x0000007F0000007F)
    v = q | ((v - q * _U64(100)) << _U64(16))
    q = ((v * _U64(103)) >> _U64(10)) & _U64(0x000F000F000F000F)
    out: npt.NDArray[np.uint64] = q | ((v - q * _U64(10)) << _U64(8))
    return out


def digit_matrix(x: npt.NDArray[Any], width: int) -> npt.NDArray[np.uint8]:
    """ASCII decimals of the unsigned integers ``x``, right-aligned in ``width`` columns.

    Columns left of a number's first digit hold NUL. No value may have more than
    ``width`` digits (at most 20: any uint64).
    """
    x = x.astype(np.uint64, copy=False)
    k = -(-width // 8)  # words of 8 digits
    parts = []  # least significant first
    for _ in range(k - 1):
        q = x // _E8
        parts.append(x - q * _E8)
        x = q
    parts.append(x)
    words = np.empty((len(x), k), dtype="<u8")  # little-endian: first digit first
    higher: npt.NDArray[np.bool_] | None = None  # has a more significant word a digit?
    for j, p in enumerate(reversed(parts)):
        v = _swar8(p)
        # bytes below the lowest nonzero digit are leading zeros and stay NUL; the others
        # become ASCII, and so does the last digit of the number (for 0 itself)
        low = v & (~v + _U64(1))
        add = _ASCII_ZEROS & ~(low - _U64(1))
        if higher is not None:
            add |= _ASCII_ZEROS * higher
        if j == k - 1:
            add |= _LAST_ZERO
        words[:, j] = v | add
        nonzero = p != 0
        higher = nonzero if higher is None else higher | nonzero
    return words.view(np.uint8)[:, 8 * k - width :]


def _width(values: npt.NDArray[Any]) -> int:
    """Digits of the largest of ``values`` (non-negative integers)."""
    return len(str(int(values.max())))


def _table_matrix(entries: Sequence[bytes]) -> npt.NDArray[np.uint8]:
    """Entries left-aligned in the rows of a NUL-padded ``uint8`` matrix."""
    width = max(1, max(len(e) for e in entries))
    return np.array(entries, dtype=f"S{width}").view(np.uint8).reshape(len(entries), width)


def _drop_nul(m: npt.NDArray[np.uint8]) -> bytes:
    """The bytes of ``m`` (C order) without its NUL bytes."""
    nul = m.size - np.count_nonzero(m)
    if nul <= _REPLACE_MAX_NUL * len(m):  # few gaps: memchr and memcpy between them
        return m.tobytes().replace(b"\x00", b"")
    kept: bytes = m[m != 0].tobytes()
    return kept


def _assemble(n: int, segments: list[Any]) -> bytes:
    """The text of ``n`` rows laid out by ``segments``, NUL bytes dropped.

    A segment is constant text (bytes), ``(values, width)`` for an integer column, or
    ``(ids, table_matrix)`` for a table column.
    """
    template = bytearray()
    fields: list[tuple[int, npt.NDArray[np.uint8]]] = []
    for seg in segments:
        if isinstance(seg, bytes):
            template += seg
            continue
        a, b = seg
        if isinstance(b, int):
            block = digit_matrix(a, b)
        elif int(a.min()) == int(a.max()):  # one table entry for the whole block
            template += b[int(a[0])].tobytes().rstrip(b"\x00")
            continue
        else:
            block = b[a]
        fields.append((len(template), block))
        template += bytes(block.shape[1])
    m = np.empty((n, len(template)), np.uint8)
    m[...] = np.frombuffer(template, np.uint8)
    for col, block in fields:
        m[:, col : col + block.shape[1]] = block
    return _drop_nul(m)


def _row_parts(head: bytes, grid: tuple[int, ...], refs: bool) -> list[_Part]:
    """The parts of a row: the key (chunk indices of axes one chunk long are constant)."""
    parts: list[_Part] = []
    text = head
    for ax, size in enumerate(grid):
        if ax:
            text += b"."
        if size == 1:
            text += b"0"
        else:
            parts += [text, ax] if text else [ax]
            text = b""
    if refs:
        return [*parts, text + b'":[', _TABLE, _OFFSET, b",", _LENGTH, b"]"]
    return [*parts, text + b'":', _TABLE]


def _coords(
    flat: npt.NDArray[np.intp], grid: tuple[int, ...], axes: list[int]
) -> dict[int, npt.NDArray[np.intp]]:
    """Chunk indices along ``axes`` (those longer than one chunk) of C-order positions."""
    if len(axes) <= 1:  # every other axis is one chunk long: the position is the index
        return {ax: flat for ax in axes}
    return {ax: c for ax, c in enumerate(np.unravel_index(flat, grid)) if ax in axes}


def format_entries(
    key_prefix: bytes,
    grid: tuple[int, ...],
    flat: npt.NDArray[np.intp],
    table: Sequence[bytes],
    table_ids: npt.NDArray[Any],
    byte_ranges: tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]] | None = None,
) -> Iterator[bytes]:
    """Yield ``,"<prefix>i.j":<value>`` for the chunks at C-order positions ``flat``.

    Parameters
    ----------
    key_prefix : bytes
        JSON-escaped text that starts every key, without the opening quote
        (``b"name/"``).
    grid : tuple of int
        Shape of the chunk grid (``()`` means one chunk, keyed ``0``).
    flat : ndarray of intp
        Ascending flat (C-order) indices into the grid of the chunks to write.
    table : sequence of bytes
        JSON text per table entry, without NUL bytes.
    table_ids : ndarray of int
        The chunk grid, raveled: each chunk's index into ``table`` (read at ``flat``).
    byte_ranges : (offsets, lengths), optional
        Raveled like ``table_ids``. With them each value is ``[<entry>offset,length]``
        (so entries end with a comma: ``"path",``); without them each value is its
        table entry itself (an inline chunk's JSON string).

    Yields
    ------
    bytes
        Blocks of text, each entry preceded by a comma.
    """
    n = len(flat)
    if not n:
        return
    grid = grid or (1,)
    parts = _row_parts(b',"' + key_prefix, grid, byte_ranges is not None)
    if any(b"\x00" in e for e in table):
        raise ValueError("a table entry holds a NUL byte, which JSON text never does")
    sizes = [len(e) for e in table]
    wide = max(sizes) > _MAX_TABLE_WIDTH or max(sizes) - min(sizes) > _MAX_TABLE_PADDING
    if n < _SMALL or wide:
        yield from _format_python(parts, grid, flat, table, table_ids, byte_ranges)
        return
    tab = _table_matrix(table)
    axes = [p for p in parts if isinstance(p, int)]
    row_width = sum(len(p) if isinstance(p, bytes) else 20 for p in parts) + tab.shape[1]
    step = max(1, _BLOCK_BYTES // row_width)
    dense = int(flat[-1]) - int(flat[0]) == n - 1  # one contiguous run: slice, don't gather
    for start in range(0, n, step):
        f = flat[start : start + step]
        at: slice | npt.NDArray[np.intp] = slice(int(f[0]), int(f[-1]) + 1) if dense else f
        coords = _coords(f, grid, axes)
        segments: list[Any] = []
        for p in parts:
            if isinstance(p, bytes):
                segments.append(p)
            elif isinstance(p, int):
                c = coords[p]
                hi = c[-1] if p == axes[0] else c.max()  # the first axis ascends
                segments.append((c, len(str(int(hi)))))
            elif p == _TABLE:
                segments.append((table_ids[at], tab))
            else:
                assert byte_ranges is not None
                v = byte_ranges[0 if p == _OFFSET else 1][at]
                segments.append((v, _width(v)))
        yield _assemble(len(f), segments)


def _format_python(
    parts: list[_Part],
    grid: tuple[int, ...],
    flat: npt.NDArray[np.intp],
    table: Sequence[bytes],
    table_ids: npt.NDArray[Any],
    byte_ranges: tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]] | None,
) -> Iterator[bytes]:
    """:func:`format_entries` one entry at a time, in blocks of at most 65,536."""
    fmt = "".join(
        p.decode().replace("%", "%%") if isinstance(p, bytes) else "%s" if p == _TABLE else "%d"
        for p in parts
    )
    step = 1 << 16
    for start in range(0, len(flat), step):
        f = flat[start : start + step]
        coords = _coords(f, grid, [p for p in parts if isinstance(p, int)])
        tids = table_ids[f].tolist()
        text = {i: table[i].decode() for i in set(tids)}
        columns: list[list[Any]] = []
        for p in parts:
            if isinstance(p, int):
                columns.append(coords[p].tolist())
            elif p == _TABLE:
                columns.append([text[i] for i in tids])
            elif isinstance(p, str):
                assert byte_ranges is not None
                columns.append(byte_ranges[0 if p == _OFFSET else 1][f].tolist())
        yield "".join([fmt % t for t in zip(*columns, strict=True)]).encode()
