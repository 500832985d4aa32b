"""Document formats, shared by readers and writers: pure functions, no I/O.

* :mod:`~virtualizarr.formats.attrs` -- the one attribute encoder (JSON and the type record);
* :mod:`~virtualizarr.formats.kerchunk` -- kerchunk references and their Zarr v2 metadata;
* :mod:`~virtualizarr.formats.manifest_store` -- the Zarr v3 manifest-store layout;
* :mod:`~virtualizarr.formats.chunk_keys` -- chunk keys and integers parsed in bulk.
"""
