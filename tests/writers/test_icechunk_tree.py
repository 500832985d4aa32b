"""dt.virtualize.to_icechunk: trees of netCDF4 groups into Icechunk, read back with
``xr.open_datatree(session.store, engine="zarr")`` and compared with
``xr.open_datatree(original)``; appends along a dimension some groups have; refusals that
leave the session untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import netCDF4
import numpy as np
import pytest
import xarray as xr

from tests.test_datatree import make_tree
from tests.test_fidelity import model_output
from tests.writers.test_icechunk import assert_matches
from virtualizarr import open_virtual_datatree
from virtualizarr.errors import (
    IncompatibleArraysError,
    InvalidArgumentError,
    OutputExistsError,
    UnsupportedFeatureError,
)

ic = pytest.importorskip("icechunk", reason="icechunk is an optional dependency (extra 'icechunk')")
ic.set_logs_filter("error")


def make_repo(*roots: Path) -> Any:
    """An in-memory repository with a virtual chunk container for each directory."""
    cfg = ic.RepositoryConfig.default()
    auth = {}
    for root in roots:
        prefix = root.as_uri().rstrip("/") + "/"
        cfg.set_virtual_chunk_container(
            ic.VirtualChunkContainer(prefix, ic.local_filesystem_store(f"{root}/"))
        )
        auth[prefix] = ic.credentials.LocalFileSystemAccess
    return ic.Repository.create(
        ic.in_memory_storage(), config=cfg, authorize_virtual_chunk_access=auth
    )


def read_tree(repo: Any, group: str | None = None) -> xr.DataTree:
    store = repo.readonly_session("main").store
    with xr.open_datatree(store, engine="zarr", consolidated=False, group=group) as dt:
        return dt.load()


def original(path: Path) -> xr.DataTree:
    with xr.open_datatree(path, engine="netcdf4") as dt:
        return dt.load()


def assert_tree_matches(actual: xr.DataTree, expected: xr.DataTree) -> None:
    """The same groups, each identical (but for the float32-packing limit, see
    test_icechunk.assert_matches), with the same coordinates inherited."""
    assert sorted(actual.groups) == sorted(expected.groups)
    for path in expected.groups:
        assert_matches(actual[path].to_dataset(), expected[path].to_dataset())
        own = actual[path].to_dataset(inherit=False)
        assert set(own.variables) == set(expected[path].to_dataset(inherit=False).variables)
    assert actual.attrs == expected.attrs


def commit_tree(repo: Any, dt: xr.DataTree, **kwargs: Any) -> None:
    session = repo.writable_session("main")
    dt.virtualize.to_icechunk(session.store, **kwargs)
    session.commit("tree")


# ---------------------------------------------------------------------- round trips
@pytest.mark.parametrize("loadable", [[], None])
@pytest.mark.parametrize("maker", ["tree", "model_output"])
def test_trees_read_back_identical_to_open_datatree(
    tmp_path: Path, maker: str, loadable: list[str] | None
) -> None:
    path = tmp_path / f"{maker}.nc"
    if maker == "tree":  # nested groups, parents' dims, packing, strings, an empty group
        make_tree(path)
    else:  # CF times of a calendar, a diagnostics group
        model_output(path, calendar="noleap", fmt="NETCDF4")
    repo = make_repo(tmp_path)
    commit_tree(repo, open_virtual_datatree(path, loadable_variables=loadable))
    assert_tree_matches(read_tree(repo), original(path))
    if maker == "tree":  # nothing float32-packed to tell apart: the whole tree at once
        xr.testing.assert_identical(read_tree(repo), original(path))


def test_tree_under_a_group_with_its_parents_created(tmp_path: Path) -> None:
    path = make_tree(tmp_path / "tree.nc")
    repo = make_repo(tmp_path)
    commit_tree(repo, open_virtual_datatree(path), group="runs/first")
    xr.testing.assert_identical(read_tree(repo, group="runs/first"), original(path))
    whole = read_tree(repo)
    assert sorted(whole.groups)[:4] == ["/", "/runs", "/runs/first", "/runs/first/empty"]


def test_mode_w_minus_refuses_and_mode_w_replaces(tmp_path: Path) -> None:
    tree = make_tree(tmp_path / "tree.nc")
    other = model_output(tmp_path / "m.nc", calendar="360_day", fmt="NETCDF4")
    repo = make_repo(tmp_path)
    commit_tree(repo, open_virtual_datatree(tree))
    session = repo.writable_session("main")
    with pytest.raises(OutputExistsError, match="mode='w'"):
        open_virtual_datatree(other).virtualize.to_icechunk(session.store)
    assert not session.has_uncommitted_changes
    open_virtual_datatree(other).virtualize.to_icechunk(session.store, mode="w")
    session.commit("replaced")
    got = read_tree(repo)
    assert_tree_matches(got, original(other))
    assert "forecast" not in got.children  # the old tree's groups are gone


def test_a_refused_node_leaves_nothing_written(tmp_path: Path) -> None:
    """The whole tree is planned first: a source in a deep group that no container holds
    is refused before the root or any other group is written."""
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    path = make_tree(tmp_path / "a" / "tree.nc")
    elsewhere = make_tree(tmp_path / "b" / "tree.nc")
    dt = open_virtual_datatree(path, loadable_variables=[])
    moved = open_virtual_datatree(elsewhere, loadable_variables=[])
    dt["forecast/surface"] = moved["forecast/surface"]
    session = make_repo(tmp_path / "a").writable_session("main")
    with pytest.raises(UnsupportedFeatureError, match=r"no virtual chunk container for '.*/b/'"):
        dt.virtualize.to_icechunk(session.store)
    assert not session.has_uncommitted_changes
    with pytest.raises(InvalidArgumentError, match="mode"):
        dt.virtualize.to_icechunk(session.store, mode="x")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="validate_containers"):
        dt.virtualize.to_icechunk(session.store, validate_containers="yes")  # type: ignore[arg-type]
    assert not session.has_uncommitted_changes


# ---------------------------------------------------------------------- appends
def write_tree_day(path: Path, day: int, *, mask: list[int] | None = None) -> Path:
    """A daily tree: the root and 'ocean' have ``time``; 'static' (and its child) not."""
    with netCDF4.Dataset(path, "w") as nc:
        nc.title = "daily tree"
        nc.createDimension("time", None)
        nc.createDimension("x", 3)
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2020-01-01"
        t[:] = [day]
        nc.createVariable("x", "i4", ("x",))[:] = [10, 20, 30]
        t2m = nc.createVariable("t2m", "f4", ("time", "x"), chunksizes=(1, 3))
        t2m[:] = np.arange(3, dtype="f4")[None] + day
        ocean = nc.createGroup("ocean")
        sst = ocean.createVariable("sst", "i2", ("time", "x"), zlib=True, chunksizes=(1, 3))
        sst.scale_factor = 0.5
        sst[:] = np.array([[day, day + 1, day + 2]]) * 0.5
        static = nc.createGroup("static")
        static.createVariable("mask", "i1", ("x",))[:] = mask or [1, 0, 1]
        deeper = static.createGroup("deeper")
        deeper.createVariable("depth", "f8", ("x",))[:] = [5.0, 50.0, 500.0]
    return path


def expected_tree(paths: list[Path]) -> xr.DataTree:
    """What the appended tree must read as: groups with time concatenated, the rest once."""
    trees = [original(p) for p in paths]
    nodes = {}
    for node in trees[0].subtree:
        parts = [t[node.path].to_dataset(inherit=False) for t in trees]
        if "time" in parts[0].dims:
            nodes[node.path] = xr.concat(
                parts, dim="time", data_vars="minimal", coords="minimal", compat="override"
            )
        else:
            nodes[node.path] = parts[0]
    return xr.DataTree.from_dict(nodes)


def test_tree_append_grows_the_groups_with_the_dimension(tmp_path: Path) -> None:
    paths = [write_tree_day(tmp_path / f"day{d}.nc", d) for d in range(4)]
    repo = make_repo(tmp_path)
    commit_tree(repo, open_virtual_datatree(paths[0]))
    for p in paths[1:]:
        commit_tree(repo, open_virtual_datatree(p), append_dim="time")
    got = read_tree(repo)
    xr.testing.assert_identical(got, expected_tree(paths))
    assert got["ocean"].sizes["time"] == 4
    assert "time" not in got["static"].to_dataset(inherit=False).dims


def test_tree_appends_that_do_not_fit_are_refused_untouched(tmp_path: Path) -> None:
    first = write_tree_day(tmp_path / "day0.nc", 0)
    repo = make_repo(tmp_path)
    load = ["time", "x", "mask"]  # a virtual 'mask' would be kept as stored (compat override)
    commit_tree(repo, open_virtual_datatree(first, loadable_variables=load))
    session = repo.writable_session("main")

    def refused(dt: xr.DataTree, error: type[Exception], match: str, **kw: Any) -> None:
        with pytest.raises(error, match=match):
            dt.virtualize.to_icechunk(session.store, **{"append_dim": "time", **kw})
        assert not session.has_uncommitted_changes

    changed = open_virtual_datatree(
        write_tree_day(tmp_path / "m.nc", 1, mask=[0, 0, 1]), loadable_variables=load
    )
    refused(changed, IncompatibleArraysError, r"'mask'.*differs from the one stored")
    pruned = open_virtual_datatree(write_tree_day(tmp_path / "p.nc", 1), loadable_variables=load)
    del pruned["static"]["deeper"]
    refused(pruned, IncompatibleArraysError, r"'/static/deeper'\] that the tree lacks")
    good = open_virtual_datatree(write_tree_day(tmp_path / "g.nc", 1), loadable_variables=load)
    refused(good, InvalidArgumentError, "not a dimension of the tree", append_dim="lev")
    refused(good, InvalidArgumentError, "no such group", group="nowhere")
    good.virtualize.to_icechunk(session.store, append_dim="time")
    session.commit("one more day")
    assert read_tree(repo)["ocean"].sizes["time"] == 2
