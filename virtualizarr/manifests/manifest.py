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

A manifest can also be *lazy* (:meth:`ChunkManifest.lazy`): it knows its tables and grid,
and gets its three columns from a loader the first time a chunk is looked up. Everything
that needs only the tables (paths, sources, renaming, the checks of
:mod:`virtualizarr.security` and :mod:`virtualizarr.identity`) leaves it unloaded;
slicing and reshaping stay lazy; anything else loads it.

This module is pure: it never opens a file (a lazy manifest's loader is the reader's).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from virtualizarr.errors import InvalidReferencesError
from virtualizarr.manifests.columns import (
    INLINE_BASE,
    MISSING,
    ChunkEntry,
    Columns,
    Deferred,
    Loader,
    check_columns,
    dict_columns,
    id_dtype,
    legacy_entries,
    path_table,
    resolve_chunks,
)

__all__ = [
    "INLINE_BASE",
    "MISSING",
    "ChunkEntry",
    "ChunkManifest",
    "resolve_chunks",
]

PathIds = npt.NDArray[np.int32]
UIntArray = npt.NDArray[np.uint64]


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
    entries, shape, separator : optional
        VirtualiZarr 2.x's constructor: ``ChunkManifest(entries={"0.0": {"path": ...,
        "offset": ..., "length": ...}}, shape=..., separator=".")`` (or the mapping as
        the first argument) builds the manifest as :meth:`from_dict` does, instead of the
        columns above.

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

    __slots__ = ("_cols", "_grid", "_inline", "_paths", "_present", "_sources")

    def __init__(
        self,
        paths: Sequence[str] | Mapping[str, ChunkEntry] | None = None,
        path_ids: npt.ArrayLike | None = None,
        offsets: npt.ArrayLike | None = None,
        lengths: npt.ArrayLike | None = None,
        inline: Sequence[bytes] = (),
        sources: Sequence[str | None] | None = None,
        *,
        entries: Mapping[str, ChunkEntry] | None = None,
        shape: Sequence[int] | None = None,
        separator: str = ".",
    ) -> None:
        if entries is not None or isinstance(paths, Mapping):  # VirtualiZarr 2.x's spelling
            paths, path_ids, offsets, lengths = legacy_entries(
                paths, entries, (path_ids, offsets, lengths), shape, separator
            )
        if paths is None or path_ids is None or offsets is None or lengths is None:
            raise TypeError("ChunkManifest needs paths, path_ids, offsets and lengths.")
        table = tuple(str(p) for p in paths)
        inl = tuple(bytes(b) for b in inline)
        cols = check_columns(path_ids, offsets, lengths, len(table), len(inl))
        self._init(table, inl, sources, cols[0].shape, cols, None)

    def _init(
        self,
        paths: tuple[str, ...],
        inline: tuple[bytes, ...],
        sources: Sequence[str | None] | None,
        grid: tuple[int, ...],
        cols: Columns | Deferred,
        present: int | None,
    ) -> None:
        srcs: tuple[str | None, ...] = (None,) * len(paths) if sources is None else tuple(sources)
        if len(srcs) != len(paths):
            raise InvalidReferencesError(
                f"sources must give one identity (or None) per path; got {len(srcs)} for "
                f"{len(paths)} paths."
            )
        self._paths = paths
        self._sources = srcs
        self._inline = inline
        self._grid = tuple(int(g) for g in grid)
        self._cols = cols
        self._present = present

    @classmethod
    def _of(
        cls,
        paths: tuple[str, ...],
        inline: tuple[bytes, ...],
        sources: Sequence[str | None] | None,
        grid: tuple[int, ...],
        cols: Columns | Deferred,
        present: int | None = None,
    ) -> ChunkManifest:
        """A manifest from parts already checked (or columns deferred)."""
        out = cls.__new__(cls)
        out._init(paths, inline, sources, grid, cols, present)
        return out

    def _columns(self) -> Columns:
        """The path ids (narrowest type), offsets and lengths, loaded if need be."""
        cols = self._cols
        return cols.get() if isinstance(cols, Deferred) else cols

    def _derive(
        self,
        op: Callable[[Columns], tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]],
        grid: tuple[int, ...],
        paths: tuple[str, ...] | None = None,
        sources: Sequence[str | None] | None = None,
    ) -> ChunkManifest:
        """A manifest whose columns are ``op`` of this one's: now if they are loaded,
        else on first use (the tables are those given, or this manifest's)."""
        table = self._paths if paths is None else paths
        srcs = self._sources if sources is None else sources
        inl = self._inline
        if not isinstance(self._cols, Deferred) or self._cols.loaded:
            return ChunkManifest(table, *op(self._columns()), inl, srcs)

        def load() -> Columns:
            return check_columns(*op(self._columns()), len(table), len(inl))

        return ChunkManifest._of(table, inl, srcs, grid, Deferred(load))

    def __reduce__(self) -> tuple[Any, ...]:
        # pickled (dask, multiprocessing) with its columns: a loader holds open stores
        return (ChunkManifest, (self._paths, *self._columns(), self._inline, self._sources))

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
        table, ids = path_table(paths)
        return cls(table, ids, offsets, lengths)

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
        return cls.from_arrays(*dict_columns(entries, shape))

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

    @classmethod
    def lazy(
        cls,
        paths: Sequence[str],
        grid_shape: Sequence[int],
        loader: Loader,
        *,
        inline: Sequence[bytes] = (),
        sources: Sequence[str | None] | None = None,
        present: int | None = None,
    ) -> ChunkManifest:
        """A manifest whose columns a ``loader`` gives on first use (a reader's lazy load).

        The tables are known now; the columns -- path ids, offsets and lengths, as
        :class:`ChunkManifest` takes them -- are asked of ``loader`` once, the first time
        anything needs them, and checked then like the constructor's arguments.

        Parameters
        ----------
        paths : sequence of str
            The path table.
        grid_shape : sequence of int
            The chunk grid's shape; the loaded columns must have it.
        loader : callable
            Returns ``(path_ids, offsets, lengths)``. It may do I/O (it is the reader's);
            if it raises, the error reaches whoever looked up a chunk, and the next look-up
            calls it again.
        inline : sequence of bytes, optional
            The inline table (ids ``<= -2`` of the loaded columns index it).
        sources : sequence of str or None, optional
            As for :class:`ChunkManifest`.
        present : int, optional
            The number of chunks present (referenced or inline), as the document records
            it: ``len()`` answers it without loading, and the loaded columns must agree.

        Returns
        -------
        ChunkManifest

        Raises
        ------
        InvalidReferencesError
            When the columns load, if they are malformed or disagree with ``grid_shape``
            or ``present``.

        Examples
        --------
        >>> m = ChunkManifest.lazy(["file:///a.nc"], (2,), lambda: ([0, -1], [8, 0], [4, 0]),
        ...                        present=1)
        >>> len(m), m.loaded
        (1, False)
        >>> m.get_chunk((0,)), m.loaded
        ({'path': 'file:///a.nc', 'offset': 8, 'length': 4}, True)
        """
        table = tuple(str(p) for p in paths)
        inl = tuple(bytes(b) for b in inline)
        grid = tuple(int(s) for s in grid_shape)

        def load() -> Columns:
            cols = check_columns(*loader(), len(table), len(inl))
            if cols[0].shape != grid:
                raise InvalidReferencesError(
                    f"the manifest's columns have the shape {cols[0].shape}; expected the "
                    f"chunk grid's {grid}. The references are damaged, or were rewritten "
                    "since they were opened: open them again."
                )
            if present is not None and (found := int(np.count_nonzero(cols[0] != MISSING))) != (
                present
            ):
                raise InvalidReferencesError(
                    f"the manifest holds {found} chunks; its metadata records {present}. The "
                    "references are damaged, or were rewritten since they were opened: open "
                    "them again."
                )
            return cols

        return cls._of(table, inl, sources, grid, Deferred(load), present)

    # ------------------------------------------------------------------ accessors
    @property
    def paths(self) -> tuple[str, ...]:
        """The table of distinct paths."""
        return self._paths

    def referenced_paths(self) -> tuple[str, ...]:
        """The entries of :attr:`paths` that at least one chunk refers to, in table order.

        Slicing a manifest keeps its whole path table; writers that list or register
        sources need only the paths still in use.

        Returns
        -------
        tuple of str
        """
        if not self._paths:
            return ()
        ids = self.path_ids
        used = np.bincount(ids[ids >= 0], minlength=len(self._paths)) > 0
        return tuple(p for p, u in zip(self._paths, used.tolist(), strict=True) if u)

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
        return ChunkManifest._of(
            self._paths, self._inline, srcs, self._grid, self._cols, self._present
        )

    @property
    def loaded(self) -> bool:
        """Whether the columns are in memory (False until first use for a lazy manifest)."""
        return not isinstance(self._cols, Deferred) or self._cols.loaded

    @property
    def path_ids(self) -> PathIds:
        """Per-chunk path ids as ``int32`` (see the module docstring for their meaning).

        The manifest holds them in a narrower type when its tables are small; this
        returns a widened copy in that case, so arithmetic on the ids cannot overflow.
        """
        return self._columns()[0].astype(np.int32, copy=False)

    @property
    def offsets(self) -> UIntArray:
        """Per-chunk byte offsets."""
        return self._columns()[1]

    @property
    def lengths(self) -> UIntArray:
        """Per-chunk byte lengths."""
        return self._columns()[2]

    @property
    def inline(self) -> tuple[bytes, ...]:
        """The table of inline chunks."""
        return self._inline

    @property
    def shape_chunk_grid(self) -> tuple[int, ...]:
        """Shape of the chunk grid."""
        return self._grid

    @property
    def ndim_chunk_grid(self) -> int:
        """Number of dimensions of the chunk grid."""
        return len(self._grid)

    @property
    def nbytes(self) -> int:
        """Memory held by this manifest once loaded, in bytes (arrays plus tables)."""
        tables = sum(len(p) + 49 for p in self._paths) + sum(len(b) + 33 for b in self._inline)
        width = np.dtype(id_dtype(len(self._paths), len(self._inline))).itemsize
        return math.prod(self._grid) * (16 + width) + tables

    def __len__(self) -> int:
        """Number of chunks that are present (referenced or inline)."""
        if self._present is not None and not self.loaded:
            return self._present  # as recorded; the columns are checked against it on load
        return int(np.count_nonzero(self._columns()[0] != MISSING))

    def __repr__(self) -> str:
        return (
            f"ChunkManifest<grid={self.shape_chunk_grid}, present={len(self)}, "
            f"paths={len(self._paths)}, inline={len(self._inline)}>"
        )

    def get_chunk(self, coords: tuple[int, ...]) -> ChunkEntry | bytes | None:
        """Return the reference, inline bytes, or None (missing) of one chunk."""
        ids, offs, lens = self._columns()
        pid = int(ids[coords])
        if pid == MISSING:
            return None
        if pid <= INLINE_BASE:
            return self._inline[INLINE_BASE - pid]
        return {
            "path": self._paths[pid],
            "offset": int(offs[coords]),
            "length": int(lens[coords]),
        }

    def iter_keys(self, separator: str = ".") -> Iterator[tuple[str, tuple[int, ...]]]:
        """Yield ``(key, coords)`` for every present chunk, in C order."""
        ids = self._columns()[0]
        if ids.ndim == 0:
            if int(ids) != MISSING:
                yield "0", ()
            return
        for coords in zip(*np.nonzero(ids != MISSING), strict=True):
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
        a_ids, a_offs, a_lens = self._columns()
        b_ids, b_offs, b_lens = other._columns()
        return bool(
            np.array_equal(
                resolve_chunks(a_ids, self._paths, self._inline),
                resolve_chunks(b_ids, other._paths, other._inline),
            )
            and np.array_equal(a_offs, b_offs)
            and np.array_equal(a_lens, b_lens)
        )

    def rename_paths(self, new: Mapping[str, str] | Callable[[str], str]) -> ChunkManifest:
        """Return a copy whose path table is rewritten by a mapping or a callable.

        Paths a mapping does not name are kept. If two old paths get the same new name,
        their table entries merge. A lazy manifest stays lazy.
        """
        if isinstance(new, Mapping):
            table = [str(new.get(p, p)) for p in self._paths]
        else:
            table = [str(new(p)) for p in self._paths]
        if len(set(table)) == len(table):
            return ChunkManifest._of(
                tuple(table), self._inline, self._sources, self._grid, self._cols, self._present
            )
        uniq, inverse = np.unique(np.array(table, dtype=object), return_inverse=True)
        remap = inverse.astype(np.int32)
        merged: list[str | None] = [None] * len(uniq)
        for k, src in zip(remap.tolist(), self._sources, strict=True):
            merged[k] = merged[k] or src  # merged entries keep the first identity recorded

        def op(cols: Columns) -> tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]:
            ids, offs, lens = cols
            wide = ids.astype(np.int32)
            return np.where(wide >= 0, remap[np.maximum(wide, 0)], wide), offs, lens

        return self._derive(op, self._grid, tuple(str(u) for u in uniq), merged)

    def fill_missing(self, chunk: bytes) -> ChunkManifest:
        """Return a copy whose missing chunks all become the one inline ``chunk``."""
        ids, offs, lens = self._columns()
        missing = ids == MISSING
        if not missing.any():
            return self
        new = np.where(missing, np.int32(INLINE_BASE - len(self._inline)), ids)
        return ChunkManifest(self._paths, new, offs, lens, (*self._inline, chunk), self._sources)

    def __getitem__(self, key: tuple[slice, ...]) -> ChunkManifest:
        """Select a sub-grid of chunks with slices (no per-chunk work; stays lazy)."""
        grid = np.broadcast_to(np.False_, self._grid)[key].shape
        return self._derive(lambda c: (c[0][key], c[1][key], c[2][key]), grid)

    def broadcast_to(self, grid_shape: Sequence[int]) -> ChunkManifest:
        """Broadcast the grid to a larger shape (repeating chunk references)."""
        shape = tuple(int(s) for s in grid_shape)

        def op(c: Columns) -> tuple[npt.ArrayLike, npt.ArrayLike, npt.ArrayLike]:
            ids, offs, lens = (np.broadcast_to(a, shape).copy() for a in c)
            return ids, offs, lens

        return self._derive(op, shape)

    def reshape(self, grid_shape: Sequence[int]) -> ChunkManifest:
        """Reshape the grid (used to add or drop length-one axes; stays lazy)."""
        shape = tuple(int(s) for s in grid_shape)
        if math.prod(shape) != math.prod(self._grid):
            raise ValueError(f"cannot reshape a chunk grid of {self._grid} into {shape}")
        return self._derive(
            lambda c: (c[0].reshape(shape), c[1].reshape(shape), c[2].reshape(shape)), shape
        )
