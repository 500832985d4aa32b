"""Corrupt-input fuzzing of the readers: a corpus, deterministic mutations, a crash-proof runner.

Used by ``tests/fuzz/test_fuzz_*.py`` and ``benchmarks/fuzz_report.py``.

* :func:`build_corpus` writes small real files (netCDF4-python, h5py, scipy) and the
  reference documents our writers make from them (kerchunk JSON, kerchunk Parquet, a
  manifest store) into a directory. The bytes are deterministic.
* :func:`variants` lists mutation specs for a format: truncations (every offset of the
  header region, then strided), random bit flips, random byte overwrites, length fields
  overwritten with huge values, and (for JSON documents) structural edits. A spec is a
  short string such as ``"hdf5/h5_layouts.h5/flip/17"``: it names everything needed to
  rebuild the variant (``python tests/fuzz/fuzzlib.py repro SPEC OUT`` writes it).
* :class:`Runner` runs variants in worker *subprocesses* with a time budget each, so a
  segfault, an abort or a hang in h5py is observed and counted instead of killing pytest.
  Each variant is opened with ``open_virtual_dataset`` and, if that succeeds, written
  with ``ds.virtualize.to_kerchunk(format="dict")``. The outcome is one of

  ``ok``        a dataset came back and serialized;
  ``project``   a ``VirtualiZarrError`` subclass with a message was raised;
  ``foreign``   any other exception escaped (a bug);
  ``memory``    the variant's Python allocation peak (tracemalloc) exceeded the bound;
  ``hang``      it took longer than the time budget;
  ``crash``     the worker process died (signal or abort).

Only ``ok`` and ``project`` are acceptable.
"""

from __future__ import annotations

import base64
import copy
import dataclasses
import hashlib
import json
import os
import random
import re
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from queue import Empty, Queue
from typing import Any, Final

import corpus_formats  # tests/fuzz: the GRIB, TIFF and FITS corpus files

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent

TIME_BUDGET = 5.0
"""Seconds one variant may take (open + to_kerchunk) before it counts as a hang."""

MEMORY_BUDGET = 64 * 2**20
"""Largest Python allocation peak (tracemalloc) one variant may reach. The corpus files
are a few KiB: anything near this was allocated on a corrupt header's word."""

BAD_OUTCOMES = ("foreign", "memory", "hang", "crash")

BINARY_FORMATS = ("netcdf4", "hdf5", "netcdf3", "grib", "tiff", "fits")
DOC_FORMATS = ("kerchunk_json", "kerchunk_parquet", "manifest_store", "zarr_store", "dmrpp")
FORMATS = BINARY_FORMATS + DOC_FORMATS

FILETYPE = {
    "netcdf4": "hdf5",
    "hdf5": "hdf5",
    "netcdf3": "netcdf3",
    "kerchunk_json": "kerchunk",
    "kerchunk_parquet": "kerchunk",
    "manifest_store": "manifest_store",
    "zarr_store": "zarr",
    "dmrpp": "dmrpp",
    "grib": "grib",
    "tiff": "tiff",
    "fits": "fits",
}


# ====================================================================== the corpus
def _nc4_files(d: Path) -> None:
    import netCDF4
    import numpy as np

    rng = np.random.default_rng(0)
    with netCDF4.Dataset(d / "nc4_model.nc", "w", format="NETCDF4") as ds:
        ds.title = "fuzz corpus"
        ds.history = "created for fuzzing"
        ds.version = np.int32(3)
        ds.levels = np.array([1.5, 2.5], "f8")
        ds.createDimension("time", None)
        ds.createDimension("lat", 5)
        ds.createDimension("lon", 6)
        ds.createDimension("nchar", 4)
        t = ds.createVariable("time", "f8", ("time",))
        t.units = "days since 2000-01-01"
        t.calendar = "standard"
        t[:] = np.arange(3.0)
        lat = ds.createVariable("lat", "f4", ("lat",))
        lat.units = "degrees_north"
        lat[:] = np.linspace(-10, 10, 5)
        lon = ds.createVariable("lon", "f4", ("lon",), contiguous=True)
        lon[:] = np.linspace(0, 50, 6)
        temp = ds.createVariable(
            "temp", "i2", ("time", "lat", "lon"), zlib=True, shuffle=True,
            chunksizes=(1, 5, 3), fill_value=np.int16(-999),
        )  # fmt: skip
        temp.scale_factor = np.float32(0.01)
        temp.add_offset = np.float32(273.15)
        temp[:] = rng.integers(-500, 500, (3, 5, 6))
        pr = ds.createVariable("precip", "f4", ("lat", "lon"), contiguous=True)
        pr.missing_value = np.float32(-1)
        pr[:] = rng.random((5, 6)).astype("f4")
        fl = ds.createVariable("flag", "u1", ("time", "lon"), fletcher32=True, chunksizes=(2, 6))
        fl[:] = rng.integers(0, 9, (3, 6))
        nm = ds.createVariable("station", "S1", ("lat", "nchar"))
        nm[:] = netCDF4.stringtochar(np.array(["ab", "cde", "f", "ghij", ""], "S4"))
        sc = ds.createVariable("scalar", "i4", ())
        sc[...] = 7
        g = ds.createGroup("forecast")
        g.createDimension("step", 2)
        gv = g.createVariable("wind", "f8", ("step", "lat"), zlib=True, complevel=1)
        gv.long_name = "wind speed"
        gv[:] = rng.random((2, 5))
    with netCDF4.Dataset(d / "nc4_compact.nc", "w", format="NETCDF4") as ds:
        ds.createDimension("x", 4)
        c = ds.createVariable("small", "i4", ("x",), contiguous=True)
        c[:] = np.arange(4)
        s = ds.createVariable("label", str, ("x",))
        s[:] = np.array(["w", "xy", "z", "q"], dtype=object)
        u = ds.createVariable("u8", "u8", ("x",), zlib=True, chunksizes=(2,))
        u[:] = np.arange(4, dtype="u8")


