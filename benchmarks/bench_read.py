"""Read every chunk of ``air`` from the 365-day corpus: our engine vs fsspec references.

Virtualizes /work/corpus/daily/*.nc, concatenates along time, writes kerchunk JSON and a
manifest store, then times (medians of alternating runs) opening and ``air.values`` via
engine="virtualizarr" (JSON, manifest store), via fsspec's ReferenceFileSystem + xarray's
zarr engine on the same JSON, and xr.open_mfdataset on the originals.
"""

from __future__ import annotations

import gc
import glob
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from pathlib import Path

import xarray as xr

import virtualizarr as vz
from virtualizarr.testing import open_kerchunk_refs


def _time(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def _ms(values: list[float]) -> str:
    return " ".join(f"{v * 1e3:.0f}" for v in values)


def main(corpus: str = "/work/corpus/daily/*.nc", runs: int = 3) -> None:
    warnings.simplefilter("ignore")
    files = sorted(glob.glob(corpus))
    t = time.perf_counter()
    vds = xr.concat(
        [vz.open_virtual_dataset(f) for f in files],
        dim="time",
        coords="minimal",
        data_vars="minimal",
        compat="override",
        combine_attrs="override",
    )
    print(f"virtualize+concat {len(files)} files: {time.perf_counter() - t:.2f} s")
    with tempfile.TemporaryDirectory(prefix="bench_read_") as d:
        tmp = Path(d)
        vds.virtualize.to_kerchunk(tmp / "refs.json", format="json")
        vds.virtualize.to_zarr(tmp / "store.zarr")
        _run(tmp, files, runs)


def _run(tmp: Path, files: list[str], runs: int) -> None:
    cases: dict[str, Callable[[], xr.Dataset]] = {
        "virtualizarr JSON": lambda: xr.open_dataset(tmp / "refs.json", engine="virtualizarr"),
        "virtualizarr store": lambda: xr.open_dataset(tmp / "store.zarr", engine="virtualizarr"),
        "fsspec refs + zarr": lambda: open_kerchunk_refs(tmp / "refs.json"),
        "open_mfdataset": lambda: xr.open_mfdataset(files, combine="by_coords"),
    }
    opened: dict[str, list[float]] = {k: [] for k in cases}
    read: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(runs):
        for name, op in cases.items():  # alternate the cases within each run
            gc.collect()  # no case pays for the previous one's garbage
            t0 = time.perf_counter()
            ds = op()
            opened[name].append(time.perf_counter() - t0)
            read[name].append(_time(lambda ds=ds: ds.air.values))
            ds.close()
    base_r = statistics.median(read["fsspec refs + zarr"])
    base_o = statistics.median(opened["fsspec refs + zarr"])
    print(f"medians of {runs} alternating runs; x = fsspec time / this time")
    for name in cases:
        r, o = statistics.median(read[name]), statistics.median(opened[name])
        print(
            f"{name:20s} open {o * 1e3:8.1f} ms (x{base_o / o:5.2f})   "
            f"read air {r * 1e3:8.1f} ms (x{base_r / r:5.2f})   "
            f"[open {_ms(opened[name])}; read {_ms(read[name])}]"
        )


if __name__ == "__main__":
    args = sys.argv[1:]
    main(args[0] if args else "/work/corpus/daily/*.nc", int(args[1]) if len(args) > 1 else 3)
