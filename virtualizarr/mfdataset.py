"""``open_virtual_mfdataset``: many files into one virtual dataset.

Files are scanned concurrently (threads by default; processes, a dask cluster or any
:class:`concurrent.futures.Executor` on request), then combined with xarray's own public
combining functions, :func:`xarray.combine_by_coords` or :func:`xarray.combine_nested`.
Combining virtual variables concatenates their chunk manifests; files whose lengths
along the concatenation dimension differ produce a rectilinear chunk grid.
"""

from __future__ import annotations

import concurrent.futures as cf
import glob
import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, Literal, NoReturn, Protocol

import xarray as xr

from virtualizarr.api import open_virtual_dataset
from virtualizarr.errors import (
    IncompatibleArraysError,
    InvalidArgumentError,
    MissingDependencyError,
    SourceNotFoundError,
    VirtualiZarrError,
)
from virtualizarr.io.objects import Location
from virtualizarr.io.uri import is_local
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.combine import decoding_codecs, values_equal

__all__ = ["open_virtual_mfdataset"]

type PathLike = str | os.PathLike[str]
type NestedPaths = PathLike | Sequence[NestedPaths]
type Parallel = bool | Literal["threads", "processes", "dask"] | cf.Executor

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


def open_virtual_mfdataset(
    paths: str | os.PathLike[str] | Sequence[NestedPaths],
    *,
    concat_dim: str | Sequence[str | None] | None = None,
    compat: str = "override",
    preprocess: Callable[[xr.Dataset], xr.Dataset] | None = None,
    data_vars: Literal["all", "minimal", "different"] | list[str] | None = None,
    coords: Literal["all", "minimal", "different"] | list[str] = "minimal",
    combine: Literal["by_coords", "nested"] = "by_coords",
    parallel: Parallel = True,
    join: Literal["outer", "inner", "left", "right", "exact", "override"] = "exact",
    attrs_file: str | os.PathLike[str] | None = None,
    combine_attrs: str = "override",
    progress: bool | None = None,
    **kwargs: Any,
) -> xr.Dataset:
    """Open many files as one virtual dataset.

    Each file is opened with :func:`~virtualizarr.open_virtual_dataset` (receiving
    ``**kwargs``), optionally passed through ``preprocess``, and the results are combined
    with :func:`xarray.combine_by_coords` or :func:`xarray.combine_nested`, as
    :func:`xarray.open_mfdataset` does. No data is read: virtual variables concatenate
    their chunk manifests.

    The parameters shared with :func:`xarray.open_mfdataset` keep their names and meaning.
    Four defaults differ, because comparing or aligning virtual variables would need their
    values: ``compat="override"`` (non-concatenated variables are taken from the first
    file), ``data_vars=None`` and ``coords="minimal"`` (only variables that have the
    concatenation dimension are concatenated, or every data variable when concatenating
    along a new dimension), and ``join="exact"`` (indexes that differ off the
    concatenation dimension raise instead of being reindexed). These are xarray's
    announced future defaults. Pass xarray's current defaults
    (``compat="no_conflicts"``, ``data_vars="all"``, ``coords="different"``,
    ``join="outer"``) explicitly if loaded variables need them.

    Parameters
    ----------
    paths : str, path-like, or (nested) sequence of them
        A glob pattern (expanded and sorted, as xarray does), one path, a list of paths,
        or, with ``combine="nested"``, a nested list whose depth matches ``concat_dim``.
    concat_dim : str or sequence of (str or None), optional
        With ``combine="nested"`` (where it is required), the dimension(s) to concatenate
        along, one per nesting level; ``None`` in a level merges instead. Ignored by
        ``combine="by_coords"``, which infers it from the dimension coordinates' values.
    compat : str, default "override"
        How variables that are not concatenated are compared across files (xarray's
        ``compat``).
    preprocess : callable, optional
        Applied to each virtual dataset before combining (in this process, so it need not
        be picklable).
    data_vars : {"minimal", "different", "all", None} or list of str, default None
        Which data variables to concatenate (xarray's ``data_vars``). ``None`` means
        ``"minimal"`` along an existing dimension and ``"all"`` along a new one.
    coords : {"minimal", "different", "all"} or list of str, default "minimal"
        Which coordinates to concatenate (xarray's ``coords``).
    combine : {"by_coords", "nested"}, default "by_coords"
        Combine by the values of the loaded dimension coordinates (which must then be
        loaded: the default ``loadable_variables`` does that) or by the order of ``paths``.
    parallel : bool, {"threads", "processes", "dask"} or concurrent.futures.Executor
        How files are scanned. ``True`` (default) chooses: a thread pool for remote
        files (requests wait on the network, so they overlap); for 64 or more local files
        on Linux, a process pool started by ``fork()`` when this process runs no other
        thread; and otherwise scanning in this process (local scanning is CPU-bound Python
        under the GIL and h5py's global lock: measured on two cores, a thread pool was
        1.75x *slower* than serial scanning, forked processes about 1.2x faster; see
        ``benchmarks/README.md``).
        ``False`` scans one after another; ``"threads"`` uses a thread pool (useful for
        remote files, where requests wait on the network); ``"processes"`` uses a process
        pool, forked when that is safe as above, else started from a fork server (scripts
        then need the ``if __name__ == "__main__":`` guard);
        ``"dask"`` uses the active ``dask.distributed`` client (so the cluster does the
        scanning) and otherwise dask's default scheduler; an executor instance is used as
        given (and not shut down). Results from other processes come back pickled.
    join : {"exact", "outer", "inner", "left", "right", "override"}, default "exact"
        How indexes off the concatenation dimension are aligned (xarray's ``join``).
    attrs_file : str or path-like, optional
        Take the global attributes from this file (one of ``paths``) rather than
        according to ``combine_attrs``.
    combine_attrs : str, default "override"
        How attributes are combined (xarray's ``combine_attrs``; ``"override"`` keeps the
        first file's, as :func:`xarray.open_mfdataset` does).
    progress : bool, optional
        Show a progress bar (needs ``tqdm``). ``None`` (default) shows it on a terminal
        only (not in logs or CI, as tqdm does), for more than 50 files or once scanning
        has taken 2 seconds; ``True`` always; ``False`` never.
    **kwargs
        Passed to :func:`~virtualizarr.open_virtual_dataset` for every file
        (``loadable_variables``, ``drop_variables``, ``filetype``, ``group``,
        ``storage_options``...). A remote glob (``"s3://bucket/dir/*.nc"``) is expanded
        with fsspec using ``storage_options``.

    Returns
    -------
    xarray.Dataset
        One virtual dataset.

    Raises
    ------
    SourceNotFoundError
        If a glob matches nothing, or ``paths`` is empty.
    IncompatibleArraysError
        If files disagree in a way that would change decoded values (dtype, codecs, fill
        value, ``scale_factor``...), naming a variable and the two files.
    VirtualiZarrError
        Any error from opening one file, with that file's path in the message.

    Examples
    --------
    >>> ds = open_virtual_mfdataset("data/air_*.nc", loadable_variables=["time", "lat", "lon"])
    ... # doctest: +SKIP
    >>> ds.virtualize.to_kerchunk("combined.json", format="json")  # doctest: +SKIP
    >>> ds = open_virtual_mfdataset(
    ...     [["a1.nc", "a2.nc"], ["b1.nc", "b2.nc"]],
    ...     combine="nested",
    ...     concat_dim=["ensemble", "time"],
    ... )  # doctest: +SKIP
    """
    nested = _expand_paths(paths, kwargs.get("storage_options"))
    flat = list(_flatten(nested))
    if not flat:
        raise SourceNotFoundError(f"no files to open: paths={paths!r} is empty or matches nothing.")
    if combine not in ("by_coords", "nested"):
        raise InvalidArgumentError(f"combine must be 'by_coords' or 'nested'; found {combine!r}.")
    if combine == "nested" and concat_dim is None:
        raise InvalidArgumentError(
            "combine='nested' needs concat_dim (the dimension(s) to concatenate along, one "
            "per nesting level of paths); or use combine='by_coords'."
        )

    datasets = _open_all(flat, parallel, progress, kwargs)
    if preprocess is not None:
        datasets = [preprocess(ds) for ds in datasets]

    combine_kw: dict[str, Any] = {
        "compat": compat,
        "data_vars": data_vars,
        "coords": coords,
        "join": join,
        "combine_attrs": "drop" if attrs_file is not None else combine_attrs,
    }
    try:
        if combine == "nested":
            it = iter(datasets)
            cube = _unflatten(nested, it)
            combined = xr.combine_nested(cube, concat_dim=concat_dim, **combine_kw)
        else:
            combined = xr.combine_by_coords(datasets, **combine_kw)
    except IncompatibleArraysError as e:
        named = _diagnose(e, flat, datasets)
        if named is e:
            raise
        raise named from e
    if not isinstance(combined, xr.Dataset):  # pragma: no cover - datasets in, dataset out
        raise TypeError(f"combining gave a {type(combined).__name__}, not a Dataset")
    if attrs_file is not None:
        wanted = _uri_key(attrs_file)
        idx = next((i for i, p in enumerate(flat) if _uri_key(p) == wanted), None)
        if idx is None:
            raise InvalidArgumentError(
                f"attrs_file={attrs_file!r} is not one of the files opened; pass one of "
                "the paths (or None to use combine_attrs)."
            )
        combined.attrs = dict(datasets[idx].attrs)
    return combined


