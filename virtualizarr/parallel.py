"""Running one function over many files: serially, on threads, on processes or on dask.

:func:`run_many` is what ``open_virtual_mfdataset`` scans files with. The function must be
defined at module level (process pools and dask pickle it by name). With
``parallel=True`` it picks what measured fastest: threads for remote files (requests wait
on the network, so they overlap), for 64 or more local files on Linux a process pool
started by ``fork()`` when this process runs no other thread, and otherwise scanning here
(local scanning is CPU-bound Python under the GIL and h5py's global lock: on two cores a
thread pool was 1.75x *slower* than serial scanning, forked processes about 1.2x faster).
Errors name the file they came from; a progress bar shows on a terminal.
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Mapping
from typing import Any, Literal, NoReturn, Protocol

from virtualizarr.errors import InvalidArgumentError, MissingDependencyError, VirtualiZarrError
from virtualizarr.io.uri import is_local

__all__ = ["Parallel", "PathLike", "run_many", "uri_key"]

type PathLike = str | os.PathLike[str]
type Parallel = bool | Literal["threads", "processes", "dask"] | cf.Executor | type[cf.Executor]

PROGRESS_MIN_FILES = 50
"""With ``progress=None``, a bar shows at once for more files than this..."""
PROGRESS_DELAY = 2.0
"""...and otherwise only once a run has taken this many seconds."""


class _Bar(Protocol):
    def update(self, n: int = 1) -> object: ...

    def close(self) -> None: ...


AUTO_MIN_CPUS = 2
"""``parallel=True`` uses processes only with at least this many CPUs..."""
AUTO_MIN_FILES = 64
"""... and at least this many files..."""


def _fork_is_safe() -> bool:
    """True where a process pool can start by ``fork()``: Linux, one thread running.

    Forked workers start in milliseconds with everything imported, and need no
    ``if __name__ == "__main__":`` guard. Forking a process that runs other threads (zarr's
    event loop, a dask client, the caller's own) can deadlock the child, and macOS system
    libraries are not fork-safe; there a fork server is used instead.
    """
    return sys.platform.startswith("linux") and threading.active_count() == 1


def _can_auto_fork() -> bool:
    """... and only when workers can be forked (the fork server would re-run an unguarded
    script in every worker, and its start-up of ~1 s outweighs the gain on few CPUs)."""
    return (os.cpu_count() or 1) >= AUTO_MIN_CPUS and _fork_is_safe()


# ---------------------------------------------------------------------- opening
def uri_key(path: PathLike) -> str:
    """A path as compared with another: URLs as they are, local paths made absolute."""
    p = os.fspath(path)
    return p if "://" in p else os.path.abspath(os.path.expanduser(p))


def _call_one[T](fn: Callable[..., T], path: PathLike, kwargs: Mapping[str, Any]) -> T:
    """``fn(path, **kwargs)`` (module level so process pools and dask can pickle it)."""
    return fn(path, **kwargs)


def _reraise_named(e: Exception, path: PathLike) -> NoReturn:
    """Re-raise the error from opening ``path`` so that it names that file."""
    p = os.fspath(path)
    if p in str(e) or uri_key(p) in str(e):
        raise e
    if isinstance(e, VirtualiZarrError):
        try:
            new = type(e)(f"{p}: {e}")
        except Exception:  # an unusual constructor: fall back to a note
            pass
        else:
            raise new from e
    e.add_note(f"(while opening {p})")
    raise e


def run_many[T](
    fn: Callable[..., T],
    paths: list[PathLike],
    parallel: Parallel,
    progress: bool | None,
    kwargs: Mapping[str, Any],
) -> list[T]:
    """``[fn(p, **kwargs) for p in paths]``, as ``parallel`` says (see the module docs).

    Parameters
    ----------
    fn : callable
        A module-level function of a path and keyword arguments.
    paths : list of path-like
    parallel : bool, {"threads", "processes", "dask"} or concurrent.futures.Executor
    progress : bool, optional
        A progress bar: None for one on a terminal, when there are many files or the run
        takes long.
    kwargs : mapping
        Passed to every call.

    Returns
    -------
    list
        The results, in the order of ``paths``.

    Raises
    ------
    InvalidArgumentError
        For an unknown ``parallel``.
    Exception
        The first failure of ``fn``, naming the file.
    """
    if parallel is True:  # decided before the progress bar starts its monitor thread
        if not all(is_local(str(p)) for p in paths):
            parallel = "threads"  # requests wait on the network: overlap them
        elif len(paths) >= AUTO_MIN_FILES and _can_auto_fork():
            parallel = "processes"
        else:
            parallel = False
    fork = parallel == "processes" and _fork_is_safe()
    bar = _make_bar(len(paths), progress)
    try:
        if parallel is False or len(paths) == 1:
            out = []
            for p in paths:
                try:
                    out.append(fn(p, **kwargs))
                except Exception as e:
                    _reraise_named(e, p)
                bar.update()
            return out
        if parallel == "dask":
            executor = _dask_executor()
            if executor is None:
                return _run_dask_local(fn, paths, kwargs)
            return _run(executor, fn, paths, kwargs, bar, shutdown=False)
        if isinstance(parallel, cf.Executor):
            return _run(parallel, fn, paths, kwargs, bar, shutdown=False)
        if isinstance(parallel, type) and issubclass(parallel, cf.Executor):  # as VZ 2.x
            return _run(parallel(), fn, paths, kwargs, bar, shutdown=True)
        if parallel == "threads":
            return _run(cf.ThreadPoolExecutor(), fn, paths, kwargs, bar, shutdown=True)
        if parallel == "processes":
            ctx: multiprocessing.context.BaseContext
            if fork:
                ctx = multiprocessing.get_context("fork")
            else:
                # fork() from a process that runs other threads (zarr's event loop) may
                # deadlock (and Python 3.12 warns about it): start workers from a server
                ctx = multiprocessing.get_context("forkserver")
                # Import the package once in the fork server rather than in every worker
                # (takes effect only if the fork server is not running yet).
                ctx.set_forkserver_preload(["virtualizarr"])
            workers = os.cpu_count() or 1
            executor = cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx)
            return _run(executor, fn, paths, kwargs, bar, shutdown=True, workers=workers)
        raise InvalidArgumentError(
            "parallel must be True, False, 'threads', 'processes', 'dask' or a "
            f"concurrent.futures.Executor (or its class); found {parallel!r}."
        )
    finally:
        bar.close()


def _call_batch[T](
    fn: Callable[..., T], paths: list[PathLike], kwargs: Mapping[str, Any]
) -> list[T]:
    """Several files in one task (fewer round trips to a process pool)."""
    out = []
    for p in paths:
        try:
            out.append(fn(p, **kwargs))
        except Exception as e:
            _reraise_named(e, p)
    return out


BATCHES_PER_WORKER = 4
"""A process pool gets each worker's share of files in about this many tasks: one file per
task costs a round trip and a pickling each, while a few tasks per worker still balance
uneven files."""


def _run[T](
    executor: cf.Executor,
    fn: Callable[..., T],
    paths: list[PathLike],
    kwargs: Mapping[str, Any],
    bar: _Bar,
    *,
    shutdown: bool,
    workers: int = 0,
) -> list[T]:
    """Run over ``paths`` on ``executor``; with ``workers``, in batches for a process pool."""
    size = max(1, len(paths) // (workers * BATCHES_PER_WORKER)) if workers else 1
    batches = [paths[i : i + size] for i in range(0, len(paths), size)]
    futures: dict[cf.Future[list[T]], int] = {}
    results: list[list[T]] = [[] for _ in batches]
    try:
        for i, batch in enumerate(batches):
            futures[executor.submit(_call_batch, fn, batch, dict(kwargs))] = i
        for fut in cf.as_completed(futures):
            i = futures[fut]
            try:
                results[i] = fut.result()
            except Exception as e:
                for other in futures:
                    other.cancel()
                if len(batches[i]) == 1:
                    _reraise_named(e, batches[i][0])
                raise  # the worker named the file
            bar.update(len(batches[i]))
    finally:
        if shutdown:
            executor.shutdown(wait=True, cancel_futures=True)
    return [ds for batch in results for ds in batch]


def _dask_executor() -> cf.Executor | None:
    try:
        from distributed import get_client
    except ImportError:
        return None
    try:
        client = get_client()
    except ValueError:  # no active client
        return None
    # distributed is untyped here; get_executor returns a concurrent.futures.Executor
    executor: cf.Executor = client.get_executor(pure=False)  # type: ignore[no-untyped-call]
    return executor


def _run_dask_local[T](
    fn: Callable[..., T], paths: list[PathLike], kwargs: Mapping[str, Any]
) -> list[T]:
    try:
        from dask.base import compute
        from dask.delayed import delayed
    except ImportError:
        raise MissingDependencyError(
            "parallel='dask' needs dask; install it with `pip install dask distributed`, or "
            "choose parallel='threads'."
        ) from None
    tasks = [delayed(_call_one)(fn, p, dict(kwargs)) for p in paths]
    # dask.base.compute is untyped; it returns one result per task
    results: tuple[T, ...] = compute(*tasks)  # type: ignore[no-untyped-call]
    return list(results)


# ---------------------------------------------------------------------- progress
class _NoBar:
    def update(self, n: int = 1) -> None:
        pass

    def close(self) -> None:
        pass


def _interactive() -> bool:
    """True when stderr is a terminal (tqdm's convention: no bars in logs and CI)."""
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


def _make_bar(total: int, progress: bool | None) -> _Bar:
    if progress is False or (progress is None and not _interactive()):
        return _NoBar()
    try:
        from tqdm.auto import tqdm
    except ImportError:
        if progress:
            raise MissingDependencyError(
                "progress=True needs tqdm; install it with `pip install tqdm`, or pass "
                "progress=False."
            ) from None
        return _NoBar()
    delay = 0.0 if progress or total > PROGRESS_MIN_FILES else PROGRESS_DELAY
    bar: _Bar = tqdm(total=total, unit="file", desc="virtualizing", delay=delay)
    return bar
