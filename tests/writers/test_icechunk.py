"""to_icechunk: real files into local Icechunk repositories, read back with plain xarray.

The truth is ``xr.open_dataset`` (or ``xr.open_mfdataset``) of the original files; the
Icechunk side is read with ``xr.open_zarr(session.store, consolidated=False)`` only.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr
import zarr

from tests.readers import hdf5_cases as cases
from tests.remote.conftest import write_day
from tests.test_backend import make_sample
from tests.test_fidelity import CALENDARS, model_output
from tests.writers.test_kerchunk import virtual_dataset
from virtualizarr import open_virtual_dataset
from virtualizarr.errors import (
    IncompatibleArraysError,
    InvalidArgumentError,
    MissingDependencyError,
    OutputExistsError,
    UnsupportedFeatureError,
    VirtualiZarrError,
)
from virtualizarr.manifests import ChunkManifest, ManifestArray, make_array_metadata
from virtualizarr.writers.icechunk import icechunk_checksum, icechunk_url

ic = pytest.importorskip("icechunk", reason="icechunk is an optional dependency (extra 'icechunk')")
ic.set_logs_filter("error")  # Icechunk logs warnings about local storage to stderr

CONCAT = {"coords": "minimal", "compat": "override", "combine_attrs": "override"}


def make_repo(root: Path, data: Path, *, containers: bool = True) -> Any:
    """A local repository with a virtual chunk container for ``data`` (a directory)."""
    prefix = data.as_uri().rstrip("/") + "/"
    cfg = ic.RepositoryConfig.default()
    if containers:
        cfg.set_virtual_chunk_container(
            ic.VirtualChunkContainer(prefix, ic.local_filesystem_store(f"{data}/"))
        )
    auth = {prefix: ic.credentials.LocalFileSystemAccess} if containers else None
    return ic.Repository.create(
        ic.local_filesystem_storage(str(root)), config=cfg, authorize_virtual_chunk_access=auth
    )


def write_commit(repo: Any, vds: xr.Dataset, **kwargs: Any) -> None:
    session = repo.writable_session("main")
    vds.virtualize.to_icechunk(session.store, **kwargs)
    session.commit("write")


def read_back(repo: Any, **kwargs: Any) -> xr.Dataset:
    store = repo.readonly_session("main").store
    with xr.open_zarr(store, consolidated=False, **kwargs) as ds:
        return ds.load()


def float32_packed(ds: xr.Dataset) -> list[str]:
    """Variables xarray decodes to float32 because their scale/offset are float32."""
    return [
        str(k)
        for k, v in ds.variables.items()
        if any(
            isinstance(v.encoding.get(a), np.float32 | np.ndarray)
            and np.asarray(v.encoding[a]).dtype == np.float32
            for a in ("scale_factor", "add_offset")
        )
    ]


def assert_matches(actual: xr.Dataset, expected: xr.Dataset) -> None:
    """Identical, except the one documented format limit: Zarr attributes are JSON, so a
    float32 scale_factor/add_offset reaches plain xarray as a Python float and packed data
    decode to float64 (equal values to float32 precision) where netCDF gives float32."""
    packed = float32_packed(expected)
    xr.testing.assert_identical(actual.drop_vars(packed), expected.drop_vars(packed))
    for name in packed:
        assert actual[name].dtype == np.float64, name
        np.testing.assert_allclose(actual[name].values, expected[name].values, rtol=1e-6)
        same_values = actual[name].copy(data=expected[name].values)
        xr.testing.assert_identical(same_values, expected[name])


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("loadable", [[], None])
@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_CLASSIC"])
def test_sample_round_trip(tmp_path: Path, fmt: str, loadable: list[str] | None) -> None:
    path = make_sample(tmp_path / "s.nc", fmt)
    repo = make_repo(tmp_path / "repo", tmp_path)
    write_commit(repo, open_virtual_dataset(path, loadable_variables=loadable))
    with xr.open_dataset(path) as expected:
        assert float32_packed(expected) == ["packed"]
        assert_matches(read_back(repo), expected.load())


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_64BIT_OFFSET"])
@pytest.mark.parametrize("calendar", CALENDARS)
def test_model_output_round_trip(tmp_path: Path, fmt: str, calendar: str) -> None:
    path = model_output(tmp_path / "m.nc", calendar=calendar, fmt=fmt)
    expected = xr.open_dataset(path, engine="netcdf4").load()
    for i, loadable in enumerate(([], None)):
        repo = make_repo(tmp_path / f"repo{i}", tmp_path)
        write_commit(repo, open_virtual_dataset(path, loadable_variables=loadable))
        assert_matches(read_back(repo), expected)


@pytest.mark.parametrize("case", list(cases.NETCDF_CASES))
def test_every_hdf5_case_round_trips(tmp_path: Path, case: str) -> None:
    path = cases.NETCDF_CASES[case](tmp_path / f"{case}.nc")
    repo = make_repo(tmp_path / "repo", tmp_path)
    write_commit(repo, open_virtual_dataset(path, loadable_variables=[]))
    with xr.open_dataset(path, engine="netcdf4") as expected:
        assert_matches(read_back(repo), expected.load())


def test_netcdf4_groups_into_icechunk_groups(tmp_path: Path) -> None:
    path = model_output(tmp_path / "m.nc", calendar="noleap", fmt="NETCDF4")
    repo = make_repo(tmp_path / "repo", tmp_path)
    session = repo.writable_session("main")
    open_virtual_dataset(path).virtualize.to_icechunk(session.store)
    vgrp = open_virtual_dataset(path, group="diagnostics")
    vgrp.virtualize.to_icechunk(session.store, group="diagnostics")
    vgrp.virtualize.to_icechunk(session.store, group="/deep/er/diagnostics/")
    session.commit("groups")
    expected = xr.open_dataset(path, group="diagnostics").load()
    xr.testing.assert_identical(read_back(repo, group="diagnostics"), expected)
    xr.testing.assert_identical(read_back(repo, group="deep/er/diagnostics"), expected)
    root = zarr.open_group(repo.readonly_session("main").store, mode="r")
    assert sorted(root.group_keys()) == ["deep", "diagnostics"]


@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_CLASSIC"])
def test_concatenated_files_match_open_mfdataset(tmp_path: Path, fmt: str) -> None:
    paths = [
        model_output(tmp_path / f"m{i}.nc", calendar="360_day", fmt=fmt, start=4 * i)
        for i in range(3)
    ]
    combined = xr.concat(
        [open_virtual_dataset(p) for p in paths], dim="time", data_vars="minimal", **CONCAT
    )
    repo = make_repo(tmp_path / "repo", tmp_path)
    write_commit(repo, combined)
    with xr.open_mfdataset(
        paths,
        combine="nested",
        concat_dim="time",
        data_vars="minimal",
        coords="minimal",
        compat="override",
    ) as mf:
        assert_matches(read_back(repo), mf.load())


def test_source_used_in_separate_places_of_the_grid(tmp_path: Path) -> None:
    """One file in two non-adjacent places: its checksum call spans the other's chunks."""
    a, b = (write_day(tmp_path / f"{d}.nc", "NETCDF4", d) for d in (1, 2))
    va, vb = open_virtual_dataset(a), open_virtual_dataset(b)
    combined = xr.concat([va, vb, va], dim="time", **CONCAT)
    repo = make_repo(tmp_path / "repo", tmp_path)
    write_commit(repo, combined)
    with xr.open_dataset(a) as da, xr.open_dataset(b) as db:
        expected = xr.concat([da, db, da], dim="time", **CONCAT).load()
    assert_matches(read_back(repo), expected)


