"""Writing without losing data: single files atomically, directory outputs all or nothing.

**Single files** (kerchunk JSON): locally a temporary file beside the target, renamed
into place (:func:`atomic_write`); remotely one PUT, which object stores make atomic
(:func:`write_bytes`). ``mode="w-"`` refuses to replace an existing file.

**Directory outputs** (manifest stores, Parquet references): a writer produces a directory
as *objects*: keys (``"air/manifest.json"``) and their bytes, one of which is the **commit
key** -- the root metadata whose presence makes the output discoverable and complete
(``zarr.json`` of a manifest store's root group, ``.zmetadata`` of Parquet references).
:func:`output_directory` gives the writer a place to put them:

* **Local disk**: a temporary directory beside the target, renamed into place on success
  (:func:`atomic_directory`). Readers see the old directory or the new one, never a mix.
* **Object storage** (``s3://``, ``gs://``, ``az://``, ``memory://`` ...), which has no
  rename: every other object is uploaded first (concurrently), the commit key last, so a
  failure never leaves an output that looks complete. ``mode="w-"`` refuses a target
  prefix that holds any object; ``mode="w"`` replaces what is there: objects the new
  output does not contain are deleted -- those inside the new output's directories before
  the commit key is written (a stale chunk file there would be read as part of the new
  store), the others after it; the previous commit key is overwritten by the new one,
  never deleted first. If anything fails before the commit key is written, the objects
  already written are removed and the previous bytes of those overwritten or deleted are
  put back, so the previous output is left as it was.

Object storage gives no isolation: while a replacement is being written, a reader may see
some objects of the new output beside the old root metadata. Writers to the same target
are not coordinated with each other.
"""

from __future__ import annotations

import concurrent.futures as cf
import os
import shutil
import tempfile
import threading
import warnings
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import IO, Final, Protocol

from virtualizarr.errors import InvalidArgumentError, OutputExistsError, OutputWriteError
from virtualizarr.io.objects import Location
from virtualizarr.io.remote import retry, write_error
from virtualizarr.io.uri import local_path

__all__ = [
    "MAX_IN_FLIGHT",
    "UPLOAD_THREADS",
    "OutputDirectory",
    "atomic_directory",
    "atomic_write",
    "check_mode",
    "output_directory",
    "write_bytes",
]

_OVERWRITE_NOTE = (
    " (Unlike kerchunk and VirtualiZarr 2.x, virtualizarr never replaces output unless "
    "asked: see docs/migration.md.)"
)
"""Appended to the refusals of the default ``mode="w-"``, which surprise migrating users."""

UPLOAD_THREADS: Final = 16
"""Objects uploaded concurrently to object storage."""
MAX_IN_FLIGHT: Final = 64
"""Objects a writer may hand over before it waits for uploads to finish (bounds memory)."""


class OutputDirectory(Protocol):
    """Where a writer puts the objects of a directory output (a :class:`Location`, or
    the uploader of :func:`output_directory`)."""

    def put(self, key: str, data: bytes) -> None:
        """Store ``data`` as the object ``key`` (a relative, ``/``-separated path)."""


def check_mode(mode: str) -> None:
    """Refuse a ``mode=`` other than ``"w-"`` and ``"w"``.

    Raises
    ------
    InvalidArgumentError
        For any other value.
    """
    if mode not in ("w", "w-"):
        raise InvalidArgumentError(
            f"mode must be 'w-' (refuse to overwrite) or 'w' (replace); found {mode!r}."
        )


def _check_key(key: str) -> str:
    parts = key.split("/")
    if not key or key.startswith("/") or any(p in ("", ".", "..") for p in parts):
        raise InvalidArgumentError(
            f"an output object's key must be a relative path without '.' or '..' segments; "
            f"found {key!r}."
        )
    return key


@contextmanager
def output_directory(
    target: Location, *, commit_key: str, mode: str = "w-"
) -> Iterator[OutputDirectory]:
    """Write a directory output to local disk or object storage, all or nothing.

    Parameters
    ----------
    target : Location
        A local directory or a URL prefix (``s3://bucket/refs.zarr``).
    commit_key : str
        The object that makes the output complete (``"zarr.json"``, ``".zmetadata"``);
        on object storage it is written after every other one.
    mode : {"w-", "w"}
        ``"w-"`` (default) refuses an existing output; ``"w"`` replaces it.

    Yields
    ------
    OutputDirectory
        Call ``put(key, data)`` for each object.

    Raises
    ------
    OutputExistsError
        If ``mode="w-"`` and the target exists (locally) or holds objects (remotely).
    OutputWriteError
        If the object store refused a write or the network failed.
    InvalidArgumentError
        For an unknown ``mode``.

    Examples
    --------
    >>> target = Location("memory://bucket/out.zarr")
    >>> with output_directory(target, commit_key="zarr.json") as out:
    ...     out.put("air/zarr.json", b"{}")
    ...     out.put("zarr.json", b"{}")
    """
    check_mode(mode)
    if target.is_local:
        with atomic_directory(target.local_path, mode) as tmp:
            yield _LocalOutput(Location(tmp.as_uri()))
        return
    out = _ObjectStoreOutput(target, commit_key, mode)
    try:
        yield out
        out.finish()
    except BaseException as e:
        out.roll_back(e)
        raise
    out.remove_stale()


