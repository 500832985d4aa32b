"""Access to the files of a manifest store: a local directory, object storage, or HTTP(S).

:func:`store_files` picks one of two strategies, which the reader in
:mod:`~virtualizarr.readers.zarr_manifest.reader` addresses by key (``"air/zarr.json"``):

* :class:`ListedStoreFiles` -- a store that can be listed (a local directory, object
  storage such as ``s3://``): one listing of the store's keys with their sizes, then
  documents and chunk files fetched together (concurrently, remotely); sizes are checked
  against the limits before anything is read.
* :class:`KeyedStoreFiles` -- HTTP(S), which has no listing: documents are fetched by
  known key, the arrays named by the group's ``"virtualizarr"."arrays"`` record and each
  array's chunk files by its ``"virtualizarr"."chunk_files"`` record (key -> size). Every
  GET is streamed and cut off past its limit (``max_document_bytes`` for documents, the
  recorded size for chunk files), so an oversized document is never downloaded whole.
  A store written before those records existed gives an error saying to rewrite it.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote

from virtualizarr.errors import (
    InvalidReferencesError,
    MissingDependencyError,
    UntrustedReferenceError,
)
from virtualizarr.formats.manifest_store import (
    BINARY_TRANSFORMER,
    DOCUMENTS,
    MANIFEST,
    PATHS,
    RESERVED,
)
from virtualizarr.io.objects import Location
from virtualizarr.io.uri import resolve_relative
from virtualizarr.security import ReferenceLimits, check_document_size

__all__ = [
    "KeyedStoreFiles",
    "ListedStoreFiles",
    "StoreFiles",
    "old_store_error",
    "store_files",
]


def old_store_error(where: str, record: str) -> InvalidReferencesError:
    """The error for a store read without a listing that lacks a record it needs."""
    return InvalidReferencesError(
        f"{where} has no {record} record: the manifest store was written by an older "
        "virtualizarr, and a store served over HTTP(S) cannot be listed to find its files. "
        "Expected a store written by this version; rewrite it (open it from local disk or "
        "object storage with open_virtual_dataset, then ds.virtualize.to_zarr(...)), or "
        "read it from local disk or object storage, where it is listed."
    )


def _untrusted_size(
    where: str, size: int, total: int, lim: ReferenceLimits
) -> UntrustedReferenceError:
    return UntrustedReferenceError(
        f"{where}: a chunk file of {size} bytes (inline chunks so far: {total} bytes); "
        f"expected at most {lim.max_inline_chunk_bytes} per chunk "
        f"(limits.max_inline_chunk_bytes) and {lim.max_inline_total_bytes} in all "
        "(limits.max_inline_total_bytes). If you trust this store, pass "
        "limits=ReferenceLimits(...) with larger values."
    )


class StoreFiles:
    """The files of a manifest store (or of one of its groups), addressed by key.

    Parameters
    ----------
    directory : Location
        The store's root.
    limits : ReferenceLimits or None
        Size limits on documents and chunk files.
    prefix : str
        The group's keys' prefix inside the store (``"a/b/"``), empty for the root.
    """

    listable = True
    """Whether the store can be listed (its subdirectories and chunk files found)."""

    def __init__(
        self, directory: Location, limits: ReferenceLimits | None, prefix: str = ""
    ) -> None:
        self.dir = directory
        self.limits = limits
        self.lim = limits or ReferenceLimits()
        self.prefix = prefix
        self.uri = directory.url_of(prefix.rstrip("/")) if prefix else directory.url
        """The URI of the group's directory."""
        self.cache: dict[str, bytes] = {}

    def label(self, key: str = "") -> str:
        """A file of the group, for messages (``/data/s.zarr/air/zarr.json``, or a URL)."""
        return self.dir.label(self.prefix + key) if self.prefix or key else self.dir.label()

    def resolve(self, path: str, name: str) -> str:
        """The absolute URI of a manifest ``path`` (relative to the array's directory)."""
        if "://" in path or path.startswith("/"):
            return path if "://" in path else Path(path).as_uri()
        return resolve_relative(path, f"{self.uri}/{quote(name)}/zarr.json")

    def sub(self, group: str) -> StoreFiles:
        """The files of a subgroup (``"a/b"``)."""
        raise NotImplementedError

    def size(self, key: str) -> int | None:
        """The size of a file, when known before reading it."""
        raise NotImplementedError

    def read(self, key: str) -> bytes:
        """A file's bytes.

        Raises
        ------
        FileNotFoundError
            If it does not exist.
        """
        raise NotImplementedError

    def read_document(self, key: str) -> bytes:
        """A JSON document's bytes, refused beyond ``limits.max_document_bytes``."""
        size = self.size(key)
        if size is not None:
            check_document_size(self.label(key), size, self.limits)
        return self.read(key)

    def is_array(self, name: str) -> bool:
        """True if ``name`` is an array's directory (listable stores)."""
        raise NotImplementedError

    def subdirectories(self) -> list[str]:
        """The group's subdirectories (listable stores)."""
        raise NotImplementedError

    def chunk_files(self, name: str, ext: Mapping[str, Any]) -> list[str]:
        """Keys (relative to the array) of the files beside an array's documents.

        ``ext`` is the array's ``"virtualizarr"`` record; a listable store ignores it and
        lists what is there, as the format's resolution rule reads it.
        """
        raise NotImplementedError

    def read_chunks(self, name: str, keys: list[str]) -> list[bytes]:
        """The bytes of chunk files of the array ``name`` (keys relative to the array)."""
        out = []
        for key in keys:
            try:
                out.append(self.read(f"{name}/{key}"))
            except OSError as e:
                raise InvalidReferencesError(
                    f"{self.label(name)}/{key} could not be read: {e}."
                ) from None
        return out

    def prefetch(self, names: Iterable[str]) -> None:
        """Fetch the documents and chunk files of the arrays ``names`` ahead of reading."""


