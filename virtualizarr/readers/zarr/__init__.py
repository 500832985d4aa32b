"""The Zarr store reader: plain Zarr v2 and v3 stores, each chunk object referenced.

* :mod:`~virtualizarr.readers.zarr.reader` -- the store's hierarchy and arrays;
* :mod:`~virtualizarr.readers.zarr.chunks` -- chunk manifests from the listing, and byte
  ranges inside shards from their indexes.

The metadata documents themselves are interpreted by :mod:`virtualizarr.formats.zarr_store`.
"""

from virtualizarr.readers.zarr.reader import READER, ZarrStoreReader, open_zarr_store

__all__ = ["READER", "ZarrStoreReader", "open_zarr_store"]
