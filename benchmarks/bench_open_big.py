"""Opening 1.17M references: manifest stores and kerchunk JSON, against fsspec + zarr.

    python benchmarks/bench_open_big.py [--corpus /work/corpus] [--repeat 100]
        [--workdir /tmp/bench_open_big] [--runs 5] [--cases store,json,fsspec,...]
        [--rebuild]

Builds once (kept in ``--workdir``; ``--rebuild`` to redo it) the daily corpus's 365 files
virtualized and concatenated with itself ``--repeat`` times along ``time`` (1,168,000
references over 365 paths at 100), written as

* ``store.zarr``: a manifest store in the default (binary) manifest format;
* ``store-json.zarr``: the same with ``manifest_format="json"``;
* ``refs.json``: kerchunk JSON.

Then, for each run and each case in turn (the cases alternate, so load drifts hit all of
them), one fresh process imports xarray and virtualizarr (and fsspec for the fsspec case),
opens the references and reads one time step of ``air``. The imports include what xarray
imports on its first ``open_dataset`` whatever the engine -- every installed backend's
module, through ``xr.backends.list_engines()`` (cfgrib alone takes 0.3 s here), and
``dask.array`` -- so that ``open`` measures opening. The process prints its own timings
-- ``imports``, ``open`` (``xr.open_dataset``) and ``read``
(``ds["air"].isel(time=t).values``) -- and the harness measures the whole process's wall
time and peak RSS (its ``VmHWM``; ``os.wait4`` as a cross-check). Cases:

* ``store``: ``xr.open_dataset("store.zarr", engine="virtualizarr")``;
* ``store-json``: the same on ``store-json.zarr``;
* ``json``: ``xr.open_dataset("refs.json", engine="virtualizarr")``;
* ``fsspec``: fsspec's ``ReferenceFileSystem`` + xarray's zarr engine on ``refs.json``
  (as :func:`virtualizarr.testing.open_kerchunk_refs` opens it);
* ``imports``: the imports alone (the floor under the whole-process figures).

``--engines class`` passes the backend classes instead of the engine names, so xarray
does not import the other installed backends: the whole-process figures are then those of
an environment with only xarray, zarr, dask and virtualizarr.

It prints every run, then medians and the ratios the issue asks for: ``json`` open time
over ``fsspec`` open time (target <= 0.35), and ``store`` open time (target <= 0.15 s) and
whole-process peak RSS (target <= 200 MiB).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import inspect
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

TIME_STEP = 123_456
"""The time step read (of 292,000 at --repeat 100)."""

CASES = ("store", "store-json", "json", "fsspec", "imports")


# ---------------------------------------------------------------------- the child
def child(case: str, workdir: str, engines: str) -> None:
    """Open one case and read one time step; print the timings as JSON (this is timed)."""
    t_start = time.perf_counter()
    import xarray as xr
    from xarray.backends.zarr import ZarrBackendEntrypoint

    from virtualizarr.backend import VirtualiZarrBackendEntrypoint

    if case == "fsspec":
        import fsspec  # noqa: F401
    # Imports xarray makes on the first open_dataset of a process, for every engine alike:
    # given an engine by name, it loads every installed backend's module (here cfgrib,
    # rioxarray and rasterio...); wrapping a lazily indexed array imports dask.array.
    ours: Any = VirtualiZarrBackendEntrypoint
    zarr_engine: Any = ZarrBackendEntrypoint
    if engines == "name":
        xr.backends.list_engines()
        ours, zarr_engine = "virtualizarr", "zarr"
    with contextlib.suppress(ImportError):
        import dask.array  # noqa: F401
    t_imports = time.perf_counter() - t_start
    if case == "imports":
        print(json.dumps({"imports": t_imports, "hwm": _hwm()}))
        return
    path = {
        "store": "store.zarr",
        "store-json": "store-json.zarr",
        "json": "refs.json",
        "fsspec": "refs.json",
    }[case]
    target = os.path.join(workdir, path)
    t0 = time.perf_counter()
    if case == "fsspec":  # as virtualizarr.testing.open_kerchunk_refs does
        ds = xr.open_dataset(
            "reference://",
            engine=zarr_engine,
            backend_kwargs={
                "consolidated": False,
                "zarr_format": 2,
                "storage_options": {"fo": target, "asynchronous": True},
            },
        )
    else:
        ds = xr.open_dataset(target, engine=ours)
    t_open = time.perf_counter() - t0
    t0 = time.perf_counter()
    values = ds["air"].isel(time=TIME_STEP).values
    t_read = time.perf_counter() - t0
    assert values.shape == (73, 144), values.shape
    print(json.dumps({"imports": t_imports, "open": t_open, "read": t_read, "hwm": _hwm()}))


def _hwm() -> float:
    """This process's peak resident memory so far (VmHWM), in MiB."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


