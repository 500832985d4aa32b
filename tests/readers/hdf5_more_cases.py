"""More real HDF5 files for the HDF5 reader's tests: the classes of fidelity round 3.

Written by h5py (HDF5), netCDF4-python (netCDF-C) and, PyTables-style, by h5py with the
attributes and layouts PyTables writes (``CLASS``/``VERSION``/``TITLE`` string attributes,
``FIELD_n_NAME`` on tables, chunked compound tables with an unlimited first axis). Each
``make_*`` writes one file at the given path and returns it.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import h5py
import netCDF4
import numpy as np

Maker = Callable[[Path], Path]


# ---------------------------------------------------------------------- 1. string charsets
def make_charset(path: Path, cset: str) -> Path:
    """Fixed-length string attributes of one character set (``"ascii"`` or ``"utf-8"``),
    all five bytes long, on the root and on a variable."""
    with h5py.File(path, "w") as f:
        f["v"] = np.arange(3, dtype="i4")
        dtype = h5py.string_dtype(cset, 5)
        f.attrs.create("title", data=np.bytes_(b"hello"), dtype=dtype)
        f["v"].attrs.create("units", data=np.bytes_(b"meter"), dtype=dtype)
        f["v"].attrs.create("names", data=np.array([b"ab", b"cde"]), dtype=dtype)
    return path


def make_mixed_charsets(path: Path) -> Path:
    """Both character sets of one size in one file (as netCDF-C and PyTables files mix
    them: ``_NCProperties``-style ASCII and UTF-8 attributes written by different tools)."""
    with h5py.File(path, "w") as f:
        f["a"] = np.arange(2.0)
        f["b"] = np.arange(2.0)
        f["a"].attrs.create("kind", data=np.bytes_(b"first"), dtype=h5py.string_dtype("ascii", 5))
        f["b"].attrs.create("kind", data=np.bytes_(b"other"), dtype=h5py.string_dtype("utf-8", 5))
        f["a"].attrs.create("note", data=np.bytes_(b"utf-8"), dtype=h5py.string_dtype("utf-8", 5))
    return path


# ---------------------------------------------------------------------- 2. links
def make_links(path: Path) -> Path:
    """Soft links and same-file external links to datasets (netCDF-C follows them and
    shows each as a variable named after the link), in the root and in a group."""
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(4.0)
        f["data"].attrs["units"] = "m"
        f.create_dataset("chunked", data=np.arange(12, dtype="i2").reshape(3, 4), chunks=(2, 2))
        g = f.create_group("g")
        g["inner"] = np.arange(3, dtype="i4")
        f["soft"] = h5py.SoftLink("/data")
        f["soft_inner"] = h5py.SoftLink("/g/inner")
        f["soft_chunked"] = h5py.SoftLink("chunked")  # relative to the group
        f["ext_same"] = h5py.ExternalLink(path.name, "/g/inner")
        g["up_data"] = h5py.SoftLink("/data")
    return path


def make_nc_links(path: Path) -> Path:
    """A netCDF4 file (dimension scales, coordinates) with soft links added by h5py."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("x", 3)
        x = ds.createVariable("x", "f8", ("x",))
        x[:] = [10.0, 20.0, 30.0]
        t = ds.createVariable("temp", "f4", ("x",), zlib=True)
        t.units = "K"
        t[:] = [1.0, 2.0, 3.0]
    with h5py.File(path, "r+") as f:
        f["temp_alias"] = h5py.SoftLink("/temp")
    return path


def make_external_other(path: Path) -> Path:
    """An external link to a dataset of another file (beside this one)."""
    other = path.with_name(path.stem + "_target.h5")
    with h5py.File(other, "w") as f:
        f["far"] = np.arange(2.0)
    with h5py.File(path, "w") as f:
        f["near"] = np.arange(3.0)
        f["elsewhere"] = h5py.ExternalLink(other.name, "/far")
    return path


def make_link_oddities(path: Path) -> Path:
    """A dangling soft link, a soft link to a group and a cycle of groups."""
    with h5py.File(path, "w") as f:
        f["data"] = np.arange(2.0)
        g = f.create_group("g")
        g["v"] = np.arange(3.0)
        f["dangling"] = h5py.SoftLink("/nothing/here")
        g["loop"] = h5py.SoftLink("/g")
    return path


# ---------------------------------------------------------------------- 3. several scales
def make_several_scales(path: Path) -> Path:
    """Axes with several dimension scales attached (netCDF-C keeps the last one)."""
    with h5py.File(path, "w") as f:
        for i, name in enumerate(("x1", "x2", "x3"), start=1):
            f[name] = np.arange(4.0) * i
            f[name].make_scale(name)
        f["y"] = np.arange(2, dtype="i4")
        f["y"].make_scale("y")
        f["v"] = np.arange(8.0).reshape(2, 4)
        f["v"].dims[0].attach_scale(f["y"])
        for name in ("x2", "x1", "x3"):
            f["v"].dims[1].attach_scale(f[name])
        f["w"] = np.arange(4.0)
        for name in ("x3", "x1"):
            f["w"].dims[0].attach_scale(f[name])
        f["w"].dims[0].detach_scale(f["x3"])
        f["w"].dims[0].attach_scale(f["x2"])
    return path


