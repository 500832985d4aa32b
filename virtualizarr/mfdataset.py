"""``open_virtual_mfdataset``: many files into one virtual dataset.

Files are scanned concurrently (:mod:`virtualizarr.parallel`: threads, processes, a dask
cluster or any :class:`concurrent.futures.Executor`), then combined. A plain
concatenation along one existing dimension (``combine="nested"`` with one ``concat_dim``
and the default options) is done column-wise on the files' prepared groups before one
Dataset is built (:mod:`virtualizarr.fastconcat`); anything else is combined with
xarray's own functions, :func:`xarray.combine_nested` or :func:`xarray.combine_by_coords`,
which give the same result more slowly. Combining virtual variables concatenates their
chunk manifests; files whose lengths along the concatenation dimension differ produce a
rectilinear chunk grid.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, Literal

import xarray as xr

from virtualizarr.api import open_virtual_dataset, prepare_virtual_dataset
from virtualizarr.dataset import PreparedGroup, assemble
from virtualizarr.errors import IncompatibleArraysError, InvalidArgumentError, SourceNotFoundError
from virtualizarr.fastconcat import concat_prepared
from virtualizarr.io.objects import Location
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.combine import decoding_codecs, values_equal
from virtualizarr.migration import legacy_arguments
from virtualizarr.parallel import Parallel, PathLike, run_many, uri_key

__all__ = ["open_virtual_mfdataset"]

type NestedPaths = PathLike | Sequence[NestedPaths]


@legacy_arguments("paths", ("urls",))
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
        given (and not shut down), an executor class is instantiated for the call (as
        VirtualiZarr 2.x does). Results from other processes come back pickled.
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

    dim = _plain_concat_dim(
        nested,
        combine,
        concat_dim,
        preprocess,
        attrs_file,
        compat,
        coords,
        data_vars,
        combine_attrs,
    )
    if dim is not None:
        decode = {k: kwargs.pop(k) for k in ("decode_times", "mask_and_scale") if k in kwargs}
        groups: list[PreparedGroup] = run_many(
            prepare_virtual_dataset, flat, parallel, progress, kwargs
        )
        try:
            joined = concat_prepared(groups, dim)
        except IncompatibleArraysError:
            joined = None  # combined as Datasets below, which names the files
        if joined is not None:
            return assemble(joined, decode.get("decode_times"), decode.get("mask_and_scale"))
        datasets = [
            assemble(g, decode.get("decode_times"), decode.get("mask_and_scale")) for g in groups
        ]
    else:
        datasets = run_many(open_virtual_dataset, flat, parallel, progress, kwargs)
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
        wanted = uri_key(attrs_file)
        idx = next((i for i, p in enumerate(flat) if uri_key(p) == wanted), None)
        if idx is None:
            raise InvalidArgumentError(
                f"attrs_file={attrs_file!r} is not one of the files opened; pass one of "
                "the paths (or None to use combine_attrs)."
            )
        combined.attrs = dict(datasets[idx].attrs)
    return combined


def _plain_concat_dim(
    nested: NestedPaths,
    combine: str,
    concat_dim: str | Sequence[str | None] | None,
    preprocess: Callable[[xr.Dataset], xr.Dataset] | None,
    attrs_file: str | os.PathLike[str] | None,
    compat: str,
    coords: Any,
    data_vars: Any,
    combine_attrs: str,
) -> str | None:
    """The dimension of a plain concatenation the fast path can do, else None."""
    if combine != "nested" or preprocess is not None or attrs_file is not None:
        return None
    if compat != "override" or coords != "minimal" or combine_attrs != "override":
        return None
    if data_vars not in (None, "minimal"):
        return None
    dims = [concat_dim] if isinstance(concat_dim, str) else list(concat_dim or ())
    if len(dims) != 1 or not isinstance(dims[0], str):
        return None
    if isinstance(nested, str | os.PathLike) or not all(
        isinstance(p, str | os.PathLike) for p in nested
    ):
        return None  # a nested list of lists: several dimensions
    return dims[0]


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
                lead = f"cannot combine variable {name!r}: "
                detail = str(err).removeprefix(lead)  # said once, not twice
                return IncompatibleArraysError(
                    f"{lead}{why} differs between {os.fspath(paths[j])} and "
                    f"{os.fspath(paths[i])}. In detail: {detail}"
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
