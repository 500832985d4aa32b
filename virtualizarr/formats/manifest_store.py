"""The Zarr v3 *manifest store* format (zarr-specs proposal #287), shared by its reader and writer.

Layout of a store written by ``ds.virtualize.to_zarr("out.zarr")``::

    out.zarr/zarr.json            group: attributes, plus the "virtualizarr" extension
    out.zarr/<var>/zarr.json      array metadata (Zarr v3) with a storage transformer
    out.zarr/<var>/manifest.json  {"c/0/1": {"path": ..., "offset": ..., "length": ...}}
    out.zarr/<var>/c/0/0          real chunk files: inline chunks and loaded variables

* A virtual array's ``zarr.json`` carries ``"storage_transformers": [{"name":
  "chunk-manifest-json", "configuration": {"manifest": "./manifest.json"}}]``. The manifest
  maps chunk keys (the array's ``chunk_key_encoding``, e.g. ``"c/0/1"``) to byte ranges of
  source files (absolute URIs, or paths relative to the array's directory). A chunk key
  absent from the manifest is read from the store itself (a chunk file) if one exists,
  and is otherwise missing: it reads as the array metadata's own ``fill_value`` (xarray
  does not mask with a Zarr v3 fill value; ``_FillValue`` travels as an attribute).
* Loaded (non-virtual) variables are CF-encoded as xarray would write them and stored as
  ordinary Zarr arrays: one uncompressed chunk, no storage transformer.
* Every node's ``zarr.json`` has an extension field ``"virtualizarr": {"must_understand":
  false, "attribute_dtypes": {...}}`` recording attribute types (see
  :mod:`virtualizarr.formats.attrs`); the group's also lists ``"arrays"`` in dataset order
  (and, when known, the sources' identities as ``"sources"``), and each array's records its
  chunk files as ``"chunk_files": {"c/0/0": 1234, ...}`` (key relative to the array ->
  size in bytes; ``{}`` for none). With these records a store is read by known keys
  alone, without listing it -- as it must be over HTTP(S).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from virtualizarr.formats.attrs import attribute_dtypes

__all__ = [
    "DOCUMENTS",
    "EXTENSION",
    "MANIFEST",
    "MANIFEST_TRANSFORMER",
    "ROOT_METADATA",
    "extension",
    "transformer",
]

MANIFEST_TRANSFORMER: Final = "chunk-manifest-json"
"""Name of the storage transformer that points an array at its ``manifest.json``."""
ROOT_METADATA: Final = "zarr.json"
"""A node's metadata document; the root group's, written last, makes a store complete."""
MANIFEST: Final = "manifest.json"
"""An array's chunk manifest, beside its ``zarr.json``."""
DOCUMENTS: Final = (ROOT_METADATA, MANIFEST)
"""The JSON documents of a node; every other file in an array's directory is a chunk."""
EXTENSION: Final = "virtualizarr"
"""The extension field of every ``zarr.json`` we write."""


def extension(attrs: Mapping[str, Any], **extra: Any) -> dict[str, Any]:
    """The ``"virtualizarr"`` extension field of a node with attributes ``attrs``."""
    return {"must_understand": False, **extra, "attribute_dtypes": attribute_dtypes(attrs)}


def transformer(manifest: str = f"./{MANIFEST}") -> dict[str, Any]:
    """The storage transformer entry that points an array at its manifest."""
    return {"name": MANIFEST_TRANSFORMER, "configuration": {"manifest": manifest}}
