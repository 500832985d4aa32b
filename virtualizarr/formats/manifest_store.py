"""The Zarr v3 *manifest store* format (zarr-specs proposal #287), shared by its reader and writer.

Layout of a store written by ``ds.virtualize.to_zarr("out.zarr")``::

    out.zarr/zarr.json                     group: attributes, plus the "virtualizarr" extension
    out.zarr/<var>/zarr.json               array metadata (Zarr v3) with a storage transformer
    out.zarr/<var>/manifest.paths.json     ["file:///data/a.nc", ...]: the path table
    out.zarr/<var>/manifest.bin            offsets, lengths, path ids: raw little-endian arrays
    out.zarr/<var>/c/0/0                   real chunk files: inline chunks and loaded variables

* A virtual array's ``zarr.json`` carries one storage transformer naming its manifest.
  The default, ``"chunk-manifest-binary"`` (:func:`binary_transformer`), keeps the
  manifest as columns: a JSON path table, and one binary file holding, for every cell of
  the chunk grid in C order, the byte offset (``uint64``), then the byte length
  (``uint64``), then the path id (the signed integer type the configuration names; ``-1``
  where the cell has no reference) -- three raw little-endian arrays one after the other
  (:func:`encode_columns`). Its size follows from the grid, and the configuration records
  how many references it holds and its CRC-32, so a reader fetches it by exact size,
  checks it, and need not read it before a chunk is asked for. The older
  ``"chunk-manifest-json"`` (:func:`transformer`, ``manifest_format="json"``) keeps a
  ``manifest.json`` mapping chunk keys (``"c/0/1"``) to ``{"path", "offset", "length"}``.
  Paths are absolute URIs or relative to the array's directory. A chunk key absent from
  the manifest is read from the store itself (a chunk file) if one exists, and is
  otherwise missing: it reads as the array metadata's own ``fill_value`` (xarray does not
  mask with a Zarr v3 fill value; ``_FillValue`` travels as an attribute).
* Loaded (non-virtual) variables are CF-encoded as xarray would write them and stored as
  ordinary Zarr arrays: one uncompressed chunk, no storage transformer.
* Every node's ``zarr.json`` has an extension field ``"virtualizarr": {"must_understand":
  true, "attribute_dtypes": {...}}`` recording attribute types (see
  :mod:`virtualizarr.formats.attrs`); ``must_understand: true`` makes Zarr readers that do
  not know the format refuse the node instead of reading missing chunks as fill values.
  The group's record also lists ``"arrays"`` in dataset order (and, when known, the
  sources' identities as ``"sources"``), and each array's records its chunk files as
  ``"chunk_files": {"c/0/0": 1234, ...}`` (key relative to the array -> size in bytes;
  ``{}`` for none). With these records a store is read by known keys alone, without
  listing it -- as it must be over HTTP(S).

Stores written before the binary manifest (JSON manifests, ``"must_understand": false``)
read as before.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from virtualizarr.formats.attrs import attribute_dtypes

__all__ = [
    "BINARY_TRANSFORMER",
    "COLUMNS",
    "DOCUMENTS",
    "EXTENSION",
    "MANIFEST",
    "MANIFEST_FORMATS",
    "MANIFEST_TRANSFORMER",
    "PATHS",
    "PATH_ID_TYPES",
    "RESERVED",
    "ROOT_METADATA",
    "binary_transformer",
    "columns_size",
    "crc32",
    "decode_columns",
    "encode_columns",
    "extension",
    "transformer",
]

MANIFEST_TRANSFORMER: Final = "chunk-manifest-json"
"""Name of the storage transformer that points an array at its ``manifest.json``."""
BINARY_TRANSFORMER: Final = "chunk-manifest-binary"
"""Name of the storage transformer that points an array at its binary (columnar) manifest."""
MANIFEST_FORMATS: Final = ("binary", "json")
"""What ``to_zarr(manifest_format=...)`` accepts."""
ROOT_METADATA: Final = "zarr.json"
"""A node's metadata document; the root group's, written last, makes a store complete."""
MANIFEST: Final = "manifest.json"
"""An array's JSON chunk manifest, beside its ``zarr.json``."""
PATHS: Final = "manifest.paths.json"
"""An array's path table (binary manifests): a JSON list of strings."""
COLUMNS: Final = "manifest.bin"
"""An array's binary manifest columns: offsets, lengths, path ids."""
DOCUMENTS: Final = (ROOT_METADATA, MANIFEST, PATHS)
"""The JSON documents of a node, read when it is opened (each within the size limit)."""
RESERVED: Final = (*DOCUMENTS, COLUMNS)
"""File names in an array's directory that are not chunks (every other file is one)."""
EXTENSION: Final = "virtualizarr"
"""The extension field of every ``zarr.json`` we write."""
PATH_ID_TYPES: Final[dict[str, np.dtype[np.signedinteger[Any]]]] = {
    "int8": np.dtype("<i1"),
    "int16": np.dtype("<i2"),
    "int32": np.dtype("<i4"),
}
"""The path-id types a binary manifest may use, by their name in its configuration."""


