"""The pure manifest core: chunk manifests, virtual arrays, their algebra and groups (no I/O).

* :mod:`~virtualizarr.manifests.manifest` -- :class:`ChunkManifest`, columnar chunk locations;
* :mod:`~virtualizarr.manifests.metadata` -- Zarr v3 array metadata and chunk grids;
* :mod:`~virtualizarr.manifests.array` -- :class:`ManifestArray`, the duck array;
* :mod:`~virtualizarr.manifests.array_api` -- the NumPy functions xarray calls on it;
* :mod:`~virtualizarr.manifests.combine` -- when arrays can be combined;
* :mod:`~virtualizarr.manifests.group` -- :class:`VirtualGroup`, what readers produce;
* :mod:`~virtualizarr.manifests.codecs` -- the GRIB and TIFF codecs our metadata names,
  registered lazily with numcodecs and zarr.
"""

from virtualizarr.manifests import array_api as _array_api  # registers NumPy functions
from virtualizarr.manifests import codecs as _codecs  # registers GRIB/TIFF codec names
from virtualizarr.manifests.array import ManifestArray
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
    "ChunkEntry",
    "ChunkManifest",
    "ManifestArray",
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
