"""Paths and URIs, as pure functions, and the walk of a local directory.

Manifests record absolute URIs: local paths become ``file:///abs/path`` (percent-encoded),
anything else is kept as the fsspec URL it is (``s3://bucket/key``, ``https://host/f``).
This is the one place that turns paths into URIs and back, and that relates URIs to each
other (relative paths in reference documents). :func:`list_local`, the walk behind
``Location.list``, is the one function here that touches files.
"""

from __future__ import annotations

import os
import posixpath
from contextlib import suppress
from pathlib import Path
from urllib.parse import unquote, urlparse

__all__ = [
    "is_http",
    "is_local",
    "is_relative",
    "join_uri",
    "list_local",
    "local_path",
    "relative_to",
    "resolve_relative",
    "to_uri",
]


def is_local(url: str) -> bool:
    """True for plain paths and ``file://`` URIs.

    Examples
    --------
    >>> is_local("/data/a.nc"), is_local("file:///data/a.nc"), is_local("s3://b/a.nc")
    (True, True, False)
    """
    s = str(url)
    if s.startswith(("/", "file://")):
        return True  # the common cases, without parsing (this runs per path table entry)
    scheme = urlparse(s).scheme
    return scheme in ("", "file") or (len(scheme) == 1 and os.name == "nt")


def is_http(url: str) -> bool:
    """True for ``http://`` and ``https://`` URLs (servers without a listing)."""
    return str(url).lower().startswith(("http://", "https://"))


def local_path(url: str) -> str:
    """The filesystem path of a local path or ``file://`` URI (percent-escapes decoded).

    Examples
    --------
    >>> local_path("file:///data/a%20b.nc")
    '/data/a b.nc'
    """
    s = str(url)
    if s.startswith("file://"):
        return unquote(urlparse(s).path)
    return s


def to_uri(path: str | os.PathLike[str]) -> str:
    """An absolute URI for a path: local paths become ``file:///abs/path``.

    Examples
    --------
    >>> to_uri("/data/a b.nc")
    'file:///data/a%20b.nc'
    >>> to_uri("s3://bucket/a.nc")
    's3://bucket/a.nc'
    """
    s = os.fspath(path)
    if is_local(s):
        return Path(local_path(s)).expanduser().resolve().as_uri()
    return s


def is_relative(path: str) -> bool:
    """True for a path with neither a scheme nor a leading ``/`` (``"data/a.nc"``)."""
    if path.startswith("/") or "://" in path:
        return False  # the common cases, without parsing
    return not urlparse(path).scheme


def join_uri(base: str, name: str) -> str:
    """``name`` inside the directory URL ``base`` (``s3://b/d`` + ``x`` -> ``s3://b/d/x``)."""
    return base.rstrip("/") + "/" + name.lstrip("/")


def relative_to(uri: str, reference: str) -> str:
    """``uri`` written relative to the directory holding ``reference``, when possible.

    Both are absolute URIs. A path on another host/bucket or protocol stays absolute.

    Parameters
    ----------
    uri : str
        A source path (``file:///data/a.nc``).
    reference : str
        The reference file or store (``file:///data/refs.json``).

    Returns
    -------
    str
        E.g. ``"a.nc"`` or ``"../raw/a.nc"``; ``uri`` unchanged when not relatable.

    Examples
    --------
    >>> relative_to("s3://b/data/raw/a.nc", "s3://b/data/refs.json")
    'raw/a.nc'
    >>> relative_to("s3://other/a.nc", "s3://b/refs.json")
    's3://other/a.nc'
    >>> relative_to("s3://b/run1:out.nc", "s3://b/refs.json")
    './run1:out.nc'
    """
    u, r = urlparse(uri), urlparse(reference)
    if (u.scheme, u.netloc) != (r.scheme, r.netloc) or not u.scheme:
        return uri
    base = posixpath.dirname(r.path.rstrip("/")) or "/"
    rel = posixpath.relpath(u.path, base)
    if ":" in rel.split("/", 1)[0]:
        rel = f"./{rel}"  # a first segment with ':' would read as a URL scheme ("run1:out.nc")
    # a ';', '?' or '#' in the key is lost from the path: such a URI stays absolute
    return rel if resolve_relative(rel, reference) == uri else uri


def resolve_relative(path: str, reference: str) -> str:
    """The absolute URI of ``path`` (relative to ``reference``'s directory), else ``path``.

    Parameters
    ----------
    path : str
        A path from a reference document.
    reference : str
        Absolute URI of the reference file or store.

    Returns
    -------
    str

    Examples
    --------
    >>> resolve_relative("raw/a.nc", "s3://b/data/refs.json")
    's3://b/data/raw/a.nc'
    >>> resolve_relative("../a.nc", "file:///x/y/refs.json")
    'file:///x/a.nc'
    >>> resolve_relative("s3://c/a.nc", "file:///x/refs.json")
    's3://c/a.nc'
    """
    if not is_relative(path):
        return path
    r = urlparse(reference)
    base = posixpath.dirname(r.path.rstrip("/")) or "/"
    joined = posixpath.normpath(posixpath.join(base, path))
    if reference.startswith(f"{r.scheme}://"):  # keep an empty authority (memory:///d)
        return f"{r.scheme}://{r.netloc}{joined}"
    return r._replace(path=joined, params="", query="", fragment="").geturl()


def list_local(root: str) -> dict[str, int]:
    """Every file under a local directory, at any depth: relative key -> size, sorted.

    Unreadable entries are skipped. ``os.scandir`` with keys built as strings lists a store
    of 20,000 chunk files in ~60 ms (``pathlib``'s ``relative_to`` per file took 2 s).
    """
    found: dict[str, int] = {}
    stack = [("", root)]
    while stack:
        rel, path = stack.pop()
        with suppress(OSError), os.scandir(path) as entries:
            for e in entries:
                with suppress(OSError):
                    if e.is_dir(follow_symlinks=False):
                        stack.append((f"{rel}{e.name}/", e.path))
                    elif e.is_file():
                        found[f"{rel}{e.name}"] = e.stat().st_size
    return dict(sorted(found.items()))
