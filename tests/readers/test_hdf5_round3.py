"""The HDF5 reader on the classes of fidelity round 3, each against what netCDF-C shows.

String attributes of both character sets (a process-wide type cache), soft and external
links, several dimension scales on one axis, user blocks, compound and complex types.
Files are written by h5py, netCDF4-python and PyTables-style layouts
(``tests/readers/hdf5_more_cases.py``); each round trip is compared with
``xr.open_dataset(path, engine="netcdf4")`` through kerchunk references and through
``engine="virtualizarr"``.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pytest
import xarray as xr

from tests.readers import hdf5_more_cases as cases
from virtualizarr import open_virtual_dataset
from virtualizarr.errors import (
    DroppedVariableWarning,
    UnsupportedFeatureError,
    UnsupportedFileTypeError,
)
from virtualizarr.io.objects import Location
from virtualizarr.readers import Probe, find_reader
from virtualizarr.readers.hdf5 import superblock_offset
from virtualizarr.testing import open_kerchunk_refs

NC4 = "netcdf4"
REPO = Path(__file__).resolve().parents[2]


def round_trips(
    path: Path, group: str | None = None, **truth_kwargs: Any
) -> tuple[xr.Dataset, xr.Dataset, xr.Dataset]:
    """``(truth, through kerchunk, through the engine)``, all loaded (``truth_kwargs``
    go to netCDF4-python alone)."""
    with xr.open_dataset(path, engine=NC4, group=group, **truth_kwargs) as truth:
        expected = truth.load()
    vds = open_virtual_dataset(path, group=group, loadable_variables=[])
    refs = vds.virtualize.to_kerchunk()
    with open_kerchunk_refs(refs) as plain:
        kerchunk = plain.load()
    with xr.open_dataset(refs, engine="virtualizarr") as ours:
        engine = ours.load()
    return expected, kerchunk, engine


def assert_round_trips(path: Path, **truth_kwargs: Any) -> None:
    expected, kerchunk, engine = round_trips(path, **truth_kwargs)
    xr.testing.assert_identical(engine, expected)
    xr.testing.assert_identical(kerchunk, expected)


# ---------------------------------------------------------------------- 1. charsets
_CHARSET_SCRIPT = """
import sys
import netCDF4
from virtualizarr.readers.hdf5.reader import HDF5Reader
from virtualizarr.io.objects import Location

for path in sys.argv[1:]:
    vg = HDF5Reader().open(Location.of(path))
    with netCDF4.Dataset(path) as nc:
        assert vg.attrs == {k: nc.getncattr(k) for k in nc.ncattrs()}, (path, vg.attrs)
        v = nc["v"]
        want = {k: v.getncattr(k) for k in v.ncattrs()}
        assert vg.variables["v"].attrs == want, (path, vg.variables["v"].attrs, want)
    print("ok", path)
"""


@pytest.mark.parametrize("order", [("ascii", "utf-8"), ("utf-8", "ascii")])
def test_string_attributes_of_both_charsets_in_one_process(
    tmp_path: Path, order: tuple[str, str]
) -> None:
    """A fresh process reads both files, in this order and back again: the attribute
    type cache must not hand one character set's memory type to the other."""
    paths = [str(cases.make_charset(tmp_path / f"{cset}.h5", cset)) for cset in order]
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_CHARSET_SCRIPT), *paths, *paths],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.count("ok") == 4


def test_both_charsets_in_one_file(tmp_path: Path) -> None:
    path = cases.make_mixed_charsets(tmp_path / "mixed.h5")
    assert_round_trips(path)
    vds = open_virtual_dataset(path, loadable_variables=[])
    assert vds["a"].attrs == {"kind": "first", "note": "utf-8"}
    assert vds["b"].attrs == {"kind": "other"}


# ---------------------------------------------------------------------- 2. links
@pytest.mark.parametrize("group", [None, "g"])
def test_soft_and_same_file_external_links_are_followed(tmp_path: Path, group: str | None) -> None:
    path = cases.make_links(tmp_path / "links.h5")
    expected, kerchunk, engine = round_trips(path, group=group)
    xr.testing.assert_identical(engine, expected)
    xr.testing.assert_identical(kerchunk, expected)
    if group is None:
        assert {"soft", "soft_inner", "soft_chunked", "ext_same"} <= set(engine.variables)
        np.testing.assert_array_equal(engine["ext_same"].values, [0, 1, 2])


def test_soft_link_in_a_netcdf4_file(tmp_path: Path) -> None:
    path = cases.make_nc_links(tmp_path / "links.nc")
    assert_round_trips(path)
    vds = open_virtual_dataset(path, loadable_variables=[])
    assert vds["temp_alias"].dims == ("x",) and vds["temp_alias"].attrs == {"units": "K"}