def _h5_files(d: Path) -> None:
    import h5py
    import numpy as np

    rng = np.random.default_rng(1)
    with h5py.File(d / "h5_layouts.h5", "w", track_order=False) as f:
        f.attrs["title"] = "h5py corpus"
        f.attrs["ints"] = np.arange(3, dtype="<i4")
        f.attrs["be"] = np.array([1.0, 2.0], ">f8")
        x = f.create_dataset("x", data=np.arange(8, dtype="f8"), track_times=False)
        x.make_scale("x")
        y = f.create_dataset("y", data=np.arange(4, dtype="i4"), track_times=False)
        y.make_scale("y")
        z = f.create_dataset(
            "chunked", data=rng.random((8, 4)), chunks=(4, 2), compression="gzip",
            shuffle=True, fillvalue=-1.0, track_times=False,
        )  # fmt: skip
        z.dims[0].attach_scale(x)
        z.dims[1].attach_scale(y)
        z.attrs["units"] = "K"
        c = f.create_dataset("contig", data=rng.integers(0, 100, (8,)).astype(">i2"),
                             track_times=False)  # fmt: skip
        c.dims[0].attach_scale(x)
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_layout(h5py.h5d.COMPACT)
        space = h5py.h5s.create_simple((4,))
        tid = h5py.h5t.py_create(np.dtype("<u2"))
        h5py.h5d.create(f.id, b"compact", tid, space, dcpl=dcpl)
        f["compact"][...] = np.arange(4, dtype="<u2")
        f.create_dataset("empty", shape=(6,), chunks=(2,), dtype="f4", fillvalue=np.nan,
                         track_times=False)  # fmt: skip
        f.create_dataset("fl32", data=np.arange(6, dtype="i8"), chunks=(3,), fletcher32=True,
                         track_times=False)  # fmt: skip
        f.create_dataset("grow", data=np.arange(5, dtype="f4"), maxshape=(None,), chunks=(2,),
                         track_times=False)  # fmt: skip
        f.create_dataset("lzf", data=np.arange(10, dtype="i4"), chunks=(5,), compression="lzf",
                         track_times=False)  # fmt: skip
        f.create_dataset("vstr", data=np.array(["alpha", "b"], dtype=h5py.string_dtype()),
                         track_times=False)  # fmt: skip
        f.create_dataset("scalar", data=np.float32(2.5), track_times=False)
        g = f.create_group("sub/deeper")
        g.attrs["level"] = np.int64(2)
        g.create_dataset("v", data=rng.random((3, 2)).astype("f4"), chunks=(1, 2),
                         compression="gzip", track_times=False)  # fmt: skip


def _nc3_files(d: Path) -> None:
    import netCDF4
    import numpy as np
    from scipy.io import netcdf_file

    with netcdf_file(d / "nc3_scipy.nc", "w", version=1) as f:
        f.title = b"scipy classic"
        f.createDimension("time", None)
        f.createDimension("x", 3)
        f.createDimension("len", 5)
        t = f.createVariable("time", "f8", ("time",))
        t.units = b"hours since 2001-01-01"
        t[:] = np.arange(4.0)
        v = f.createVariable("v", "i2", ("time", "x"))
        v._FillValue = np.int16(-1)
        v.scale_factor = np.float32(0.5)
        v[:] = np.arange(12).reshape(4, 3)
        b = f.createVariable("b", "i1", ("time",))
        b[:] = np.arange(4)
        x = f.createVariable("x", "f4", ("x",))
        x[:] = [1, 2, 3]
        s = f.createVariable("name", "c", ("x", "len"))
        s[:] = np.array([list("abcde"), list("fg\0\0\0"), list("h\0\0\0\0")], "S1")
    with netcdf_file(d / "nc3_onerec.nc", "w", version=2) as f:
        f.createDimension("t", None)
        r = f.createVariable("r", "i1", ("t",))
        r[:] = np.arange(7)
        f.createDimension("y", 2)
        y = f.createVariable("y", "f8", ("y",))
        y.valid_range = np.array([0.0, 9.0])
        y[:] = [4, 5]
    with netCDF4.Dataset(d / "nc3_cdf5.nc", "w", format="NETCDF3_64BIT_DATA") as ds:
        ds.setncattr("ints", np.array([1, 2], "i8"))
        ds.createDimension("rec", None)
        ds.createDimension("n", 3)
        a = ds.createVariable("a", "u8", ("rec", "n"))
        a[:] = np.arange(6, dtype="u8").reshape(2, 3)
        c = ds.createVariable("c", "u2", ("n",), fill_value=np.uint16(9))
        c.note = "unsigned"
        c[:] = [1, 2, 3]
        e = ds.createVariable("e", "f8", ("rec",))
        e[:] = [0.5, 1.5]
    with netCDF4.Dataset(d / "nc3_offset64.nc", "w", format="NETCDF3_64BIT_OFFSET") as ds:
        ds.createDimension("lat", 4)
        ds.createDimension("lon", 3)
        v = ds.createVariable("field", "f4", ("lat", "lon"), fill_value=np.float32(-9))
        v.units = "m"
        v[:] = np.arange(12, dtype="f4").reshape(4, 3)
        lat = ds.createVariable("lat", "f8", ("lat",))
        lat[:] = np.arange(4.0)


