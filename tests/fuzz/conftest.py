"""Fixtures of the reader fuzz suite: the shared corpus and one run of every format's variants.

All variants of all formats run once per session, in worker subprocesses (see
:mod:`fuzzlib`), so the workers start once; each format's test then checks its share.
``VZ_FUZZ_EXAMPLES=<n>`` sets the number of variants per format (default
:data:`fuzzlib.DEFAULT_EXAMPLES`, chosen to keep the suite near 30 s on two cores) and
``VZ_FUZZ_WORKERS`` the number of worker processes.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

import fuzzlib


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The fuzz corpus (built once per recipe under the temporary directory)."""
    return fuzzlib.corpus_dir()


@pytest.fixture(scope="session")
def fuzz_results(corpus: Path) -> dict[str, list[dict[str, Any]]]:
    """Outcomes of every format's variants, run in worker subprocesses."""
    specs = [
        s for fmt in fuzzlib.FORMATS for s in fuzzlib.variants(fmt, corpus, fuzzlib.examples(fmt))
    ]
    workers = int(os.environ.get("VZ_FUZZ_WORKERS", min(4, os.cpu_count() or 2)))
    results = fuzzlib.Runner(corpus, workers=workers).run(specs)
    out: dict[str, list[dict[str, Any]]] = {fmt: [] for fmt in fuzzlib.FORMATS}
    for r in results:
        out[r["spec"].split("/", 1)[0]].append(r)
    return out
