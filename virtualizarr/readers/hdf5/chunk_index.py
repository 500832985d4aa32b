"""Chunk locations read straight from an HDF5 dataset's chunk index, decoded with NumPy.

h5py's ``DatasetID.chunk_iter`` makes one Python callback and builds one ``StoreInfo``
per chunk: about 5 us each, half a second for 100,000 chunks. This module reads the same
index from the file's bytes, a whole B-tree level or array block at a time, and decodes
each batch with one structured NumPy dtype, so no Python code runs per chunk.

It starts at the dataset's object header (its address comes from
``h5py.h5o.get_info``), finds the Data Layout message and follows the chunk index named
there:

==================  ===================================  ==============================
index               written by                            read here
==================  ===================================  ==============================
version-1 B-tree    netCDF-C, h5py with default libver   level by level
fixed array         libver >= 1.10, no unlimited dim     header, data block, pages
extensible array    libver >= 1.10, one unlimited dim    index/super/data blocks, pages
single chunk        libver >= 1.10, one chunk            from the layout message
implicit            early allocation, no filters         computed
version-2 B-tree    libver >= 1.10, >1 unlimited dims    not read (``None``)
==================  ===================================  ==============================

Everything is checked before it is used: signatures, versions, B-tree levels, the
checksums of the structures that have them, entry counts against the chunk grid, chunk
offsets against the chunk shape and addresses against the file's size. No size read from
the file is trusted before it is bounded. Anything unexpected makes
:func:`read_chunk_index` return ``None``, and the caller falls back to ``chunk_iter``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

from virtualizarr.readers.hdf5.objects import H5File as _File
from virtualizarr.readers.hdf5.objects import ReadFn as ReadFn
from virtualizarr.readers.hdf5.objects import Unreadable as _Fallback
from virtualizarr.readers.hdf5.objects import checksum_ok as _checksum_ok
from virtualizarr.readers.hdf5.objects import need as _need
from virtualizarr.readers.hdf5.objects import object_messages
from virtualizarr.readers.hdf5.objects import read_superblock as read_superblock

__all__ = ["ChunkColumns", "ReadFn", "read_chunk_index", "read_superblock"]

MAX_DEPTH: Final = 32
"""Deepest version-1 B-tree read (a 64-entry-per-node tree of depth 32 is beyond any file)."""

DEFAULT_ISTORE_K: Final = 32
"""HDF5's default half-capacity of a chunk B-tree node (``H5Pset_istore_k``)."""

# chunk index types of a version-4 layout message (H5D_chunk_index_t); 0 is the v1 B-tree
_BTREE1, _SINGLE, _IMPLICIT, _FARRAY, _EARRAY, _BTREE2 = range(6)


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


def _layout_message(f: _File, addr: int) -> bytes:
    """The Data Layout message of the object header at ``addr``."""
    for mtype, mflags, data in object_messages(f, addr):
        if mtype == 0x0008:
            _need(not mflags & 0x02)  # a layout message is never shared
            return data
    raise _Fallback


@dataclass(frozen=True, slots=True)
class _Layout:
    version: int
    index: int
    dims: tuple[int, ...]  # chunk shape, then the element size
    flags: int
    params: bytes
    address: int
    single_size: int = 0
    single_mask: int = 0


def _parse_layout(f: _File, msg: bytes) -> _Layout:
    _need(len(msg) >= 4)
    version = msg[0]
    if version in (1, 2):
        ndims, cls = msg[1], msg[2]
        _need(cls == 2 and 2 <= ndims <= 33 and len(msg) >= 8 + f.sizeof_addr + 4 * ndims)
        address = f.addr(msg, 8)
        pos = 8 + f.sizeof_addr
        dims = np.frombuffer(msg, "<u4", ndims, pos)
        return _Layout(version, _BTREE1, tuple(int(d) for d in dims), 0, b"", address)
    _need(msg[1] == 2)  # chunked
    if version == 3:
        ndims = msg[2]
        _need(2 <= ndims <= 33 and len(msg) >= 3 + f.sizeof_addr + 4 * ndims)
        address = f.addr(msg, 3)
        dims = np.frombuffer(msg, "<u4", ndims, 3 + f.sizeof_addr)
        return _Layout(version, _BTREE1, tuple(int(d) for d in dims), 0, b"", address)
    _need(version in (4, 5) and len(msg) >= 6)
    flags, ndims, enc = msg[2], msg[3], msg[4]
    _need(2 <= ndims <= 33 and 1 <= enc <= 8 and len(msg) >= 6 + ndims * enc)
    pos = 5
    dims_l = []
    for _ in range(ndims):
        dims_l.append(int.from_bytes(msg[pos : pos + enc], "little"))
        pos += enc
    index = msg[pos]
    pos += 1
    nparams = {_SINGLE: 0, _IMPLICIT: 0, _FARRAY: 1, _EARRAY: 5, _BTREE2: 6}.get(index)
    _need(nparams is not None)
    assert nparams is not None
    single_size = single_mask = 0
    if index == _SINGLE and flags & 0x02:  # a filtered single chunk: its size and mask
        _need(len(msg) >= pos + f.sizeof_size + 4)
        single_size = f.length(msg, pos)
        single_mask = int.from_bytes(msg[pos + f.sizeof_size : pos + f.sizeof_size + 4], "little")
        pos += f.sizeof_size + 4
    params = msg[pos : pos + nparams]
    pos += nparams
    _need(len(msg) >= pos + f.sizeof_addr)
    address = f.addr(msg, pos)
    return _Layout(version, index, tuple(dims_l), flags, params, address, single_size, single_mask)


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
def _btree1(f: _File, lay: _Layout, max_chunks: int, istore_k: int) -> ChunkColumns:
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