class _LocalOutput:
    """Objects as files under the temporary directory :func:`atomic_directory` yields."""

    def __init__(self, root: Location) -> None:
        self.root = root

    def put(self, key: str, data: bytes) -> None:
        self.root.put(_check_key(key), data)


@contextmanager
def atomic_directory(path: str | os.PathLike[str], mode: str = "w-") -> Iterator[Path]:
    """Build a local directory in a temporary sibling and rename it to ``path`` on success.

    Parameters
    ----------
    path : str or path-like
        The directory to create.
    mode : {"w-", "w"}
        ``"w-"`` refuses an existing ``path``; ``"w"`` replaces it.

    Yields
    ------
    pathlib.Path
        The temporary directory to fill.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``mode="w-"``.
    """
    check_mode(mode)
    dest = Path(local_path(os.fspath(path))).expanduser().absolute()
    if mode == "w-" and dest.exists():
        raise OutputExistsError(
            f"{dest} already exists; pass mode='w' to replace it.{_OVERWRITE_NOTE}"
        )
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        if mode == "w-":
            try:
                os.rename(tmp, dest)
            except OSError:
                if dest.exists():
                    raise OutputExistsError(
                        f"{dest} appeared while writing; pass mode='w' to replace it."
                    ) from None
                raise
        else:
            old = None
            if dest.exists() or dest.is_symlink():
                old = Path(
                    tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent)
                )
                os.rename(dest, old / "x")
            try:
                os.rename(tmp, dest)
            except BaseException:
                if old is not None:  # put the previous output back before reporting
                    os.rename(old / "x", dest)
                    old.rmdir()
                raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