def test_external_link_to_another_file_is_named_in_a_warning(tmp_path: Path) -> None:
    path = cases.make_external_other(tmp_path / "ext.h5")
    with pytest.warns(DroppedVariableWarning, match=r"'/elsewhere'.*another file.*_target\.h5"):
        vds = open_virtual_dataset(path, loadable_variables=[])
    assert set(vds.variables) == {"near"}


def test_dangling_links_and_cycles(tmp_path: Path) -> None:
    """netCDF-C refuses this file (and crashes on the cycle); we open what is there,
    name the dangling link, and walk the cycle once."""
    path = cases.make_link_oddities(tmp_path / "odd.h5")
    with pytest.warns(DroppedVariableWarning, match=r"'/dangling'.*'/nothing/here'"):
        vds = open_virtual_dataset(path, loadable_variables=[])
    assert set(vds.variables) == {"data"}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inner = open_virtual_dataset(path, group="g", loadable_variables=[])
    assert set(inner.variables) == {"v"}


def test_reference_datasets_are_named_in_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "refs.h5"
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(2.0)
        f["pointers"] = np.array([f["data"].ref], dtype=h5py.ref_dtype)
    with pytest.warns(DroppedVariableWarning, match=r"'/pointers'.*object references"):
        vds = open_virtual_dataset(path, loadable_variables=[])
    assert set(vds.variables) == {"data"}


# ---------------------------------------------------------------------- 3. several scales
def test_several_dimension_scales_on_one_axis_take_the_last(tmp_path: Path) -> None:
    path = cases.make_several_scales(tmp_path / "scales.h5")
    assert_round_trips(path)
    vds = open_virtual_dataset(path, loadable_variables=[])
    assert vds["v"].dims == ("y", "x3")
    assert vds["w"].dims == ("x2",)  # x3 detached, then x2 attached after x1


# ---------------------------------------------------------------------- 4. user blocks
@pytest.mark.parametrize("size", [512, 2048, 4096, 65536])
def test_user_block_files_are_detected_and_read(tmp_path: Path, size: int) -> None:
    path = cases.make_user_block(tmp_path / f"ub{size}.mat", size)
    probe = Probe(Location.of(path))
    assert find_reader(probe).name == "hdf5"
    assert superblock_offset(probe) == size
    assert_round_trips(path)
    vds = open_virtual_dataset(path, loadable_variables=[])
    for name in ("contiguous", "few", "many", "many_v110"):
        m = vds[name].data.manifest
        assert int(m.offsets[m.path_ids >= 0].min()) >= size, name


def test_user_block_with_dimension_scales(tmp_path: Path) -> None:
    path = cases.make_user_block_scales(tmp_path / "ub.h5", 1024)
    assert_round_trips(path)
    assert open_virtual_dataset(path)["v"].data.manifest.shape_chunk_grid == (300, 1)


def test_detection_reads_past_the_head_only_when_every_reader_declined(tmp_path: Path) -> None:
    """A netCDF3 file is recognised on its head; a file that is nothing costs one read
    per power of two past the head, and is still refused."""
    nc3 = tmp_path / "classic.nc"
    xr.Dataset({"v": ("x", np.arange(5000.0))}).to_netcdf(nc3, engine="scipy")
    probe = Probe(Location.of(nc3))
    assert find_reader(probe).name == "netcdf3" and probe._more == {}
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x00" * 20000)
    probe = Probe(Location.of(junk))
    with pytest.raises(UnsupportedFileTypeError):
        find_reader(probe)
    assert sorted(k[0] for k in probe._more) == [4096, 8192, 16384, 32768]


def test_detecting_a_user_block_does_not_import_h5py(tmp_path: Path) -> None:
    path = cases.make_user_block(tmp_path / "ub.mat", 8192)
    script = (
        "import sys; from virtualizarr.readers import Probe, find_reader; "
        "from virtualizarr.io.objects import Location; "
        f"r = find_reader(Probe(Location.of({str(path)!r}))); "
        "print(r.name, 'h5py' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"},
        timeout=120,
        check=True,
    )
    assert out.stdout.split() == ["hdf5", "False"]