def extension(attrs: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The ``"virtualizarr"`` extension field of a node with attributes ``attrs``.

    ``must_understand`` is true: a Zarr reader that does not know this format must refuse
    the node (zarr-python raises ``MetadataValidationError``) rather than misread it.
    """
    return {"must_understand": True, **extra, "attribute_dtypes": attribute_dtypes(attrs)}


def transformer(manifest: str = f"./{MANIFEST}") -> dict[str, Any]:
    """The storage transformer entry that points an array at its JSON manifest."""
    return {"name": MANIFEST_TRANSFORMER, "configuration": {"manifest": manifest}}


def binary_transformer(
    path_id_type: str, references: int, crc32: int, *, paths: str = f"./{PATHS}"
) -> dict[str, Any]:
    """The storage transformer entry of a binary manifest.

    Parameters
    ----------
    path_id_type : {"int8", "int16", "int32"}
        The type of the path-id column.
    references : int
        How many cells hold a reference (path id >= 0).
    crc32 : int
        CRC-32 of the columns file (:func:`zlib.crc32`).
    paths : str
        The path table's location, relative to the array.

    Returns
    -------
    dict
    """
    return {
        "name": BINARY_TRANSFORMER,
        "configuration": {
            "paths": paths,
            "columns": f"./{COLUMNS}",
            "path_id_type": path_id_type,
            "references": int(references),
            "crc32": int(crc32),
        },
    }


def columns_size(cells: int, path_id_type: str) -> int:
    """Size in bytes of the columns file of a grid of ``cells`` cells."""
    return cells * (16 + PATH_ID_TYPES[path_id_type].itemsize)


def encode_columns(
    path_ids: npt.NDArray[np.integer[Any]],
    offsets: npt.NDArray[np.uint64],
    lengths: npt.NDArray[np.uint64],
    n_paths: int,
) -> tuple[bytes, str, int]:
    """The columns file of a manifest: ``(bytes, path-id type name, references)``.

    Ids below -1 (inline chunks, which the store keeps as chunk files) become -1; offsets
    and lengths of cells without a reference are zero.

    Examples
    --------
    >>> data, kind, n = encode_columns(np.array([0, -1]), np.array([8, 0], np.uint64),
    ...                                np.array([4, 0], np.uint64), 1)
    >>> len(data), kind, n
    (34, 'int8', 1)
    """
    ref = path_ids >= 0
    kind = next(k for k, t in PATH_ID_TYPES.items() if n_paths - 1 <= np.iinfo(t).max)
    ids = np.where(ref, path_ids, -1).astype(PATH_ID_TYPES[kind])
    zero = np.uint64(0)
    offs = np.where(ref, offsets, zero).astype("<u8")
    lens = np.where(ref, lengths, zero).astype("<u8")
    data = b"".join(np.ascontiguousarray(a).tobytes() for a in (offs, lens, ids))
    return data, kind, int(np.count_nonzero(ref))


def decode_columns(
    data: bytes, grid: tuple[int, ...], path_id_type: str
) -> tuple[npt.NDArray[np.signedinteger[Any]], npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Path ids, offsets and lengths (views of ``data``, shaped like ``grid``).

    Raises
    ------
    ValueError
        If ``data`` is not exactly the size the grid and id type give.
    """
    cells = int(np.prod(grid, dtype=np.int64))
    expected = columns_size(cells, path_id_type)
    if len(data) != expected:
        raise ValueError(f"{len(data)} bytes, where a grid of {grid} needs {expected}")
    offs = np.frombuffer(data, "<u8", cells, 0).reshape(grid)
    lens = np.frombuffer(data, "<u8", cells, 8 * cells).reshape(grid)
    ids = np.frombuffer(data, PATH_ID_TYPES[path_id_type], cells, 16 * cells).reshape(grid)
    native = ids.dtype.newbyteorder("=")
    return (
        ids.astype(native, copy=False),
        offs.astype(np.uint64, copy=False),
        lens.astype(np.uint64, copy=False),
    )


def crc32(data: bytes) -> int:
    """The CRC-32 a binary manifest's configuration records of its columns file."""
    return zlib.crc32(data)
