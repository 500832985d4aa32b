"""Scale benchmark: memory per reference, combining many datasets, writing big JSON.

    python benchmarks/bench_scale.py [--corpus /work/corpus] [--repeat 100]
        [--datasets 10000] [--profile]

Prints three figures and their targets:

1. ``bytes/ref``: open the 365 daily files, concatenate the result with itself
   ``--repeat`` times along time (1.17M references over 365 paths at 100), and divide the
   growth of this process's resident memory (VmRSS, after ``gc.collect()``) by the
   number of references (target <= 24 bytes). The manifests' own ``nbytes`` is printed
   beside it.
2. ``combine``: seconds to concatenate ``--datasets`` single-file virtual datasets along
   time with ``xr.concat`` (and with ``xr.combine_by_coords``), synthesized in memory from
   one file's dataset by giving each copy distinct paths (target < 5 s).
3. ``write``: seconds to write the 1.17M references as one kerchunk JSON (target < 2 s).

``--profile`` prints the top cProfile entries of each timed step.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import glob
import io
import os
import pstats
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import xarray as xr

from virtualizarr import ManifestArray, open_virtual_dataset, open_virtual_mfdataset

CONCAT_KW: dict[str, Any] = {
    "coords": "minimal",
    "compat": "override",
    "combine_attrs": "override",
    "join": "exact",
}


def rss_bytes() -> int:
    """This process's resident set size (Linux)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def n_refs(ds: xr.Dataset) -> int:
    return sum(len(v.data.manifest) for v in ds.variables.values() if _virtual(v))


def manifest_bytes(ds: xr.Dataset) -> int:
    return sum(v.data.manifest.nbytes for v in ds.variables.values() if _virtual(v))


def _virtual(v: xr.Variable) -> bool:
    return isinstance(v.data, ManifestArray)


CPU: dict[str, float] = {}
"""CPU seconds of each timed step (robust to a busy machine, unlike wall time)."""


def timed(label: str, fn: Callable[[], Any], profile: bool) -> tuple[float, Any]:
    prof = cProfile.Profile() if profile else None
    c0 = time.process_time()
    t0 = time.perf_counter()
    if prof:
        prof.enable()
    out = fn()
    if prof:
        prof.disable()
    dt = time.perf_counter() - t0
    CPU[label] = time.process_time() - c0
    if prof:
        s = io.StringIO()
        pstats.Stats(prof, stream=s).sort_stats("cumulative").print_stats(25)
        print(f"--- profile: {label}\n{s.getvalue()}")
    return dt, out


def verdict(value: float, target: float) -> str:
    return "met" if value <= target else "MISSED"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--corpus", default="/work/corpus")
    p.add_argument("--repeat", type=int, default=100)
    p.add_argument("--datasets", type=int, default=10_000)
    p.add_argument("--profile", action="store_true")
    args = p.parse_args()
    files = sorted(glob.glob(os.path.join(args.corpus, "daily", "*.nc")))

    # 1. memory per reference -----------------------------------------------------------
    t_open, base = timed(
        "open 365 files",
        lambda: open_virtual_mfdataset(
            files,
            combine="nested",
            concat_dim="time",
            loadable_variables=["time", "lat", "lon"],
            progress=False,
        ),
        args.profile,
    )
    print(
        f"open+combine {len(files)} files: {t_open:.2f} s (CPU {CPU['open 365 files']:.2f} s), "
        f"{n_refs(base)} refs; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    gc.collect()
    before = rss_bytes()
    t_cat, big = timed(
        f"concat x{args.repeat}",
        lambda: xr.concat([base] * args.repeat, dim="time", **CONCAT_KW),
        args.profile,
    )
    gc.collect()
    grown = rss_bytes() - before
    refs = n_refs(big)
    per_ref = grown / refs
    print(
        f"concat x{args.repeat}: {t_cat:.2f} s, {refs} refs over "
        f"{len(big['air'].data.manifest.paths)} paths"
    )
    print(
        f"bytes/ref: {per_ref:.1f} (RSS growth {grown / 2**20:.1f} MiB; manifests' nbytes "
        f"{manifest_bytes(big) / refs:.1f}/ref; loaded time coordinate "
        f"{big['time'].nbytes / refs:.1f}/ref) target <= 24: {verdict(per_ref, 24)}"
    )

    # 3. writing the big JSON -----------------------------------------------------------
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "big.json")
        t_write, _ = timed(
            "write JSON",
            lambda: big.virtualize.to_kerchunk(out, format="json"),
            args.profile,
        )
        size = os.path.getsize(out)
    print(
        f"write: {refs} refs as kerchunk JSON in {t_write:.2f} s (CPU "
        f"{CPU['write JSON']:.2f} s, {size / 2**20:.0f} MiB) "
        f"target < 2: {verdict(t_write, 2)}"
    )
    big = xr.Dataset()  # release the 1.17M references
    gc.collect()

    # 2. combining many single-file datasets --------------------------------------------
    one = open_virtual_dataset(files[0], loadable_variables=["time", "lat", "lon"])
    n_t = one.sizes["time"]
    step = one["time"].values[1] - one["time"].values[0]
    dss = []
    for i in range(args.datasets):
        path = f"file:///synthetic/air_{i:05d}.nc"
        ds = one.virtualize.rename_paths(path)
        times = one["time"].values + step * n_t * i
        dss.append(ds.assign_coords(time=("time", times, one["time"].attrs)))
    t_comb, comb = timed(
        f"concat {args.datasets}",
        lambda: xr.concat(dss, dim="time", **CONCAT_KW),
        args.profile,
    )
    ok = len(comb["air"].data.manifest.paths) == args.datasets
    print(
        f"combine: xr.concat of {args.datasets} virtual datasets in {t_comb:.2f} s (CPU "
        f"{CPU[f'concat {args.datasets}']:.2f} s, paths ok: {ok}) target < 5: "
        f"{verdict(t_comb, 5)}"
    )
    rng = np.random.default_rng(0)
    shuffled = [dss[i] for i in rng.permutation(len(dss))]
    t_bc, _ = timed(
        f"combine_by_coords {args.datasets}",
        lambda: xr.combine_by_coords(shuffled, data_vars=None, **CONCAT_KW),
        args.profile,
    )
    print(
        f"combine: xr.combine_by_coords of {args.datasets} (shuffled) in {t_bc:.2f} s (CPU "
        f"{CPU[f'combine_by_coords {args.datasets}']:.2f} s)"
    )


if __name__ == "__main__":
    main()