# ---------------------------------------------------------------------- building
def build(corpus: str, repeat: int, workdir: Path) -> None:
    """Write the three reference sets of the 365 files concatenated ``repeat`` times."""
    import xarray as xr

    from virtualizarr import open_virtual_mfdataset

    files = sorted(glob.glob(os.path.join(corpus, "daily", "*.nc")))
    t0 = time.perf_counter()
    base = open_virtual_mfdataset(
        files,
        combine="nested",
        concat_dim="time",
        loadable_variables=["time", "lat", "lon"],
        progress=False,
    )
    kw = {"coords": "minimal", "compat": "override", "combine_attrs": "override", "join": "exact"}
    big = xr.concat([base] * repeat, dim="time", **kw)  # type: ignore[call-overload]
    refs = sum(len(big[v].data.manifest) for v in ("air", "uwnd", "vwnd", "rhum"))
    print(f"built {refs} references in {time.perf_counter() - t0:.1f} s")
    workdir.mkdir(parents=True, exist_ok=True)
    takes_format = "manifest_format" in inspect.signature(big.virtualize.to_zarr).parameters
    for name, write in (
        ("store.zarr", lambda p: big.virtualize.to_zarr(p, mode="w")),
        (
            "store-json.zarr",
            lambda p: (
                big.virtualize.to_zarr(p, mode="w", manifest_format="json")
                if takes_format
                else big.virtualize.to_zarr(p, mode="w")
            ),
        ),
        ("refs.json", lambda p: big.virtualize.to_kerchunk(p, format="json", mode="w")),
    ):
        t0 = time.perf_counter()
        write(workdir / name)
        print(
            f"wrote {name}: {_disk(workdir / name) / 2**20:.1f} MiB in "
            f"{time.perf_counter() - t0:.1f} s"
        )
    (workdir / "built").write_text(json.dumps({"repeat": repeat, "references": refs}))


def _disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


# ---------------------------------------------------------------------- the harness
def run_one(cmd: list[str]) -> tuple[float, float, dict[str, float]]:
    """Run ``cmd``; return (wall seconds, peak RSS in MiB, the JSON it printed).

    The peak is the larger of ``os.wait4``'s (which Linux carries over from the forking
    process, this small harness) and the child's own ``VmHWM``.
    """
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    out = proc.stdout.read()
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    proc.stdout.close()
    proc.stderr.close()
    if proc.returncode:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err.decode()}")
    inner = json.loads(out.decode().strip().splitlines()[-1])
    return wall, max(usage.ru_maxrss / 1024, inner.pop("hwm", 0.0)), inner


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--corpus", default="/work/corpus")
    p.add_argument("--repeat", type=int, default=100)
    p.add_argument("--workdir", default="/tmp/bench_open_big")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--cases", default=",".join(CASES))
    p.add_argument("--rebuild", action="store_true")
    p.add_argument(
        "--engines",
        choices=("name", "class"),
        default="name",
        help="name: engine='virtualizarr' / 'zarr', with which xarray imports every "
        "installed backend first; class: the backend classes, which skips that",
    )
    args = p.parse_args(argv)
    workdir = Path(args.workdir)
    if args.rebuild or not (workdir / "built").exists():
        # in its own process: this one stays small, and its children's peak RSS their own
        cmd = [sys.executable, __file__, "build", args.corpus, str(args.repeat), str(workdir)]
        subprocess.run(cmd, check=True)
    info = json.loads((workdir / "built").read_text())
    cases = args.cases.split(",")
    print(
        f"{info['references']} references (x{info['repeat']}); runs={args.runs} "
        f"engines by {args.engines}; cpus={os.cpu_count()} loadavg={os.getloadavg()[0]:.2f}"
    )
    for name in ("store.zarr", "store-json.zarr", "refs.json"):
        if (workdir / name).exists():
            print(f"  {name}: {_disk(workdir / name) / 2**20:.1f} MiB on disk")
    rows: dict[str, list[tuple[float, float, dict[str, float]]]] = {c: [] for c in cases}
    for run in range(args.runs):
        for case in cases:  # alternate the cases run by run
            cmd = [sys.executable, __file__, "child", case, str(workdir), args.engines]
            wall, peak, inner = run_one(cmd)
            rows[case].append((wall, peak, inner))
            print(
                f"run {run + 1} {case:10} process {wall:6.2f} s {peak:6.0f} MiB   "
                + "  ".join(f"{k} {v * 1e3:7.1f} ms" for k, v in inner.items())
            )
    print(f"\nmedians of {args.runs} alternating runs")
    print(f"{'case':10} {'open ms':>9} {'read ms':>9} {'process s':>10} {'peak MiB':>9}")
    med: dict[str, dict[str, float]] = {}
    for case, rs in rows.items():
        m = {
            "open": statistics.median(r[2].get("open", 0.0) for r in rs),
            "read": statistics.median(r[2].get("read", 0.0) for r in rs),
            "process": statistics.median(r[0] for r in rs),
            "peak": statistics.median(r[1] for r in rs),
        }
        med[case] = m
        print(
            f"{case:10} {m['open'] * 1e3:9.1f} {m['read'] * 1e3:9.1f} {m['process']:10.2f} "
            f"{m['peak']:9.0f}"
        )
    print()
    if "store" in med:
        s = med["store"]
        print(
            f"store: open {s['open']:.3f} s (target <= 0.15: "
            f"{'met' if s['open'] <= 0.15 else 'MISSED'}), whole-process peak "
            f"{s['peak']:.0f} MiB (target <= 200: {'met' if s['peak'] <= 200 else 'MISSED'})"
        )
    if "json" in med and "fsspec" in med:
        r = med["json"]["open"] / med["fsspec"]["open"]
        rp = med["json"]["process"] / med["fsspec"]["process"]
        print(
            f"json/fsspec: open {r:.2f} (target <= 0.35: {'met' if r <= 0.35 else 'MISSED'}), "
            f"whole process {rp:.2f}; peak RSS {med['json']['peak']:.0f} vs "
            f"{med['fsspec']['peak']:.0f} MiB"
        )
    return 0


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "child":
        child(sys.argv[2], sys.argv[3], sys.argv[4])
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "build":
        build(sys.argv[2], int(sys.argv[3]), Path(sys.argv[4]))
        sys.exit(0)
    sys.exit(main())