class ListedStoreFiles(StoreFiles):
    """A store that can be listed (a local directory, object storage): listed once, its
    files fetched together (concurrently, remotely), sizes checked before any download."""

    def __init__(
        self,
        directory: Location,
        limits: ReferenceLimits | None,
        prefix: str = "",
        listing: dict[str, int] | None = None,
    ) -> None:
        super().__init__(directory, limits, prefix)
        self.listing = directory.list() if listing is None else listing

    def sub(self, group: str) -> StoreFiles:
        return ListedStoreFiles(self.dir, self.limits, f"{self.prefix}{group}/", self.listing)

    def _keys(self, under: str = "") -> Iterable[str]:
        head = self.prefix + under
        return (k[len(self.prefix) :] for k in self.listing if k.startswith(head))

    def size(self, key: str) -> int | None:
        return self.listing.get(self.prefix + key)

    def read(self, key: str) -> bytes:
        if key in self.cache:
            return self.cache.pop(key)
        if self.prefix + key not in self.listing:
            raise FileNotFoundError(self.label(key))
        return self.dir.get(self.prefix + key)

    def is_array(self, name: str) -> bool:
        return f"{self.prefix}{name}/zarr.json" in self.listing

    def subdirectories(self) -> list[str]:
        return sorted({k.split("/", 1)[0] for k in self._keys() if "/" in k})

    def chunk_files(self, name: str, ext: Mapping[str, Any]) -> list[str]:
        head = name + "/"
        return sorted(
            k[len(head) :] for k in self._keys(head) if k.rsplit("/", 1)[-1] not in RESERVED
        )

    def prefetch(self, names: Iterable[str]) -> None:
        """Fetch the documents and chunk files of the arrays ``names`` in one go."""
        lim = self.lim
        keys: list[str] = []
        total = 0
        for name in names:
            for doc in DOCUMENTS:
                key = f"{name}/{doc}"
                size = self.size(key)
                if size is not None:
                    check_document_size(self.label(key), size, self.limits)
                    keys.append(key)
            chunks = [f"{name}/{k}" for k in self.chunk_files(name, {})]
            for key in chunks:  # refuse before downloading, as check_references would after
                size = self.size(key) or 0
                total += size
                if size > lim.max_inline_chunk_bytes or total > lim.max_inline_total_bytes:
                    raise _untrusted_size(self.label(key), size, total, lim)
            keys += chunks
        try:
            got = self.dir.get_many(self.prefix + k for k in keys)
        except OSError as e:  # vanished since the listing, or refused after retries
            raise _unreadable(self.uri, e) from None
        self.cache.update({k[len(self.prefix) :]: v for k, v in got.items()})


def _unreadable(uri: str, e: BaseException) -> InvalidReferencesError:
    return InvalidReferencesError(
        f"{uri}: the manifest store's files could not be read "
        f"({type(e).__name__}: {e}); it may be being rewritten -- open it again."
    )


