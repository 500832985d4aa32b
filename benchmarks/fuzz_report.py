"""Fuzz report: how the readers fare on corrupt input, per format.

Runs N variants per format (truncations at every header offset and beyond, bit flips,
byte overwrites, huge length fields, structural JSON edits -- see
``tests/fuzz/fuzzlib.py``) in worker subprocesses, and prints one row per format: variants
tried, clean opens, project errors by class, the bad outcomes (crashes, hangs, memory,
foreign exceptions: all must be 0) and timing. Bad outcomes are listed afterwards with
their reproducer specs.

Usage::

    .venv/bin/python benchmarks/fuzz_report.py                  # 300 variants per format
    .venv/bin/python benchmarks/fuzz_report.py -n 2000 --workers 4
    .venv/bin/python benchmarks/fuzz_report.py --formats hdf5,netcdf3

Exit status 1 when any bad outcome occurred (known upstream hangs included: they are
reported, not hidden).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests" / "fuzz"))
sys.path.insert(0, str(REPO))

import fuzzlib  # noqa: E402 - needs the path above

ABBREV = {
    "FileFormatError": "FileFormat",
    "InvalidReferencesError": "InvalidRefs",
    "UnsupportedFeatureError": "Unsupported",
    "UnsupportedFileTypeError": "UnsupportedType",
    "ChunkReadError": "ChunkRead",
}


def _row(fmt: str, results: list[dict[str, Any]], wall: float) -> list[str]:
    s = fuzzlib.summarize(results)
    c = s["counts"]
    classes = ", ".join(
        f"{ABBREV.get(k, k)} {v}" for k, v in sorted(s["classes"].items(), key=lambda kv: -kv[1])
    )
    secs = sorted(s["secs"]) or [0.0]
    p99 = secs[min(len(secs) - 1, int(0.99 * len(secs)))]
    return [
        fmt,
        str(len(results)),
        str(c.get("ok", 0)),
        str(c.get("project", 0)),
        classes or "-",
        str(c.get("crash", 0)),
        str(c.get("hang", 0)),
        str(c.get("memory", 0)),
        str(c.get("foreign", 0)),
        f"{1000 * statistics.median(secs):.0f}/{1000 * p99:.0f}/{1000 * secs[-1]:.0f}",
        f"{wall:.1f}",
    ]


def _table(rows: list[list[str]]) -> str:
    head = [
        "format",
        "variants",
        "clean",
        "ours",
        "ours by class",
        "crash",
        "hang",
        "memory",
        "foreign",
        "ms med/p99/max",
        "wall s",
    ]
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    line = "  ".join("-" * w for w in widths)

    def fmt_row(r: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True))

    return "\n".join([fmt_row(head), line, *(fmt_row(r) for r in rows)])


def main(argv: list[str] | None = None) -> int:
    """Run the report; returns the exit status."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("-n", type=int, default=300, help="variants per format (default 300)")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--timeout", type=float, default=fuzzlib.TIME_BUDGET, help="s per variant")
    ap.add_argument("--formats", default=",".join(fuzzlib.FORMATS))
    args = ap.parse_args(argv)

    t0 = time.perf_counter()
    corpus = fuzzlib.corpus_dir()
    print(f"corpus {corpus} (digest {fuzzlib.corpus_digest(corpus)}), built/checked in "
          f"{time.perf_counter() - t0:.1f} s; {args.n} variants per format, "
          f"{args.workers} workers, {args.timeout:.0f} s budget, "
          f"{fuzzlib.MEMORY_BUDGET // 2**20} MiB tracemalloc bound")  # fmt: skip
    runner = fuzzlib.Runner(corpus, workers=args.workers, timeout=args.timeout)
    rows: list[list[str]] = []
    bad: list[dict[str, Any]] = []
    total = time.perf_counter()
    for fmt in args.formats.split(","):
        specs = fuzzlib.variants(fmt, corpus, args.n)
        t = time.perf_counter()
        results = runner.run(specs)
        rows.append(_row(fmt, results, time.perf_counter() - t))
        bad += fuzzlib.summarize(results)["bad"]
        print(f"  {fmt}: done", file=sys.stderr, flush=True)
    print()
    print(_table(rows))
    print(f"\ntotal {time.perf_counter() - total:.1f} s; bad outcomes: {len(bad)}")
    if bad:
        print(fuzzlib.describe_bad(bad, limit=30))
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