class _ObjectStoreOutput:
    """Uploads a directory output under a prefix, commit key last, with roll-back.

    ``_created`` and ``_previous`` form a journal of what changed under the prefix: keys
    that did not exist before, and the previous bytes of keys overwritten or deleted.
    """

    def __init__(self, directory: Location, commit_key: str, mode: str) -> None:
        self._dir = directory
        self._commit_key = _check_key(commit_key)
        self._commit_data: bytes | None = None
        try:
            self._old = directory.list()
        except Exception as e:
            raise OutputWriteError(
                f"could not list {directory.url} before writing there ({type(e).__name__}: "
                f"{e}); check that the bucket exists and storage_options grant access."
            ) from e
        if mode == "w-" and self._old:
            raise OutputExistsError(self._exists_message())
        self._keys: set[str] = set()
        self._created: set[str] = set()
        self._previous: dict[str, bytes] = {}
        self._lock = threading.Lock()
        self._pool: cf.ThreadPoolExecutor | None = None
        self._pending: set[cf.Future[None]] = set()
        self._committed = False

    def _exists_message(self) -> str:
        url = self._dir.url
        if self._commit_key in self._old:
            return (
                f"{url} already holds an output ({self._commit_key} exists); expected no "
                "object under it for mode='w-'. Pass mode='w' to replace it, or choose "
                f"another location.{_OVERWRITE_NOTE}"
            )
        first = next(iter(self._old))
        return (
            f"{url} already holds {len(self._old)} object(s) (e.g. {first!r}) but no "
            f"{self._commit_key}, so it is not a complete output -- perhaps a write that "
            "failed part-way; expected no object under it for mode='w-'. Pass mode='w' to "
            "replace them, or choose another location."
        )

    # ------------------------------------------------------------------ writing
    def put(self, key: str, data: bytes) -> None:
        _check_key(key)
        if key in self._keys or (key == self._commit_key and self._commit_data is not None):
            raise InvalidArgumentError(f"{self._dir.url_of(key)} was written twice.")
        if key == self._commit_key:
            self._commit_data = bytes(data)
            return
        self._keys.add(key)
        self._raise_failures(block=len(self._pending) >= MAX_IN_FLIGHT)
        if self._pool is None:
            self._pool = cf.ThreadPoolExecutor(UPLOAD_THREADS, thread_name_prefix="vz-upload")
        self._pending.add(self._pool.submit(self._upload, key, bytes(data)))

    def _upload(self, key: str, data: bytes) -> None:
        if key in self._old:
            try:
                previous = self._dir.get(key)
            except FileNotFoundError:
                previous = None
            if previous == data:
                return  # unchanged: nothing to write, nothing to restore
            with self._lock:
                if previous is None:
                    self._created.add(key)
                else:
                    self._previous[key] = previous
        else:
            with self._lock:
                self._created.add(key)
        self._dir.put(key, data)

    def _raise_failures(self, *, block: bool = False) -> None:
        """Re-raise the first failed upload; with ``block``, wait for one to finish."""
        if block:
            cf.wait(self._pending, return_when=cf.FIRST_COMPLETED)
        done = {f for f in self._pending if f.done()}
        self._pending -= done
        for f in done:
            f.result()

    def _wait_all(self) -> None:
        cf.wait(self._pending)
        pending, self._pending = self._pending, set()
        for f in pending:
            f.result()

    def _existing(self, keys: Iterable[str]) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for key in keys:
            try:
                out[key] = self._dir.get(key)
            except FileNotFoundError:
                continue
        return out

    # ------------------------------------------------------------------ committing
    def finish(self) -> None:
        """Wait for the uploads, remove stale objects the new output would read, commit."""
        self._wait_all()
        if self._commit_data is None:
            raise InvalidArgumentError(
                f"the output for {self._dir.url} has no {self._commit_key}; nothing was committed."
            )
        new = self._keys | {self._commit_key}
        dirs = {k.split("/", 1)[0] for k in new if "/" in k}
        inside = [k for k in self._old if k not in new and k.split("/", 1)[0] in dirs]
        if inside:  # would read as chunk files of the new output: gone before the commit
            saved = self._existing(inside)
            with self._lock:
                self._previous.update(saved)
            self._dir.delete(inside)
        if self._commit_key in self._old:
            previous = self._existing([self._commit_key])
            with self._lock:
                self._previous.update(previous)
                if not previous:
                    self._created.add(self._commit_key)
        else:
            with self._lock:
                self._created.add(self._commit_key)
        self._dir.put(self._commit_key, self._commit_data)
        self._committed = True
        self._shutdown()

    def remove_stale(self) -> None:
        """After the commit: delete the old output's objects the new one does not have."""
        new = self._keys | {self._commit_key}
        stale = [k for k in self._old if k not in new]
        try:
            self._dir.delete(stale)
        except OutputWriteError as e:
            warnings.warn(
                f"{self._dir.url} was written, but {len(stale)} object(s) of the previous "
                f"output could not be deleted ({e}). The new output does not read them; "
                "delete them yourself to reclaim the space.",
                RuntimeWarning,
                stacklevel=4,
            )

    def _shutdown(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def roll_back(self, error: BaseException) -> None:
        """Undo every change under the prefix after a failure before the commit."""
        cf.wait(self._pending)  # no upload may land after the clean-up
        self._pending = set()
        self._shutdown()
        if self._committed:
            return
        problems: list[str] = []
        created = sorted(self._created)
        try:
            self._dir.delete(created)
        except Exception as e:
            problems.append(f"deleting {len(created)} new object(s) failed: {e}")
        for key, data in sorted(self._previous.items()):
            try:
                self._dir.put(key, data)
            except Exception as e:
                problems.append(f"restoring {key} failed: {e}")
        if problems:
            error.add_note(
                f"virtualizarr: writing {self._dir.url} failed and its previous contents "
                f"could not all be restored ({'; '.join(problems[:3])}). The output there may "
                "be incomplete: write it again with mode='w'."
            )


# ---------------------------------------------------------------------- single files
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
    check_mode(mode)
    if mode == "w-" and dest.exists():
        raise OutputExistsError(
            f"{dest} already exists; pass mode='w' to replace it, or choose another path."
            + _OVERWRITE_NOTE
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


def write_bytes(target: Location, data: bytes | Iterable[bytes], *, mode: str = "w-") -> None:
    """Write ``data`` to a local file (atomically) or a remote URL (one PUT).

    Object stores make a single PUT atomic: readers see the old object or the new one.

    Parameters
    ----------
    target : Location
    data : bytes or iterable of bytes
        The content, or blocks of it (streamed to a local file; joined for a PUT).
    mode : {"w-", "w"}
        ``"w-"`` refuses to replace an existing file.

    Raises
    ------
    OutputExistsError
        If ``mode="w-"`` and ``url`` exists.
    OutputWriteError
        If a remote store refused the write or the network failed (after retries).
    """
    check_mode(mode)
    if target.is_local:
        write_bytes_atomic(target.local_path, data, mode=mode)
        return
    url = target.url
    fs, path = target.filesystem()
    try:
        exists = retry(lambda: fs.exists(path), url)
    except Exception as e:
        raise write_error(url, e) from e
    if mode == "w-" and exists:
        raise OutputExistsError(
            f"{url} already exists; pass mode='w' to replace it, or choose another path."
        )
    payload = data if isinstance(data, bytes) else b"".join(data)
    try:
        retry(lambda: fs.pipe_file(path, payload), url)
    except Exception as e:
        raise write_error(url, e) from e
    finally:
        with suppress(Exception):
            fs.invalidate_cache(path)
