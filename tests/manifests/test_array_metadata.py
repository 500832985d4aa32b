"""Our Zarr v3 array metadata against zarr-python's own (ArrayMetadata vs ArrayV3Metadata).

The reference is zarr itself: :func:`zarr_reference` builds ``ArrayV3Metadata`` from the
same facts a reader hands :func:`make_array_metadata` -- exactly what
``make_array_metadata`` did before it had a class of its own -- and every document, data
type and fill value must agree, over every data type, fill value, codec chain and grid the
readers produce (hypothesis draws the combinations).
"""

from __future__ import annotations

import dataclasses
import json
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from zarr.core.dtype import VariableLengthUTF8, get_data_type_from_native_dtype
from zarr.core.metadata.v3 import ArrayV3Metadata

from virtualizarr.api import open_virtual_group
from virtualizarr.errors import InvalidMetadataError, UnsupportedFeatureError, VirtualiZarrError
from virtualizarr.manifests import (
    ArrayMetadata,
    ChunkManifest,
    ManifestArray,
    RectilinearChunkGrid,
    RegularChunkGrid,
    VirtualGroup,
    make_array_metadata,
)
from virtualizarr.manifests.chunk_codecs import register_zarr_codecs
from virtualizarr.manifests.metadata import _serializer, grid_metadata

# ---------------------------------------------------------------------- the reference


def zarr_reference(
    *,
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    chunks: tuple[Any, ...],
    fill_value: Any,
    codecs: tuple[dict[str, Any], ...] = (),
    array_codecs: tuple[dict[str, Any], ...] = (),
    data_type: np.dtype[Any] | None = None,
    dimension_names: tuple[str, ...] | None = None,
    attributes: dict[str, Any] | None = None,
) -> ArrayV3Metadata:
    """zarr's metadata for what a reader found (make_array_metadata before ArrayMetadata)."""
    register_zarr_codecs()
    held = np.dtype(data_type) if data_type is not None else dtype
    zdt = (
        VariableLengthUTF8()
        if held.kind in "OT"
        else get_data_type_from_native_dtype(held.newbyteorder("="))
    )
    with warnings.catch_warnings(), zarr.config.set({"array.rectilinear_chunks": True}):
        warnings.simplefilter("ignore")
        return ArrayV3Metadata(
            shape=shape,
            data_type=zdt,
            chunk_grid=grid_metadata(chunks).to_dict(),
            chunk_key_encoding={"name": "default", "configuration": {"separator": "/"}},
            fill_value=fill_value,
            codecs=[*array_codecs, _serializer(dtype), *codecs],
            attributes=attributes or {},
            dimension_names=dimension_names,
        )


def zarr_doc(meta: ArrayV3Metadata) -> dict[str, Any]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fixed-length bytes: "not in the v3 spec"
        return meta.to_dict()


def assert_same(ours: ArrayMetadata, ref: ArrayV3Metadata) -> None:
    """Same document (literally: tuples where zarr has tuples), dtype and fill value."""
    assert ours.to_dict() == zarr_doc(ref)
    assert json.dumps(ours.to_dict()) == json.dumps(zarr_doc(ref))  # same bytes written
    assert ours.data_type == np.dtype(ref.data_type.to_native_dtype())
    assert type(ours.fill_value) is type(ref.fill_value)
    assert repr(ours.fill_value) == repr(ref.fill_value)
    # and back: from our document, from zarr's object, through zarr
    assert ArrayMetadata.from_dict(ours.to_dict()) == ours
    assert ArrayMetadata.from_zarr(ref) == ours
    assert zarr_doc(ours.to_zarr()) == ours.to_dict()


# ---------------------------------------------------------------------- what readers produce
ENDIANS = ("<", ">")


@st.composite
def numeric_dtypes(draw: st.DrawFn) -> np.dtype[Any]:
    code = draw(st.sampled_from(["?", "i1", "u1", "i2", "u2", "i4", "u4", "i8", "u8",
                                 "f2", "f4", "f8", "c8", "c16"]))  # fmt: skip
    dtype = np.dtype(code)
    return dtype.newbyteorder(draw(st.sampled_from(ENDIANS))) if dtype.itemsize > 1 else dtype


