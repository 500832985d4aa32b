"""Kerchunk references as a Parquet store, in the layout fsspec's ``LazyReferenceMapper`` reads.

::

    refs.parq/.zmetadata              {"metadata": {".zgroup": {...}, "<var>/.zarray": {...},
                                        ...}, "record_size": N, "virtualizarr": {...}}
    refs.parq/<var>/refs.<i>.parq     columns path (string), offset (int64), size (int64),
                                      raw (binary); row k of record i is chunk i*N + k in
                                      C order of the chunk grid

A missing chunk has null ``path`` and ``raw``; an inline chunk has its bytes in ``raw``.
The metadata documents and chunk references are exactly those of the JSON writer
(:func:`virtualizarr.writers.kerchunk.dataset_to_kerchunk_refs`); ``"virtualizarr"``
records attribute dtypes (see :mod:`virtualizarr.attrtypes`) and is ignored by fsspec.

``.zmetadata`` is written last: it is what makes the store complete. Locally the store is
built in a temporary directory and renamed into place; on object storage the record files
are uploaded first and ``.zmetadata`` last (see :mod:`virtualizarr.writers._output`).
"""

from __future__ import annotations

import base64
import io
import json
import math
import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import xarray as xr

from virtualizarr.attrtypes import dataset_attribute_dtypes
from virtualizarr.errors import InvalidArgumentError, MissingDependencyError
from virtualizarr.writers._output import OutputDirectory, output_directory
from virtualizarr.writers.kerchunk import dataset_to_kerchunk_refs

__all__ = ["DEFAULT_RECORD_SIZE", "METADATA_KEY", "dataset_to_kerchunk_parquet"]

DEFAULT_RECORD_SIZE = 100_000
"""Chunk references per Parquet file."""
METADATA_KEY = ".zmetadata"
"""The store's metadata document: written last, it makes the store complete."""


def _raw(value: str) -> bytes:
    return base64.b64decode(value[7:]) if value.startswith("base64:") else value.encode()


def _write_field(
    out: OutputDirectory,
    field: str,
    grid: tuple[int, ...],
    entries: dict[str, Any],
    record_size: int,
) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = math.prod(grid) if grid else 1
    if n == 0:
        return
    paths: list[str | None] = [None] * n
    offsets = np.zeros(n, np.int64)
    sizes = np.zeros(n, np.int64)
    raws: list[bytes | None] = [None] * n
    for key, value in entries.items():
        coords = tuple(int(c) for c in key.split(".")) if grid else ()
        i = int(np.ravel_multi_index(coords, grid)) if grid else 0
        if isinstance(value, str):
            raws[i] = _raw(value)
        else:
            paths[i] = str(value[0])
            if len(value) == 3:
                offsets[i], sizes[i] = int(value[1]), int(value[2])
    for rec in range(math.ceil(n / record_size)):
        sl = slice(rec * record_size, min(n, (rec + 1) * record_size))
        table = pa.table(
            {
                "path": pa.array(paths[sl], type=pa.string()),
                "offset": pa.array(offsets[sl], type=pa.int64()),
                "size": pa.array(sizes[sl], type=pa.int64()),
                "raw": pa.array(raws[sl], type=pa.binary()),
            }
        )
        buf = io.BytesIO()
        pq.write_table(table, buf, compression="zstd", write_statistics=False)
        out.write(f"{field}/refs.{rec}.parq", buf.getvalue())


def dataset_to_kerchunk_parquet(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    record_size: int = DEFAULT_RECORD_SIZE,
    mode: str = "w-",
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Write a virtual dataset's kerchunk references as a Parquet reference store.

    Parameters
    ----------
    ds : xarray.Dataset
        A virtual dataset.
    path : str or path-like
        The store directory to create, or an fsspec URL (``s3://bucket/refs.parq``).
    record_size : int
        Chunk references per Parquet file.
    mode : {"w-", "w"}
        ``"w-"`` (default) refuses an existing store (on object storage: any object under
        the URL); ``"w"`` replaces it.
    storage_options : mapping, optional
        fsspec options for a remote ``path``.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``mode="w-"``.
    OutputWriteError
        If the object store refused a write or the network failed; the previous store,
        if any, is left as it was.
    MissingDependencyError
        If pyarrow is not installed.

    Examples
    --------
    >>> dataset_to_kerchunk_parquet(vds, "refs.parq", record_size=10_000)  # doctest: +SKIP
    >>> dataset_to_kerchunk_parquet(vds, "s3://bucket/refs.parq", mode="w")  # doctest: +SKIP
    """
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "writing Parquet references needs pyarrow; install virtualizarr[parquet]."
        ) from None
    if record_size <= 0:
        raise InvalidArgumentError(
            f"record_size (references per Parquet file) must be positive; found {record_size}."
        )
    doc = dataset_to_kerchunk_refs(ds)
    refs = doc["refs"]
    metadata: dict[str, Any] = {}
    fields: dict[str, dict[str, Any]] = {}
    for key, value in refs.items():
        if key.rsplit("/", 1)[-1] in (".zarray", ".zattrs", ".zgroup"):
            metadata[key] = json.loads(value) if isinstance(value, str) else value
        else:
            field, _, chunk = key.rpartition("/")
            fields.setdefault(field, {})[chunk] = value
    ext: dict[str, Any] = dict(doc.get("virtualizarr") or {})  # type: ignore[call-overload, unused-ignore]  # absent before the JSON writer records it
    if not ext:
        variables, attrs = xr.conventions.encode_dataset_coordinates(ds)
        dtypes = dataset_attribute_dtypes(variables, attrs)
        if dtypes:
            ext = {"attribute_dtypes": dtypes}
    zmeta: dict[str, Any] = {"metadata": metadata, "record_size": record_size}
    if ext:
        zmeta["virtualizarr"] = ext
    with output_directory(
        path, commit_key=METADATA_KEY, mode=mode, storage_options=storage_options
    ) as out:
        for key, zarray in metadata.items():
            if not key.endswith("/.zarray"):
                continue
            field = key[: -len("/.zarray")]
            grid = tuple(
                math.ceil(s / c) for s, c in zip(zarray["shape"], zarray["chunks"], strict=True)
            )
            _write_field(out, field, grid, fields.get(field, {}), record_size)
        out.write(METADATA_KEY, json.dumps(zmeta).encode())
