"""Read every chunk of ``air`` from the 365-day corpus: our engine vs fsspec references.

Virtualizes /work/corpus/daily/*.nc, concatenates along time, writes kerchunk JSON and a
manifest store, then times (medians of alternating runs) opening and ``air.values`` via
engine="virtualizarr" (JSON, manifest store), via fsspec's ReferenceFileSystem + xarray's
zarr engine on the same JSON, and xr.open_mfdataset on the originals.
"""

from __future__ import annotations

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


def main(corpus: str = "/work/corpus/daily/*.nc", runs: int = 3) -> None:
    warnings.simplefilter("ignore")
    files = sorted(glob.glob(corpus))
    t = time.perf_counter()
    vds = xr.concat(
        [vz.open_virtual_dataset(f) for f in files],
        dim="time",
        coords="minimal",
        compat="override",
        combine_attrs="override",
    )
    print(f"virtualize+concat {len(files)} files: {time.perf_counter() - t:.2f} s")
    tmp = Path(tempfile.mkdtemp())
    vds.virtualize.to_kerchunk(tmp / "refs.json", format="json")
    vds.virtualize.to_zarr(tmp / "store.zarr")
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
            t0 = time.perf_counter()
            ds = op()
            opened[name].append(time.perf_counter() - t0)
            read[name].append(_time(lambda ds=ds: ds.air.values))
            ds.close()
    base = statistics.median(read["fsspec refs + zarr"])
    for name in cases:
        r, o = statistics.median(read[name]), statistics.median(opened[name])
        print(
            f"{name:22s} open {o * 1e3:8.1f} ms   read air {r * 1e3:8.1f} ms   "
            f"(x{base / r:.2f} vs fsspec)"
        )


if __name__ == "__main__":
    main(*sys.argv[1:2])
