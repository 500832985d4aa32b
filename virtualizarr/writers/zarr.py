"""Write virtual datasets as Zarr v3 *manifest stores* (layout:
:mod:`virtualizarr.formats.manifest_store`).

On local disk a store is written into a temporary directory beside the target and renamed
into place, so a failure never leaves a half-written store. On object storage (``s3://``
...), which has no rename, every array's objects are uploaded first and the root group's
``zarr.json`` -- what makes the store discoverable -- last; see
:mod:`virtualizarr.io.write` for ``mode="w"`` replacement and roll-back.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numcodecs
import numpy as np
import xarray as xr
from zarr.core.metadata.v3 import ArrayV3Metadata

from virtualizarr.formats.attrs import attrs_to_json, dumps
from virtualizarr.formats.manifest_store import (
    EXTENSION,
    MANIFEST,
    ROOT_METADATA,
    extension,
    transformer,
)
from virtualizarr.io.objects import Location
from virtualizarr.io.write import OutputDirectory, output_directory
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.metadata import make_array_metadata
from virtualizarr.writers.encode import EncodedVariable, encode_dataset

__all__ = [
    "dataset_to_manifest_store",
    "datatree_to_manifest_store",
    "loaded_array",
    "write_manifest_group",
]


def _dumps(doc: Any) -> bytes:
    return dumps(doc, indent=2)


def _chunk_path(meta: ArrayV3Metadata, coords: tuple[int, ...]) -> str:
    return meta.chunk_key_encoding.encode_chunk_key(coords)


def _virtual_array(
    out: OutputDirectory, var: EncodedVariable, arr: ManifestArray, prefix: str = ""
) -> None:
    adir = prefix + var.name
    meta = arr.metadata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fixed-length bytes: "not in the v3 spec"
        doc = meta.to_dict()
    attrs = var.attrs
    doc["attributes"] = attrs_to_json(attrs)
    doc["dimension_names"] = list(var.dims)
    doc["storage_transformers"] = [transformer()]
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
            out.put(f"{adir}/{key}", data)
            chunk_files[key] = len(data)
    doc[EXTENSION] = extension(attrs, chunk_files=chunk_files)
    out.put(f"{adir}/{MANIFEST}", _dumps(entries))
    out.put(f"{adir}/{ROOT_METADATA}", _dumps(doc))


def loaded_array(var: EncodedVariable) -> tuple[dict[str, Any], dict[str, bytes]]:
    """A loaded variable as Zarr v3: its ``zarr.json`` document and its chunk files.

    One chunk holding the whole array (keys relative to the array's directory), stored
    with the ``bytes`` codec only (``vlen-utf8`` for strings); no chunk for an empty array.

    Parameters
    ----------
    var : EncodedVariable
        A loaded variable (``var.values`` set), CF-encoded.

    Returns
    -------
    tuple of dict and dict
        The metadata document (attributes encoded by :mod:`virtualizarr.formats.attrs`)
        and ``{chunk key: bytes}``.
    """
    assert var.values is not None  # a loaded variable
    values = var.values
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
            dimension_names=list(var.dims),
        )
        doc = meta.to_dict()
    doc["attributes"] = attrs_to_json(var.attrs)
    chunks: dict[str, bytes] = {}
    if values.size:
        if dtype.kind == "O":
            data = bytes(numcodecs.VLenUTF8().encode(values.ravel()))
        else:
            data = np.ascontiguousarray(values.astype(dtype)).tobytes()
        chunks[_chunk_path(meta, (0,) * values.ndim)] = data
    return doc, chunks


def _loaded_array(out: OutputDirectory, var: EncodedVariable, prefix: str = "") -> None:
    adir = prefix + var.name
    doc, chunks = loaded_array(var)
    for key, data in chunks.items():
        out.put(f"{adir}/{key}", data)
    doc[EXTENSION] = extension(var.attrs, chunk_files={k: len(d) for k, d in chunks.items()})
    out.put(f"{adir}/{ROOT_METADATA}", _dumps(doc))


def write_manifest_group(
    out: OutputDirectory, ds: xr.Dataset, *, path: str = "", groups: Sequence[str] = ()
) -> None:
    """Write the group of a virtual dataset: every array's objects, then the group's.

    Parameters
    ----------
    out : OutputDirectory
        Where to put the objects (see :func:`virtualizarr.io.write.output_directory`).
    ds : xarray.Dataset
        A virtual dataset.
    path : str
        Where the group is inside the store (``"a/b"``; ``""`` for the root).
    groups : sequence of str
        The names of its subgroups, recorded in its ``"virtualizarr"`` extension so that
        a store read without a listing (HTTP) finds them.

    Raises
    ------
    UnsupportedFeatureError
        If a variable name cannot be a Zarr array name, or names one of ``groups``.
    """
    prefix = f"{path.strip('/')}/" if path.strip("/") else ""
    enc = encode_dataset(ds, reserved=(ROOT_METADATA, *groups))
    for var in enc.variables:
        if var.array is not None:
            _virtual_array(out, var, var.array, prefix)
        else:
            _loaded_array(out, var, prefix)
    names = [var.name for var in enc.variables]
    ext = extension(enc.attrs, arrays=names, sources=enc.sources)
    if not enc.sources:
        del ext["sources"]
    if groups:
        ext["groups"] = list(groups)
    gdoc = {  # the record before the attributes, which can be long: readers look for it
        "zarr_format": 3,
        "node_type": "group",
        EXTENSION: ext,
        "attributes": attrs_to_json(enc.attrs),
    }
    out.put(prefix + ROOT_METADATA, _dumps(gdoc))


def datatree_to_manifest_store(
    groups: Sequence[tuple[str, xr.Dataset, Sequence[str]]], store: Location, *, mode: str = "w-"
) -> None:
    """Write the groups of a tree as one manifest store, the root group's ``zarr.json`` last.

    Parameters
    ----------
    groups : sequence of (str, xarray.Dataset, sequence of str)
        Each group's path (``""`` for the root, ``"a/b"``), its virtual dataset and the
        names of its subgroups, parents first.
    store : Location
    mode : {"w-", "w"}

    Raises
    ------
    OutputExistsError
        If the store exists and ``mode="w-"``.
    OutputWriteError
        If the object store refused a write or the network failed.
    UnsupportedFeatureError
        If a variable name cannot be a Zarr array name.
    """
    with output_directory(store, commit_key=ROOT_METADATA, mode=mode) as out:
        for path, ds, children in reversed(groups):  # the root (the commit point) last
            write_manifest_group(out, ds, path=path, groups=children)


def dataset_to_manifest_store(ds: xr.Dataset, store: Location, *, mode: str = "w-") -> None:
    """Write a virtual dataset as a Zarr v3 manifest store, locally or on object storage.

    Parameters
    ----------
    ds : xarray.Dataset
        A virtual dataset (variables backed by ``ManifestArray`` or NumPy).
    store : Location
        The store's directory, or a URL prefix (``s3://bucket/virtual.zarr``).
    mode : {"w-", "w"}
        ``"w-"`` (default) refuses an existing store (on object storage: any object under
        the URL); ``"w"`` replaces it.

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
    >>> dataset_to_manifest_store(vds, Location.of("virtual.zarr"))  # doctest: +SKIP
    """
    with output_directory(store, commit_key=ROOT_METADATA, mode=mode) as out:
        write_manifest_group(out, ds)
