"""The chunk-index structures of HDF5 read with NumPy: v1 B-trees, fixed and extensible
arrays, single and implicit indexes (see :mod:`~virtualizarr.readers.hdf5.chunk_index`).

Each reader takes the file (:class:`~virtualizarr.readers.hdf5.objects.H5File`) and the
parsed layout message, checks every structure before using it, and returns the allocated
chunks as :class:`ChunkColumns`, or raises ``Unreadable`` to fall back to libhdf5.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from virtualizarr.readers.hdf5.objects import H5File as _File
from virtualizarr.readers.hdf5.objects import Unreadable as _Fallback
from virtualizarr.readers.hdf5.objects import checksum_ok as _checksum_ok
from virtualizarr.readers.hdf5.objects import need as _need

__all__ = [
    "BTREE1",
    "BTREE2",
    "DEFAULT_ISTORE_K",
    "EARRAY",
    "FARRAY",
    "IMPLICIT",
    "SINGLE",
    "ChunkColumns",
    "Layout",
    "read_btree1",
    "read_earray",
    "read_farray",
    "read_implicit",
    "read_single",
]

MAX_DEPTH: Final = 32
"""Deepest version-1 B-tree read (a 64-entry-per-node tree of depth 32 is beyond any file)."""

DEFAULT_ISTORE_K: Final = 32
"""HDF5's default half-capacity of a chunk B-tree node (``H5Pset_istore_k``)."""

# chunk index types of a version-4 layout message (H5D_chunk_index_t); 0 is the v1 B-tree
BTREE1, SINGLE, IMPLICIT, FARRAY, EARRAY, BTREE2 = range(6)


@dataclass(frozen=True, slots=True)
class ChunkColumns:
    """The chunks an index lists, as ``chunk_iter`` reports them, one row per chunk.

    Attributes
    ----------
    coords : ndarray of int64, shape (n, rank)
        Element offset of each chunk's first element (multiples of the chunk shape).
    filter_mask : ndarray of uint32
        Filters skipped for each chunk (bit ``i`` set: filter ``i`` not applied).
    byte_offset : ndarray of uint64
        Absolute file offset of each chunk's bytes.
    size : ndarray of uint64
        Stored size of each chunk in bytes.
    kind : str
        Where the rows come from: the index type (``"btree1"``, ``"single"``,
        ``"implicit"``, ``"farray"``, ``"earray"``, or ``"earray-swizzled"`` for an
        extensible array whose unlimited dimension is not the first), or
        ``"chunk_iter"``.
    """

    coords: npt.NDArray[np.int64]
    filter_mask: npt.NDArray[np.uint32]
    byte_offset: npt.NDArray[np.uint64]
    size: npt.NDArray[np.uint64]
    kind: str = "chunk_iter"

    def __len__(self) -> int:
        return len(self.size)


@dataclass(frozen=True, slots=True)
class Layout:
    version: int
    index: int
    dims: tuple[int, ...]  # chunk shape, then the element size
    flags: int
    params: bytes
    address: int
    single_size: int = 0
    single_mask: int = 0


# ---------------------------------------------------------------------- helpers
def _uint(raw: npt.NDArray[np.void], width: int) -> npt.NDArray[np.uint64]:
    """Little-endian unsigned integers of ``width`` bytes, one per element of ``raw``."""
    b = np.frombuffer(raw.tobytes(), np.uint8).reshape(-1, width)
    padded = np.zeros((len(b), 8), np.uint8)
    padded[:, :width] = b
    return padded.view("<u8").ravel().astype(np.uint64)


def _increasing(coords: npt.NDArray[np.int64]) -> bool:
    """True if the (non-negative) rows of ``coords`` increase strictly, row-major order."""
    key = np.zeros(len(coords), np.int64)
    span = 1
    for i in range(coords.shape[1]):
        col = coords[:, i]
        top = int(col.max(initial=0)) + 1
        span *= top
        if span >= 1 << 62:  # too wide for one integer key: compare column by column
            return _increasing_lexicographic(coords)
        key *= top
        key += col
    return bool(np.all(key[1:] > key[:-1]))


def _increasing_lexicographic(coords: npt.NDArray[np.int64]) -> bool:
    diff = coords[1:] - coords[:-1]
    nonzero = diff != 0
    first = np.argmax(nonzero, axis=1)
    lead = diff[np.arange(len(diff)), first]
    return bool(np.all(nonzero.any(axis=1) & (lead > 0)))


