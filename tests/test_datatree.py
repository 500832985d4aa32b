"""Whole files as DataTrees: open_virtual_datatree, dt.virtualize writers, and
``xr.open_datatree(refs, engine="virtualizarr")`` against ``xr.open_datatree(original)``."""

from __future__ import annotations

from pathlib import Path

import netCDF4
import numpy as np
import pytest
import xarray as xr

from virtualizarr import open_virtual_datatree
from virtualizarr.errors import InvalidArgumentError, OutputExistsError, UnsupportedFeatureError
from virtualizarr.io.objects import Location
from virtualizarr.readers.hdf5.reader import HDF5Reader


def make_tree(path: Path) -> Path:
    """Nested groups using their parents' dimensions (an unlimited one too), packing,
    strings of both kinds, fill values, an empty group with attributes."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.title = "tree"
        ds.createDimension("x", 4)
        ds.createDimension("time", None)
        x = ds.createVariable("x", "f8", ("x",))
        x[:] = np.arange(4)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t[:] = [0, 1, 2]
        g = ds.createGroup("forecast")
        g.kind = "fc"
        g.createDimension("step", 2)
        s = g.createVariable("step", "i4", ("step",))
        s[:] = [6, 12]
        v = g.createVariable("temp", "i2", ("time", "step", "x"), zlib=True)
        v.scale_factor = np.float32(0.5)
        v[:] = np.arange(24).reshape(3, 2, 4)
        h = g.createGroup("surface")
        w = h.createVariable("wind", "f4", ("step", "x"), chunksizes=(1, 2))
        w.units = "m s-1"
        w[:] = np.arange(8).reshape(2, 4)
        o = ds.createGroup("obs")
        o.createDimension("station", 3)
        o.createDimension("strlen", 4)
        n = o.createVariable("name", "S1", ("station", "strlen"))
        n[:] = netCDF4.stringtochar(np.array(["a", "bb", "ccc"], "S4"))
        lbl = o.createVariable("label", str, ("station",))
        lbl[:] = np.array(["é", "f", "g"], dtype=object)
        val = o.createVariable("val", "f8", ("time", "station"), fill_value=-1.0)
        val[0:2] = np.ones((2, 3))
        ds.createGroup("empty").note = "no variables"
    return path


@pytest.fixture(scope="module")
def tree_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tree(tmp_path_factory.mktemp("tree") / "tree.nc")


@pytest.fixture(scope="module")
def expected(tree_file: Path) -> xr.DataTree:
    with xr.open_datatree(tree_file, engine="netcdf4") as dt:
        return dt.load()


def test_open_virtual_datatree_mirrors_the_groups(tree_file: Path) -> None:
    dt = open_virtual_datatree(tree_file)
    assert sorted(n.path for n in dt.subtree) == [
        "/",
        "/empty",
        "/forecast",
        "/forecast/surface",
        "/obs",
    ]
    assert dt["forecast/temp"].dims == ("time", "step", "x")  # parent dims, scoped
    assert dt["forecast/surface"].to_dataset(inherit=False)["wind"].dims == ("step", "x")
    assert dt["empty"].attrs == {"note": "no variables"}
    for node in dt.subtree:  # the same as each group opened alone
        from virtualizarr import open_virtual_dataset

        alone = open_virtual_dataset(tree_file, group=node.path)
        xr.testing.assert_identical(
            node.to_dataset(inherit=False).drop_vars(list(alone.coords)),
            alone.drop_vars(list(alone.coords)),
        )


@pytest.mark.parametrize("output", ["dict", "json", "parquet", "zarr"])
def test_round_trip_through_every_output(
    tree_file: Path, expected: xr.DataTree, tmp_path: Path, output: str
) -> None:
    dt = open_virtual_datatree(tree_file, loadable_variables=[])
    refs: object
    if output == "dict":
        refs = dt.virtualize.to_kerchunk()
    elif output == "zarr":
        refs = tmp_path / "tree.zarr"
        dt.virtualize.to_zarr(refs)
    else:
        refs = tmp_path / f"tree.{output}"
        dt.virtualize.to_kerchunk(refs, format=output)  # type: ignore[arg-type]
    with xr.open_datatree(refs, engine="virtualizarr") as actual:
        xr.testing.assert_identical(actual.load(), expected)
    groups = xr.open_groups(refs, engine="virtualizarr")
    assert set(groups) == {n.path for n in expected.subtree}


def test_loaded_coordinates_and_plain_kerchunk(tree_file: Path, expected: xr.DataTree) -> None:
    """Default loading (dimension coordinates in memory) and the plain fsspec + zarr path
    read the same tree."""
    refs = open_virtual_datatree(tree_file).virtualize.to_kerchunk()
    with xr.open_datatree(refs, engine="virtualizarr") as actual:
        xr.testing.assert_identical(actual.load(), expected)
    with xr.open_datatree(
        "reference://",
        engine="zarr",
        backend_kwargs={"consolidated": False, "zarr_format": 2, "storage_options": {"fo": refs}},
    ) as plain:
        xr.testing.assert_identical(plain.load(), expected)


def test_one_name_is_one_variable(tree_file: Path) -> None:
    """A plain string names one variable (not its letters), as open_virtual_dataset takes it."""
    dt = open_virtual_datatree(tree_file, loadable_variables="time", drop_variables="wind")
    root = dt.to_dataset(inherit=False)
    assert isinstance(root["time"].data, np.ndarray)
    assert not isinstance(root["x"].data, np.ndarray)  # only "time" was asked for
    assert "wind" not in dt["forecast/surface"].to_dataset(inherit=False)


def test_relative_paths_and_a_subtree(tree_file: Path, tmp_path: Path) -> None:
    dt = open_virtual_datatree(tree_file, group="forecast", loadable_variables=[])
    assert dt["surface"].to_dataset(inherit=False)["wind"].dims == ("step", "x")
    for out in ("refs.json", "tree.zarr"):
        target = tmp_path / out
        if out.endswith(".json"):
            dt.virtualize.to_kerchunk(target, format="json", relative_paths=True)
            assert "file://" not in target.read_text().split('"virtualizarr"')[0]
        else:
            dt.virtualize.to_zarr(target, relative_paths=True)
        with (
            xr.open_datatree(target, engine="virtualizarr") as actual,
            xr.open_datatree(tree_file, engine="netcdf4", group="forecast") as truth,
        ):
            xr.testing.assert_identical(actual.load(), truth.load())


def test_writers_refuse_to_overwrite(tree_file: Path, tmp_path: Path) -> None:
    dt = open_virtual_datatree(tree_file, loadable_variables=[])
    dt.virtualize.to_zarr(tmp_path / "t.zarr")
    with pytest.raises(OutputExistsError):
        dt.virtualize.to_zarr(tmp_path / "t.zarr")
    dt.virtualize.to_zarr(tmp_path / "t.zarr", mode="w")
    with pytest.raises(InvalidArgumentError, match="needs a filepath"):
        dt.virtualize.to_kerchunk(format="json")


def test_store_groups_are_found_without_the_record(tree_file: Path, tmp_path: Path) -> None:
    """A listable store whose group documents lack the 'groups' record (as a store
    written by another tool) is still read whole, from its listing."""
    import json

    store = tmp_path / "t.zarr"
    open_virtual_datatree(tree_file, loadable_variables=[]).virtualize.to_zarr(store)
    for doc in store.rglob("zarr.json"):
        meta = json.loads(doc.read_text())
        if meta.get("node_type") == "group":
            meta["virtualizarr"].pop("groups", None)
            doc.write_text(json.dumps(meta))
    with (
        xr.open_datatree(store, engine="virtualizarr") as actual,
        xr.open_datatree(tree_file, engine="netcdf4") as truth,
    ):
        xr.testing.assert_identical(actual.load(), truth.load())


def test_groups_not_aligned_with_their_parents(tmp_path: Path) -> None:
    path = tmp_path / "shadow.nc"
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 4)
        ds.createVariable("x", "f8", ("x",))[:] = np.arange(4)
        other = ds.createGroup("other")
        other.createDimension("x", 2)
        other.createVariable("o", "i1", ("x",))[:] = [1, 2]
    with pytest.raises(ValueError, match="not aligned"):  # the truth refuses it too
        xr.open_datatree(path, engine="netcdf4")
    with pytest.raises(UnsupportedFeatureError, match=r"(?s)not aligned.*group=\.\.\."):
        open_virtual_datatree(path)
    vg = HDF5Reader().open(Location.of(path), subgroups=True)
    assert vg.groups["other"].variables["o"].dims == ("x",)


def test_a_format_without_groups_is_a_tree_of_one(tmp_path: Path) -> None:
    path = tmp_path / "classic.nc"
    xr.Dataset({"v": ("x", np.arange(3.0))}, attrs={"a": 1}).to_netcdf(path, engine="scipy")
    dt = open_virtual_datatree(path, loadable_variables=[])
    assert [n.path for n in dt.subtree] == ["/"]
    refs = dt.virtualize.to_kerchunk()
    with (
        xr.open_datatree(refs, engine="virtualizarr") as actual,
        xr.open_dataset(path, engine="scipy") as truth,
    ):
        xr.testing.assert_identical(actual.to_dataset().load(), truth.load())
