"""Source identity: detect references whose source files changed after virtualizing.

When a file is virtualized, its *identity* is recorded beside its path in the chunk
manifest's path table (:attr:`ChunkManifest.sources`): the size plus the modification
time in nanoseconds for local files, or the size plus the ETag (or last-modified stamp)
for remote objects. Writers keep these records (kerchunk: ``"virtualizarr": {"sources":
...}``, which fsspec ignores; manifest stores: ``sources.json`` beside ``zarr.json``), and
``engine="virtualizarr"`` compares them with the files before returning any byte
(:func:`check_sources`), raising :class:`~virtualizarr.errors.StaleReferenceError` naming
every changed or missing source. :func:`virtualizarr.verify` does the same check on demand
and returns a :class:`VerifyReport`.

An identity token is compact JSON with sorted keys, e.g. ``{"mtime_ns":17...,"size":800}``
or ``{"etag":"9b2c...","size":800}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import xarray as xr

from virtualizarr.errors import InvalidReferencesError, SourceNotFoundError, StaleReferenceError
from virtualizarr.io.objects import Location
from virtualizarr.manifests import ChunkManifest, ManifestArray

__all__ = [
    "VerifyReport",
    "check_sources",
    "current_identity",
    "dataset_sources",
    "describe_change",
    "group_sources",
    "identity_from_token",
    "identity_token",
]


def identity_token(identity: Mapping[str, Any]) -> str:
    """The compact JSON token for an identity mapping (sorted keys).

    Parameters
    ----------
    identity : mapping
        ``{"size": int, "mtime_ns": int}`` or ``{"size": int, "etag": str}`` ...

    Returns
    -------
    str

    Examples
    --------
    >>> identity_token({"size": 3, "mtime_ns": 7})
    '{"mtime_ns":7,"size":3}'
    """
    return json.dumps(dict(identity), sort_keys=True, separators=(",", ":"))


def identity_from_token(token: str) -> dict[str, Any]:
    """The identity mapping a token encodes.

    Parameters
    ----------
    token : str

    Returns
    -------
    dict

    Examples
    --------
    >>> identity_from_token('{"mtime_ns":7,"size":3}')
    {'mtime_ns': 7, 'size': 3}
    """
    try:
        out = json.loads(token)
    except ValueError:
        out = None
    if not isinstance(out, dict):
        raise InvalidReferencesError(
            "a source identity recorded in references is a JSON object such as "
            f'\'{{"size": 3, "mtime_ns": 7}}\'; found {token[:200]!r}. The references are '
            "damaged: re-create them, or open them with verify_sources=False to skip the check."
        )
    return out


def current_identity(location: Location) -> str:
    """The identity token of a source as it is now.

    Parameters
    ----------
    location : Location

    Returns
    -------
    str

    Raises
    ------
    SourceNotFoundError
        If the source does not exist.
    """
    return identity_token(location.info())


def _differs(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> bool:
    """True if any stamp both identities carry disagrees."""
    common = set(recorded) & set(now)
    return not common or any(recorded[k] != now[k] for k in common)


def _stamp(key: str, value: Any) -> str:
    if key == "size":
        return f"{value:,} bytes" if isinstance(value, int) else str(value)
    if key == "mtime_ns" and isinstance(value, int):
        when = datetime.fromtimestamp(value / 1e9, tz=UTC)
        return when.isoformat(sep=" ", timespec="milliseconds").replace("+00:00", " UTC")
    return str(value)


def describe_change(recorded: Mapping[str, Any], now: Mapping[str, Any]) -> str:
    """What differs between two identities, in words.

    Parameters
    ----------
    recorded, now : mapping
        Identity mappings (``{"size": ..., "mtime_ns": ...}`` or with ``"etag"``).

    Returns
    -------
    str

    Examples
    --------
    >>> describe_change({"size": 800, "etag": "a"}, {"size": 812, "etag": "b"})
    'size 800 bytes -> 812 bytes; etag a -> b'
    """
    names = {"mtime_ns": "modified", "mtime": "modified"}
    common = [k for k in recorded if k in now]
    if not common:
        return (
            f"recorded {sorted(recorded)} and found {sorted(now)} share no stamp to compare "
            "(a different storage service?)"
        )
    parts = [
        f"{names.get(k, k)} {_stamp(k, recorded[k])} -> {_stamp(k, now[k])}"
        for k in common
        if recorded[k] != now[k]
    ]
    return "; ".join(parts) or "unchanged"


def group_sources(manifests: Iterable[ChunkManifest]) -> dict[str, str | None]:
    """Recorded identity per path across manifests (``None`` when nothing was recorded).

    Parameters
    ----------
    manifests : iterable of ChunkManifest

    Returns
    -------
    dict of str to str or None
    """
    out: dict[str, str | None] = {}
    for m in manifests:
        for p, s in zip(m.paths, m.sources, strict=True):
            out[p] = out.get(p) or s
    return out


def dataset_sources(ds: xr.Dataset) -> dict[str, dict[str, Any]]:
    """The recorded identities of a virtual dataset's sources, for writers.

    Parameters
    ----------
    ds : xarray.Dataset
        A virtual dataset.

    Returns
    -------
    dict
        Path (as the manifests hold it) -> identity mapping; sources without a recorded
        identity are left out.
    """
    manifests = [
        v.data.manifest for v in ds.variables.values() if isinstance(v.data, ManifestArray)
    ]
    return {p: identity_from_token(s) for p, s in group_sources(manifests).items() if s}


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """What :func:`verify` found.

    Attributes
    ----------
    checked : tuple of str
        Sources whose identity was recorded and compared.
    changed : dict
        Source -> ``(recorded, found)`` identity mappings, for sources that changed.
    missing : tuple of str
        Sources that no longer exist.
    unrecorded : tuple of str
        Sources referenced without a recorded identity (not checked).
    """

    checked: tuple[str, ...] = ()
    changed: dict[str, tuple[dict[str, Any], dict[str, Any]]] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    unrecorded: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True if no checked source changed or went missing."""
        return not self.changed and not self.missing

    @property
    def stale(self) -> tuple[str, ...]:
        """Every changed or missing source."""
        return (*self.changed, *self.missing)

    def raise_if_stale(self) -> None:
        """Raise :class:`StaleReferenceError` naming stale sources, if any.

        Raises
        ------
        StaleReferenceError
        """
        if self.ok:
            return
        lines = [f"  {u}: {describe_change(a, b)}" for u, (a, b) in self.changed.items()]
        lines += [f"  {u}: missing" for u in self.missing]
        raise StaleReferenceError(
            f"{len(self.stale)} referenced source(s) changed or disappeared after they were "
            "virtualized, so their chunk references may point at the wrong bytes:\n"
            + "\n".join(lines)
            + "\nRe-virtualize them (open_virtual_dataset) and rewrite the references; pass "
            "verify_sources=False to xr.open_dataset to read anyway."
        )


