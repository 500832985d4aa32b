"""Kerchunk references as a Parquet store, in the layout fsspec's ``LazyReferenceMapper`` reads.

::

    refs.parq/.zmetadata              {"metadata": {".zgroup": {...}, "<var>/.zarray": {...},
                                        ...}, "record_size": N, "virtualizarr": {...}}
    refs.parq/<var>/refs.<i>.parq     columns path (string), offset (int64), size (int64),
                                      raw (binary); row k of record i is chunk i*N + k in
                                      C order of the chunk grid

A missing chunk has null ``path`` and ``raw``; an inline chunk has its bytes in ``raw``.
The metadata documents and chunk references are exactly those of the JSON writer
(:mod:`virtualizarr.writers.kerchunk`), and the columns are built from the manifests with
NumPy (no Python object per chunk beyond the path column); ``"virtualizarr"`` records
attribute types and source identities (see :mod:`virtualizarr.formats.attrs`) and is
ignored by fsspec.

``.zmetadata`` is written last: it is what makes the store complete. Locally the store is
built in a temporary directory and renamed into place; on object storage the record files
are uploaded first and ``.zmetadata`` last (see :mod:`virtualizarr.io.write`).
"""

from __future__ import annotations

import base64
import io
import json
import math
from collections.abc import Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import xarray as xr

from virtualizarr.errors import InvalidArgumentError, MissingDependencyError
from virtualizarr.formats.attrs import dumps
from virtualizarr.io.objects import Location
from virtualizarr.io.write import OutputDirectory, output_directory
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.writers.encode import encode_dataset
from virtualizarr.writers.kerchunk import datatree_refs, virtual_refs

__all__ = [
    "DEFAULT_RECORD_SIZE",
    "METADATA_KEY",
    "dataset_to_kerchunk_parquet",
    "datatree_to_kerchunk_parquet",
    "write_parquet_refs",
]

DEFAULT_RECORD_SIZE: Final = 100_000
"""Chunk references per Parquet file."""
METADATA_KEY: Final = ".zmetadata"
"""The store's metadata document: written last, it makes the store complete."""

_Columns = tuple[
    npt.NDArray[np.object_], npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.object_]
]


def _raw(value: str) -> bytes:
    return base64.b64decode(value[7:]) if value.startswith("base64:") else value.encode()


def _virtual_columns(arr: ManifestArray) -> _Columns:
    """Per chunk in C order: path (None if not referenced), offset, size, inline bytes."""
    m = arr.manifest
    ids = m.path_ids.ravel()
    n = ids.size
    table = np.empty(len(m.paths) + 1, dtype=object)
    table[:-1] = m.paths  # table[-1] stays None: missing and inline chunks have no path
    paths = table[np.where(ids >= 0, ids, -1)]
    ref = ids >= 0
    offsets = np.where(ref, m.offsets.ravel(), 0).astype(np.int64)
    sizes = np.where(ref, m.lengths.ravel(), 0).astype(np.int64)
    raws = np.full(n, None, dtype=object)
    inline = np.flatnonzero(ids < -1)
    if inline.size:
        chunks = np.empty(len(m.inline), dtype=object)
        chunks[:] = list(m.inline)
        raws[inline] = chunks[-2 - ids[inline]]
    return paths, offsets, sizes, raws


def _loaded_columns(n: int, entries: dict[str, Any], grid: tuple[int, ...]) -> _Columns:
    """The columns of a loaded variable: its inline chunks (``"key": "base64:..."``)."""
    raws = np.full(n, None, dtype=object)
    for key, value in entries.items():
        coords = tuple(int(c) for c in key.split(".")) if grid else ()
        raws[int(np.ravel_multi_index(coords, grid)) if grid else 0] = _raw(value)
    return np.full(n, None, dtype=object), np.zeros(n, np.int64), np.zeros(n, np.int64), raws


def _write_field(out: OutputDirectory, field: str, columns: _Columns, record_size: int) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    paths, offsets, sizes, raws = columns
    for rec in range(math.ceil(len(paths) / record_size)):
        sl = slice(rec * record_size, (rec + 1) * record_size)
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
        out.put(f"{field}/refs.{rec}.parq", buf.getvalue())


