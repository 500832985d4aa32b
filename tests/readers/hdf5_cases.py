"""Real HDF5 and netCDF4 files for the HDF5 reader's tests, written by netCDF4-python
(netCDF-C) and by h5py (HDF5), each exercising one family of features.

Every ``make_*`` function writes one file at the given path and returns it. ``NETCDF_CASES``
lists the files netCDF-C opens, so ``xr.open_dataset(path, engine="netcdf4")`` is the truth
to compare with.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import netCDF4
import numpy as np

Maker = Callable[[Path], Path]


# ---------------------------------------------------------------------- netCDF4-python
def make_nc_basic(path: Path) -> Path:
    """Filters, layouts, edge chunks, fill values, packing, CF times, bounds, scalars."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as ds:
        ds.title = "basic"
        ds.history = "made by hdf5_cases"
        ds.version = np.int32(2)
        ds.levels = np.array([1.5, 2.5, 3.5])
        ds.createDimension("time", 5)
        ds.createDimension("lat", 7)
        ds.createDimension("lon", 6)
        ds.createDimension("nv", 2)
        ds.createDimension("station", 3)  # no coordinate variable
        for name, cal in [("time", "standard")]:
            t = ds.createVariable(name, "f8", ("time",))
            t.units = "days since 2000-01-01"
            t.calendar = cal
            t.bounds = "time_bnds"
            t[:] = np.arange(5) + 0.5
        tb = ds.createVariable("time_bnds", "f8", ("time", "nv"))
        tb[:] = np.stack([np.arange(5), np.arange(5) + 1], axis=1)
        lat = ds.createVariable("lat", "f4", ("lat",))
        lat.units = "degrees_north"
        lat[:] = np.linspace(-60, 60, 7)
        lon = ds.createVariable("lon", "f4", ("lon",), zlib=True)
        lon[:] = np.linspace(0, 300, 6)
        rng = np.random.default_rng(0)
        air = ds.createVariable(
            "air",
            "i2",
            ("time", "lat", "lon"),
            zlib=True,
            shuffle=True,
            fletcher32=True,
            complevel=5,
            chunksizes=(2, 4, 4),  # edge chunks on every axis
            fill_value=np.int16(-9999),
        )
        air.scale_factor = 0.01
        air.add_offset = 273.15
        air.units = "K"
        air.grid_mapping = "crs"
        air.coordinates = "height"
        data = rng.integers(-3000, 3000, (5, 7, 6)).astype("i2")
        data[0, 0, :3] = -9999
        air[:] = data
        f8 = ds.createVariable(
            "precip", "f8", ("time", "lat"), zlib=True, shuffle=True, fletcher32=True
        )  # shuffle after fletcher32 on 8-byte values: inlined
        f8[:] = rng.random((5, 7))
        u4 = ds.createVariable("count", "u4", ("lat", "lon"), shuffle=True, zlib=True)
        u4[:] = rng.integers(0, 2**32 - 1, (7, 6), dtype="u8").astype("u4")
        i8 = ds.createVariable("big", ">i8", ("station",), endian="big")
        i8[:] = [1, -2, 2**40]
        nofill = ds.createVariable("zeros", "f4", ("lat",), fill_value=False)
        nofill[:] = np.zeros(7)
        unwritten = ds.createVariable("unwritten", "f4", ("lat", "lon"), chunksizes=(3, 3))
        unwritten.long_name = "never written: reads as the default fill value"
        part = ds.createVariable(
            "partial", "i4", ("lat", "lon"), chunksizes=(3, 3), fill_value=np.int32(7)
        )
        part[0:3, 0:3] = np.arange(9).reshape(3, 3)
        crs = ds.createVariable("crs", "i4", ())
        crs[...] = 0
        crs.grid_mapping_name = "latitude_longitude"
        crs.semi_major_axis = 6378137.0
        height = ds.createVariable("height", "f4", ())
        height[...] = 2.0
        st = ds.createVariable("station_id", "i4", ("station",))
        st[:] = [10, 20, 30]
        for cal in ["noleap", "360_day"]:
            v = ds.createVariable(f"t_{cal}", "i4", ("time",))
            v.units = "hours since 1999-12-30 00:00"
            v.calendar = cal
            v[:] = np.arange(5) * 24
    return path


