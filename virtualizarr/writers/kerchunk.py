"""Kerchunk references (specification version 1, Zarr v2 metadata) from virtual datasets.

The document is built by pure functions (:func:`dataset_to_kerchunk_refs`) and written in
one place, atomically. Virtual variables become ``.zarray``/``.zattrs`` plus one
``[path, offset, length]`` reference per stored chunk; loaded variables are CF-encoded
exactly as xarray would write them and inlined as one chunk.

Fill values follow the fidelity rule. xarray's zarr engine treats a Zarr v2
``fill_value`` as ``_FillValue`` (a mask), so ``fill_value`` is the source's ``_FillValue``
attribute when it has one and ``null`` otherwise; missing chunks whose true content (the
source's fill value) would not read back that way are written as inline chunks holding it.
"""

from __future__ import annotations

import base64
import gc
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import numcodecs
import numpy as np
import ujson
import xarray as xr

from virtualizarr.errors import UnsupportedFeatureError
from virtualizarr.formats.attrs import jsonable
from virtualizarr.formats.kerchunk import (
    KerchunkRefs,
    is_zero_fill,
    v2_fill_to_json,
    v3_codecs_to_v2,
    zarr_v2_dtype,
)
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.manifest import MISSING
from virtualizarr.manifests.metadata import codecs_to_json, metadata_chunks
from virtualizarr.writers.encode import EncodedDataset, EncodedVariable, encode_dataset
from virtualizarr.writers.json_format import format_entries

__all__ = [
    "KerchunkRefs",
    "dataset_to_kerchunk_json",
    "dataset_to_kerchunk_refs",
    "datatree_refs",
    "datatree_to_kerchunk_refs",
    "iter_kerchunk_json",
    "kerchunk_document",
    "virtual_refs",
]


def _json(obj: Any) -> str:
    return ujson.dumps(jsonable(obj), escape_forward_slashes=False, reject_bytes=False)


def _attrs_json(attrs: Any) -> str:
    """``.zattrs`` text: NaN and infinities as the bare tokens zarr-python writes there (and
    zarr, fsspec and our reader read back as floats), not as strings."""
    value = jsonable(attrs, keep_non_finite=True)
    return ujson.dumps(value, escape_forward_slashes=False, reject_bytes=False)


def _encode_chunk(
    values: np.ndarray[Any, Any], endian: str, filters: list[dict[str, Any]]
) -> bytes:
    data: Any
    if values.dtype.kind in "OT":
        data = values
    else:
        dt = values.dtype.newbyteorder(">" if endian == ">" else "<" if endian == "<" else "=")
        data = np.ascontiguousarray(values.astype(dt)).tobytes()
    for conf in filters:
        data = numcodecs.get_codec(dict(conf)).encode(data)
    return bytes(data)


def _inline(data: bytes) -> str:
    return "base64:" + base64.b64encode(data).decode("ascii")


# ---------------------------------------------------------------------- variables
def _virtual_variable_refs(
    var: EncodedVariable, arr: ManifestArray, refs: dict[str, Any]
) -> ManifestArray:
    """Add ``.zarray``/``.zattrs``; return the array whose chunks are to be referenced.

    That array is ``arr`` itself, or a copy whose missing chunks are inline chunks full of
    the source's fill value when a missing chunk would not read back as that value.
    """
    name = var.name
    meta = arr.metadata
    chunks = metadata_chunks(meta)
    if not all(isinstance(c, int) for c in chunks):
        raise UnsupportedFeatureError(
            f"variable {name!r} has variable-length chunks (a rectilinear chunk grid), which "
            "kerchunk's Zarr v2 metadata cannot express; write it with "
            "ds.virtualize.to_zarr(...) instead."
        )
    dtype = arr.dtype
    endian, filters = v3_codecs_to_v2(codecs_to_json(meta), name)
    attrs = dict(var.attrs)
    declared = attrs.pop("_FillValue", None)
    true_fill = meta.fill_value
    fill_json = v2_fill_to_json(declared, dtype) if declared is not None else None
    zattrs = {**attrs, "_ARRAY_DIMENSIONS": list(var.dims)}
    manifest = arr.manifest
    materialize = False
    if np.any(manifest.path_ids == MISSING):
        if declared is not None:
            reads_as = np.asarray(declared, dtype=dtype.newbyteorder("="))
            materialize = not _same_value(reads_as, true_fill)
        else:
            materialize = not is_zero_fill(true_fill, dtype)
    zarray = {
        "zarr_format": 2,
        "shape": list(arr.shape),
        "chunks": [int(c) for c in chunks] if arr.ndim else [],  # type: ignore[arg-type]
        "dtype": zarr_v2_dtype(dtype, endian),
        "fill_value": fill_json,
        "order": "C",
        "compressor": None,
        "filters": filters or None,
        "dimension_separator": ".",
    }
    refs[f"{name}/.zarray"] = _json(zarray)
    refs[f"{name}/.zattrs"] = _attrs_json(zattrs)
    if not materialize:
        return arr
    block = np.full(tuple(int(c) for c in chunks), true_fill, dtype=dtype)  # type: ignore[arg-type]
    return arr.replace(manifest=manifest.fill_missing(_encode_chunk(block, endian, filters)))