def _aligned(coords: npt.NDArray[np.int64], chunks: Sequence[int]) -> bool:
    """True if every column of ``coords`` is a multiple of its chunk length."""
    for i, c in enumerate(chunks):
        col = coords[:, i]
        if np.any(col & (c - 1) if c & (c - 1) == 0 else col % c):
            return False
    return True


def _bits(bitmap: bytes, n: int) -> npt.NDArray[np.bool_]:
    """The first ``n`` bits of an HDF5 bitmap (most significant bit of byte 0 first)."""
    bits = np.unpackbits(np.frombuffer(bitmap, np.uint8), bitorder="big")
    _need(len(bits) >= n)
    return bits[:n].astype(bool)


def _elements(f: _File, filtered: bool, esize: int) -> np.dtype[np.void]:
    """The dtype of a fixed/extensible array element of the chunk index clients."""
    if not filtered:
        _need(esize == f.sizeof_addr)
        return np.dtype([("addr", f.addr_dtype)])
    width = esize - f.sizeof_addr - 4
    _need(1 <= width <= 8)
    return np.dtype([("addr", f.addr_dtype), ("nbytes", f"V{width}"), ("mask", "<u4")])


def _decode_elements(
    f: _File, raw: bytes, dtype: np.dtype[np.void], count: int
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64] | None, npt.NDArray[np.uint32] | None]:
    arr = np.frombuffer(raw, dtype, count)
    addrs = arr["addr"].astype(np.uint64)
    if "nbytes" not in (dtype.names or ()):
        return addrs, None, None
    width = dtype["nbytes"].itemsize
    return addrs, _uint(arr["nbytes"], width), arr["mask"].astype(np.uint32)


# ---------------------------------------------------------------------- v1 B-tree
def read_btree1(f: _File, lay: Layout, max_chunks: int, istore_k: int) -> ChunkColumns:
    ndims = len(lay.dims)
    if lay.address == f.undef:  # no chunk written yet
        return _empty(ndims - 1, "btree1")
    record = np.dtype(
        [
            ("size", "<u4"),
            ("mask", "<u4"),
            ("offset", "<u8", (ndims,)),
            ("child", f.addr_dtype),
        ]
    )
    head = 8 + 2 * f.sizeof_addr
    cap = 2 * max(1, istore_k)
    _need(lay.address < f.size - f.base)
    addrs: list[int] = [lay.address]
    level: int | None = None
    for _ in range(MAX_DEPTH + 1):
        # nodes do not overlap, and each takes its whole capacity in the file: a level
        # that would not fit is a damaged tree (this bounds what is read and allocated)
        _need(len(addrs) * (head + cap * record.itemsize) <= f.size)
        nodes = _btree1_level(f, addrs, head, record, cap)
        if isinstance(nodes, int):  # more entries than the guessed capacity: read more
            cap = nodes
            _need(len(addrs) * (head + cap * record.itemsize) <= f.size)
            nodes = _btree1_level(f, addrs, head, record, cap)
            _need(not isinstance(nodes, int))
        assert not isinstance(nodes, int)
        header, recs = nodes
        levels = header["level"]
        if level is None:
            level = int(levels[0])
            _need(level <= MAX_DEPTH)
        _need(np.all(levels == level))
        _need(np.all(header["used"] > 0) or len(addrs) == 1)
        used = header["used"].astype(np.int64)
        width = recs.shape[1]
        take = np.arange(width) < used[:, None]
        entries = recs[take]
        _need(len(entries) <= max_chunks)
        if level == 0:
            return _btree1_leaves(f, lay, entries)
        children = entries["child"].astype(np.uint64)
        _need(len(children) == 0 or int(children.max()) < f.size - f.base)
        _need(len(np.unique(children)) == len(children))
        addrs = children.tolist()
        level -= 1
    raise _Fallback


