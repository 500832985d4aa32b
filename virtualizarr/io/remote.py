"""Remote plumbing: fsspec filesystems, retries of transient failures, capped HTTP reads.

Used by :class:`~virtualizarr.io.objects.Location` only; nothing above ``io`` calls
fsspec directly.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Final

from virtualizarr.errors import NetworkError, OutputWriteError
from virtualizarr.io.uri import is_http

__all__ = ["BACKOFF", "RETRIES", "network_cause", "read_capped", "retry", "write_error"]

_NETWORK_ERRORS: Final = {
    "ClientConnectorError",
    "ClientConnectorDNSError",
    "ClientConnectionError",
    "ClientOSError",
    "ServerDisconnectedError",
    "ServerTimeoutError",
    "EndpointConnectionError",
    "ConnectTimeoutError",
    "ReadTimeoutError",
    "ConnectionClosedError",
    "gaierror",
}

RETRIES = 4
"""Tries of a remote operation that fails transiently (5xx, connection reset, timeout)."""
BACKOFF: Final = 0.1
"""Seconds slept after the first failed try; doubled after each further one."""


def _is_transient(e: BaseException) -> bool:
    """True for failures worth retrying: 5xx responses, resets, timeouts."""
    if isinstance(e, FileNotFoundError | PermissionError | IsADirectoryError):
        return False
    if isinstance(e, ConnectionError | TimeoutError):
        return True
    status = getattr(e, "status", None) or getattr(e, "code", None)
    if isinstance(status, int) and 500 <= status < 600:
        return True
    names = {c.__name__ for c in type(e).__mro__}
    transient = {
        "ClientConnectionError",
        "ServerDisconnectedError",
        "ClientPayloadError",
        "ServerTimeoutError",
        "EndpointConnectionError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ConnectionClosedError",
    }
    if names & transient:
        return True
    text = str(e)
    return any(f" {code}" in text or text.startswith(str(code)) for code in (500, 502, 503, 504))


def network_cause(e: BaseException) -> BaseException | None:
    """The failure to reach the host (refused, unknown, timed out) behind ``e``, if any --
    also when a filesystem reported it as something else (fsspec's HTTP ``info`` says "not
    found")."""
    seen: set[int] = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, ConnectionError | TimeoutError) and not isinstance(cur, NetworkError):
            return cur
        if {c.__name__ for c in type(cur).__mro__} & _NETWORK_ERRORS:
            return cur
        cur = cur.__cause__ or cur.__context__
    return None


def retry[T](fn: Callable[[], T], url: str, *, tries: int = RETRIES) -> T:
    """Call ``fn``, retrying transient failures with exponential backoff.

    Parameters
    ----------
    fn : callable
        The remote operation.
    url : str
        What it touches (for messages).
    tries : int
        Most attempts.

    Returns
    -------
    object
        What ``fn`` returns.

    Raises
    ------
    NetworkError
        When the host could not be reached, after the retries.
    Exception
        The last failure, when it is not transient or ``tries`` are spent.

    Examples
    --------
    >>> retry(lambda: 1, "s3://bucket/key")
    1
    """
    for attempt in range(tries):
        try:
            return fn()
        except Exception as e:
            if attempt == tries - 1 or not _is_transient(e):
                cause = None if isinstance(e, NetworkError) else network_cause(e)
                if cause is not None:
                    raise NetworkError(
                        f"could not reach {url} ({type(cause).__name__}: {cause}): the "
                        "connection was refused, the host is unknown or it timed out. Check "
                        "the URL, the network, and storage_options (endpoint, credentials)."
                    ) from e
                raise
            time.sleep(BACKOFF * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def write_error(url: str, e: BaseException) -> OutputWriteError:
    """The error for a write (or deletion) at ``url`` that failed with ``e``."""
    hint = (
        "check that the bucket exists and that the credentials in storage_options may write there"
        if isinstance(e, FileNotFoundError | PermissionError)
        else "check the connection and storage_options, then write again"
    )
    return OutputWriteError(f"could not write {url}: {type(e).__name__}: {e}; {hint}.")


def read_capped(fs: Any, path: str, max_bytes: int) -> bytes:
    """At most ``max_bytes + 1`` bytes of ``path`` from the start (streamed over HTTP)."""
    if is_http(path):
        from fsspec.asyn import sync  # imported with the HTTP filesystem already

        data: bytes = sync(fs.loop, _http_get_capped, fs, path, max_bytes)
        return data
    with fs.open(path, "rb") as f:
        out: bytes = f.read(max_bytes + 1)
    return out


async def _http_get_capped(fs: Any, url: str, max_bytes: int) -> bytes:
    """GET ``url`` with fsspec's HTTP session, reading no more than ``max_bytes + 1`` bytes.

    Leaving the response unread closes its connection instead of draining it.
    """
    session = await fs.set_session()
    async with session.get(fs.encode_url(url), **fs.kwargs) as r:
        fs._raise_not_found_for_status(r, url)
        buf = bytearray()
        while len(buf) <= max_bytes:
            part = await r.content.read(min(max_bytes + 1 - len(buf), 1 << 20))
            if not part:
                break
            buf += part
    return bytes(buf)