def _same_value(a: Any, b: Any) -> bool:
    a, b = np.asarray(a), np.asarray(b)
    if a.dtype.kind in "fc" and b.dtype.kind in "fc":
        return bool(np.array_equal(a, b, equal_nan=True))
    return bool(np.array_equal(a, b))


def _chunk_refs(name: str, arr: ManifestArray, refs: dict[str, Any]) -> None:
    """Add ``"name/i.j": [path, offset, length]`` (or inline) entries for present chunks."""
    m = arr.manifest
    ids = m.path_ids
    if arr.ndim == 0:
        entry = m.get_chunk(())
        if isinstance(entry, dict):
            refs[f"{name}/0"] = [entry["path"], entry["offset"], entry["length"]]
        elif isinstance(entry, bytes):
            refs[f"{name}/0"] = _inline(entry)
        return
    present = np.nonzero(ids >= 0)
    if present[0].size:
        keys = _chunk_keys(name, present, ids.shape)
        paths = np.asarray(m.paths, dtype=object)[ids[present]].tolist()
        offs = m.offsets[present].tolist()
        lens = m.lengths[present].tolist()
        refs.update(
            zip(keys, [[p, o, n] for p, o, n in zip(paths, offs, lens, strict=True)], strict=True)
        )
    for key, value in _inline_refs(name, arr):
        refs[key] = value


def _inline_refs(name: str, arr: ManifestArray) -> list[tuple[str, str]]:
    ids = arr.manifest.path_ids
    inl = np.nonzero(ids < MISSING)
    if not inl[0].size:
        return []
    keys = _chunk_keys(name, inl, ids.shape)
    return [
        (k, _inline(arr.manifest.inline[-2 - pid]))
        for k, pid in zip(keys, ids[inl].tolist(), strict=True)
    ]


def _chunk_ref_json(name: str, arr: ManifestArray) -> Iterator[bytes]:
    """The same entries as :func:`_chunk_refs`, as blocks of ``,"key":value`` JSON text.

    Referenced chunks come first, then inline ones, each in C order.
    """
    m = arr.manifest
    grid = m.shape_chunk_grid
    ids = m.path_ids.ravel()
    prefix = (_json(name)[1:-1] + "/").encode()
    present = np.flatnonzero(ids >= 0)
    if present.size:
        table = _json_strings(m.paths, b",")
        ranges = (m.offsets.ravel(), m.lengths.ravel())
        yield from format_entries(prefix, grid, present, table, ids, ranges)
    inline = np.flatnonzero(ids < MISSING)
    if inline.size:
        table = [b'"' + _inline(b).encode() + b'"' for b in m.inline]  # base64: no escapes
        yield from format_entries(prefix, grid, inline, table, -2 - ids)


def _json_strings(strings: Sequence[str], suffix: bytes = b"") -> list[bytes]:
    """``_json(s) + suffix`` for many strings, as bytes.

    When no string needs an escape (printable ASCII without quotes or backslashes, as
    paths usually are), that is just quoting, without calling the encoder per string.
    """
    joined = "".join(strings)
    if joined.isascii() and joined.isprintable() and '"' not in joined and "\\" not in joined:
        return [b'"' + s.encode() + b'"' + suffix for s in strings]
    return [_json(s).encode() + suffix for s in strings]