def make_nc_unlimited(path: Path) -> Path:
    """Unlimited dimensions with variables written to different lengths."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("x", 3)
        t = ds.createVariable("time", "i4", ("time",), chunksizes=(4,))
        t.units = "days since 2001-01-01"
        t[0:6] = np.arange(6)
        a = ds.createVariable("a", "f4", ("time", "x"), chunksizes=(4, 2))
        a[0:6] = np.arange(18).reshape(6, 3)
        b = ds.createVariable("b", "i2", ("time",), chunksizes=(4,), fill_value=np.int16(-1))
        b[0:3] = [5, 6, 7]
        c = ds.createVariable("c", "f8", ("time",), chunksizes=(2,), zlib=True)
        c[0:1] = [1.0]
        ds.createDimension("empty", None)
        ds.createVariable("e", "f4", ("empty",))
    return path


def make_nc_strings(path: Path) -> Path:
    """char arrays, variable-length strings, string attributes of both kinds."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("n", 3)
        ds.createDimension("strlen", 4)
        ds.setncattr_string("tags", ["alpha", "beta"])
        ds.setncattr_string("one_tag", "gamma")
        ds.comment = "ünïcode text"
        c = ds.createVariable("chars", "S1", ("n", "strlen"))
        c[:] = np.array([list("ab  "), list("cdef"), list("g\x00\x00\x00")], dtype="S1")
        c.long_name = "char array"
        s = ds.createVariable("names", str, ("n",))
        s[:] = np.array(["one", "twö", ""], dtype=object)
        s.setncattr_string("flags", ["x", "y", "z"])
        sc = ds.createVariable("label", str, ())
        sc[...] = "scalar string"
    return path


def make_nc_groups(path: Path) -> Path:
    """Nested groups whose variables use dimensions of their parents."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 4)
        x = ds.createVariable("x", "f8", ("x",))
        x[:] = np.arange(4)
        ds.root_attr = "root"
        g = ds.createGroup("forecast")
        g.kind = "fc"
        g.createDimension("step", 2)
        step = g.createVariable("step", "i4", ("step",))
        step[:] = [6, 12]
        v = g.createVariable("temp", "f4", ("step", "x"), zlib=True)
        v[:] = np.arange(8).reshape(2, 4)
        h = g.createGroup("surface")
        w = h.createVariable("wind", "f4", ("step", "x"), chunksizes=(1, 2))
        w.units = "m s-1"
        w[:] = np.arange(8).reshape(2, 4) * 2
        other = ds.createGroup("other")
        other.createDimension("x", 2)  # shadows the root's x
        o = other.createVariable("o", "i1", ("x",))
        o[:] = [1, 2]
    return path


def make_nc_enum(path: Path) -> Path:
    """netCDF enum types and a CF flag variable (bool-like)."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("n", 5)
        cloud = ds.createEnumType("u1", "cloud_t", {"clear": 0, "cloudy": 1, "missing": 255})
        e = ds.createVariable("cloud", cloud, ("n",), fill_value=255)
        e[:] = np.array([0, 1, 1, 0, 255], dtype="u1")
        flag = ds.createVariable("is_land", "i1", ("n",))
        flag.flag_values = np.array([0, 1], dtype="i1")
        flag.flag_meanings = "water land"
        flag[:] = [0, 1, 1, 0, 1]
    return path


