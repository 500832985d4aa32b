"""The pure manifest core: chunk manifests, virtual arrays, their algebra and groups (no I/O).

* :mod:`~virtualizarr.manifests.manifest` -- :class:`ChunkManifest`, columnar chunk locations;
* :mod:`~virtualizarr.manifests.array_metadata` -- :class:`ArrayMetadata`, our Zarr v3 array
  metadata (:mod:`~virtualizarr.manifests.data_types`, :mod:`~virtualizarr.manifests.codec_chain`
  and :mod:`~virtualizarr.manifests.chunk_grids` spell its parts as zarr does);
* :mod:`~virtualizarr.manifests.metadata` -- building metadata, chunk-grid helpers;
* :mod:`~virtualizarr.manifests.array` -- :class:`ManifestArray`, the duck array;
* :mod:`~virtualizarr.manifests.array_api` -- the NumPy functions xarray calls on it;
* :mod:`~virtualizarr.manifests.combine` -- when arrays can be combined;
* :mod:`~virtualizarr.manifests.group` -- :class:`VirtualGroup`, what readers produce;
* :mod:`~virtualizarr.manifests.chunk_codecs` -- the GRIB and TIFF codecs our metadata
  names, registered with numcodecs (and with zarr when zarr is handed our metadata;
  :mod:`~virtualizarr.manifests.codecs` is the zarr-facing module).

Nothing here imports zarr.
"""

from virtualizarr.manifests import array_api as _array_api  # registers NumPy functions
from virtualizarr.manifests import chunk_codecs as _codecs  # registers GRIB/TIFF codec ids
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.array_metadata import ArrayMetadata
from virtualizarr.manifests.chunk_grids import (
    ChunkKeyEncoding,
    RectilinearChunkGrid,
    RegularChunkGrid,
)
from virtualizarr.manifests.combine import cf_encoding_attrs, check_combinable
from virtualizarr.manifests.group import (
    VirtualGroup,
    VirtualVariable,
    check_coordinate_names,
    check_dimension_sizes,
)
from virtualizarr.manifests.manifest import MISSING, ChunkEntry, ChunkManifest
from virtualizarr.manifests.metadata import (
    axis_edges,
    chunk_grid_shape,
    make_array_metadata,
    metadata_chunks,
)

del _array_api, _codecs

__all__ = [
    "MISSING",
    "ArrayMetadata",
    "ChunkEntry",
    "ChunkKeyEncoding",
    "ChunkManifest",
    "ManifestArray",
    "RectilinearChunkGrid",
    "RegularChunkGrid",
    "VirtualGroup",
    "VirtualVariable",
    "axis_edges",
    "cf_encoding_attrs",
    "check_coordinate_names",
    "check_combinable",
    "check_dimension_sizes",
    "chunk_grid_shape",
    "make_array_metadata",
    "metadata_chunks",
]