@st.composite
def dtypes(draw: st.DrawFn) -> np.dtype[Any]:
    kind = draw(st.sampled_from(["numeric", "numeric", "numeric", "S", "V", "time", "O", "rec"]))
    if kind == "numeric":
        return draw(numeric_dtypes())
    if kind in "SV":
        return np.dtype(f"{kind}{draw(st.integers(1, 8))}")
    if kind == "time":
        code = draw(st.sampled_from(["M8", "m8"]))
        unit = draw(st.sampled_from(["s", "ms", "ns", "D", "h"]))
        return np.dtype(f"{draw(st.sampled_from(ENDIANS))}{code}[{unit}]")
    if kind == "O":
        return np.dtype(object)
    order = draw(st.sampled_from(ENDIANS))  # readers repack records to one byte order
    fields = draw(st.lists(st.sampled_from(["i2", "f8", "u1", "S3", "f4"]), min_size=1, max_size=3))
    return np.dtype([(f"f{i}", np.dtype(c).newbyteorder(order)) for i, c in enumerate(fields)])


def floats(width: int) -> st.SearchStrategy[float]:
    """Values a float of ``width`` bits holds (a source's fill value is one)."""
    return st.one_of(
        st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0]),
        st.floats(allow_nan=False, allow_infinity=False, width=width),  # type: ignore[arg-type]
    )


@st.composite
def fills(draw: st.DrawFn, dtype: np.dtype[Any]) -> Any:
    kind = dtype.kind
    if kind == "b":
        return draw(st.booleans())
    if kind in "iu":
        info = np.iinfo(dtype)
        return draw(st.integers(int(info.min), int(info.max)))
    if kind == "f":
        value = draw(floats(8 * dtype.itemsize))
        return dtype.newbyteorder("=").type(value) if draw(st.booleans()) else value
    if kind == "c":
        part = floats(4 * dtype.itemsize)
        return complex(draw(part), draw(part))
    if kind == "S":
        return draw(st.binary(max_size=dtype.itemsize))
    if kind == "V":
        return draw(st.binary(min_size=dtype.itemsize, max_size=dtype.itemsize))
    if kind in "mM":
        unit = np.datetime_data(dtype)[0]
        if draw(st.booleans()):
            return dtype.newbyteorder("=").type("NaT", unit)
        return draw(st.integers(-(2**40), 2**40))
    if kind == "O":
        return draw(st.sampled_from(["", "missing", "é"]))
    return np.zeros((), dtype=dtype)[()]  # records: zeros, as the HDF5 reader's default


BYTES_CODECS = [
    {"name": "numcodecs.zlib", "configuration": {"level": 4}},
    {"name": "numcodecs.shuffle", "configuration": {"elementsize": 4}},
    {"name": "numcodecs.shuffle", "configuration": {}},  # zarr completes its elementsize
    {"name": "numcodecs.fletcher32", "configuration": {}},
    {"name": "numcodecs.bz2", "configuration": {"level": 9}},
    {"name": "numcodecs.zstd", "configuration": {"level": 3}},
    {"name": "numcodecs.blosc",
     "configuration": {"cname": "lz4", "clevel": 5, "shuffle": 1, "blocksize": 0}},
    {"name": "gzip", "configuration": {"level": 1}},
    {"name": "gzip", "configuration": {}},
    {"name": "zstd", "configuration": {"level": 1, "checksum": True}},
    {"name": "zstd", "configuration": {}},
    {"name": "blosc", "configuration": {"cname": "zstd", "clevel": 3}},  # typesize/shuffle
    {"name": "blosc", "configuration": {"typesize": 4, "cname": "lz4", "clevel": 1,
                                        "shuffle": "noshuffle", "blocksize": 0}},
    {"name": "crc32c"},
    {"name": "numcodecs.virtualizarr_grib", "configuration": {"dtype": "<f4", "grid_2d": True}},
    {"name": "numcodecs.imagecodecs_lzw", "configuration": {}},
    {"name": "numcodecs.imagecodecs_delta", "configuration": {"dist": 1, "axis": -1}},
]  # fmt: skip


@st.composite
def grids(draw: st.DrawFn) -> tuple[tuple[int, ...], tuple[Any, ...]]:
    ndim = draw(st.integers(0, 3))
    shape, chunks = [], []
    for _ in range(ndim):
        extent = draw(st.integers(0, 40))
        if draw(st.booleans()) or extent == 0:
            chunks.append(draw(st.integers(1, 12)))
        else:  # explicit lengths covering the extent, the last one possibly padded
            lengths: list[int] = []
            while sum(lengths) < extent:
                lengths.append(draw(st.sampled_from([1, 3, 3, 3, 5, 7])))
            chunks.append(tuple(lengths))
        shape.append(extent)
    return tuple(shape), tuple(chunks)


