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
import math
import warnings
from collections.abc import Hashable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Literal, NotRequired, TypedDict

import numcodecs
import numpy as np
import ujson
import xarray as xr
from zarr.core.dtype import get_data_type_from_native_dtype

from virtualizarr.attrtypes import encode_loaded_variable
from virtualizarr.errors import UnsupportedFeatureError
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.manifest import MISSING
from virtualizarr.manifests.metadata import codecs_to_json, metadata_chunks
from virtualizarr.writers._json_format import format_entries

__all__ = [
    "KerchunkRefs",
    "dataset_to_kerchunk_json",
    "dataset_to_kerchunk_refs",
    "iter_kerchunk_json",
    "v3_codecs_to_v2",
    "zarr_v2_dtype",
]


class KerchunkRefs(TypedDict):
    """A kerchunk reference document, specification version 1."""

    version: int
    refs: dict[str, str | list[str | int]]
    virtualizarr: NotRequired[dict[str, Any]]


def _json(obj: Any) -> str:
    return ujson.dumps(_jsonable(obj), escape_forward_slashes=False, reject_bytes=False)


def _jsonable(obj: Any) -> Any:
    """Attribute values as JSON: NumPy scalars keep their exact value (as float64/int)."""
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return [_jsonable(v) for v in obj.tolist()] if obj.ndim else _jsonable(obj.item())
    if isinstance(obj, np.generic):
        item = obj.item()
        if isinstance(item, np.generic):  # long double and friends have no Python type
            item = float(item) if isinstance(item, np.floating) else str(item)
        return _jsonable(item)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "surrogateescape")
    if isinstance(obj, float) and not math.isfinite(obj):
        return "NaN" if math.isnan(obj) else ("Infinity" if obj > 0 else "-Infinity")
    return obj


# ---------------------------------------------------------------------- codecs
_BLOSC_SHUFFLE = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


def v3_codecs_to_v2(codecs: list[dict[str, Any]], name: str) -> tuple[str, list[dict[str, Any]]]:
    """Split a v3 codec pipeline into a v2 byte order and a list of numcodecs filters.

    Returns
    -------
    endian : {"<", ">", "|"}
    filters : list of numcodecs configurations, in encoding order

    Raises
    ------
    UnsupportedFeatureError
        For codecs Zarr v2 cannot express (such as ``transpose`` or sharding).
    """
    endian = "|"
    filters: list[dict[str, Any]] = []
    for c in codecs:
        cname, conf = c["name"], dict(c.get("configuration") or {})
        if cname == "bytes":
            e = conf.get("endian")
            endian = {"big": ">", "little": "<"}.get(e, "|") if e else "|"
        elif cname == "vlen-utf8":
            filters.append({"id": "vlen-utf8"})
        elif cname.startswith("numcodecs."):
            filters.append({"id": cname.removeprefix("numcodecs."), **conf})
        elif cname == "gzip":
            filters.append({"id": "gzip", "level": conf.get("level", 5)})
        elif cname == "zstd":
            filters.append({"id": "zstd", "level": conf.get("level", 0)})
        elif cname == "crc32c":
            filters.append({"id": "crc32c"})
        elif cname == "blosc":
            shuffle = conf.get("shuffle", "noshuffle")
            filters.append(
                {
                    "id": "blosc",
                    "cname": conf.get("cname", "lz4"),
                    "clevel": conf.get("clevel", 5),
                    "shuffle": _BLOSC_SHUFFLE.get(shuffle, shuffle),
                    "blocksize": conf.get("blocksize", 0),
                }
            )
        else:
            raise UnsupportedFeatureError(
                f"variable {name!r} uses the Zarr v3 codec {cname!r}, which kerchunk's Zarr v2 "
                "metadata cannot express; write it with ds.virtualize.to_zarr(...) instead."
            )
    return endian, filters


def zarr_v2_dtype(dtype: np.dtype[Any], endian: str) -> str:
    """The Zarr v2 dtype string for ``dtype`` stored with byte order ``endian``."""
    if dtype.kind in "OT":
        return "|O"
    if dtype.itemsize == 1 or dtype.kind in "SUbV":
        return dtype.newbyteorder("|").str if dtype.kind != "U" else dtype.str
    return dtype.newbyteorder(">" if endian == ">" else "<" if endian == "<" else "=").str


def _v2_fill_json(value: Any, dtype: np.dtype[Any]) -> Any:
    if value is None:
        return None
    if dtype.kind in "OT":
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zdt = get_data_type_from_native_dtype(dtype.newbyteorder("="))
        return zdt.to_json_scalar(zdt.cast_scalar(value), zarr_format=2)