# ---------------------------------------------------------------------- 4. user blocks
def make_user_block(path: Path, size: int = 512) -> Path:
    """An HDF5 file behind a user block of ``size`` bytes (MATLAB v7.3 .mat files have
    512), with every layout whose addresses must be offset: contiguous, compact, few and
    many chunks (chunk_iter and our index parser), variable-length strings and
    attributes in the global heap."""
    with h5py.File(path, "w", userblock_size=size) as f:
        f["contiguous"] = np.arange(6.0)
        f.create_dataset("few", data=np.arange(40.0), chunks=(10,), compression="gzip")
        f.create_dataset("many", data=np.arange(3000, dtype="i4"), chunks=(10,))
        f.create_dataset(
            "many_v110", data=np.arange(3000, dtype="i2"), chunks=(7,), maxshape=(None,)
        )
        f.create_dataset("names", data=np.array(["a", "bb", "ccc"], dtype=h5py.string_dtype()))
        space = h5py.h5s.create_simple((4,))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        dset = h5py.h5d.create(f.id, b"compact", h5py.h5t.STD_I16LE, space, dcpl=dcpl)
        dset.write(h5py.h5s.ALL, h5py.h5s.ALL, np.arange(4, dtype="<i2"))
        f.attrs["MATLAB_class"] = np.bytes_(b"double")
        f.attrs["tags"] = ["x", "yy"]
    with open(path, "r+b") as fh:
        fh.write(b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00")
    return path


def make_user_block_scales(path: Path, size: int = 1024) -> Path:
    """Dimension scales, packing attributes and many compressed chunks (our index
    parser) behind a user block; netCDF-C reads such files, so xr.open_dataset is the
    truth."""
    with h5py.File(path, "w", userblock_size=size) as f:
        f["time"] = np.arange(300.0)
        f["time"].attrs["units"] = "days since 2000-01-01"
        f["time"].make_scale("time")
        f["x"] = np.arange(5, dtype="i4")
        f["x"].make_scale("x")
        v = f.create_dataset(
            "v", data=np.arange(1500, dtype="i2").reshape(300, 5), chunks=(1, 5), compression="gzip"
        )
        v.attrs["scale_factor"] = np.float32(0.5)
        v.dims[0].attach_scale(f["time"])
        v.dims[1].attach_scale(f["x"])
    return path


# ---------------------------------------------------------------------- 5. compounds
def make_complex(path: Path) -> Path:
    """Complex numbers the h5py way (compound {r, i} of two floats), both widths and
    byte orders, chunked and compressed, contiguous, and as attributes."""
    with h5py.File(path, "w") as f:
        z = (np.arange(12) - 1j * np.arange(12)).reshape(3, 4)
        f.create_dataset("c16", data=z.astype("c16"), chunks=(2, 2), compression="gzip")
        f["c8"] = z.astype("c8")
        f["c16_be"] = z.astype(">c16")
        f.create_dataset("c8_unwritten", shape=(4,), dtype="c8", chunks=(2,))
        f["c16"].attrs["note"] = "complex"
    return path


def make_compound(path: Path) -> Path:
    """Compounds of plain numeric fields (packed, as h5py writes them; aligned, as
    netCDF4-python writes them), PyTables-style tables, and a compound with a
    variable-length string field, which cannot be byte ranges."""
    with h5py.File(path, "w") as f:
        rec = np.array([(1, 2.5), (3, 4.5), (5, 6.5)], dtype=[("a", "<i4"), ("b", "<f8")])
        f.create_dataset("packed", data=rec)
        f.create_dataset("packed_chunked", data=np.tile(rec, 10), chunks=(4,), compression="gzip")
        aligned = np.dtype([("a", "<i4"), ("b", "<f8")], align=True)
        f.create_dataset("aligned", data=rec.astype(aligned))
        be = np.dtype([("x", ">i2"), ("y", ">f4")])
        f.create_dataset("big_endian", data=np.array([(1, 1.5), (2, 2.5)], dtype=be))
        table = np.array(
            [(i, float(i) / 2, b"n%d" % i) for i in range(5)],
            dtype=[("id", "<i8"), ("value", "<f4"), ("name", "S4")],
        )
        t = f.create_dataset("table", data=table, chunks=(2,), maxshape=(None,))
        t.attrs["CLASS"] = np.bytes_(b"TABLE")  # how PyTables marks its tables
        t.attrs["VERSION"] = np.bytes_(b"2.7")
        t.attrs["TITLE"] = np.bytes_(b"a table")
        for i, name in enumerate(table.dtype.names or ()):
            t.attrs[f"FIELD_{i}_NAME"] = np.bytes_(name.encode())
        vl = np.dtype([("id", "<i4"), ("label", h5py.string_dtype())])
        f.create_dataset("with_vlen", data=np.array([(1, "a"), (2, "bc")], dtype=vl))
        f["ok"] = np.arange(3)
    return path


def make_nc_compound(path: Path) -> Path:
    """A compound variable made by netCDF4-python (aligned, as netCDF-C stores it)."""
    with netCDF4.Dataset(path, "w") as ds:
        dt = np.dtype([("lat", "f4"), ("lon", "f4"), ("count", "i4"), ("flag", "i1")], align=True)
        ctype = ds.createCompoundType(dt, "obs_t")
        ds.createDimension("n", 3)
        v = ds.createVariable("obs", ctype, ("n",))
        data = np.zeros(3, dt)
        data["lat"], data["lon"], data["count"], data["flag"] = [1, 2, 3], [4, 5, 6], [7, 8, 9], 1
        v[:] = data
        w = ds.createVariable("plain", "f4", ("n",))
        w[:] = [1, 2, 3]
    return path