def _reference_docs(d: Path) -> None:
    """Kerchunk JSON, kerchunk Parquet and a manifest store made by our writers."""
    from virtualizarr import open_virtual_dataset

    src = d / "nc4_model.nc"
    vds = open_virtual_dataset(str(src))
    vds.virtualize.to_kerchunk(str(d / "refs_model.json"), format="json")
    vds.virtualize.to_kerchunk(str(d / "refs_model.parq"), format="parquet", record_size=4)
    vds.virtualize.to_zarr(str(d / "store_model.zarr"))
    h5 = open_virtual_dataset(str(d / "h5_layouts.h5"), drop_variables=["lzf"])
    h5.virtualize.to_kerchunk(str(d / "refs_h5.json"), format="json")
    h5.virtualize.to_zarr(str(d / "store_h5.zarr"))
    nc3 = open_virtual_dataset(str(d / "nc3_scipy.nc"))
    nc3.virtualize.to_kerchunk(str(d / "refs_nc3.parq"), format="parquet", record_size=2)


def _zarr_stores(d: Path) -> None:
    """Zarr stores written by zarr-python: v2 (consolidated; zlib, blosc with a delta
    filter, a missing chunk, a string array) and v3 (zstd, and a sharded array)."""
    import warnings

    import numcodecs
    import numpy as np
    import zarr
    from zarr.codecs import ZstdCodec

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        g = zarr.open_group(d / "zarr_v2.zarr", mode="w", zarr_format=2)
        g.attrs["title"] = "fuzz"
        a = g.create_array("a", shape=(6, 4), chunks=(3, 2), dtype="i4", fill_value=None,
                           compressors=numcodecs.Zlib())  # fmt: skip
        a[:3] = np.arange(12).reshape(3, 4)
        a.attrs.update({"_ARRAY_DIMENSIONS": ["y", "x"], "units": "m"})
        b = g.create_array("b", shape=(6,), chunks=(4,), dtype="f8", fill_value=np.nan,
                           filters=[numcodecs.Delta(dtype="<f8")],
                           compressors=numcodecs.Blosc())  # fmt: skip
        b[:] = np.arange(6) / 2
        b.attrs["_ARRAY_DIMENSIONS"] = ["y"]
        s = g.create_array("s", shape=(4,), chunks=(4,), dtype=str)
        s[:] = ["a", "bb", "", "d"]
        s.attrs["_ARRAY_DIMENSIONS"] = ["x"]
        zarr.consolidate_metadata(d / "zarr_v2.zarr")
        g3 = zarr.open_group(d / "zarr_v3.zarr", mode="w", zarr_format=3)
        c = g3.create_array("c", shape=(5, 6), chunks=(2, 3), dtype="f4",
                            compressors=ZstdCodec(level=1), dimension_names=["y", "x"])  # fmt: skip
        c[:] = np.arange(30).reshape(5, 6)
        sh = g3.create_array("sh", shape=(7, 6), chunks=(2, 3), shards=(4, 6), dtype="i2",
                             dimension_names=["t", "x"], fill_value=-1)  # fmt: skip
        sh[:5] = np.arange(30).reshape(5, 6)


def _dmrpp_docs(d: Path) -> None:
    """DMR++ sidecars of corpus files, made from their chunk metadata."""
    sys.path.insert(0, str(REPO))
    from tests.readers.dmrpp_cases import SCHEMA_NS, write_dmrpp

    write_dmrpp(d / "nc4_model.nc", d / "nc4_model.nc.dmrpp")
    write_dmrpp(d / "h5_layouts.h5", d / "h5_layouts.h5.dmrpp", ns=SCHEMA_NS)


