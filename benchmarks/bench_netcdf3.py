"""Benchmark the netCDF3 reader: manifest building and header parsing.

Run with ``python benchmarks/bench_netcdf3.py``. Prints:

* the time to virtualize a file whose record variables have 1,000,000 records (the
  target is well under a second: offsets come from NumPy, not a loop per record);
* the time to parse and virtualize ``/work/corpus/records.nc`` when it exists (or a
  path given as the first argument).
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from virtualizarr.io.objects import Location
from virtualizarr.readers.netcdf3 import NetCDF3Reader, read_header
from virtualizarr.readers.netcdf3.header import compute_layout, parse_header

N_RECORDS = 1_000_000
CORPUS_RECORDS = Path("/work/corpus/records.nc")


def _int(value: int, width: int = 4) -> bytes:
    return value.to_bytes(width, "big")


def _name(s: str) -> bytes:
    b = s.encode()
    return _int(len(b)) + b + b"\x00" * (-len(b) % 4)


def write_record_file(path: Path, nrec: int) -> None:
    """A CDF-1 file with ``time(time)`` (f8) and ``x(time, 3)`` (i2): two record variables.

    Written by hand (header, then a sparse data section) so that making a million
    records takes no time; the layout is what netCDF-C writes.
    """

    def header(begin: int) -> bytes:
        out = b"CDF\x01" + _int(nrec)
        out += _int(0x0A) + _int(2) + _name("time") + _int(0) + _name("n") + _int(3)
        out += b"\x00" * 8  # no global attributes
        out += _int(0x0B) + _int(2)
        out += _name("time") + _int(1) + _int(0) + b"\x00" * 8 + _int(6) + _int(8) + _int(begin)
        out += _name("x") + _int(2) + _int(0) + _int(1) + b"\x00" * 8 + _int(3) + _int(8)
        out += _int(begin + 8)
        return out

    begin = len(header(0))
    recsize = 8 + 8  # f8, then 3 x i2 = 6 bytes padded to 8
    with path.open("wb") as f:
        f.write(header(begin))
        f.truncate(begin + nrec * recsize)


def best_of(n: int, fn: Callable[[], object]) -> float:
    times = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    reader = NetCDF3Reader()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "million.nc"
        write_record_file(path, N_RECORDS)
        group = reader.open(Location.of(path))
        x = group.variables["x"].data
        assert x.shape == (N_RECORDS, 3)
        assert int(np.diff(x.manifest.offsets[:2, 0])[0]) == 16
        t = best_of(5, lambda: reader.open(Location.of(path)))
        mb = sum(v.data.manifest.nbytes for v in group.variables.values()) / 1e6
        print(
            f"open {N_RECORDS:,} records x 2 record variables: {t * 1e3:.1f} ms "
            f"(manifests {mb:.1f} MB) [target < 1000 ms]"
        )

    corpus = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS_RECORDS
    if not corpus.exists():
        print(f"{corpus} not found; skipping the corpus benchmark")
        return
    data = corpus.read_bytes()
    header, size = read_header(Location.of(corpus))
    numrecs, _ = compute_layout(header, size)
    t_parse = best_of(20, lambda: parse_header(data, size))
    t_layout = best_of(20, lambda: compute_layout(header, size))
    t_open = best_of(20, lambda: reader.open(Location.of(corpus)))
    print(
        f"{corpus.name}: header {header.size:,} bytes, {len(header.variables)} variables, "
        f"{numrecs:,} records: parse {t_parse * 1e3:.2f} ms, layout {t_layout * 1e3:.2f} ms, "
        f"open (read + parse + manifests) {t_open * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