def check_sources(
    sources: Mapping[str, str | None],
    storage_options: Mapping[str, Any] | None = None,
    *,
    max_workers: int = 16,
) -> VerifyReport:
    """Compare recorded identities with the sources as they are now.

    Parameters
    ----------
    sources : mapping of str to str or None
        Path -> recorded identity token (as :func:`group_sources` returns).
    storage_options : mapping, optional
        For remote sources.
    max_workers : int
        Sources stat-ed concurrently (remote ``HEAD`` requests).

    Returns
    -------
    VerifyReport
    """
    recorded = {p: s for p, s in sources.items() if s}
    unrecorded = tuple(sorted(p for p, s in sources.items() if not s))

    def probe(url: str) -> dict[str, Any] | None:
        try:
            return Location(url, storage_options).info()
        except SourceNotFoundError:
            return None

    urls = sorted(recorded)
    if len(urls) > 1 and not all(Location(u).is_local for u in urls):
        # remote HEAD requests wait on the network: overlap them (a local stat takes
        # microseconds, less than starting a thread)
        with ThreadPoolExecutor(min(max_workers, len(urls))) as pool:
            found = list(pool.map(probe, urls))
    else:
        found = [probe(u) for u in urls]
    changed: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {}
    missing: list[str] = []
    for url, now in zip(urls, found, strict=True):
        if now is None:
            missing.append(url)
            continue
        then = identity_from_token(str(recorded[url]))
        if _differs(then, now):
            changed[url] = (then, now)
    return VerifyReport(tuple(urls), changed, tuple(missing), unrecorded)