# ---------------------------------------------------------------------- 5. compounds
def test_complex_numbers_stored_the_h5py_way(tmp_path: Path) -> None:
    """netCDF4-python shows them as complex with ``auto_complex=True`` (what users of
    complex data pass; without it they are a structured {r, i} type)."""
    path = cases.make_complex(tmp_path / "complex.h5")
    assert_round_trips(path, auto_complex=True)
    vds = open_virtual_dataset(path, loadable_variables=[])
    assert vds["c16"].dtype == np.complex128 and vds["c8"].dtype == np.complex64
    assert len(vds["c16"].data.manifest.paths) == 1  # referenced, not inlined
    assert vds["c16_be"].data.metadata.to_dict()["codecs"][0]["configuration"] == {"endian": "big"}
    store = tmp_path / "complex.zarr"
    vds.virtualize.to_zarr(store)
    with (
        xr.open_dataset(store, engine="virtualizarr") as actual,
        xr.open_dataset(path, engine=NC4, auto_complex=True) as expected,
    ):
        xr.testing.assert_identical(actual.load(), expected.load())


@pytest.mark.filterwarnings("ignore:.*unsupported [Cc]ompound:UserWarning")  # netCDF4-python
def test_compounds_of_plain_fields(tmp_path: Path) -> None:
    path = cases.make_compound(tmp_path / "compound.h5")
    with pytest.raises(UnsupportedFeatureError, match=r"'with_vlen'.*'label' is variable-length"):
        open_virtual_dataset(path, loadable_variables=[])
    vds = open_virtual_dataset(path, loadable_variables=[], drop_variables=["with_vlen"])
    manifests = {k: vds[k].data.manifest for k in vds.variables}
    assert manifests["packed"].paths and manifests["packed_chunked"].paths  # referenced
    assert not manifests["aligned"].paths and not manifests["big_endian"].paths  # inlined
    refs = vds.virtualize.to_kerchunk()
    assert refs["refs"]["packed/.zarray"].count('["a","<i4"]') == 1
    with xr.open_dataset(path, engine=NC4) as truth:
        expected = truth.drop_vars("table").load()  # netCDF-C cuts 'S4' fields to 1 byte
    with open_kerchunk_refs(refs) as plain, xr.open_dataset(refs, engine="virtualizarr") as ours:
        for got in (plain.load(), ours.load()):
            xr.testing.assert_identical(got.drop_vars("table"), expected)
            with h5py.File(path) as f:
                table = f["table"][()]
            for field in table.dtype.names or ():
                np.testing.assert_array_equal(got["table"].values[field], table[field])
            assert got["table"].attrs["TITLE"] == "a table"  # CLASS: hidden, as netCDF-C does


def test_compound_written_by_netcdf4(tmp_path: Path) -> None:
    path = cases.make_nc_compound(tmp_path / "compound.nc")
    assert_round_trips(path)


def test_large_padded_compound_is_refused_with_the_way_out(tmp_path: Path) -> None:
    path = tmp_path / "padded.h5"
    aligned = np.dtype([("a", "<i1"), ("b", "<f8")], align=True)
    with h5py.File(path, "w") as f:
        f.create_dataset("big", data=np.zeros(200_000, aligned), chunks=(1000,))
    with pytest.raises(UnsupportedFeatureError, match=r"'big'.*padding.*drop_variables"):
        open_virtual_dataset(path, loadable_variables=[])


# ---------------------------------------------------------------------- 6. char arrays
@pytest.mark.parametrize("fmt", ["NETCDF4", "NETCDF3_CLASSIC"])
def test_loaded_char_array_whose_length_dimension_a_number_also_uses(
    tmp_path: Path, fmt: str
) -> None:
    """xarray joins a char array's last dimension into strings only when every variable
    using that dimension is a char array ending with it; loading must follow the rule."""
    import netCDF4

    path = tmp_path / "chars.nc"
    with netCDF4.Dataset(path, "w", format=fmt) as ds:
        ds.createDimension("n", 2)
        ds.createDimension("strlen", 3)
        names = ds.createVariable("names", "S1", ("n", "strlen"))
        names[:] = netCDF4.stringtochar(np.array(["ab", "c"], "S3"))
        ds.createVariable("counts", "i4", ("n", "strlen"))[:] = np.arange(6).reshape(2, 3)
        codes = ds.createVariable("codes", "S1", ("n", "strlen"))
        codes[:] = netCDF4.stringtochar(np.array(["x", "yz"], "S3"))
    with xr.open_dataset(path, engine=NC4) as truth:
        expected = truth.load()
    vds = open_virtual_dataset(path, loadable_variables=["names"])
    assert vds["names"].dims == expected["names"].dims == ("n", "strlen")
    refs = vds.virtualize.to_kerchunk()
    with xr.open_dataset(refs, engine="virtualizarr") as ours:
        xr.testing.assert_identical(ours.load(), expected)
