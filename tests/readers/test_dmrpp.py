"""The DMR++ reader (``filetype="dmrpp"``): sidecars generated from netCDF-4/HDF5 files'
own chunk metadata and real sidecars from OPeNDAP's BES, read back identical to
``xr.open_dataset`` of the HDF5 file; the data URL rules; and our errors for missing or
malformed elements."""

from __future__ import annotations

import re
import shutil
import uuid
from pathlib import Path

import fsspec
import h5py
import numpy as np
import pytest
import xarray as xr

import virtualizarr as vz
from tests.readers.dmrpp_cases import CASES, SCHEMA_NS, write_dmrpp
from virtualizarr.errors import (
    FileFormatError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
    UntrustedReferenceError,
    VirtualiZarrError,
)
from virtualizarr.io.objects import Location
from virtualizarr.readers import Probe, find_reader

DATA = Path(__file__).parent.parent / "data" / "dmrpp"
HYRAX_ONLY = ("origname", "fullnamepath")
"""Attributes Hyrax adds to the DMR that are not in the HDF5 file."""


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("dmrpp")
    out = {}
    for name, case in CASES.items():
        h5 = case(d / f"{name}.h5")
        write_dmrpp(h5)
        out[name] = h5
    return out


def original(path: Path, **kw: object) -> xr.Dataset:
    with xr.open_dataset(path, **kw) as ds:  # type: ignore[arg-type]
        return ds.load()


def via_kerchunk(vds: xr.Dataset) -> xr.Dataset:
    with xr.open_dataset(vds.virtualize.to_kerchunk(format="dict"), engine="virtualizarr") as ds:
        return ds.load()


def via_manifest_store(vds: xr.Dataset, dest: Path) -> xr.Dataset:
    shutil.rmtree(dest, ignore_errors=True)
    vds.virtualize.to_zarr(dest)
    with xr.open_dataset(dest, engine="virtualizarr") as ds:
        return ds.load()


def sidecar(h5: Path) -> Path:
    return h5.with_name(h5.name + ".dmrpp")


# ---------------------------------------------------------------------- generated sidecars
@pytest.mark.parametrize("case", sorted(CASES))
def test_identical_to_the_hdf5_file(case: str, files: dict[str, Path], tmp_path: Path) -> None:
    h5 = files[case]
    truth = original(h5)
    vds = vz.open_virtual_dataset(sidecar(h5), loadable_variables=[])
    xr.testing.assert_identical(via_kerchunk(vds), truth)
    xr.testing.assert_identical(via_manifest_store(vds, tmp_path / "m.zarr"), truth)
    loaded = vz.open_virtual_dataset(sidecar(h5), loadable_variables=list(truth.variables))
    xr.testing.assert_identical(loaded, truth)
    # the same sidecar read through engine="virtualizarr" directly
    with xr.open_dataset(sidecar(h5), engine="virtualizarr") as ds:
        xr.testing.assert_identical(ds.load(), truth)


@pytest.mark.parametrize(("case", "group"), [("nc4_cf", "forecast"), ("h5_plain", "sub")])
def test_groups(case: str, group: str, files: dict[str, Path]) -> None:
    h5 = files[case]
    vds = vz.open_virtual_dataset(sidecar(h5), group=group, loadable_variables=[])
    xr.testing.assert_identical(via_kerchunk(vds), original(h5, group=group))
    with pytest.raises(FileFormatError, match="has no group 'nope'"):
        vz.open_virtual_dataset(sidecar(h5), group="nope")


def test_the_hdf5_file_is_not_read(files: dict[str, Path], tmp_path: Path) -> None:
    h5 = files["nc4_cf"]
    truth = original(h5)
    side = shutil.copy(sidecar(h5), tmp_path / sidecar(h5).name)
    vds = vz.open_virtual_dataset(side, loadable_variables=[])  # no data file beside it
    assert {Path(p).name for v in vds.values() for p in vds[v.name].data.manifest.paths} <= {
        h5.name
    }
    shutil.copy(h5, tmp_path / h5.name)  # now it is there: the references read it
    xr.testing.assert_identical(via_kerchunk(vds), truth)


