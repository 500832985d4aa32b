"""Whole-process timings of our workloads against the peers (kerchunk, VirtualiZarr 2.8).

Each run is a fresh process; wall time is ``time.perf_counter`` around it and peak RSS
comes from ``os.wait4`` (the largest single process in the run's tree, as
``/usr/bin/time`` reports it). Runs of the tools alternate so that drifts in machine load
hit each equally; medians and ratios are printed.

    python benchmarks/run_peers.py [--corpus /work/corpus] [--runs 3]
        [--peers-python /work/peers-venv/bin/python] [--workloads daily,many,records]

Workloads (the same as /work/shared/bench/peers.py):

* ``daily``: virtualize the 365 daily netCDF4 files (loading time/lat/lon), concatenate
  along time, write one kerchunk JSON;
* ``many``: the 100k-chunk netCDF4 file to kerchunk JSON;
* ``records``: the netCDF3 file with 20 record variables to kerchunk JSON;
* ``icechunk``: the ``daily`` files into a new local Icechunk repository
  (``to_icechunk``, then commit), against VirtualiZarr 2.8's same pipeline
  (``benchmarks/peers_icechunk.py``; the peers' venv needs ``pip install icechunk``).
  ``benchmarks/bench_icechunk.py`` splits our side into phases.

Format workloads (against VirtualiZarr 2.8, the peer that reads these formats; their
inputs are made once under ``--formats-corpus`` by ``prepare_formats``):

* ``zarr2`` / ``zarr3``: a Zarr v2 (consolidated) / v3 store written by zarr-python, 20,000
  chunk objects, to kerchunk JSON (VirtualiZarr's ``ZarrParser``);
* ``dmrpp``: the DMR++ sidecar of the 100k-chunk netCDF4 file to kerchunk JSON
  (VirtualiZarr's ``DMRPPParser``).

The peer's side runs as ``PEERS_PYTHON run_peers.py peer vz WORKLOAD CORPUS OUT.json``
(only the standard library is imported before the peer's own package).

* ``grib``, ``tiff``, ``tiffsmall``, ``fits``: every file of ``--gtf-corpus`` (made by
  ``benchmarks/formats_corpus.py``: 8 GRIB 2 forecasts of 40 messages, 50 GeoTIFF scenes
  of 1024 tiles, 20 small GeoTIFFs of 64 tiles, 50 FITS files of 4 image extensions) to
  one kerchunk JSON each, against kerchunk 0.2.10 (``scan_grib``, ``tiff_to_zarr``,
  ``fits.process_file`` of every image extension). The peer for these is kerchunk alone
  (VirtualiZarr 2.8 has no such readers in the peers' venv).

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
from typing import Any

TARGETS = {
    # workload: (max ours/faster-peer, max ours/kerchunk, max ours/VirtualiZarr)
    # daily/many/records: speed round 2 (issue 15), whole process, to the faster peer
    "daily": (0.15, None, None),
    "many": (0.5, None, None),
    "records": (0.9, None, None),
    "icechunk": (None, None, 0.25),
    "zarr2": (None, None, 1.0),
    "zarr3": (None, None, 1.0),
    "dmrpp": (None, None, 1.0),
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
"""Workloads over --gtf-corpus: one reference file per source file, kerchunk the peer."""
DEFAULT_GTF_CORPUS = "/tmp/vz-bench-grib-tiff-fits"
FORMAT_WORKLOADS = ("zarr2", "zarr3", "dmrpp")
"""Workloads whose inputs live in the formats corpus and whose only peer is VirtualiZarr."""
FORMAT_INPUTS = {"zarr2": "store_v2.zarr", "zarr3": "store_v3.zarr", "dmrpp": "manychunks.nc.dmrpp"}
DEFAULT_FORMATS_CORPUS = os.path.join(tempfile.gettempdir(), "vz-formats-corpus")
DEFAULT_PEERS_SCRIPT = "/work/shared/bench/peers.py"
PEERS_ICECHUNK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "peers_icechunk.py")
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
    if work in FORMAT_WORKLOADS:
        path = os.path.join(corpus, FORMAT_INPUTS[work])
        ds = open_virtual_dataset(path, loadable_variables=[])
    elif work in ("daily", "icechunk"):
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
    if work == "icechunk":
        write_icechunk(ds, os.path.join(corpus, "daily"), out)
    else:
        ds.virtualize.to_kerchunk(out, format="json", mode="w")


def write_icechunk(ds: Any, data_dir: str, repo_dir: str) -> None:
    """``to_icechunk`` into a new local repository with a container for ``data_dir``; commit."""
    import icechunk

    icechunk.set_logs_filter("error")
    prefix = "file://" + os.path.abspath(data_dir) + "/"
    cfg = icechunk.RepositoryConfig.default()
    cfg.set_virtual_chunk_container(
        icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(prefix[7:]))
    )
    repo = icechunk.Repository.create(icechunk.local_filesystem_storage(repo_dir), config=cfg)
    session = repo.writable_session("main")
    ds.virtualize.to_icechunk(session.store)
    session.commit("365 days")


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


def peer_vz(work: str, corpus: str, out: str) -> None:
    """A format workload with VirtualiZarr 2.8 (run by the peers' Python)."""
    import warnings

    warnings.filterwarnings("ignore")
    from obspec_utils.registry import ObjectStoreRegistry
    from obstore.store import LocalStore
    from virtualizarr.parsers import DMRPPParser, ZarrParser

    from virtualizarr import open_virtual_dataset  # the peer's package, in its venv

    registry = ObjectStoreRegistry({"file://": LocalStore()})
    parser = DMRPPParser() if work == "dmrpp" else ZarrParser()
    url = "file://" + os.path.join(corpus, FORMAT_INPUTS[work])
    ds = open_virtual_dataset(url=url, parser=parser, registry=registry, loadable_variables=[])
    ds.vz.to_kerchunk(out, format="json")


def prepare_formats(directory: str, corpus: str) -> None:
    """Write the format workloads' inputs into ``directory`` (once; kept between runs)."""
    import warnings
    from pathlib import Path

    import numcodecs
    import numpy as np
    import xarray as xr

    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    ds = xr.Dataset(
        {"temp": (("t", "y", "x"), rng.normal(280, 5, (20_000, 8, 8)).astype("f4"))},
        coords={"t": np.arange(20_000.0)},
    )
    for fmt in (2, 3):
        store = d / FORMAT_INPUTS[f"zarr{fmt}"]
        if not (store / ".complete").exists():
            comp = {"compressor": numcodecs.Zlib(1)} if fmt == 2 else {}
            ds["temp"].encoding = {"chunks": (1, 8, 8), **comp}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.to_zarr(store, mode="w", zarr_format=fmt, consolidated=True)
            (store / ".complete").write_text("")
    sidecar = d / FORMAT_INPUTS["dmrpp"]
    if not sidecar.exists():
        sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        from tests.readers.dmrpp_cases import write_dmrpp

        source = Path(corpus) / "manychunks.nc"
        write_dmrpp(source, sidecar, href=source.as_uri())


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
    work: str, corpus: str, outdir: str, peers_python: str | None, peers: str, parallel: str
) -> dict[str, list[str]]:
    out = f"{outdir}/ours-{work}" + (".repo" if work == "icechunk" else ".json")
    cmds = {"ours": [sys.executable, __file__, "ours", work, corpus, out, parallel]}
    if work in FORMAT_FILES:
        if peers_python:
            kc_out = f"{outdir}/kc-{work}.json"
            cmds["kc"] = [peers_python, __file__, "kerchunk", work, corpus, kc_out]
        return cmds
    if work == "icechunk":
        if peers_python:
            cmds["vz"] = [peers_python, PEERS_ICECHUNK, corpus, f"{outdir}/vz-{work}.repo"]
        return cmds
    if work in FORMAT_WORKLOADS:
        if peers_python:
            cmds["vz"] = [peers_python, __file__, "peer", "vz", work, corpus, f"{outdir}/vz.json"]
        return cmds
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
    p.add_argument(
        "--workloads",
        default="daily,many,records",
        help="also: icechunk," + ",".join((*FORMAT_WORKLOADS, *FORMAT_FILES)),
    )
    p.add_argument("--formats-corpus", default=DEFAULT_FORMATS_CORPUS)
    p.add_argument(
        "--gtf-corpus",
        default=DEFAULT_GTF_CORPUS,
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
    # the peers must import their own VirtualiZarr, not a checkout on PYTHONPATH
    peers_env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    header = f"{'workload':8} {'tool':5} {'median s':>9} {'min s':>7} {'max s':>7} {'peak MiB':>9}"
    workloads = args.workloads.split(",")
    if any(w in FORMAT_WORKLOADS for w in workloads):
        prepare_formats(args.formats_corpus, args.corpus)
    with tempfile.TemporaryDirectory() as outdir:
        for work in workloads:
            corpus = (
                args.formats_corpus
                if work in FORMAT_WORKLOADS
                else args.gtf_corpus
                if work in FORMAT_FILES
                else args.corpus
            )
            cmds = commands(
                work, corpus, outdir, args.peers_python, args.peers_script, args.parallel
            )
            times: dict[str, list[float]] = {k: [] for k in cmds}
            rss: dict[str, list[float]] = {k: [] for k in cmds}
            for _ in range(args.runs):
                for tool, cmd in cmds.items():  # alternate the tools run by run
                    clear_outputs(cmd[-2] if tool == "ours" else cmd[-1])
                    wall, peak = timed(cmd, ours_env if tool == "ours" else peers_env)
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
            if "kc" in med and "vz" not in med:
                report_kc(work, med, mem)
            elif "kc" in med:
                report(work, med, mem)
            elif "vz" in med:
                report_vz(work, med, mem)
    return 0


def clear_outputs(path: str) -> None:
    """Remove a previous run's output repository (a new one is created per run)."""
    import shutil

    if path.endswith(".repo"):
        shutil.rmtree(path, ignore_errors=True)


def report_kc(work: str, med: dict[str, float], mem: dict[str, float]) -> None:
    r_kc, m_kc = med["ours"] / med["kc"], mem["ours"] / mem["kc"]
    print(f"{work:8} ratios time: ours/kerchunk {r_kc:.2f};  peak RSS: ours/kerchunk {m_kc:.2f}")
    target = TARGETS[work][1]
    if target is not None:
        verdict = "met" if r_kc <= target else "MISSED"
        print(f"{work:8} target ours/kerchunk <= {target}: {r_kc:.2f} {verdict}")
    print()


def report_vz(work: str, med: dict[str, float], mem: dict[str, float]) -> None:
    r_vz, m_vz = med["ours"] / med["vz"], mem["ours"] / mem["vz"]
    print(
        f"{work:8} ratios time: ours/VirtualiZarr {r_vz:.2f};  "
        f"peak RSS: ours/VirtualiZarr {m_vz:.2f}"
    )
    target = TARGETS.get(work, (None, None, None))[2]
    if target is not None:
        verdict = "met" if r_vz <= target else "MISSED"
        print(f"{work:8} target ours/VirtualiZarr <= {target}: {r_vz:.2f} {verdict}")
    print()


def report(work: str, med: dict[str, float], mem: dict[str, float]) -> None:
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
    if len(sys.argv) > 1 and sys.argv[1] == "peer":
        peer_vz(*sys.argv[3:6])
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "kerchunk":
        kerchunk_formats(*sys.argv[2:5])
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "ours":
        if os.environ.get(HIDE_DASK_ENV):
            sys.modules["dask"] = None  # type: ignore[assignment]  # import dask fails
        ours(*sys.argv[2:6])
        sys.exit(0)
    sys.exit(main())
