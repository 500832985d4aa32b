"""Columnar chunk manifests: where each chunk of an array lives.

A :class:`ChunkManifest` records, for every cell of an array's chunk grid, one of

* a byte range ``(path, offset, length)`` in some file,
* inline bytes (the encoded chunk itself, for tiny or unaddressable data), or
* nothing: the chunk is missing and reads as the array's fill value.

It stores this as NumPy arrays shaped like the chunk grid: a path id, a ``uint64``
offset and a ``uint64`` length per chunk, plus two small tables shared by all chunks:
distinct paths, and inline byte strings. Path ids are held in the narrowest signed
integer type that fits the tables (``int8`` up to 127 paths, ``int16`` up to 32,767,
else ``int32``), so a reference costs 17 to 20 bytes. A path id ``>= 0`` indexes
the path table, :data:`MISSING` marks a missing chunk, and ids ``<= -2`` index the inline
table (``-2 - k`` is inline entry ``k``). Concatenation is ``np.concatenate`` plus a merge
of the tables: no Python work per chunk.

This module is pure: it never opens a file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, Final, TypedDict

import numpy as np
import numpy.typing as npt

from virtualizarr.errors import InvalidReferencesError

__all__ = [
    "INLINE_BASE",
    "MISSING",
    "ChunkEntry",
    "ChunkManifest",
    "concatenate_manifests",
    "resolve_chunks",
    "stack_manifests",
]

MISSING: Final = -1
"""Path id of a chunk that is not stored (it reads as the fill value)."""

INLINE_BASE: Final = -2
"""Path id of the first inline chunk; inline chunk ``i`` has path id ``INLINE_BASE - i``."""
_KEY_RE = re.compile(r"^\d+(\.\d+)*$")


class ChunkEntry(TypedDict):
    """One chunk reference in the v1-style manifest dict."""

    path: str
    offset: int
    length: int


PathIds = npt.NDArray[np.int32]
UIntArray = npt.NDArray[np.uint64]
_StoredIds = npt.NDArray[np.signedinteger[Any]]


def _id_dtype(n_paths: int, n_inline: int) -> type[np.signedinteger[Any]]:
    """The narrowest signed integer type holding ids ``-1 - n_inline .. n_paths - 1``."""
    for dt in (np.int8, np.int16):
        info = np.iinfo(dt)
        if n_paths - 1 <= info.max and -1 - n_inline >= info.min:
            return dt
    return np.int32


class ChunkManifest:
    """Locations of the chunks of one array, as columnar NumPy arrays.

    Parameters
    ----------
    paths : sequence of str
        The table of distinct source paths (absolute URIs such as ``file:///data/a.nc``).
    path_ids : ndarray of signed integers
        Per chunk-grid cell: an index into ``paths``, :data:`MISSING`, or ``-2 - k`` for
        entry ``k`` of ``inline``. Its shape is the chunk grid's shape.
    offsets, lengths : ndarray of uint64
        Byte offset and length of each chunk, shaped like ``path_ids``. Ignored (and
        normalized to zero) for missing and inline chunks.
    inline : sequence of bytes, optional
        Encoded chunks stored in the manifest itself.
    sources : sequence of str or None, optional
        Parallel to ``paths``: each source's identity when it was virtualized (an opaque
        token, see :mod:`virtualizarr.identity`), or None when unknown. Carried through
        concatenation, slicing and :meth:`rename_paths`; ignored by :meth:`equals`.

    Raises
    ------
    InvalidReferencesError
        If the arrays disagree in shape or reference table entries that do not exist.

    Examples
    --------
    >>> m = ChunkManifest.from_dict({"0": {"path": "file:///a.nc", "offset": 8, "length": 4}})
    >>> m.shape_chunk_grid
    (1,)
    >>> m.to_dict()["0"]["offset"]
    8
    """

    __slots__ = ("_inline", "_lengths", "_offsets", "_path_ids", "_paths", "_sources")

    def __init__(
        self,
        paths: Sequence[str],
        path_ids: npt.ArrayLike,
        offsets: npt.ArrayLike,
        lengths: npt.ArrayLike,
        inline: Sequence[bytes] = (),
        sources: Sequence[str | None] | None = None,
    ) -> None:
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
        table = tuple(str(p) for p in paths)
        inl = tuple(bytes(b) for b in inline)
        if ids.size:
            hi, lo = int(ids.max()), int(ids.min())
            if hi >= len(table) or lo < INLINE_BASE - len(inl) + 1:
                raise InvalidReferencesError(
                    f"path ids must lie in [{INLINE_BASE - len(inl) + 1}, {len(table) - 1}] "
                    f"for {len(table)} paths and {len(inl)} inline chunks; found ids in "
                    f"[{lo}, {hi}]."
                )
            not_ref = ids < 0
            if not_ref.any():
                offs = np.where(not_ref, np.uint64(0), offs)
                lens = np.where(not_ref, np.uint64(0), lens)
        srcs: tuple[str | None, ...] = (None,) * len(table) if sources is None else tuple(sources)
        if len(srcs) != len(table):
            raise InvalidReferencesError(
                f"sources must give one identity (or None) per path; got {len(srcs)} for "
                f"{len(table)} paths."
            )
        self._paths = table
        self._sources = srcs
        self._path_ids: _StoredIds = ids.astype(_id_dtype(len(table), len(inl)), copy=False)
        self._offsets = offs
        self._lengths = lens
        self._inline = inl

    # ------------------------------------------------------------------ constructors
    @classmethod
    def from_arrays(
        cls,
        paths: npt.ArrayLike,
        offsets: npt.ArrayLike,
        lengths: npt.ArrayLike,
    ) -> ChunkManifest:
        """Build a manifest from an array of path strings shaped like the chunk grid.

        An empty string marks a missing chunk.

        Parameters
        ----------
        paths : array_like of str
            One path per chunk (``""`` for a missing chunk).
        offsets, lengths : array_like of int
            Byte offsets and lengths, the same shape as ``paths``.

        Returns
        -------
        ChunkManifest
        """
        p = np.asarray(paths, dtype=np.str_)
        table, inverse_flat = np.unique(p, return_inverse=True)
        inverse: PathIds = np.asarray(inverse_flat, dtype=np.int32).reshape(p.shape)
        table_list = [str(t) for t in table]
        ids: PathIds = np.asarray(inverse, dtype=np.int32)
        if "" in table_list:
            empty = table_list.index("")
            shifted = inverse - (inverse > empty).astype(np.int32)
            ids = np.where(inverse == empty, np.int32(MISSING), shifted).astype(np.int32)
            table_list.pop(empty)
        return cls(table_list, ids, offsets, lengths)

    @classmethod
    def from_dict(
        cls, entries: Mapping[str, ChunkEntry], shape: Sequence[int] | None = None
    ) -> ChunkManifest:
        """Build a manifest from ``{"i.j": {"path": ..., "offset": ..., "length": ...}}``.

        Parameters
        ----------
        entries : mapping
            Chunk keys (indices joined by ``.``) to chunk references. Keys absent from
            the mapping are missing chunks.
        shape : sequence of int, optional
            The chunk grid's shape. Inferred from the largest key when omitted.

        Returns
        -------
        ChunkManifest

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
        return cls.from_arrays(paths.astype(np.str_), offsets, lengths)

    @classmethod
    def single(cls, path: str, offset: int, length: int, ndim: int) -> ChunkManifest:
        """A manifest of one chunk covering the whole array (a grid of ones)."""
        grid = (1,) * ndim
        return cls(
            [path],
            np.zeros(grid, np.int32),
            np.full(grid, offset, np.uint64),
            np.full(grid, length, np.uint64),
        )

    @classmethod
    def empty(cls, grid_shape: Sequence[int]) -> ChunkManifest:
        """A manifest whose chunks are all missing."""
        grid = tuple(int(s) for s in grid_shape)
        zeros = np.zeros(grid, np.uint64)
        return cls([], np.full(grid, MISSING, np.int32), zeros, zeros)

    @classmethod
    def inlined(cls, chunks: npt.NDArray[np.object_]) -> ChunkManifest:
        """A manifest whose chunks are all inline; ``chunks`` holds bytes or None (missing)."""
        flat = chunks.ravel()
        present = [i for i, c in enumerate(flat) if c is not None]
        ids = np.full(flat.shape, MISSING, np.int32)
        ids[present] = INLINE_BASE - np.arange(len(present), dtype=np.int32)
        zeros = np.zeros(chunks.shape, np.uint64)
        return cls([], ids.reshape(chunks.shape), zeros, zeros, [flat[i] for i in present])

    # ------------------------------------------------------------------ accessors
    @property
    def paths(self) -> tuple[str, ...]:
        """The table of distinct paths."""
        return self._paths

    @property
    def sources(self) -> tuple[str | None, ...]:
        """Per entry of :attr:`paths`: the source's recorded identity token, or None."""
        return self._sources

    def with_sources(self, identities: Mapping[str, str | None]) -> ChunkManifest:
        """Return a copy recording ``identities`` (path -> token) for the paths it names.

        Parameters
        ----------
        identities : mapping of str to str or None
            Identity tokens by path; paths not named keep their current one.

        Returns
        -------
        ChunkManifest
        """
        srcs = [identities.get(p, s) for p, s in zip(self._paths, self._sources, strict=True)]
        return ChunkManifest(
            self._paths, self._path_ids, self._offsets, self._lengths, self._inline, srcs
        )

    @property
    def path_ids(self) -> PathIds:
        """Per-chunk path ids as ``int32`` (see the module docstring for their meaning).

        The manifest holds them in a narrower type when its tables are small; this
        returns a widened copy in that case, so arithmetic on the ids cannot overflow.
        """
        return self._path_ids.astype(np.int32, copy=False)

    @property
    def offsets(self) -> UIntArray:
        """Per-chunk byte offsets."""
        return self._offsets

    @property
    def lengths(self) -> UIntArray:
        """Per-chunk byte lengths."""
        return self._lengths

    @property
    def inline(self) -> tuple[bytes, ...]:
        """The table of inline chunks."""
        return self._inline

    @property
    def shape_chunk_grid(self) -> tuple[int, ...]:
        """Shape of the chunk grid."""
        return tuple(int(s) for s in self._path_ids.shape)

    @property
    def ndim_chunk_grid(self) -> int:
        """Number of dimensions of the chunk grid."""
        return self._path_ids.ndim

    @property
    def nbytes(self) -> int:
        """Memory held by this manifest, in bytes (arrays plus tables)."""
        tables = sum(len(p) + 49 for p in self._paths) + sum(len(b) + 33 for b in self._inline)
        return int(self._path_ids.nbytes + self._offsets.nbytes + self._lengths.nbytes) + tables

    def __len__(self) -> int:
        """Number of chunks that are present (referenced or inline)."""
        return int(np.count_nonzero(self._path_ids != MISSING))

    def __repr__(self) -> str:
        return (
            f"ChunkManifest<grid={self.shape_chunk_grid}, present={len(self)}, "
            f"paths={len(self._paths)}, inline={len(self._inline)}>"
        )

    def get_chunk(self, coords: tuple[int, ...]) -> ChunkEntry | bytes | None:
        """Return the reference, inline bytes, or None (missing) of one chunk."""
        pid = int(self._path_ids[coords])
        if pid == MISSING:
            return None
        if pid <= INLINE_BASE:
            return self._inline[INLINE_BASE - pid]
        return {
            "path": self._paths[pid],
            "offset": int(self._offsets[coords]),
            "length": int(self._lengths[coords]),
        }

    def iter_keys(self, separator: str = ".") -> Iterator[tuple[str, tuple[int, ...]]]:
        """Yield ``(key, coords)`` for every present chunk, in C order."""
        if self._path_ids.ndim == 0:
            if int(self._path_ids) != MISSING:
                yield "0", ()
            return
        for coords in zip(*np.nonzero(self._path_ids != MISSING), strict=True):
            c = tuple(int(i) for i in coords)
            yield separator.join(map(str, c)) if c else "0", c

    def to_dict(self) -> dict[str, ChunkEntry]:
        """The v1-style dict of referenced chunks (inline and missing chunks omitted)."""
        out: dict[str, ChunkEntry] = {}
        for key, c in self.iter_keys():
            entry = self.get_chunk(c)
            if isinstance(entry, dict):
                out[key] = entry
        return out

    # ------------------------------------------------------------------ algebra
    def equals(self, other: object) -> bool:
        """True if both manifests reference exactly the same bytes for every chunk."""
        if not isinstance(other, ChunkManifest):
            return False
        if self.shape_chunk_grid != other.shape_chunk_grid:
            return False
        a_paths = resolve_chunks(self._path_ids, self._paths, self._inline)
        b_paths = resolve_chunks(other._path_ids, other._paths, other._inline)
        return bool(
            np.array_equal(a_paths, b_paths)
            and np.array_equal(self._offsets, other._offsets)
            and np.array_equal(self._lengths, other._lengths)
        )

    def rename_paths(self, new: Mapping[str, str] | Callable[[str], str]) -> ChunkManifest:
        """Return a copy whose path table is rewritten by a mapping or a callable.

        Paths a mapping does not name are kept. If two old paths get the same new name,
        their table entries merge.
        """
        if isinstance(new, Mapping):
            table = [str(new.get(p, p)) for p in self._paths]
        else:
            table = [str(new(p)) for p in self._paths]
        if len(set(table)) == len(table):
            return ChunkManifest(
                table, self._path_ids, self._offsets, self._lengths, self._inline, self._sources
            )
        uniq, inverse = np.unique(np.array(table, dtype=object), return_inverse=True)
        remap = inverse.astype(np.int32)
        ids = np.where(self._path_ids >= 0, remap[np.maximum(self._path_ids, 0)], self._path_ids)
        merged: list[str | None] = [None] * len(uniq)
        for k, src in zip(remap.tolist(), self._sources, strict=True):
            merged[k] = merged[k] or src  # merged entries keep the first identity recorded
        return ChunkManifest(list(uniq), ids, self._offsets, self._lengths, self._inline, merged)

    def fill_missing(self, chunk: bytes) -> ChunkManifest:
        """Return a copy whose missing chunks all become the one inline ``chunk``."""
        missing = self._path_ids == MISSING
        if not missing.any():
            return self
        ids = np.where(missing, np.int32(INLINE_BASE - len(self._inline)), self._path_ids)
        return ChunkManifest(
            self._paths, ids, self._offsets, self._lengths, (*self._inline, chunk), self._sources
        )

    def __getitem__(self, key: tuple[slice, ...]) -> ChunkManifest:
        """Select a sub-grid of chunks with slices (no per-chunk work)."""
        return ChunkManifest(
            self._paths,
            self._path_ids[key],
            self._offsets[key],
            self._lengths[key],
            self._inline,
            self._sources,
        )

    def broadcast_to(self, grid_shape: Sequence[int]) -> ChunkManifest:
        """Broadcast the grid to a larger shape (repeating chunk references)."""
        shape = tuple(int(s) for s in grid_shape)
        return ChunkManifest(
            self._paths,
            np.broadcast_to(self._path_ids, shape).copy(),
            np.broadcast_to(self._offsets, shape).copy(),
            np.broadcast_to(self._lengths, shape).copy(),
            self._inline,
            self._sources,
        )

    def reshape(self, grid_shape: Sequence[int]) -> ChunkManifest:
        """Reshape the grid (used to add or drop length-one axes)."""
        shape = tuple(int(s) for s in grid_shape)
        return ChunkManifest(
            self._paths,
            self._path_ids.reshape(shape),
            self._offsets.reshape(shape),
            self._lengths.reshape(shape),
            self._inline,
            self._sources,
        )