class KeyedStoreFiles(StoreFiles):
    """A manifest store served over HTTP(S): no listing, every file fetched by known key.

    Documents are fetched with GETs cut off past ``limits.max_document_bytes``; chunk
    files are those the array's ``zarr.json`` records (``"chunk_files"``: key -> size),
    refused before download if the recorded sizes exceed the inline limits, and fetched
    with GETs cut off past their recorded size.
    """

    listable = False

    def __init__(
        self,
        directory: Location,
        limits: ReferenceLimits | None,
        prefix: str = "",
        inline_total: list[int] | None = None,
    ) -> None:
        super().__init__(directory, limits, prefix)
        self.recorded: dict[str, dict[str, int]] = {}  # array -> its chunk_files record
        self.inline_total = [0] if inline_total is None else inline_total

    def sub(self, group: str) -> StoreFiles:
        return KeyedStoreFiles(self.dir, self.limits, f"{self.prefix}{group}/", self.inline_total)

    def size(self, key: str) -> int | None:
        return None  # unknown before the GET; the GET itself is bounded

    def _get_many(self, caps: Mapping[str, int]) -> dict[str, bytes]:
        try:
            got = self.dir.get_many_bounded({self.prefix + k: c for k, c in caps.items()})
        except Exception as e:  # refused (403...) or unreachable after retries
            raise _unreadable(self.uri, e) from None
        return {k[len(self.prefix) :]: v for k, v in got.items()}

    def read(self, key: str) -> bytes:
        """A document, fetched (or taken from the prefetched ones) and size-checked."""
        cap = self.lim.max_document_bytes
        data = self.cache.pop(key, None)
        if data is None:
            got = self._get_many({key: cap})
            if key not in got:
                raise FileNotFoundError(f"{self.label(key)} (HTTP 404)")
            data = got[key]
        if len(data) > cap:
            raise UntrustedReferenceError(
                f"{self.label(key)} is more than {cap} bytes; expected at most {cap} "
                "(limits.max_document_bytes). If you trust it, pass "
                "limits=ReferenceLimits(max_document_bytes=...) with a larger value."
            )
        return data

    def read_document(self, key: str) -> bytes:
        return self.read(key)

    def is_array(self, name: str) -> bool:  # pragma: no cover - guarded by listable
        raise old_store_error(self.label("zarr.json"), "'virtualizarr.arrays'")

    def subdirectories(self) -> list[str]:  # pragma: no cover - guarded by listable
        raise old_store_error(self.label("zarr.json"), "'virtualizarr.arrays'")

    def chunk_files(self, name: str, ext: Mapping[str, Any]) -> list[str]:
        """The chunk files the array's ``"virtualizarr"."chunk_files"`` record names."""
        record = _chunk_record(self.label(f"{name}/zarr.json"), ext)
        self.recorded[name] = record
        return sorted(record)

    def _reserve(self, name: str, keys: Iterable[str], record: Mapping[str, int]) -> None:
        """Count chunk files against the inline limits, refusing before any download."""
        for key in keys:
            size = record[key]
            self.inline_total[0] += size
            total = self.inline_total[0]
            if size > self.lim.max_inline_chunk_bytes or total > self.lim.max_inline_total_bytes:
                raise _untrusted_size(self.label(f"{name}/{key}"), size, total, self.lim)

    def read_chunks(self, name: str, keys: list[str]) -> list[bytes]:
        record = self.recorded.get(name, {})
        missing = [k for k in keys if f"{name}/{k}" not in self.cache]
        if missing:  # not prefetched (or gone since): fetch them now, within the limits
            self._reserve(name, missing, record)
            self.cache.update(self._get_many({f"{name}/{k}": record[k] for k in missing}))
        out = []
        for key in keys:
            data = self.cache.pop(f"{name}/{key}", None)
            if data is None or len(data) != record[key]:
                found = "nothing (HTTP 404)" if data is None else f"{len(data)} or more bytes"
                raise InvalidReferencesError(
                    f"{self.label(name)}/{key}: expected a chunk file of {record[key]} bytes "
                    f"(recorded in its zarr.json); found {found}. The store may be being "
                    "rewritten -- open it again, or rewrite it."
                )
            out.append(data)
        return out

    def prefetch(self, names: Iterable[str]) -> None:
        """Fetch the arrays' ``zarr.json``, then their manifests and chunk files, each
        round concurrently. Malformed records are left for the reader to report."""
        names = list(names)
        cap = self.lim.max_document_bytes
        self.cache.update(self._get_many({f"{n}/zarr.json": cap for n in names}))
        wanted: dict[str, int] = {}
        for name in names:
            raw = self.cache.get(f"{name}/zarr.json")
            try:
                doc = json.loads(raw) if raw is not None and len(raw) <= cap else None
            except (ValueError, RecursionError):
                doc = None
            if not isinstance(doc, dict):
                continue
            for rel in _manifest_locations(doc):
                key = posixpath.normpath(f"{name}/{rel}")
                if key.startswith(f"{name}/"):
                    wanted[key] = cap
            try:
                ext = doc.get("virtualizarr")
                record = _chunk_record("", ext if isinstance(ext, dict) else {})
            except InvalidReferencesError:
                continue
            self.recorded[name] = record
            self._reserve(name, record, record)
            wanted.update({f"{name}/{k}": n for k, n in record.items()})
        self.cache.update(self._get_many(wanted))


