"""Reader for kerchunk references: JSON documents and Parquet reference stores.

A kerchunk document (specification version 0 or 1) describes a Zarr v2 store: ``.zarray``
and ``.zattrs`` metadata plus, per chunk key, a reference ``[url, offset, length]``, a
whole-file reference ``[url]`` or inline data (``"base64:..."`` or a plain string). The
Parquet layout read by fsspec's ``LazyReferenceMapper`` holds the same: a ``.zmetadata``
JSON file (``{"metadata": {...}, "record_size": N}``) and, per array, files
``<array>/refs.<i>.parq`` with columns ``path``, ``offset``, ``size`` and ``raw``; row ``k``
of the concatenated records is chunk ``k`` in C order of the chunk grid.

This reader turns either into :class:`~virtualizarr.readers.base.VirtualGroup`\\ s whose
arrays carry Zarr v3 metadata: the v2 filters and compressor become ``numcodecs.*``
codecs, the v2 ``fill_value`` (which xarray reads as ``_FillValue``) becomes both the
``_FillValue`` attribute and the v3 fill value, and attribute types recorded by our
writers (see :mod:`virtualizarr.attrtypes`) are restored.
"""

from __future__ import annotations

import base64
import json
import math
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from contextlib import suppress
from functools import partial
from typing import Any

import numpy as np
import ujson
from zarr.core.dtype import get_data_type_from_native_dtype

from virtualizarr.attrtypes import restore_attrs
from virtualizarr.errors import (
    InvalidReferencesError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
    UntrustedReferenceError,
)
from virtualizarr.identity import localize_group
from virtualizarr.io import (
    ObjectDirectory,
    file_info,
    filesystem,
    is_local,
    is_relative,
    local_path,
    resolve_relative,
    retry,
    to_uri,
)
from virtualizarr.manifests import (
    ChunkManifest,
    ManifestArray,
    cf_encoding_attrs,
    make_array_metadata,
)
from virtualizarr.manifests.manifest import MISSING
from virtualizarr.readers._bulk import parse_chunk_keys, parse_ints
from virtualizarr.readers.base import (
    VirtualGroup,
    VirtualVariable,
    check_dimension_sizes,
    check_grid_cells,
    guard_document,
    register_reader,
)
from virtualizarr.security import (
    ReferenceLimits,
    SourcePolicy,
    check_document_size,
    check_paths,
    check_references,
)

__all__ = [
    "KerchunkReader",
    "ParsedReferences",
    "parse_kerchunk_json",
    "references_to_group",
]

_META_SUFFIXES = (".zarray", ".zattrs", ".zgroup", ".zmetadata")


class ParsedReferences:
    """Kerchunk references split into metadata documents and per-array chunk manifests.

    Parameters
    ----------
    source : str
        Where the references came from (for error messages).
    metadata : dict
        Parsed ``.zgroup``/``.zattrs``/``.zarray`` documents by key.
    chunks : dict
        Per array path: ``{chunk key suffix: reference}`` (JSON) -- or None when
        ``manifests`` supplies the array's chunks (Parquet).
    extension : dict
        The ``"virtualizarr"`` object our writers add (attribute dtypes), or ``{}``.
    templates : dict
        Version-1 URL templates (``{{name}}`` in URLs).
    """

    def __init__(
        self,
        source: str,
        metadata: dict[str, Any],
        chunks: dict[str, dict[str, Any]],
        extension: Mapping[str, Any],
        templates: Mapping[str, str] | None = None,
        manifests: Mapping[str, ChunkManifest] | None = None,
    ) -> None:
        self.source = source
        self.metadata = metadata
        self.chunks = chunks
        self.extension = dict(extension)
        self.templates = dict(templates or {})
        self.manifests = dict(manifests or {})
        self.size_of: Callable[[str], int] = _file_size
        """Size of a whole-file reference's target (the reader checks the URL first)."""


# ---------------------------------------------------------------------- JSON
def _load_meta(source: str, key: str, value: Any) -> Any:
    if isinstance(value, dict):
        return value
    try:
        if isinstance(value, bytes):
            value = value.decode()
        if isinstance(value, str):
            if value.startswith("base64:"):
                value = base64.b64decode(value[7:], validate=True).decode()
            doc = _json_object(value)
            if not isinstance(doc, dict):
                raise ValueError(f"a JSON object is expected, not {type(doc).__name__}")
            return doc
    except ValueError as e:  # JSON, base64 (binascii.Error) and UTF-8 errors
        raise InvalidReferencesError(
            f"{source}: the metadata document {key!r} is not a valid JSON object ({e}); found "
            f"{value!r:.80}. Regenerate the references."
        ) from None
    raise InvalidReferencesError(
        f"{source}: the metadata document {key!r} must be a JSON string; found {value!r:.80}."
    )


