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
from collections.abc import Mapping
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from types import ModuleType
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

import numpy as np
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

__all__ = ["dataset_to_icechunk", "icechunk_checksum", "icechunk_url"]

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
        return to_uri(local_path(path))
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


def _suggested_prefix(urls: list[str]) -> tuple[str, str]:
    """The container prefix and store expression that would hold ``urls``."""
    first = urlsplit(urls[0])
    if first.scheme == "file":
        dirs = [local_path(u).rsplit("/", 1)[0] for u in urls if u.startswith("file://")]
        common = dirs[0]
        for d in dirs[1:]:
            while common and not (d == common or d.startswith(common + "/")):
                common = common.rsplit("/", 1)[0]
        common = (common or "") + "/"
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
    """The ``set_virtual_refs_arr`` calls for one array: one per box of chunks sharing a
    checksum (a whole array when every source has the same one)."""
    ids = manifest.path_ids
    grid = ids.shape
    flat = ids.reshape(-1)
    present = np.flatnonzero(flat >= 0)
    if present.size == 0:
        return []
    offsets = manifest.offsets.reshape(-1)
    lengths = manifest.lengths.reshape(-1)
    used = np.unique(flat[present])
    if len({_key(sums[i]) for i in used.tolist()}) == 1 or not grid:
        table = np.asarray([*urls, ""], dtype=object)
        locs = table[np.where(flat >= 0, flat, len(urls))].tolist()
        return [RefCall(path, grid, locs, offsets, lengths, arr_offset, sums[int(used[0])])]
    calls = []
    order = present[np.argsort(flat[present], kind="stable")]
    bounds = np.flatnonzero(np.diff(flat[order])) + 1
    for cells in np.split(order, bounds):
        pid = int(flat[cells[0]])
        coords = np.unravel_index(cells, grid)
        lo = tuple(int(c.min()) for c in coords)
        hi = tuple(int(c.max()) + 1 for c in coords)
        box = tuple(h - low for low, h in zip(lo, hi, strict=True))
        start = tuple(a + b for a, b in zip(arr_offset, lo, strict=True))
        if math.prod(box) == cells.size:  # the source fills a box of the grid
            locs = [urls[pid]] * cells.size
            calls.append(RefCall(path, box, locs, offsets[cells], lengths[cells], start, sums[pid]))
            continue
        region = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
        sub = ids[region].reshape(-1)
        locs = np.where(sub == pid, urls[pid], "").tolist()
        offs = np.ascontiguousarray(manifest.offsets[region].reshape(-1))
        lens = np.ascontiguousarray(manifest.lengths[region].reshape(-1))
        calls.append(RefCall(path, box, locs, offs, lens, start, sums[pid]))
    return calls


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
        ids = manifest.path_ids
        used.update(urls[i] for i in np.unique(ids[ids >= 0]).tolist())
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
    group : str, optional
        The group to write (``"a/b"``); the root group by default. Missing parent groups
        are created.
    append_dim : str, optional
        Append along this existing dimension instead of writing a new group.
    validate_containers : bool, default True
        Refuse sources that no virtual chunk container of the repository covers.
    last_updated_at : datetime, optional
        One checksum time for every source, instead of each source's recorded identity.
    mode : {"w-", "w"}
        ``"w-"`` refuses a group that already holds arrays; ``"w"`` replaces it.

    Raises
    ------
    MissingDependencyError
        If icechunk is not installed.
    InvalidArgumentError
        If ``store`` is not a writable Icechunk store, or an argument is wrong.
    OutputExistsError
        If the group holds arrays and ``mode="w-"`` (without ``append_dim``).
    IncompatibleArraysError
        If an append does not match what the group holds; nothing is written.
    UnsupportedFeatureError
        If a source has no virtual chunk container, or a path is relative.
    OutputWriteError
        If Icechunk refused a write; when the session had no other changes, they are
        discarded so the session is left as it was.
    """
    ic = import_icechunk()
    _check_store(ic, store)
    import zarr  # icechunk's store is a zarr store: zarr is imported with it anyway
    from zarr.core.buffer import default_buffer_prototype
    from zarr.core.sync import sync

    register_zarr_codecs()  # zarr reads what we write: it must know our codec names

    if mode not in ("w-", "w"):
        raise InvalidArgumentError(f"mode must be 'w-' or 'w'; found {mode!r}.")
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
        ds,
        group=group,
        append_dim=append_dim,
        mode=mode,
        read=read,
        children=children,
        values_of=values_of,
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