def test_missing_chunks_fill_values_and_codecs(tmp_path: Path) -> None:
    """The kerchunk writer's edge cases: zeros stay zeros, a non-zero fill for missing
    chunks, a declared _FillValue masks, zlib and big-endian data."""
    repo = make_repo(tmp_path / "repo", tmp_path)
    cases_ = [
        ({"missing": (2,)}, False),
        ({"missing": (1, 3), "fill_value": -5.0, "zlib": True}, False),
        ({"missing": (1,), "fill_value": 4.0, "attrs": {"_FillValue": np.float32(4)}}, True),
        ({"dtype": ">i4", "zlib": True}, False),
    ]
    for i, (kwargs, masks) in enumerate(cases_):
        ds, expected = virtual_dataset(tmp_path, **kwargs)
        session = repo.writable_session("main")
        ds.virtualize.to_icechunk(session.store, group=f"g{i}")
        session.commit(f"g{i}")
        got = read_back(repo, group=f"g{i}").v.values
        if masks:
            assert np.isnan(got[3:6]).all() and np.isnan(got[4])
            np.testing.assert_array_equal(got[6:], expected[6:])
        else:
            np.testing.assert_array_equal(got, expected)
            assert not np.isnan(got).any()


def test_variable_length_chunks(tmp_path: Path) -> None:
    ds, expected = virtual_dataset(tmp_path)
    a = ds.v.data
    meta = make_array_metadata(shape=(2,), dtype=np.dtype("<f4"), chunks=(2,), fill_value=0)
    b = ManifestArray(meta, ChunkManifest.single(a.manifest.paths[0], 0, 8, 1), name="v")
    combined = xr.Dataset({"v": (("x",), np.concatenate([a, b]))})
    repo = make_repo(tmp_path / "repo", tmp_path)
    write_commit(repo, combined)
    with zarr.config.set({"array.rectilinear_chunks": True}):
        got = read_back(repo).v.values
    np.testing.assert_array_equal(got, np.concatenate([expected, expected[:2]]))


