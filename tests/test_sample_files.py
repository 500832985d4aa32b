"""Real files from other projects' releases (tests/data/README.md), and the rule that no
variable is ever dropped silently, checked on every HDF5 file the tests make.

The walk visits every link of a file with h5py, follows it as HDF5 does, and requires
each dataset it reaches to be a variable of the virtual result (or a netCDF dimension that
is not a variable), or to be named in our ``DroppedVariableWarning`` or in the error that
refused it.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import pytest
import xarray as xr

from tests.readers import hdf5_cases, hdf5_more_cases
from tests.test_datatree import make_tree
from virtualizarr import open_virtual_dataset
from virtualizarr.api import open_virtual_group
from virtualizarr.errors import DroppedVariableWarning, VirtualiZarrError
from virtualizarr.testing import open_kerchunk_refs

DATA = Path(__file__).parent / "data"
SAMPLES = sorted(p for p in DATA.rglob("*") if p.suffix in (".nc", ".h5"))
FLOAT32_PACKED = {"issue671.nc": ["soil_moisture"], "source.nc": ["air"]}
"""Variables packed with float32 scale_factor/add_offset: through plain fsspec + zarr
they decode to float64 (JSON numbers have no width; docs/usage.md, known limits)."""


UNDEFINED_VALUES = {"FValue_chunk.h5": "chunks_all_fill"}
"""Variables with fill time "never" and unwritten chunks, whose values HDF5 leaves
undefined: netCDF-C shows leftover memory there, h5py (and we) zeros."""
NETCDF_C_REFUSES = {"d_int.h5": "Can't open HDF5 attribute"}
"""Files netCDF-C cannot open (so xr.open_dataset gives no truth): checked against h5py."""


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.name)
def test_sample_file_round_trips(path: Path) -> None:
    if path.name in NETCDF_C_REFUSES:
        with pytest.raises((OSError, RuntimeError), match=NETCDF_C_REFUSES[path.name]):
            xr.open_dataset(path, engine="netcdf4")
        refs = open_virtual_dataset(path, loadable_variables=[]).virtualize.to_kerchunk()
        with xr.open_dataset(refs, engine="virtualizarr") as ours, h5py.File(path) as f:
            assert sorted(ours.variables) == sorted(f)
            for name in f:
                np.testing.assert_array_equal(ours[name].values, f[name][()])
        return
    with xr.open_dataset(path, engine="netcdf4") as truth:
        expected = truth.load()
    refs = open_virtual_dataset(path, loadable_variables=[]).virtualize.to_kerchunk()
    if path.name in UNDEFINED_VALUES:  # compared with h5py, then left out
        name = UNDEFINED_VALUES[path.name]
        with xr.open_dataset(refs, engine="virtualizarr") as ours, h5py.File(path) as f:
            np.testing.assert_array_equal(ours[name].values, f[name][()])
        expected = expected.drop_vars(name)
        refs = open_virtual_dataset(
            path, loadable_variables=[], drop_variables=[name]
        ).virtualize.to_kerchunk()
    with xr.open_dataset(refs, engine="virtualizarr") as ours:
        xr.testing.assert_identical(ours.load(), expected)
    packed = FLOAT32_PACKED.get(path.name, [])
    with open_kerchunk_refs(refs) as plain:
        got = plain.load()
    xr.testing.assert_identical(got.drop_vars(packed), expected.drop_vars(packed))
    for name in packed:
        assert expected[name].dtype == np.float32 and got[name].dtype == np.float64
        np.testing.assert_allclose(got[name].values, expected[name].values, rtol=1e-6)


# ---------------------------------------------------------------------- no silent drops
def _datasets(path: Path) -> dict[str, bool]:
    """Every dataset reachable by a link: path -> is a netCDF dimension only."""
    found: dict[str, bool] = {}
    with h5py.File(path) as f:
        links: list[str] = []
        f.visit_links(links.append)
        for name in links:
            try:
                obj = f.get(name)
            except (KeyError, OSError, ValueError):
                obj = None  # a dangling link, or into a file that is not there
            if obj is None:
                kind = f.get(name, getlink=True)
                if isinstance(kind, h5py.ExternalLink | h5py.SoftLink):
                    found["/" + name] = False  # must be named: it might have been data
                continue
            if isinstance(obj, h5py.Dataset):
                label = obj.attrs.get("NAME", b"")
                label = label.decode() if isinstance(label, bytes) else str(label)
                found["/" + name] = label.startswith("This is a netCDF dimension but not")
    return found


def _open_naming_what_is_dropped(path: Path) -> tuple[dict[str, set[str]], str]:
    """Every group's variables (and dims), and all our warnings and errors as one text."""
    said: list[str] = []
    drop: list[str] = []
    while True:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                tree = open_virtual_group(path, drop_variables=drop, subgroups=True)
            except VirtualiZarrError as e:
                said.append(str(e))
                named = re.findall(r"drop_variables=\[\'([^']+)\'\]", str(e))
                assert named and named[0] not in drop, f"an error naming no variable: {e}"
                drop.append(named[0])
                continue
        said += [str(w.message) for w in caught if issubclass(w.category, DroppedVariableWarning)]
        break
    present: dict[str, set[str]] = {}
    for gpath, group in tree.walk():
        names = set(group.variables)
        for var in group.variables.values():
            names.update(var.dims)
        present[gpath] = names
    return present, "\n".join(said)


