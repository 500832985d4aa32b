"""Writers: virtual datasets as kerchunk references (dict, JSON, Parquet), manifest stores
and Icechunk sessions.

Each writer takes the dataset as :func:`~virtualizarr.writers.encode.encode_dataset`
prepares it (names checked, loaded variables CF-encoded, attributes encoded by
:mod:`virtualizarr.formats.attrs`), builds documents with pure functions and writes them
through :mod:`virtualizarr.io.write`, atomically.
"""
