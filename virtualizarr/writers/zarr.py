"""Write virtual datasets as Zarr v3 *manifest stores* (layout:
:mod:`virtualizarr.formats.manifest_store`).

On local disk a store is written into a temporary directory beside the target and renamed
into place, so a failure never leaves a half-written store. On object storage (``s3://``
...), which has no rename, every array's objects are uploaded first and the root group's
``zarr.json`` -- what makes the store discoverable -- last; see
:mod:`virtualizarr.io.write` for ``mode="w"`` replacement and roll-back.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numcodecs
import numpy as np
import xarray as xr

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
from virtualizarr.manifests.array_metadata import ArrayMetadata
from virtualizarr.manifests.metadata import make_array_metadata
from virtualizarr.writers.encode import EncodedVariable, encode_dataset

__all__ = [
    "check_manifest_format",
    "dataset_to_manifest_store",
    "datatree_to_manifest_store",
    "loaded_array",
    "write_manifest_group",
]


def _dumps(doc: Any) -> bytes:
    return dumps(doc, indent=2)


def _chunk_path(meta: ArrayMetadata, coords: tuple[int, ...]) -> str:
    return meta.chunk_key_encoding.encode_chunk_key(coords)


def _json_manifest(
    out: OutputDirectory, adir: str, meta: ArrayMetadata, arr: ManifestArray
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
    out: OutputDirectory,
    var: EncodedVariable,
    arr: ManifestArray,
    manifest_format: str,
    prefix: str = "",
) -> None:
    adir = prefix + var.name
    meta = arr.metadata
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
    out: OutputDirectory,
    ds: xr.Dataset,
    *,
    path: str = "",
    groups: Sequence[str] = (),
    manifest_format: str = "binary",
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
    manifest_format : {"binary", "json"}
        How virtual arrays keep their chunk references (see
        :mod:`virtualizarr.formats.manifest_store`).

    Raises
    ------
    UnsupportedFeatureError
        If a variable name cannot be a Zarr array name, or names one of ``groups``.
    InvalidArgumentError
        If ``manifest_format`` is not one of the formats.
    """
    check_manifest_format(manifest_format)
    prefix = f"{path.strip('/')}/" if path.strip("/") else ""
    enc = encode_dataset(ds, reserved=(ROOT_METADATA, *groups))
    for var in enc.variables:
        if var.array is not None:
            _virtual_array(out, var, var.array, manifest_format, prefix)
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
    groups: Sequence[tuple[str, xr.Dataset, Sequence[str]]],
    store: Location,
    *,
    mode: str = "w-",
    manifest_format: str = "binary",
) -> None:
    """Write the groups of a tree as one manifest store, the root group's ``zarr.json`` last.

    Parameters
    ----------
    groups : sequence of (str, xarray.Dataset, sequence of str)
        Each group's path (``""`` for the root, ``"a/b"``), its virtual dataset and the
        names of its subgroups, parents first.
    store : Location
    mode : {"w-", "w"}
    manifest_format : {"binary", "json"}
        As for :func:`dataset_to_manifest_store`.

    Raises
    ------
    OutputExistsError
        If the store exists and ``mode="w-"``.
    OutputWriteError
        If the object store refused a write or the network failed.
    UnsupportedFeatureError
        If a variable name cannot be a Zarr array name.
    """
    check_manifest_format(manifest_format)
    with output_directory(store, commit_key=ROOT_METADATA, mode=mode) as out:
        for path, ds, children in reversed(groups):  # the root (the commit point) last
            write_manifest_group(
                out, ds, path=path, groups=children, manifest_format=manifest_format
            )


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