@contextmanager
def _gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while building millions of small containers.

    None of them form cycles, and collections triggered by the allocations alone would
    otherwise take most of the time.
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _chunk_keys(
    name: str, coords: tuple[np.ndarray[Any, Any], ...], grid: tuple[int, ...]
) -> list[str]:
    """``"name/i.j.k"`` keys for many chunks at once.

    Axes one chunk long are folded into a constant prefix or suffix, so the common case
    (one axis of many chunks) costs one ``str`` and one concatenation per chunk.
    """
    n = len(coords[0]) if coords else 1
    varying = [ax for ax, size in enumerate(grid) if size > 1]
    if not varying:
        return [f"{name}/" + ".".join("0" * len(grid))] * n

    def column(ax: int) -> list[str]:
        return list(map(str, coords[ax].tolist()))

    lo, hi = varying[0], varying[-1]
    if varying == list(range(lo, hi + 1)):
        pre = f"{name}/" + "0." * lo
        suf = ".0" * (len(grid) - 1 - hi)
        cols = [column(ax) for ax in varying]
    else:
        pre, suf = f"{name}/", ""
        cols = [column(ax) for ax in range(len(grid))]
    if len(cols) == 1:
        return [pre + a + suf for a in cols[0]]
    if len(cols) == 2:
        return [f"{pre}{a}.{b}{suf}" for a, b in zip(*cols, strict=True)]
    return [pre + ".".join(t) + suf for t in zip(*cols, strict=True)]


def _loaded_variable_refs(var: EncodedVariable, refs: dict[str, Any]) -> None:
    name = var.name
    assert var.values is not None  # a loaded variable
    values = var.values
    attrs = dict(var.attrs)
    fill = attrs.pop("_FillValue", None)
    if values.dtype.kind == "U":
        values = values.astype(object)
    dtype = values.dtype
    filters = [{"id": "vlen-utf8"}] if dtype.kind in "OT" else []
    endian = "<" if dtype.itemsize > 1 else "|"
    zarray = {
        "zarr_format": 2,
        "shape": list(values.shape),
        "chunks": [max(int(s), 1) for s in values.shape],
        "dtype": zarr_v2_dtype(dtype, endian),
        "fill_value": v2_fill_to_json(fill, dtype),
        "order": "C",
        "compressor": None,
        "filters": filters or None,
        "dimension_separator": ".",
    }
    refs[f"{name}/.zarray"] = _json(zarray)
    refs[f"{name}/.zattrs"] = _attrs_json({**attrs, "_ARRAY_DIMENSIONS": list(var.dims)})
    if values.size:
        key = f"{name}/" + (".".join("0" * values.ndim) if values.ndim else "0")
        refs[key] = _inline(_encode_chunk(values, endian, filters))


def virtual_refs(enc: EncodedDataset) -> tuple[dict[str, Any], list[tuple[str, ManifestArray]]]:
    """Every reference except the chunk references of virtual variables, plus those arrays
    (each with its missing chunks materialized where they would not read back right)."""
    refs: dict[str, Any] = {
        ".zgroup": _json({"zarr_format": 2}),
        ".zattrs": _attrs_json(enc.attrs),
    }
    virtual: list[tuple[str, ManifestArray]] = []
    for var in enc.variables:
        if var.array is not None:
            virtual.append((var.name, _virtual_variable_refs(var, var.array, refs)))
        else:
            _loaded_variable_refs(var, refs)
    return refs, virtual


def kerchunk_document(enc: EncodedDataset) -> KerchunkRefs:
    """The kerchunk reference document (spec version 1) of an encoded dataset."""
    refs, virtual = virtual_refs(enc)
    with _gc_paused():
        for name, arr in virtual:
            _chunk_refs(name, arr, refs)
    out: KerchunkRefs = {"version": 1, "refs": refs}
    ext = enc.extension()
    if ext:
        out["virtualizarr"] = ext
    return out


