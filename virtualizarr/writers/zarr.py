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
from typing import Any

import numcodecs
import numpy as np
import xarray as xr
from zarr.core.metadata.v3 import ArrayV3Metadata

from virtualizarr.errors import InvalidArgumentError
from virtualizarr.formats.attrs import attrs_to_json, dumps
from virtualizarr.formats.manifest_store import (
    COLUMNS,
    EXTENSION,
    MANIFEST,
    MANIFEST_FORMATS,
    PATHS,
    ROOT_METADATA,
    binary_transformer,
    crc32,
    encode_columns,
    extension,
    transformer,
)
from virtualizarr.io.objects import Location
from virtualizarr.io.write import OutputDirectory, output_directory
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.metadata import make_array_metadata
from virtualizarr.writers.encode import EncodedVariable, encode_dataset

__all__ = ["check_manifest_format", "dataset_to_manifest_store", "write_manifest_group"]


def _dumps(doc: Any) -> bytes:
    return dumps(doc, indent=2)


def _chunk_path(meta: ArrayV3Metadata, coords: tuple[int, ...]) -> str:
    return meta.chunk_key_encoding.encode_chunk_key(coords)


def _json_manifest(
    out: OutputDirectory, adir: str, meta: ArrayV3Metadata, arr: ManifestArray
) -> dict[str, Any]:
    """Write ``manifest.json`` (one entry per referenced chunk); its transformer entry."""
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
    out.put(f"{adir}/{MANIFEST}", _dumps(entries))
    return transformer()


def _binary_manifest(out: OutputDirectory, adir: str, arr: ManifestArray) -> dict[str, Any]:
    """Write the path table and the columns file; their transformer entry.

    Paths no chunk references (left in the table by slicing) are dropped, so that the
    table -- which readers check against their source policy -- names only real sources.
    """
    m = arr.manifest
    ids = m.path_ids
    used = np.bincount(ids[ids >= 0], minlength=len(m.paths)) > 0
    if not used.all():
        renumber = np.cumsum(used, dtype=np.int32) - 1
        ids = np.where(ids >= 0, renumber[np.maximum(ids, 0)], ids)
    paths = [p for p, u in zip(m.paths, used.tolist(), strict=True) if u]
    data, kind, references = encode_columns(ids, m.offsets, m.lengths, len(paths))
    out.put(f"{adir}/{PATHS}", dumps(paths))
    out.put(f"{adir}/{COLUMNS}", data)
    return binary_transformer(kind, references, crc32(data))


def _virtual_array(
    out: OutputDirectory, var: EncodedVariable, arr: ManifestArray, manifest_format: str
) -> None:
    adir = var.name
    meta = arr.metadata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fixed-length bytes: "not in the v3 spec"
        doc = meta.to_dict()
    attrs = var.attrs
    doc["attributes"] = attrs_to_json(attrs)
    doc["dimension_names"] = list(var.dims)
    if manifest_format == "json":
        doc["storage_transformers"] = [_json_manifest(out, adir, meta, arr)]
    else:
        doc["storage_transformers"] = [_binary_manifest(out, adir, arr)]
    m = arr.manifest
    ids = m.path_ids.reshape(-1) if not arr.ndim else m.path_ids  # np.nonzero refuses 0-d
    chunk_files: dict[str, int] = {}
    inline = np.nonzero(ids < -1)
    if inline[0].size:
        coords = list(zip(*(c.tolist() for c in inline), strict=True)) if arr.ndim else [()]
        for c, pid in zip(coords, ids[inline].tolist(), strict=True):
            key = _chunk_path(meta, tuple(c))
            data = m.inline[-2 - pid]
            out.put(f"{adir}/{key}", data)
            chunk_files[key] = len(data)
    doc[EXTENSION] = extension(attrs, chunk_files=chunk_files)
    out.put(f"{adir}/{ROOT_METADATA}", _dumps(doc))


def _loaded_array(out: OutputDirectory, var: EncodedVariable) -> None:
    adir = var.name
    assert var.values is not None  # a loaded variable
    values = var.values
    attrs = var.attrs
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
    doc["attributes"] = attrs_to_json(attrs)
    chunk_files: dict[str, int] = {}
    if values.size:
        if dtype.kind == "O":
            data = bytes(numcodecs.VLenUTF8().encode(values.ravel()))
        else:
            data = np.ascontiguousarray(values.astype(dtype)).tobytes()
        key = _chunk_path(meta, (0,) * values.ndim)
        out.put(f"{adir}/{key}", data)
        chunk_files[key] = len(data)
    doc[EXTENSION] = extension(attrs, chunk_files=chunk_files)
    out.put(f"{adir}/{ROOT_METADATA}", _dumps(doc))


def write_manifest_group(
    out: OutputDirectory, ds: xr.Dataset, *, manifest_format: str = "binary"
) -> None:
    """Write the group of a virtual dataset: every array's objects, then the group's.

    Parameters
    ----------
    out : OutputDirectory
        Where to put the objects (see :func:`virtualizarr.io.write.output_directory`).
    ds : xarray.Dataset
        A virtual dataset.
    manifest_format : {"binary", "json"}
        How virtual arrays keep their chunk references (see
        :mod:`virtualizarr.formats.manifest_store`).

    Raises
    ------
    UnsupportedFeatureError
        If a variable name cannot be a Zarr array name.
    InvalidArgumentError
        If ``manifest_format`` is not one of the formats.
    """
    check_manifest_format(manifest_format)
    enc = encode_dataset(ds, reserved=(ROOT_METADATA,))
    for var in enc.variables:
        if var.array is not None:
            _virtual_array(out, var, var.array, manifest_format)
        else:
            _loaded_array(out, var)
    names = [var.name for var in enc.variables]
    ext = extension(enc.attrs, arrays=names, sources=enc.sources)
    if not enc.sources:
        del ext["sources"]
    gdoc = {  # the record before the attributes, which can be long: readers look for it
        "zarr_format": 3,
        "node_type": "group",
        EXTENSION: ext,
        "attributes": attrs_to_json(enc.attrs),
    }
    out.put(ROOT_METADATA, _dumps(gdoc))


def check_manifest_format(manifest_format: str) -> None:
    """Refuse an unknown ``manifest_format``.

    Raises
    ------
    InvalidArgumentError
    """
    if manifest_format not in MANIFEST_FORMATS:
        raise InvalidArgumentError(
            f"manifest_format must be one of {list(MANIFEST_FORMATS)}; found "
            f"{manifest_format!r}. Use 'binary' (the default: small, opens lazily) or 'json' "
            "(readable by older virtualizarr versions)."
        )


def dataset_to_manifest_store(
    ds: xr.Dataset, store: Location, *, mode: str = "w-", manifest_format: str = "binary"
) -> None:
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
    manifest_format : {"binary", "json"}
        ``"binary"`` (default): each virtual array's references as a path table and raw
        columns, opened lazily; ``"json"``: one ``manifest.json`` per array, as older
        versions wrote.

    Raises
    ------
    OutputExistsError
        If the store exists and ``mode="w-"``.
    OutputWriteError
        If the object store refused a write or the network failed; the previous store,
        if any, is left as it was.
    UnsupportedFeatureError
        If a variable name cannot be a Zarr array name.
    InvalidArgumentError
        If ``manifest_format`` is not one of the formats.

    Examples
    --------
    >>> dataset_to_manifest_store(vds, Location.of("virtual.zarr"))  # doctest: +SKIP
    """
    check_manifest_format(manifest_format)
    with output_directory(store, commit_key=ROOT_METADATA, mode=mode) as out:
        write_manifest_group(out, ds, manifest_format=manifest_format)