def _check_nothing_dropped_silently(path: Path) -> None:
    present, said = _open_naming_what_is_dropped(path)
    for dpath, dim_only in _datasets(path).items():
        group, _, name = dpath.rpartition("/")
        name = name.removeprefix("_nc4_non_coord_")
        shown = name in present.get(group or "/", set())
        assert shown or (not dim_only and (f"'{dpath}'" in said or f"'{name}'" in said)), (
            f"{path.name}: {dpath} is neither a variable nor named in a warning or error"
        )


def _made_files() -> list[tuple[str, Callable[[Path], Path]]]:
    makers: list[tuple[str, Callable[[Path], Path]]] = list(hdf5_cases.NETCDF_CASES.items())
    makers += [
        ("h5_lzf", hdf5_cases.make_h5_lzf),
        ("h5_empty", hdf5_cases.make_h5_empty),
        ("h5_compound", hdf5_cases.make_h5_compound),
        ("tree", make_tree),
    ]
    more = hdf5_more_cases
    makers += [
        ("ascii", lambda p: more.make_charset(p, "ascii")),
        ("mixed_charsets", more.make_mixed_charsets),
        ("links", more.make_links),
        ("nc_links", more.make_nc_links),
        ("external_other", more.make_external_other),
        ("link_oddities", more.make_link_oddities),
        ("several_scales", more.make_several_scales),
        ("user_block", more.make_user_block),
        ("user_block_scales", more.make_user_block_scales),
        ("complex", more.make_complex),
        ("compound", more.make_compound),
        ("nc_compound", more.make_nc_compound),
    ]
    return makers


@pytest.mark.filterwarnings("ignore::UserWarning:netCDF4")
@pytest.mark.parametrize(
    ("name", "make"), _made_files(), ids=lambda x: x if isinstance(x, str) else ""
)
def test_no_dataset_is_dropped_silently_in_made_files(
    tmp_path: Path, name: str, make: Callable[[Path], Path]
) -> None:
    path = make(tmp_path / f"{name}.h5")
    _check_nothing_dropped_silently(path)


@pytest.mark.parametrize("path", [p for p in SAMPLES if h5py.is_hdf5(p)], ids=lambda p: p.name)
def test_no_dataset_is_dropped_silently_in_sample_files(path: Path) -> None:
    _check_nothing_dropped_silently(path)