def _is_zero_fill(value: Any, dtype: np.dtype[Any]) -> bool:
    """True if a missing chunk with ``fill_value: null`` reads as ``value`` (zeros)."""
    if dtype.kind in "OT":
        return value in ("", None)
    if dtype.kind in "SV":
        return bytes(value).strip(b"\x00") == b""
    v = np.asarray(value, dtype=dtype.newbyteorder("="))
    return bool((v == 0) & ~np.signbit(v)) if dtype.kind == "f" else bool(v == 0)


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
    name: str, var: xr.Variable, arr: ManifestArray, refs: dict[str, Any]
) -> ManifestArray:
    """Add ``.zarray``/``.zattrs``; return the array whose chunks are to be referenced.

    That array is ``arr`` itself, or a copy whose missing chunks are inline chunks full of
    the source's fill value when a missing chunk would not read back as that value.
    """
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
    fill_json = _v2_fill_json(declared, dtype) if declared is not None else None
    zattrs = {**attrs, "_ARRAY_DIMENSIONS": list(var.dims)}
    manifest = arr.manifest
    materialize = False
    if np.any(manifest.path_ids == MISSING):
        if declared is not None:
            reads_as = np.asarray(declared, dtype=dtype.newbyteorder("="))
            materialize = not _same_value(reads_as, true_fill)
        else:
            materialize = not _is_zero_fill(true_fill, dtype)
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
    refs[f"{name}/.zattrs"] = _json(zattrs)
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


def _loaded_variable_refs(name: str, var: xr.Variable, refs: dict[str, Any]) -> None:
    encoded = encode_loaded_variable(var, name)
    values = np.asarray(encoded.values)
    attrs = dict(encoded.attrs)
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
        "fill_value": _v2_fill_json(fill, dtype),
        "order": "C",
        "compressor": None,
        "filters": filters or None,
        "dimension_separator": ".",
    }
    refs[f"{name}/.zarray"] = _json(zarray)
    refs[f"{name}/.zattrs"] = _json({**attrs, "_ARRAY_DIMENSIONS": list(encoded.dims)})
    if values.size:
        key = f"{name}/" + (".".join("0" * values.ndim) if values.ndim else "0")
        refs[key] = _inline(_encode_chunk(values, endian, filters))


def _metadata_refs(ds: xr.Dataset) -> tuple[dict[str, Any], list[tuple[str, ManifestArray]]]:
    """Every reference except the chunk references of virtual variables, plus those arrays."""
    variables, attrs = xr.conventions.encode_dataset_coordinates(ds)
    refs: dict[str, Any] = {
        ".zgroup": _json({"zarr_format": 2}),
        ".zattrs": _json(attrs),
    }
    virtual: list[tuple[str, ManifestArray]] = []
    for name, var in variables.items():
        key = _var_name(name)
        data = var.data
        if isinstance(data, ManifestArray):
            virtual.append((key, _virtual_variable_refs(key, var, data, refs)))
        else:
            _loaded_variable_refs(key, var, refs)
    return refs, virtual


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
        ``{"version": 1, "refs": {...}}``.

    Raises
    ------
    UnsupportedFeatureError
        If a variable cannot be expressed with Zarr v2 metadata.
    """
    refs, virtual = _metadata_refs(ds)
    with _gc_paused():
        for name, arr in virtual:
            _chunk_refs(name, arr, refs)
    out: KerchunkRefs = {"version": 1, "refs": refs}
    ext = _virtualizarr_extension(ds)
    if ext:
        out["virtualizarr"] = ext
    return out


def _virtualizarr_extension(ds: xr.Dataset) -> dict[str, Any]:
    """Attribute dtypes JSON loses and source identities, for engine="virtualizarr".

    fsspec ignores the key.
    """
    from virtualizarr.attrtypes import dataset_attribute_dtypes
    from virtualizarr.identity import dataset_sources

    variables, attrs = xr.conventions.encode_dataset_coordinates(ds)
    dtypes = dataset_attribute_dtypes(variables, attrs)
    ext: dict[str, Any] = {"attribute_dtypes": dtypes} if dtypes else {}
    sources = dataset_sources(ds)
    if sources:
        ext["sources"] = sources
    return ext


def iter_kerchunk_json(ds: xr.Dataset) -> Iterator[bytes]:
    """The kerchunk JSON document for a virtual dataset, as a stream of byte blocks.

    The parsed result equals :func:`dataset_to_kerchunk_refs` (same keys and values), but
    chunk references are formatted in bulk and streamed, which matters for millions of
    chunks: no intermediate dict and no single giant string.
    """
    refs, virtual = _metadata_refs(ds)
    yield b'{"version":1,"refs":{'
    yield ",".join(_json(k) + ":" + _json(v) for k, v in refs.items()).encode()
    with _gc_paused():
        for name, arr in virtual:
            yield from _chunk_ref_json(name, arr)
    ext = _virtualizarr_extension(ds)
    yield b"}" + (b',"virtualizarr":' + _json(ext).encode() if ext else b"") + b"}"


def dataset_to_kerchunk_json(ds: xr.Dataset) -> bytes:
    """The whole kerchunk JSON document as bytes (see :func:`iter_kerchunk_json`)."""
    return b"".join(iter_kerchunk_json(ds))


def _var_name(name: Hashable) -> str:
    s = str(name)
    if not s or "/" in s or s.startswith("."):
        raise UnsupportedFeatureError(
            f"variable name {s!r} cannot be a Zarr array name (empty, contains '/', or starts "
            "with '.'); rename it before writing."
        )
    return s


KerchunkFormat = Literal["dict", "json", "parquet"]