CORPUS_FILES: dict[str, tuple[str, ...]] = {
    "netcdf4": ("nc4_model.nc", "nc4_compact.nc"),
    "hdf5": ("h5_layouts.h5",),
    "netcdf3": ("nc3_scipy.nc", "nc3_onerec.nc", "nc3_cdf5.nc", "nc3_offset64.nc"),
    "kerchunk_json": ("refs_model.json", "refs_h5.json"),
    "kerchunk_parquet": ("refs_model.parq", "refs_nc3.parq"),
    "manifest_store": ("store_model.zarr", "store_h5.zarr"),
    "zarr_store": ("zarr_v2.zarr", "zarr_v3.zarr"),
    "dmrpp": ("nc4_model.nc.dmrpp", "h5_layouts.h5.dmrpp"),
    **corpus_formats.FILES,
}


def build_corpus(d: str | os.PathLike[str]) -> Path:
    """Write the corpus files into ``d`` (created if needed) and return it.

    Parameters
    ----------
    d : str or path-like
        Target directory. The reference documents point at the binary files there, by
        absolute path, so the corpus must not be moved afterwards.

    Returns
    -------
    pathlib.Path
    """
    out = Path(d).resolve()
    out.mkdir(parents=True, exist_ok=True)
    _nc4_files(out)
    _h5_files(out)
    _nc3_files(out)
    _reference_docs(out)
    _zarr_stores(out)
    _dmrpp_docs(out)
    corpus_formats.build(out)
    return out


