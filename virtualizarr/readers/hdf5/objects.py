"""Read HDF5 file structure straight from the bytes: superblock and object headers.

Shared by the chunk-index parser (:mod:`~virtualizarr.readers.hdf5.chunk_index`) and the
global-heap guard (:mod:`~virtualizarr.readers.hdf5.heap_guard`). Every size read from
the file is bounded before it is used; anything unexpected raises :class:`Unreadable`,
which callers turn into a fallback to libhdf5 or a
:class:`~virtualizarr.errors.FileFormatError`.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import numpy as np

try:  # HDF5's metadata checksum (Bob Jenkins' lookup3), compiled
    from numcodecs.jenkins import jenkins_lookup3 as _lookup3
except ImportError:  # pragma: no cover - numcodecs < 0.12
    _lookup3 = None

__all__ = [
    "H5_ERRORS",
    "SIGNATURE",
    "H5File",
    "ReadFn",
    "Unreadable",
    "checksum_ok",
    "need",
    "object_messages",
    "read_superblock",
]

ReadFn = Callable[[int, int], bytes]
"""``read(offset, size)``: ``size`` bytes of the file from absolute ``offset`` (fewer at
its end)."""

SIGNATURE: Final = b"\x89HDF\r\n\x1a\n"
"""The eight bytes an HDF5 superblock starts with."""

H5_ERRORS: Final = (OSError, RuntimeError, KeyError, TypeError, ValueError, IndexError)
"""What h5py raises for corrupt metadata: HDF5 errors map to OSError/KeyError/
RuntimeError/ValueError, and type conversion of a damaged datatype to TypeError/ValueError
(IndexError from damaged dataspaces)."""

MAX_HEADER_BYTES: Final = 1 << 22
"""Most object-header bytes followed through continuation messages."""

MAX_HEADER_CHUNKS: Final = 256
"""Most object-header chunks (continuation messages) followed."""


class Unreadable(Exception):
    """The structure is not one this module reads, or it is inconsistent."""


def need(ok: bool | np.bool_) -> None:
    """Raise :class:`Unreadable` unless ``ok``."""
    if not ok:
        raise Unreadable


@dataclass(frozen=True, slots=True)
class H5File:
    """Reads at HDF5 (relative) addresses, bounded by the file's size."""

    read: ReadFn
    base: int  # absolute offset of address 0 (the superblock's position)
    sizeof_addr: int
    sizeof_size: int
    size: int  # the file's size in bytes

    @property
    def undef(self) -> int:
        return (1 << (8 * self.sizeof_addr)) - 1

    @property
    def addr_dtype(self) -> np.dtype[np.unsignedinteger]:
        return np.dtype(f"<u{self.sizeof_addr}")

    def at(self, addr: int, size: int) -> bytes:
        """Exactly ``size`` bytes at address ``addr``, else :class:`Unreadable`."""
        need(addr >= 0 and size >= 0 and self.base + addr + size <= self.size)
        data = self.read(self.base + addr, size)
        need(len(data) == size)
        return bytes(data)

    def addr(self, buf: bytes, pos: int) -> int:
        return int.from_bytes(buf[pos : pos + self.sizeof_addr], "little")

    def addrs(self, buf: bytes, pos: int, count: int) -> list[int]:
        return np.frombuffer(buf, self.addr_dtype, count, pos).tolist()  # type: ignore[no-any-return]

    def length(self, buf: bytes, pos: int) -> int:
        return int.from_bytes(buf[pos : pos + self.sizeof_size], "little")


def checksum_ok(block: bytes) -> bool:
    """True if ``block`` ends with HDF5's lookup3 checksum of the bytes before it."""
    if _lookup3 is None:  # pragma: no cover
        return True
    stored = int.from_bytes(block[-4:], "little")
    return bool(_lookup3(block[:-4], 0) == stored)


# ---------------------------------------------------------------------- superblock
def read_superblock(read: ReadFn, at: int = 0) -> tuple[int, int] | None:
    """The sizes of addresses and lengths from the superblock at ``at``.

    Parameters
    ----------
    read : ReadFn
    at : int
        Absolute offset of the superblock (the user block's size; 0 without one).

    Returns
    -------
    (int, int) or None
        ``(sizeof_addr, sizeof_size)``, or None for an unknown or damaged superblock.
    """
    head = bytes(read(at, 64))
    if len(head) < 16 or head[:8] != SIGNATURE:
        return None
    version = head[8]
    if version in (0, 1):
        sizes = head[13], head[14]
    elif version in (2, 3):
        sizes = head[9], head[10]
        end = 12 + 4 * sizes[0] + 4
        if sizes[0] not in (2, 4, 8) or len(head) < end or not checksum_ok(head[:end]):
            return None
    else:
        return None
    if sizes[0] not in (2, 4, 8) or sizes[1] not in (2, 4, 8):
        return None
    return sizes