def _json_object(text: str) -> Any:
    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("the JSON is nested too deeply") from None


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


def parse_kerchunk_dict(doc: Any, source: str = "<references>") -> ParsedReferences:
    """Split a kerchunk reference document (version 0 or 1) into metadata and chunks.

    Parameters
    ----------
    doc : dict
        The parsed document.
    source : str
        Its origin, named in error messages.

    Returns
    -------
    ParsedReferences

    Raises
    ------
    InvalidReferencesError
        If the document is not a kerchunk reference document.
    UnsupportedFeatureError
        For ``"gen"`` (generated) references.
    """
    if not isinstance(doc, dict):
        raise InvalidReferencesError(
            f"{source}: a kerchunk document is a JSON object; found {type(doc).__name__}."
        )
    templates: dict[str, str] = {}
    extension: Mapping[str, Any] = {}
    if "version" in doc:
        if doc["version"] != 1 or not isinstance(doc.get("refs"), dict):
            raise InvalidReferencesError(
                f"{source}: expected kerchunk version 1 with a 'refs' object; found version "
                f"{doc.get('version')!r} and refs of type {type(doc.get('refs')).__name__}."
            )
        if doc.get("gen"):
            raise UnsupportedFeatureError(
                f"{source}: generated references ('gen') are not supported; expand them with "
                "kerchunk first."
            )
        raw_templates = doc.get("templates") or {}
        if not isinstance(raw_templates, dict):
            raise InvalidReferencesError(
                f"{source}: 'templates' must be an object of name to URL; found "
                f"{raw_templates!r:.80}."
            )
        templates = {str(k): str(v) for k, v in raw_templates.items()}
        ext = doc.get("virtualizarr")
        extension = ext if isinstance(ext, dict) else {}
        refs: dict[str, Any] = doc["refs"]
    else:
        refs = doc
    metadata: dict[str, Any] = {}
    by_head: dict[str, dict[str, Any]] = {}
    for key, value in refs.items():
        head, _, tail = key.rpartition("/")
        if tail.endswith(_META_SUFFIXES):
            metadata[key] = _load_meta(source, key, value)
        else:
            group = by_head.get(head)
            if group is None:
                group = by_head[head] = {}
            group[tail] = value
    arrays = {k[: -len("/.zarray")] if "/" in k else "" for k in metadata if k.endswith(".zarray")}
    if by_head.keys() <= arrays:  # flat chunk keys ("air/0.0.0"): grouped already
        chunks = {a: by_head.get(a, {}) for a in arrays}
        return ParsedReferences(source, metadata, chunks, extension, templates)
    chunks = {a: {} for a in arrays}
    chunk_items = [(k, v) for k, v in refs.items() if not k.endswith(_META_SUFFIXES)]
    for key, value in chunk_items:
        head, _, tail = key.rpartition("/")
        if head not in arrays:
            head = next((a for a in arrays if key.startswith(a + "/")), "")
            if not head:
                raise InvalidReferencesError(
                    f"{source}: the chunk key {key!r} belongs to no array (no .zarray for it)."
                )
            tail = key[len(head) + 1 :]
        chunks[head][tail] = value
    return ParsedReferences(source, metadata, chunks, extension, templates)


def parse_kerchunk_json(
    path: str,
    storage_options: Mapping[str, Any] | None = None,
    limits: ReferenceLimits | None = None,
) -> ParsedReferences:
    """Read a kerchunk JSON file.

    Parameters
    ----------
    path : str
        Local path or URL of the JSON document.
    storage_options : mapping, optional
        fsspec options for a remote document.
    limits : ReferenceLimits, optional
        Its ``max_document_bytes`` bounds the document's size.

    Returns
    -------
    ParsedReferences

    Raises
    ------
    InvalidReferencesError
        If the file is not valid JSON or not a reference document.
    UntrustedReferenceError
        If the document is larger than ``limits.max_document_bytes``.
    """
    if is_local(path):  # refuse before reading it into memory
        with suppress(OSError):
            check_document_size(path, os.path.getsize(local_path(path)), limits)
    raw = _read_all(path, storage_options)
    check_document_size(path, len(raw), limits)
    try:
        try:
            doc = ujson.loads(raw)  # several times faster on big documents
        except ValueError:  # NaN/Infinity literals, depth limits: the standard parser
            doc = json.loads(raw)
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly nested JSON
        raise InvalidReferencesError(f"{path} is not valid JSON: {e}.") from None
    return parse_kerchunk_dict(doc, path)


