"""A/B: the same workloads with two source trees of virtualizarr, alternated run by run.

    python benchmarks/ab_trees.py --before /tmp/old-checkout --after . [--runs 5]
        [--workloads daily,many,records] [--corpus /work/corpus]

Each run is a fresh process of ``benchmarks/run_peers.py ours WORKLOAD`` with
``PYTHONPATH`` set to one tree (its own ``run_peers.py``), so what differs is the code
under test, not the harness's Python. Prints, per workload, the median wall time and peak
RSS of each tree and their ratio (after/before): the figure to quote when a change must
stay "within noise" of what it replaced. Make the *before* tree with
``git archive REV | tar -x -C DIR``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time


def run_once(root: str, work: str, corpus: str) -> tuple[float, float]:
    """One whole-process run: (wall seconds, peak RSS in MiB)."""
    env = dict(os.environ, PYTHONPATH=root)
    out = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"ab-{os.getpid()}-{work}.json")
    cmd = [sys.executable, f"{root}/benchmarks/run_peers.py", "ours", work, corpus, out, "true"]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status:
        raise SystemExit(f"{root} failed on {work}:\n{err.decode()}")
    return wall, usage.ru_maxrss / 1024


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--before", required=True, help="source tree of the old code")
    p.add_argument("--after", default=".", help="source tree of the new code")
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--workloads", default="daily,many,records")
    p.add_argument("--corpus", default="/work/corpus")
    args = p.parse_args(argv)
    trees = {"before": os.path.abspath(args.before), "after": os.path.abspath(args.after)}
    work = args.workloads.split(",")
    subprocess.run(
        [sys.executable, "-m", "compileall", "-q", *(f"{t}/virtualizarr" for t in trees.values())],
        check=True,
    )
    res: dict[tuple[str, str], list[tuple[float, float]]] = {
        (t, w): [] for t in trees for w in work
    }
    for _ in range(args.runs):
        for w in work:
            for name, root in trees.items():  # alternate: the machine's drift hits both
                res[(name, w)].append(run_once(root, w, args.corpus))
    print(f"runs={args.runs} loadavg={os.getloadavg()[0]:.2f} cpus={os.cpu_count()}")
    for w in work:
        b = statistics.median(x for x, _ in res[("before", w)])
        a = statistics.median(x for x, _ in res[("after", w)])
        bm = statistics.median(m for _, m in res[("before", w)])
        am = statistics.median(m for _, m in res[("after", w)])
        print(
            f"{w:8s} before {b:6.2f} s {bm:6.0f} MiB | after {a:6.2f} s {am:6.0f} MiB | "
            f"ratio {a / b:5.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