def resolve_chunks(
    ids: PathIds, paths: tuple[str, ...], inline: tuple[bytes, ...]
) -> npt.NDArray[np.object_]:
    """Per-chunk identity objects (path string, inline bytes, or None) for comparisons."""
    table = np.array([None, *paths, *reversed(inline)], dtype=object)
    # index: MISSING -> 0, path k -> 1 + k, inline j (id -2-j) -> 1 + len(paths) + (n-1-j)
    n_inl = len(inline)
    idx = np.where(ids >= 0, ids + 1, np.where(ids == MISSING, 0, len(paths) + n_inl + ids + 2))
    return table[idx]


_VECTORISE_ABOVE = 64
"""Concatenations of more manifests than this remap all chunk ids in one pass..."""

_VECTORISE_MEAN_CHUNKS = 512
"""...when the manifests hold fewer chunks than this on average (else the per-manifest
loop is as fast and its temporaries stay the size of one manifest)."""


def concatenate_manifests(manifests: Iterable[ChunkManifest], axis: int) -> ChunkManifest:
    """Concatenate manifests along a chunk-grid axis, merging their tables.

    Parameters
    ----------
    manifests : iterable of ChunkManifest
        Manifests whose grids agree on every axis but ``axis``.
    axis : int
        The grid axis to concatenate along.

    Returns
    -------
    ChunkManifest
    """
    ms = list(manifests)
    # One merged path table, first-seen order; remap[k] is the new id of the k-th path of
    # the concatenated per-manifest tables.
    all_paths = [p for m in ms for p in m.paths]
    table: dict[str, int] = {}
    remap = np.fromiter(
        (table.setdefault(p, len(table)) for p in all_paths), np.int32, len(all_paths)
    )
    sources: dict[str, str | None] = dict.fromkeys(table)
    for p, src in zip(all_paths, (s for m in ms for s in m.sources), strict=True):
        sources[p] = sources[p] or src
    inline = [b for m in ms for b in m.inline]
    id_dtype = _id_dtype(len(table), len(inline))
    path_base = np.cumsum([0] + [len(m.paths) for m in ms[:-1]], dtype=np.int64)
    inline_base = np.cumsum([0] + [len(m.inline) for m in ms[:-1]], dtype=np.int64)
    n_chunks = sum(m._path_ids.size for m in ms)
    if len(ms) > _VECTORISE_ABOVE and n_chunks < _VECTORISE_MEAN_CHUNKS * len(ms):
        # Many small manifests: one pass over all chunks, tagging each with its owner.
        stored = [m._path_ids for m in ms]
        ids = np.concatenate(stored, axis=axis).astype(np.int64, copy=False)
        new = np.full(ids.shape, MISSING, id_dtype)
        # the owner of a cell depends only on its position along the axis
        along = np.repeat(np.arange(len(ms)), [a.shape[axis] for a in stored])
        owner = np.broadcast_to(
            along.reshape([-1 if d == axis else 1 for d in range(ids.ndim)]), ids.shape
        )
        ref = ids >= 0
        new[ref] = remap[ids[ref] + path_base[owner[ref]]]
        inl = ids <= INLINE_BASE
        new[inl] = ids[inl] - inline_base[owner[inl]]
    else:
        # Few (possibly large) manifests: remap each into its slice of the result, so
        # temporaries stay the size of one manifest (resident memory stays ~20 B/chunk or less).
        shape = list(ms[0].shape_chunk_grid)
        shape[axis] = sum(m.shape_chunk_grid[axis] for m in ms)
        new = np.empty(shape, id_dtype)
        start = 0
        for i, m in enumerate(ms):
            ids_i = m._path_ids
            stop = start + ids_i.shape[axis]
            where: list[slice] = [slice(None)] * ids_i.ndim
            where[axis] = slice(start, stop)
            part = new[tuple(where)]
            part[...] = ids_i  # missing stays MISSING
            if m.paths:
                ref_i = ids_i >= 0
                part[ref_i] = remap[ids_i[ref_i] + path_base[i]]
            if m.inline:
                inl_i = ids_i <= INLINE_BASE
                part[inl_i] = ids_i[inl_i] - inline_base[i]
            start = stop
    return ChunkManifest(
        list(table),
        new,
        np.concatenate([m.offsets for m in ms], axis=axis),
        np.concatenate([m.lengths for m in ms], axis=axis),
        inline,
        [sources[p] for p in table],
    )


def stack_manifests(manifests: Iterable[ChunkManifest], axis: int) -> ChunkManifest:
    """Stack manifests along a new grid axis (each gets a length-one axis, then concat)."""
    ms = list(manifests)
    expanded = [m.reshape((*m.shape_chunk_grid[:axis], 1, *m.shape_chunk_grid[axis:])) for m in ms]
    return concatenate_manifests(expanded, axis)
