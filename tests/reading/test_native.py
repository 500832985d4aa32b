"""The native read path (virtualizarr.reading.native) against zarr's own reading of the bytes."""

from __future__ import annotations

import pickle
import warnings
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr
import zarr
from xarray.core import indexing
from zarr.codecs import (
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    ScaleOffset,
    TransposeCodec,
    ZstdCodec,
)

from virtualizarr.backend import _VirtualDataStore
from virtualizarr.errors import ChunkReadError
from virtualizarr.io.files import FileCache
from virtualizarr.manifests import (
    ChunkManifest,
    ManifestArray,
    VirtualGroup,
    VirtualVariable,
    make_array_metadata,
)
from virtualizarr.manifests.manifest import MISSING
from virtualizarr.reading.decode import ZarrChunkDecoder, chunk_decoder, decoder_for
from virtualizarr.reading.load import load_manifest_arrays
from virtualizarr.reading.native import NativeArray, coalesce


def numcodecs_chain() -> dict[str, Any]:
    from zarr.codecs.numcodecs import Shuffle, Zlib

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numcodecs.* codecs are not in the v3 spec
        return {"compressors": [Shuffle(elementsize=4), Zlib(level=1)]}


CHAINS: dict[str, Any] = {
    "raw": lambda: {"compressors": None},
    "big-endian": lambda: {"compressors": None, "serializer": BytesCodec(endian="big")},
    "gzip": lambda: {"compressors": [GzipCodec(level=1)]},
    "zstd": lambda: {"compressors": [ZstdCodec(level=1, checksum=True)]},
    "blosc": lambda: {"compressors": [BloscCodec(cname="lz4", clevel=3)]},
    "crc32c": lambda: {"compressors": [GzipCodec(level=1), Crc32cCodec()]},
    "numcodecs": numcodecs_chain,
    # Zarr v2's order "F" becomes a leading transpose: decoded natively, transposed back
    "transpose": lambda: {"filters": [TransposeCodec(order=(1, 0))], "compressors": None},
}


def virtualize_zarr(path: Path, za: Any, name: str = "v") -> ManifestArray:
    """A ManifestArray whose chunks are the chunk files of a local zarr v3 array."""
    meta = za.metadata
    grid = tuple(len(s) for s in za.read_chunk_sizes)
    paths, ids = [], np.full(grid, MISSING, np.int32)
    lens = np.zeros(grid, np.uint64)
    for idx in np.ndindex(grid):
        f = path.joinpath("c", *map(str, idx)) if idx else path / "c"
        if f.exists():
            ids[idx] = len(paths)
            paths.append(f.as_uri())
            lens[idx] = f.stat().st_size
    man = ChunkManifest(paths, ids, np.zeros(grid, np.uint64), lens)
    return ManifestArray(meta, man, name=name)


def sample_data(dtype: str = "f4") -> np.ndarray:
    data = np.arange(7 * 9, dtype=dtype).reshape(7, 9)
    data[:3, :4] = -5  # a whole chunk of fill values: not written, read as the fill
    return data


KEYS: list[tuple[Any, ...]] = [
    (slice(None), slice(None)),
    (slice(1, 6), slice(2, 9)),
    (3, slice(None)),
    (slice(None), -1),
    (slice(None, None, 2), slice(1, None, 3)),
    (slice(None, None, -1), slice(7, 0, -2)),
    (slice(5, 5), slice(None)),
    (6, 8),
]


@pytest.mark.parametrize("chain", sorted(CHAINS))
def test_native_matches_zarr(tmp_path: Path, chain: str) -> None:
    data = sample_data()
    path = tmp_path / "a.zarr"
    za = zarr.create_array(path, data=data, chunks=(3, 4), fill_value=-5, **CHAINS[chain]())
    arr = virtualize_zarr(path, za)
    assert len(arr.manifest) < arr.manifest.path_ids.size  # some chunk is missing
    decoder = chunk_decoder(arr.metadata)
    assert decoder is not None
    native = NativeArray(arr, decoder, FileCache(), name="v")
    assert native.dtype == za.dtype
    for key in KEYS:
        got = native.read(key)
        np.testing.assert_array_equal(got, data[key], err_msg=str(key))
        assert got.dtype == data.dtype
        if not any(isinstance(k, slice) and (k.step or 1) < 0 for k in key):
            np.testing.assert_array_equal(got, za[key])  # zarr refuses negative steps
    out = native[indexing.BasicIndexer((slice(0, 2), 4))]
    np.testing.assert_array_equal(out, data[0:2, 4])


