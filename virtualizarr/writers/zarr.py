"""Write virtual datasets as Zarr v3 *manifest stores* (zarr-specs proposal #287).

Layout of a store written by ``ds.virtualize.to_zarr("out.zarr")``::

    out.zarr/zarr.json            group: attributes, plus the "virtualizarr" extension
    out.zarr/<var>/zarr.json      array metadata (Zarr v3) with a storage transformer
    out.zarr/<var>/manifest.json  {"c/0/1": {"path": ..., "offset": ..., "length": ...}}
    out.zarr/<var>/c/0/0          real chunk files: inline chunks and loaded variables

* A virtual array's ``zarr.json`` carries ``"storage_transformers": [{"name":
  "chunk-manifest-json", "configuration": {"manifest": "./manifest.json"}}]``. The manifest
  maps chunk keys (the array's ``chunk_key_encoding``, e.g. ``"c/0/1"``) to byte ranges of
  source files (absolute URIs). A chunk key absent from the manifest is read from the store
  itself (a chunk file) if one exists, and is otherwise missing: it reads as
  ``fill_value``, the array metadata's own fill value (xarray does not mask with a Zarr
  v3 fill value; ``_FillValue`` travels as an attribute).
* Loaded (non-virtual) variables are CF-encoded as xarray would write them and stored as
  ordinary Zarr arrays: one uncompressed chunk, no storage transformer.
* Every node's ``zarr.json`` has an extension field ``"virtualizarr": {"must_understand":
  false, "attribute_dtypes": {...}}`` recording the NumPy dtypes of attributes (see
  :mod:`virtualizarr.attrtypes`); the group's also lists ``"arrays"`` in dataset order, and
  each array's records its chunk files as ``"chunk_files": {"c/0/0": 1234, ...}`` (key
  relative to the array -> size in bytes; ``{}`` for none). With these records a store is
  read by known keys alone, without listing it -- as it must be over HTTP(S).

On local disk a store is written into a temporary directory beside the target and renamed
into place, so a failure never leaves a half-written store. On object storage (``s3://``
...), which has no rename, every array's objects are uploaded first and the root group's
``zarr.json`` -- what makes the store discoverable -- last; see
:mod:`virtualizarr.writers._output` for ``mode="w"`` replacement and roll-back.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Hashable, Mapping
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import xarray as xr
from zarr.core.metadata.v3 import ArrayV3Metadata

from virtualizarr.attrtypes import attribute_dtypes, attrs_to_json, encode_loaded_variable
from virtualizarr.errors import UnsupportedFeatureError
from virtualizarr.identity import dataset_sources
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.metadata import make_array_metadata
from virtualizarr.writers._output import (
    LocalDirectory,
    OutputDirectory,
    atomic_directory,
    output_directory,
)

__all__ = [
    "MANIFEST_TRANSFORMER",
    "ROOT_METADATA",
    "atomic_directory",
    "dataset_to_manifest_store",
    "write_manifest_group",
]

MANIFEST_TRANSFORMER = "chunk-manifest-json"
"""Name of the storage transformer that points an array at its ``manifest.json``."""
ROOT_METADATA = "zarr.json"
"""The root group's metadata: written last, it makes a store discoverable and complete."""


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, indent=2, allow_nan=False, default=_default).encode()


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


def _ext(attrs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"must_understand": False, **extra, "attribute_dtypes": attribute_dtypes(attrs)}


def _chunk_path(meta: ArrayV3Metadata, coords: tuple[int, ...]) -> str:
    return meta.chunk_key_encoding.encode_chunk_key(coords)


def _write_file(out: OutputDirectory, key: str, data: bytes) -> None:
    out.write(key, data)


def _virtual_array(out: OutputDirectory, adir: str, var: xr.Variable, arr: ManifestArray) -> None:
    meta = arr.metadata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fixed-length bytes: "not in the v3 spec"
        doc = meta.to_dict()
    attrs = dict(var.attrs)
    doc["attributes"] = attrs_to_json(attrs)
    doc["dimension_names"] = [str(d) for d in var.dims]
    doc["storage_transformers"] = [
        {"name": MANIFEST_TRANSFORMER, "configuration": {"manifest": "./manifest.json"}}
    ]
    m = arr.manifest
    ids, offsets, lengths = m.path_ids, m.offsets, m.lengths
    if ids.ndim == 0:  # a scalar's one chunk: np.nonzero refuses 0-d arrays
        ids, offsets, lengths = ids.reshape(1), offsets.reshape(1), lengths.reshape(1)
    entries: dict[str, dict[str, Any]] = {}
    present = np.nonzero(ids >= 0)
    if present[0].size:
        coords = list(zip(*(c.tolist() for c in present), strict=True)) if arr.ndim else [()]
        paths = np.asarray(m.paths, dtype=object)[ids[present]].tolist()
        offs = offsets[present].tolist()
        lens = lengths[present].tolist()
        for c, p, o, n in zip(coords, paths, offs, lens, strict=True):
            entries[_chunk_path(meta, tuple(c))] = {"path": p, "offset": o, "length": n}
    inline = np.nonzero(ids < -1)
    chunk_files: dict[str, int] = {}
    if inline[0].size:
        coords = list(zip(*(c.tolist() for c in inline), strict=True)) if arr.ndim else [()]
        for c, pid in zip(coords, ids[inline].tolist(), strict=True):
            key = _chunk_path(meta, tuple(c))
            data = m.inline[-2 - pid]
            _write_file(out, f"{adir}/{key}", data)
            chunk_files[key] = len(data)
    doc["virtualizarr"] = _ext(attrs, chunk_files=chunk_files)
    _write_file(out, f"{adir}/manifest.json", _dumps(entries))
    _write_file(out, f"{adir}/zarr.json", _dumps(doc))


