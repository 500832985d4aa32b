"""DMR++ sidecars made from HDF5 files' own chunk metadata, and the files they describe.

:func:`write_dmrpp` reads an HDF5/netCDF-4 file with h5py -- dimension scales, attributes,
each dataset's layout, filter pipeline, fill value and every chunk's byte range
(``get_chunk_info``) -- and writes the DMR++ that OPeNDAP's ``build_dmrpp`` would: the DAP4
``<Dataset>`` with ``<Dimension>``/``<Dim>`` elements, typed ``<Attribute>``\\ s (netCDF-C's
bookkeeping attributes included, as Hyrax shows them) and ``<dmrpp:chunks>`` with
``compressionType``, ``deflateLevel``, ``fillValue``, ``byteOrder``,
``chunkDimensionSizes`` and ``<dmrpp:chunk offset nBytes chunkPositionInArray>``; compact
data as ``<dmrpp:compact>``, variable-length strings as ``<dmrpp:vlsa>``.

The case writers make files with netCDF4-python (netCDF-C) and h5py covering the layouts
the reader handles.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

import h5py
import netCDF4
import numpy as np

DAP_NS = "http://xml.opendap.org/ns/DAP/4.0#"
HYRAX_NS = "http://xml.opendap.org/dap/dmrpp/1.0.0#"
SCHEMA_NS = "http://opendap.org/ns/dmrpp/1.0#"

_TYPES = {
    "u1": "Byte",
    "i1": "Int8",
    "i2": "Int16",
    "u2": "UInt16",
    "i4": "Int32",
    "u4": "UInt32",
    "i8": "Int64",
    "u8": "UInt64",
    "f4": "Float32",
    "f8": "Float64",
}
_FILTERS = {1: "deflate", 2: "shuffle", 3: "fletcher32", 4: "szip", 5: "nbit", 6: "scaleoffset"}


def _dap_type(dtype: np.dtype[Any]) -> str:
    if dtype.kind in "OSU" or h5py.check_string_dtype(dtype) is not None:
        return "String"
    return _TYPES[dtype.newbyteorder("=").str[1:]]


def _fmt(v: Any) -> str:
    if isinstance(v, bytes):
        return v.decode("utf-8", "replace")
    if isinstance(v, np.floating | float):
        return repr(float(v))
    if isinstance(v, np.integer | int):
        return str(int(v))
    return str(v)


def _attribute(name: str, value: Any, pad: str) -> str | None:
    if name in ("DIMENSION_LIST", "REFERENCE_LIST"):
        return None  # object references: Hyrax leaves them out
    arr = np.asarray(value)
    if arr.dtype.kind == "O" and arr.size and isinstance(arr.ravel()[0], h5py.Reference):
        return None
    kind = "String" if arr.dtype.kind in "OSU" else _dap_type(arr.dtype)
    vals = "".join(f"<Value>{escape(_fmt(v))}</Value>" for v in arr.ravel())
    return f'{pad}<Attribute name={quoteattr(name)} type="{kind}">{vals}</Attribute>\n'


def _chunks_xml(ds: h5py.Dataset, pad: str) -> str:
    dcpl = ds.id.get_create_plist()
    layout = dcpl.get_layout()
    names, levels = [], []
    for i in range(dcpl.get_nfilters()):
        code, _flags, values, _name = dcpl.get_filter(i)
        names.append(_FILTERS.get(code, f"filter{code}"))
        if code == 1:
            levels.append(str(values[0]) if values else "6")
    attrs = ""
    if names:
        attrs += f' compressionType="{" ".join(names)}"'
    if levels:
        attrs += f' deflateLevel="{" ".join(levels)}"'
    if ds.dtype.kind in "iuf":
        attrs += f' fillValue="{_fmt(ds.fillvalue)}"'
        attrs += f' byteOrder="{"BE" if ds.dtype.byteorder == ">" else "LE"}"'
    if layout == h5py.h5d.COMPACT:
        raw = base64.b64encode(np.ascontiguousarray(ds[()]).tobytes()).decode()
        return f"{pad}<dmrpp:chunks{attrs}/>\n{pad}<dmrpp:compact>{raw}</dmrpp:compact>\n"
    out = [f"{pad}<dmrpp:chunks{attrs}>\n"]
    if layout == h5py.h5d.CHUNKED:
        sizes = " ".join(str(c) for c in ds.chunks)
        out.append(f"{pad}  <dmrpp:chunkDimensionSizes>{sizes}</dmrpp:chunkDimensionSizes>\n")
        infos: list[Any] = []
        ds.id.chunk_iter(infos.append)  # one pass (get_chunk_info(i) walks the index each time)
        for info in infos:
            pos = "[" + ",".join(str(c) for c in info.chunk_offset) + "]"
            out.append(
                f'{pad}  <dmrpp:chunk offset="{info.byte_offset}" nBytes="{info.size}" '
                f'chunkPositionInArray="{pos}"/>\n'
            )
    else:
        offset = ds.id.get_offset()
        if offset is not None:
            out.append(
                f'{pad}  <dmrpp:chunk offset="{offset}" nBytes="{ds.id.get_storage_size()}"/>\n'
            )
    out.append(f"{pad}</dmrpp:chunks>\n")
    return "".join(out)


def _dims_xml(ds: h5py.Dataset, pad: str) -> str:
    out = []
    is_scale = ds.attrs.get("CLASS") == b"DIMENSION_SCALE"
    for axis, size in enumerate(ds.shape):
        scales = list(ds.dims[axis].values()) if "DIMENSION_LIST" in ds.attrs else []
        if is_scale and ds.ndim == 1:
            out.append(f"{pad}<Dim name={quoteattr(ds.name)}/>\n")
        elif scales:
            out.append(f"{pad}<Dim name={quoteattr(scales[0].name)}/>\n")
        else:
            out.append(f'{pad}<Dim size="{size}"/>\n')
    return "".join(out)


def _variable_xml(ds: h5py.Dataset, pad: str) -> str:
    kind = _dap_type(ds.dtype)
    out = [f"{pad}<{kind} name={quoteattr(ds.name.rsplit('/', 1)[-1])}>\n"]
    out.append(_dims_xml(ds, pad + "  "))
    for name in ds.attrs:
        line = _attribute(name, ds.attrs[name], pad + "  ")
        if line:
            out.append(line)
    info = h5py.check_string_dtype(ds.dtype)
    if kind == "String" and info is not None and info.length is not None:
        out.append(
            f'{pad}  <dmrpp:FixedLengthStringArray string_length="{info.length}" pad="null_pad"/>\n'
        )
    if kind == "String" and info is not None and info.length is None:
        vals = np.asarray(ds.asstr()[()], dtype=object).ravel()
        vs = "".join(f"<v>{escape(str(v))}</v>" for v in vals)
        out.append(f"{pad}  <dmrpp:vlsa>{vs}</dmrpp:vlsa>\n")
    else:
        out.append(_chunks_xml(ds, pad + "  "))
    out.append(f"{pad}</{kind}>\n")
    return "".join(out)


def _group_xml(g: h5py.Group, pad: str) -> str:
    out = []
    for name, obj in g.items():
        if isinstance(obj, h5py.Dataset) and obj.attrs.get("CLASS") == b"DIMENSION_SCALE":
            out.append(f'{pad}<Dimension name={quoteattr(name)} size="{obj.shape[0]}"/>\n')
    for obj in g.values():
        if isinstance(obj, h5py.Dataset):
            out.append(_variable_xml(obj, pad))
    for name in g.attrs:
        line = _attribute(name, g.attrs[name], pad)
        if line:
            out.append(line)
    for name, obj in g.items():
        if isinstance(obj, h5py.Group):
            out.append(f"{pad}<Group name={quoteattr(name)}>\n")
            out.append(_group_xml(obj, pad + "  "))
            out.append(f"{pad}</Group>\n")
    return "".join(out)


def write_dmrpp(
    h5path: Path, out: Path | None = None, *, href: str | None = None, ns: str = HYRAX_NS
) -> Path:
    """Write the DMR++ of ``h5path`` (beside it, ``<file>.dmrpp``, unless ``out``).

    ``href`` is the ``dmrpp:href`` (default: the file's name, relative to the sidecar).
    """
    out = out or h5path.with_name(h5path.name + ".dmrpp")
    href = h5path.name if href is None else href
    with h5py.File(h5path, "r") as f:
        body = _group_xml(f, "  ")
    text = (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<Dataset xmlns="{DAP_NS}" xmlns:dmrpp="{ns}" dapVersion="4.0" dmrVersion="1.0" '
        f"name={quoteattr(h5path.name)} dmrpp:href={quoteattr(href)} "
        'dmrpp:version="3.21.1">\n'
        f"{body}"
        "</Dataset>\n"
    )
    out.write_text(text, encoding="utf-8")
    return out


# ---------------------------------------------------------------------- the files
def nc4_cf(path: Path) -> Path:
    """netCDF-4: coordinates, packed int16 with _FillValue and an unwritten chunk,
    shuffle+deflate, fletcher32, big-endian, contiguous, scalar, dimension without a
    coordinate variable, vlen strings, a char array, a group, attributes of many types."""
    with netCDF4.Dataset(path, "w", format="NETCDF4") as nc:
        nc.setncatts(
            {"title": "cf sample", "version": np.int32(3), "scale": np.float64(0.25),
             "flags": np.array([1, 2, 4], "i2"), "history": "made by a test"}
        )  # fmt: skip
        nc.createDimension("time", None)
        nc.createDimension("lat", 5)
        nc.createDimension("lon", 8)
        nc.createDimension("nv", 2)  # no coordinate variable
        t = nc.createVariable("time", "f8", ("time",))
        t.units = "days since 2020-01-01"
        t.calendar = "standard"
        t[:] = np.arange(4)
        lat = nc.createVariable("lat", "f4", ("lat",))
        lat.units = "degrees_north"
        lat[:] = np.linspace(-60, 60, 5)
        lon = nc.createVariable("lon", "f4", ("lon",), contiguous=True)
        lon[:] = np.arange(8) * 45.0
        air = nc.createVariable(
            "air", "i2", ("time", "lat", "lon"), zlib=True, shuffle=True, complevel=4,
            chunksizes=(1, 5, 4), fill_value=np.int16(-999),
        )  # fmt: skip
        air.scale_factor = np.float32(0.01)
        air.add_offset = np.float32(250)
        air.units = "K"
        vals = ((np.arange(4 * 40).reshape(4, 5, 8) * 7) % 3000).astype("i2")
        vals[0, 0, 0] = -999
        air[0:3] = np.ma.masked_equal(vals[0:3], -999)  # time 3: chunks never written
        chk = nc.createVariable("checked", "f8", ("lat", "lon"), fletcher32=True, chunksizes=(2, 8))
        chk[:] = np.arange(40).reshape(5, 8) / 3
        be = nc.createVariable("bigend", np.dtype(">i4"), ("lat",), endian="big")
        be[:] = [1, -2, 3, -4, 5]
        bnds = nc.createVariable("lat_bnds", "f4", ("lat", "nv"))
        bnds[:] = np.arange(10).reshape(5, 2)
        s = nc.createVariable("scalar", "f8", ())
        s.long_name = "a scalar"
        s[()] = 42.5
        z = nc.createVariable("zeros", "u2", ("lat",))  # real zeros, no _FillValue set
        z[:] = 0
        st = nc.createVariable("station", str, ("lat",))
        st[:] = np.array(["alpha", "b", "", "délta", "e"], dtype=object)
        nc.createDimension("nchar", 3)
        code = nc.createVariable("code", "S1", ("lat", "nchar"))  # netCDF's char array
        code[:] = netCDF4.stringtochar(np.array(["ab", "cde", "f", "", "ghi"], "S3"))
        g = nc.createGroup("forecast")
        g.setncattr("kind", "model")
        g.createDimension("step", 3)
        v = g.createVariable("skill", "f4", ("step", "lat"), zlib=True, fill_value=np.float32(-1))
        v[:] = np.arange(15).reshape(3, 5)
    return path


def h5_plain(path: Path) -> Path:
    """h5py without dimension scales (netCDF-C's phony dimensions), compact and
    contiguous layouts, big-endian, deflate levels, an unallocated dataset with a fill
    value, a group."""
    with h5py.File(path, "w") as f:
        f.attrs["origin"] = "h5py"
        f.create_dataset("a", data=np.arange(12, dtype="i4").reshape(3, 4))
        f.create_dataset("b", data=np.arange(4, dtype=">f8"), chunks=(2,), compression=9)
        f.create_dataset("c", data=np.arange(3, dtype="u1"))
        f.create_dataset("d", shape=(3, 4), dtype="f4", chunks=(3, 2), fillvalue=np.float32(7.5))
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        sid = h5py.h5s.create_simple((4,))
        h5py.h5d.create(f.id, b"small", h5py.h5t.NATIVE_INT16, sid, dcpl=dcpl)
        f["small"][:] = [5, 6, 7, 8]
        sub = f.create_group("sub")
        sub.create_dataset("e", data=np.arange(6, dtype="i8").reshape(2, 3), chunks=(1, 3),
                           shuffle=True, compression="gzip")  # fmt: skip
    return path


CASES: dict[str, Callable[[Path], Path]] = {"nc4_cf": nc4_cf, "h5_plain": h5_plain}