def test_vlen_utf8_strings(tmp_path: Path) -> None:
    data = np.array([["a", "bb", ""], ["dddd", "é", "f"]], dtype=object)
    path = tmp_path / "s.zarr"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        za = zarr.create_array(path, shape=data.shape, dtype=str, chunks=(1, 2))
        za[:] = data
    arr = virtualize_zarr(path, za)
    decoder = chunk_decoder(arr.metadata)
    assert decoder is not None and decoder.vlen_utf8
    got = NativeArray(arr, decoder, FileCache()).read((slice(None), slice(None)))
    want = za[:]
    assert got.dtype == want.dtype
    np.testing.assert_array_equal(got, want)


def test_unmapped_chain_falls_back_to_zarr(tmp_path: Path) -> None:
    """zarr's own scale_offset codec has no numcodecs twin: the engine reads the array
    through a ManifestStore, and loading decodes each chunk with zarr (ZarrChunkDecoder)."""
    data = sample_data()
    path = tmp_path / "t.zarr"
    za = zarr.create_array(
        path, data=data, chunks=(3, 4), fill_value=-5, filters=[ScaleOffset(offset=1, scale=2)]
    )
    arr = virtualize_zarr(path, za)
    assert chunk_decoder(arr.metadata) is None
    group = VirtualGroup({"v": VirtualVariable(("y", "x"), arr)})
    store = _VirtualDataStore(group)
    with xr.Dataset(store.get_variables()) as ds:  # type: ignore[arg-type]
        np.testing.assert_array_equal(ds.v.values, data)
    store.close()
    decoder = decoder_for(arr.metadata)
    assert isinstance(decoder, ZarrChunkDecoder)
    native = NativeArray(arr, decoder, FileCache(), name="v")
    for key in KEYS:
        np.testing.assert_array_equal(native.read(key), data[key], err_msg=str(key))
    loaded = load_manifest_arrays({"v": VirtualVariable(("y", "x"), arr)})["v"]
    np.testing.assert_array_equal(loaded, data)


def rectilinear_array(tmp_path: Path) -> tuple[ManifestArray, np.ndarray]:
    """A (10, 4) int16 array in row chunks of 3, 5 and 2 (the middle one missing)."""
    data = np.arange(40, dtype="<i2").reshape(10, 4)
    blob, offs, lens = b"", [], []
    for lo, hi in [(0, 3), (3, 8), (8, 10)]:
        enc = zlib.compress(data[lo:hi].tobytes())
        offs.append(len(blob))
        lens.append(len(enc))
        blob += enc
    f = tmp_path / "rect.bin"
    f.write_bytes(blob)
    meta = make_array_metadata(
        shape=(10, 4),
        dtype=np.dtype("<i2"),
        chunks=[(3, 5, 2), 4],
        fill_value=7,
        codecs=[{"name": "numcodecs.zlib", "configuration": {"level": 1}}],
    )
    ids = np.array([[0], [MISSING], [0]], np.int32)
    man = ChunkManifest([f.as_uri()], ids, np.array([offs]).T, np.array([lens]).T)
    expected = data.copy()
    expected[3:8] = 7
    return ManifestArray(meta, man, name="r"), expected


def test_rectilinear_grid_and_pickle(tmp_path: Path) -> None:
    arr, expected = rectilinear_array(tmp_path)
    decoder = chunk_decoder(arr.metadata)
    assert decoder is not None
    native = NativeArray(arr, decoder, FileCache(), name="r")
    assert native.read_chunk_sizes == ((3, 5, 2), (4,))
    for key in [(slice(None), slice(None)), (slice(2, 9, 3), 1), (9, slice(None, None, -1))]:
        np.testing.assert_array_equal(native.read(key), expected[key], err_msg=str(key))
    back = pickle.loads(pickle.dumps(native))
    np.testing.assert_array_equal(back.read((slice(None), slice(None))), expected)


def test_dask_chunks_through_the_engine(tmp_path: Path) -> None:
    arr, expected = rectilinear_array(tmp_path)
    group = VirtualGroup({"r": VirtualVariable(("y", "x"), arr)})
    store = _VirtualDataStore(group)
    variables = store.get_variables()
    assert variables["r"].encoding["chunks"] == ((3, 5, 2), (4,))
    ds = xr.Dataset(variables).chunk({"y": 4})  # type: ignore[arg-type]
    np.testing.assert_array_equal(ds.r.values, expected)
    store.close()