def _btree1_level(
    f: _File, addrs: Sequence[int], head: int, record: np.dtype[np.void], cap: int
) -> tuple[npt.NDArray[np.void], npt.NDArray[np.void]] | int:
    """Header fields and entry records of the nodes at ``addrs``, each read as ``cap``
    entries; or, if a node holds more, the largest entry count to read again with.

    A node is read whole even where it holds fewer entries (HDF5 allocates all ``2K``);
    only near the end of the file may a read come back short, and then it must still
    cover the entries the node says it uses.
    """
    size = head + cap * record.itemsize
    read, base = f.read, f.base
    raws = [read(base + a, size) for a in addrs]  # the one loop per node
    got = np.fromiter(map(len, raws), np.int64, len(raws))
    short = np.flatnonzero(got != size)
    for i in short.tolist():
        raws[i] = bytes(raws[i]).ljust(size, b"\0")
    node = np.dtype(
        [
            ("sig", "S4"),
            ("type", "u1"),
            ("level", "u1"),
            ("used", "<u2"),
            ("siblings", f"V{2 * f.sizeof_addr}"),
            ("recs", record, (cap,)),
        ]
    )
    arr = np.frombuffer(b"".join(raws), node, len(addrs))
    _need(np.all(arr["sig"] == b"TREE") and np.all(arr["type"] == 1))
    used = arr["used"].astype(np.int64)
    if np.any(used > cap):
        return int(used.max())
    if len(short):
        _need(np.all(head + used[short] * record.itemsize <= got[short]))
    return arr[["level", "used"]], arr["recs"]


def _btree1_leaves(f: _File, lay: Layout, entries: npt.NDArray[np.void]) -> ChunkColumns:
    offsets = entries["offset"]
    _need(not np.any(offsets[:, -1]))  # the element-size dimension's offset is 0
    coords = offsets[:, :-1].astype(np.int64)
    _need(not np.any(coords < 0) and _aligned(coords, lay.dims[:-1]) and _increasing(coords))
    addrs = entries["child"].astype(np.uint64)
    sizes = entries["size"].astype(np.uint64)
    return _finish(f, coords, entries["mask"].astype(np.uint32), addrs, sizes, "btree1")


def _finish(
    f: _File,
    coords: npt.NDArray[np.int64],
    masks: npt.NDArray[np.uint32],
    addrs: npt.NDArray[np.uint64],
    sizes: npt.NDArray[np.uint64],
    kind: str,
) -> ChunkColumns:
    """Check chunk addresses against the file and make them absolute."""
    if len(addrs):
        _need(int(addrs.max()) < f.size and int(sizes.max()) <= f.size)
        _need(int((addrs + sizes).max()) <= f.size - f.base)  # both < 2**63: no overflow
    return ChunkColumns(coords, masks, addrs + np.uint64(f.base), sizes, kind)


# ---------------------------------------------------------------------- v2 layouts
def read_single(f: _File, lay: Layout, rank: int, chunk_bytes: int) -> ChunkColumns:
    if lay.address == f.undef:
        return _empty(rank, "single")
    filtered = bool(lay.flags & 0x02)
    size = lay.single_size if filtered else chunk_bytes
    return _finish(
        f,
        np.zeros((1, rank), np.int64),
        np.array([lay.single_mask if filtered else 0], np.uint32),
        np.array([lay.address], np.uint64),
        np.array([size], np.uint64),
        "single",
    )


def read_implicit(
    f: _File, lay: Layout, chunk: npt.NDArray[np.int64], grid: tuple[int, ...], chunk_bytes: int
) -> ChunkColumns:
    if lay.address == f.undef:
        return _empty(len(grid), "implicit")
    n = math.prod(grid)
    idx = np.arange(n, dtype=np.int64)
    coords = np.stack(np.unravel_index(idx, grid), axis=1).astype(np.int64) * chunk
    addrs = np.uint64(lay.address) + idx.astype(np.uint64) * np.uint64(chunk_bytes)
    sizes = np.full(n, chunk_bytes, np.uint64)
    return _finish(f, coords, np.zeros(n, np.uint32), addrs, sizes, "implicit")


