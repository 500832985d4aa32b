"""Real servers on loopback for remote-source tests: moto's S3 server and a Range-capable
HTTP server. Never touches real AWS: dummy credentials, endpoint on 127.0.0.1."""

from __future__ import annotations

import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest

BUCKET = "vz-test"
FLAKY: dict[str, int] = {}
"""URL path -> how many more GETs of it answer 503 (paths containing "flaky")."""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """moto's ThreadedMotoServer on 127.0.0.1 (free port); yields its endpoint URL."""
    moto_server = pytest.importorskip("moto.server")
    saved = {k: os.environ.get(k) for k in _AWS_ENV}
    os.environ.update(_AWS_ENV)
    port = _free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@pytest.fixture(scope="session")
def s3_options(s3_server: str) -> dict[str, Any]:
    """storage_options for the moto server; creates the test bucket."""
    s3fs = pytest.importorskip("s3fs")
    opts: dict[str, Any] = {
        "key": "testing",
        "secret": "testing",
        "client_kwargs": {"endpoint_url": s3_server, "region_name": "us-east-1"},
    }
    fs = s3fs.S3FileSystem(**opts)
    if not fs.exists(BUCKET):
        fs.call_s3("create_bucket", Bucket=BUCKET)  # us-east-1: no LocationConstraint
    return opts


def write_day(path: Path, fmt: str, day: int) -> Path:
    """A small CF file (time, lat, lon) made by netCDF4-python, one day per file."""
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.title = f"day {day}"
        ds.createDimension("time", None if fmt == "NETCDF4" else 1)
        ds.createDimension("lat", 5)
        ds.createDimension("lon", 8)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2020-01-01"
        t.calendar = "standard"
        t[:] = [day]
        lat = ds.createVariable("lat", "f4", ("lat",))
        lat.units = "degrees_north"
        lat[:] = np.linspace(-60, 60, 5)
        lon = ds.createVariable("lon", "f4", ("lon",))
        lon[:] = np.arange(8) * 45
        kw: dict[str, Any] = (
            {"zlib": True, "chunksizes": (1, 5, 4), "fill_value": np.int16(-999)}
            if fmt == "NETCDF4"
            else {"fill_value": np.int16(-999)}
        )
        air = ds.createVariable("air", "i2", ("time", "lat", "lon"), **kw)
        air.scale_factor = np.float32(0.01)
        air.add_offset = np.float32(250)
        air.units = "K"
        vals = (np.arange(40).reshape(1, 5, 8) * 7 + day * 13) % 3000
        vals[0, 0, 0] = -999  # a masked value
        air[:] = np.ma.masked_equal(vals.astype("i2"), -999)
    return path


class _RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves a directory with ``Range: bytes=a-b`` support (206 responses)."""

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _target(self) -> Path | None:
        p = Path(self.translate_path(self.path))
        return p if p.is_file() else None

    def do_HEAD(self) -> None:
        p = self._target()
        if p is None:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(p.stat().st_size))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("ETag", f'"{p.stat().st_mtime_ns:x}-{p.stat().st_size:x}"')
        self.end_headers()

    def do_GET(self) -> None:
        rng = self.headers.get("Range")
        if "flaky" in self.path and FLAKY[self.path] > 0:  # transient failure, then fine
            FLAKY[self.path] -= 1
            self.send_error(503)
            return
        p = self._target()
        if p is None:
            self.send_error(404)
            return
        data = p.read_bytes()
        if rng and rng.startswith("bytes="):
            a, _, b = rng[6:].partition("-")
            start = int(a)
            end = min(int(b) + 1 if b else len(data), len(data))
            body = data[start:end]
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{end - 1}/{len(data)}")
        else:
            body = data
            self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="session")
def http_root(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """A directory served over HTTP on 127.0.0.1 with Range support: (dir, base URL)."""
    root = tmp_path_factory.mktemp("http")

    def handler(*args: Any, **kwargs: Any) -> _RangeHandler:
        return _RangeHandler(*args, directory=str(root), **kwargs)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
