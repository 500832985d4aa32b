"""Requests and bytes fetched from S3 to virtualize netCDF4 files (moto on loopback).

Uploads N files of ``/work/corpus/daily`` (netCDF4, ~800 kB each) to a moto S3 server on
127.0.0.1, then virtualizes each with ``open_virtual_dataset("s3://...")`` under several
metadata-read settings (:data:`virtualizarr.io.objects.METADATA_CACHE_TYPE` and
:data:`~virtualizarr.io.objects.METADATA_BLOCK_SIZE`), counting every S3 API call and the bytes of
every ``GetObject`` response by wrapping s3fs's single entry point (``_call_s3``).
Also: one netCDF3 copy (header range only), and reading all the data back through
references written to S3.

Run: ``.venv/bin/python benchmarks/bench_remote.py [N] [corpus_dir]``
"""

from __future__ import annotations

import logging
import os
import socket
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import s3fs
import xarray as xr
from moto.server import ThreadedMotoServer

import virtualizarr as vz
from virtualizarr.io import objects as io

logging.getLogger("werkzeug").setLevel(logging.ERROR)  # moto logs every request
CORPUS = Path("/work/corpus/daily")
BUCKET = "bench"


class Counts:
    """S3 calls by operation and GetObject bytes, counted client-side."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.bytes = 0

    def reset(self) -> None:
        self.calls.clear()
        self.bytes = 0


COUNTS = Counts()
_orig_call = s3fs.S3FileSystem._call_s3


async def _counting_call(self: Any, method: str, *args: Any, **kwargs: Any) -> Any:
    out = await _orig_call(self, method, *args, **kwargs)
    COUNTS.calls[method] += 1
    if method == "get_object" and isinstance(out, dict):
        COUNTS.bytes += int(out.get("ContentLength") or 0)
    return out


s3fs.S3FileSystem._call_s3 = _counting_call  # type: ignore[method-assign]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 30
    corpus = Path(sys.argv[2]) if len(sys.argv) > 2 else CORPUS
    for k, v in {
        "AWS_ACCESS_KEY_ID": "x",
        "AWS_SECRET_ACCESS_KEY": "x",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_EC2_METADATA_DISABLED": "true",
    }.items():
        os.environ.setdefault(k, v)
    port = _free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        opts = {
            "key": "x",
            "secret": "x",
            "client_kwargs": {"endpoint_url": f"http://127.0.0.1:{port}"},
        }
        fs = s3fs.S3FileSystem(**opts)
        fs.call_s3("create_bucket", Bucket=BUCKET)
        files = sorted(corpus.glob("*.nc"))[:n]
        for p in files:
            fs.put_file(str(p), f"{BUCKET}/daily/{p.name}")
        sizes = [p.stat().st_size for p in files]
        print(
            f"{len(files)} files from {corpus}, size mean {statistics.mean(sizes) / 1e3:.0f} kB "
            f"(min {min(sizes) / 1e3:.0f}, max {max(sizes) / 1e3:.0f})"
        )
        print()
        print(
            f"{'cache_type':>10} {'block':>7} | {'req/file':>8} {'GET/file':>8} "
            f"{'kB/file':>8} {'% of file':>9} {'s/file':>7}"
        )
        default = (io.METADATA_CACHE_TYPE, io.METADATA_BLOCK_SIZE)
        print(f"(default: {default[0]}, {default[1] // 1024} KiB blocks)")
        for cache_type, block in [
            ("blockcache", 16 * 1024),
            ("blockcache", 64 * 1024),
            ("blockcache", 512 * 1024),
            ("readahead", 64 * 1024),
            ("first", 32 * 1024),
            ("first", 64 * 1024),
            ("first", 128 * 1024),
            ("none", 0),
        ]:
            io.METADATA_CACHE_TYPE = cache_type
            io.METADATA_BLOCK_SIZE = max(block, 1)
            COUNTS.reset()
            t0 = time.perf_counter()
            for p in files:
                vz.open_virtual_dataset(
                    f"s3://{BUCKET}/daily/{p.name}", storage_options=opts, loadable_variables=[]
                )
            dt = (time.perf_counter() - t0) / len(files)
            req = sum(COUNTS.calls.values()) / len(files)
            gets = COUNTS.calls["get_object"] / len(files)
            kb = COUNTS.bytes / len(files) / 1e3
            pct = 100 * COUNTS.bytes / sum(sizes)
            print(
                f"{cache_type:>10} {block // 1024:>6}k | {req:8.1f} {gets:8.1f} {kb:8.1f} "
                f"{pct:8.1f}% {dt:7.3f}"
            )
        io.METADATA_CACHE_TYPE, io.METADATA_BLOCK_SIZE = default

        # default settings, with the 1-D coordinates loaded (default loadable_variables)
        COUNTS.reset()
        vds = vz.open_virtual_mfdataset(
            f"s3://{BUCKET}/daily/*.nc", storage_options=opts, parallel=False
        )
        print()
        print(
            f"open_virtual_mfdataset(glob) over {len(files)} files, defaults: "
            f"{dict(COUNTS.calls)}, {COUNTS.bytes / 1e3:.0f} kB "
            f"({COUNTS.bytes / len(files) / 1e3:.1f} kB/file)"
        )

        COUNTS.reset()
        vds.virtualize.to_kerchunk(f"s3://{BUCKET}/refs.json", format="json", storage_options=opts)
        print(f"to_kerchunk(s3://...): {dict(COUNTS.calls)}")
        COUNTS.reset()
        t0 = time.perf_counter()
        ds = xr.open_dataset(
            f"s3://{BUCKET}/refs.json", engine="virtualizarr", storage_options=opts
        )
        opened = dict(COUNTS.calls)
        ds.load()
        print(
            f"open refs (verify_sources: one HEAD per source): {opened}; then load(): "
            f"{dict(COUNTS.calls - Counter(opened))}, {COUNTS.bytes / 1e6:.1f} MB in "
            f"{time.perf_counter() - t0:.2f} s"
        )

        # netCDF3: the header range only
        with tempfile.TemporaryDirectory() as tmp:
            nc3 = Path(tmp) / "day.nc"
            xr.open_dataset(files[0]).to_netcdf(nc3, format="NETCDF3_64BIT")
            fs.put_file(str(nc3), f"{BUCKET}/nc3/day.nc")
            COUNTS.reset()
            vz.open_virtual_dataset(
                f"s3://{BUCKET}/nc3/day.nc", storage_options=opts, loadable_variables=[]
            )
            print(
                f"netCDF3 ({nc3.stat().st_size / 1e3:.0f} kB): {dict(COUNTS.calls)}, "
                f"{COUNTS.bytes / 1e3:.1f} kB fetched"
            )
    finally:
        server.stop()


if __name__ == "__main__":
    main()
