"""The one module that touches files and URLs: paths to URIs, ranged reads, atomic writes.

Local files are read with plain ``open``/``os.pread`` (no fsspec overhead); anything else
goes through fsspec, so remote protocols plug in here and nowhere else. Every function that
may touch a remote URL takes ``storage_options`` (passed to the fsspec filesystem, e.g.
``{"anon": True}`` or ``{"client_kwargs": {"endpoint_url": ...}}`` for S3).

Remote reads are single ranged requests (``cat_file``); transient failures (HTTP 5xx,
connection resets, timeouts) are retried :data:`RETRIES` times with exponential backoff,
and a persistent failure names the URL.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import IO, Any, Final
from urllib.parse import unquote, urlparse

from virtualizarr.errors import (
    ChunkReadError,
    InvalidArgumentError,
    MissingDependencyError,
    OutputExistsError,
    OutputWriteError,
    SourceNotFoundError,
)

__all__ = [
    "METADATA_BLOCK_SIZE",
    "METADATA_CACHE_TYPE",
    "RETRIES",
    "ObjectDirectory",
    "atomic_write",
    "expand_glob",
    "file_info",
    "filesystem",
    "is_http",
    "is_local",
    "is_relative",
    "join_uri",
    "local_path",
    "open_remote",
    "read_magic",
    "read_range",
    "relative_to",
    "resolve_relative",
    "retry",
    "to_uri",
    "write_bytes",
]

RETRIES = 4
"""Tries of a remote operation that fails transiently (5xx, connection reset, timeout)."""
BACKOFF: Final = 0.1
"""Seconds slept after the first failed try; doubled after each further one."""
METADATA_BLOCK_SIZE = 16 * 1024
"""Block size of the file object handed to h5py for remote metadata reads (measured in
benchmarks/bench_remote.py: 8 requests and ~10% of an 800 kB netCDF4 file; 512 KiB blocks
fetch the whole file, no cache costs one request per HDF5 read)."""
METADATA_CACHE_TYPE = "blockcache"
"""fsspec cache of that file object: blocks fetched once, kept (LRU) while parsing."""

_PROTOCOL_EXTRAS: Final = {"s3": "s3", "s3a": "s3", "http": "http", "https": "http"}


def is_local(url: str) -> bool:
    """True for plain paths and ``file://`` URIs."""
    s = str(url)
    if s.startswith(("/", "file://")):
        return True  # the common cases, without parsing (this runs per path table entry)
    scheme = urlparse(s).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def local_path(url: str) -> str:
    """The filesystem path of a local path or ``file://`` URI."""
    s = str(url)
    if s.startswith("file://"):
        return unquote(urlparse(s).path)
    return s


def to_uri(path: str | os.PathLike[str]) -> str:
    """An absolute URI for a path: local paths become ``file:///abs/path``."""
    s = os.fspath(path)
    if is_local(s):
        return Path(local_path(s)).expanduser().resolve().as_uri()
    return s


# ---------------------------------------------------------------------- remote plumbing
def filesystem(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, str]:
    """The fsspec filesystem serving ``url`` and the path within it.

    Parameters
    ----------
    url : str
        Any fsspec URL (``s3://bucket/key``, ``https://host/file``, ``file:///...``).
    storage_options : mapping, optional
        Options for the filesystem (credentials, endpoint, ...).

    Returns
    -------
    fs : fsspec.AbstractFileSystem
    path : str

    Raises
    ------
    MissingDependencyError
        If the protocol's fsspec implementation (s3fs, aiohttp) is not installed.
    """
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url, **dict(storage_options or {}))
    except ImportError as e:
        scheme = urlparse(url).scheme
        extra = _PROTOCOL_EXTRAS.get(scheme, scheme)
        raise MissingDependencyError(
            f"reading {url} needs fsspec's {scheme!r} implementation, which is not installed "
            f"({e}); install it with `pip install virtualizarr[{extra}]`."
        ) from e
    return fs, str(path)