def read_farray(
    f: _File, lay: Layout, chunk: npt.NDArray[np.int64], grid: tuple[int, ...], chunk_bytes: int
) -> ChunkColumns:
    """Fixed array: one element per chunk of the grid over the maximum shape."""
    rank = len(grid)
    if lay.address == f.undef:
        return _empty(rank, "farray")
    head = f.at(lay.address, 8 + f.sizeof_size + f.sizeof_addr + 4)
    _need(head[:4] == b"FAHD" and head[4] == 0 and head[5] in (0, 1) and _checksum_ok(head))
    filtered, esize, page_bits = head[5] == 1, head[6], head[7]
    nelmts = f.length(head, 8)
    dblock = f.addr(head, 8 + f.sizeof_size)
    _need(nelmts == math.prod(grid) and 0 < page_bits < 64)
    dtype = _elements(f, filtered, esize)
    if dblock == f.undef:
        return _empty(rank, "farray")
    page = 1 << page_bits
    prefix = 6 + f.sizeof_addr
    if nelmts <= page:  # one unpaged block
        block = f.at(dblock, prefix + nelmts * esize + 4)
        _need(block[:4] == b"FADB" and block[4] == 0 and block[5] == head[5])
        _need(f.addr(block, 6) == lay.address and _checksum_ok(block))
        parts = [(0, block[prefix : prefix + nelmts * esize], nelmts)]
    else:
        npages = -(-nelmts // page)
        init = (npages + 7) // 8
        block = f.at(dblock, prefix + init + 4)
        _need(block[:4] == b"FADB" and block[4] == 0 and block[5] == head[5])
        _need(f.addr(block, 6) == lay.address and _checksum_ok(block))
        live = _bits(block[prefix : prefix + init], npages)
        parts = []
        start = dblock + prefix + init + 4
        page_size = page * esize + 4
        for p in np.flatnonzero(live).tolist():
            count = min(page, nelmts - p * page)
            raw = f.at(start + p * page_size, count * esize + 4)
            _need(_checksum_ok(raw))
            parts.append((p * page, raw[:-4], count))
    return _collect(f, parts, dtype, chunk, grid, chunk_bytes, None)


def _collect(
    f: _File,
    parts: list[tuple[int, bytes, int]],
    dtype: np.dtype[np.void],
    chunk: npt.NDArray[np.int64],
    grid: tuple[int, ...],
    chunk_bytes: int,
    unlim: int | None,
) -> ChunkColumns:
    """Chunk columns from runs of array elements ``(first index, bytes, count)``."""
    rank = len(grid)
    kind = "farray" if unlim is None else "earray-swizzled" if unlim else "earray"
    if not parts:
        return _empty(rank, kind)
    idx_l, addr_l, size_l, mask_l = [], [], [], []
    for first, raw, count in parts:
        addrs, sizes, masks = _decode_elements(f, raw, dtype, count)
        live = np.flatnonzero(addrs != f.undef)
        idx_l.append(live.astype(np.int64) + first)
        addr_l.append(addrs[live])
        size_l.append(np.full(len(live), chunk_bytes, np.uint64) if sizes is None else sizes[live])
        mask_l.append(np.zeros(len(live), np.uint32) if masks is None else masks[live])
    idx = np.concatenate(idx_l)
    if unlim is None:
        scaled = np.stack(np.unravel_index(idx, grid), axis=1)
    else:  # the unlimited dimension is the slowest-varying one of the index
        swizzled = (grid[unlim], *grid[:unlim], *grid[unlim + 1 :])
        _need(len(idx) == 0 or int(idx.max()) < math.prod(swizzled))
        sw = np.stack(np.unravel_index(idx, swizzled), axis=1)
        scaled = np.concatenate([sw[:, 1 : unlim + 1], sw[:, :1], sw[:, unlim + 1 :]], axis=1)
    coords = scaled.astype(np.int64).reshape(-1, rank) * chunk
    sizes = np.concatenate(size_l)
    return _finish(f, coords, np.concatenate(mask_l), np.concatenate(addr_l), sizes, kind)


def _empty(rank: int, kind: str) -> ChunkColumns:
    return ChunkColumns(
        np.zeros((0, rank), np.int64),
        np.zeros(0, np.uint32),
        np.zeros(0, np.uint64),
        np.zeros(0, np.uint64),
        kind,
    )


def read_earray(
    f: _File,
    lay: Layout,
    chunk: npt.NDArray[np.int64],
    grid: tuple[int, ...],
    unlim: int,
    chunk_bytes: int,
) -> ChunkColumns:
    """Extensible array: chunks indexed along the unlimited dimension, slowest first."""
    rank = len(grid)
    if lay.address == f.undef:
        return _empty(rank, "earray-swizzled" if unlim else "earray")
    lw, aw = f.sizeof_size, f.sizeof_addr  # widths of lengths and addresses
    head = f.at(lay.address, 12 + 6 * lw + aw + 4)
    _need(head[:4] == b"EAHD" and head[4] == 0 and head[5] in (0, 1) and _checksum_ok(head))
    filtered, client = head[5] == 1, head[5]
    esize, nbits, iblk_elmts, dmin, smin, page_bits = head[6:12]
    _need(lay.params == bytes([nbits, iblk_elmts, smin, dmin, page_bits]))
    _need(0 < nbits <= 64 and dmin > 0 and dmin & (dmin - 1) == 0)
    _need(smin >= 2 and smin & (smin - 1) == 0 and 0 < page_bits <= nbits)
    max_idx = f.length(head, 12 + 4 * lw)
    iblock_addr = f.addr(head, 12 + 6 * lw)
    _need(max_idx <= math.prod(grid))
    dtype = _elements(f, filtered, esize)
    if iblock_addr == f.undef or max_idx == 0:
        return _empty(rank, "earray-swizzled" if unlim else "earray")
    nsblks = 1 + nbits - (dmin.bit_length() - 1)
    _need(nsblks >= 1)
    ib_nsblks = 2 * (smin.bit_length() - 1)
    ndblk_addrs = 2 * (smin - 1)
    nsblk_addrs = max(0, nsblks - ib_nsblks)
    off_size = (nbits + 7) // 8
    page = 1 << page_bits
    prefix = 6 + aw
    iblock = f.at(iblock_addr, prefix + iblk_elmts * esize + (ndblk_addrs + nsblk_addrs) * aw + 4)
    _need(iblock[:4] == b"EAIB" and iblock[4] == 0 and iblock[5] == client)
    _need(f.addr(iblock, 6) == lay.address and _checksum_ok(iblock))
    pos = prefix + iblk_elmts * esize
    parts = [(0, iblock[prefix:pos], iblk_elmts)] if iblk_elmts else []
    dblk_addrs = f.addrs(iblock, pos, ndblk_addrs)
    pos += ndblk_addrs * aw
    sblk_addrs = f.addrs(iblock, pos, nsblk_addrs)
    start_idx = start_dblk = 0
    dprefix = prefix + off_size + 4
    for s in range(nsblks):
        ndblks, nelmts = 1 << (s // 2), (1 << ((s + 1) // 2)) * dmin
        first = iblk_elmts + start_idx
        if first >= max_idx:
            break
        paged = nelmts > page
        if s < ib_nsblks:
            _need(not paged)
            addrs = dblk_addrs[start_dblk : start_dblk + ndblks]
            live: npt.NDArray[np.bool_] | None = None
        else:
            saddr = sblk_addrs[s - ib_nsblks]
            addrs, live = [], None
            if saddr != f.undef:
                npages = nelmts // page if paged else 0
                init = (npages + 7) // 8 if paged else 0
                sblock = f.at(saddr, prefix + off_size + ndblks * (init + aw) + 4)
                _need(sblock[:4] == b"EASB" and sblock[4] == 0 and sblock[5] == client)
                _need(f.addr(sblock, 6) == lay.address and _checksum_ok(sblock))
                _need(int.from_bytes(sblock[prefix : prefix + off_size], "little") == start_idx)
                p = prefix + off_size
                if paged:
                    live = _bits(sblock[p : p + ndblks * init], ndblks * npages)
                p += ndblks * init
                addrs = f.addrs(sblock, p, ndblks)
        for d, daddr in enumerate(addrs):
            dfirst = first + d * nelmts
            if daddr == f.undef or dfirst >= max_idx:
                continue
            # the offset a data block records: HDF5 counts the index block's data blocks
            # from the first one, and a super block's from the super block's start
            block_off = start_idx + (d + (start_dblk if s < ib_nsblks else 0)) * nelmts
            if not paged:
                block = f.at(daddr, dprefix + nelmts * esize)
                _need(block[:4] == b"EADB" and block[4] == 0 and block[5] == client)
                _need(f.addr(block, 6) == lay.address and _checksum_ok(block))
                _need(int.from_bytes(block[prefix : prefix + off_size], "little") == block_off)
                parts.append((dfirst, block[prefix + off_size : -4], nelmts))
                continue
            assert live is not None
            npages = nelmts // page
            block = f.at(daddr, dprefix)
            _need(block[:4] == b"EADB" and block[4] == 0 and block[5] == client)
            _need(f.addr(block, 6) == lay.address and _checksum_ok(block))
            _need(int.from_bytes(block[prefix : prefix + off_size], "little") == block_off)
            for pg in range(npages):
                if dfirst + pg * page >= max_idx:
                    break
                if not live[d * npages + pg]:
                    continue
                raw = f.at(daddr + dprefix + pg * (page * esize + 4), page * esize + 4)
                _need(_checksum_ok(raw))
                parts.append((dfirst + pg * page, raw[:-4], page))
        start_idx += ndblks * nelmts
        start_dblk += ndblks
    return _collect(f, parts, dtype, chunk, grid, chunk_bytes, unlim)


# ---------------------------------------------------------------------- entry point