def _require_pyarrow() -> None:
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise MissingDependencyError(
            "writing Parquet references needs pyarrow; install it with `pip install pyarrow`."
        ) from None


def dataset_to_kerchunk_parquet(
    ds: xr.Dataset,
    path: Location,
    *,
    record_size: int = DEFAULT_RECORD_SIZE,
    mode: str = "w-",
) -> None:
    """Write a virtual dataset's kerchunk references as a Parquet reference store.

    Parameters
    ----------
    ds : xarray.Dataset
        A virtual dataset.
    path : Location
        The store directory to create, or a URL prefix (``s3://bucket/refs.parq``).
    record_size : int
        Chunk references per Parquet file.
    mode : {"w-", "w"}
        ``"w-"`` (default) refuses an existing store (on object storage: any object under
        the URL); ``"w"`` replaces it.

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
    >>> dataset_to_kerchunk_parquet(vds, Location.of("refs.parq"))  # doctest: +SKIP
    """
    _require_pyarrow()
    if record_size <= 0:
        raise InvalidArgumentError(
            f"record_size (references per Parquet file) must be positive; found {record_size}."
        )
    enc = encode_dataset(ds)
    refs, virtual = virtual_refs(enc)
    write_parquet_refs(refs, virtual, enc.extension(), path, record_size=record_size, mode=mode)


def datatree_to_kerchunk_parquet(
    groups: Sequence[tuple[str, xr.Dataset]],
    path: Location,
    *,
    record_size: int = DEFAULT_RECORD_SIZE,
    mode: str = "w-",
) -> None:
    """Write the references of several nested groups as one Parquet reference store.

    Parameters
    ----------
    groups : sequence of (str, xarray.Dataset)
        Each group's path (``""`` for the root, ``"a/b"``) and its virtual dataset; an
        array of the group ``a/b`` has its record files under ``a/b/<array>/``.
    path : Location
    record_size : int
    mode : {"w-", "w"}

    Raises
    ------
    OutputExistsError, OutputWriteError, MissingDependencyError
        As for :func:`dataset_to_kerchunk_parquet`.
    """
    _require_pyarrow()
    refs, virtual, ext = datatree_refs(groups)
    write_parquet_refs(refs, virtual, ext, path, record_size=record_size, mode=mode)


def write_parquet_refs(
    refs: dict[str, Any],
    virtual: list[tuple[str, ManifestArray]],
    ext: dict[str, Any],
    path: Location,
    *,
    record_size: int,
    mode: str,
) -> None:
    """Write references (as :func:`~virtualizarr.writers.kerchunk.virtual_refs` gives
    them) and the virtual arrays' chunks as a Parquet store, ``.zmetadata`` last."""
    if record_size <= 0:
        raise InvalidArgumentError(
            f"record_size (references per Parquet file) must be positive; found {record_size}."
        )
    metadata: dict[str, Any] = {}
    loaded: dict[str, dict[str, Any]] = {}
    for key, value in refs.items():
        if key.rsplit("/", 1)[-1] in (".zarray", ".zattrs", ".zgroup"):
            metadata[key] = json.loads(value)
        else:
            field, _, chunk = key.rpartition("/")
            loaded.setdefault(field, {})[chunk] = value
    arrays = dict(virtual)
    zmeta: dict[str, Any] = {"metadata": metadata, "record_size": record_size}
    if ext:
        zmeta["virtualizarr"] = ext
    with output_directory(path, commit_key=METADATA_KEY, mode=mode) as out:
        for key, zarray in metadata.items():
            if not key.endswith("/.zarray"):
                continue
            field = key[: -len("/.zarray")]
            grid = tuple(
                math.ceil(s / c) for s, c in zip(zarray["shape"], zarray["chunks"], strict=True)
            )
            n = math.prod(grid) if grid else 1
            if n == 0:
                continue
            if field in arrays:
                columns = _virtual_columns(arrays[field])
            else:
                columns = _loaded_columns(n, loaded.get(field, {}), grid)
            _write_field(out, field, columns, record_size)
        out.put(METADATA_KEY, dumps(zmeta, keep_non_finite=True))  # NaN attrs as zarr writes