def _is_transient(e: BaseException) -> bool:
    """True for failures worth retrying: 5xx responses, resets, timeouts."""
    if isinstance(e, FileNotFoundError | PermissionError | IsADirectoryError):
        return False
    if isinstance(e, ConnectionError | TimeoutError):
        return True
    status = getattr(e, "status", None) or getattr(e, "code", None)
    if isinstance(status, int) and 500 <= status < 600:
        return True
    names = {c.__name__ for c in type(e).__mro__}
    transient = {
        "ClientConnectionError",
        "ServerDisconnectedError",
        "ClientPayloadError",
        "ServerTimeoutError",
        "EndpointConnectionError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ConnectionClosedError",
    }
    if names & transient:
        return True
    text = str(e)
    return any(f" {code}" in text or text.startswith(str(code)) for code in (500, 502, 503, 504))


def retry[T](fn: Callable[[], T], url: str, *, tries: int = RETRIES) -> T:
    """Call ``fn``, retrying transient failures with exponential backoff.

    Parameters
    ----------
    fn : callable
        The remote operation.
    url : str
        What it touches (for messages).
    tries : int
        Most attempts.

    Returns
    -------
    object
        What ``fn`` returns.

    Raises
    ------
    Exception
        The last failure, when it is not transient or ``tries`` are spent.

    Examples
    --------
    >>> retry(lambda: 1, "s3://bucket/key")
    1
    """
    for attempt in range(tries):
        try:
            return fn()
        except Exception as e:
            if attempt == tries - 1 or not _is_transient(e):
                raise
            time.sleep(BACKOFF * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def file_info(url: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Size and version stamps of a file: ``{"size", "mtime_ns" | "etag", ...}``.

    Local files give ``size`` and ``mtime_ns`` (``os.stat``); remote ones give ``size``
    and, when the store reports them, ``etag`` and/or ``mtime`` (fsspec's ``info``).

    Parameters
    ----------
    url : str
    storage_options : mapping, optional

    Returns
    -------
    dict

    Raises
    ------
    SourceNotFoundError
        If the file does not exist.
    """
    if is_local(url):
        try:
            st = os.stat(local_path(url))
        except FileNotFoundError:
            raise SourceNotFoundError(f"{url} does not exist; check the path.") from None
        return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns)}
    fs, path = filesystem(url, storage_options)
    with suppress(Exception):
        fs.invalidate_cache(path)
    try:
        info = retry(lambda: fs.info(path), url)
    except FileNotFoundError:
        if is_http(url) and _is_store_prefix(fs, path, url):
            return {"size": 0}  # a store's directory URL, as object stores report prefixes
        raise SourceNotFoundError(f"{url} does not exist; check the URL.") from None
    out: dict[str, Any] = {"size": int(info.get("size") or 0)}
    etag = info.get("ETag") or info.get("etag")
    if etag:
        out["etag"] = str(etag).strip('"')
    mtime = info.get("LastModified") or info.get("mtime") or info.get("last_modified")
    if mtime is not None and not etag:
        out["mtime"] = str(mtime)
    return out


def open_remote(
    url: str,
    storage_options: Mapping[str, Any] | None = None,
    *,
    block_size: int | None = None,
    cache_type: str | None = None,
) -> Any:
    """A read-only, seekable file object over a remote file, for metadata parsers (h5py).

    Reads are served from ``block_size`` blocks fetched with one ranged request each and
    cached (``cache_type``), so a parser that hops between small objects costs a few
    requests rather than one per object.

    Parameters
    ----------
    url : str
    storage_options : mapping, optional
    block_size : int, optional
        Bytes per request (default :data:`METADATA_BLOCK_SIZE`).
    cache_type : str, optional
        An fsspec cache name (``"blockcache"``, ``"readahead"``, ``"first"``, ...; default
        :data:`METADATA_CACHE_TYPE`).

    Returns
    -------
    file-like

    Raises
    ------
    SourceNotFoundError
        If the file does not exist.
    """
    fs, path = filesystem(url, storage_options)
    bs = METADATA_BLOCK_SIZE if block_size is None else block_size
    ct = METADATA_CACHE_TYPE if cache_type is None else cache_type
    try:
        return retry(lambda: fs.open(path, "rb", block_size=bs, cache_type=ct), url)
    except FileNotFoundError:
        raise SourceNotFoundError(f"{url} does not exist; check the URL.") from None


def expand_glob(pattern: str, storage_options: Mapping[str, Any] | None = None) -> list[str]:
    """The URLs matching a remote glob (``s3://bucket/dir/*.nc``), sorted.

    Parameters
    ----------
    pattern : str
    storage_options : mapping, optional

    Returns
    -------
    list of str
        Full URLs with the pattern's protocol.
    """
    fs, path = filesystem(pattern, storage_options)
    found = retry(lambda: fs.glob(path), pattern)
    return sorted(fs.unstrip_protocol(p) for p in found)


def write_bytes(
    url: str,
    data: bytes,
    *,
    mode: str = "w-",
    storage_options: Mapping[str, Any] | None = None,
) -> None:
    """Write ``data`` to a local path (atomically) or a remote URL (one PUT).

    Object stores make a single PUT atomic: readers see the old object or the new one.

    Parameters
    ----------
    url : str
    data : bytes
    mode : {"w-", "w"}
        ``"w-"`` refuses to replace an existing file.
    storage_options : mapping, optional

    Raises
    ------
    OutputExistsError
        If ``mode="w-"`` and ``url`` exists.
    OutputWriteError
        If a remote store refused the write or the network failed (after retries).
    """
    _check_mode(mode)
    if is_local(url):
        write_bytes_atomic(url, data, mode=mode)
        return
    fs, path = filesystem(url, storage_options)
    try:
        exists = retry(lambda: fs.exists(path), url)
    except Exception as e:
        raise _write_error(url, e) from e
    if mode == "w-" and exists:
        raise OutputExistsError(
            f"{url} already exists; pass mode='w' to replace it, or choose another path."
        )
    try:
        retry(lambda: fs.pipe_file(path, data), url)
    except Exception as e:
        raise _write_error(url, e) from e
    finally:
        with suppress(Exception):
            fs.invalidate_cache(path)


def _write_error(url: str, e: BaseException) -> OutputWriteError:
    hint = (
        "check that the bucket exists and that the credentials in storage_options may write there"
        if isinstance(e, FileNotFoundError | PermissionError)
        else "check the connection and storage_options, then write again"
    )
    return OutputWriteError(f"could not write {url}: {type(e).__name__}: {e}; {hint}.")


# ---------------------------------------------------------------------- object directories
class ObjectDirectory:
    """The objects under one URL prefix (``s3://bucket/refs.zarr``), addressed by key.

    What directory outputs (manifest stores, Parquet references) need from object
    storage, which has no directories and no rename: list the keys under the prefix, and
    get, put and delete objects by key (``"air/zarr.json"``). Transient failures are
    retried (:func:`retry`); fsspec's listing cache is bypassed, so a listing sees what the
    store holds now.

    Parameters
    ----------
    url : str
        The prefix, without a trailing slash (any fsspec URL; ``file://`` works too).
    storage_options : mapping, optional
        Options for the fsspec filesystem (credentials, endpoint, ...).

    Raises
    ------
    MissingDependencyError
        If the protocol's fsspec implementation (s3fs, ...) is not installed.

    Examples
    --------
    >>> d = ObjectDirectory("memory://vz-doc/store")
    >>> d.put("a/zarr.json", b"{}")
    >>> d.list(), d.get("a/zarr.json")
    ({'a/zarr.json': 2}, b'{}')
    >>> d.delete(["a/zarr.json"]); d.list()
    {}
    """

    def __init__(self, url: str, storage_options: Mapping[str, Any] | None = None) -> None:
        self.url = str(url).rstrip("/")
        self._fs, path = filesystem(self.url, storage_options)
        self._root = path.rstrip("/")
        self.listable = not is_http(self.url)
        """False for HTTP(S): a web server has no listing; objects are read by known key."""

    def url_of(self, key: str) -> str:
        """The URL of the object ``key``."""
        return f"{self.url}/{key}"

    def _path(self, key: str) -> str:
        return f"{self._root}/{key}"

    def _forget(self) -> None:
        with suppress(Exception):
            self._fs.invalidate_cache(self._root)

    def list(self) -> dict[str, int]:
        """Every key under the prefix, at any depth, with its size in bytes.

        Returns
        -------
        dict of str to int
            Empty when nothing is stored under the prefix (or its bucket does not exist).
        """
        self._forget()
        try:
            found = retry(lambda: self._fs.find(self._root, detail=True), self.url)
        except FileNotFoundError:
            return {}
        head = self._root + "/"
        return {
            name[len(head) :]: int(info.get("size") or 0)
            for name, info in sorted(found.items())
            if name.startswith(head) and info.get("type", "file") == "file"
        }

    def exists(self, key: str) -> bool:
        """True if the object ``key`` exists."""
        path = self._path(key)
        with suppress(Exception):
            self._fs.invalidate_cache(path)
        return bool(retry(lambda: self._fs.exists(path), self.url_of(key)))

    def get(self, key: str) -> bytes:
        """The bytes of the object ``key``.

        Raises
        ------
        FileNotFoundError
            If it does not exist.
        """
        path = self._path(key)
        data: bytes = retry(lambda: self._fs.cat_file(path), self.url_of(key))
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
        paths = {self._path(k): k for k in wanted}
        got = retry(lambda: self._fs.cat(list(paths), on_error="return"), self.url)
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
        path = self._path(key)
        data: bytes = retry(lambda: _read_capped(self._fs, path, max_bytes), self.url_of(key))
        return data

    def get_many_bounded(self, caps: Mapping[str, int]) -> dict[str, bytes]:
        """:meth:`get_bounded` of several objects (key -> ``max_bytes``), concurrently.

        Returns
        -------
        dict of str to bytes
            The objects found; a missing one (404) is left out.
        """
        keys = list(caps)
        if len(keys) <= 1:
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
        """Write the object ``key`` (a single PUT: readers see the old bytes or the new).

        Raises
        ------
        OutputWriteError
            If the store refused the write or the network failed (after retries).
        """
        path = self._path(key)
        try:
            retry(lambda: self._fs.pipe_file(path, data), self.url_of(key))
        except Exception as e:
            raise _write_error(self.url_of(key), e) from e
        finally:
            with suppress(Exception):
                self._fs.invalidate_cache(path)

    def delete(self, keys: Iterable[str]) -> None:
        """Delete objects (batched where the store can; missing ones are ignored).

        Raises
        ------
        OutputWriteError
            If the store refused a deletion or the network failed (after retries).
        """
        paths = [self._path(k) for k in keys]
        if not paths:
            return
        try:
            retry(lambda: self._fs.rm(paths), self.url)
        except FileNotFoundError:
            pass
        except Exception as e:
            raise _write_error(f"{self.url} ({len(paths)} objects to delete)", e) from e
        finally:
            self._forget()


def is_http(url: str) -> bool:
    """True for ``http://`` and ``https://`` URLs (servers without a listing)."""
    return str(url).lower().startswith(("http://", "https://"))


def _read_capped(fs: Any, path: str, max_bytes: int) -> bytes:
    """At most ``max_bytes + 1`` bytes of ``path`` from the start (streamed over HTTP)."""
    if is_http(path):
        from fsspec.asyn import sync

        data: bytes = sync(fs.loop, _http_get_capped, fs, path, max_bytes)
        return data
    with fs.open(path, "rb") as f:
        out: bytes = f.read(max_bytes + 1)
    return out


async def _http_get_capped(fs: Any, url: str, max_bytes: int) -> bytes:
    """GET ``url`` with fsspec's HTTP session, reading no more than ``max_bytes + 1`` bytes.

    Leaving the response unread closes its connection instead of draining it.
    """
    session = await fs.set_session()
    async with session.get(fs.encode_url(url), **fs.kwargs) as r:
        fs._raise_not_found_for_status(r, url)
        buf = bytearray()
        while len(buf) <= max_bytes:
            part = await r.content.read(min(max_bytes + 1 - len(buf), 1 << 20))
            if not part:
                break
            buf += part
    return bytes(buf)


def _is_store_prefix(fs: Any, path: str, url: str) -> bool:
    """True if ``path`` is a directory: a listed prefix, or over HTTP(S) -- where
    directories cannot be listed -- a URL with a ``zarr.json`` or ``.zmetadata`` under it."""
    if not is_http(url):
        return bool(retry(lambda: fs.isdir(path), url))
    for probe in (f"{path.rstrip('/')}/zarr.json", f"{path.rstrip('/')}/.zmetadata"):
        if retry(partial(fs.exists, probe), url):
            return True
    return False


# ---------------------------------------------------------------------- relative paths
def is_relative(path: str) -> bool:
    """True for a path with neither a scheme nor a leading ``/`` (``"data/a.nc"``)."""
    if path.startswith("/") or "://" in path:
        return False  # the common cases, without parsing
    return not urlparse(path).scheme


def join_uri(base: str, name: str) -> str:
    """``name`` inside the directory URL ``base`` (``s3://b/d`` + ``x`` -> ``s3://b/d/x``)."""
    return base.rstrip("/") + "/" + name.lstrip("/")


def relative_to(uri: str, reference: str) -> str:
    """``uri`` written relative to the directory holding ``reference``, when possible.

    Both are absolute URIs. A path on another host/bucket or protocol stays absolute.

    Parameters
    ----------
    uri : str
        A source path (``file:///data/a.nc``).
    reference : str
        The reference file or store (``file:///data/refs.json``).

    Returns
    -------
    str
        E.g. ``"a.nc"`` or ``"../raw/a.nc"``; ``uri`` unchanged when not relatable.

    Examples
    --------
    >>> relative_to("s3://b/data/raw/a.nc", "s3://b/data/refs.json")
    'raw/a.nc'
    >>> relative_to("s3://other/a.nc", "s3://b/refs.json")
    's3://other/a.nc'
    """
    u, r = urlparse(uri), urlparse(reference)
    if (u.scheme, u.netloc) != (r.scheme, r.netloc) or not u.scheme:
        return uri
    base = posixpath.dirname(r.path.rstrip("/")) or "/"
    rel = posixpath.relpath(u.path, base)
    return rel


def resolve_relative(path: str, reference: str) -> str:
    """The absolute URI of ``path`` (relative to ``reference``'s directory), else ``path``.

    Parameters
    ----------
    path : str
        A path from a reference document.
    reference : str
        Absolute URI of the reference file or store.

    Returns
    -------
    str

    Examples
    --------
    >>> resolve_relative("raw/a.nc", "s3://b/data/refs.json")
    's3://b/data/raw/a.nc'
    >>> resolve_relative("../a.nc", "file:///x/y/refs.json")
    'file:///x/a.nc'
    >>> resolve_relative("s3://c/a.nc", "file:///x/refs.json")
    's3://c/a.nc'
    """
    if not is_relative(path):
        return path
    r = urlparse(reference)
    base = posixpath.dirname(r.path.rstrip("/")) or "/"
    joined = posixpath.normpath(posixpath.join(base, path))
    return r._replace(path=joined, params="", query="", fragment="").geturl()


def read_range(url: str, offset: int, length: int, **storage_options: Any) -> bytes:
    """Read ``length`` bytes at ``offset`` of ``url``.

    Raises
    ------
    ChunkReadError
        If the file is missing or shorter than the range.
    """
    try:
        if is_local(url):
            fd = os.open(local_path(url), os.O_RDONLY)
            try:
                data = os.pread(fd, length, offset)
            finally:
                os.close(fd)
        else:
            fs, p = filesystem(url, storage_options)
            data = retry(lambda: fs.cat_file(p, start=offset, end=offset + length), url)
    except FileNotFoundError:
        raise ChunkReadError(
            f"referenced file {url} does not exist; it may have moved (see "
            "ds.virtualize.rename_paths) or been deleted."
        ) from None
    except ChunkReadError:
        raise
    except Exception as e:  # OSError, aiohttp/botocore errors after retries
        raise ChunkReadError(
            f"could not read {length} bytes at {offset} of {url}: {type(e).__name__}: {e}"
        ) from e
    if len(data) != length:
        raise ChunkReadError(
            f"expected {length} bytes at offset {offset} of {url}, but the file ends after "
            f"{len(data)}; the file was truncated or changed after it was virtualized."
        )
    return data


def read_magic(url: str, n: int = 8, **storage_options: Any) -> bytes:
    """The first ``n`` bytes of a file (fewer if it is shorter).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    IsADirectoryError
        If ``url`` is a directory (locally, or a prefix with objects under it remotely;
        over HTTP(S), a URL with a ``zarr.json`` or ``.zmetadata`` under it).
    """
    if is_local(url):
        with open(local_path(url), "rb") as f:
            return f.read(n)
    fs, p = filesystem(url, storage_options)
    if is_http(url) and url.endswith("/") and _is_store_prefix(fs, p, url):
        raise IsADirectoryError(url)  # a web server may answer a directory with an index page
    try:
        data: bytes = retry(lambda: fs.cat_file(p, start=0, end=n), url)
    except FileNotFoundError:
        # an object store has no directory objects: a prefix with objects under it (a
        # manifest store, Parquet references) reads as missing; say what it is. Over
        # HTTP(S), which cannot list, a URL with a zarr.json or .zmetadata under it.
        is_dir = False
        with suppress(Exception):  # a filesystem that cannot tell: report the file missing
            is_dir = _is_store_prefix(fs, p, url)
        if is_dir:
            raise IsADirectoryError(url) from None
        raise
    return data


@contextmanager
def atomic_write(path: str | os.PathLike[str], *, mode: str = "w-") -> Iterator[IO[bytes]]:
    """Write a local file atomically: a temporary file beside it, renamed on success.

    Parameters
    ----------
    path : str or path-like
        Destination.
    mode : {"w-", "w"}
        ``"w-"`` refuses to replace an existing file; ``"w"`` replaces it.

    Raises
    ------
    OutputExistsError
        If ``mode="w-"`` and ``path`` exists.
    """
    dest = Path(local_path(os.fspath(path)))
    _check_mode(mode)
    if mode == "w-" and dest.exists():
        raise OutputExistsError(
            f"{dest} already exists; pass mode='w' to replace it, or choose another path."
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        if mode == "w-":
            # link() fails if dest appeared meanwhile: no silent overwrite.
            try:
                os.link(tmp, dest)
            except FileExistsError:
                raise OutputExistsError(
                    f"{dest} appeared while writing; pass mode='w' to replace it."
                ) from None
            os.unlink(tmp)
        else:
            os.replace(tmp, dest)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _check_mode(mode: str) -> None:
    if mode not in ("w", "w-"):
        raise InvalidArgumentError(
            f"mode must be 'w-' (refuse to overwrite) or 'w' (replace); got {mode!r}"
        )


def write_bytes_atomic(
    path: str | os.PathLike[str], data: bytes | Iterable[bytes], *, mode: str = "w-"
) -> None:
    """Write ``data`` (bytes, or an iterable of byte blocks) to ``path`` atomically.

    See :func:`atomic_write` for the ``mode`` semantics.
    """
    with atomic_write(path, mode=mode) as f:
        if isinstance(data, bytes):
            f.write(data)
        else:
            f.writelines(data)
