"""Tests for open_virtual_mfdataset: combining, globs, uneven files, parallel scanning."""

from __future__ import annotations

import concurrent.futures as cf
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import netCDF4
import numpy as np
import pytest
import xarray as xr
import zarr

from virtualizarr.errors import (
    IncompatibleArraysError,
    SourceNotFoundError,
)
from virtualizarr.manifests import ManifestArray
from virtualizarr.mfdataset import open_virtual_mfdataset

FORMATS = ["NETCDF3_CLASSIC", "NETCDF4"]
LENGTHS = (3, 2, 4)


def write_file(
    path: Path,
    fmt: str,
    start: int,
    n: int,
    *,
    scale_factor: float = 0.5,
    record: bool = False,
    member: int | None = None,
) -> Path:
    """A small file: time (start..start+n), x (5), and v(time, x), one chunk along time."""
    rng = np.random.default_rng(start)
    with netCDF4.Dataset(path, "w", format=fmt) as d:
        d.title = f"file starting at {start}"
        d.createDimension("time", None if record else n)
        d.createDimension("x", 5)
        t = d.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        x = d.createVariable("x", "i4", ("x",))
        x[:] = np.arange(5)
        kw = {"chunksizes": (n, 5)} if fmt == "NETCDF4" else {}
        v = d.createVariable("v", "i2", ("time", "x"), **kw)
        v.scale_factor = scale_factor
        v.units = "K"
        v.set_auto_maskandscale(False)
        t[:] = np.arange(start, start + n)
        v[:] = rng.integers(0, 1000, size=(n, 5), dtype=np.int16)
        if member is not None:
            m = d.createVariable("member", "i4", ())
            m[...] = member
    return path


def write_series(
    tmp_path: Path, fmt: str, lengths: tuple[int, ...] = LENGTHS, prefix: str = "f", **kw: object
) -> list[Path]:
    paths, start = [], 0
    for i, n in enumerate(lengths):
        paths.append(write_file(tmp_path / f"{prefix}{i}.nc", fmt, start, n, **kw))  # type: ignore[arg-type]
        start += n
    return paths


def expected(paths: list[Path], concat_dim: str = "time") -> xr.Dataset:
    dss = [xr.open_dataset(p, mask_and_scale=False) for p in paths]
    try:
        return xr.concat(
            dss,
            dim=concat_dim,
            data_vars="minimal",
            coords="minimal",
            compat="override",
            join="exact",
            combine_attrs="override",
        ).load()
    finally:
        for d in dss:
            d.close()


def manifest_of(ds: xr.Dataset, name: str) -> ManifestArray:
    arr = ds[name].variable.data
    assert isinstance(arr, ManifestArray)
    return arr


@pytest.mark.parametrize("fmt", FORMATS)
def test_by_coords_uneven_lengths_give_rectilinear_grid(tmp_path: Path, fmt: str) -> None:
    paths = write_series(tmp_path, fmt)
    shuffled = [paths[2], paths[0], paths[1]]  # by_coords orders by the time values
    ds = open_virtual_mfdataset(shuffled, parallel=False)
    arr = manifest_of(ds, "v")
    assert arr.shape == (9, 5)
    assert arr.chunk_sizes == ((3, 2, 4), 5)
    assert [Path(p.removeprefix("file://")).name for p in arr.manifest.paths] == [
        "f0.nc",
        "f1.nc",
        "f2.nc",
    ]
    np.testing.assert_array_equal(ds["time"].values, expected(paths)["time"].values)
    assert ds.attrs["title"] == "file starting at 0"  # "override": the first after sorting
    assert arr.metadata.to_dict()["chunk_grid"]["name"] == "rectilinear"


@pytest.mark.parametrize("fmt", FORMATS)
def test_nested_in_given_order(tmp_path: Path, fmt: str) -> None:
    paths = write_series(tmp_path, fmt, (2, 2, 2))
    ds = open_virtual_mfdataset(paths, combine="nested", concat_dim="time", parallel=False)
    arr = manifest_of(ds, "v")
    assert arr.shape == (6, 5)
    assert arr.chunk_sizes == (2, 5)  # equal lengths stay a regular grid
    np.testing.assert_array_equal(ds["time"].values, expected(paths)["time"].values)


