"""What a reference document may point at, and how large it may be.

A reference document (kerchunk JSON or Parquet, a Zarr manifest store) is a list of
*locations to read*: whoever writes one chooses which files and URLs the reader opens.
Reading a document from an untrusted place must therefore not let it reach local files,
cloud metadata endpoints or exotic fsspec protocols the caller never meant to expose, nor
exhaust memory with huge inline data or absurd nesting.

The reference readers call :func:`check_references` once per document, on the small path
tables of the manifests they produced (never per chunk). The policy comes from the
``allowed_sources=`` and ``limits=`` options of ``xr.open_dataset(...,
engine="virtualizarr")``, :func:`~virtualizarr.api.open_virtual_group` and
:func:`~virtualizarr.open_virtual_dataset`; see ``docs/security.md``.

Default policy (``allowed_sources=None``):

* references loaded from a **local** file (or an in-memory dict) may point at local files
  (``file://``) and at the remote protocols in :data:`DEFAULT_REMOTE_PROTOCOLS`;
* references loaded from a **remote** location may point at the remote protocols only --
  not at local files -- and not at loopback, link-local or private-network hosts other
  than their own host;
* any other protocol (``memory://``, ``ftp://``, ``data:``, ``zip::``...) is refused.
"""

from __future__ import annotations

import ipaddress
import os
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from virtualizarr.errors import UntrustedReferenceError
from virtualizarr.manifests.group import VirtualGroup

__all__ = [
    "DEFAULT_REMOTE_PROTOCOLS",
    "ReferenceLimits",
    "SourcePolicy",
    "check_document_size",
    "check_references",
    "normalize_source",
]

DEFAULT_REMOTE_PROTOCOLS: Final = frozenset(
    {"s3", "s3a", "gs", "gcs", "az", "abfs", "abfss", "http", "https"}
)
"""Remote protocols references may point at by default (object stores and HTTP)."""

_LOCAL_HOSTS: Final = ("", "localhost")


@dataclass(frozen=True, slots=True)
class ReferenceLimits:
    """Size limits on one reference document.

    Attributes
    ----------
    max_document_bytes : int
        Size of a JSON reference document (kerchunk JSON), in bytes. Default 2 GiB.
    max_references : int
        Chunks (referenced or inline) in the whole document. Default 100 million.
    max_inline_chunk_bytes : int
        Size of one inline chunk. Default 64 MiB.
    max_inline_total_bytes : int
        Size of all inline chunks together. Default 1 GiB.
    max_json_depth : int
        Nesting of attribute values (lists and objects within each other). Default 32.

    Examples
    --------
    >>> ReferenceLimits(max_references=1000).max_references
    1000
    """

    max_document_bytes: int = 2 << 30
    max_references: int = 100_000_000
    max_inline_chunk_bytes: int = 64 << 20
    max_inline_total_bytes: int = 1 << 30
    max_json_depth: int = 32


@dataclass(frozen=True, slots=True)
class SourcePolicy:
    """Which locations references may point at.

    Build one with :meth:`parse`; ``protocols`` and ``prefixes`` are normalized.

    Attributes
    ----------
    protocols : frozenset of str or None
        Protocols allowed anywhere (``"file"``, ``"s3"``...); None for the default policy.
    prefixes : tuple of str
        Normalized URL prefixes allowed (``"s3://bucket/data/"``).
    allow_all : bool
        True for ``allowed_sources="*"``: trust the document entirely.
    """

    protocols: frozenset[str] | None = None
    prefixes: tuple[str, ...] = ()
    allow_all: bool = False

    @classmethod
    def parse(cls, allowed_sources: str | Iterable[str] | SourcePolicy | None) -> SourcePolicy:
        """A policy from an ``allowed_sources=`` argument.

        Parameters
        ----------
        allowed_sources : str, iterable of str, SourcePolicy or None
            None for the default policy; ``"*"`` to allow everything; else protocols
            (``"file"``, ``"https"``) and URL prefixes (``"s3://bucket/data/"``,
            ``"/archive"``, ``"file:///archive/"``). A single string is one entry.

        Returns
        -------
        SourcePolicy

        Raises
        ------
        UntrustedReferenceError
            If an entry is neither a protocol name nor an absolute URL or path.

        Examples
        --------
        >>> SourcePolicy.parse(["s3", "/archive"]).prefixes
        ('file:///archive/',)
        """
        if isinstance(allowed_sources, SourcePolicy):
            return allowed_sources
        if allowed_sources is None:
            return cls()
        if isinstance(allowed_sources, str | os.PathLike):
            allowed_sources = [os.fspath(allowed_sources)]
        entries = [os.fspath(e) for e in allowed_sources]
        if "*" in entries:
            return cls(allow_all=True)
        protocols: set[str] = set()
        prefixes: list[str] = []
        for entry in entries:
            if not isinstance(entry, str) or not entry:
                raise _bad_option(entry)
            if entry.replace("-", "").replace("+", "").replace(".", "").isalnum():
                protocols.add(entry.lower())
                continue
            if not (entry.startswith("/") or "://" in entry or entry.startswith("file:")):
                raise _bad_option(entry)
            prefix = normalize_source(entry, None)
            prefixes.append(prefix if prefix.endswith("/") else prefix + "/")
        return cls(protocols=frozenset(protocols), prefixes=tuple(prefixes))


