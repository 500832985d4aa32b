"""The manifest-store reader: Zarr v3 stores written by ``ds.virtualize.to_zarr``.

* :mod:`~virtualizarr.readers.zarr_manifest.files` -- the store's files, listed or by key;
* :mod:`~virtualizarr.readers.zarr_manifest.reader` -- documents to virtual arrays.
"""

from virtualizarr.readers.zarr_manifest.reader import (
    READER,
    ZarrManifestReader,
    open_manifest_store,
)

__all__ = ["READER", "ZarrManifestReader", "open_manifest_store"]
