"""Parsed kerchunk references to virtual arrays: Zarr v2 metadata to Zarr v3, chunks to
manifests (in bulk where the references are regular).

The v2 filters and compressor become ``numcodecs.*`` codecs, the v2 ``fill_value`` (which
xarray reads as ``_FillValue``) becomes both the ``_FillValue`` attribute and the v3 fill
value, and attribute types recorded by our writers (see :mod:`virtualizarr.formats.attrs`)
are restored.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Iterable, Mapping
from functools import partial
from typing import Any

import numpy as np

from virtualizarr.errors import (
    InvalidReferencesError,
    UnsupportedFeatureError,
    UntrustedReferenceError,
)
from virtualizarr.formats.attrs import restore_attrs
from virtualizarr.formats.chunk_keys import parse_chunk_keys, parse_ints
from virtualizarr.formats.kerchunk import (
    v2_default_fill,
    v2_dtype_from_json,
    v2_fill_from_json,
)
from virtualizarr.formats.zarr_store import split_v2_codecs, stored_dtype
from virtualizarr.manifests import (
    MISSING,
    ChunkManifest,
    ManifestArray,
    VirtualGroup,
    VirtualVariable,
    cf_encoding_attrs,
    check_dimension_sizes,
    make_array_metadata,
)
from virtualizarr.readers.base import check_grid_cells, guard_document
from virtualizarr.readers.kerchunk.parse import ParsedReferences

__all__ = ["grid_of", "references_to_group"]


def _attribute_dtypes(extension: Mapping[str, Any], name: str) -> dict[str, Any]:
    """The attribute-dtype record of one node, or ``{}`` if the record is malformed."""
    record = extension.get("attribute_dtypes")
    node = record.get(name) if isinstance(record, dict) else None
    if not isinstance(node, dict):
        return {}
    return {
        str(k): v
        for k, v in node.items()
        if isinstance(v, str) or (isinstance(v, list) and len(v) == 1 and isinstance(v[0], str))
    }


def _attrs_doc(refs: ParsedReferences, key: str) -> dict[str, Any]:
    doc = refs.metadata.get(key)
    if doc is None:
        return {}
    if not isinstance(doc, dict):  # pragma: no cover - _load_meta returns objects only
        raise InvalidReferencesError(f"{refs.source}: {key} must be a JSON object.")
    return dict(doc)


def grid_of(zarray: Any, where: str) -> tuple[int, ...]:
    try:
        shape = [int(s) for s in zarray["shape"]]
        chunks = [int(c) for c in zarray["chunks"]]
    except (KeyError, TypeError, ValueError):
        raise InvalidReferencesError(
            f"{where}: .zarray needs integer lists 'shape' and 'chunks'; found {zarray!r:.200}."
        ) from None
    if len(shape) != len(chunks) or any(c <= 0 for c in chunks) or any(x < 0 for x in shape):
        raise InvalidReferencesError(
            f"{where}: .zarray 'shape' {shape} and 'chunks' {chunks} do not match."
        )
    return tuple(math.ceil(s / c) for s, c in zip(shape, chunks, strict=True))


def _place_fill_value(attrs: dict[str, Any], recorded: list[str]) -> dict[str, Any]:
    """Put ``_FillValue`` back where the source had it (the dtype record keeps the order)."""
    if "_FillValue" not in recorded:
        return attrs
    after = recorded[recorded.index("_FillValue") + 1 :]
    nxt = next((k for k in after if k in attrs), None)
    if nxt is None:
        return attrs
    fv = attrs.pop("_FillValue")
    out: dict[str, Any] = {}
    for k, v in attrs.items():
        if k == nxt:
            out["_FillValue"] = fv
        out[k] = v
    return out


def _url(url: str, templates: Mapping[str, str]) -> str:
    if "{{" in url:
        for k, v in templates.items():
            url = url.replace("{{" + k + "}}", v).replace("{{ " + k + " }}", v)
    return url


def _bulk_manifest(
    entries: Mapping[str, Any],
    grid: tuple[int, ...],
    separator: str,
    templates: Mapping[str, str],
) -> ChunkManifest | None:
    """The manifest of plain ``[url, offset, length]`` references, built in bulk.

    Returns None -- and :func:`_chunk_manifest` walks the entries one by one, with its
    precise error messages -- unless every entry is such a reference with a well-formed
    key inside the grid.
    """
    if not grid or not entries:
        return None
    check_grid_cells(grid, len(entries), "the references", InvalidReferencesError)
    values = list(entries.values())
    if set(map(type, values)) != {list} or set(map(len, values)) != {3}:
        return None
    urls, raw_offs, raw_lens = zip(*values, strict=True)
    if set(map(type, urls)) != {str}:
        return None
    coords = parse_chunk_keys(list(entries), separator, grid)
    offs, lens = parse_ints(raw_offs), parse_ints(raw_lens)
    if coords is None or offs is None or lens is None:
        return None
    table = {u: i for i, u in enumerate(dict.fromkeys(urls))}
    if templates and any("{{" in u for u in table):
        table = {}
        resolved = [_url(u, templates) for u in urls]
        path_ids = [table.setdefault(u, len(table)) for u in resolved]
    else:
        path_ids = [table[u] for u in urls]
    where = tuple(coords.T)
    ids = np.full(grid, MISSING, np.int32)
    out_offs = np.zeros(grid, np.uint64)
    out_lens = np.zeros(grid, np.uint64)
    ids[where] = path_ids
    out_offs[where] = offs
    out_lens[where] = lens
    return ChunkManifest(list(table), ids, out_offs, out_lens)


def _chunk_manifest(
    refs: ParsedReferences, name: str, grid: tuple[int, ...], separator: str
) -> ChunkManifest:
    if name in refs.manifests:
        return refs.manifests[name]
    entries = refs.chunks.get(name, {})
    columns = refs.columns.get(name)
    stored = len(entries) + (len(columns.offsets) if columns is not None else 0)
    check_grid_cells(grid, stored, f"{refs.source}: array {name!r}", InvalidReferencesError)
    if columns is None:
        fast = _bulk_manifest(entries, grid, separator, refs.templates)
        if fast is not None:
            return fast
    ids = np.full(grid, MISSING, np.int32)
    offs = np.zeros(grid, np.uint64)
    lens = np.zeros(grid, np.uint64)
    table: dict[str, int] = {}
    inline: list[bytes] = []
    if columns is not None:  # scanned in bulk (see readers.kerchunk.scan)
        remap = np.array(
            [table.setdefault(_url(p, refs.templates), len(table)) for p in columns.paths],
            np.int32,
        )
        where = tuple(columns.coords.T)
        ids[where] = remap[columns.path_ids] if len(remap) else columns.path_ids
        offs[where] = columns.offsets
        lens[where] = columns.lengths
    for key, value in entries.items():
        full = f"{name}/{key}" if name else key
        try:
            coords = tuple(int(c) for c in key.split(separator)) if grid else ()
            if not grid and key != "0":
                raise ValueError("a scalar array has the one chunk key '0'")
            if len(coords) != len(grid) or any(
                not 0 <= c < g for c, g in zip(coords, grid, strict=True)
            ):
                raise ValueError(f"outside the chunk grid {grid}")
        except ValueError as e:
            raise InvalidReferencesError(
                f"{refs.source}: chunk key {full!r} is not a chunk of {name!r} ({e})."
            ) from None
        if isinstance(value, str | bytes):
            data = value.encode() if isinstance(value, str) else value
            if data.startswith(b"base64:"):
                data = base64.b64decode(data[7:])
            ids[coords] = -2 - len(inline)
            inline.append(data)
            continue
        try:
            if not isinstance(value, list) or len(value) not in (1, 3):
                raise TypeError("expected [url] or [url, offset, length]")
            url = _url(str(value[0]), refs.templates)
            if len(value) == 3:
                off, length = int(value[1]), int(value[2])
                if off < 0 or length < 0:
                    raise ValueError("negative offset or length")
            else:
                off, length = 0, refs.size_of(url)
        except (TypeError, ValueError, OverflowError) as e:
            raise InvalidReferencesError(
                f"{refs.source}: the reference for chunk {full!r} is malformed ({e}); "
                f"found {value!r:.200}."
            ) from None
        except UntrustedReferenceError:
            raise
        except OSError as e:
            raise InvalidReferencesError(
                f"{refs.source}: chunk {full!r} references the whole of {value[0]!r}, whose "
                f"size could not be found ({type(e).__name__}: {e})."
            ) from None
        ids[coords] = table.setdefault(url, len(table))
        offs[coords] = off
        lens[coords] = length
    return ChunkManifest(list(table), ids, offs, lens, inline)


def _codec_list(
    zarray: Mapping[str, Any], where: str
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The v2 pipeline as Zarr v3 (array-to-array codecs, bytes-to-bytes codecs)."""
    array, after, _ = split_v2_codecs(
        zarray.get("filters"), zarray.get("compressor"), where, InvalidReferencesError
    )
    return array, after


