"""``FileCache``: the files a reader or a dataset keeps open while it reads.

Reading chunks one range at a time must not reopen a file per range. A :class:`FileCache`
keeps local file descriptors open (read with ``os.pread``, safe to share between threads)
and remote file objects open (fsspec, with block caches, for metadata parsers such as
h5py), until it is closed or garbage collected. One-off reads of a single range go
through :meth:`virtualizarr.io.objects.Location.read_range` instead.
"""

from __future__ import annotations

import os
import threading
import weakref
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from virtualizarr.errors import ChunkReadError
from virtualizarr.io.objects import Location
from virtualizarr.io.uri import is_local, local_path

__all__ = ["FileCache"]


class FileCache:
    """Open local file descriptors and remote file objects, shared by reading threads.

    Descriptors stay open until :meth:`close` (or until the cache is garbage collected);
    a read after ``close`` opens the file again.

    Parameters
    ----------
    limit : int, optional
        Most descriptors kept open; files beyond it are opened and closed per read.
    storage_options : mapping, optional
        fsspec options for remote URLs (credentials, endpoint).

    Examples
    --------
    >>> files = FileCache()
    >>> files.read("file:///dev/null", 0, 0)
    b''
    >>> files.close()
    """

    def __init__(self, limit: int = 512, storage_options: Mapping[str, Any] | None = None) -> None:
        self.storage_options: dict[str, Any] = dict(storage_options or {})
        self._fds: dict[str, int] = {}
        self._remote: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._limit = limit
        self._finalizer = weakref.finalize(self, _close_all, self._fds, self._remote, self._lock)

    def __enter__(self) -> FileCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def location(self, url: str) -> Location:
        """The :class:`Location` of ``url``, with this cache's storage options."""
        return Location(url, self.storage_options)

    def pread(self, path: str, offset: int, length: int) -> bytes:
        """Read ``length`` bytes at ``offset`` of the local file ``path`` (may be short).

        Parameters
        ----------
        path : str
            A filesystem path.
        offset, length : int

        Returns
        -------
        bytes

        Raises
        ------
        OSError
            If the file cannot be opened or read.
        """
        fd = self._fds.get(path)
        if fd is None:
            with self._lock:
                fd = self._fds.get(path)
                if fd is None:
                    fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
                    if len(self._fds) >= self._limit:
                        try:
                            return os.pread(fd, length, offset)
                        finally:
                            os.close(fd)
                    self._fds[path] = fd
        return os.pread(fd, length, offset)

    def read(self, url: str, offset: int, length: int) -> bytes:
        """Read exactly ``length`` bytes at ``offset`` of a local file or URL.

        Parameters
        ----------
        url : str
            ``file://`` URI, local path, or any fsspec URL.
        offset, length : int

        Returns
        -------
        bytes

        Raises
        ------
        ChunkReadError
            If the file does not exist, cannot be read, or ends before the range does.
        """
        if not is_local(url):
            return self.location(url).read_range(offset, length)
        try:
            data = self.pread(local_path(url), offset, length)
        except FileNotFoundError:
            raise ChunkReadError(
                f"referenced file {url} does not exist; it may have moved (see "
                "ds.virtualize.rename_paths) or been deleted."
            ) from None
        except OSError as e:
            raise ChunkReadError(f"could not read {length} bytes at {offset} of {url}: {e}") from e
        if len(data) != length:
            raise ChunkReadError(
                f"expected {length} bytes at offset {offset} of {url}, but the file ends after "
                f"{offset + len(data)} bytes; it was truncated or changed after it was virtualized."
            )
        return data

    def remote_file(self, location: Location) -> Any:
        """The block-cached file object of a remote file, opened once (see
        :meth:`Location.open_remote`); metadata parsers share it and its cache.

        Raises
        ------
        SourceNotFoundError
            If the file does not exist.
        """
        with self._lock:
            fobj = self._remote.get(location.url)
        if fobj is None:
            fobj = location.open_remote()
            with self._lock:
                self._remote[location.url] = fobj
        return fobj

    def handle(self, location: Location) -> Any:
        """What a parser that opens files itself (h5py) is given: a local file's path, or
        the block-cached file object of a remote one (:meth:`remote_file`).

        Raises
        ------
        SourceNotFoundError
            If a remote file does not exist.
        """
        return location.local_path if location.is_local else self.remote_file(location)

    def read_at(self, location: Location, offset: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``offset`` (fewer at the end of the file).

        Local files are read with ``os.pread``; remote ones through the file object of
        :meth:`remote_file`, so a parser reading the same file shares its block cache.

        Raises
        ------
        OSError
            If the file cannot be read.
        """
        if location.is_local:
            return self.pread(location.local_path, offset, size)
        fobj = self.remote_file(location)
        fobj.seek(offset)
        return bytes(fobj.read(size))

    def size(self, location: Location) -> int:
        """The size of a file in bytes, from an open descriptor or file object.

        Raises
        ------
        OSError
            If the file cannot be opened.
        """
        if location.is_local:
            self.pread(location.local_path, 0, 0)  # opens (and keeps) the descriptor
            fd = self._fds.get(location.local_path)
            if fd is None:  # over the descriptor limit
                return os.path.getsize(location.local_path)
            return os.fstat(fd).st_size
        return int(self.remote_file(location).size)

    def close(self) -> None:
        """Close every open descriptor and file object."""
        _close_all(self._fds, self._remote, self._lock)


def _close_all(fds: dict[str, int], remote: dict[str, Any], lock: threading.Lock) -> None:
    with lock:
        items = list(fds.values())
        fobjs = list(remote.values())
        fds.clear()
        remote.clear()
    for fd in items:
        os.close(fd)
    for fobj in fobjs:
        with suppress(Exception):  # closing a broken connection
            fobj.close()
