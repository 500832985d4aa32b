"""Where the Icechunk pipeline's time goes: the ``icechunk`` workload of run_peers.py, split.

    python benchmarks/bench_icechunk.py [--corpus /work/corpus] [--runs 5]
        [--parallel true|serial|processes]

Each run is a fresh process doing what run_peers.py's ``icechunk`` workload does --
``open_virtual_mfdataset`` of the 365 daily files (loading time/lat/lon), ``to_icechunk``
into a new local repository, commit -- and timing its phases with ``perf_counter``:

* ``import``: ``import virtualizarr`` (xarray, zarr, ...);
* ``virtualize``: ``open_virtual_mfdataset`` (reading the files' metadata, concatenating);
* ``plan``: checking the write and building the documents and the reference calls
  (``plan_write`` and the grouping of references by checksum);
* ``icechunk``: the session writes (documents, native chunks, ``set_virtual_refs_arr``);
* ``commit``: ``session.commit``;
* ``exit``: the rest of the process's wall time (interpreter start and shutdown).

It prints every run, then the median of each phase and of the whole process, with the
load average (on the shared 2-core machine, medians of alternating runs are what to read).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

PHASES = ("import", "virtualize", "plan", "icechunk", "commit")


def one(corpus: str, out: str, parallel: str) -> None:
    """One run, in this process: print the phases' seconds as JSON."""
    t0 = time.perf_counter()
    from virtualizarr import open_virtual_mfdataset
    from virtualizarr.writers import icechunk as writer
    from virtualizarr.writers.icechunk_plan import plan_write

    t1 = time.perf_counter()
    par: bool | str = {"true": True, "serial": False}.get(parallel, parallel)
    ds = open_virtual_mfdataset(
        os.path.join(corpus, "daily", "*.nc"),
        combine="nested",
        concat_dim="time",
        loadable_variables=["time", "lat", "lon"],
        parallel=par,  # type: ignore[arg-type]
        progress=False,
    )
    t2 = time.perf_counter()
    ic = writer.import_icechunk()
    ic.set_logs_filter("error")
    prefix = "file://" + os.path.abspath(os.path.join(corpus, "daily")) + "/"
    cfg = ic.RepositoryConfig.default()
    cfg.set_virtual_chunk_container(
        ic.VirtualChunkContainer(prefix, ic.local_filesystem_store(prefix[7:]))
    )
    repo = ic.Repository.create(ic.local_filesystem_storage(out), config=cfg)
    session = repo.writable_session("main")
    store = session.store
    t3 = time.perf_counter()
    # what dataset_to_icechunk does, phase by phase (a new repository: nothing to read)
    plan = plan_write(
        [("", ds)],
        group=None,
        append_dim=None,
        mode="w-",
        read=lambda _: None,
        children=lambda _: [],
        values_of=lambda _: np.zeros(0),
    )
    calls, urls = writer._ref_calls_of(plan, None)
    writer.check_containers(store, urls)
    t4 = time.perf_counter()
    writer._execute(store, plan, calls, True)
    t5 = time.perf_counter()
    session.commit("365 days")
    t6 = time.perf_counter()
    times = dict(zip(PHASES, (t1 - t0, t2 - t1, t4 - t3, t5 - t4, t6 - t5), strict=True))
    print(json.dumps({**times, "calls": len(calls)}))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--corpus", default="/work/corpus")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--parallel", default="true")
    args = p.parse_args()
    rows: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.runs):
            out = os.path.join(tmp, f"r{i}.icechunk")
            cmd = [sys.executable, __file__, "one", args.corpus, out, args.parallel]
            start = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, check=True)
            wall = time.perf_counter() - start
            row = json.loads(done.stdout.strip().splitlines()[-1])
            row["exit"] = wall - sum(row[k] for k in PHASES)
            row["total"] = wall
            rows.append(row)
            print(
                f"run {i}: "
                + " ".join(f"{k} {row[k]:.3f}" for k in (*PHASES, "exit", "total"))
                + f" ({int(row['calls'])} set_virtual_refs_arr calls)"
            )
    print(
        f"medians of {args.runs} runs (parallel={args.parallel}, "
        f"load average {os.getloadavg()[0]:.2f}, {os.cpu_count()} CPUs):"
    )
    for k in (*PHASES, "exit", "total"):
        print(f"  {k:<10} {statistics.median(r[k] for r in rows):7.3f} s")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "one":
        one(*sys.argv[2:5])
    else:
        main()
