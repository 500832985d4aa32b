"""Network failures and servers without range requests give our errors, naming the URL."""

from __future__ import annotations

import http.server
import socket
import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path

import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.errors import ChunkReadError, NetworkError
from virtualizarr.io import remote
from virtualizarr.io.objects import Location


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote, "BACKOFF", 0.0)


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def no_range_server(tmp_path: Path) -> Iterator[str]:
    """Python's plain http.server: it ignores Range and always sends the whole file."""
    (tmp_path / "f.bin").write_bytes(bytes(range(256)) * 4)
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path))
    handler.log_message = lambda *a: None  # type: ignore[attr-defined]
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_a_refused_connection_is_a_network_error_naming_the_url() -> None:
    url = f"http://127.0.0.1:{closed_port()}/x.nc"
    for op in (Location(url).info, Location(url).head, Location(url).read):
        with pytest.raises(NetworkError, match=r"could not reach http://127\.0\.0\.1") as info:
            op()
        assert isinstance(info.value, ConnectionError)
        assert "does not exist" not in str(info.value)
    with pytest.raises(NetworkError, match="could not reach"):
        vz.open_virtual_dataset(url)
    with pytest.raises(NetworkError, match="could not reach"):
        xr.open_dataset(url.replace("x.nc", "refs.json"), engine="virtualizarr")


def test_a_server_without_range_requests_is_named(no_range_server: str) -> None:
    location = Location(f"{no_range_server}/f.bin")
    assert location.size() == 1024
    with pytest.raises(ChunkReadError, match="ignores HTTP Range requests") as info:
        location.read_range(10, 5)
    assert "truncated" not in str(info.value)
    with pytest.raises(ChunkReadError, match="ignores HTTP Range requests"):
        location.head(8)