def _array(refs: ParsedReferences, name: str) -> VirtualVariable:
    where = f"{refs.source}: {name}/.zarray"
    zarray = refs.metadata[f"{name}/.zarray" if name else ".zarray"]
    zattrs = _attrs_doc(refs, f"{name}/.zattrs" if name else ".zattrs")
    grid = grid_of(zarray, where)
    try:
        dtype = v2_dtype_from_json(zarray["dtype"])
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidReferencesError(f"{where}: bad or missing dtype ({e}).") from None
    if zarray.get("order", "C") != "C" and len(grid) > 1:
        raise UnsupportedFeatureError(f"{where}: Fortran-ordered arrays are not supported.")
    array_codecs, codecs = _codec_list(zarray, where)
    dims = zattrs.pop("_ARRAY_DIMENSIONS", None)
    if dims is None:
        dims = [f"dim_{i}" for i in range(len(grid))]
    if not isinstance(dims, list) or len(dims) != len(grid):
        raise InvalidReferencesError(
            f"{where}: _ARRAY_DIMENSIONS in .zattrs must list one name per axis "
            f"({len(grid)}); found {dims!r:.80}."
        )
    dtypes = _attribute_dtypes(refs.extension, name)
    with np.errstate(all="ignore"):  # a recorded float32 too large for it becomes inf
        attrs = restore_attrs(zattrs, dtypes)
    try:
        fill = v2_fill_from_json(zarray.get("fill_value"), dtype)
        if fill is not None:
            fdt = dtypes.get("_FillValue")
            if fdt == "py:float":  # a Python float (xarray's reading of a Zarr v3 one)
                attrs["_FillValue"] = float(fill)
            else:
                numpy_type = isinstance(fdt, str) and not fdt.startswith("py:")
                fdtype = np.dtype(fdt) if numpy_type else dtype.newbyteorder("=")
                attrs["_FillValue"] = np.array(fill, dtype=fdtype)[()]
            attrs = _place_fill_value(attrs, list(dtypes))
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidReferencesError(
            f"{where}: fill_value {zarray.get('fill_value')!r:.80} is not a value of dtype "
            f"{dtype} ({e})."
        ) from None
    stored = stored_dtype(array_codecs, dtype)
    try:
        metadata = make_array_metadata(
            shape=[int(s) for s in zarray["shape"]],
            dtype=stored,
            chunks=[int(c) for c in zarray["chunks"]],
            fill_value=fill if fill is not None else v2_default_fill(dtype),
            codecs=codecs,
            dimension_names=[str(d) for d in dims],
            array_codecs=array_codecs,
            data_type=dtype if array_codecs else None,
        )
    except UnsupportedFeatureError as e:
        raise UnsupportedFeatureError(f"{where}: {e}") from None
    sep = zarray.get("dimension_separator") or "."
    if sep not in (".", "/"):
        raise InvalidReferencesError(
            f"{where}: dimension_separator must be '.' or '/'; found {sep!r:.40}."
        )
    manifest = _chunk_manifest(refs, name, grid, sep)
    short = name.rpartition("/")[2]
    data = ManifestArray(metadata, manifest, name=short, encoding_attrs=cf_encoding_attrs(attrs))
    return VirtualVariable(dims=tuple(str(d) for d in dims), data=data, attrs=attrs)