def test_errors_name_file_and_chunk(tmp_path: Path) -> None:
    arr, _ = rectilinear_array(tmp_path)
    decoder = chunk_decoder(arr.metadata)
    assert decoder is not None
    f = tmp_path / "rect.bin"
    blob = f.read_bytes()
    end0 = int(arr.manifest.lengths[0, 0])
    f.write_bytes(blob[: end0 + 3])  # truncated inside chunk 2
    native = NativeArray(arr, decoder, FileCache(), name="r")
    np.testing.assert_array_equal(native.read((0, 0)), 0)
    with pytest.raises(ChunkReadError, match=r"'r/c/2/0'.*rect\.bin.*truncated"):
        native.read((slice(None), slice(None)))
    f.write_bytes(b"x" * len(blob))  # same size, garbage
    with pytest.raises(ChunkReadError, match=r"'r/c/0/0'.*rect\.bin.*could not be decoded") as e:
        NativeArray(arr, decoder, FileCache(), name="r").read((0, 0))
    assert isinstance(e.value.__cause__, zlib.error)
    assert "virtualizarr.verify" in str(e.value)
    f.unlink()
    with pytest.raises(ChunkReadError, match=r"'r/c/0/0'.*does not exist"):
        NativeArray(arr, decoder, FileCache(), name="r").read((0, 0))


def test_coalesce() -> None:
    assert coalesce([], [], 0, 10) == []
    assert coalesce([0, 10, 20], [10, 10, 10], 0, 100) == [(0, 30, [0, 1, 2])]
    assert coalesce([0, 15, 40], [10, 10, 10], 5, 100) == [(0, 25, [0, 1]), (40, 50, [2])]
    assert coalesce([0, 10, 20], [10, 10, 10], 0, 20) == [(0, 20, [0, 1]), (20, 30, [2])]
    assert coalesce([0, 5], [100, 10], 0, 50) == [(0, 100, [0, 1])]  # overlap stays whole


def test_one_merged_read_decodes_in_parallel_batches(tmp_path: Path) -> None:
    data = np.arange(20 * 6, dtype="<f8").reshape(20, 6)
    blob, offs, lens = b"", [], []
    for row in data:
        enc = zlib.compress(row.tobytes())
        offs.append(len(blob))
        lens.append(len(enc))
        blob += enc
    f = tmp_path / "rows.bin"
    f.write_bytes(blob)
    meta = make_array_metadata(
        shape=(20, 6),
        dtype=np.dtype("<f8"),
        chunks=(1, 6),
        fill_value=0.0,
        codecs=[{"name": "numcodecs.zlib", "configuration": {"level": 1}}],
    )
    man = ChunkManifest(
        [f.as_uri()], np.zeros((20, 1), np.int32), [[o] for o in offs], [[n] for n in lens]
    )
    arr = ManifestArray(meta, man, name="rows")
    decoder = chunk_decoder(arr.metadata)
    assert decoder is not None
    native = NativeArray(arr, decoder, FileCache(), name="rows")
    np.testing.assert_array_equal(native.read((slice(None), slice(None))), data)
    np.testing.assert_array_equal(native.read((slice(None, None, -3), 2)), data[::-3, 2])
    f.write_bytes(blob[:5] + b"\xff" * (len(blob) - 5))  # corrupt every chunk
    with pytest.raises(ChunkReadError, match="could not be decoded"):
        native.read((slice(None), slice(None)))


@pytest.mark.parametrize("chain", ["raw", "gzip"])
def test_outer_indexing_reads_only_needed_chunks(
    tmp_path: Path, chain: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = sample_data()
    path = tmp_path / "o.zarr"
    za = zarr.create_array(path, data=data, chunks=(3, 4), fill_value=-5, **CHAINS[chain]())
    arr = virtualize_zarr(path, za)
    decoder = chunk_decoder(arr.metadata)
    assert decoder is not None
    native = NativeArray(arr, decoder, FileCache(), name="v")
    rows, cols = np.array([6, 0, 6, -1]), np.array([8, 1])
    cases = [
        ((rows, slice(None)), data[rows]),
        ((rows, cols), data[np.ix_(rows, cols)]),
        ((2, cols), data[2, cols]),
        ((slice(None, None, -2), cols), data[::-2][:, cols]),
        ((np.array([], int), cols), data[:0, cols]),
    ]
    for key, want in cases:
        np.testing.assert_array_equal(native.read(key), want, err_msg=str(key))
    seen: list[str] = []
    real = FileCache.pread

    def pread(self: FileCache, p: str, offset: int, length: int) -> bytes:
        seen.append(Path(p).relative_to(path).as_posix())
        return real(self, p, offset, length)

    monkeypatch.setattr(FileCache, "pread", pread)
    got = native[indexing.OuterIndexer((np.array([6, 1]), np.array([1])))]
    np.testing.assert_array_equal(got, data[[6, 1]][:, [1]])
    assert seen == ["c/2/0"]  # chunk (0, 0) is missing; nothing else is read
    with pytest.raises(IndexError):
        native.read((np.array([7]), slice(None)))
    v = xr.Variable(("y", "x"), indexing.LazilyIndexedArray(native))
    np.testing.assert_array_equal(v.isel(y=[5, 1], x=[0, 8]).values, data[[5, 1]][:, [0, 8]])