def _loaded_array(out: OutputDirectory, adir: str, name: str, var: xr.Variable) -> None:
    encoded = encode_loaded_variable(var, name)
    values = np.asarray(encoded.values)
    attrs = dict(encoded.attrs)
    if values.dtype.kind in "UT":
        values = values.astype(object)
    dtype = values.dtype
    if dtype.kind == "O":
        fill: Any = ""
    elif dtype.kind in "SV":
        fill = b""
    else:
        dtype = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
        fill = np.zeros((), dtype)[()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = make_array_metadata(
            shape=values.shape,
            dtype=dtype,
            chunks=[max(int(s), 1) for s in values.shape],
            fill_value=fill,
            dimension_names=[str(d) for d in encoded.dims],
        )
        doc = meta.to_dict()
    doc["attributes"] = attrs_to_json(attrs)
    chunk_files: dict[str, int] = {}
    if values.size:
        if dtype.kind == "O":
            data = bytes(numcodecs.VLenUTF8().encode(values.ravel()))
        else:
            data = np.ascontiguousarray(values.astype(dtype)).tobytes()
        key = _chunk_path(meta, (0,) * values.ndim)
        _write_file(out, f"{adir}/{key}", data)
        chunk_files[key] = len(data)
    doc["virtualizarr"] = _ext(attrs, chunk_files=chunk_files)
    _write_file(out, f"{adir}/zarr.json", _dumps(doc))


def _var_name(name: Hashable) -> str:
    s = str(name)
    if not s or "/" in s or s.startswith(".") or s == "zarr.json":
        raise UnsupportedFeatureError(
            f"variable name {s!r} cannot be a Zarr array name; rename it before writing."
        )
    return s


def write_manifest_group(out: OutputDirectory | Path, ds: xr.Dataset) -> None:
    """Write the group of a virtual dataset: every array's objects, then the group's.

    Parameters
    ----------
    out : OutputDirectory or pathlib.Path
        Where to put the objects (see :func:`virtualizarr.writers._output.output_directory`),
        or an existing, empty local directory.
    ds : xarray.Dataset
        A virtual dataset.

    Raises
    ------
    UnsupportedFeatureError
        If a variable name cannot be a Zarr array name.
    """
    if isinstance(out, Path):
        out = LocalDirectory(out)
    variables, attrs = xr.conventions.encode_dataset_coordinates(ds)
    names = []
    for name, var in variables.items():
        key = _var_name(name)
        names.append(key)
        if isinstance(var.data, ManifestArray):
            _virtual_array(out, key, var, var.data)
        else:
            _loaded_array(out, key, key, var)
    gdoc = {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": attrs_to_json(attrs),
        "virtualizarr": _ext(dict(attrs), arrays=names),
    }
    sources = dataset_sources(ds)  # identities of the sources, to detect stale references
    if sources:
        gdoc["virtualizarr"] = _ext(dict(attrs), arrays=names, sources=sources)
    _write_file(out, ROOT_METADATA, _dumps(gdoc))


def dataset_to_manifest_store(
    ds: xr.Dataset,
    store: str | os.PathLike[str],
    *,
    mode: str = "w-",
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Write a virtual dataset as a Zarr v3 manifest store, locally or on object storage.

    Parameters
    ----------
    ds : xarray.Dataset
        A virtual dataset (variables backed by ``ManifestArray`` or NumPy).
    store : str or path-like
        The store's directory, or an fsspec URL (``s3://bucket/virtual.zarr``).
    mode : {"w-", "w"}
        ``"w-"`` (default) refuses an existing store (on object storage: any object under
        the URL); ``"w"`` replaces it.
    storage_options : mapping, optional
        fsspec options for a remote ``store`` (credentials, endpoint, ...).

    Raises
    ------
    OutputExistsError
        If the store exists and ``mode="w-"``.
    OutputWriteError
        If the object store refused a write or the network failed; the previous store,
        if any, is left as it was.
    UnsupportedFeatureError
        If a variable name cannot be a Zarr array name.

    Examples
    --------
    >>> dataset_to_manifest_store(vds, "virtual.zarr")  # doctest: +SKIP
    >>> dataset_to_manifest_store(vds, "s3://bucket/virtual.zarr", mode="w")  # doctest: +SKIP
    """
    with output_directory(
        store, commit_key=ROOT_METADATA, mode=mode, storage_options=storage_options
    ) as out:
        write_manifest_group(out, ds)