def test_nested_two_levels_new_dimension(tmp_path: Path) -> None:
    fmt = "NETCDF3_CLASSIC"
    grid = []
    for m in range(2):
        row = write_series(tmp_path, fmt, (2, 3), prefix=f"m{m}_")
        grid.append(row)
    ds = open_virtual_mfdataset(
        grid, combine="nested", concat_dim=["member", "time"], parallel=False
    )
    arr = manifest_of(ds, "v")
    assert arr.shape == (2, 5, 5)
    assert ds.sizes == {"member": 2, "time": 5, "x": 5}
    assert len(arr.manifest.paths) == 4


def test_nested_needs_concat_dim(tmp_path: Path) -> None:
    paths = write_series(tmp_path, "NETCDF3_CLASSIC", (1, 1))
    with pytest.raises(ValueError, match="concat_dim"):
        open_virtual_mfdataset(paths, combine="nested")


@pytest.mark.parametrize("fmt", FORMATS)
def test_glob_is_expanded_and_sorted(tmp_path: Path, fmt: str) -> None:
    paths = write_series(tmp_path, fmt, (1, 1, 1, 1))
    pattern = f"file://{tmp_path}/f*.nc" if fmt == "NETCDF4" else str(tmp_path / "f*.nc")
    ds = open_virtual_mfdataset(pattern, combine="nested", concat_dim="time")
    arr = manifest_of(ds, "v")
    assert [p.removeprefix("file://") for p in arr.manifest.paths] == [
        str(p.resolve()) for p in paths
    ]


def test_glob_matching_nothing_or_remote(tmp_path: Path) -> None:
    with pytest.raises(SourceNotFoundError, match="no files match"):
        open_virtual_mfdataset(str(tmp_path / "*.nc"))
    with pytest.raises(SourceNotFoundError, match="no files match"):
        open_virtual_mfdataset("memory://nothing-here/*.nc")
    with pytest.raises(SourceNotFoundError, match="empty"):
        open_virtual_mfdataset([])


def test_record_files_and_preprocess(tmp_path: Path) -> None:
    paths = write_series(tmp_path, "NETCDF3_CLASSIC", record=True)
    seen: list[int] = []

    def pre(ds: xr.Dataset) -> xr.Dataset:
        seen.append(ds.sizes["time"])
        return ds.assign_attrs(touched=True)

    ds = open_virtual_mfdataset(paths, preprocess=pre, parallel="threads")
    assert sorted(seen) == sorted(LENGTHS)
    assert ds.attrs["touched"] is True
    assert manifest_of(ds, "v").chunk_sizes == (1, 5)  # one chunk per record


def test_kwargs_reach_open_virtual_dataset_and_attrs_file(tmp_path: Path) -> None:
    paths = write_series(tmp_path, "NETCDF3_CLASSIC")
    ds = open_virtual_mfdataset(
        paths, loadable_variables=["time", "x", "v"], attrs_file=paths[1], parallel=False
    )
    assert isinstance(ds["v"].variable.data, np.ndarray)
    assert ds.attrs["title"] == "file starting at 3"
    with pytest.raises(ValueError, match="attrs_file"):
        open_virtual_mfdataset(paths, attrs_file=tmp_path / "other.nc", parallel=False)


@pytest.mark.parametrize("fmt", FORMATS)
def test_different_scale_factor_is_refused_naming_both_files(tmp_path: Path, fmt: str) -> None:
    a = write_file(tmp_path / "a.nc", fmt, 0, 2, scale_factor=0.5)
    b = write_file(tmp_path / "b.nc", fmt, 2, 2, scale_factor=0.25)
    with pytest.raises(IncompatibleArraysError, match="scale_factor") as info:
        open_virtual_mfdataset([a, b], parallel=False)
    assert str(a) in str(info.value) and str(b) in str(info.value)


