"""Benchmark the HDF5/netCDF4 reader: building chunk manifests in-process.

Run with ``python benchmarks/bench_hdf5.py [path]`` or ``python benchmarks/bench_hdf5.py
--daily [dir]``. The second times many small files (``/work/corpus/daily/*.nc``, 365
netCDF4 files of 7 variables): ``HDF5Reader().open`` and ``open_virtual_dataset`` per
file, in CPU milliseconds (``time.process_time``: the machine may be shared), median of
three passes over 100 files after a warm-up file. The first prints, for
``/work/corpus/manychunks.nc`` (100,000 chunks; or the given path):

* the time for ``HDF5Reader().open`` (metadata scan plus one ``chunk_iter`` pass per
  variable), best of a few runs, and per chunk;
* how that splits between HDF5's own chunk-index walk (``chunk_iter`` with a no-op
  callback) and our work around it;
* the manifest's memory per chunk.

The target: well under a second for 100,000 chunks, dominated by HDF5's index walk.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import h5py

from virtualizarr.readers.hdf5 import HDF5Reader

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
    group = reader.open(str(path))
    n_chunks = sum(len(v.data.manifest) for v in group.variables.values())
    manifest_bytes = sum(v.data.manifest.nbytes for v in group.variables.values())
    t_open = best_of(lambda: reader.open(str(path)))

    def bare_chunk_iter() -> None:
        with h5py.File(path, "r") as f:
            for dset in f.values():
                if isinstance(dset, h5py.Dataset) and dset.chunks is not None:
                    dset.id.chunk_iter([].append)

    t_iter = best_of(bare_chunk_iter)
    print(f"file: {path} ({path.stat().st_size / 1e6:.1f} MB)")
    print(f"variables: {len(group.variables)}, chunks referenced: {n_chunks:,}")
    print(
        f"HDF5Reader().open: {t_open * 1e3:.1f} ms ({t_open / max(n_chunks, 1) * 1e6:.2f} us/chunk)"
    )
    print(f"  of which h5py chunk_iter alone (into a list): {t_iter * 1e3:.1f} ms")
    print(f"  our work around it: {(t_open - t_iter) * 1e3:.1f} ms")
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
    t_reader = cpu_ms_per_call(reader.open, paths)
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