def dataset_to_kerchunk_refs(ds: xr.Dataset) -> KerchunkRefs:
    """Build a kerchunk reference document (spec version 1) for a virtual dataset.

    Parameters
    ----------
    ds : xarray.Dataset
        Variables backed by :class:`ManifestArray` become chunk references; others are
        CF-encoded and inlined.

    Returns
    -------
    KerchunkRefs
        ``{"version": 1, "refs": {...}}``, plus our ``"virtualizarr"`` record.

    Raises
    ------
    UnsupportedFeatureError
        If a variable cannot be expressed with Zarr v2 metadata.
    """
    return kerchunk_document(encode_dataset(ds))


def iter_kerchunk_json(ds: xr.Dataset) -> Iterator[bytes]:
    """The kerchunk JSON document for a virtual dataset, as a stream of byte blocks.

    The parsed result equals :func:`dataset_to_kerchunk_refs` (same keys and values), but
    chunk references are formatted in bulk and streamed, which matters for millions of
    chunks: no intermediate dict and no single giant string.
    """
    enc = encode_dataset(ds)
    refs, virtual = virtual_refs(enc)
    yield b'{"version":1,"refs":{'
    yield ",".join(_json(k) + ":" + _json(v) for k, v in refs.items()).encode()
    with _gc_paused():
        for name, arr in virtual:
            yield from _chunk_ref_json(name, arr)
    ext = enc.extension()
    yield b"}" + (b',"virtualizarr":' + _json(ext).encode() if ext else b"") + b"}"


def dataset_to_kerchunk_json(ds: xr.Dataset) -> bytes:
    """The whole kerchunk JSON document as bytes (see :func:`iter_kerchunk_json`)."""
    return b"".join(iter_kerchunk_json(ds))


# ---------------------------------------------------------------------- groups
def datatree_refs(
    groups: Sequence[tuple[str, xr.Dataset]],
) -> tuple[dict[str, Any], list[tuple[str, ManifestArray]], dict[str, Any]]:
    """:func:`virtual_refs` of several groups, as one document: every key of a group at
    ``path`` is prefixed ``path/`` (its ``.zgroup``, ``.zattrs``, arrays and chunks), and
    the ``"virtualizarr"`` record is keyed by the same paths (``"a/b"`` for the group's
    attributes, ``"a/b/var"`` for a variable's; ``""`` for the root).

    Parameters
    ----------
    groups : sequence of (str, xarray.Dataset)
        Each group's path (``""`` for the root, ``"a/b"``) and its virtual dataset.

    Returns
    -------
    (dict, list of (str, ManifestArray), dict)
        The references but the virtual chunks, the virtual arrays (full paths) and the
        document's ``"virtualizarr"`` record.
    """
    refs: dict[str, Any] = {}
    virtual: list[tuple[str, ManifestArray]] = []
    dtypes: dict[str, Any] = {}
    sources: dict[str, Any] = {}
    for path, ds in groups:
        prefix = f"{path.strip('/')}/" if path.strip("/") else ""
        enc = encode_dataset(ds)
        group_refs, group_virtual = virtual_refs(enc)
        refs.update({prefix + k: v for k, v in group_refs.items()})
        virtual += [(prefix + name, arr) for name, arr in group_virtual]
        for key, record in enc.attribute_dtypes().items():
            dtypes[(prefix + key) if key else prefix.rstrip("/")] = record
        sources.update(enc.sources)
    ext: dict[str, Any] = {}
    if dtypes:
        ext["attribute_dtypes"] = dtypes
    if sources:
        ext["sources"] = sources
    return refs, virtual, ext


def datatree_to_kerchunk_refs(groups: Sequence[tuple[str, xr.Dataset]]) -> KerchunkRefs:
    """One kerchunk reference document (spec version 1) for several nested groups.

    Parameters
    ----------
    groups : sequence of (str, xarray.Dataset)
        Each group's path (``""`` for the root, ``"a/b"``) and its virtual dataset.

    Returns
    -------
    KerchunkRefs
        Zarr v2 groups at ``"a/b/.zgroup"`` ..., as fsspec and ``xr.open_datatree`` read
        them.

    Raises
    ------
    UnsupportedFeatureError
        If a variable cannot be expressed with Zarr v2 metadata.
    """
    refs, virtual, ext = datatree_refs(groups)
    with _gc_paused():
        for name, arr in virtual:
            _chunk_refs(name, arr, refs)
    out: KerchunkRefs = {"version": 1, "refs": refs}
    if ext:
        out["virtualizarr"] = ext
    return out