def _btree1_leaves(f: _File, lay: _Layout, entries: npt.NDArray[np.void]) -> ChunkColumns:
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
def _single(f: _File, lay: _Layout, rank: int, chunk_bytes: int) -> ChunkColumns:
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


def _implicit(
    f: _File, lay: _Layout, chunk: npt.NDArray[np.int64], grid: tuple[int, ...], chunk_bytes: int
) -> ChunkColumns:
    if lay.address == f.undef:
        return _empty(len(grid), "implicit")
    n = math.prod(grid)
    idx = np.arange(n, dtype=np.int64)
    coords = np.stack(np.unravel_index(idx, grid), axis=1).astype(np.int64) * chunk
    addrs = np.uint64(lay.address) + idx.astype(np.uint64) * np.uint64(chunk_bytes)
    sizes = np.full(n, chunk_bytes, np.uint64)
    return _finish(f, coords, np.zeros(n, np.uint32), addrs, sizes, "implicit")


def _farray(
    f: _File, lay: _Layout, chunk: npt.NDArray[np.int64], grid: tuple[int, ...], chunk_bytes: int
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


def _earray(
    f: _File,
    lay: _Layout,
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
def read_chunk_index(
    read: ReadFn,
    *,
    header_address: int,
    superblock_at: int,
    file_size: int,
    shape: Sequence[int],
    maxshape: Sequence[int | None],
    chunks: Sequence[int],
    istore_k: int = DEFAULT_ISTORE_K,
) -> ChunkColumns | None:
    """The chunks of a chunked dataset, read from its chunk index; None to fall back.

    Parameters
    ----------
    read : ReadFn
        Reads bytes of the file at absolute offsets.
    header_address : int
        The dataset's object header address (``h5py.h5o.get_info(dsid).addr``).
    superblock_at : int
        Absolute offset of the superblock (the user block's size).
    file_size : int
        The file's size in bytes.
    shape, maxshape : sequence of int
        The dataset's current and maximum shape (None: unlimited), as h5py reports them.
    chunks : sequence of int
        Its chunk shape, as h5py reports it (checked against the layout message).
    istore_k : int
        The file's chunk B-tree ``K`` (a hint: nodes are read ``2K`` entries at a time).

    Returns
    -------
    ChunkColumns or None
        The allocated chunks (in index order), or None if the index is of a kind this
        module does not read or anything about it is unexpected.
    """
    try:
        sizes = read_superblock(read, superblock_at)
        if sizes is None:
            return None
        f = _File(read, superblock_at, sizes[0], sizes[1], file_size)
        lay = _parse_layout(f, _layout_message(f, header_address))
        rank = len(chunks)
        _need(len(shape) == rank == len(maxshape) and lay.dims[:-1] == tuple(chunks))
        _need(not lay.flags & 0x01)  # unfiltered partial edge chunks: leave to h5py
        _need(all(c > 0 for c in chunks) and lay.dims[-1] > 0)
        chunk = np.asarray(chunks, np.int64)
        chunk_bytes = math.prod(lay.dims)
        current = tuple(-(-int(s) // int(c)) for s, c in zip(shape, chunks, strict=True))
        max_chunks = max(1, math.prod(current))
        if lay.index == _BTREE1:
            return _btree1(f, lay, max_chunks, istore_k)
        unlimited = [i for i, m in enumerate(maxshape) if m is None]
        limits = tuple(
            cur if m is None else -(-int(m) // int(c))
            for cur, m, c in zip(current, maxshape, chunks, strict=True)
        )
        if lay.index == _SINGLE:
            _need(all(g <= 1 for g in current))
            return _single(f, lay, rank, chunk_bytes)
        if lay.index == _IMPLICIT:
            _need(not unlimited and math.prod(limits) <= max_chunks)
            return _implicit(f, lay, chunk, limits, chunk_bytes)
        # an array holds at least an address per chunk of its grid: a grid larger than
        # the file allows is a damaged dataspace
        _need(math.prod(limits) * f.sizeof_addr <= file_size)
        if lay.index == _FARRAY:
            _need(not unlimited)
            return _farray(f, lay, chunk, limits, chunk_bytes)
        if lay.index == _EARRAY:
            _need(len(unlimited) == 1)
            return _earray(f, lay, chunk, limits, unlimited[0], chunk_bytes)
        return None  # version-2 B-tree
    except (_Fallback, ValueError, IndexError, TypeError, OverflowError):
        return None