def references_to_group(
    refs: ParsedReferences,
    group: str | None = None,
    drop_variables: Iterable[str] = (),
    subgroups: bool = False,
) -> VirtualGroup:
    """The arrays of one group of parsed references as a :class:`VirtualGroup`.

    Parameters
    ----------
    refs : ParsedReferences
    group : str, optional
        A group path inside the references (default: the root).
    drop_variables : iterable of str
        Arrays to leave out (in every group).
    subgroups : bool
        Also read the groups below it (each a ``<path>/.zgroup``), nested.

    Returns
    -------
    VirtualGroup

    Raises
    ------
    InvalidReferencesError
        If metadata or chunk references are malformed.
    """
    prefix = (group or "").strip("/")
    base = f"{prefix}/" if prefix else ""
    drop = set(drop_variables)
    if prefix and f"{base}.zgroup" not in refs.metadata:
        raise InvalidReferencesError(f"{refs.source} has no group {prefix!r}.")
    names = []
    for key in refs.metadata:
        if key.startswith(base) and key.endswith("/.zarray"):
            name = key[len(base) : -len("/.zarray")]
            if "/" not in name and name not in drop:
                names.append(name)
    variables = {
        n: guard_document(refs.source, f"array {base + n!r}", partial(_array, refs, base + n))
        for n in names
    }
    check_dimension_sizes(variables, refs.source, InvalidReferencesError)
    gattrs = _attrs_doc(refs, f"{base}.zattrs")
    gdtypes = _attribute_dtypes(refs.extension, prefix)
    attrs = guard_document(refs.source, f"{base}.zattrs", partial(restore_attrs, gattrs, gdtypes))
    groups: dict[str, VirtualGroup] = {}
    if subgroups:
        for key in refs.metadata:
            child = key[len(base) : -len("/.zgroup")]
            if key.startswith(base) and key.endswith("/.zgroup") and child and "/" not in child:
                groups[child] = references_to_group(refs, base + child, drop, subgroups=True)
    return VirtualGroup(variables=variables, attrs=attrs, groups=groups)
