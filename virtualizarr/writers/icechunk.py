"""Write virtual datasets into an Icechunk repository (a session's ``IcechunkStore``).

Every node's ``zarr.json`` is written as a document (Zarr v3 metadata from the manifests,
attributes encoded by :mod:`virtualizarr.formats.attrs`, plus the ``"virtualizarr"``
extension field with the attribute-type record, which Zarr readers ignore). Virtual
variables become virtual chunk references, set per array with Icechunk's columnar
``set_virtual_refs_arr``: one call per run of chunks that share a source checksum, so no
Python object is made per chunk. Loaded variables and inline chunks become native chunks.

Source identity becomes Icechunk's checksum: the ETag of a remote object, or the
modification time of a local file (rounded *up* to the whole second, the resolution
Icechunk keeps), so Icechunk itself refuses to serve bytes from a source that changed.

Nothing is written before every check has passed (store, session, group, containers,
append compatibility); see :mod:`virtualizarr.writers.icechunk_plan` for the checks and
the plan they produce.
"""

from __future__ import annotations

import asyncio
import math
import posixpath
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import PurePosixPath
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import numpy as np
import numpy.typing as npt
import xarray as xr

from virtualizarr.errors import (
    InvalidArgumentError,
    MissingDependencyError,
    OutputWriteError,
    UnsupportedFeatureError,
)
from virtualizarr.formats.attrs import dumps
from virtualizarr.io.uri import is_local, is_relative, local_path, to_uri
from virtualizarr.manifests.chunk_codecs import register_zarr_codecs
from virtualizarr.manifests.manifest import ChunkManifest
from virtualizarr.writers.icechunk_plan import Plan, RefCall, plan_write

if TYPE_CHECKING:
    from icechunk import IcechunkStore

__all__ = [
    "common_directory",
    "dataset_to_icechunk",
    "datatree_to_icechunk",
    "icechunk_checksum",
    "icechunk_url",
    "import_icechunk",
]

Checksum = datetime | str | None


def import_icechunk() -> ModuleType:
    """The ``icechunk`` module, or our error saying how to install it.

    Raises
    ------
    MissingDependencyError
        If icechunk is not installed.
    """
    try:
        import icechunk
    except ImportError:
        raise MissingDependencyError(
            "writing to Icechunk needs the icechunk package; install it with "
            "`pip install icechunk` (or virtualizarr[icechunk])."
        ) from None
    return icechunk


# ---------------------------------------------------------------------- sources
_URL_SAFE = "/:@!$&'()*+,;=-._~"


def icechunk_url(path: str) -> str:
    """A manifest path as the URL Icechunk reads: absolute, reserved characters escaped.

    Icechunk takes a virtual chunk's location as a URL whose path is the object key, so a
    ``?``, ``#``, ``%`` or space that is part of a key must be percent-encoded. Local paths
    become ``file://`` URIs (percent-encoded, as :func:`~virtualizarr.io.uri.to_uri` makes
    them); remote URLs keep their scheme and host and get their key escaped.

    Parameters
    ----------
    path : str
        A path from a chunk manifest.

    Returns
    -------
    str

    Raises
    ------
    UnsupportedFeatureError
        If the path is relative (Icechunk holds absolute URLs only).

    Examples
    --------
    >>> icechunk_url("s3://bucket/a b#1.nc")
    's3://bucket/a%20b%231.nc'
    >>> icechunk_url("/data/a.nc")
    'file:///data/a.nc'
    """
    if is_relative(path):
        raise UnsupportedFeatureError(
            f"Icechunk holds absolute chunk URLs only; found the relative path {path!r}. "
            "Make it absolute first: ds.virtualize.rename_paths(lambda p: ...)."
        )
    if is_local(path):
        local = local_path(path)
        if local.startswith("/"):  # manifests hold absolute paths: no need to resolve them
            return PurePosixPath(posixpath.normpath(local)).as_uri()
        return to_uri(local)
    parts = urlsplit(path)
    key = path[len(parts.scheme) + 3 + len(parts.netloc) :]
    return f"{parts.scheme}://{parts.netloc}{quote(key, safe=_URL_SAFE)}"


def _ceil_second(ts: datetime) -> datetime:
    if ts.tzinfo is None:
        ts = ts.replace(tzinfo=UTC)
    whole = ts.replace(microsecond=0)
    return whole if whole == ts else datetime.fromtimestamp(whole.timestamp() + 1, tz=UTC)