def test_error_from_one_file_names_it(tmp_path: Path) -> None:
    good = write_series(tmp_path, "NETCDF3_CLASSIC", (1, 1))
    bad = tmp_path / "corrupt.nc"
    bad.write_bytes(b"CDF\x01" + b"\x00" * 3)
    for parallel in (False, "threads"):
        with pytest.raises(Exception, match=r"corrupt\.nc"):
            open_virtual_mfdataset([*good, bad], parallel=parallel)


def test_virtual_datasets_pickle(tmp_path: Path) -> None:
    for fmt in FORMATS:
        (p,) = write_series(tmp_path, fmt, (3,), prefix=fmt)
        ds = open_virtual_mfdataset([p])
        back = pickle.loads(pickle.dumps(ds))
        a, b = manifest_of(ds, "v"), manifest_of(back, "v")
        assert a.manifest.equals(b.manifest)
        assert a.metadata == b.metadata and a.encoding_attrs == b.encoding_attrs


def _scan(tmp_path: Path, parallel: object) -> xr.Dataset:
    paths = write_series(tmp_path, "NETCDF4")
    return open_virtual_mfdataset(paths, parallel=parallel)  # type: ignore[arg-type]


def _check(ds: xr.Dataset) -> None:
    arr = manifest_of(ds, "v")
    assert arr.chunk_sizes == ((3, 2, 4), 5)
    assert len(arr.manifest.paths) == 3


@pytest.mark.parametrize(
    "parallel",
    [False, True, "threads", "processes"],
)
def test_parallel_modes_agree(tmp_path: Path, parallel: object) -> None:
    ds = _scan(tmp_path, parallel)
    _check(ds)
    serial = _scan(tmp_path, False)
    assert manifest_of(ds, "v").manifest.equals(manifest_of(serial, "v").manifest)


def test_parallel_executor_instance_is_used_and_left_open(tmp_path: Path) -> None:
    calls: list[Callable[..., object]] = []

    class Counting(cf.ThreadPoolExecutor):
        def submit(self, fn, /, *args, **kwargs):  # type: ignore[no-untyped-def, override]
            calls.append(fn)
            return super().submit(fn, *args, **kwargs)

    with Counting(max_workers=2) as ex:
        _check(_scan(tmp_path, ex))
        assert len(calls) == 3
        ex.submit(int).result()  # still usable