# ---------------------------------------------------------------------- paths
def _expand_paths(
    paths: str | os.PathLike[str] | Sequence[NestedPaths],
    storage_options: Mapping[str, Any] | None = None,
) -> NestedPaths:
    if isinstance(paths, str) and glob.has_magic(paths):
        if "://" in paths and not paths.startswith("file://"):
            matches = Location(paths, storage_options).glob()  # remote: fsspec's glob
        else:
            matches = sorted(glob.glob(os.path.expanduser(paths.removeprefix("file://"))))
        if not matches:
            raise SourceNotFoundError(f"no files match the glob {paths!r}.")
        return matches
    if isinstance(paths, str | os.PathLike):
        return [paths]
    return paths


def _flatten(nested: NestedPaths) -> Iterator[PathLike]:
    if isinstance(nested, str | os.PathLike):
        yield nested
        return
    for item in nested:
        yield from _flatten(item)


def _unflatten(nested: NestedPaths, it: Iterator[xr.Dataset]) -> Any:
    if isinstance(nested, str | os.PathLike):
        return next(it)
    return [_unflatten(item, it) for item in nested]


def _uri_key(path: PathLike) -> str:
    p = os.fspath(path)
    return p if "://" in p else os.path.abspath(os.path.expanduser(p))


# ---------------------------------------------------------------------- opening
def _open_one(path: PathLike, kwargs: Mapping[str, Any]) -> xr.Dataset:
    """Open one file (module level so process pools and dask can pickle it)."""
    return open_virtual_dataset(path, **kwargs)


