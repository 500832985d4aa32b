"""Whole-process timings of our workloads against the peers (kerchunk, VirtualiZarr 2.8).

Each run is a fresh process; wall time is ``time.perf_counter`` around it and peak RSS
comes from ``os.wait4`` (the largest single process in the run's tree, as
``/usr/bin/time`` reports it). Runs of the tools alternate so that drifts in machine load
hit each equally; medians and ratios are printed.

    python benchmarks/run_peers.py [--corpus /work/corpus] [--runs 3]
        [--peers-python /work/peers-venv/bin/python] [--workloads daily,many,records]
        [--formats-corpus /tmp/vz-bench-grib-tiff-fits]  # --workloads grib,tiff,fits

Workloads (the same as /work/shared/bench/peers.py):

* ``daily``: virtualize the 365 daily netCDF4 files (loading time/lat/lon), concatenate
  along time, write one kerchunk JSON;
* ``many``: the 100k-chunk netCDF4 file to kerchunk JSON;
* ``records``: the netCDF3 file with 20 record variables to kerchunk JSON;
* ``grib``, ``tiff``, ``tiffsmall``, ``fits``: every file of ``--formats-corpus`` (made
  by ``benchmarks/formats_corpus.py``: 8 GRIB 2 forecasts of 40 messages, 50 GeoTIFF
  scenes of 1024 tiles, 20 small GeoTIFFs of 64 tiles, 50 FITS files of 4 image
  extensions) to one kerchunk JSON each, against
  kerchunk 0.2.10 (``scan_grib``, ``tiff_to_zarr``, ``fits.process_file`` of every image
  extension). The peer for these is kerchunk alone (VirtualiZarr 2.8 has no such
  readers in the peers' venv).

``--without-dask`` runs our workloads as if dask were not installed (the peers' venv has
no dask). With dask installed, xarray imports ``dask.array`` (and through it scipy) the
first time it wraps a non-NumPy array, which costs about 0.5-0.8 s per process.

Internally, ``python run_peers.py ours WORKLOAD CORPUS OUT.json [PARALLEL]`` runs one of
our workloads (that is the process being timed).
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import subprocess
import sys
import tempfile
import time

TARGETS = {
    # workload: (max ours/faster-peer, max ours/kerchunk, max ours/VirtualiZarr)
    "daily": (0.25, None, None),
    "many": (None, 0.6, None),
    "records": (None, 1.0, 0.35),
    "grib": (None, 1.0, None),
    "tiff": (None, 1.0, None),
    "tiffsmall": (None, 1.0, None),
    "fits": (None, 1.0, None),
}
FORMAT_FILES = {
    "grib": "grib/*.grib2",
    "tiff": "tiff/*.tif",
    "tiffsmall": "tiff_small/*.tif",
    "fits": "fits/*.fits",
}
"""Workloads over --formats-corpus: one reference file per source file."""
DEFAULT_FORMATS_CORPUS = "/tmp/vz-bench-grib-tiff-fits"
DEFAULT_PEERS_SCRIPT = "/work/shared/bench/peers.py"
HIDE_DASK_ENV = "VIRTUALIZARR_BENCH_HIDE_DASK"


# ---------------------------------------------------------------------- our workloads
def ours(work: str, corpus: str, out: str, parallel: str = "true") -> None:
    """Run one of our workloads in this process (this is what gets timed)."""
    from virtualizarr import open_virtual_dataset, open_virtual_mfdataset

    par: bool | str = {"serial": False, "true": True}.get(parallel, parallel)
    if work in FORMAT_FILES:
        for i, path in enumerate(sorted(glob.glob(os.path.join(corpus, FORMAT_FILES[work])))):
            one = open_virtual_dataset(path)
            one.virtualize.to_kerchunk(f"{out}.{i}.json", format="json", mode="w")
        return
    if work == "daily":
        ds = open_virtual_mfdataset(
            os.path.join(corpus, "daily", "*.nc"),
            combine="nested",
            concat_dim="time",
            loadable_variables=["time", "lat", "lon"],
            parallel=par,  # type: ignore[arg-type]
            progress=False,
        )
    else:
        name = "manychunks.nc" if work == "many" else "records.nc"
        ds = open_virtual_dataset(os.path.join(corpus, name), loadable_variables=[])
    ds.virtualize.to_kerchunk(out, format="json", mode="w")


def kerchunk_formats(work: str, corpus: str, out: str) -> None:
    """kerchunk's readers on the same files (run by the peers' python)."""
    import warnings

    import ujson

    warnings.filterwarnings("ignore")
    paths = sorted(glob.glob(os.path.join(corpus, FORMAT_FILES[work])))
    for i, path in enumerate(paths):
        refs: object
        if work == "grib":
            from kerchunk.grib2 import scan_grib

            refs = scan_grib(path)
        elif work in ("tiff", "tiffsmall"):
            from kerchunk.tiff import tiff_to_zarr

            refs = tiff_to_zarr(path)
        else:
            from kerchunk.fits import process_file

            refs = process_file(path, extension=[1, 2, 3, 4])
            # its metadata values come back as bytes, which JSON cannot hold
            refs = {k: v.decode() if isinstance(v, bytes) else v for k, v in refs.items()}
        with open(f"{out}.{i}.json", "w") as f:
            ujson.dump(refs, f)


# ---------------------------------------------------------------------- harness
def timed(cmd: list[str], env: dict[str, str] | None = None) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MiB). Raise if it fails."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stderr.close()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode()}")
    return wall, usage.ru_maxrss / 1024  # Linux reports KiB


def commands(
    work: str,
    corpus: str,
    outdir: str,
    peers_python: str | None,
    peers: str,
    parallel: str,
    formats_corpus: str = DEFAULT_FORMATS_CORPUS,
) -> dict[str, list[str]]:
    out = f"{outdir}/ours-{work}.json"
    if work in FORMAT_FILES:
        cmds = {"ours": [sys.executable, __file__, "ours", work, formats_corpus, out, parallel]}
        if peers_python:
            kc_out = f"{outdir}/kc-{work}.json"
            cmds["kc"] = [peers_python, __file__, "kerchunk", work, formats_corpus, kc_out]
        return cmds
    cmds = {"ours": [sys.executable, __file__, "ours", work, corpus, out, parallel]}
    if peers_python:
        for tool in ("kc", "vz"):
            cmds[tool] = [peers_python, peers, tool, work, corpus, f"{outdir}/{tool}-{work}.json"]
    return cmds


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--corpus", default="/work/corpus")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--peers-python", default=None, help="python of the peers' venv")
    p.add_argument("--peers-script", default=DEFAULT_PEERS_SCRIPT)
    p.add_argument("--workloads", default="daily,many,records")
    p.add_argument(
        "--formats-corpus",
        default=DEFAULT_FORMATS_CORPUS,
        help="directory made by benchmarks/formats_corpus.py (grib, tiff, fits workloads)",
    )
    p.add_argument(
        "--parallel",
        default="true",
        help="how our daily run scans files: true (the library's default), threads, "
        "processes, serial, dask",
    )
    p.add_argument(
        "--without-dask",
        action="store_true",
        help="run ours as if dask were not installed (as in the peers' venv)",
    )
    args = p.parse_args(argv)

    # Measure our package as pip installs it: with its bytecode compiled, like the peers'
    # site-packages. (An editable checkout under PYTHONDONTWRITEBYTECODE=1, as on the
    # development machines, would otherwise recompile every module in every process.)
    import compileall

    import virtualizarr

    compileall.compile_dir(os.path.dirname(virtualizarr.__file__), quiet=1)

    print(
        f"runs={args.runs} corpus={args.corpus} cpus={os.cpu_count()} "
        f"loadavg={os.getloadavg()[0]:.2f} parallel={args.parallel} "
        f"without_dask={args.without_dask}"
    )
    ours_env = dict(os.environ, **({HIDE_DASK_ENV: "1"} if args.without_dask else {}))
    header = f"{'workload':8} {'tool':5} {'median s':>9} {'min s':>7} {'max s':>7} {'peak MiB':>9}"
    with tempfile.TemporaryDirectory() as outdir:
        for work in args.workloads.split(","):
            cmds = commands(
                work,
                args.corpus,
                outdir,
                args.peers_python,
                args.peers_script,
                args.parallel,
                args.formats_corpus,
            )
            times: dict[str, list[float]] = {k: [] for k in cmds}
            rss: dict[str, list[float]] = {k: [] for k in cmds}
            for _ in range(args.runs):
                for tool, cmd in cmds.items():  # alternate the tools run by run
                    wall, peak = timed(cmd, ours_env if tool == "ours" else None)
                    times[tool].append(wall)
                    rss[tool].append(peak)
            print(header)
            med = {k: statistics.median(v) for k, v in times.items()}
            mem = {k: statistics.median(v) for k, v in rss.items()}
            for tool in cmds:
                print(
                    f"{work:8} {tool:5} {med[tool]:9.2f} {min(times[tool]):7.2f} "
                    f"{max(times[tool]):7.2f} {mem[tool]:9.0f}"
                )
            if "kc" in med:
                report(work, med, mem)
    return 0


def report(work: str, med: dict[str, float], mem: dict[str, float]) -> None:
    if "vz" not in med:  # the format workloads: kerchunk is the peer
        r_kc, m_kc = med["ours"] / med["kc"], mem["ours"] / mem["kc"]
        print(
            f"{work:8} ratios time: ours/kerchunk {r_kc:.2f};  peak RSS: ours/kerchunk {m_kc:.2f}"
        )
        target = TARGETS[work][1]
        if target is not None:
            verdict = "met" if r_kc <= target else "MISSED"
            print(f"{work:8} target ours/kerchunk <= {target}: {r_kc:.2f} {verdict}")
        print()
        return
    r_kc, r_vz = med["ours"] / med["kc"], med["ours"] / med["vz"]
    r_best = med["ours"] / min(med["kc"], med["vz"])
    m_kc, m_vz = mem["ours"] / mem["kc"], mem["ours"] / mem["vz"]
    print(
        f"{work:8} ratios time: ours/kerchunk {r_kc:.2f}  ours/VirtualiZarr {r_vz:.2f}  "
        f"ours/faster {r_best:.2f};  peak RSS: ours/kerchunk {m_kc:.2f}  "
        f"ours/VirtualiZarr {m_vz:.2f}"
    )
    best, t_kc, t_vz = TARGETS.get(work, (None, None, None))
    checks = [(best, r_best, "faster peer"), (t_kc, r_kc, "kerchunk"), (t_vz, r_vz, "VirtualiZarr")]
    for target, ratio, whom in checks:
        if target is not None:
            verdict = "met" if ratio <= target else "MISSED"
            print(f"{work:8} target ours/{whom} <= {target}: {ratio:.2f} {verdict}")
    print()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "ours":
        if os.environ.get(HIDE_DASK_ENV):
            sys.modules["dask"] = None  # type: ignore[assignment]  # import dask fails
        ours(*sys.argv[2:6])
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "kerchunk":
        kerchunk_formats(*sys.argv[2:5])
        sys.exit(0)
    sys.exit(main())