def icechunk_checksum(identity: Mapping[str, Any] | None) -> Checksum:
    """Icechunk's checksum for a recorded source identity (:mod:`virtualizarr.identity`).

    An ETag is passed as is; a local file's ``mtime_ns`` (or a remote ``mtime`` stamp)
    becomes a UTC datetime rounded up to the whole second: Icechunk keeps seconds and
    refuses a chunk whose object was modified after the checksum time.

    Parameters
    ----------
    identity : mapping, optional
        ``{"size", "etag"}``, ``{"size", "mtime_ns"}`` or ``{"size", "mtime"}``.

    Returns
    -------
    datetime, str or None
        None when the identity has no usable stamp.

    Examples
    --------
    >>> icechunk_checksum({"size": 3, "etag": "9b2c"})
    '9b2c'
    >>> icechunk_checksum({"size": 3, "mtime_ns": 1_500_000_000_100_000_000})
    datetime.datetime(2017, 7, 14, 2, 40, 1, tzinfo=datetime.timezone.utc)
    """
    if not identity:
        return None
    etag = identity.get("etag")
    if isinstance(etag, str) and etag:
        return etag
    ns = identity.get("mtime_ns")
    if isinstance(ns, int):
        return datetime.fromtimestamp(-(-ns // 10**9), tz=UTC)
    stamp = identity.get("mtime")
    if isinstance(stamp, int | float) and math.isfinite(stamp):
        return datetime.fromtimestamp(math.ceil(stamp), tz=UTC)
    if isinstance(stamp, str):
        for parse in (datetime.fromisoformat, parsedate_to_datetime):
            try:
                return _ceil_second(parse(stamp))
            except (TypeError, ValueError):
                continue
    return None


# ---------------------------------------------------------------------- the store
def _check_store(ic: ModuleType, store: Any) -> None:
    if not isinstance(store, ic.IcechunkStore):
        raise InvalidArgumentError(
            "to_icechunk writes into an icechunk.IcechunkStore (session.store of a writable "
            f"session); found {type(store).__module__}.{type(store).__qualname__}. Open one "
            'with repo = icechunk.Repository.open(...); session = repo.writable_session("main"); '
            "then pass session.store."
        )
    session = store.session
    if store.read_only or session.read_only:
        raise InvalidArgumentError(
            "to_icechunk needs a writable session; this store belongs to a read-only session "
            f"(snapshot {session.snapshot_id}). Use repo.writable_session(branch) instead of "
            "readonly_session(...)."
        )


def _containers(store: Any) -> list[str]:
    cfg = store.session.config
    found = cfg.virtual_chunk_containers or {}
    return [str(c.url_prefix) for c in found.values()]


_STORE_HINT = {
    "s3": 'icechunk.s3_store(region="...")',
    "gs": "icechunk.gcs_store()",
    "gcs": "icechunk.gcs_store()",
    "az": 'icechunk.azure_store(account="...")',
    "abfs": 'icechunk.azure_store(account="...")',
    "http": "icechunk.http_store()",
    "https": "icechunk.http_store()",
}


def common_directory(urls: Sequence[str]) -> str:
    """The deepest local directory holding every ``file://`` URL of ``urls``, with a
    trailing ``/`` (a virtual chunk container's prefix for local sources).

    Parameters
    ----------
    urls : sequence of str
        ``file://`` URLs (others are ignored; at least one must be local).

    Returns
    -------
    str
        A local path ending in ``/``.

    Examples
    --------
    >>> common_directory(["file:///data/a/x.nc", "file:///data/b/y.nc"])
    '/data/'
    """
    dirs = [local_path(u).rsplit("/", 1)[0] for u in urls if u.startswith("file://")]
    common = dirs[0]
    for d in dirs[1:]:
        while common and not (d == common or d.startswith(common + "/")):
            common = common.rsplit("/", 1)[0]
    return (common or "") + "/"


def _suggested_prefix(urls: list[str]) -> tuple[str, str]:
    """The container prefix and store expression that would hold ``urls``."""
    first = urlsplit(urls[0])
    if first.scheme == "file":
        common = common_directory(urls)
        return to_uri(common).rstrip("/") + "/", f'icechunk.local_filesystem_store("{common}")'
    prefix = f"{first.scheme}://{first.netloc}/"
    return prefix, _STORE_HINT.get(first.scheme, "icechunk.<store>(...)")


def check_containers(store: Any, urls: list[str]) -> None:
    """Raise unless the repository has a virtual chunk container for every URL.

    Parameters
    ----------
    store : icechunk.IcechunkStore
    urls : list of str
        Chunk URLs as Icechunk will receive them (:func:`icechunk_url`).

    Raises
    ------
    UnsupportedFeatureError
        Naming the URL prefix without a container and the line of config that adds one.
    """
    prefixes = _containers(store)
    missing = [u for u in urls if not any(u.startswith(p) for p in prefixes)]
    if not missing:
        return
    prefix, expr = _suggested_prefix(missing)
    shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
    raise UnsupportedFeatureError(
        f"the repository has no virtual chunk container for {prefix!r} (sources {shown}); "
        f"its containers are {prefixes or 'none'}. Icechunk would refuse these references. "
        "Add one to the repository config and reopen the repository with it:\n"
        f'    config.set_virtual_chunk_container(icechunk.VirtualChunkContainer("{prefix}", '
        f"{expr}))\n"
        "(readers then pass authorize_virtual_chunk_access={" + repr(prefix) + ": ...} to "
        "Repository.open), or pass validate_containers=False to write them anyway."
    )


# ---------------------------------------------------------------------- writing
def _ref_calls(
    path: str,
    manifest: ChunkManifest,
    urls: list[str],
    sums: list[Checksum],
    arr_offset: tuple[int, ...],
) -> list[RefCall]:
    """The ``set_virtual_refs_arr`` calls for one array.

    Icechunk takes one checksum per call, so chunks are grouped by their source's
    checksum (files written in the same second share one): a group that fills a box of
    the chunk grid (a run of files along time) is one call; otherwise each of its sources
    is a call of its own, over the box that bounds it. A whole array is one call when all
    its sources share a checksum.
    """
    ids = manifest.path_ids
    grid = ids.shape
    flat = ids.reshape(-1)
    present = np.flatnonzero(flat >= 0)
    if present.size == 0:
        return []
    offsets = manifest.offsets.reshape(-1)
    lengths = manifest.lengths.reshape(-1)
    table = np.asarray([*urls, ""], dtype=object)
    groups: dict[str, int] = {}
    group_of = np.asarray([groups.setdefault(_key(c), len(groups)) for c in sums], dtype=np.intp)
    pids = flat[present]
    if not grid or np.unique(group_of[pids]).size == 1:
        locs = table[np.where(flat >= 0, flat, len(urls))].tolist()
        return [RefCall(path, grid, locs, offsets, lengths, arr_offset, sums[int(pids[0])])]
    calls: list[RefCall] = []
    for cells in _runs(present, group_of[pids]):
        box = _bounds(cells, grid)
        if math.prod(h - lo for lo, h in box) == cells.size:  # the group fills a box
            locs = table[flat[cells]].tolist()
            checksum = sums[int(flat[cells[0]])]
            calls.append(
                _call(path, box, arr_offset, locs, offsets[cells], lengths[cells], checksum)
            )
            continue
        for one in _runs(cells, flat[cells]):  # each source of the group on its own
            pid = int(flat[one[0]])
            box = _bounds(one, grid)
            if math.prod(h - lo for lo, h in box) == one.size:
                locs = [urls[pid]] * one.size
                calls.append(
                    _call(path, box, arr_offset, locs, offsets[one], lengths[one], sums[pid])
                )
                continue
            region = tuple(slice(lo, h) for lo, h in box)
            locs = np.where(ids[region].reshape(-1) == pid, urls[pid], "").tolist()
            offs = manifest.offsets[region].reshape(-1)
            lens = manifest.lengths[region].reshape(-1)
            calls.append(_call(path, box, arr_offset, locs, offs, lens, sums[pid]))
    return calls


def _runs(cells: npt.NDArray[np.intp], keys: npt.NDArray[Any]) -> list[npt.NDArray[np.intp]]:
    """``cells`` split by ``keys``, each part in the cells' (C) order."""
    order = np.argsort(keys, kind="stable")
    bounds = np.flatnonzero(np.diff(keys[order])) + 1
    return np.split(cells[order], bounds)


def _bounds(cells: npt.NDArray[np.intp], grid: tuple[int, ...]) -> list[tuple[int, int]]:
    """The ``(start, stop)`` per axis of the box of the grid that bounds ``cells``."""
    return [(int(c.min()), int(c.max()) + 1) for c in np.unravel_index(cells, grid)]


def _call(
    path: str,
    box: list[tuple[int, int]],
    arr_offset: tuple[int, ...],
    locations: list[str],
    offsets: npt.NDArray[np.uint64],
    lengths: npt.NDArray[np.uint64],
    checksum: Checksum,
) -> RefCall:
    shape = tuple(h - lo for lo, h in box)
    start = tuple(a + lo for a, (lo, _) in zip(arr_offset, box, strict=True))
    return RefCall(path, shape, locations, offsets, lengths, start, checksum)


def _key(c: Checksum) -> str:
    return repr(c)


async def _put_all(store: Any, docs: Mapping[str, bytes]) -> None:
    from zarr.core.buffer.cpu import Buffer

    await asyncio.gather(*(store.set(k, Buffer.from_bytes(v)) for k, v in docs.items()))


def _ref_calls_of(plan: Plan, last_updated_at: datetime | None) -> tuple[list[RefCall], list[str]]:
    """Every ``set_virtual_refs_arr`` call of a plan, and the distinct URLs they use."""
    sums_by_path = {p: icechunk_checksum(ident) for p, ident in plan.sources.items()}
    url_cache: dict[str, str] = {}
    calls: list[RefCall] = []
    used: set[str] = set()
    for path, manifest, offset in plan.virtual:
        for p in manifest.paths:
            if p not in url_cache:
                url_cache[p] = icechunk_url(p)
        urls = [url_cache[p] for p in manifest.paths]
        if last_updated_at is not None:
            sums: list[Checksum] = [last_updated_at] * len(urls)
        else:
            sums = [sums_by_path.get(p) for p in manifest.paths]
        calls.extend(_ref_calls(path, manifest, urls, sums, offset))
        used.update(url_cache[p] for p in manifest.referenced_paths())
    return calls, sorted(used)


def _execute(store: Any, plan: Plan, calls: list[RefCall], validate_containers: bool) -> None:
    import zarr
    from zarr.core.sync import sync

    for key in plan.deletes:
        sync(store.delete_dir(key))
    sync(_put_all(store, {k: dumps(doc) for k, doc in plan.documents.items()}))
    sync(_put_all(store, plan.chunks))
    for call in calls:
        failed = store.set_virtual_refs_arr(
            call.path,
            call.grid,
            call.locations,
            np.ascontiguousarray(call.offsets, dtype=np.uint64),
            np.ascontiguousarray(call.lengths, dtype=np.uint64),
            validate_containers=validate_containers,
            arr_offset=call.arr_offset if any(call.arr_offset) else None,
            checksum=call.checksum,
        )
        if failed:
            raise UnsupportedFeatureError(
                f"Icechunk refused {len(failed)} virtual reference(s) of array {call.path!r} "
                f"(chunks {failed[:5]}): their URLs match no virtual chunk container of the "
                "repository."
            )
    for path, region, values in plan.regions:
        zarr.open_array(store, path=path, mode="r+")[region] = values


def dataset_to_icechunk(
    ds: xr.Dataset,
    store: IcechunkStore,
    *,
    group: str | None = None,
    append_dim: str | None = None,
    validate_containers: bool = True,
    last_updated_at: datetime | None = None,
    mode: str = "w-",
) -> None:
    """Write a virtual dataset into an Icechunk session (the caller commits).

    Parameters
    ----------
    ds : xarray.Dataset
        A virtual dataset.
    store : icechunk.IcechunkStore
        ``session.store`` of a writable session.
    group, append_dim, validate_containers, last_updated_at, mode
        See :meth:`~virtualizarr.accessor.VirtualiZarrDatasetAccessor.to_icechunk`.

    Raises
    ------
    MissingDependencyError
        If icechunk is not installed.
    InvalidArgumentError
        If ``store`` is not a writable Icechunk store, or an argument is wrong.
    OutputExistsError
        If the group holds nodes and ``mode="w-"`` (without ``append_dim``).
    IncompatibleArraysError
        If an append does not match what the group holds; nothing is written.
    UnsupportedFeatureError
        If a source has no virtual chunk container, or a path is relative.
    OutputWriteError
        If Icechunk refused a write; when the session had no other changes, they are
        discarded so the session is left as it was.
    """
    _write_nodes(
        [("", ds)],
        store,
        group=group,
        append_dim=append_dim,
        validate_containers=validate_containers,
        last_updated_at=last_updated_at,
        mode=mode,
        tree=False,
    )


def datatree_to_icechunk(
    nodes: Sequence[tuple[str, xr.Dataset]],
    store: IcechunkStore,
    *,
    group: str | None = None,
    append_dim: str | None = None,
    validate_containers: bool = True,
    last_updated_at: datetime | None = None,
    mode: str = "w-",
) -> None:
    """Write every node of a tree of virtual datasets into an Icechunk session.

    One plan for the whole tree is checked before anything is written, so a refusal
    leaves the session as it was.

    Parameters
    ----------
    nodes : sequence of (str, xarray.Dataset)
        Each node's path relative to the tree's root (``""`` for the root, ``"a/b"``)
        and its dataset without inherited coordinates, parents first.
    store : icechunk.IcechunkStore
        ``session.store`` of a writable session.
    group, append_dim, validate_containers, last_updated_at, mode
        See :meth:`~virtualizarr.accessor.VirtualiZarrDataTreeAccessor.to_icechunk`.

    Raises
    ------
    MissingDependencyError, InvalidArgumentError, OutputExistsError,
    IncompatibleArraysError, UnsupportedFeatureError, OutputWriteError
        As for :func:`dataset_to_icechunk`; an append also needs the stored tree to have
        the same groups.
    """
    _write_nodes(
        nodes,
        store,
        group=group,
        append_dim=append_dim,
        validate_containers=validate_containers,
        last_updated_at=last_updated_at,
        mode=mode,
        tree=True,
    )


def _write_nodes(
    nodes: Sequence[tuple[str, xr.Dataset]],
    store: Any,
    *,
    group: str | None,
    append_dim: str | None,
    validate_containers: bool,
    last_updated_at: datetime | None,
    mode: str,
    tree: bool,
) -> None:
    ic = import_icechunk()
    _check_store(ic, store)
    import zarr  # icechunk's store is a zarr store: zarr is imported with it anyway
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    register_zarr_codecs()  # zarr reads what we write: it must know our codec names

    if mode not in ("w-", "w"):
        raise InvalidArgumentError(f"mode must be 'w-' or 'w'; found {mode!r}.")
    if not isinstance(validate_containers, bool):
        raise InvalidArgumentError(
            f"validate_containers must be True or False; found {validate_containers!r}."
        )
    if last_updated_at is not None and not isinstance(last_updated_at, datetime):
        raise InvalidArgumentError(
            "last_updated_at must be a datetime.datetime (the time the sources were last "
            f"changed); found {type(last_updated_at).__name__}."
        )

    def read(key: str) -> bytes | None:
        buf = sync(store.get(key, prototype=default_buffer_prototype()))
        return None if buf is None else bytes(buf.to_bytes())

    def children(prefix: str) -> list[str]:
        async def collect() -> list[str]:
            return [k async for k in store.list_dir(prefix)]

        return sync(collect())

    def values_of(path: str) -> Any:
        return np.asarray(zarr.open_array(store, path=path, mode="r")[...])

    plan = plan_write(
        nodes,
        group=group,
        append_dim=append_dim,
        mode=mode,
        read=read,
        children=children,
        values_of=values_of,
        tree=tree,
    )
    calls, urls = _ref_calls_of(plan, last_updated_at)
    if validate_containers:
        check_containers(store, urls)
    session = store.session
    clean = not session.has_uncommitted_changes
    try:
        _execute(store, plan, calls, validate_containers)
    except (UnsupportedFeatureError, ic.IcechunkError, ValueError, TypeError, OSError) as e:
        if clean:
            session.discard_changes()
        if isinstance(e, UnsupportedFeatureError):
            raise
        raise OutputWriteError(
            f"Icechunk refused the write of group {group or '/'!r}: {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}. "
            + (
                "The session's changes were discarded."
                if clean
                else "The session had other uncommitted changes and now holds a partial "
                "write: discard it (session.discard_changes()) rather than commit."
            )
        ) from e