def corpus_dir() -> Path:
    """The shared corpus at a fixed place, built once per recipe (under a file lock).

    The place is ``$TMPDIR/vzfuzz-corpus-<recipe hash>``: the hash covers this module's
    corpus builders, our writers and the library versions, so a spec names the same bytes
    on every run (the reference documents hold absolute paths, hence the fixed place).

    Returns
    -------
    pathlib.Path
    """
    import fcntl
    import inspect

    import h5py
    import netCDF4

    h = hashlib.sha256()
    for fn in (_nc4_files, _h5_files, _nc3_files, _reference_docs, _zarr_stores, _dmrpp_docs):
        h.update(inspect.getsource(fn).encode())
    h.update((REPO / "tests" / "readers" / "dmrpp_cases.py").read_bytes())
    h.update(inspect.getsource(corpus_formats).encode())
    for p in sorted((REPO / "virtualizarr" / "writers").glob("*.py")):
        h.update(p.read_bytes())
    h.update(f"{h5py.version.hdf5_version} {netCDF4.__netcdf4libversion__}".encode())
    d = Path(tempfile.gettempdir()) / f"vzfuzz-corpus-{h.hexdigest()[:10]}"
    with open(f"{d}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (d / ".complete").exists():
            shutil.rmtree(d, ignore_errors=True)
            build_corpus(d)
            (d / ".complete").write_text("ok\n")
    return d


def corpus_digest(d: Path) -> str:
    """A short digest of every corpus file (to tell whether two corpora are the same)."""
    h = hashlib.sha256()
    for fmt in FORMATS:
        for name in CORPUS_FILES[fmt]:
            for p in sorted(_files_of(d / name)):
                h.update(p.relative_to(d).as_posix().encode())
                h.update(p.read_bytes())
    return h.hexdigest()[:12]


def _files_of(p: Path) -> list[Path]:
    return [p] if p.is_file() else sorted(q for q in p.rglob("*") if q.is_file())


# ====================================================================== mutations
def header_size(fmt: str, data: bytes) -> int:
    """Bytes at the start of a file where its metadata lives (truncated at every offset)."""
    if fmt == "netcdf3":
        try:
            sys.path.insert(0, str(REPO))
            from virtualizarr.readers.netcdf3.header import parse_header

            return int(parse_header(data).size)
        except Exception:  # pragma: no cover - the corpus is valid
            return min(len(data), 512)
    if fmt in ("netcdf4", "hdf5"):
        return min(len(data), 1024)  # superblock, root group and the first object headers
    if fmt == "fits":
        return min(len(data), 2880)  # the primary header block
    if fmt == "tiff":
        return min(len(data), 512)  # header and first IFD (tifffile writes it first)
    return min(len(data), 256)


HUGE_VALUES: tuple[int, ...] = (
    2**32 - 1,
    2**31 - 1,
    2**31,
    2**63 - 1,
    2**64 - 1,
    2**40,
    2**24 + 3,
)
JSON_POOL: tuple[Any, ...] = (
    None,
    True,
    0,
    -1,
    1,
    2**31,
    2**63,
    2**64 + 5,
    10**30,
    1.5,
    -0.0,
    1e308,
    float("nan"),
    "",
    "x",
    "base64:",
    "base64:!!notbase64",
    "base64:AAAA",
    "file:///no/such/file.nc",
    [],
    [0],
    [-3],
    [2**40],
    [2**40, 1],
    ["file:///no/such/file.nc", 0, 10],
    ["file:///no/such/file.nc"],
    [None, "a", 1],
    {},
    {"id": "zlib"},
    {"id": "nosuchcodec"},
    {"name": "bytes"},
    {"a": [1, {"b": None}]},
)


def _rng(spec: str) -> random.Random:
    return random.Random(int(hashlib.sha256(spec.encode()).hexdigest()[:16], 16))


def mutate_bytes(fmt: str, data: bytes, kind: str, param: int, spec: str) -> bytes:
    """Apply one binary mutation.

    Parameters
    ----------
    fmt : str
    data : bytes
    kind : {"trunc", "flip", "byte", "huge"}
        Truncate at ``param``; flip 1 to 8 random bits; overwrite 1 to 4 random bytes;
        overwrite a 4- or 8-byte field (either byte order) with a huge value.
    param : int
    spec : str
        Seeds the random choices.

    Returns
    -------
    bytes
    """
    rng = _rng(spec)
    buf = bytearray(data)
    if not buf:
        return bytes(buf)
    hs = header_size(fmt, data)

    def pos() -> int:  # half the time inside the header region
        return rng.randrange(hs if rng.random() < 0.5 else len(buf))

    if kind == "trunc":
        return bytes(buf[:param])
    if kind == "flip":
        for _ in range(rng.randint(1, 8)):
            p = pos()
            buf[p] ^= 1 << rng.randrange(8)
        return bytes(buf)
    if kind == "byte":
        for _ in range(rng.randint(1, 4)):
            buf[pos()] = rng.randrange(256)
        return bytes(buf)
    if kind == "huge":
        width = rng.choice((4, 8))
        value = rng.choice(HUGE_VALUES) % (1 << (8 * width))
        order = "big" if fmt in ("netcdf3", "grib", "fits") else "little"
        if rng.random() < 0.2:
            order = "little" if order == "big" else "big"
        p = pos()
        if fmt in ("netcdf3", "fits"):
            p -= p % 4
        raw = value.to_bytes(width, order)  # type: ignore[arg-type]
        buf[p : p + width] = raw[: len(buf) - p]
        return bytes(buf[: len(data)])
    raise ValueError(f"unknown mutation kind {kind!r}")


def _json_paths(doc: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from _json_paths(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _json_paths(v, (*prefix, i))


def _embedded(doc: Any) -> Any:
    """Decode string values that are JSON objects (kerchunk's .zarray etc.) for editing."""
    if isinstance(doc, dict):
        out = {}
        for k, v in doc.items():
            if isinstance(v, str) and v.startswith("{"):
                try:
                    out[k] = {"__embedded__": _embedded(json.loads(v))}
                    continue
                except ValueError:
                    pass
            out[k] = _embedded(v)
        return out
    if isinstance(doc, list):
        return [_embedded(v) for v in doc]
    return doc


def _reembed(doc: Any) -> Any:
    if isinstance(doc, dict):
        if set(doc) == {"__embedded__"}:
            return json.dumps(_reembed(doc["__embedded__"]))
        return {k: _reembed(v) for k, v in doc.items()}
    if isinstance(doc, list):
        return [_reembed(v) for v in doc]
    return doc


def mutate_json(doc: Any, rng: random.Random, n_ops: int | None = None) -> Any:
    """Apply 1 to 3 structural edits to a JSON document (and the JSON strings inside it).

    Edits: replace a value with one from :data:`JSON_POOL` (or a huge/negative number,
    or a mangled base64 string), delete a key, rename a key, add a key, truncate a list.

    Parameters
    ----------
    doc : object
        A parsed JSON document.
    rng : random.Random
    n_ops : int, optional

    Returns
    -------
    object
    """
    work = _embedded(doc)
    for _ in range(n_ops or rng.randint(1, 3)):
        paths = [p for p in _json_paths(work) if p and p[-1] != "__embedded__"]
        if not paths:
            return copy.deepcopy(rng.choice(JSON_POOL))
        # favour metadata (keys inside embedded documents) over chunk references
        meta = [p for p in paths if "__embedded__" in p]
        path = rng.choice(meta if meta and rng.random() < 0.6 else paths)
        parent: Any = work
        for k in path[:-1]:
            parent = parent[k]
        key = path[-1]
        op = rng.random()
        if op < 0.55:
            old = parent[key]
            if isinstance(old, int) and not isinstance(old, bool) and rng.random() < 0.5:
                parent[key] = rng.choice((old * 2**31, -old - 1, old + 1, 2**62))
            elif isinstance(old, str) and old.startswith("base64:") and rng.random() < 0.7:
                raw = bytearray(base64.b64decode(old[7:] + "==="))
                if raw:
                    raw[rng.randrange(len(raw))] ^= 0xFF
                parent[key] = "base64:" + base64.b64encode(bytes(raw)).decode()
            else:  # a copy: a pool value edited in place would loop or leak into others
                parent[key] = copy.deepcopy(rng.choice(JSON_POOL))
        elif op < 0.75:
            del parent[key]
        elif op < 0.85 and isinstance(parent, dict):
            parent[rng.choice(("zz", ".zarray", "0.0", "c/9/9", "x/.zattrs"))] = parent.pop(key)
        elif isinstance(parent, dict):
            parent[rng.choice(("extra", "9.9.9", "0", "c/0/0", "zzz/.zarray"))] = copy.deepcopy(
                rng.choice(JSON_POOL)
            )
        else:
            del parent[len(parent) // 2 :]
    return _reembed(work)


@dataclasses.dataclass(frozen=True, slots=True)
class Spec:
    """One fuzz variant: ``format/base/kind/param`` (see :func:`parse_spec`)."""

    fmt: str
    base: str
    kind: str
    param: int

    def __str__(self) -> str:
        return f"{self.fmt}/{self.base}/{self.kind}/{self.param}"


def parse_spec(s: str) -> Spec:
    """Parse ``"format/base/kind/param"``."""
    fmt, base, kind, param = s.split("/")
    return Spec(fmt, base, kind, int(param))


def variants(fmt: str, corpus: Path, n: int) -> list[Spec]:
    """``n`` deterministic variants of ``fmt``'s corpus files.

    Binary formats: a third truncations (every offset of the header region first, then
    strided through the file), the rest split between bit flips, byte overwrites and
    huge length fields. Documents: structural JSON edits, truncations and byte flips of
    a chosen file.

    Parameters
    ----------
    fmt : str
    corpus : pathlib.Path
    n : int

    Returns
    -------
    list of Spec
    """
    bases = CORPUS_FILES[fmt]
    out: list[Spec] = []
    per_base = [n // len(bases) + (i < n % len(bases)) for i in range(len(bases))]
    for base, m in zip(bases, per_base, strict=True):
        if fmt in BINARY_FORMATS:
            data = (corpus / base).read_bytes()
            hs = header_size(fmt, data)
            n_trunc = m // 3
            offsets = list(range(min(hs, n_trunc)))
            rest = n_trunc - len(offsets)
            if rest > 0:
                step = max(1, (len(data) - hs) // rest)
                offsets += list(range(hs, len(data), step))[:rest]
            out += [Spec(fmt, base, "trunc", o) for o in offsets]
            binary_kinds = ("flip", "byte", "huge")
            for i in range(m - len(offsets)):
                out.append(Spec(fmt, base, binary_kinds[i % 3], i))
        else:
            doc_kinds = ("json", "json", "json", "trunc", "flip")
            out += [Spec(fmt, base, doc_kinds[i % len(doc_kinds)], i) for i in range(m)]
    return out


def materialize(spec: Spec, corpus: Path, work: Path) -> Path:
    """Write the variant ``spec`` under ``work`` and return its path.

    Parameters
    ----------
    spec : Spec
    corpus : pathlib.Path
        The corpus directory.
    work : pathlib.Path
        A scratch directory (its previous content for this base is replaced).

    Returns
    -------
    pathlib.Path
    """
    src = corpus / spec.base
    dst = work / spec.base
    work.mkdir(parents=True, exist_ok=True)
    for path, original in list(_DIRTY.items()):  # undo the previous variant's edit
        if path.is_relative_to(work):
            path.write_bytes(original)
            del _DIRTY[path]
    if spec.fmt in BINARY_FORMATS:
        dst.write_bytes(mutate_bytes(spec.fmt, src.read_bytes(), spec.kind, spec.param, str(spec)))
        return dst
    rng = _rng(str(spec))
    if src.is_file():
        target, dst_file = src, dst
    else:
        marker = work / f"{spec.base}.complete"
        if not marker.exists():  # one pristine copy per work dir, then edits
            shutil.rmtree(dst, ignore_errors=True)
            shutil.copytree(src, dst)
            marker.write_text("")
        files = _files_of(dst)
        docs = [p for p in files if p.name in _DOC_NAMES]
        pool = docs if docs and (spec.kind == "json" or rng.random() < 0.6) else files
        dst_file = rng.choice(pool)
        target = dst_file
    data = target.read_bytes()
    if spec.kind == "json" and spec.fmt == "dmrpp":
        out = mutate_xml(data, rng)
    elif spec.kind == "json":
        try:
            doc = json.loads(data)
        except ValueError:
            out = mutate_bytes("json", data, "flip", spec.param, str(spec))
        else:
            out = json.dumps(mutate_json(doc, rng)).encode()
    elif spec.kind == "trunc":
        out = data[: rng.randrange(len(data) + 1)]
    else:
        out = mutate_bytes("json", data, rng.choice(("flip", "byte", "huge")), 0, str(spec))
    if dst_file != dst:
        _DIRTY[dst_file] = data
    dst_file.write_bytes(out)
    return dst


_DOC_NAMES: Final = ("zarr.json", "manifest.json", ".zmetadata", ".zarray", ".zattrs", ".zgroup")
"""Metadata documents of directory formats (edited structurally most of the time)."""

XML_POOL: tuple[str, ...] = (
    "", "-1", "0", "x", "nan", "1e308", "[0,99999999]", "18446744073709551615",
    "4294967296", "9" * 40, "shuffle szip", "deflate deflate deflate", "BE", "/nope",
)  # fmt: skip
"""Values XML mutations put into attributes and element text."""


def mutate_xml(data: bytes, rng: random.Random) -> bytes:
    """Replace one to three attribute values or element texts with hostile values, or
    drop an element: the XML stays well formed, its content lies."""
    text = data.decode("utf-8", "replace")
    for _ in range(rng.randint(1, 3)):
        spots = [m.span(1) for m in re.finditer(r'="([^"]*)"', text)]
        spots += [m.span(1) for m in re.finditer(r">([^<>]+)</", text)]
        roll = rng.random()
        if roll < 0.15:  # drop a whole self-closing element
            elems = [m.span() for m in re.finditer(r"<[A-Za-z:]+ [^<>]*/>", text)]
            if elems:
                a, b = rng.choice(elems)
                text = text[:a] + text[b:]
            continue
        if not spots:
            break
        a, b = rng.choice(spots)
        text = text[:a] + rng.choice(XML_POOL) + text[b:]
    return text.encode("utf-8")


_DIRTY: dict[Path, bytes] = {}
"""Files of pristine work copies that the last variant edited, with their original bytes."""


# ====================================================================== one variant
def run_one(spec: Spec, corpus: Path, work: Path) -> dict[str, Any]:
    """Run one variant in this process and classify the outcome (no crash protection).

    Parameters
    ----------
    spec : Spec
    corpus, work : pathlib.Path

    Returns
    -------
    dict
        ``outcome``, ``cls`` (exception class), ``msg``, ``tb`` (for foreign exceptions),
        ``secs``, ``peak`` (bytes, tracemalloc; 0 if not tracing).
    """
    import tracemalloc
    import warnings

    from virtualizarr import open_virtual_dataset
    from virtualizarr.errors import VirtualiZarrError

    path = materialize(spec, corpus, work)
    if tracemalloc.is_tracing():
        tracemalloc.reset_peak()
    t0 = time.perf_counter()
    result: dict[str, Any] = {"spec": str(spec), "outcome": "ok", "cls": "", "msg": "", "tb": ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            ds = open_virtual_dataset(str(path), filetype=FILETYPE[spec.fmt])
            ds.virtualize.to_kerchunk(format="dict")
    except VirtualiZarrError as e:
        result.update(cls=type(e).__name__, msg=str(e)[:400])
        result["outcome"] = "project" if str(e).strip() else "foreign"
    except BaseException as e:  # every other escape is what we hunt
        if isinstance(e, KeyboardInterrupt):
            raise
        result.update(
            outcome="foreign",
            cls=f"{type(e).__module__}.{type(e).__qualname__}",
            msg=str(e)[:400],
            tb="".join(traceback.format_exception(e)[-6:])[-2500:],
        )
    result["secs"] = time.perf_counter() - t0
    result["peak"] = tracemalloc.get_traced_memory()[1] if tracemalloc.is_tracing() else 0
    if result["outcome"] in ("ok", "project") and result["peak"] > MEMORY_BUDGET:
        result["outcome"] = "memory"
    if result["outcome"] in ("ok", "project") and result["secs"] > TIME_BUDGET:
        result["outcome"] = "hang"
    return result


def _worker_main(corpus: str) -> None:
    """Serve variants read as lines from stdin; answer each with one JSON line."""
    import tracemalloc
    import warnings

    warnings.simplefilter("error")
    warnings.filterwarnings("ignore", "numpy.ndarray size changed", RuntimeWarning)
    work = Path(tempfile.mkdtemp(prefix="vzfuzz-"))
    out = sys.stdout
    sys.stdout = sys.stderr  # stray prints must not corrupt the protocol
    # warm up: xarray imports dask and scipy lazily on first use, which must not count
    # against the first variant's time budget
    for fmt in FORMATS:
        run_one(Spec(fmt, CORPUS_FILES[fmt][0], "trunc", 10**9), Path(corpus), work)
    tracemalloc.start(1)
    out.write("ready\n")
    out.flush()
    try:
        for line in sys.stdin:
            spec = parse_spec(line.strip())
            out.write(json.dumps(run_one(spec, Path(corpus), work)) + "\n")
            out.flush()
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ====================================================================== the runner
class _Worker:
    def __init__(self, corpus: Path, log_dir: Path) -> None:
        env = dict(os.environ)
        env.update(OPENBLAS_NUM_THREADS="1", OMP_NUM_THREADS="1", PYTHONFAULTHANDLER="1")
        env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")])
        self.log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - lives as long as the worker
            dir=log_dir, prefix="worker-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-u", __file__, "worker", str(corpus)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self.log,
            text=True,
            env=env,
        )
        line = self._read(120.0)
        if line != "ready":
            self.close()
            raise RuntimeError(f"fuzz worker failed to start; see {self.log.name}")

    def _read(self, timeout: float) -> str | None:
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        line = self.proc.stdout.readline()
        return line.strip() if line else ""

    def run(self, spec: Spec, timeout: float) -> dict[str, Any]:
        assert self.proc.stdin is not None
        t0 = time.perf_counter()
        try:
            self.proc.stdin.write(f"{spec}\n")
            self.proc.stdin.flush()
            line = self._read(timeout)
        except (BrokenPipeError, OSError):
            line = ""
        secs = time.perf_counter() - t0
        base = {"spec": str(spec), "cls": "", "msg": "", "tb": "", "secs": secs, "peak": 0}
        if line is None:
            self.close()
            return {**base, "outcome": "hang", "msg": f"no answer within {timeout:.0f} s"}
        if not line:
            rc = self.proc.wait()
            self.log.flush()
            tail = Path(self.log.name).read_text(errors="replace")[-1500:]
            return {**base, "outcome": "crash", "cls": f"exit {rc}", "msg": tail}
        result: dict[str, Any] = json.loads(line)
        return result

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for s in (self.proc.stdin, self.proc.stdout):
            if s is not None:
                s.close()
        self.log.close()


class Runner:
    """Run variants in ``workers`` subprocesses, restarting one after a crash or a hang.

    Parameters
    ----------
    corpus : pathlib.Path
    workers : int
    timeout : float
        Seconds per variant (answer included) before it counts as a hang.
    """

    def __init__(self, corpus: Path, workers: int = 2, timeout: float = TIME_BUDGET) -> None:
        self.corpus = corpus
        self.workers = max(1, workers)
        self.timeout = timeout

    def run(
        self, specs: Sequence[Spec], progress: Callable[[dict[str, Any]], None] | None = None
    ) -> list[dict[str, Any]]:
        """Run every spec; results come back in the order of ``specs``."""
        self.log_dir = Path(tempfile.mkdtemp(prefix="vzfuzz-logs-"))
        queue: Queue[tuple[int, Spec]] = Queue()
        for item in enumerate(specs):
            queue.put(item)
        results: list[dict[str, Any] | None] = [None] * len(specs)
        errors: list[BaseException] = []
        lock = threading.Lock()

        def loop() -> None:
            worker: _Worker | None = None
            try:
                while True:
                    try:
                        i, spec = queue.get_nowait()
                    except Empty:
                        return
                    if worker is None or not worker.alive():
                        if worker is not None:
                            worker.close()
                        worker = _Worker(self.corpus, self.log_dir)
                    res = worker.run(spec, self.timeout)
                    results[i] = res
                    if progress is not None:
                        with lock:
                            progress(res)
            except BaseException as e:  # pragma: no cover - surfaced below
                errors.append(e)
            finally:
                if worker is not None:
                    worker.close()

        threads = [threading.Thread(target=loop) for _ in range(min(self.workers, len(specs)))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        shutil.rmtree(self.log_dir, ignore_errors=True)
        return [r for r in results if r is not None]


def summarize(results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Counts per outcome, project errors per class, and the bad results themselves."""
    counts: dict[str, int] = {}
    classes: dict[str, int] = {}
    bad: list[dict[str, Any]] = []
    secs: list[float] = []
    for r in results:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
        secs.append(float(r["secs"]))
        if r["outcome"] == "project":
            classes[r["cls"]] = classes.get(r["cls"], 0) + 1
        if r["outcome"] in BAD_OUTCOMES:
            bad.append(r)
    return {"counts": counts, "classes": classes, "bad": bad, "secs": secs}


def describe_bad(bad: Sequence[dict[str, Any]], limit: int = 15) -> str:
    """A readable list of bad outcomes with their reproducer specs."""
    lines = []
    for r in bad[:limit]:
        lines.append(f"- {r['outcome']} {r['cls']}: {r['msg'][:300]!r}\n  spec: {r['spec']}")
        if r.get("tb"):
            lines.append("  " + r["tb"].replace("\n", "\n  "))
    if len(bad) > limit:
        lines.append(f"... and {len(bad) - limit} more")
    lines.append(
        "Reproduce one with: python tests/fuzz/fuzzlib.py repro SPEC out  (then open "
        "out/<base> with open_virtual_dataset)"
    )
    return "\n".join(lines)


DEFAULT_EXAMPLES: dict[str, int] = {
    "netcdf4": 150,
    "hdf5": 150,
    "netcdf3": 200,
    "kerchunk_json": 120,
    "kerchunk_parquet": 100,
    "manifest_store": 100,
    "zarr_store": 100,
    "dmrpp": 100,
    "grib": 90,
    "tiff": 90,
    "fits": 90,
}
"""Variants per format in the test suite's default run (about 30 s on two cores)."""


def examples(fmt: str) -> int:
    """Variants of ``fmt`` to run: ``VZ_FUZZ_EXAMPLES`` if set, else the default."""
    return int(os.environ.get("VZ_FUZZ_EXAMPLES", DEFAULT_EXAMPLES[fmt]))


def _main(argv: list[str]) -> None:
    if argv[:1] == ["worker"]:
        _worker_main(argv[1])
    elif argv[:1] == ["repro"]:
        spec = parse_spec(argv[1])
        out = Path(argv[2]).resolve()
        (out / "run").mkdir(parents=True, exist_ok=True)
        corpus = corpus_dir()
        path = materialize(spec, corpus, out)
        print(path)
        print(json.dumps(run_one(spec, corpus, out / "run"), indent=1))
    else:
        raise SystemExit("usage: fuzzlib.py worker CORPUS | fuzzlib.py repro SPEC OUTDIR")


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    _main(sys.argv[1:])
