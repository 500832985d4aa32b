"""ManifestStore directly: documents, chunk reads, coalescing, missing/inline chunks, errors."""

from __future__ import annotations

import asyncio
import json
import pickle
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zarr
from zarr.abc.store import OffsetByteRequest, RangeByteRequest, SuffixByteRequest
from zarr.core.buffer import default_buffer_prototype

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
from virtualizarr.reading.store import ManifestStore

ZLIB = [{"name": "numcodecs.zlib", "configuration": {"level": 1}}]


def chunked_file(tmp_path: Path, gap: int = 0) -> tuple[Path, np.ndarray, list[tuple[int, int]]]:
    """A file holding the four zlib chunks of a (8,) int32 array, ``gap`` bytes apart."""
    data = np.arange(8, dtype="<i4") * 10
    blob, ranges = b"HEAD", []
    for i in range(4):
        enc = zlib.compress(data[2 * i : 2 * i + 2].tobytes(), 1)
        ranges.append((len(blob), len(enc)))
        blob += enc + b"\0" * gap
    path = tmp_path / "chunks.bin"
    path.write_bytes(blob)
    return path, data, ranges


def make_array(path: Path, ranges: list[tuple[int, int]], ids: list[int] | None = None) -> Any:
    meta = make_array_metadata(
        shape=(8,), dtype=np.dtype("<i4"), chunks=(2,), fill_value=-1, codecs=ZLIB
    )
    inline = [zlib.compress(np.array([7, 7], "<i4").tobytes())]
    man = ChunkManifest(
        [path.as_uri()],
        ids if ids is not None else [0, 0, 0, 0],
        [r[0] for r in ranges],
        [r[1] for r in ranges],
        inline,
    )
    return ManifestArray(meta, man, name="x")


def group(arr: ManifestArray, attrs: dict[str, Any] | None = None) -> VirtualGroup:
    """A group of the one array ``x``."""
    return VirtualGroup({"x": VirtualVariable(("x",), arr, attrs or {})})


