"""Reading real data through manifests.

* :mod:`~virtualizarr.reading.decode` -- stored chunk bytes to NumPy (numcodecs);
* :mod:`~virtualizarr.reading.native` -- :class:`NativeArray`, the engine's read path:
  coalesced ranged reads, decoding on a thread pool;
* :mod:`~virtualizarr.reading.store` -- :class:`ManifestStore`, a read-only Zarr store
  serving virtual arrays to any Zarr reader;
* :mod:`~virtualizarr.reading.load` -- loading whole variables (``loadable_variables``).
"""