def _reraise_named(e: Exception, path: PathLike) -> NoReturn:
    """Re-raise the error from opening ``path`` so that it names that file."""
    p = os.fspath(path)
    if p in str(e) or _uri_key(p) in str(e):
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


def _open_all(
    paths: list[PathLike],
    parallel: Parallel,
    progress: bool | None,
    kwargs: Mapping[str, Any],
) -> list[xr.Dataset]:
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
                    out.append(_open_one(p, kwargs))
                except Exception as e:
                    _reraise_named(e, p)
                bar.update()
            return out
        if parallel == "dask":
            executor = _dask_executor()
            if executor is None:
                return _open_dask_local(paths, kwargs)
            return _run(executor, paths, kwargs, bar, shutdown=False)
        if isinstance(parallel, cf.Executor):
            return _run(parallel, paths, kwargs, bar, shutdown=False)
        if parallel == "threads":
            return _run(cf.ThreadPoolExecutor(), paths, kwargs, bar, shutdown=True)
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
            return _run(executor, paths, kwargs, bar, shutdown=True, workers=workers)
        raise InvalidArgumentError(
            "parallel must be True, False, 'threads', 'processes', 'dask' or a "
            f"concurrent.futures.Executor; found {parallel!r}."
        )
    finally:
        bar.close()


