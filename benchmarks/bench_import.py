"""What importing virtualizarr costs a process, against importing xarray alone (issue 15).

    python benchmarks/bench_import.py [--runs 11] [--corpus /work/corpus] [--no-pipeline]
        [--profile] [--root CHECKOUT]

Alternates fresh processes (so that load drifts hit every case alike) of this Python:

* ``xarray``: ``python -c "import xarray"`` -- the floor: virtualizarr imports xarray;
* ``virtualizarr``: ``python -c "import virtualizarr"`` (this checkout, or ``--root``'s:
  it goes first on ``PYTHONPATH``);
* ``pipeline``: import virtualizarr, ``open_virtual_dataset`` of one netCDF4 file of the
  daily corpus (its ``time``, ``lat`` and ``lon`` loaded, the default) and
  ``to_kerchunk(..., format="json")`` -- what a minimal script does.

Wall time is ``time.perf_counter()`` around each process. It prints every run, then per
case the median, min and max, the ratios to ``xarray`` (the issue's target:
``virtualizarr`` <= 1.3x ``xarray``, aimed at <= 1.2x), and which of zarr, dask, h5py,
pyarrow... each child process had imported when it ended (pyarrow comes with pandas,
hence with xarray, when installed). ``--profile`` then prints the largest cumulative
entries of ``python -X importtime -c "import virtualizarr"`` below xarray.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
"""The checkout whose virtualizarr is imported (``--root``)."""

WATCHED = ("zarr", "dask", "h5py", "numcodecs", "fsspec", "pyarrow", "tqdm", "icechunk")

REPORT = f"import sys; print(' '.join(m for m in {WATCHED!r} if m in sys.modules))"

CASES = {
    "xarray": "import xarray\n" + REPORT,
    "virtualizarr": "import virtualizarr\n" + REPORT,
    "pipeline": (
        "import sys, virtualizarr as vz\n"
        "ds = vz.open_virtual_dataset(sys.argv[1])\n"
        "ds.virtualize.to_kerchunk(sys.argv[2], format='json', mode='w')\n" + REPORT
    ),
}


_root = [ROOT]


def _env() -> dict[str, str]:
    path = os.environ.get("PYTHONPATH")
    return dict(os.environ, PYTHONPATH=str(_root[0]) + (os.pathsep + path if path else ""))


def run_once(case: str, args: list[str]) -> tuple[float, str]:
    """One fresh process: its wall time and the watched modules it imported."""
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", CASES[case], *args],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=_root[0],  # `python -c` puts the working directory first on sys.path
        check=False,
    )
    took = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"{case} failed:\n{done.stderr}")
    return took, done.stdout.strip()


def profile() -> None:
    """The largest cumulative import times under ``import virtualizarr`` (microseconds)."""
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", "import virtualizarr"],
        capture_output=True,
        text=True,
        env=_env(),
        cwd=_root[0],
        check=True,
    )
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative, name = line.split("|")
        rows.append((int(cumulative), name.rstrip()))
    top = [(c, n) for c, n in rows if not n.lstrip().startswith(("xarray", "pandas", "numpy"))]
    print("\nimport virtualizarr, largest cumulative entries (xarray, pandas, numpy left out):")
    for cumulative, name in sorted(top, reverse=True)[:25]:
        print(f"  {cumulative / 1000:8.1f} ms  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=11)
    parser.add_argument("--corpus", default="/work/corpus")
    parser.add_argument("--no-pipeline", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--root", default=str(ROOT), help="checkout to import virtualizarr from")
    args = parser.parse_args()
    _root[0] = Path(args.root).resolve()

    cases = ["xarray", "virtualizarr"]
    extra: dict[str, list[str]] = {"xarray": [], "virtualizarr": []}
    out_dir = tempfile.mkdtemp(prefix="bench_import_")
    if not args.no_pipeline:
        files = sorted(glob.glob(os.path.join(args.corpus, "daily", "*.nc")))
        if not files:
            raise SystemExit(f"no netCDF files in {args.corpus}/daily (--no-pipeline to skip)")
        cases.append("pipeline")
        extra["pipeline"] = [files[0], os.path.join(out_dir, "refs.json")]

    for case in cases:  # warm the OS caches (bytecode, shared libraries) once
        run_once(case, extra[case])
    times: dict[str, list[float]] = {c: [] for c in cases}
    imported: dict[str, str] = {}
    for i in range(args.runs):
        for case in cases:
            took, mods = run_once(case, extra[case])
            times[case].append(took)
            imported[case] = mods
            print(f"run {i + 1:2d}  {case:13s} {took:6.3f} s")

    print(f"\n{'case':13s} {'median':>7s} {'min':>7s} {'max':>7s}  ratio to xarray")
    base = statistics.median(times["xarray"])
    for case in cases:
        ts = times[case]
        med = statistics.median(ts)
        print(
            f"{case:13s} {med:7.3f} {min(ts):7.3f} {max(ts):7.3f}  {med / base:5.2f}x"
            f"   imports: {imported[case] or '-'}"
        )
    ratio = statistics.median(times["virtualizarr"]) / base
    verdict = "met" if ratio <= 1.3 else "NOT met"
    print(f"\nimport virtualizarr / import xarray = {ratio:.2f} (target <= 1.3: {verdict})")
    if args.profile:
        profile()


if __name__ == "__main__":
    main()
