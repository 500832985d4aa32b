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

import numpy as np

from virtualizarr.readers.hdf5.chunk_structures import (
    BTREE1,
    BTREE2,
    DEFAULT_ISTORE_K,
    EARRAY,
    FARRAY,
    IMPLICIT,
    SINGLE,
    ChunkColumns,
    Layout,
    read_btree1,
    read_earray,
    read_farray,
    read_implicit,
    read_single,
)
from virtualizarr.readers.hdf5.objects import H5File as _File
from virtualizarr.readers.hdf5.objects import ReadFn as ReadFn
from virtualizarr.readers.hdf5.objects import Unreadable as _Fallback
from virtualizarr.readers.hdf5.objects import need as _need
from virtualizarr.readers.hdf5.objects import object_messages
from virtualizarr.readers.hdf5.objects import read_superblock as read_superblock

__all__ = ["ChunkColumns", "ReadFn", "read_chunk_index", "read_superblock"]


def _layout_message(f: _File, addr: int) -> bytes:
    """The Data Layout message of the object header at ``addr``."""
    for mtype, mflags, data in object_messages(f, addr):
        if mtype == 0x0008:
            _need(not mflags & 0x02)  # a layout message is never shared
            return data
    raise _Fallback


def _parse_layout(f: _File, msg: bytes) -> Layout:
    _need(len(msg) >= 4)
    version = msg[0]
    if version in (1, 2):
        ndims, cls = msg[1], msg[2]
        _need(cls == 2 and 2 <= ndims <= 33 and len(msg) >= 8 + f.sizeof_addr + 4 * ndims)
        address = f.addr(msg, 8)
        pos = 8 + f.sizeof_addr
        dims = np.frombuffer(msg, "<u4", ndims, pos)
        return Layout(version, BTREE1, tuple(int(d) for d in dims), 0, b"", address)
    _need(msg[1] == 2)  # chunked
    if version == 3:
        ndims = msg[2]
        _need(2 <= ndims <= 33 and len(msg) >= 3 + f.sizeof_addr + 4 * ndims)
        address = f.addr(msg, 3)
        dims = np.frombuffer(msg, "<u4", ndims, 3 + f.sizeof_addr)
        return Layout(version, BTREE1, tuple(int(d) for d in dims), 0, b"", address)
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
    nparams = {SINGLE: 0, IMPLICIT: 0, FARRAY: 1, EARRAY: 5, BTREE2: 6}.get(index)
    _need(nparams is not None)
    assert nparams is not None
    single_size = single_mask = 0
    if index == SINGLE and flags & 0x02:  # a filtered single chunk: its size and mask
        _need(len(msg) >= pos + f.sizeof_size + 4)
        single_size = f.length(msg, pos)
        single_mask = int.from_bytes(msg[pos + f.sizeof_size : pos + f.sizeof_size + 4], "little")
        pos += f.sizeof_size + 4
    params = msg[pos : pos + nparams]
    pos += nparams
    _need(len(msg) >= pos + f.sizeof_addr)
    address = f.addr(msg, pos)
    return Layout(version, index, tuple(dims_l), flags, params, address, single_size, single_mask)


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
        if lay.index == BTREE1:
            return read_btree1(f, lay, max_chunks, istore_k)
        unlimited = [i for i, m in enumerate(maxshape) if m is None]
        limits = tuple(
            cur if m is None else -(-int(m) // int(c))
            for cur, m, c in zip(current, maxshape, chunks, strict=True)
        )
        if lay.index == SINGLE:
            _need(all(g <= 1 for g in current))
            return read_single(f, lay, rank, chunk_bytes)
        if lay.index == IMPLICIT:
            _need(not unlimited and math.prod(limits) <= max_chunks)
            return read_implicit(f, lay, chunk, limits, chunk_bytes)
        # an array holds at least an address per chunk of its grid: a grid larger than
        # the file allows is a damaged dataspace
        _need(math.prod(limits) * f.sizeof_addr <= file_size)
        if lay.index == FARRAY:
            _need(not unlimited)
            return read_farray(f, lay, chunk, limits, chunk_bytes)
        if lay.index == EARRAY:
            _need(len(unlimited) == 1)
            return read_earray(f, lay, chunk, limits, unlimited[0], chunk_bytes)
        return None  # version-2 B-tree
    except (_Fallback, ValueError, IndexError, TypeError, OverflowError):
        return None