def _bad_option(entry: object) -> UntrustedReferenceError:
    return UntrustedReferenceError(
        f"allowed_sources entries must be protocol names ('file', 's3', 'https') or "
        f"absolute URL/path prefixes ('s3://bucket/data/', '/archive/'); found {entry!r}."
    )


def normalize_source(path: str, reference: str | None) -> str:
    """The canonical URL a reference path stands for, for checking against a policy.

    Percent-escapes are decoded, ``.`` and ``..`` segments resolved, the protocol
    lower-cased, plain and ``file:`` paths (with or without slashes) made ``file:///``
    URLs, and relative paths resolved against the directory of ``reference``.

    Parameters
    ----------
    path : str
        A path as a reference document holds it.
    reference : str or None
        The URL of the reference document (None: relative to the working directory).

    Returns
    -------
    str

    Examples
    --------
    >>> normalize_source("file:///allowed/../etc/passwd", None)
    'file:///etc/passwd'
    >>> normalize_source("a%2e%2e/../../b.nc", "s3://bkt/refs/x.json")
    's3://bkt/b.nc'
    >>> normalize_source("file:/data/x.nc", None)
    'file:///data/x.nc'
    """
    s = str(path).strip()
    parts = urlsplit(s)
    scheme = parts.scheme.lower()
    if len(scheme) == 1 and os.name == "nt":  # pragma: no cover - drive letters
        scheme = ""
    if scheme == "" and not s.startswith("/"):
        if reference is None:
            base = "file://" + os.getcwd().replace(os.sep, "/") + "/"
        else:
            ref = normalize_source(reference, None)
            base = ref.rsplit("/", 1)[0] + "/"
        return normalize_source(base + s, None)
    if scheme == "file" and not parts.netloc and not parts.path.startswith("/"):
        return normalize_source(parts.path, None)  # "file:a/b": relative, as fsspec reads it
    if scheme in ("", "file"):
        host = parts.netloc.lower() if scheme == "file" else ""
        raw = parts.path if scheme == "file" else s
        p = posixpath.normpath("/" + unquote(raw).lstrip("/"))
        if p.startswith("//"):
            p = "/" + p.lstrip("/")
        hostpart = "" if host in _LOCAL_HOSTS else host
        return f"file://{hostpart}{p}"
    if not parts.netloc and not parts.path.startswith("/"):  # data:..., mailto:... opaque URLs
        return f"{scheme}:{parts.path}"
    p = posixpath.normpath("/" + unquote(parts.path)) if parts.path else ""
    if p.startswith("//"):
        p = "/" + p.lstrip("/")
    return f"{scheme}://{parts.netloc.lower()}{p}"


def _protocol(url: str) -> str:
    head, sep, _ = url.partition(":")
    return head if sep else "file"


def _host(url: str) -> str:
    return urlsplit(url).hostname or ""


