"""The issue's append check on the daily corpus: 300 files committed, 65 appended, read back
by icechunk + xarray alone and compared with ``xr.open_mfdataset`` of the 365 files.

    python benchmarks/check_icechunk_append.py [--corpus /work/corpus] [--first 300]

Writes a new local repository in a temporary directory (a virtual chunk container for the
corpus directory): the first ``--first`` files with ``to_icechunk`` and a commit, the rest
with ``append_dim="time"`` and a second commit. Then a fresh process that never imports
virtualizarr opens the repository with ``icechunk`` and ``xr.open_zarr`` and compares it
with ``xr.open_mfdataset`` of all the files, printing per variable the dims, dtypes,
whether the values are identical (or the largest difference) and whether the attributes
are, and the process's own check that virtualizarr was never imported. It prints figures;
it asserts nothing (tests/writers/test_icechunk.py holds the pass/fail version).
"""

from __future__ import annotations

import argparse
import glob
import os
import subprocess
import sys
import tempfile
import textwrap
import time

READ_BACK = """
import sys
import icechunk
import numpy as np
import xarray as xr

icechunk.set_logs_filter("error")
repo_dir, prefix, *files = sys.argv[1:]
repo = icechunk.Repository.open(
    icechunk.local_filesystem_storage(repo_dir),
    authorize_virtual_chunk_access={prefix: icechunk.credentials.LocalFileSystemAccess},
)
print("commits:", [s.message for s in repo.ancestry(branch="main")])
got = xr.open_zarr(repo.readonly_session("main").store, consolidated=False).load()
print("virtualizarr imported by the reading process:", "virtualizarr" in sys.modules)
# (xr.open_mfdataset consults xarray's engine registry, which loads every installed
# backend -- ours included -- so the truth is computed after the check above)
want = xr.open_mfdataset(
    files, combine="nested", concat_dim="time", data_vars="minimal", coords="minimal",
    compat="override", combine_attrs="override",
).load()
print("dims:", dict(got.sizes), "identical" if dict(got.sizes) == dict(want.sizes) else "DIFFER")
print("dataset attributes identical:", got.attrs == want.attrs)
for name in want.variables:
    a, b = got[name], want[name]
    same = a.dims == b.dims and a.shape == b.shape and np.array_equal(
        a.values, b.values, equal_nan=a.dtype.kind in "fc"
    )
    diff = ""
    if not same and a.dtype.kind in "fc" and a.shape == b.shape:
        diff = f" (max |difference| {float(np.nanmax(abs(a.values - b.values))):.3g})"
    print(
        f"  {name}: dims {a.dims}, dtype {a.dtype} vs {b.dtype}, values "
        f"{'identical' if same else 'differ'}{diff}, attributes "
        f"{'identical' if a.attrs == b.attrs else 'differ'}"
    )
try:
    xr.testing.assert_identical(got, want)
    print("xr.testing.assert_identical: passes")
except AssertionError as e:
    print("xr.testing.assert_identical: fails:", str(e).splitlines()[1:4])
"""


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--corpus", default="/work/corpus")
    p.add_argument("--first", type=int, default=300)
    args = p.parse_args()

    import icechunk

    from virtualizarr import open_virtual_mfdataset

    icechunk.set_logs_filter("error")
    data = os.path.abspath(os.path.join(args.corpus, "daily"))
    files = sorted(glob.glob(os.path.join(data, "*.nc")))
    prefix = "file://" + data + "/"
    cfg = icechunk.RepositoryConfig.default()
    cfg.set_virtual_chunk_container(
        icechunk.VirtualChunkContainer(prefix, icechunk.local_filesystem_store(data + "/"))
    )
    with tempfile.TemporaryDirectory() as tmp:
        repo_dir = os.path.join(tmp, "daily.icechunk")
        repo = icechunk.Repository.create(icechunk.local_filesystem_storage(repo_dir), config=cfg)
        opts = {"combine": "nested", "concat_dim": "time", "progress": False}
        for part, kwargs, message in [
            (files[: args.first], {}, f"{args.first} days"),
            (files[args.first :], {"append_dim": "time"}, f"{len(files) - args.first} more"),
        ]:
            t0 = time.perf_counter()
            vds = open_virtual_mfdataset(part, **opts)  # type: ignore[arg-type]
            t1 = time.perf_counter()
            session = repo.writable_session("main")
            vds.virtualize.to_icechunk(session.store, **kwargs)
            session.commit(message)
            t2 = time.perf_counter()
            print(f"{message}: virtualize {t1 - t0:.2f} s, to_icechunk + commit {t2 - t1:.2f} s")
        env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
        subprocess.run(
            [sys.executable, "-c", textwrap.dedent(READ_BACK), repo_dir, prefix, *files],
            check=True,
            env=env,
            cwd=tmp,
        )


if __name__ == "__main__":
    main()
