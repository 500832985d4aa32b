"""Concatenating and stacking chunk manifests: NumPy concatenation plus a table merge."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from virtualizarr.manifests.columns import concat_ids, id_dtype
from virtualizarr.manifests.manifest import ChunkManifest

__all__ = ["concatenate_manifests", "stack_manifests"]


def concatenate_manifests(manifests: Iterable[ChunkManifest], axis: int) -> ChunkManifest:
    """Concatenate manifests along a chunk-grid axis, merging their tables.

    Lazy manifests are loaded (each once).

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
    cols = [(m.path_ids, m.offsets, m.lengths) for m in ms]  # loads lazy manifests
    ids = concat_ids(
        [c[0] for c in cols],
        [len(m.paths) for m in ms],
        [len(m.inline) for m in ms],
        remap,
        id_dtype(len(table), len(inline)),
        axis,
    )
    return ChunkManifest(
        list(table),
        ids,
        np.concatenate([c[1] for c in cols], axis=axis),
        np.concatenate([c[2] for c in cols], axis=axis),
        inline,
        [sources[p] for p in table],
    )


def stack_manifests(manifests: Iterable[ChunkManifest], axis: int) -> ChunkManifest:
    """Stack manifests along a new grid axis (each gets a length-one axis, then concat)."""
    ms = list(manifests)
    expanded = [m.reshape((*m.shape_chunk_grid[:axis], 1, *m.shape_chunk_grid[axis:])) for m in ms]
    return concatenate_manifests(expanded, axis)
