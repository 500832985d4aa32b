"""Chunk manifests of a Zarr store's arrays: each stored chunk a whole object, or byte
ranges inside shards found from the shards' indexes.

The store's listing (key -> size) says which chunks exist and how long they are, so an
unsharded array costs no read at all. A sharded array costs one ranged read per shard, of
its index (``16`` bytes per inner chunk, plus a CRC-32C checksum): the index gives each
inner chunk's offset and length inside the shard object.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Final
from urllib.parse import quote

import numpy as np
import numpy.typing as npt

from virtualizarr.errors import ChunkReadError, FileFormatError
from virtualizarr.formats.chunk_keys import parse_chunk_keys
from virtualizarr.formats.zarr_store import METADATA_KEYS, ShardSpec, ZarrArraySpec
from virtualizarr.io.objects import Location
from virtualizarr.manifests import MISSING, ChunkManifest, chunk_grid_shape
from virtualizarr.readers.base import check_grid_cells

__all__ = ["array_manifest", "object_url"]

EMPTY: Final = np.uint64(2**64 - 1)
"""An inner chunk the shard does not store (offset and length both)."""
_INDEX_THREADS: Final = 16


def object_url(store: Location, key: str) -> str:
    """The URL of a key of the store (percent-encoded for local ``file://`` URIs)."""
    return store.url_of(quote(key) if store.is_local else key)


def _stored_keys(listing: Mapping[str, int], array_dir: str) -> tuple[list[str], list[int]]:
    """The keys (relative to the array) and sizes of every object but metadata documents."""
    head = f"{array_dir}/" if array_dir else ""
    keys, sizes = [], []
    for key, size in listing.items():
        if key.startswith(head):
            rel = key[len(head) :]
            if rel.rsplit("/", 1)[-1] not in METADATA_KEYS:
                keys.append(rel)
                sizes.append(size)
    return keys, sizes


def _coords(
    keys: Sequence[str], spec: ZarrArraySpec, grid: tuple[int, ...]
) -> tuple[npt.NDArray[np.int64], list[int]]:
    """Grid coordinates of the chunk keys, and which of ``keys`` they are (other objects
    -- stray files a Zarr reader ignores too -- are left out)."""
    if not grid:
        hits = [i for i, k in enumerate(keys) if k == spec.scalar_key()]
        return np.zeros((len(hits), 0), np.int64), hits
    bulk = parse_chunk_keys(list(keys), spec.separator, grid, spec.key_prefix)
    if bulk is not None:
        return bulk, list(range(len(keys)))
    found: list[tuple[int, ...]] = []
    hits = []
    for i, key in enumerate(keys):
        one = parse_chunk_keys([key], spec.separator, grid, spec.key_prefix)
        if one is not None:
            found.append(tuple(int(c) for c in one[0]))
            hits.append(i)
    return np.array(found, np.int64).reshape(len(found), len(grid)), hits


def array_manifest(
    store: Location,
    listing: Mapping[str, int],
    array_dir: str,
    spec: ZarrArraySpec,
    where: str,
) -> ChunkManifest:
    """The manifest of one array of a listed store.

    Parameters
    ----------
    store : Location
        The store's root.
    listing : mapping of str to int
        Every key of the store with its size.
    array_dir : str
        The array's key prefix in the store (``"group/temp"``).
    spec : ZarrArraySpec
    where : str
        The array, for messages.

    Returns
    -------
    ChunkManifest
        Over the chunk grid of ``spec.chunks`` (inner chunks for a sharded array).

    Raises
    ------
    FileFormatError
        If the grid is far larger than what is stored, or a shard index is corrupt.
    ChunkReadError
        If a shard index cannot be read.
    """
    keys, sizes = _stored_keys(listing, array_dir)
    grid = chunk_grid_shape(spec.shape, spec.stored_chunks)
    check_grid_cells(grid, len(keys), where, FileFormatError)
    coords, hits = _coords(keys, spec, grid)
    prefix = f"{array_dir}/" if array_dir else ""
    paths = [object_url(store, prefix + keys[i]) for i in hits]
    lengths = np.array([sizes[i] for i in hits], np.uint64)
    if spec.shard is not None:
        return _shard_manifest(store, spec, spec.shard, coords, paths, lengths, where)
    ids = np.full(grid, MISSING, np.int32)
    offs = np.zeros(grid, np.uint64)
    lens = np.zeros(grid, np.uint64)
    if grid:
        cells = tuple(coords.T)
        ids[cells] = np.arange(len(paths), dtype=np.int32)
        lens[cells] = lengths
    elif paths:  # a 0-d array: its one chunk
        ids[()], lens[()] = 0, lengths[0]
    return ChunkManifest(paths, ids, offs, lens)


def _read_indexes(
    store: Location, paths: Sequence[str], lengths: npt.NDArray[np.uint64], shard: ShardSpec
) -> list[bytes]:
    """The index bytes of every shard (concurrent ranged reads for remote stores)."""
    n = shard.index_bytes

    def one(i: int) -> bytes:
        size = int(lengths[i])
        if size < n:
            raise FileFormatError(
                f"shard {paths[i]} is {size} bytes, shorter than its index ({n} bytes); the "
                "store is corrupt or being rewritten."
            )
        return store.at(paths[i]).read_range(size - n if shard.index_at_end else 0, n)

    if store.is_local or len(paths) < 2:
        return [one(i) for i in range(len(paths))]
    with ThreadPoolExecutor(min(_INDEX_THREADS, len(paths))) as pool:
        return list(pool.map(one, range(len(paths))))


def _check_crc32c(data: bytes, url: str) -> bytes:
    """The index without its checksum, verified when google_crc32c is installed."""
    body, stored = data[:-4], data[-4:]
    try:
        import google_crc32c
    except ImportError:  # optional: the bounds checks below still catch wild offsets
        return body
    if np.uint32(google_crc32c.value(body)).tobytes() != stored:
        raise FileFormatError(
            f"the shard index of {url} fails its CRC-32C checksum; the shard is corrupt."
        )
    return body


def _shard_manifest(
    store: Location,
    spec: ZarrArraySpec,
    shard: ShardSpec,
    shard_coords: npt.NDArray[np.int64],
    paths: list[str],
    sizes: npt.NDArray[np.uint64],
    where: str,
) -> ChunkManifest:
    """Inner chunks as byte ranges inside their shards, from the shards' indexes."""
    grid = chunk_grid_shape(spec.shape, spec.chunks)
    cps = shard.chunks_per_shard
    ids = np.full(grid, MISSING, np.int32)
    offs = np.zeros(grid, np.uint64)
    lens = np.zeros(grid, np.uint64)
    try:
        raw = _read_indexes(store, paths, sizes, shard)
    except ChunkReadError as e:
        raise ChunkReadError(f"{where}: a shard index could not be read ({e}).") from None
    dt = np.dtype(f"{shard.index_endian}u8")
    for i, data in enumerate(raw):
        body = _check_crc32c(data, paths[i]) if shard.index_crc32c else data
        index = np.frombuffer(body, dt).reshape(*cps, 2)
        start, length = index[..., 0].astype(np.uint64), index[..., 1].astype(np.uint64)
        stored = ~((start == EMPTY) & (length == EMPTY))
        if not stored.any():
            continue
        end = start[stored] + length[stored]
        if (end < start[stored]).any() or (end > sizes[i]).any():
            raise FileFormatError(
                f"{where}: the index of shard {paths[i]} points past the shard's "
                f"{int(sizes[i])} bytes; the shard is corrupt."
            )
        local = np.argwhere(stored)
        glob = local + shard_coords[i] * np.array(cps, np.int64) if cps else local
        inside = (glob < np.array(grid, np.int64)).all(axis=1) if grid else np.ones(1, bool)
        cells = tuple(glob[inside].T)
        ids[cells] = i
        offs[cells] = start[stored][inside]
        lens[cells] = length[stored][inside]
    used = np.unique(ids[ids >= 0])
    if used.size != len(paths):  # keep the path table to the shards that hold chunks
        remap = np.full(max(len(paths), 1), MISSING, np.int32)
        remap[used] = np.arange(used.size, dtype=np.int32)
        ids = np.where(ids >= 0, remap[np.maximum(ids, 0)], MISSING).astype(np.int32)
        paths = [paths[int(u)] for u in used]
    return ChunkManifest(paths, ids, offs, lens)