def test_data_url_rules(files: dict[str, Path], tmp_path: Path) -> None:
    h5 = files["h5_plain"]
    truth = original(h5)
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(h5, data / "granule.h5")
    side = tmp_path / "meta" / "granule.h5.dmrpp"
    side.parent.mkdir()
    cases = {
        "../data/granule.h5": None,  # relative to the sidecar
        (data / "granule.h5").as_uri(): None,  # an absolute URL
        str(data / "granule.h5"): None,  # an absolute path
        "OPeNDAP_DMRpp_DATA_ACCESS_URL": "placeholder",  # the sidecar's name without .dmrpp
        "data/dmrpp/elsewhere.h5": "override",  # BES-style: relative to a server root
    }
    for href, how in cases.items():
        write_dmrpp(h5, side, href=href, ns=SCHEMA_NS)
        opts = {"data_url": str(data / "granule.h5")} if how == "override" else None
        if how == "placeholder":
            shutil.copy(h5, side.with_name("granule.h5"))
        vds = vz.open_virtual_dataset(side, loadable_variables=[], reader_options=opts)
        xr.testing.assert_identical(via_kerchunk(vds), truth)
    write_dmrpp(h5, tmp_path / "plain.xml", href="OPeNDAP_DMRpp_DATA_ACCESS_URL")
    with pytest.raises(FileFormatError, match=r"does not end in '\.dmrpp'"):
        vz.open_virtual_dataset(tmp_path / "plain.xml", filetype="dmrpp")


def test_detection_and_options(files: dict[str, Path]) -> None:
    side = sidecar(files["nc4_cf"])
    assert find_reader(Probe(Location.of(side))).name == "dmrpp"
    assert find_reader(Probe(Location.of(files["nc4_cf"]))).name == "hdf5"
    assert find_reader(Probe(Location.of(side)), references_only=True).name == "dmrpp"
    with pytest.raises(UnexpectedOptionError, match="data_url"):
        vz.open_virtual_dataset(side, reader_options={"datafile": "x"})
    vds = vz.open_virtual_dataset(side, filetype="dmr++", drop_variables=["air", "station"])
    assert "air" not in vds and "station" not in vds


def test_remote_sidecar_may_not_point_at_local_files(files: dict[str, Path]) -> None:
    h5 = files["h5_plain"]
    url = f"memory://vz-dmrpp-{uuid.uuid4().hex}/g.h5.dmrpp"
    write_dmrpp(h5, h5.with_name("abs.dmrpp"), href=h5.as_uri())
    fs = fsspec.filesystem("memory")
    fs.pipe(url, h5.with_name("abs.dmrpp").read_bytes())
    try:
        with pytest.raises(UntrustedReferenceError):
            vz.open_virtual_dataset(url, filetype="dmrpp", loadable_variables=[])
        vds = vz.open_virtual_dataset(
            url, filetype="dmrpp", loadable_variables=[], allowed_sources=["file"]
        )
        xr.testing.assert_identical(via_kerchunk(vds), original(h5))
    finally:
        fs.rm(url)


# ---------------------------------------------------------------------- real sidecars
REAL = {
    "chunked_shufzip_twoD.h5": (),
    "chunked_gzipped_twoD.h5": (),
    "Three_chunks_partial_fletcher_shuf_deflate.h5": (),
    "Two_chunks_shuf_2deflates.h5": (),
    "d_size64_chunk_be.h5": (),
    "h5_odd_chunk_size_comp.h5": (),
    "nc4_group_atomic.h5": (),
    "nc4_unlimited_0.h5": (),
    "t_float.h5": (),
    "compact_example.h5": ("var_str_sca",),
    "test32v3.nc4": ("letter",),
}
"""BES sidecars compared with xr.open_dataset, and the variables to drop (refused)."""


@pytest.mark.parametrize("name", sorted(REAL))
def test_real_bes_sidecars(name: str, tmp_path: Path) -> None:
    drop = list(REAL[name])
    opts = {"data_url": str(DATA / name)}
    side = DATA / f"{name}.dmrpp"
    for var in drop:  # refused, naming the variable and the way out
        with pytest.raises(UnsupportedFeatureError, match=rf"drop_variables=\['{var}'\]"):
            vz.open_virtual_dataset(side, reader_options=opts)
    vds = vz.open_virtual_dataset(
        side, loadable_variables=[], reader_options=opts, drop_variables=drop
    )
    for v in vds.variables.values():
        for attr in HYRAX_ONLY:
            v.attrs.pop(attr, None)
    truth = original(DATA / name, drop_variables=drop)
    xr.testing.assert_identical(via_kerchunk(vds), truth)
    xr.testing.assert_identical(via_manifest_store(vds, tmp_path / "m.zarr"), truth)


def test_real_sidecars_netcdf_cannot_compare(tmp_path: Path) -> None:
    """Files xr.open_dataset cannot give a truth for, checked against h5py."""
    early = vz.open_virtual_dataset(
        DATA / "d_int.h5.dmrpp",
        loadable_variables=[],
        reader_options={"data_url": str(DATA / "d_int.h5")},
    )
    got = via_kerchunk(early)
    with h5py.File(DATA / "d_int.h5") as f:
        for name in got:
            np.testing.assert_array_equal(got[name].values, f[name][()])
    # fill time "never": written chunks match, unwritten ones read as the fillValue
    side = DATA / "FValue_chunk.h5.dmrpp"
    got = via_kerchunk(
        vz.open_virtual_dataset(
            side, loadable_variables=[], reader_options={"data_url": str(DATA / "FValue_chunk.h5")}
        )
    )["chunks_all_fill"].values
    with h5py.File(DATA / "FValue_chunk.h5") as f:
        written = f["chunks_all_fill"][()]
    np.testing.assert_array_equal(got[0:2, 0:2], written[0:2, 0:2])
    np.testing.assert_array_equal(got[2:4, 2:4], written[2:4, 2:4])
    assert (got[0:2, 2:4] == -99).all()