def _manifest_locations(doc: Mapping[str, Any]) -> list[str]:
    """The relative paths of the manifest documents an array document's storage
    transformers name: JSON manifests, and binary manifests' path tables (their columns
    are read later, when a chunk is first needed)."""
    out = []
    for t in doc.get("storage_transformers") or ():
        conf = t.get("configuration") if isinstance(t, dict) else None
        if not isinstance(conf, dict):
            continue
        if t.get("name") == BINARY_TRANSFORMER:
            rel = conf.get("paths", f"./{PATHS}")
        else:
            rel = conf.get("manifest", f"./{MANIFEST}")
        if isinstance(rel, str) and not rel.startswith("/") and "://" not in rel:
            out.append(rel)
    return out


def _chunk_record(where: str, ext: Mapping[str, Any]) -> dict[str, int]:
    """An array's ``"chunk_files"`` record, validated: keys inside the array -> sizes."""
    record = ext.get("chunk_files")
    if record is None:
        raise old_store_error(where, "'virtualizarr.chunk_files'")
    ok = isinstance(record, dict) and all(
        isinstance(k, str)
        and isinstance(n, int)
        and not isinstance(n, bool)
        and n >= 0
        and k
        and not k.startswith("/")
        and "\\" not in k
        and all(p not in ("", ".", "..") for p in k.split("/"))
        and k.rsplit("/", 1)[-1] not in RESERVED
        for k, n in record.items()
    )
    if not ok:
        raise InvalidReferencesError(
            f"{where}: 'virtualizarr.chunk_files' must map chunk keys inside the array "
            f"('c/0/0') to sizes in bytes (integers >= 0); found {record!r:.120}. "
            "Rewrite the store with ds.virtualize.to_zarr."
        )
    return dict(record)


def store_files(
    location: Location, group: str | None, limits: ReferenceLimits | None
) -> StoreFiles:
    """The files of the manifest store (or its ``group``) at ``location``.

    Raises
    ------
    InvalidReferencesError
        If the store cannot be reached or holds no ``zarr.json``, or ``group`` is not a
        path of group names.
    """
    files: StoreFiles
    try:
        if location.listable:
            files = ListedStoreFiles(location, limits)
        else:
            files = KeyedStoreFiles(location, limits)
            if not group:
                cap = files.lim.max_document_bytes
                files.cache.update(location.get_many_bounded({"zarr.json": cap}))
    except MissingDependencyError:
        raise
    except Exception as e:  # after retries: refused, unreachable
        raise InvalidReferencesError(
            f"{location.label()}: the manifest store could not be listed or read "
            f"({type(e).__name__}: {e}); check the URL and storage_options."
        ) from e
    if not group:
        _check_root(location, files)
    if group:
        sub = group.strip("/")
        if any(part in ("", ".", "..") for part in sub.split("/")):
            raise InvalidReferencesError(
                f"group must be a path of group names inside the store ('a/b'); found {group!r}."
            )
        files = files.sub(sub)
    return files


def _check_root(location: Location, files: StoreFiles) -> None:
    """Refuse a location without a root ``zarr.json``, saying what it is."""
    if isinstance(files, ListedStoreFiles):
        if "zarr.json" in files.listing:
            return
        parquet = ".zmetadata" in files.listing
    elif isinstance(files, KeyedStoreFiles):
        if "zarr.json" in files.cache:
            return
        parquet = files.dir.exists(".zmetadata")
    else:  # pragma: no cover - every kind is handled above
        return
    what = (
        "is kerchunk Parquet references (it has a .zmetadata), not a manifest store; "
        "open it with filetype='kerchunk' or engine='virtualizarr'"
        if parquet
        else f"holds no zarr.json ({files.label('zarr.json')} was not found), so it is not "
        "a Zarr manifest store; check the URL and storage_options"
    )
    raise InvalidReferencesError(f"{location.label()} {what}.")