def _read_all(url: str, storage_options: Mapping[str, Any] | None = None) -> bytes:
    if is_local(url):
        with open(local_path(url), "rb") as f:
            return f.read()
    fs, p = filesystem(url, storage_options)
    data: bytes = retry(lambda: fs.cat_file(p), url)
    return data


def _file_size(url: str) -> int:
    return int(file_info(url)["size"])


def _checked_size_of(
    reference: str | None,
    storage_options: Mapping[str, Any] | None,
    allowed_sources: str | Iterable[str] | SourcePolicy | None,
) -> Callable[[str], int]:
    """``size_of`` for a document loaded from ``reference``: the target of a whole-file
    reference is resolved and checked against the source policy *before* it is looked at
    (a crafted document must not make us stat local files or probe hosts)."""
    policy = SourcePolicy.parse(allowed_sources)

    def size_of(url: str) -> int:
        target = resolve_relative(url, reference) if reference and is_relative(url) else url
        check_paths([target], reference, policy)
        return int(file_info(target, storage_options)["size"])

    return size_of


# ---------------------------------------------------------------------- conversion
def _grid(zarray: Any, where: str) -> tuple[int, ...]:
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


def _v2_codec(conf: Mapping[str, Any]) -> dict[str, Any]:
    rest = {k: v for k, v in conf.items() if k != "id"}
    return {"name": f"numcodecs.{conf['id']}", "configuration": rest}


def _decode_fill(value: Any, dtype: np.dtype[Any]) -> Any:
    if value is None or dtype.kind == "O":
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        zdt = get_data_type_from_native_dtype(dtype.newbyteorder("="))
        return zdt.from_json_scalar(value, zarr_format=2)


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


def _default_fill(dtype: np.dtype[Any]) -> Any:
    """What a missing chunk of a v2 array with ``fill_value: null`` reads as (zeros)."""
    if dtype.kind in "OTU":
        return ""
    if dtype.kind in "SV":
        return b""
    return np.zeros((), dtype=dtype.newbyteorder("="))[()]


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
    check_grid_cells(grid, len(entries), f"{refs.source}: array {name!r}", InvalidReferencesError)
    fast = _bulk_manifest(entries, grid, separator, refs.templates)
    if fast is not None:
        return fast
    ids = np.full(grid, MISSING, np.int32)
    offs = np.zeros(grid, np.uint64)
    lens = np.zeros(grid, np.uint64)
    table: dict[str, int] = {}
    inline: list[bytes] = []
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


