"""The three columns of a chunk manifest: validation, path-id types, lazy loading.

A :class:`~virtualizarr.manifests.ChunkManifest` holds, per cell of the chunk grid, a path
id, a byte offset and a byte length. This module checks such columns against the
manifest's tables (:func:`check_columns`), picks the narrowest type for the ids
(:func:`id_dtype`), and defers them (:class:`Deferred`): a reader may hand a manifest a
*loader* -- any callable returning the columns -- instead of the columns themselves, and
the manifest calls it once, the first time a chunk is looked up. Nothing here opens a
file; the loader is the reader's (see
:mod:`virtualizarr.readers.zarr_manifest.reader`).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypedDict

import numpy as np
import numpy.typing as npt

from virtualizarr.errors import InvalidReferencesError

__all__ = [
    "INLINE_BASE",
    "MISSING",
    "ChunkEntry",
    "Columns",
    "Deferred",
    "Loader",
    "check_columns",
    "concat_ids",
    "dict_columns",
    "legacy_entries",
    "id_dtype",
    "path_table",
    "resolve_chunks",
]

MISSING: Final = -1
"""Path id of a chunk that is not stored (it reads as the fill value)."""

INLINE_BASE: Final = -2
"""Path id of the first inline chunk; inline chunk ``i`` has path id ``INLINE_BASE - i``."""

StoredIds = npt.NDArray[np.signedinteger[Any]]
UIntArray = npt.NDArray[np.uint64]
Columns = tuple[StoredIds, UIntArray, UIntArray]
"""Path ids, offsets and lengths, each shaped like the chunk grid."""
Loader = Callable[[], tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]]
"""What a reader supplies for a manifest loaded on demand: returns the three columns."""
_KEY_RE = re.compile(r"^\d+(\.\d+)*$")


class ChunkEntry(TypedDict):
    """One chunk reference in the v1-style manifest dict."""

    path: str
    offset: int
    length: int


def id_dtype(n_paths: int, n_inline: int) -> type[np.signedinteger[Any]]:
    """The narrowest signed integer type holding ids ``-1 - n_inline .. n_paths - 1``."""
    for dt in (np.int8, np.int16):
        info = np.iinfo(dt)
        if n_paths - 1 <= info.max and -1 - n_inline >= info.min:
            return dt
    return np.int32


def check_columns(
    path_ids: npt.ArrayLike,
    offsets: npt.ArrayLike,
    lengths: npt.ArrayLike,
    n_paths: int,
    n_inline: int,
) -> Columns:
    """Validate columns against tables of ``n_paths`` paths and ``n_inline`` inline chunks.

    Returns the ids in their narrowest type, and the offsets and lengths as ``uint64``
    with zeros for missing and inline chunks.

    Raises
    ------
    InvalidReferencesError
        If the columns disagree in shape or reference table entries that do not exist.
    """
    raw = np.asarray(path_ids)
    # validate ids in a type that holds them (a wide or float input is not wrapped)
    ids = raw if raw.dtype in (np.int8, np.int16, np.int32) else raw.astype(np.int64)
    offs = np.asarray(offsets, dtype=np.uint64)
    lens = np.asarray(lengths, dtype=np.uint64)
    if not (ids.shape == offs.shape == lens.shape):
        raise InvalidReferencesError(
            "path_ids, offsets and lengths must have the same shape (the chunk grid's); "
            f"got {ids.shape}, {offs.shape} and {lens.shape}."
        )
    if ids.size:
        hi, lo = int(ids.max()), int(ids.min())
        if hi >= n_paths or lo < INLINE_BASE - n_inline + 1:
            raise InvalidReferencesError(
                f"path ids must lie in [{INLINE_BASE - n_inline + 1}, {n_paths - 1}] "
                f"for {n_paths} paths and {n_inline} inline chunks; found ids in "
                f"[{lo}, {hi}]."
            )
        not_ref = ids < 0
        if not_ref.any():
            offs = np.where(not_ref, np.uint64(0), offs)
            lens = np.where(not_ref, np.uint64(0), lens)
    return ids.astype(id_dtype(n_paths, n_inline), copy=False), offs, lens


class Deferred:
    """Columns computed once, on first use, by a loader (thread-safe).

    Parameters
    ----------
    loader : callable
        Returns the columns. Called at most once successfully; if it raises, the error
        propagates and the next use calls it again.

    Examples
    --------
    >>> d = Deferred(lambda: (np.zeros(1, np.int8), np.zeros(1, np.uint64), np.ones(1, np.uint64)))
    >>> d.loaded
    False
    >>> d.get()[2].tolist(), d.loaded
    ([1], True)
    """

    __slots__ = ("_loader", "_lock", "_value")

    def __init__(self, loader: Callable[[], Columns]) -> None:
        self._loader: Callable[[], Columns] | None = loader
        self._lock = threading.Lock()
        self._value: Columns | None = None

    @property
    def loaded(self) -> bool:
        """Whether the columns have been computed."""
        return self._value is not None

    def get(self) -> Columns:
        """The columns, computed by the loader the first time."""
        value = self._value
        if value is not None:
            return value
        with self._lock:
            if self._value is None:
                assert self._loader is not None
                self._value = self._loader()
                self._loader = None  # release what the loader holds (a store, files)
            return self._value


def resolve_chunks(
    ids: npt.NDArray[np.signedinteger[Any]], paths: tuple[str, ...], inline: tuple[bytes, ...]
) -> npt.NDArray[np.object_]:
    """Per-chunk identity objects (path string, inline bytes, or None) for comparisons."""
    table = np.array([None, *paths, *reversed(inline)], dtype=object)
    # index: MISSING -> 0, path k -> 1 + k, inline j (id -2-j) -> 1 + len(paths) + (n-1-j)
    n_inl = len(inline)
    wide = np.asarray(ids, dtype=np.int64)
    idx = np.where(wide >= 0, wide + 1, np.where(wide == MISSING, 0, len(paths) + n_inl + wide + 2))
    return table[idx]


_VECTORISE_ABOVE = 64
"""Concatenations of more manifests than this remap all chunk ids in one pass..."""

_VECTORISE_MEAN_CHUNKS = 512
"""...when the manifests hold fewer chunks than this on average (else the per-manifest
loop is as fast and its temporaries stay the size of one manifest)."""


def concat_ids(
    parts: Sequence[StoredIds],
    n_paths: Sequence[int],
    n_inline: Sequence[int],
    remap: npt.NDArray[np.int32],
    dtype: type[np.signedinteger[Any]],
    axis: int,
) -> StoredIds:
    """Path ids of manifests concatenated along ``axis``, renumbered for merged tables.

    Parameters
    ----------
    parts : sequence of ndarray
        Each manifest's path ids.
    n_paths, n_inline : sequence of int
        Each manifest's table sizes.
    remap : ndarray of int32
        The merged path table's id of each entry of the per-manifest path tables, one
        after another. Inline tables are simply appended.
    dtype : type
        The result's id type.
    axis : int

    Returns
    -------
    ndarray
    """
    path_base = np.cumsum([0, *n_paths[:-1]], dtype=np.int64)
    inline_base = np.cumsum([0, *n_inline[:-1]], dtype=np.int64)
    n_chunks = sum(p.size for p in parts)
    if len(parts) > _VECTORISE_ABOVE and n_chunks < _VECTORISE_MEAN_CHUNKS * len(parts):
        # Many small manifests: one pass over all chunks, tagging each with its owner.
        ids = np.concatenate(parts, axis=axis).astype(np.int64, copy=False)
        new = np.full(ids.shape, MISSING, dtype)
        # the owner of a cell depends only on its position along the axis
        along = np.repeat(np.arange(len(parts)), [a.shape[axis] for a in parts])
        owner = np.broadcast_to(
            along.reshape([-1 if d == axis else 1 for d in range(ids.ndim)]), ids.shape
        )
        ref = ids >= 0
        new[ref] = remap[ids[ref] + path_base[owner[ref]]]
        inl = ids <= INLINE_BASE
        new[inl] = ids[inl] - inline_base[owner[inl]]
        return new
    # Few (possibly large) manifests: remap each into its slice of the result, so
    # temporaries stay the size of one manifest (resident memory stays ~20 B/chunk or less).
    shape = list(parts[0].shape)
    shape[axis] = sum(p.shape[axis] for p in parts)
    new = np.empty(shape, dtype)
    start = 0
    for i, ids_i in enumerate(parts):
        stop = start + ids_i.shape[axis]
        where: list[slice] = [slice(None)] * ids_i.ndim
        where[axis] = slice(start, stop)
        part = new[tuple(where)]
        part[...] = ids_i  # missing stays MISSING
        if n_paths[i]:
            ref_i = ids_i >= 0
            part[ref_i] = remap[ids_i[ref_i] + path_base[i]]
        if n_inline[i]:
            inl_i = ids_i <= INLINE_BASE
            part[inl_i] = ids_i[inl_i] - inline_base[i]
        start = stop
    return new


def path_table(paths: npt.ArrayLike) -> tuple[list[str], npt.NDArray[np.int32]]:
    """The distinct paths of an array of path strings, and each cell's id (``""``:
    :data:`MISSING`)."""
    p = np.asarray(paths, dtype=np.str_)
    table, inverse_flat = np.unique(p, return_inverse=True)
    inverse = np.asarray(inverse_flat, dtype=np.int32).reshape(p.shape)
    table_list = [str(t) for t in table]
    ids = inverse
    if "" in table_list:
        empty = table_list.index("")
        shifted = inverse - (inverse > empty).astype(np.int32)
        ids = np.where(inverse == empty, np.int32(MISSING), shifted).astype(np.int32)
        table_list.pop(empty)
    return table_list, ids


def dict_columns(
    entries: Mapping[str, ChunkEntry], shape: Sequence[int] | None
) -> tuple[npt.NDArray[np.str_], UIntArray, UIntArray]:
    """Path strings (``""`` for missing), offsets and lengths of a v1-style manifest dict.

    Raises
    ------
    InvalidReferencesError
        On malformed keys or entries.
    """
    coords: list[tuple[int, ...]] = []
    for key in entries:
        if not _KEY_RE.match(key):
            raise InvalidReferencesError(
                f"chunk keys must be dot-separated integers such as '0.1'; found {key!r}."
            )
        coords.append(tuple(int(k) for k in key.split(".")))
    ndims = {len(c) for c in coords}
    if len(ndims) > 1:
        raise InvalidReferencesError(
            f"all chunk keys must have the same number of indices; found {sorted(ndims)}."
        )
    if shape is None:
        if not coords:
            raise InvalidReferencesError("an empty manifest needs an explicit grid shape.")
        shape = tuple(int(x) + 1 for x in np.max(np.array(coords), axis=0))
    grid = tuple(int(s) for s in shape)
    if coords and len(coords[0]) != len(grid):
        raise InvalidReferencesError(
            f"chunk keys have {len(coords[0])} indices but the grid has {len(grid)} dims."
        )
    paths = np.full(grid, "", dtype=object)
    offsets = np.zeros(grid, dtype=np.uint64)
    lengths = np.zeros(grid, dtype=np.uint64)
    for c, entry in zip(coords, entries.values(), strict=True):
        if any(i >= s for i, s in zip(c, grid, strict=True)):
            raise InvalidReferencesError(f"chunk key {c} lies outside the grid {grid}.")
        try:
            paths[c] = str(entry["path"])
            offsets[c] = int(entry["offset"])
            lengths[c] = int(entry["length"])
        except (KeyError, TypeError, ValueError, OverflowError) as e:
            raise InvalidReferencesError(
                "each chunk entry must be {'path': str, 'offset': int >= 0, "
                f"'length': int >= 0}}; found {entry!r} ({e})."
            ) from None
    return paths.astype(np.str_), offsets, lengths


def legacy_entries(
    paths: object,
    entries: Mapping[str, ChunkEntry] | None,
    columns: tuple[object, object, object],
    shape: Sequence[int] | None,
    separator: str,
) -> tuple[list[str], npt.NDArray[np.int32], UIntArray, UIntArray]:
    """The columns of VirtualiZarr 2.x's ``ChunkManifest(entries=..., shape=..., separator=...)``.

    Raises
    ------
    InvalidReferencesError
        If columns are given too, or on malformed keys or entries.
    """
    if isinstance(paths, Mapping):
        if entries is not None:
            raise InvalidReferencesError("pass the chunk entries once, not also as entries=.")
        entries, paths = paths, None
    assert entries is not None
    if paths is not None or any(c is not None for c in columns):
        raise InvalidReferencesError(
            "ChunkManifest takes either entries={key: {path, offset, length}} or the columns "
            "(paths, path_ids, offsets, lengths), not both."
        )
    if separator not in (".", "/"):
        raise InvalidReferencesError(f"separator must be '.' or '/'; found {separator!r}.")
    keyed = {k.replace("/", "."): v for k, v in entries.items()} if separator == "/" else entries
    names, offsets, lengths = dict_columns(keyed, shape)
    table, ids = path_table(names)
    return table, ids, offsets, lengths