def _private_host(host: str) -> bool:
    """True for loopback, link-local and private-network hosts (SSRF targets)."""
    if host in ("localhost", "localhost.localdomain") or host.endswith(".localhost"):
        return True
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        return False
    return bool(
        addr.is_loopback
        or addr.is_link_local
        or addr.is_private
        or addr.is_reserved
        or addr.is_unspecified
    )


def _raw_local(path: str, reference: str | None) -> str:
    """The local path as the OS would walk it (``..`` after symlinks), not lexically."""
    parts = urlsplit(path)
    raw = unquote(parts.path if parts.scheme.lower() == "file" else path)
    if raw.startswith("/"):
        return raw
    ref = normalize_source(reference, None) if reference is not None else None
    base = ref[len("file://") :].rsplit("/", 1)[0] if ref else os.getcwd()
    return f"{base}/{raw}"


def _within(url: str, prefix: str) -> bool:
    return url == prefix.rstrip("/") or url.startswith(prefix)


def _refusal(path: str, canonical: str, reference: str, why: str, origin: str) -> str:
    shown = path if path == canonical else f"{path} (that is, {canonical})"
    proto = _protocol(canonical)
    return (
        f"{reference}: the references point at {shown}, which {why}. Expected locations "
        f"the caller allowed for references loaded from {origin}. If you trust this "
        f"document, pass allowed_sources=[{proto!r}] (or a prefix such as "
        f"{canonical.rsplit('/', 1)[0] + '/'!r}) to allow it, or allowed_sources='*' to "
        "trust it entirely."
    )


def check_paths(
    paths: Iterable[str],
    reference: str | None,
    policy: SourcePolicy,
) -> None:
    """Refuse any path a policy does not allow.

    Parameters
    ----------
    paths : iterable of str
        The distinct paths of the document's manifests.
    reference : str or None
        Where the document was loaded from (None: an in-memory document, trusted as local).
    policy : SourcePolicy

    Raises
    ------
    UntrustedReferenceError
        Naming the first refused path, the document and the option to allow it.
    """
    if policy.allow_all:
        return
    ref_canon = normalize_source(reference, None) if reference is not None else None
    remote_origin = ref_canon is not None and _protocol(ref_canon) != "file"
    origin = ref_canon or "an in-memory document"
    where = reference if reference is not None else "<in-memory references>"
    origin_host = _host(ref_canon) if remote_origin and ref_canon else ""
    for path in paths:
        canon = normalize_source(path, reference)
        proto = _protocol(canon)
        if policy.protocols is not None:
            ok = proto in policy.protocols or any(_within(canon, p) for p in policy.prefixes)
            if ok and proto == "file" and proto not in policy.protocols and ".." in unquote(path):
                # a symlink before '..' can lead elsewhere than the lexical resolution
                real = "file://" + os.path.realpath(_raw_local(path, reference))
                ok = any(_within(real, p) for p in policy.prefixes)
            if not ok:
                raise UntrustedReferenceError(
                    _refusal(path, canon, where, "allowed_sources does not allow", origin)
                )
            continue
        if proto == "file":
            if canon.startswith("file:///") and not remote_origin:
                continue
            why = (
                "is a local file, refused by default for references loaded from a remote location"
                if remote_origin
                else "is a file on another host"
            )
            raise UntrustedReferenceError(_refusal(path, canon, where, why, origin))
        if proto not in DEFAULT_REMOTE_PROTOCOLS:
            why = (
                f"uses the protocol {proto!r}, refused unless allowed explicitly (allowed by "
                f"default: 'file' and {sorted(DEFAULT_REMOTE_PROTOCOLS)})"
            )
            raise UntrustedReferenceError(_refusal(path, canon, where, why, origin))
        host = _host(canon)
        if remote_origin and host != origin_host and _private_host(host):
            why = (
                "is a loopback, link-local or private-network host, refused by default for "
                "references loaded from another host"
            )
            raise UntrustedReferenceError(_refusal(path, canon, where, why, origin))