def test_inline_and_scalar_chunks_become_native(tmp_path: Path) -> None:
    values = np.arange(6, dtype="<i2").reshape(2, 3)
    inline = np.empty((2, 1), dtype=object)
    inline[0, 0], inline[1, 0] = values[0].tobytes(), values[1].tobytes()
    meta = make_array_metadata(shape=(2, 3), dtype=np.dtype("<i2"), chunks=(1, 3), fill_value=0)
    arr = ManifestArray(meta, ChunkManifest.inlined(inline), name="v")
    smeta = make_array_metadata(shape=(), dtype=np.dtype("<i2"), chunks=(), fill_value=0)
    raw = tmp_path / "s.bin"
    raw.write_bytes(np.int16(7).tobytes())
    scalar = ManifestArray(smeta, ChunkManifest.single(raw.as_uri(), 0, 2, 0), name="s")
    ds = xr.Dataset({"v": (("y", "x"), arr), "s": ((), scalar)})
    repo = make_repo(tmp_path / "repo", tmp_path)
    write_commit(repo, ds)
    out = read_back(repo)
    np.testing.assert_array_equal(out.v.values, values)
    assert int(out.s) == 7
    session = repo.readonly_session("main")
    assert session.chunk_type("/v", [1, 0]) != ic.ChunkType.virtual
    assert session.chunk_type("/s", []) == ic.ChunkType.virtual


def test_loaded_times_and_strings(tmp_path: Path) -> None:
    times = xr.Variable(
        ("time",),
        np.array(["2000-01-01", "2000-01-03"], dtype="datetime64[ns]"),
        encoding={"units": "days since 2000-01-01", "calendar": "standard", "dtype": "int32"},
    )
    ds = xr.Dataset(coords={"time": times, "name": ("time", np.array(["a", "bc"], dtype=object))})
    repo = make_repo(tmp_path / "repo", tmp_path)
    write_commit(repo, ds)
    xr.testing.assert_identical(read_back(repo), ds)


def test_attributes_keep_values_and_a_type_record(tmp_path: Path) -> None:
    attrs = {
        "f4": np.float32(0.1),
        "i2": np.int16(-3),
        "arr": np.array([1, 2], "u1"),
        "text": "é",
        "raw": b"\xff",
        "nan": float("nan"),
    }
    ds, _ = virtual_dataset(tmp_path, attrs=attrs)
    ds.attrs = {"title": "t", "version": np.int32(3)}
    repo = make_repo(tmp_path / "repo", tmp_path)
    write_commit(repo, ds)
    out = read_back(repo)
    assert out.attrs == {"title": "t", "version": 3}
    v = out.v.attrs
    assert v["f4"] == float(np.float32(0.1)) and v["i2"] == -3 and v["arr"] == [1, 2]
    assert v["text"] == "é" and v["raw"] == "\udcff" and v["nan"] == "NaN"
    arr = zarr.open_array(repo.readonly_session("main").store, path="v")
    ext = arr.metadata.to_dict()["virtualizarr"]  # an extension field Zarr readers ignore
    assert ext["must_understand"] is False
    assert ext["attribute_dtypes"]["f4"] == "<f4" and ext["attribute_dtypes"]["arr"] == ["|u1"]
