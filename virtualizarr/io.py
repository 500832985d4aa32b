"""The one module that touches files and URLs: paths to URIs, ranged reads, atomic writes.

Local files are read with plain ``open``/``os.pread`` (no fsspec overhead); anything else
goes through fsspec, so remote protocols plug in here and nowhere else.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote, urlparse

from virtualizarr.errors import ChunkReadError, OutputExistsError

__all__ = [
    "atomic_write",
    "is_local",
    "local_path",
    "read_magic",
    "read_range",
    "to_uri",
]


def is_local(url: str) -> bool:
    """True for plain paths and ``file://`` URIs."""
    scheme = urlparse(str(url)).scheme
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


def _fsspec_open(url: str, mode: str = "rb", **storage_options: Any) -> Any:
    import fsspec

    return fsspec.open(url, mode, **storage_options)


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
            with _fsspec_open(url, "rb", **storage_options) as f:
                f.seek(offset)
                data = f.read(length)
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
            f"{len(data)}; the file was truncated or changed after it was virtualized."
        )
    return data


def read_magic(url: str, n: int = 8, **storage_options: Any) -> bytes:
    """The first ``n`` bytes of a file (fewer if it is shorter)."""
    if is_local(url):
        with open(local_path(url), "rb") as f:
            return f.read(n)
    with _fsspec_open(url, "rb", **storage_options) as f:
        data: bytes = f.read(n)
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
        raise ValueError(f"mode must be 'w-' (refuse to overwrite) or 'w' (replace); got {mode!r}")


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