def _codec_list(zarray: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    filters = zarray.get("filters") or []
    compressor = zarray.get("compressor")
    if not isinstance(filters, list) or not (compressor is None or isinstance(compressor, dict)):
        raise InvalidReferencesError(
            f"{where}: 'filters' must be a list of codec objects and 'compressor' an object "
            f"or null; found {filters!r:.80} and {compressor!r:.80}."
        )
    confs = [*filters, *([compressor] if compressor else [])]
    for conf in confs:
        if not isinstance(conf, dict) or not isinstance(conf.get("id"), str):
            raise InvalidReferencesError(
                f"{where}: a codec must be an object with a string 'id' (numcodecs "
                f"configuration); found {conf!r:.80}."
            )
    return [_v2_codec(f) for f in confs if f["id"] not in ("vlen-utf8", "vlen-bytes")]


def _array(refs: ParsedReferences, name: str) -> VirtualVariable:
    where = f"{refs.source}: {name}/.zarray"
    zarray = refs.metadata[f"{name}/.zarray" if name else ".zarray"]
    zattrs = _attrs_doc(refs, f"{name}/.zattrs" if name else ".zattrs")
    grid = _grid(zarray, where)
    try:
        dtype = np.dtype(zarray["dtype"])
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidReferencesError(f"{where}: bad or missing dtype ({e}).") from None
    if zarray.get("order", "C") != "C" and len(grid) > 1:
        raise UnsupportedFeatureError(f"{where}: Fortran-ordered arrays are not supported.")
    codecs = _codec_list(zarray, where)
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
        fill = _decode_fill(zarray.get("fill_value"), dtype)
        if fill is not None:
            fdt = dtypes.get("_FillValue")
            fdtype = np.dtype(fdt) if isinstance(fdt, str) else dtype.newbyteorder("=")
            attrs["_FillValue"] = np.array(fill, dtype=fdtype)[()]
            attrs = _place_fill_value(attrs, list(dtypes))
    except (TypeError, ValueError, OverflowError) as e:
        raise InvalidReferencesError(
            f"{where}: fill_value {zarray.get('fill_value')!r:.80} is not a value of dtype "
            f"{dtype} ({e})."
        ) from None
    try:
        metadata = make_array_metadata(
            shape=[int(s) for s in zarray["shape"]],
            dtype=dtype,
            chunks=[int(c) for c in zarray["chunks"]],
            fill_value=fill if fill is not None else _default_fill(dtype),
            codecs=codecs,
            dimension_names=[str(d) for d in dims],
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
) -> VirtualGroup:
    """The arrays of one group of parsed references as a :class:`VirtualGroup`.

    Parameters
    ----------
    refs : ParsedReferences
    group : str, optional
        A group path inside the references (default: the root).
    drop_variables : iterable of str
        Arrays to leave out.

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
    return VirtualGroup(variables=variables, attrs=attrs)


def is_parquet_store(path: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """True if ``path`` is a directory holding a kerchunk ``.zmetadata`` file.

    A remote ``path`` not ending in ``.json`` is asked (one request).
    """
    if is_local(path):
        return os.path.isfile(os.path.join(local_path(path), ".zmetadata"))
    if path.rstrip("/").endswith(".json"):
        return False
    try:
        return ObjectDirectory(path, storage_options).exists(".zmetadata")
    except (OSError, ValueError):
        return False


class KerchunkReader:
    """Read kerchunk references (JSON files and Parquet stores) back as virtual datasets.

    Examples
    --------
    >>> KerchunkReader().guess_can_open(b'{"versio', "refs.json")
    True
    """

    name = "kerchunk"

    def guess_can_open(self, magic: bytes, path: str) -> bool:
        """True for a file starting with ``{`` or a kerchunk Parquet directory.

        Parameters
        ----------
        magic : bytes
            The first bytes of the file (empty for a directory).
        path : str
            The path.

        Returns
        -------
        bool
        """
        if bytes(magic).lstrip()[:1] == b"{":
            return True
        return is_local(path) and is_parquet_store(path)  # no storage_options here

    def open(
        self,
        path: str,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] = (),
        storage_options: Mapping[str, Any] | None = None,
        allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
        limits: ReferenceLimits | None = None,
        **options: Any,
    ) -> VirtualGroup:
        """Read the references at ``path`` and describe their arrays.

        Relative chunk paths are resolved against the directory holding ``path``, and the
        source identities the ``"virtualizarr"`` record holds are attached to the manifests.

        Parameters
        ----------
        path : str
            A kerchunk JSON file or Parquet store directory.
        group : str, optional
            Group inside the references.
        drop_variables : iterable of str
            Arrays to leave out.
        storage_options : mapping, optional
            fsspec options for remote references (a JSON file or a Parquet store).
        allowed_sources : str, iterable of str or SourcePolicy, optional
            Protocols and URL prefixes the references may point at (see
            :mod:`virtualizarr.security`); None for the default policy.
        limits : ReferenceLimits, optional
            Size limits on the document.
        **options
            None other are accepted.

        Returns
        -------
        VirtualGroup

        Raises
        ------
        InvalidReferencesError
            For malformed references.
        UntrustedReferenceError
            If the references point outside ``allowed_sources`` or exceed ``limits``.
        """
        if options:
            raise UnexpectedOptionError(
                f"the kerchunk reader takes no options beyond group, drop_variables, "
                f"storage_options, allowed_sources and limits; found {sorted(options)}. "
                "Remove them."
            )
        size_of = _checked_size_of(to_uri(path), storage_options, allowed_sources)
        if is_parquet_store(path, storage_options):
            from virtualizarr.readers._kerchunk_parquet import parse_kerchunk_parquet

            refs = parse_kerchunk_parquet(path, storage_options, size_of)
        else:
            refs = parse_kerchunk_json(path, storage_options, limits)
        refs.size_of = size_of
        vgroup = references_to_group(refs, group, drop_variables)
        vgroup = localize_group(vgroup, to_uri(path), refs.extension)
        check_references(vgroup, to_uri(path), allowed_sources, limits)
        return vgroup


def open_references(
    source: str | os.PathLike[str] | Mapping[str, Any],
    group: str | None = None,
    drop_variables: Iterable[str] = (),
    storage_options: Mapping[str, Any] | None = None,
    allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
    limits: ReferenceLimits | None = None,
) -> VirtualGroup:
    """A :class:`VirtualGroup` from a kerchunk document (dict), JSON file or Parquet store."""
    if isinstance(source, Mapping):
        refs = parse_kerchunk_dict(dict(source))
        refs.size_of = _checked_size_of(None, storage_options, allowed_sources)
        vgroup = references_to_group(refs, group, drop_variables)
        vgroup = localize_group(vgroup, None, refs.extension)
        check_references(vgroup, None, allowed_sources, limits)
        return vgroup
    return KerchunkReader().open(
        to_uri(source),
        group=group,
        drop_variables=drop_variables,
        storage_options=storage_options,
        allowed_sources=allowed_sources,
        limits=limits,
    )


register_reader(KerchunkReader())