@st.composite
def reader_facts(draw: st.DrawFn) -> dict[str, Any]:
    dtype = draw(dtypes())
    shape, chunks = draw(grids())
    facts: dict[str, Any] = {"shape": shape, "dtype": dtype, "chunks": chunks}
    facts["fill_value"] = draw(fills(dtype))
    facts["codecs"] = tuple(draw(st.lists(st.sampled_from(BYTES_CODECS), max_size=3)))
    if dtype.kind in "iu" and dtype.itemsize > 1 and draw(st.booleans()):
        # FITS: unsigned values stored as signed with an offset, the filter before bytes
        stored = np.dtype(f"i{dtype.itemsize}").newbyteorder(dtype.byteorder)
        facts["array_codecs"] = (
            {
                "name": "numcodecs.fixedscaleoffset",
                "configuration": {"offset": 2 ** (8 * dtype.itemsize - 1), "scale": 1,
                                  "dtype": dtype.newbyteorder("=").str, "astype": stored.str},
            },
        )  # fmt: skip
        facts["data_type"], facts["dtype"] = dtype, stored
    elif len(shape) > 1 and dtype.kind != "O" and draw(st.booleans()):  # Zarr v2 order "F"
        facts["array_codecs"] = (
            {"name": "transpose", "configuration": {"order": list(range(len(shape)))[::-1]}},
        )
    if draw(st.booleans()):
        facts["dimension_names"] = tuple(f"d{i}" for i in range(len(shape)))
    return facts


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(reader_facts())
def test_our_metadata_is_zarrs_for_what_readers_produce(facts: dict[str, Any]) -> None:
    ours = make_array_metadata(**facts)
    assert_same(ours, zarr_reference(**facts))


@pytest.mark.parametrize(
    ("dtype", "fill", "fill_json", "data_type_json"),
    [
        ("<f4", math.nan, "NaN", "float32"),
        (">f8", -math.inf, "-Infinity", "float64"),
        ("<f2", math.inf, "Infinity", "float16"),
        (">c8", complex(1.5, math.nan), (1.5, "NaN"), "complex64"),
        ("S3", b"ab", "YWI=", {"name": "null_terminated_bytes",
                                "configuration": {"length_bytes": 3}}),
        ("V2", b"\x00\xff", "AP8=", {"name": "raw_bytes", "configuration": {"length_bytes": 2}}),
        ("<M8[s]", np.datetime64("NaT", "s"), -(2**63), {"name": "numpy.datetime64",
                                                    "configuration": {"unit": "s",
                                                                      "scale_factor": 1}}),
        ("O", "", "", "string"),
        ("?", True, True, "bool"),
        ("<u8", 2**64 - 1, 2**64 - 1, "uint64"),
        ([("a", "<i4"), ("b", "S2")], (7, b"x"), {"a": 7, "b": "eA=="},
         {"name": "struct", "configuration": {"fields": [
             {"name": "a", "data_type": "int32"},
             {"name": "b", "data_type": {"name": "null_terminated_bytes",
                                         "configuration": {"length_bytes": 2}}}]}}),
    ],
)  # fmt: skip
def test_fill_value_and_data_type_json(
    dtype: Any, fill: Any, fill_json: Any, data_type_json: Any
) -> None:
    facts = {"shape": (4,), "dtype": np.dtype(dtype), "chunks": (2,), "fill_value": fill}
    ours = make_array_metadata(**facts)
    doc = ours.to_dict()
    assert doc["fill_value"] == fill_json
    assert doc["data_type"] == data_type_json
    assert_same(ours, zarr_reference(**facts))


def test_rectilinear_grid_is_run_length_encoded_as_zarr_writes_it() -> None:
    facts = {"shape": (20, 4), "dtype": np.dtype("<i2"), "chunks": ((5, 5, 5, 3, 2), 4),
             "fill_value": 0}  # fmt: skip
    ours = make_array_metadata(**facts)
    assert ours.to_dict()["chunk_grid"] == {
        "name": "rectilinear",
        "configuration": {"kind": "inline", "chunk_shapes": ([[5, 3], 3, 2], 4)},
    }
    assert isinstance(ours.chunk_grid, RectilinearChunkGrid)
    assert_same(ours, zarr_reference(**facts))