def counting(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    calls: list[tuple[int, int]] = []
    real = FileCache.pread

    def pread(self: Any, path: str, offset: int, length: int) -> bytes:
        calls.append((offset, length))
        return real(self, path, offset, length)

    monkeypatch.setattr(FileCache, "pread", pread)
    return calls


def test_reads_through_zarr_with_missing_and_inline_chunks(tmp_path: Path) -> None:
    path, data, ranges = chunked_file(tmp_path)
    arr = make_array(path, ranges, ids=[0, MISSING, -2, 0])
    store = ManifestStore(VirtualGroup({"x": VirtualVariable(("x",), arr)}, {"title": "t"}))
    z = zarr.open_array(store, path="x", mode="r", zarr_format=3)
    expected = data.copy()
    expected[2:4] = -1  # missing: the fill value
    expected[4:6] = 7  # inline chunk
    np.testing.assert_array_equal(z[:], expected)
    group = zarr.open_group(store, mode="r", zarr_format=3)
    assert group.attrs["title"] == "t"
    assert asyncio.run(store.exists("x/c/0"))
    assert not asyncio.run(store.exists("x/c/1"))  # missing
    assert asyncio.run(store.exists("x/c/2"))  # inline
    assert not asyncio.run(store.exists("x/c/9"))
    assert asyncio.run(store.get("nope/zarr.json")) is None
    store.close()


def test_adjacent_ranges_are_read_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path, data, ranges = chunked_file(tmp_path)
    calls = counting(monkeypatch)
    z = zarr.open_array(ManifestStore(group(make_array(path, ranges))), path="x")
    np.testing.assert_array_equal(z[:], data)
    start = ranges[0][0]
    end = ranges[-1][0] + ranges[-1][1]
    assert calls == [(start, end - start)]


@pytest.mark.parametrize(
    ("gap", "max_gap", "max_span", "reads"),
    [(10, 0, 1 << 20, 4), (10, 10, 1 << 20, 1), (0, 0, 1, 4)],
)
def test_coalescing_limits(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    gap: int,
    max_gap: int,
    max_span: int,
    reads: int,
) -> None:
    path, data, ranges = chunked_file(tmp_path, gap=gap)
    calls = counting(monkeypatch)
    store = ManifestStore(group(make_array(path, ranges)), max_gap=max_gap, max_span=max_span)
    np.testing.assert_array_equal(zarr.open_array(store, path="x")[:], data)
    assert len(calls) == reads


def test_get_sync_byte_ranges_and_documents(tmp_path: Path) -> None:
    path, _, ranges = chunked_file(tmp_path)
    attrs = {"units": "m", "_FillValue": np.int32(-1)}
    store = ManifestStore(group(make_array(path, ranges), attrs))
    raw = path.read_bytes()
    off, n = ranges[1]
    chunk = raw[off : off + n]
    proto = default_buffer_prototype()
    got = store.get_sync("x/c/1", prototype=proto)
    assert got is not None and got.to_bytes() == chunk
    for req, want in [
        (RangeByteRequest(1, 3), chunk[1:3]),
        (OffsetByteRequest(2), chunk[2:]),
        (SuffixByteRequest(2), chunk[-2:]),
    ]:
        part = asyncio.run(store.get("x/c/1", proto, req))
        assert part is not None and part.to_bytes() == want
    doc = json.loads(asyncio.run(store.get("x/zarr.json", proto)).to_bytes())  # type: ignore[union-attr]
    assert doc["node_type"] == "array" and doc["attributes"] == {"units": "m", "_FillValue": -1}
    keys = asyncio.run(_collect(store.list()))
    assert {"zarr.json", "x/zarr.json", "x/c/0", "x/c/3"} <= set(keys)
    assert asyncio.run(_collect(store.list_dir(""))) == ["zarr.json", "x"]
    assert asyncio.run(_collect(store.list_prefix("x/c"))) == ["x/c/0", "x/c/1", "x/c/2", "x/c/3"]


async def _collect(it: Any) -> list[str]:
    return [k async for k in it]


def test_read_only_and_pickle(tmp_path: Path) -> None:
    path, data, ranges = chunked_file(tmp_path)
    store = ManifestStore(group(make_array(path, ranges)), max_gap=5)
    buf = default_buffer_prototype().buffer.from_bytes(b"1")
    with pytest.raises(ValueError, match=r"read-only|read only"):
        asyncio.run(store.set("x/c/0", buf))
    with pytest.raises(ValueError, match=r"read-only|read only"):
        store.set_sync("x/c/0", buf)
    back = pickle.loads(pickle.dumps(store))
    assert back._batcher._max_gap == 5
    np.testing.assert_array_equal(zarr.open_array(back, path="x", mode="r")[:], data)


def test_missing_file_names_file_and_key(tmp_path: Path) -> None:
    path, _, ranges = chunked_file(tmp_path)
    store = ManifestStore(group(make_array(path, ranges)))
    path.unlink()
    with pytest.raises(ChunkReadError, match=r"'x/c/2'.*chunks\.bin does not exist"):
        asyncio.run(store.get("x/c/2", default_buffer_prototype()))
    with pytest.raises(ChunkReadError, match=r"'x/c/2'.*chunks\.bin does not exist"):
        store.get_sync("x/c/2")
    with pytest.raises(ChunkReadError, match=r"chunks\.bin"):
        zarr.open_array(store, path="x", mode="r")[:]


def test_range_past_eof_names_file_and_key(tmp_path: Path) -> None:
    path, _, ranges = chunked_file(tmp_path)
    path.write_bytes(path.read_bytes()[: ranges[3][0] + 2])  # truncate inside chunk 3
    store = ManifestStore(group(make_array(path, ranges)), max_gap=-1)
    with pytest.raises(ChunkReadError, match=r"'x/c/3'.*chunks\.bin.*truncated") as e:
        asyncio.run(store.get("x/c/3", default_buffer_prototype()))
    assert isinstance(e.value, OSError)
    with pytest.raises(ChunkReadError, match=r"'x/c/3'.*truncated"):
        store.get_sync("x/c/3")
    assert store.get_sync("x/c/0") is not None  # earlier chunks still read