def make_nc_compressors(path: Path) -> Path:
    """Compression plugins netCDF-C ships: zstd, bzip2, blosc; and szip (no codec)."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("y", 40)
        ds.createDimension("x", 30)
        data = np.add.outer(np.arange(40), np.arange(30)).astype("f4")
        for comp in ["zstd", "bzip2", "blosc_lz4", "blosc_zstd", "zlib"]:
            v = ds.createVariable(
                comp, "f4", ("y", "x"), compression=comp, complevel=4, chunksizes=(16, 16)
            )
            v[:] = data
        sz = ds.createVariable(
            "szip",
            "i4",
            ("y", "x"),
            compression="szip",
            szip_coding="nn",
            szip_pixels_per_block=8,
            chunksizes=(16, 16),
        )
        sz[:] = data.astype("i4")
    return path


def make_nc_noncoord(path: Path) -> Path:
    """Variables named like a dimension they do not index (netCDF-C's ``_nc4_non_coord_``),
    and a 2-D variable named after its first dimension."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("lat", 3)
        ds.createDimension("y", 2)
        ds.createDimension("x", 4)
        lat = ds.createVariable("lat", "f4", ("y", "x"))  # 2-D "latitude", dim lat elsewhere
        lat.units = "degrees_north"
        lat[:] = np.arange(8).reshape(2, 4)
        ds.createDimension("time", 2)
        ds.createDimension("nv", 2)
        tb = ds.createVariable("time", "f8", ("time", "nv"))
        tb[:] = [[0, 1], [1, 2]]
        v = ds.createVariable("v", "i4", ("lat", "y"))
        v[:] = np.arange(6).reshape(3, 2)
    return path


def make_nc_series(path: Path, start: int, n: int = 4) -> Path:
    """One file of a time series (for concatenation tests)."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("time", None)
        ds.createDimension("x", 3)
        ds.source = "series"
        t = ds.createVariable("time", "f8", ("time",), chunksizes=(n,))
        t.units = "days since 2020-01-01"
        t.calendar = "noleap"
        t[:] = np.arange(start, start + n)
        v = ds.createVariable(
            "temp", "i2", ("time", "x"), zlib=True, shuffle=True, chunksizes=(2, 3)
        )
        v.scale_factor = 0.5
        v.add_offset = 10.0
        v.units = "degC"
        v[:] = np.arange(start * 3, (start + n) * 3).reshape(n, 3)
    return path


# ---------------------------------------------------------------------- h5py
def make_h5_layouts(path: Path) -> Path:
    """Compact, contiguous (written and not), chunked with unallocated chunks."""
    with h5py.File(path, "w") as f:
        space = h5py.h5s.create_simple((6,))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        dset = h5py.h5d.create(f.id, b"compact", h5py.h5t.STD_I32BE, space, dcpl=dcpl)
        dset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.arange(6, dtype=">i4"))
        f["contiguous"] = np.linspace(0, 1, 5)
        f.create_dataset("contiguous_unwritten", shape=(4,), dtype="f4", fillvalue=3.5)
        un = f.create_dataset("unallocated", shape=(10, 8), chunks=(4, 4), dtype="i2", fillvalue=-7)
        un.attrs["note"] = "no chunk written"
        part = f.create_dataset(
            "partial", shape=(10, 8), chunks=(4, 4), dtype="f8", fillvalue=42.0, compression="gzip"
        )
        part[0:4, 4:8] = 1.0
        part[8:10, 0:2] = 2.0
        f.create_dataset("scalar", data=np.float32(1.25))
        f.create_dataset("big_endian", data=np.arange(12, dtype=">f8").reshape(3, 4), chunks=(2, 2))
        f.create_dataset("bool", data=np.array([True, False, True]))
        f.create_dataset("vlen_str", data=np.array(["a", "héllo", ""], dtype=h5py.string_dtype()))
        f.create_dataset("fixed_str", data=np.array([b"abc", b"de", b""], dtype="S3"))
        f.create_dataset("chars", data=np.array([b"x", b"y", b"z"], dtype="S1"))
        f.create_dataset("ref", data=np.array([f.ref], dtype=h5py.ref_dtype))
        f.create_dataset("zero_size", shape=(0, 3), dtype="f4", chunks=(2, 3), maxshape=(None, 3))
        f.attrs["created_by"] = b"h5py"
        f.attrs["int_attr"] = 3
        f.attrs["float_list"] = [1.0, 2.0]
        f.attrs["str_list"] = ["a", "b"]
        f.attrs["flag"] = True  # an enum: netCDF-C does not show it
    return path


def make_h5_attrs(path: Path) -> Path:
    """Attributes of many HDF5 types and shapes, on the root, a group and a dataset."""
    with h5py.File(path, "w") as f:
        d = f.create_dataset("v", data=np.arange(3, dtype="i2"))
        for obj in (f, d):
            a = obj.attrs
            a["i1"] = np.int8(-3)
            a["u8"] = np.uint64(2**63)
            a["be_f4"] = np.array([1.5], dtype=">f4")
            a["be_i4_list"] = np.array([1, 2, 3], dtype=">i4")
            # (multi-dimensional attributes make netCDF-C refuse the whole file)
            a["empty_str"] = ""
            a["vlen_scalar"] = "vlen"
            a["vlen_one"] = np.array(["only"], dtype=h5py.string_dtype())
            a["fixed_one"] = np.array([b"fixed"])
            a["utf8"] = "µm s⁻¹"
            a["bytes_utf8"] = "ñ".encode()
            a.create("fixed_ascii", data=np.bytes_(b"ascii"), dtype=h5py.string_dtype("ascii", 5))
        g = f.create_group("g")
        g.attrs["in_group"] = np.float64(2.5)
        g["w"] = np.arange(2.0)
    return path


def make_h5_phony(path: Path) -> Path:
    """Datasets without dimension scales, in nested groups (phony dimensions)."""
    with h5py.File(path, "w") as f:
        f["a"] = np.zeros((3, 4))
        f["b"] = np.ones((4, 3))
        f["c"] = np.zeros((3, 3), dtype="i4")  # two axes of one length: two dims
        f.create_dataset("d", shape=(5,), maxshape=(None,), chunks=(2,), dtype="f4")
        f["e"] = np.arange(5.0)  # same length as d but not unlimited
        g = f.create_group("g")
        g["x"] = np.zeros((3, 7))
        h = g.create_group("h")
        h["y"] = np.zeros((7,))
    return path


def make_h5_scales(path: Path) -> Path:
    """Dimension scales made with h5py (no netCDF bookkeeping attributes)."""
    with h5py.File(path, "w") as f:
        f["x"] = np.arange(4.0)
        f["x"].make_scale("x")
        f["y"] = np.arange(3, dtype="i4")
        f["y"].make_scale()
        f["v"] = np.arange(12.0).reshape(3, 4)
        f["v"].dims[0].attach_scale(f["y"])
        f["v"].dims[1].attach_scale(f["x"])
        g = f.create_group("sub")
        g["w"] = np.arange(4.0)
        g["w"].dims[0].attach_scale(f["x"])
    return path


def make_h5_filters(path: Path) -> Path:
    """Filters with no Zarr codec (inlined when small), and chunks that skipped deflate."""
    rng = np.random.default_rng(1)
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "scaleoffset",
            data=np.arange(40, dtype="i4").reshape(4, 10),
            chunks=(2, 5),
            scaleoffset=0,
        )
        f.create_dataset("scaleoffset_f", data=np.linspace(0, 1, 20), chunks=(10,), scaleoffset=3)
        # HDF5 skips an optional filter that fails for a chunk (deflate of incompressible
        # data with older HDF5) and flags it in the chunk's filter mask: write two such
        # chunks directly
        noise = rng.integers(0, 256, 4096, dtype="u1")
        dset = f.create_dataset("noise", data=noise, chunks=(1024,), compression="gzip")
        for start in (0, 2048):
            dset.id.write_direct_chunk((start,), noise[start : start + 1024].tobytes(), 1)
        f.create_dataset(
            "shuffled",
            data=np.arange(100, dtype="<i8"),
            chunks=(30,),
            shuffle=True,
            compression="gzip",
            fletcher32=True,
        )
    return path


def make_h5_lzf(path: Path) -> Path:
    """h5py's LZF filter: no numcodecs codec, and netCDF-C cannot read it either."""
    with h5py.File(path, "w") as f:
        f.create_dataset("lzf", data=np.arange(30, dtype="u2"), chunks=(10,), compression="lzf")
        f.create_dataset(
            "lzf_big", data=np.arange(3000, dtype="u2"), chunks=(1000,), compression="lzf"
        )
    return path


def make_h5_empty(path: Path) -> Path:
    """A dataset with a null dataspace (netCDF-C refuses the whole file)."""
    with h5py.File(path, "w") as f:
        f.create_dataset("empty", data=h5py.Empty("f4"))
        f["ok"] = np.arange(3)
    return path


def make_h5_compound(path: Path) -> Path:
    """A compound dataset."""
    with h5py.File(path, "w") as f:
        f.create_dataset("rec", data=np.zeros(3, dtype=[("a", "i4"), ("b", "f8")]))
        f["ok"] = np.arange(3)
    return path


NETCDF_CASES: dict[str, Maker] = {
    "nc_basic": make_nc_basic,
    "nc_unlimited": make_nc_unlimited,
    "nc_strings": make_nc_strings,
    "nc_groups": make_nc_groups,
    "nc_enum": make_nc_enum,
    "nc_compressors": make_nc_compressors,
    "nc_noncoord": make_nc_noncoord,
    "h5_layouts": make_h5_layouts,
    "h5_attrs": make_h5_attrs,
    "h5_phony": make_h5_phony,
    "h5_scales": make_h5_scales,
    "h5_filters": make_h5_filters,
}
"""Files netCDF-C opens: ``xr.open_dataset(path, engine="netcdf4")`` is their truth."""
