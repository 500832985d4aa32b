"""Kerchunk reference documents (JSON, or a dict in memory) parsed into metadata and chunks.

See :mod:`virtualizarr.formats.kerchunk` for the format. :class:`ParsedReferences` holds
the metadata documents and, per array, its chunk references (or, for Parquet, its
manifest); :mod:`~virtualizarr.readers.kerchunk.arrays` turns them into virtual arrays.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping
from typing import Any

import ujson

from virtualizarr.errors import InvalidReferencesError, UnsupportedFeatureError
from virtualizarr.formats.kerchunk import META_SUFFIXES
from virtualizarr.io.objects import Location
from virtualizarr.manifests import ChunkManifest
from virtualizarr.readers.kerchunk.columns import ColumnRefs, columnarize
from virtualizarr.readers.kerchunk.scan import scan_document
from virtualizarr.security import ReferenceLimits, check_document_size

__all__ = ["ParsedReferences", "load_meta", "parse_kerchunk_dict", "parse_kerchunk_json"]


def _file_size(url: str) -> int:
    return Location(url).size()


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
        ``manifests`` supplies the array's chunks (Parquet). For scanned JSON, only the
        references that are not ``[url, offset, length]`` (see ``columns``).
    extension : dict
        The ``"virtualizarr"`` object our writers add (attribute dtypes), or ``{}``.
    templates : dict
        Version-1 URL templates (``{{name}}`` in URLs).
    manifests : dict, optional
        Per array path, its whole manifest (Parquet).
    columns : dict, optional
        Per array path, its ``[url, offset, length]`` references as columns (JSON scanned
        by :mod:`~virtualizarr.readers.kerchunk.scan`), beside those in ``chunks``.
    """

    def __init__(
        self,
        source: str,
        metadata: dict[str, Any],
        chunks: dict[str, dict[str, Any]],
        extension: Mapping[str, Any],
        templates: Mapping[str, str] | None = None,
        manifests: Mapping[str, ChunkManifest] | None = None,
        columns: Mapping[str, ColumnRefs] | None = None,
    ) -> None:
        self.source = source
        self.metadata = metadata
        self.chunks = chunks
        self.extension = dict(extension)
        self.templates = dict(templates or {})
        self.manifests = dict(manifests or {})
        self.columns = dict(columns or {})
        self.size_of: Callable[[str], int] = _file_size
        """Size of a whole-file reference's target (the reader checks the URL first)."""


def load_meta(source: str, key: str, value: Any) -> Any:
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
        if tail.endswith(META_SUFFIXES):
            metadata[key] = load_meta(source, key, value)
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
    chunk_items = [(k, v) for k, v in refs.items() if not k.endswith(META_SUFFIXES)]
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
    location: Location, limits: ReferenceLimits | None = None
) -> ParsedReferences:
    """Read a kerchunk JSON file.

    Parameters
    ----------
    location : Location
        The JSON document, local or remote.
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

    Notes
    -----
    The document is first scanned with NumPy (:mod:`~virtualizarr.readers.kerchunk.scan`):
    its ``[url, offset, length]`` references go straight into columns, without a Python
    object per reference. A document the scan does not handle exactly (unusual layout,
    malformed or duplicate keys...) is parsed with ujson instead, entry by entry, with
    the same result or the same error.
    """
    path = location.url
    try:  # refuse before reading it into memory, where that is cheap
        known = location.known_size()
    except OSError:
        known = None  # let the read say what is wrong
    if known is not None:
        check_document_size(path, known, limits)
    raw = location.read()
    check_document_size(path, len(raw), limits)
    scanned = _parse_scanned(raw, path)
    if scanned is not None:
        return scanned
    try:
        try:
            doc = ujson.loads(raw)  # several times faster on big documents
        except ValueError:  # NaN/Infinity literals, depth limits: the standard parser
            doc = json.loads(raw)
    except (ValueError, RecursionError) as e:  # RecursionError: absurdly nested JSON
        raise InvalidReferencesError(f"{path} is not valid JSON: {e}.") from None
    return parse_kerchunk_dict(doc, path)


def _layouts(refs: ParsedReferences) -> dict[str, tuple[tuple[int, ...], str]] | None:
    """Per array: its chunk grid and key separator; None if a ``.zarray`` is malformed
    (the entry-by-entry reader then says how)."""
    out: dict[str, tuple[tuple[int, ...], str]] = {}
    for key, zarray in refs.metadata.items():
        if not (key == ".zarray" or key.endswith("/.zarray")):
            continue
        try:
            shape = [int(s) for s in zarray["shape"]]
            chunks = [int(c) for c in zarray["chunks"]]
        except (KeyError, TypeError, ValueError):
            return None
        sep = zarray.get("dimension_separator") or "."
        if len(shape) != len(chunks) or min(chunks, default=1) <= 0 or sep not in (".", "/"):
            return None
        grid = tuple(-(-s // c) for s, c in zip(shape, chunks, strict=True))
        out[key[: -len("/.zarray")] if "/" in key else ""] = (grid, sep)
    return out


def _parse_scanned(raw: bytes, path: str) -> ParsedReferences | None:
    """The references of a JSON document scanned in bulk, or None to parse it with ujson.

    The scan is only a faster way to the same result: a document it does not take, or
    anything going wrong in it -- errors included, which the slow way reports with their
    full context -- leaves the document to the slow way.
    """
    try:
        scan = scan_document(raw)
        if scan is None:
            return None
        refs = parse_kerchunk_dict(scan.document, path)
        layouts = _layouts(refs)
        if layouts is None:
            return None
        columns = columnarize(raw, scan, layouts, refs.chunks)
    except (ValueError, TypeError, IndexError, OverflowError, RecursionError):
        return None  # (InvalidReferencesError is a ValueError: the slow way says it again)
    if columns is None:
        return None
    refs.columns = columns
    return refs