# ---------------------------------------------------------------------- documents zarr wrote
ZARR_ARRAYS = {
    "float-nan-gzip": {"dtype": "<f4", "fill_value": np.nan,
                       "compressors": [{"name": "gzip", "configuration": {"level": 2}}]},
    "int-big-zstd": {"dtype": ">i8", "fill_value": -1,
                     "serializer": {"name": "bytes", "configuration": {"endian": "big"}}},
    "blosc-default": {"dtype": "<u2", "fill_value": 3, "compressors": "auto"},
    "strings": {"dtype": str, "fill_value": ""},
    "datetime": {"dtype": "<M8[ns]", "fill_value": np.datetime64("NaT", "ns")},
    "complex-crc": {"dtype": "<c16", "fill_value": 1 + 2j,
                    "compressors": [{"name": "zstd", "configuration": {"level": 1}},
                                    {"name": "crc32c"}]},
    "bool-transpose": {"dtype": "?", "fill_value": False,
                       "filters": [{"name": "transpose", "configuration": {"order": [1, 0]}}]},
    "bytes": {"dtype": "S4", "fill_value": b"ab"},
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(ZARR_ARRAYS))
def test_reading_documents_zarr_wrote(tmp_path: Any, case: str) -> None:
    kwargs = dict(ZARR_ARRAYS[case])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        za = zarr.create_array(tmp_path / "a.zarr", shape=(6, 5), chunks=(4, 3),
                               dimension_names=("y", "x"), attributes={"units": "K"},
                               **kwargs)  # fmt: skip
    doc = json.loads((tmp_path / "a.zarr" / "zarr.json").read_text())
    ours = ArrayMetadata.from_dict(doc)
    assert ours.to_dict() == zarr_doc(za.metadata)
    assert ours.dimension_names == ("y", "x") and ours.attributes == {"units": "K"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        read = ArrayV3Metadata.from_dict(doc)  # what zarr reads from the document
    assert ours.data_type == np.dtype(read.data_type.to_native_dtype())
    assert repr(ours.fill_value) == repr(read.fill_value)
    assert ArrayMetadata.from_zarr(za.metadata) == ours


# ---------------------------------------------------------------------- the class itself
def test_equality_and_hashing_treat_nan_fills_alike() -> None:
    a = make_array_metadata(shape=(4,), dtype=np.dtype("<f8"), chunks=(2,), fill_value=np.nan)
    b = ArrayMetadata.from_dict(a.to_dict())
    assert a == b and hash(a) == hash(b) and a is not b
    c = dataclasses.replace(a, fill_value=0.0)
    assert a != c
    assert len({a, b, c}) == 2


def test_evolving_with_dataclasses_replace_renormalizes() -> None:
    a = make_array_metadata(shape=(4, 6), dtype=np.dtype("<i2"), chunks=(2, 3), fill_value=0)
    b = dataclasses.replace(a, shape=(8, 6), chunk_grid=RegularChunkGrid((2, 3)))
    assert b.shape == (8, 6) and b.codecs == a.codecs and b.dtype == a.dtype
    with pytest.raises(InvalidMetadataError, match="axes"):
        dataclasses.replace(a, shape=(8,))


def test_attribute_names_code_and_users_touch() -> None:
    meta = make_array_metadata(shape=(3, 4), dtype=np.dtype(">f4"), chunks=(3, 2),
                               fill_value=-1.0, dimension_names=("y", "x"),
                               attributes={"a": 1})  # fmt: skip
    assert meta.shape == (3, 4) and meta.ndim == 2
    assert meta.data_type == meta.dtype == np.dtype("float32")
    assert meta.chunk_grid == RegularChunkGrid((3, 2)) and meta.chunks == (3, 2)
    assert meta.fill_value == np.float32(-1.0) and meta.attributes == {"a": 1}
    assert meta.dimension_names == ("y", "x")
    assert meta.codecs == ({"name": "bytes", "configuration": {"endian": "big"}},)
    assert meta.chunk_key_encoding.encode_chunk_key((1, 0)) == "c/1/0"
    zmeta = meta.to_zarr()
    assert isinstance(zmeta, ArrayV3Metadata) and zmeta.fill_value == meta.fill_value


def test_manifest_array_accepts_ours_zarrs_and_documents() -> None:
    meta = make_array_metadata(shape=(4,), dtype=np.dtype("<i4"), chunks=(2,), fill_value=0)
    man = ChunkManifest(["file:///a.bin"], [0, 0], [0, 8], [8, 8])
    for given_meta in (meta, meta.to_zarr(), meta.to_dict()):
        arr = ManifestArray(given_meta, man)
        assert isinstance(arr.metadata, ArrayMetadata) and arr.metadata == meta
    with pytest.raises(InvalidMetadataError, match="expected Zarr v3 array metadata"):
        ManifestArray(42, man)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"data_type": "float128"}, "unknown Zarr v3 data type"),
        ({"fill_value": "x"}, "invalid fill_value"),
        ({"node_type": "group"}, "node_type"),
        ({"shape": [4, 4]}, "axes"),
        ({"codecs": []}, "array-to-bytes"),
        ({"codecs": [{"name": "bytes"}]}, "endian"),
        ({"codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                     {"name": "gzip", "configuration": {"level": 12}}]}, "gzip level"),
        ({"codecs": [{"name": "bytes", "configuration": {"endian": "little"}},
                     {"name": "numcodecs.zlib"}]}, "configuration"),
        ({"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [0]}}}, ">= 1"),
        ({"surprise": {"must_understand": True}}, "must_understand"),
        ({"dimension_names": ["a", "b"]}, "dimension names"),
    ],
)  # fmt: skip
def test_invalid_documents_are_refused_with_our_error(change: dict[str, Any], match: str) -> None:
    meta = make_array_metadata(shape=(4,), dtype=np.dtype("<f4"), chunks=(2,), fill_value=0)
    doc = meta.to_dict()
    doc.update(change)
    with pytest.raises(InvalidMetadataError, match=match) as raised:
        ArrayMetadata.from_dict(doc)
    assert isinstance(raised.value, ValueError)
    with warnings.catch_warnings(), pytest.raises((ValueError, TypeError, KeyError)):
        warnings.simplefilter("ignore")
        ArrayV3Metadata.from_dict(doc)  # zarr refuses each of them too


def test_extra_fields_that_need_not_be_understood_are_kept() -> None:
    doc = make_array_metadata(shape=(2,), dtype=np.dtype("u1"), chunks=(2,), fill_value=0).to_dict()
    doc["virtualizarr"] = {"must_understand": False, "attribute_dtypes": {}}
    meta = ArrayMetadata.from_dict(doc)
    assert meta.to_dict()["virtualizarr"] == doc["virtualizarr"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert ArrayV3Metadata.from_dict(doc).to_dict() == meta.to_dict()


def test_make_array_metadata_refuses_what_zarr_cannot_describe() -> None:
    for dtype in (np.dtype("<U3"), np.dtype("float128"), np.dtype([("a", "<i4", (2,))])):
        with pytest.raises(UnsupportedFeatureError, match="Zarr v3 metadata"):
            make_array_metadata(shape=(2,), dtype=dtype, chunks=(2,), fill_value=0)


# ---------------------------------------------------------------------- real readers' output
DATA = Path(__file__).resolve().parent.parent / "data"
SAMPLE_FILES = sorted(
    p
    for p in DATA.rglob("*")
    if p.suffix in (".nc", ".h5", ".nc4", ".grib", ".tif", ".fits", ".dmrpp")
)


def _arrays(group: VirtualGroup) -> list[tuple[str, ManifestArray]]:
    out = [(n, v.data) for n, v in group.variables.items() if isinstance(v.data, ManifestArray)]
    for sub in group.groups.values():
        out.extend(_arrays(sub))
    return out


@pytest.mark.parametrize("path", SAMPLE_FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_metadata_of_sample_files_is_what_zarr_reads_and_writes(path: Path) -> None:
    """Every array the readers make of the sample files (netCDF4/HDF5, DMR++, GRIB, TIFF,
    FITS): zarr reads our document into the same data type and fill value and writes the
    same document back."""
    for package in {".grib": "cfgrib", ".tif": "tifffile", ".fits": "astropy"}.get(
        path.suffix, ""
    ).split():
        pytest.importorskip(package, reason=f"{package} reads {path.suffix} files")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # dropped variables, cfgrib's notices
            group = open_virtual_group(path, subgroups=True)
    except VirtualiZarrError as e:  # a file a reader refuses (tested with its reader)
        pytest.skip(f"the reader refuses {path.name}: {e}")
    arrays = _arrays(group)
    assert arrays
    register_zarr_codecs()  # our GRIB and TIFF codec names (entry points of an install)
    for name, arr in arrays:
        doc = arr.metadata.to_dict()
        with warnings.catch_warnings(), zarr.config.set({"array.rectilinear_chunks": True}):
            warnings.simplefilter("ignore")
            read = ArrayV3Metadata.from_dict(doc)
        assert zarr_doc(read) == doc, name
        assert arr.dtype == np.dtype(read.data_type.to_native_dtype()), name
        assert repr(arr.metadata.fill_value) == repr(read.fill_value), name
