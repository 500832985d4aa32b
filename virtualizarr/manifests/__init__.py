"""The pure manifest core: chunk manifests, virtual arrays and their algebra (no I/O)."""

from virtualizarr.manifests import array_api as _array_api  # registers NumPy functions
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.compat import cf_encoding_attrs, check_combinable
from virtualizarr.manifests.manifest import MISSING, ChunkEntry, ChunkManifest
from virtualizarr.manifests.metadata import (
    axis_edges,
    chunk_grid_shape,
    make_array_metadata,
    metadata_chunks,
)

del _array_api

__all__ = [
    "MISSING",
    "ChunkEntry",
    "ChunkManifest",
    "ManifestArray",
    "axis_edges",
    "cf_encoding_attrs",
    "check_combinable",
    "chunk_grid_shape",
    "make_array_metadata",
    "metadata_chunks",
]