# ---------------------------------------------------------------------- malformed sidecars
def _edited(src: Path, dest: Path, old: str, new: str, count: int = 1) -> Path:
    text = src.read_text()
    assert re.search(old, text), old
    dest.write_text(re.sub(old, new, text, count=count))
    return dest


BAD = {
    "not xml": (r"^<\?xml", "garbage <<<", FileFormatError, "not well-formed XML"),
    "wrong root": (r"Dataset", "Other", FileFormatError, r"expected a DAP4 <Dataset>"),
    "no href": (r' dmrpp:href="[^"]*"', "", FileFormatError, "no dmrpp:href"),
    "bad offset": (r'offset="\d+"', 'offset="x"', FileFormatError, "offset must be"),
    "negative size": (r'nBytes="\d+"', 'nBytes="-4"', FileFormatError, "must be a non-negative 64-bit"),  # noqa: E501
    "position off grid": (
        r'chunkPositionInArray="\[0,0,0\]"', 'chunkPositionInArray="[0,3,0]"',
        FileFormatError, "is not the start of a chunk",
    ),
    "position rank": (
        r'chunkPositionInArray="\[0,0,0\]"', 'chunkPositionInArray="[0]"',
        FileFormatError, "must give 3 indices",
    ),
    "undeclared dim": (r'<Dim name="/lat"/>', '<Dim name="/nope"/>', FileFormatError, "which no <Dimension> declares"),  # noqa: E501
    "bad chunk sizes": (
        r"<dmrpp:chunkDimensionSizes>1 5 4<", "<dmrpp:chunkDimensionSizes>1 5<",
        FileFormatError, "must give 3 positive sizes",
    ),
    "szip": (r'compressionType="shuffle deflate"', 'compressionType="szip"', UnsupportedFeatureError, "'szip'"),  # noqa: E501
    "filter mask": (r'(chunkPositionInArray="\[0,0,0\]")', r'\1 fm="1"', UnsupportedFeatureError, r"skips filters \(fm=1\)"),  # noqa: E501
    "bad byte order": (r'byteOrder="LE"', 'byteOrder="XE"', FileFormatError, "byteOrder must be"),
    "bad attribute": (
        r'(name="version" type="Int32"><Value>)3', r"\1three", FileFormatError,
        "is not a value of type",
    ),
    "bad fill": (r'fillValue="-999"', 'fillValue="lots"', FileFormatError, "is not a value of type"),  # noqa: E501
    "vlsa count": (r"<v>alpha</v>", "", FileFormatError, "holds 4 values for shape"),
    "block": (r"<dmrpp:chunk ", "<dmrpp:block ", FileFormatError, "linked blocks"),
    "structure": (
        r'<Float32 name="lat">((?:.|\n)*?)</Float32>', r'<Structure name="lat">\1</Structure>',
        UnsupportedFeatureError, "a DAP4 Structure",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_malformed_elements_give_our_errors(
    case: str, files: dict[str, Path], tmp_path: Path
) -> None:
    old, new, error, message = BAD[case]
    h5 = files["nc4_cf"]
    src = sidecar(h5)
    bad = _edited(src, tmp_path / src.name, old, new, count=0 if case == "wrong root" else 1)
    shutil.copy(h5, tmp_path / h5.name)
    with pytest.raises(error, match=message):
        vz.open_virtual_dataset(bad, filetype="dmrpp", loadable_variables=[])


def test_truncations_and_bit_flips_give_our_errors(files: dict[str, Path], tmp_path: Path) -> None:
    src = sidecar(files["nc4_cf"]).read_bytes()
    rng = np.random.default_rng(0)
    bad = tmp_path / "x.h5.dmrpp"
    shutil.copy(files["nc4_cf"], tmp_path / "x.h5")
    variants = [src[:n] for n in range(0, len(src), max(1, len(src) // 60))]
    for _ in range(60):
        b = bytearray(src)
        i = int(rng.integers(len(b)))
        b[i] ^= 1 << int(rng.integers(8))
        variants.append(bytes(b))
    opened = 0
    for data in variants:
        bad.write_bytes(data)
        try:
            vz.open_virtual_dataset(bad, filetype="dmrpp", loadable_variables=[])
            opened += 1
        except VirtualiZarrError:
            pass
    assert 0 < opened < len(variants)
