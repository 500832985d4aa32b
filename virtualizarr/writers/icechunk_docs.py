"""The ``zarr.json`` documents and native chunks an Icechunk write puts in the session.

Zarr v3 metadata comes from the manifests; attributes from the one encoder
(:mod:`virtualizarr.formats.attrs`) plus their NumPy types in the ``"virtualizarr"``
extension field (``must_understand: false``, so Zarr readers ignore it); ``_FillValue``
is encoded the way xarray reads it from Zarr v3.
"""

from __future__ import annotations

import base64
import struct
from collections.abc import Mapping
from typing import Any

import numpy as np

from virtualizarr.errors import UnsupportedFeatureError
from virtualizarr.formats.attrs import attribute_dtypes, attrs_to_json, jsonable
from virtualizarr.formats.manifest_store import EXTENSION
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.metadata import AxisChunks, metadata_chunks
from virtualizarr.writers.encode import EncodedVariable

__all__ = [
    "Document",
    "chunk_key",
    "fill_from_json",
    "fill_json",
    "group_doc",
    "inline_chunks",
    "join",
    "node_doc",
    "virtual_doc",
]

Document = dict[str, Any]
"""A ``zarr.json`` document."""


def join(prefix: str, name: str) -> str:
    """``prefix/name``, either of which may be empty (the root group)."""
    return f"{prefix}/{name}" if prefix and name else prefix or name


def fill_json(value: Any, dtype: np.dtype[Any]) -> Any:
    """``_FillValue`` as xarray writes it into Zarr v3 attributes (and must read it back):
    floats as the base64 of a little-endian float64, complex as two of them (JSON would
    otherwise have no NaN); other values as JSON."""
    try:
        if dtype.kind == "f":
            return base64.standard_b64encode(struct.pack("<d", float(value))).decode()
        if dtype.kind == "c":
            c = complex(value)
            return [
                base64.standard_b64encode(struct.pack("<d", p)).decode() for p in (c.real, c.imag)
            ]
    except (TypeError, ValueError, OverflowError):
        pass
    return jsonable(value)


def fill_from_json(value: Any, dtype: np.dtype[Any]) -> Any:
    """The inverse of :func:`fill_json` (the value as a Python scalar)."""
    try:
        if dtype.kind == "f" and isinstance(value, str):
            return struct.unpack("<d", base64.standard_b64decode(value))[0]
        if dtype.kind == "c" and isinstance(value, list) and len(value) == 2:
            re, im = (struct.unpack("<d", base64.standard_b64decode(p))[0] for p in value)
            return complex(re, im)
        if dtype.kind == "S" and isinstance(value, str):
            return base64.standard_b64decode(value)
    except (TypeError, ValueError, struct.error):
        pass
    return value


def node_doc(
    attrs: Mapping[str, Any],
    doc: Document,
    dtype: np.dtype[Any] | None = None,
    name: str = "",
) -> Document:
    """``doc`` with the node's attributes (and their types in the extension field).

    Raises
    ------
    UnsupportedFeatureError
        For a ``_FillValue`` on a bytes or string array, which xarray cannot read back.
    """
    # NaN and infinities stay the strings "NaN"/"Infinity": Icechunk's metadata parser
    # refuses the bare tokens zarr-python writes elsewhere (xarray's own to_zarr into
    # Icechunk fails on such attributes); the type record restores them for our readers
    doc["attributes"] = attrs_to_json(attrs)
    if dtype is not None and "_FillValue" in attrs:
        if dtype.kind in "SUTO":
            raise UnsupportedFeatureError(
                f"variable {name!r} holds {'bytes' if dtype.kind == 'S' else 'strings'} "
                f"({dtype}) with a _FillValue ({attrs['_FillValue']!r}), which xarray cannot "
                "read from Zarr v3: it fails with 'Failed to decode fill_value. Unsupported "
                "dtype' (on its own to_zarr output too), and xr.open_zarr would refuse the "
                f"whole group. Leave the variable out (drop_variables=[{name!r}] or "
                "ds.drop_vars(...)), or write kerchunk references or a manifest store "
                "(to_kerchunk, to_zarr), which keep it."
            )
        doc["attributes"]["_FillValue"] = fill_json(attrs["_FillValue"], dtype)
    dtypes = attribute_dtypes(attrs)
    if dtypes:
        doc[EXTENSION] = {"must_understand": False, "attribute_dtypes": dtypes}
    return doc


def group_doc(attrs: Mapping[str, Any]) -> Document:
    """A group's ``zarr.json``."""
    return node_doc(attrs, {"zarr_format": 3, "node_type": "group"})


def chunk_key(ndim: int, coords: tuple[int, ...]) -> str:
    """A chunk's key in the default Zarr v3 encoding (``c/0/1``; ``c`` for a scalar)."""
    return "/".join(["c", *(str(c) for c in coords)]) if ndim else "c"


def virtual_doc(var: EncodedVariable, arr: ManifestArray) -> Document:
    """A virtual array's ``zarr.json``: its metadata as Icechunk parses it."""
    doc: Document = dict(arr.metadata.to_dict())
    doc.pop("storage_transformers", None)
    doc["dimension_names"] = list(var.dims)
    if doc.get("chunk_grid", {}).get("name") == "rectilinear":
        doc["chunk_grid"] = rectilinear_grid(arr.shape, metadata_chunks(arr.metadata))
    return node_doc(var.attrs, doc, arr.dtype, var.name)


def rectilinear_grid(shape: tuple[int, ...], chunks: tuple[AxisChunks, ...]) -> Document:
    """A rectilinear chunk grid with every axis a list, run-length encoded.

    Zarr writes a regular axis of a rectilinear grid as a bare chunk length, which
    Icechunk 2.3 cannot parse; ``[[c, n]]`` (n chunks of length c, the last one padded
    past the array's end as in a regular grid) reads the same in Zarr and Icechunk.
    """
    axes: list[list[Any]] = []
    for extent, axis in zip(shape, chunks, strict=True):
        if isinstance(axis, int):
            axes.append([[axis, max(1, -(-extent // axis))]])
            continue
        runs: list[Any] = []
        for length in axis:
            if runs and isinstance(runs[-1], list) and runs[-1][0] == length:
                runs[-1][1] += 1
            elif runs and runs[-1] == length:
                runs[-1] = [length, 2]
            else:
                runs.append(length)
        axes.append(runs)
    return {"name": "rectilinear", "configuration": {"kind": "inline", "chunk_shapes": axes}}


def inline_chunks(prefix: str, arr: ManifestArray, offset: tuple[int, ...]) -> dict[str, bytes]:
    """The inline chunks of an array as native chunks (key -> bytes), offset in the grid."""
    ids = arr.manifest.path_ids
    out: dict[str, bytes] = {}
    for coords in zip(*np.nonzero(ids < -1), strict=True) if ids.ndim else []:
        pid = int(ids[coords])
        at = tuple(int(c) + o for c, o in zip(coords, offset, strict=True))
        out[join(prefix, chunk_key(ids.ndim, at))] = arr.manifest.inline[-2 - pid]
    if not ids.ndim and int(ids[()]) < -1:
        out[join(prefix, "c")] = arr.manifest.inline[-2 - int(ids[()])]
    return out