def _open_batch(paths: list[PathLike], kwargs: Mapping[str, Any]) -> list[xr.Dataset]:
    """Open several files in one task (fewer round trips to a process pool)."""
    out = []
    for p in paths:
        try:
            out.append(open_virtual_dataset(p, **kwargs))
        except Exception as e:
            _reraise_named(e, p)
    return out


BATCHES_PER_WORKER = 4
"""A process pool gets each worker's share of files in about this many tasks: one file per
task costs a round trip and a pickling each, while a few tasks per worker still balance
uneven files."""


def _run(
    executor: cf.Executor,
    paths: list[PathLike],
    kwargs: Mapping[str, Any],
    bar: _Bar,
    *,
    shutdown: bool,
    workers: int = 0,
) -> list[xr.Dataset]:
    """Open ``paths`` on ``executor``; with ``workers``, in batches for a process pool."""
    size = max(1, len(paths) // (workers * BATCHES_PER_WORKER)) if workers else 1
    batches = [paths[i : i + size] for i in range(0, len(paths), size)]
    futures: dict[cf.Future[list[xr.Dataset]], int] = {}
    results: list[list[xr.Dataset]] = [[] for _ in batches]
    try:
        for i, batch in enumerate(batches):
            futures[executor.submit(_open_batch, batch, dict(kwargs))] = i
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


def _open_dask_local(paths: list[PathLike], kwargs: Mapping[str, Any]) -> list[xr.Dataset]:
    try:
        from dask.base import compute
        from dask.delayed import delayed
    except ImportError:
        raise MissingDependencyError(
            "parallel='dask' needs dask; install it with `pip install dask distributed`, or "
            "choose parallel='threads'."
        ) from None
    tasks = [delayed(_open_one)(p, dict(kwargs)) for p in paths]
    # dask.base.compute is untyped; it returns one result per task
    results: tuple[xr.Dataset, ...] = compute(*tasks)  # type: ignore[no-untyped-call]
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


# ---------------------------------------------------------------------- diagnosis
def _diagnose(
    err: IncompatibleArraysError, paths: list[PathLike], datasets: list[xr.Dataset]
) -> IncompatibleArraysError:
    """Name the two files behind an incompatibility that combining found."""
    firsts: dict[Hashable, tuple[int, ManifestArray]] = {}
    for i, ds in enumerate(datasets):
        for name, var in ds.variables.items():
            arr = var.data
            if not isinstance(arr, ManifestArray):
                continue
            if name not in firsts:
                firsts[name] = (i, arr)
                continue
            j, ref = firsts[name]
            why = _difference(ref, arr)
            if why:
                return IncompatibleArraysError(
                    f"cannot combine variable {name!r}: {why} differs between "
                    f"{os.fspath(paths[j])} and {os.fspath(paths[i])} ({err})"
                )
    return err


def _difference(a: ManifestArray, b: ManifestArray) -> str | None:
    if a.dtype != b.dtype:
        return f"the dtype ({a.dtype} vs {b.dtype})"
    if decoding_codecs(a.metadata) != decoding_codecs(b.metadata):
        return "the codec pipeline"
    if not values_equal(a.metadata.fill_value, b.metadata.fill_value):
        return f"the fill value ({a.metadata.fill_value!r} vs {b.metadata.fill_value!r})"
    ea, eb = a.encoding_attrs, b.encoding_attrs
    for key in sorted(set(ea) | set(eb)):
        va, vb = ea.get(key, "<absent>"), eb.get(key, "<absent>")
        if not values_equal(va, vb):
            return f"the encoding attribute {key!r} ({va!r} vs {vb!r})"
    return None
