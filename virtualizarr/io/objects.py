"""``Location``: one file or directory, local or remote, and every operation on it.

Everything virtualizarr reads or writes is reached through a :class:`Location`: a URI plus
the fsspec ``storage_options`` that reach it. Local files and directories are handled with
plain ``open``/``os`` calls (fsspec is not even imported); any other URL goes through fsspec, so
remote protocols plug in here and nowhere else. Code above this layer asks a location what
it needs (its size, a byte range, the keys under it) and never branches on local versus
remote itself.

Remote operations are retried on transient failures (HTTP 5xx, connection resets,
timeouts) with exponential backoff (:mod:`virtualizarr.io.remote`), and a persistent
failure names the URL. Write failures on object storage raise
:class:`~virtualizarr.errors.OutputWriteError`.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from functools import partial
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlparse

from virtualizarr.errors import (
    ChunkReadError,
    MissingDependencyError,
    NetworkError,
    SourceNotFoundError,
)
from virtualizarr.io.remote import read_capped, retry, write_error
from virtualizarr.io.uri import is_http, is_local, join_uri, list_local, local_path, to_uri

__all__ = ["DIRECTORY_MARKERS", "METADATA_BLOCK_SIZE", "METADATA_CACHE_TYPE", "Location"]

METADATA_BLOCK_SIZE = 16 * 1024
"""Block size of the file object handed to h5py for remote metadata reads (measured in
benchmarks/bench_remote.py: 8 requests and ~10% of an 800 kB netCDF4 file; 512 KiB blocks
fetch the whole file, no cache costs one request per HDF5 read)."""
METADATA_CACHE_TYPE = "blockcache"
"""fsspec cache of that file object: blocks fetched once, kept (LRU) while parsing."""
DIRECTORY_MARKERS: Final = ("zarr.json", ".zmetadata")
"""Documents whose presence under an HTTP(S) URL marks it as a store directory: a web
server cannot be listed, so these are asked for by name (manifest stores, Parquet
references)."""

_PROTOCOL_PACKAGES: Final = {
    "s3": "s3fs",
    "s3a": "s3fs",
    "gs": "gcsfs",
    "gcs": "gcsfs",
    "az": "adlfs",
    "abfs": "adlfs",
    "abfss": "adlfs",
    "http": "aiohttp",
    "https": "aiohttp",
    "hf": "huggingface_hub",
    "sftp": "paramiko",
}
"""The package that gives fsspec each protocol (what to ``pip install``)."""


# ---------------------------------------------------------------------- the location
class Location:
    """A file or directory, local or remote (any fsspec URL), and the options to reach it.

    Parameters
    ----------
    url : str
        An absolute URI (``file:///data/a.nc``, ``s3://bucket/refs.zarr``); use
        :meth:`of` to make one from a plain path.
    storage_options : mapping, optional
        fsspec options for a remote URL (credentials, endpoint, ...).

    Raises
    ------
    MissingDependencyError
        On the first remote operation, if the protocol's fsspec implementation (s3fs,
        aiohttp) is not installed.

    Examples
    --------
    >>> d = Location("memory://vz-doc/store")
    >>> d.put("a/zarr.json", b"{}")
    >>> d.list(), d.get("a/zarr.json"), d.join("a/zarr.json").read()
    ({'a/zarr.json': 2}, b'{}', b'{}')
    >>> d.delete(["a/zarr.json"]); d.list()
    {}
    """

    __slots__ = ("_fs", "_path", "is_local", "storage_options", "url")

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = str(url)
        self.storage_options: dict[str, Any] = dict(storage_options or {})
        self.is_local = is_local(self.url)
        """True for a local path or ``file://`` URI (read with ``os``, not fsspec)."""
        self._fs: Any = None
        self._path = ""

    @classmethod
    def of(
        cls,
        path: str | os.PathLike[str] | Location,
        storage_options: Mapping[str, Any] | None = None,
    ) -> Location:
        """A location for a path, ``file://`` URI or URL; local paths are made absolute.

        A :class:`Location` is returned as it is.
        """
        if isinstance(path, Location):
            return path
        return cls(to_uri(path), storage_options)

    def __repr__(self) -> str:
        return f"Location({self.url!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Location)
            and self.url == other.url
            and self.storage_options == other.storage_options
        )

    def __hash__(self) -> int:
        return hash(self.url)

    def __reduce__(self) -> tuple[Any, ...]:
        return (Location, (self.url, self.storage_options))

    # ------------------------------------------------------------------ naming
    @property
    def is_http(self) -> bool:
        """True for ``http(s)://`` URLs: a web server cannot be listed."""
        return is_http(self.url)

    @property
    def local_path(self) -> str:
        """The filesystem path of a local location."""
        return local_path(self.url)

    @property
    def name(self) -> str:
        """The last segment of the URL (``"refs.json"``)."""
        return self.url.rstrip("/").rsplit("/", 1)[-1]

    def label(self, key: str = "") -> str:
        """The location (or ``key`` under it) for messages: a local path, or the URL."""
        base = self.local_path if self.is_local else self.url
        return join_uri(base, key) if key else base

    def join(self, key: str) -> Location:
        """The location of ``key`` (a relative, ``/``-separated path) under this one."""
        return Location(join_uri(self.url, key), self.storage_options)

    def url_of(self, key: str) -> str:
        """The URL of ``key`` under this location."""
        return join_uri(self.url, key)

    def at(self, url: str) -> Location:
        """Another URL, reached with the same storage options (a source of a document)."""
        return Location(url, self.storage_options)

    def filesystem(self) -> tuple[Any, str]:
        """The fsspec filesystem serving this location and the path within it.

        Raises
        ------
        MissingDependencyError
            If the protocol's fsspec implementation (s3fs, aiohttp) is not installed.
        """
        if self._fs is None:
            import fsspec.core  # local files never need it (~20 ms to import)

            try:
                fs, path = fsspec.core.url_to_fs(self.url, **self.storage_options)
            except ImportError as e:
                scheme = urlparse(self.url).scheme
                package = _PROTOCOL_PACKAGES.get(scheme)
                how = f"`pip install {package}`" if package else "the package fsspec names"
                raise MissingDependencyError(
                    f"reaching {self.url} needs fsspec's {scheme!r} implementation, which is "
                    f"not installed ({e}); install it with {how}."
                ) from e
            self._fs, self._path = fs, str(path)
        return self._fs, self._path

    def _forget(self, path: str | None = None) -> None:
        """Drop fsspec's listing cache, so the next call sees what the store holds now."""
        fs, root = self.filesystem()
        with suppress(Exception):
            fs.invalidate_cache(path or root.rstrip("/"))

    # ------------------------------------------------------------------ one file
    def info(self) -> dict[str, Any]:
        """Size and version stamps: ``{"size", "mtime_ns" | "etag" | "mtime"}``.

        Local files give ``size`` and ``mtime_ns`` (``os.stat``); remote ones give
        ``size`` and, when the store reports them, ``etag`` or else ``mtime``.

        Raises
        ------
        SourceNotFoundError
            If nothing exists here.
        """
        if self.is_local:
            try:
                st = os.stat(self.local_path)
            except FileNotFoundError:
                raise SourceNotFoundError(f"{self.url} does not exist; check the path.") from None
            return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}
        fs, path = self.filesystem()
        self._forget(path)
        try:
            info = retry(lambda: fs.info(path), self.url)
        except FileNotFoundError:
            if self.is_http and self._is_store_prefix():
                return {"size": 0}  # a store's directory URL, as object stores report prefixes
            raise SourceNotFoundError(f"{self.url} does not exist; check the URL.") from None
        out: dict[str, Any] = {"size": int(info.get("size") or 0)}
        etag = info.get("ETag") or info.get("etag")
        if etag:
            out["etag"] = str(etag).strip('"')
        mtime = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
        if mtime is not None and not etag:
            out["mtime"] = str(mtime)
        return out

    def size(self) -> int:
        """The size of the file in bytes.

        Raises
        ------
        SourceNotFoundError
            If it does not exist.
        """
        return int(self.info()["size"])

    def known_size(self) -> int | None:
        """The size of the file when knowing it costs no request (a local file), else None.

        Raises
        ------
        OSError
            If a local file cannot be stat-ed.
        """
        return os.path.getsize(self.local_path) if self.is_local else None

    def head(self, n: int = 8) -> bytes:
        """The first ``n`` bytes of the file (fewer if it is shorter).

        Raises
        ------
        FileNotFoundError
            If the file does not exist.
        IsADirectoryError
            If this is a directory (locally, or a prefix with objects under it remotely;
            over HTTP(S), a URL with one of :data:`DIRECTORY_MARKERS` under it).
        """
        if self.is_local:
            with open(self.local_path, "rb") as f:
                return f.read(n)
        fs, p = self.filesystem()
        if self.is_http and self.url.endswith("/") and self._is_store_prefix():
            raise IsADirectoryError(self.url)  # a server may answer a directory with a page
        try:
            data: bytes = retry(lambda: fs.cat_file(p, start=0, end=n), self.url)
            self._check_ranged(data, 0, n)
        except FileNotFoundError:
            # an object store has no directory objects: a prefix with objects under it
            # reads as missing; say what it is
            is_dir = False
            with suppress(Exception):  # a filesystem that cannot tell: report it missing
                is_dir = self._is_store_prefix()
            if is_dir:
                raise IsADirectoryError(self.url) from None
            raise
        return data

    def read(self) -> bytes:
        """The whole file.

        Raises
        ------
        FileNotFoundError
            If it does not exist.
        """
        if self.is_local:
            with open(self.local_path, "rb") as f:
                return f.read()
        fs, p = self.filesystem()
        data: bytes = retry(lambda: fs.cat_file(p), self.url)
        return data

    def read_range(self, offset: int, length: int) -> bytes:
        """Exactly ``length`` bytes at ``offset``.

        Raises
        ------
        ChunkReadError
            If the file is missing or shorter than the range.
        """
        try:
            if self.is_local:
                fd = os.open(self.local_path, os.O_RDONLY)
                try:
                    data = os.pread(fd, length, offset)
                finally:
                    os.close(fd)
            else:
                fs, p = self.filesystem()
                data = retry(lambda: fs.cat_file(p, start=offset, end=offset + length), self.url)
                self._check_ranged(data, offset, length)
        except FileNotFoundError:
            raise ChunkReadError(
                f"referenced file {self.url} does not exist; it may have moved (see "
                "ds.virtualize.rename_paths) or been deleted."
            ) from None
        except (ChunkReadError, NetworkError):
            raise
        except Exception as e:  # OSError, aiohttp/botocore errors after retries
            raise ChunkReadError(
                f"could not read {length} bytes at {offset} of {self.url}: {type(e).__name__}: {e}"
            ) from e
        if len(data) != length:
            raise ChunkReadError(
                f"expected {length} bytes at offset {offset} of {self.url}, but the file ends "
                f"after {offset + len(data)} bytes; it was truncated or changed after it was "
                "virtualized."
            )
        return data

    def _check_ranged(self, data: bytes, offset: int, length: int) -> None:
        """Refuse a server that answered a ranged read with more than the range."""
        if len(data) > length:
            raise ChunkReadError(
                f"{self.url}: asked for {length} bytes at offset {offset}, the server sent "
                f"{len(data)}: it ignores HTTP Range requests, which virtual references need "
                "to read chunks. Serve the files from a server that supports ranged reads "
                "(object stores and most web servers do), or copy them locally."
            )

    def open_remote(self, *, block_size: int | None = None, cache_type: str | None = None) -> Any:
        """A read-only, seekable file object over a remote file, for metadata parsers.

        Reads are served from ``block_size`` blocks fetched with one ranged request each
        and cached (``cache_type``), so a parser that hops between small objects (h5py)
        costs a few requests rather than one per object.

        Parameters
        ----------
        block_size : int, optional
            Bytes per request (default :data:`METADATA_BLOCK_SIZE`).
        cache_type : str, optional
            An fsspec cache name (default :data:`METADATA_CACHE_TYPE`).

        Returns
        -------
        file-like

        Raises
        ------
        SourceNotFoundError
            If the file does not exist.
        """
        fs, path = self.filesystem()
        bs = METADATA_BLOCK_SIZE if block_size is None else block_size
        ct = METADATA_CACHE_TYPE if cache_type is None else cache_type
        try:
            return retry(lambda: fs.open(path, "rb", block_size=bs, cache_type=ct), self.url)
        except FileNotFoundError:
            raise SourceNotFoundError(f"{self.url} does not exist; check the URL.") from None

    def glob(self) -> list[str]:
        """The URLs matching this location taken as a glob pattern, sorted.

        Local patterns are matched by the caller (``glob.glob``); this serves remote ones
        (``s3://bucket/dir/*.nc``), with the pattern's protocol in every URL.
        """
        fs, path = self.filesystem()
        found = retry(lambda: fs.glob(path), self.url)
        return sorted(fs.unstrip_protocol(p) for p in found)

    def is_dir(self) -> bool:
        """True if this is a directory (a prefix with objects under it, remotely)."""
        if self.is_local:
            return os.path.isdir(self.local_path)
        try:
            return self._is_store_prefix()
        except (OSError, ValueError):
            return False

    def _is_store_prefix(self) -> bool:
        """True for a listed prefix, or over HTTP(S) -- where directories cannot be
        listed -- a URL with one of :data:`DIRECTORY_MARKERS` under it."""
        fs, path = self.filesystem()
        if not self.is_http:
            return bool(retry(lambda: fs.isdir(path), self.url))
        for marker in DIRECTORY_MARKERS:
            if retry(partial(fs.exists, f"{path.rstrip('/')}/{marker}"), self.url):
                return True
        return False

    # ------------------------------------------------------------------ a directory
    @property
    def listable(self) -> bool:
        """False for HTTP(S): a web server has no listing; objects are read by known key."""
        return not self.is_http

    def _key_path(self, key: str) -> str:
        if self.is_local:
            return os.path.join(self.local_path, key)
        return f"{self.filesystem()[1].rstrip('/')}/{key}"

    def list(self) -> dict[str, int]:
        """Every key under this directory, at any depth, with its size in bytes.

        Returns
        -------
        dict of str to int
            Sorted by key; empty when nothing is stored here (or the bucket does not exist).
        """
        if self.is_local:
            return list_local(self.local_path)
        fs, path = self.filesystem()
        root = path.rstrip("/")
        self._forget(root)
        try:
            listed = retry(lambda: fs.find(root, detail=True), self.url)
        except FileNotFoundError:
            return {}
        head = root + "/"
        return {
            name[len(head) :]: int(info.get("size") or 0)
            for name, info in sorted(listed.items())
            if name.startswith(head) and info.get("type", "file") == "file"
        }

    def exists(self, key: str) -> bool:
        """True if the object (file) ``key`` exists under this directory."""
        if self.is_local:
            return os.path.isfile(self._key_path(key))
        fs, _ = self.filesystem()
        path = self._key_path(key)
        self._forget(path)
        # a web server has no directories; elsewhere a prefix with objects under it is not
        # an object
        test = fs.exists if self.is_http else fs.isfile
        return bool(retry(lambda: test(path), self.url_of(key)))

    def get(self, key: str) -> bytes:
        """The bytes of the object ``key``.

        Raises
        ------
        FileNotFoundError
            If it does not exist.
        """
        if self.is_local:
            with open(self._key_path(key), "rb") as f:
                return f.read()
        fs, _ = self.filesystem()
        path = self._key_path(key)
        data: bytes = retry(lambda: fs.cat_file(path), self.url_of(key))
        return data

    def get_many(self, keys: Iterable[str]) -> dict[str, bytes]:
        """The bytes of several objects, fetched concurrently where the filesystem can.

        Raises
        ------
        FileNotFoundError
            If one of them does not exist.
        """
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return {}
        if self.is_local:
            return {k: self.get(k) for k in wanted}
        fs, _ = self.filesystem()
        paths = {self._key_path(k): k for k in wanted}
        got = retry(lambda: fs.cat(list(paths), on_error="return"), self.url)
        out: dict[str, bytes] = {}
        for path, key in paths.items():
            value = got.get(path) if isinstance(got, dict) else got
            if isinstance(value, bytes):
                out[key] = value
            elif isinstance(value, FileNotFoundError):
                raise FileNotFoundError(self.url_of(key))
            else:  # a failure of this object alone (or an unexpected answer): one more try
                out[key] = self.get(key)
        return out

    def get_bounded(self, key: str, max_bytes: int) -> bytes:
        """The bytes of the object ``key``, but never more than ``max_bytes + 1`` of them.

        Over HTTP(S) the response is streamed and the connection dropped after
        ``max_bytes + 1`` bytes, so an oversized (or endless) object costs no more than
        that; a result longer than ``max_bytes`` says the object is larger.

        Raises
        ------
        FileNotFoundError
            If it does not exist (HTTP 404).
        """
        if self.is_local:
            with open(self._key_path(key), "rb") as f:
                return f.read(max_bytes + 1)
        fs, _ = self.filesystem()
        path = self._key_path(key)
        data: bytes = retry(lambda: read_capped(fs, path, max_bytes), self.url_of(key))
        return data

    def get_many_bounded(self, caps: Mapping[str, int]) -> dict[str, bytes]:
        """:meth:`get_bounded` of several objects (key -> ``max_bytes``), concurrently.

        Returns
        -------
        dict of str to bytes
            The objects found; a missing one (404) is left out.
        """
        keys = list(caps)
        if len(keys) <= 1 or self.is_local:
            return {k: v for k in keys if (v := self._get_or_none(k, caps[k])) is not None}
        with ThreadPoolExecutor(min(16, len(keys))) as pool:
            got = list(pool.map(lambda k: self._get_or_none(k, caps[k]), keys))
        return {k: v for k, v in zip(keys, got, strict=True) if v is not None}

    def _get_or_none(self, key: str, max_bytes: int) -> bytes | None:
        try:
            return self.get_bounded(key, max_bytes)
        except FileNotFoundError:
            return None

    def put(self, key: str, data: bytes) -> None:
        """Write the object ``key`` (remotely a single PUT: readers see old or new bytes).

        Locally the file and its parent directories are created in place; atomic
        directory outputs are built in a temporary directory (see
        :mod:`virtualizarr.io.write`).

        Raises
        ------
        OutputWriteError
            If the store refused the write or the network failed (after retries).
        """
        if self.is_local:
            path = Path(self._key_path(key))
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            return
        fs, _ = self.filesystem()
        path_s = self._key_path(key)
        try:
            retry(lambda: fs.pipe_file(path_s, data), self.url_of(key))
        except Exception as e:
            raise write_error(self.url_of(key), e) from e
        finally:
            self._forget(path_s)

    def delete(self, keys: Iterable[str]) -> None:
        """Delete objects (batched where the store can; missing ones are ignored).

        Raises
        ------
        OutputWriteError
            If the store refused a deletion or the network failed (after retries).
        """
        keys = list(keys)
        if not keys:
            return
        if self.is_local:
            for key in keys:
                with suppress(FileNotFoundError):
                    os.unlink(self._key_path(key))
            return
        fs, _ = self.filesystem()
        paths = [self._key_path(k) for k in keys]
        try:
            try:
                retry(lambda: fs.rm(paths), self.url)
            except FileNotFoundError:
                # some filesystems stop at the first missing path: the rest one by one
                for p in paths:
                    with suppress(FileNotFoundError):
                        retry(partial(fs.rm, p), self.url)
        except Exception as e:
            raise write_error(f"{self.url} ({len(paths)} objects to delete)", e) from e
        finally:
            self._forget()