def test_parallel_dask_local_cluster(tmp_path: Path) -> None:
    distributed = pytest.importorskip("distributed")
    with (
        distributed.LocalCluster(
            n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        _check(_scan(tmp_path, "dask"))
        prefixes = client.run_on_scheduler(
            lambda dask_scheduler: list(dask_scheduler.task_prefixes)
        )
        assert "call_batch" in prefixes  # the cluster did the scanning


def test_parallel_dask_without_client(tmp_path: Path) -> None:
    pytest.importorskip("dask")
    _check(_scan(tmp_path, "dask"))


def test_parallel_rejects_unknown(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="parallel must be"):
        _scan(tmp_path, "gpu")


def test_progress_bar(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("tqdm")
    paths = write_series(tmp_path, "NETCDF3_CLASSIC", (1, 1))
    open_virtual_mfdataset(paths, progress=True, parallel=False)
    assert "2/2" in capsys.readouterr().err
    open_virtual_mfdataset(paths, progress=None, parallel=False)  # few files, quick: no bar
    open_virtual_mfdataset(paths, progress=False, parallel=False)
    assert capsys.readouterr().err == ""


def test_no_progress_bar_by_default_when_stderr_is_not_a_terminal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Logs and CI get no bar however many files (tqdm's convention); a terminal gets one."""
    pytest.importorskip("tqdm")
    import virtualizarr.parallel as mf

    paths = write_series(tmp_path, "NETCDF3_CLASSIC", (1, 1))
    monkeypatch.setattr(mf, "PROGRESS_MIN_FILES", 0)  # a bar at once, were it shown
    monkeypatch.setattr(mf, "_interactive", lambda: False)
    open_virtual_mfdataset(paths, parallel=False)
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(mf, "_interactive", lambda: True)
    open_virtual_mfdataset(paths, parallel=False)
    assert "2/2" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", FORMATS)
def test_kerchunk_refs_of_combined(tmp_path: Path, fmt: str) -> None:
    paths = write_series(tmp_path, fmt, (2, 2))
    ds = open_virtual_mfdataset(paths)
    refs = ds.virtualize.to_kerchunk()["refs"]
    keys = sorted(k for k in refs if k.startswith("v/") and not k.split("/")[-1].startswith("."))
    assert keys == ["v/0.0", "v/1.0"]


def _assert_reads_back(ds: xr.Dataset, paths: list[Path]) -> None:
    with xr.open_mfdataset(paths, combine="nested", concat_dim="time", **_XR_KW) as truth:
        xr.testing.assert_identical(ds.load(), truth.load())


_XR_KW: dict[str, object] = {
    "data_vars": "minimal",
    "coords": "minimal",
    "compat": "override",
    "join": "exact",
    "combine_attrs": "override",
}


MONTHS = (31, 28, 31, 30)
"""Days of January to April 2021: one file per month, one chunk per file."""


@pytest.mark.parametrize("manifest_format", ["binary", "json"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_uneven_months_read_back_without_zarr_configuration(
    tmp_path: Path, fmt: str, manifest_format: str
) -> None:
    """A rectilinear grid opens with the engine and open_virtual_dataset although zarr's
    ``array.rectilinear_chunks`` is off (its default), and is left off."""
    assert zarr.config.get("array.rectilinear_chunks") is False
    paths = write_series(tmp_path, fmt, MONTHS, prefix="month")
    vds = open_virtual_mfdataset(paths, combine="nested", concat_dim="time")
    assert manifest_of(vds, "v").chunk_sizes == (MONTHS, 5)
    store = tmp_path / "months.zarr"
    vds.virtualize.to_zarr(store, manifest_format=manifest_format)
    with xr.open_dataset(store, engine="virtualizarr") as ds:
        assert ds.v.encoding["chunks"] == (MONTHS, (5,))
        _assert_reads_back(ds, paths)
    again = open_virtual_mfdataset([store], combine="nested", concat_dim="time")
    assert manifest_of(again, "v").chunk_sizes == (MONTHS, 5)
    assert manifest_of(again, "v").manifest.equals(manifest_of(vds, "v").manifest)
    with xr.open_dataset(store, engine="virtualizarr", chunks={}) as lazy:  # dask, one per month
        assert lazy.v.chunks == (MONTHS, (5,))
        _assert_reads_back(lazy, paths)
    assert zarr.config.get("array.rectilinear_chunks") is False


@pytest.mark.parametrize("fmt", FORMATS)
def test_rectilinear_reads_back_through_manifest_store(tmp_path: Path, fmt: str) -> None:
    paths = write_series(tmp_path, fmt)
    vds = open_virtual_mfdataset(paths)
    assert manifest_of(vds, "v").chunk_sizes == ((3, 2, 4), 5)
    store = tmp_path / "combined.zarr"
    vds.virtualize.to_zarr(store)
    with xr.open_dataset(store, engine="virtualizarr") as ds:
        _assert_reads_back(ds, paths)


@pytest.mark.parametrize("fmt", FORMATS)
def test_regular_grid_reads_back_through_kerchunk_json(tmp_path: Path, fmt: str) -> None:
    paths = write_series(tmp_path, fmt, (2, 2, 2))
    vds = open_virtual_mfdataset(paths, combine="nested", concat_dim="time")
    refs = tmp_path / "combined.json"
    vds.virtualize.to_kerchunk(refs, format="json")
    with xr.open_dataset(refs, engine="virtualizarr") as ds:
        _assert_reads_back(ds, paths)


def test_rectilinear_to_kerchunk_is_refused(tmp_path: Path) -> None:
    vds = open_virtual_mfdataset(write_series(tmp_path, "NETCDF3_CLASSIC"))
    with pytest.raises(Exception, match="rectilinear"):
        vds.virtualize.to_kerchunk()


class _RecordingPool(cf.ThreadPoolExecutor):
    """Stands in for ProcessPoolExecutor: records the start method it was given."""

    methods: ClassVar[list[str]] = []

    def __init__(self, max_workers: int | None = None, mp_context: object = None) -> None:
        _RecordingPool.methods.append(mp_context.get_start_method())  # type: ignore[attr-defined]
        super().__init__(max_workers=max_workers)


@pytest.mark.parametrize(
    ("safe", "cpus", "min_files", "expected"),
    [
        (True, 2, 3, ["fork"]),  # auto: forked processes on two CPUs
        (True, 1, 3, []),  # auto: one CPU scans in this process
        (True, 8, 4, []),  # auto: too few files (3) for a pool
        (False, 8, 3, []),  # auto: never a fork server (it re-runs unguarded scripts)
    ],
)
def test_parallel_true_forks_only_when_it_is_safe(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    safe: bool,
    cpus: int,
    min_files: int,
    expected: list[str],
) -> None:
    import virtualizarr.parallel as mf

    paths = write_series(tmp_path, "NETCDF4")
    monkeypatch.setattr(mf, "_fork_is_safe", lambda: safe)
    monkeypatch.setattr(mf.os, "cpu_count", lambda: cpus)
    monkeypatch.setattr(mf.cf, "ProcessPoolExecutor", _RecordingPool)
    monkeypatch.setattr(mf, "AUTO_MIN_FILES", min_files)
    _RecordingPool.methods = []
    _check(open_virtual_mfdataset(paths, parallel=True))
    assert _RecordingPool.methods == expected


@pytest.mark.parametrize(("safe", "method"), [(True, "fork"), (False, "forkserver")])
def test_processes_use_fork_when_safe_else_a_fork_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, safe: bool, method: str
) -> None:
    import virtualizarr.parallel as mf

    monkeypatch.setattr(mf, "_fork_is_safe", lambda: safe)
    monkeypatch.setattr(mf.cf, "ProcessPoolExecutor", _RecordingPool)
    _RecordingPool.methods = []
    _check(_scan(tmp_path, "processes"))
    assert _RecordingPool.methods == [method]


UNGUARDED_SCRIPT = """
import sys, threading
import concurrent.futures as cf
from virtualizarr import open_virtual_mfdataset
seen = []
class Spy(cf.ProcessPoolExecutor):
    def __init__(self, *a, **k):
        seen.append(k["mp_context"].get_start_method())
        super().__init__(*a, **k)
import virtualizarr.parallel as mf
mf.cf.ProcessPoolExecutor = Spy
ds = open_virtual_mfdataset(sys.argv[1:], parallel="processes", progress=False)
print(seen, threading.active_count(), ds["v"].data.chunk_sizes[0])
"""


def test_an_unguarded_script_scans_with_forked_processes(tmp_path: Path) -> None:
    """No ``if __name__ == "__main__":`` guard is needed where workers are forked."""
    import subprocess
    import sys

    if not sys.platform.startswith("linux"):
        pytest.skip("workers are forked only on Linux")
    paths = write_series(tmp_path, "NETCDF4")
    script = tmp_path / "scan.py"
    script.write_text(UNGUARDED_SCRIPT)
    done = subprocess.run(
        [sys.executable, str(script), *map(str, paths)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split()[0] == "['fork']", done.stdout
    assert done.stdout.strip().endswith("(3, 2, 4)"), done.stdout


@pytest.mark.parametrize("batch", [1, 3])
def test_a_failing_file_is_named_from_a_batch_of_a_pool(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, batch: int
) -> None:
    import virtualizarr.parallel as mf
    from virtualizarr.errors import FileFormatError

    paths = write_series(tmp_path, "NETCDF4")
    paths[1].write_bytes(paths[1].read_bytes()[:300])  # truncated: not readable HDF5
    monkeypatch.setattr(mf.cf, "ProcessPoolExecutor", _RecordingPool)
    monkeypatch.setattr(mf.os, "cpu_count", lambda: 1)
    monkeypatch.setattr(mf, "BATCHES_PER_WORKER", 3 // batch)
    with pytest.raises(FileFormatError, match=r"f1\.nc") as e:
        open_virtual_mfdataset(paths, parallel="processes")
    assert "f0.nc" not in str(e.value) and "f2.nc" not in str(e.value)
