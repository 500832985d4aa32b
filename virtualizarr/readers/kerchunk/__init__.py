"""The kerchunk reader: reference documents back as virtual groups.

* :mod:`~virtualizarr.readers.kerchunk.parse` -- JSON documents and dicts into metadata and
  chunk references;
* :mod:`~virtualizarr.readers.kerchunk.parquet` -- Parquet reference stores, likewise;
* :mod:`~virtualizarr.readers.kerchunk.arrays` -- parsed references to virtual arrays;
* :mod:`~virtualizarr.readers.kerchunk.reader` -- the reader: detection, paths, policy.
"""

from virtualizarr.readers.kerchunk.reader import READER, KerchunkReader

__all__ = ["READER", "KerchunkReader"]