def check_document_size(source: str, size: int, limits: ReferenceLimits | None) -> None:
    """Refuse a reference document larger than ``limits.max_document_bytes``.

    Parameters
    ----------
    source : str
        The document, for the message.
    size : int
        Its size in bytes.
    limits : ReferenceLimits or None
        None for the defaults.

    Raises
    ------
    UntrustedReferenceError
        If the document is too large.
    """
    lim = limits or ReferenceLimits()
    if size > lim.max_document_bytes:
        raise UntrustedReferenceError(
            f"{source} is {size} bytes; expected at most {lim.max_document_bytes} "
            "(limits.max_document_bytes). If you trust it, pass "
            "limits=ReferenceLimits(max_document_bytes=...) with a larger value."
        )


def _depth(value: Any, limit: int) -> int:
    """Nesting depth of lists/dicts in ``value``, stopping once it exceeds ``limit``."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        v, d = stack.pop()
        if isinstance(v, Mapping):
            children: Iterable[Any] = v.values()
        elif isinstance(v, list | tuple):
            children = v
        else:
            continue
        d += 1
        deepest = max(deepest, d)
        if deepest > limit:
            return deepest
        stack.extend((c, d) for c in children)
    return deepest


def _limit_error(where: str, what: str, found: int, option: str, limit: int) -> str:
    return (
        f"{where}: {what} is {found}; expected at most {limit} (limits.{option}). If you "
        f"trust these references, pass limits=ReferenceLimits({option}=...) with a larger "
        "value."
    )


def check_references(
    vgroup: VirtualGroup,
    reference: str | None,
    allowed_sources: str | Iterable[str] | SourcePolicy | None = None,
    limits: ReferenceLimits | None = None,
) -> None:
    """Check a document's manifests against a source policy and size limits.

    The choke point of the reference readers: it sees each manifest's path table (a few
    distinct paths), its inline chunks and its attributes -- never a Python loop per
    referenced chunk.

    Parameters
    ----------
    vgroup : VirtualGroup
        What a reference reader produced, paths already resolved.
    reference : str or None
        Where the document was loaded from (None: an in-memory document).
    allowed_sources : str, iterable of str, SourcePolicy or None
        See :meth:`SourcePolicy.parse`.
    limits : ReferenceLimits, optional
        Size limits (defaults: :class:`ReferenceLimits`).

    Raises
    ------
    UntrustedReferenceError
        If a path is not allowed or a limit is exceeded.
    """
    policy = SourcePolicy.parse(allowed_sources)
    lim = limits or ReferenceLimits()
    where = reference if reference is not None else "<in-memory references>"
    paths: dict[str, None] = {}
    count = inline_total = 0
    attrs: list[tuple[str, Mapping[str, Any]]] = []
    for gpath, group in vgroup.walk():  # every group of the document, nested ones too
        inner = gpath.strip("/")
        label = f"the attributes of group {inner!r}" if inner else "the group attributes"
        attrs.append((label, group.attrs))
        for short, var in group.variables.items():
            name = f"{inner}/{short}" if inner else short
            m = var.data.manifest
            paths.update(dict.fromkeys(m.paths))
            count += len(m)
            for chunk in m.inline:
                if len(chunk) > lim.max_inline_chunk_bytes:
                    raise UntrustedReferenceError(
                        _limit_error(
                            where,
                            f"an inline chunk of {name!r} (bytes)",
                            len(chunk),
                            "max_inline_chunk_bytes",
                            lim.max_inline_chunk_bytes,
                        )
                    )
                inline_total += len(chunk)
            attrs.append((f"the attributes of {name!r}", var.attrs))
    if count > lim.max_references:
        raise UntrustedReferenceError(
            _limit_error(where, "the number of chunks", count, "max_references", lim.max_references)
        )
    if inline_total > lim.max_inline_total_bytes:
        raise UntrustedReferenceError(
            _limit_error(
                where,
                "the size of all inline chunks (bytes)",
                inline_total,
                "max_inline_total_bytes",
                lim.max_inline_total_bytes,
            )
        )
    for what, a in attrs:
        depth = _depth(dict(a), lim.max_json_depth + 1) - 1  # the attrs object itself
        if depth > lim.max_json_depth:
            raise UntrustedReferenceError(
                _limit_error(
                    where, f"the nesting of {what}", depth, "max_json_depth", lim.max_json_depth
                )
            )
    check_paths(paths, reference, policy)