# ---------------------------------------------------------------------- object header
_V1_HEAD = struct.Struct("<HHB")  # type, size, flags (then 3 reserved bytes)
_V2_HEAD = struct.Struct("<BHB")  # type, size, flags (then a creation index if tracked)


def _messages_v1(chunk: bytes) -> list[tuple[int, int, bytes]]:
    out, pos, end = [], 0, len(chunk)
    unpack = _V1_HEAD.unpack_from
    while pos + 8 <= end:
        mtype, size, flags = unpack(chunk, pos)
        stop = pos + 8 + size
        need(stop <= end)
        out.append((mtype, flags, chunk[pos + 8 : stop]))
        pos = stop
    return out


def _messages_v2(chunk: bytes, order: bool) -> list[tuple[int, int, bytes]]:
    out, pos, head, end = [], 0, 6 if order else 4, len(chunk)
    unpack = _V2_HEAD.unpack_from
    while pos + head <= end:
        mtype, size, flags = unpack(chunk, pos)
        stop = pos + head + size
        need(stop <= end)
        out.append((mtype, flags, chunk[pos + head : stop]))
        pos = stop
    return out


def object_messages(f: H5File, addr: int) -> list[tuple[int, int, bytes]]:
    """Every message ``(type, flags, body)`` of the object header at ``addr``.

    Version 1 and 2 headers are read, continuation messages followed (each block once,
    at most :data:`MAX_HEADER_CHUNKS` blocks and :data:`MAX_HEADER_BYTES` bytes).

    Parameters
    ----------
    f : H5File
    addr : int
        The object header's address.

    Returns
    -------
    list of (int, int, bytes)

    Raises
    ------
    Unreadable
        If the header is damaged or out of bounds.
    """
    first = f.at(addr, min(512, f.size - f.base - addr) if addr >= 0 else -1)
    if first[:4] == b"OHDR":
        need(len(first) >= 7 and first[4] == 2)
        flags = first[5]
        pos = 6 + (16 if flags & 0x20 else 0) + (4 if flags & 0x10 else 0)
        width = 1 << (flags & 3)
        size0 = int.from_bytes(first[pos : pos + width], "little")
        start = pos + width
        block = first if start + size0 + 4 <= len(first) else f.at(addr, start + size0 + 4)
        need(size0 <= MAX_HEADER_BYTES and checksum_ok(block[: start + size0 + 4]))
        order = bool(flags & 0x04)
        pending = [block[start : start + size0]]
        version = 2
    else:
        need(len(first) >= 16 and first[0] == 1)
        size0 = int.from_bytes(first[8:12], "little")
        need(size0 <= MAX_HEADER_BYTES)
        pending = [first[16 : 16 + size0] if 16 + size0 <= len(first) else f.at(addr + 16, size0)]
        order, version = False, 1
    seen = {addr}
    total = 0
    out: list[tuple[int, int, bytes]] = []
    for _ in range(MAX_HEADER_CHUNKS):
        if not pending:
            break
        chunk = pending.pop()
        total += len(chunk)
        need(total <= MAX_HEADER_BYTES)
        msgs = _messages_v1(chunk) if version == 1 else _messages_v2(chunk, order)
        out.extend(msgs)
        for mtype, _, data in msgs:
            if mtype == 0x0010:  # continuation: address, length
                need(len(data) >= f.sizeof_addr + f.sizeof_size)
                where = f.addr(data, 0)
                length = f.length(data, f.sizeof_addr)
                need(where not in seen and length <= MAX_HEADER_BYTES)
                seen.add(where)
                raw = f.at(where, length)
                if version == 2:
                    need(length >= 8 and raw[:4] == b"OCHK" and checksum_ok(raw))
                    raw = raw[4:-4]
                pending.append(raw)
    need(not pending)  # more blocks than MAX_HEADER_CHUNKS
    return out
