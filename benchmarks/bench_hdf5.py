"""Benchmark the HDF5/netCDF4 reader: building chunk manifests in-process.

Run with ``python benchmarks/bench_hdf5.py [path]`` or ``python benchmarks/bench_hdf5.py
--daily [dir]``. The second times many small files (``/work/corpus/daily/*.nc``, 365
netCDF4 files of 7 variables): ``HDF5Reader().open`` and ``open_virtual_dataset`` per
file, in CPU milliseconds (``time.process_time``: the machine may be shared), median of
three passes over 100 files after a warm-up file. The first prints, for
``/work/corpus/manychunks.nc`` (100,000 chunks; or the given path), best of a few runs:

* the time for ``HDF5Reader().open``, which reads large chunk indexes with its own NumPy
  parser (:mod:`virtualizarr.readers.hdf5.chunk_index`), and per chunk;
* the same with the parser switched off (one ``chunk_iter`` pass per variable, the
  reader's fallback), for comparison;
* the parser alone against h5py's ``chunk_iter`` with a no-op callback, on every chunked
  dataset of the file;
* the manifest's memory per chunk.

The target: the parser under 50 ms for 100,000 chunks.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import h5py

from virtualizarr.io.objects import Location
from virtualizarr.readers.hdf5 import storage as hdf5
from virtualizarr.readers.hdf5.chunk_index import read_chunk_index
from virtualizarr.readers.hdf5.reader import HDF5Reader

CORPUS = Path("/work/corpus/manychunks.nc")
DAILY = Path("/work/corpus/daily")


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """Best wall time of ``repeat`` calls, in seconds."""
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main(path: Path) -> None:
    """Time the reader on ``path`` and print the figures."""
    reader = HDF5Reader()
    group = reader.open(Location.of(path))
    n_chunks = sum(len(v.data.manifest) for v in group.variables.values())
    manifest_bytes = sum(v.data.manifest.nbytes for v in group.variables.values())
    t_open = best_of(lambda: reader.open(Location.of(path)))
    parser_min = hdf5._INDEX_MIN_CHUNKS
    hdf5._INDEX_MIN_CHUNKS = 1 << 62  # every variable through chunk_iter
    try:
        t_open_iter = best_of(lambda: reader.open(Location.of(path)), repeat=3)
    finally:
        hdf5._INDEX_MIN_CHUNKS = parser_min

    with h5py.File(path, "r") as f:
        dsets: list[h5py.Dataset] = []
        f.visititems(
            lambda _, o: dsets.append(o) if isinstance(o, h5py.Dataset) and o.chunks else None
        )

        def bare_chunk_iter() -> None:
            for dset in dsets:
                dset.id.chunk_iter([].append)

        fd = os.open(path, os.O_RDONLY)
        try:
            size = os.fstat(fd).st_size
            userblock = f.id.get_create_plist().get_userblock()

            def parser() -> None:
                for dset in dsets:
                    read_chunk_index(
                        lambda off, n: os.pread(fd, n, off),
                        header_address=h5py.h5g.get_objinfo(dset.id).objno[0],
                        superblock_at=userblock,
                        file_size=size,
                        shape=dset.shape,
                        maxshape=dset.maxshape,
                        chunks=dset.chunks,
                    )

            t_iter = best_of(bare_chunk_iter)
            t_parse = best_of(parser)
        finally:
            os.close(fd)
    print(f"file: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"variables: {len(group.variables)}, chunks referenced: {n_chunks:,}")
    per = t_open / max(n_chunks, 1) * 1e6
    print(f"HDF5Reader().open: {t_open * 1e3:.1f} ms ({per:.2f} us/chunk)")
    print(f"  with the chunk-index parser off (chunk_iter): {t_open_iter * 1e3:.1f} ms")
    print(f"chunk-index parser alone: {t_parse * 1e3:.1f} ms")
    print(f"h5py chunk_iter alone (no-op callback): {t_iter * 1e3:.1f} ms")
    per_chunk = manifest_bytes / max(n_chunks, 1)
    print(f"manifest memory: {manifest_bytes / 1e6:.2f} MB ({per_chunk:.1f} B/chunk)")


def cpu_ms_per_call(fn: Callable[[str], object], paths: list[str], passes: int = 3) -> float:
    """Median over ``passes`` of the CPU milliseconds per call of ``fn`` over ``paths``."""
    fn(paths[0])  # warm-up: imports, caches
    times = []
    for _ in range(passes):
        t0 = time.process_time()
        for p in paths:
            fn(p)
        times.append((time.process_time() - t0) / len(paths) * 1e3)
    return statistics.median(times)


def main_daily(directory: Path) -> None:
    """Time the reader and ``open_virtual_dataset`` per file on many small files."""
    from virtualizarr import open_virtual_dataset

    paths = sorted(str(p) for p in directory.glob("*.nc"))[:101]
    reader = HDF5Reader()
    t_reader = cpu_ms_per_call(lambda p: reader.open(Location.of(p)), paths)
    t_open = cpu_ms_per_call(
        lambda p: open_virtual_dataset(p, loadable_variables=["time", "lat", "lon"]), paths
    )
    print(f"files: {directory}/*.nc ({len(paths)} timed)")
    print(f"HDF5Reader().open: {t_reader:.2f} ms CPU per file")
    print(f"open_virtual_dataset (time, lat, lon loaded): {t_open:.2f} ms CPU per file")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--daily":
        folder = Path(sys.argv[2]) if len(sys.argv) > 2 else DAILY
        if not folder.is_dir():
            sys.exit(f"{folder} is not a directory of netCDF4 files.")
        main_daily(folder)
        sys.exit(0)
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else CORPUS
    if not target.exists():
        sys.exit(f"{target} does not exist; pass the path of an HDF5 file to benchmark.")
    main(target)
