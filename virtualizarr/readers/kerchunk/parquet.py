"""Kerchunk Parquet reference stores (the layout fsspec's ``LazyReferenceMapper`` reads).

A ``.zmetadata`` JSON file (``{"metadata": {...}, "record_size": N}``) and, per array,
files ``<array>/refs.<i>.parq`` with columns ``path``, ``offset``, ``size`` and ``raw``;
row ``k`` of the concatenated records is chunk ``k`` in C order of the chunk grid. The
metadata is interpreted by :mod:`~virtualizarr.readers.kerchunk.arrays`, as for JSON
documents. A store on object storage (``s3://bucket/refs.parq``) is read the same way,
each array's record files fetched concurrently.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from functools import partial
from typing import Final

import numpy as np
import pandas as pd

from virtualizarr.errors import InvalidReferencesError, UntrustedReferenceError
from virtualizarr.io.objects import Location
from virtualizarr.manifests import ChunkManifest
from virtualizarr.manifests.manifest import INLINE_BASE, MISSING
from virtualizarr.readers.base import guard_document
from virtualizarr.readers.kerchunk.arrays import grid_of
from virtualizarr.readers.kerchunk.parse import ParsedReferences, load_meta

__all__ = ["PARQUET_METADATA", "parse_kerchunk_parquet"]

PARQUET_METADATA: Final = ".zmetadata"
"""The metadata document of a Parquet reference store."""


def parse_kerchunk_parquet(root: Location, size_of: Callable[[str], int]) -> ParsedReferences:
    """Read a kerchunk Parquet reference store (fsspec ``LazyReferenceMapper`` layout).

    Parameters
    ----------
    root : Location
        The store's directory, local or remote (``s3://bucket/refs.parq``).
    size_of : callable
        Size of the target of a whole-file reference (the kerchunk reader passes one that
        checks the URL against the source policy first).

    Returns
    -------
    ParsedReferences

    Raises
    ------
    InvalidReferencesError
        If ``.zmetadata`` or a ``refs.<i>.parq`` file is missing or malformed.
    """
    path = root.url
    try:
        met = json.loads(root.get(PARQUET_METADATA))
        record_size = int(met["record_size"])
        raw_meta = met["metadata"]
        if not isinstance(raw_meta, dict) or record_size <= 0:
            raise ValueError("'metadata' must be an object and 'record_size' positive")
    except FileNotFoundError:
        raise InvalidReferencesError(
            f"{path} is not a kerchunk Parquet store: it has no .zmetadata file."
        ) from None
    except (ValueError, KeyError, TypeError, RecursionError, OSError) as e:
        raise InvalidReferencesError(f"{path}/.zmetadata is malformed: {e!r}.") from None
    metadata = {k: load_meta(path, k, v) for k, v in raw_meta.items()}
    ext = met.get("virtualizarr")
    manifests: dict[str, ChunkManifest] = {}
    for key, zarray in metadata.items():
        if not key.endswith(".zarray"):
            continue
        field = key[: -len("/.zarray")]
        grid = grid_of(zarray, f"{path}/{key}")
        manifests[field] = guard_document(
            path,
            f"the Parquet references of {field!r}",
            partial(_read_parquet_field, root, field, grid, record_size, size_of),
        )
    return ParsedReferences(
        path, metadata, {}, ext if isinstance(ext, dict) else {}, manifests=manifests
    )


def _read_parquet_field(
    root: Location,
    field: str,
    grid: tuple[int, ...],
    record_size: int,
    size_of: Callable[[str], int],
) -> ChunkManifest:
    import pyarrow as pa
    import pyarrow.parquet as pq

    n = math.prod(grid) if grid else 1
    shape = grid or ()
    if n == 0:
        return ChunkManifest.empty(shape)
    count = math.ceil(n / record_size)  # may be huge when the metadata lies: stay lazy
    fetched: dict[str, bytes] = {}
    tables = []
    for rec in range(count):
        key = f"{field}/refs.{rec}.parq"
        fn = root.label(key)
        try:
            if rec % _FETCH_BATCH == 0:  # the next few record files, concurrently
                batch = range(rec, min(count, rec + _FETCH_BATCH))
                fetched = _fetch(root, [f"{field}/refs.{r}.parq" for r in batch])
            if key not in fetched:
                raise FileNotFoundError(fn)
            tables.append(pq.read_table(pa.BufferReader(fetched.pop(key))))
        except FileNotFoundError:
            raise InvalidReferencesError(
                f"{fn} is missing: the Parquet store should hold {math.ceil(n / record_size)} "
                f"record files for {field!r}."
            ) from None
        except (pa.ArrowException, OSError) as e:
            raise InvalidReferencesError(f"{fn} is not a readable Parquet file: {e}.") from None
    try:
        table = pa.concat_tables(tables)
        cols = set(table.column_names)
        nrows = table.num_rows
        if nrows < n:
            raise ValueError(f"{nrows} rows for {n} chunks")
        paths = table.column("path").to_pylist()[:n] if "path" in cols else [None] * n
        offsets = table.column("offset").to_numpy()[:n] if "offset" in cols else np.zeros(n)
        sizes = table.column("size").to_numpy()[:n] if "size" in cols else np.zeros(n)
        raws = table.column("raw").to_pylist()[:n] if "raw" in cols else [None] * n
    except (pa.ArrowException, ValueError, KeyError) as e:
        raise InvalidReferencesError(
            f"{root.label(field)}: the Parquet references are malformed ({e})."
        ) from None
    # Per-row kind without a Python loop over rows: raw bytes (inline), a path (reference)
    # or neither (missing); paths become a first-seen-order table via pandas.factorize.
    raw_col = np.empty(n, dtype=object)
    raw_col[:] = raws
    path_col = np.empty(n, dtype=object)
    path_col[:] = paths
    is_inline = np.asarray(pd.notna(raw_col), dtype=bool)
    is_ref = ~is_inline & np.asarray(pd.notna(path_col), dtype=bool)
    ids = np.full(n, MISSING, np.int32)
    inline_rows = np.flatnonzero(is_inline)
    ids[inline_rows] = INLINE_BASE - np.arange(len(inline_rows), dtype=np.int32)
    inline = [bytes(raw_col[i]) for i in inline_rows]
    codes, uniques = pd.factorize(path_col[is_ref].astype(str))
    ids[is_ref] = codes.astype(np.int32)
    table_paths = {str(u): k for k, u in enumerate(uniques)}
    offs = np.asarray(offsets, dtype=np.int64)
    lens = np.array(sizes, dtype=np.int64)  # a copy: Arrow buffers are read-only
    if (offs < 0).any() or (lens < 0).any():
        raise InvalidReferencesError(f"{root.label(field)}: negative offset or size in references.")
    whole = (ids >= 0) & (offs == 0) & (lens == 0)
    if whole.any():
        plist = list(table_paths)
        for pid in np.unique(ids[whole]).tolist():  # one look per file, not per row
            try:
                size = size_of(plist[pid])
            except UntrustedReferenceError:
                raise
            except (OSError, ValueError) as e:
                raise InvalidReferencesError(
                    f"{root.label(field)}: a chunk references the whole of {plist[pid]!r}, "
                    f"whose size could not be found ({type(e).__name__}: {e})."
                ) from None
            lens[whole & (ids == pid)] = size
    return ChunkManifest(
        list(table_paths),
        ids.reshape(shape),
        offs.astype(np.uint64).reshape(shape),
        lens.astype(np.uint64).reshape(shape),
        inline,
    )


_FETCH_BATCH = 32
"""Record files of a remote store fetched at once."""


def _fetch(root: Location, keys: list[str]) -> dict[str, bytes]:
    """The record files that exist among ``keys`` (missing ones are named by the caller)."""
    try:
        return root.get_many(keys)
    except FileNotFoundError:
        out = {}
        for key in keys:
            try:
                out[key] = root.get(key)
            except FileNotFoundError:
                break
        return out
