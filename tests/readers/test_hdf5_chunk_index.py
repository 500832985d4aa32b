"""The HDF5 chunk-index parser against h5py's ``chunk_iter``, on real files.

Files are written by netCDF4-python (netCDF-C) and by h5py with the default and the
newest file format, so every index type HDF5 writes appears: version-1 B-trees (one and
several levels), fixed arrays (paged and not, filtered and not, layout messages of
version 4 and 5), extensible arrays (with super blocks and paged data blocks), single
chunks, implicit indexes, and the version-2 B-tree the parser leaves to h5py. The
parser's columns must equal ``chunk_iter``'s exactly, and the reader's manifests must
equal those of the ``chunk_iter`` path. Damaged indexes must make the parser fall back
(``None``), never raise, hang or allocate what a lying field claims.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import h5py
import netCDF4
import numpy as np
import pytest

from virtualizarr.errors import FileFormatError
from virtualizarr.io.files import FileCache
from virtualizarr.io.objects import Location
from virtualizarr.readers.hdf5 import storage as hdf5
from virtualizarr.readers.hdf5.chunk_index import (
    ChunkColumns,
    ReadFn,
    read_chunk_index,
    read_superblock,
)
from virtualizarr.readers.hdf5.reader import HDF5Reader

RNG = np.random.default_rng(42)


# ---------------------------------------------------------------------- the files
def write_netcdf(path: Path) -> Path:
    """netCDF-C's default layout: version-1 B-trees, unlimited and fixed dimensions."""
    with netCDF4.Dataset(path, "w") as ds:
        ds.createDimension("t", None)
        for name, n in [("y", 17), ("x", 13), ("z", 3)]:
            ds.createDimension(name, n)
        v = ds.createVariable("v", "f4", ("t", "y", "x"), chunksizes=(2, 5, 4), zlib=True)
        v[0:9] = RNG.random((9, 17, 13))
        w = ds.createVariable("w", "i2", ("y", "x"), chunksizes=(4, 4))
        w[:] = 1
        s = ds.createVariable("s", "f8", ("t",))
        s[:9] = np.arange(9)
        q = ds.createVariable("q", "u1", ("t", "z", "y", "x"), chunksizes=(1, 2, 3, 5))
        q[:4] = 7  # four of nine records: the rest of the grid is missing
        # 3 * 3000 chunks: a B-tree of three levels
        ds.createDimension("n", 3000)
        many = ds.createVariable("many", "i4", ("t", "n"), chunksizes=(1, 1), zlib=True)
        many[0:3] = RNG.integers(0, 100, (3, 3000))
    return path


def write_h5(path: Path, libver: Any) -> Path:
    """h5py datasets of every shape and index type the given format bounds produce."""
    with h5py.File(path, "w", libver=libver) as f:
        f.create_dataset("d1", data=np.arange(1000, dtype="f4"), chunks=(7,))
        f.create_dataset(
            "d2z", data=RNG.random((50, 60)), chunks=(8, 9), compression="gzip", shuffle=True
        )
        f.create_dataset("d3", data=RNG.random((10, 12, 14)).astype("f4"), chunks=(3, 5, 4))
        f.create_dataset(
            "d4", data=np.arange(120, dtype="i2").reshape(2, 3, 4, 5), chunks=(1, 2, 3, 2)
        )
        u = f.create_dataset(
            "unlim", (0, 20), "f8", maxshape=(None, 20), chunks=(4, 6), compression="gzip"
        )
        u.resize((37, 20))
        u[:] = RNG.random((37, 20))
        mid = f.create_dataset(
            "unlim_mid", (5, 0, 7), "i4", maxshape=(5, None, 7), chunks=(2, 3, 4)
        )
        mid.resize((5, 40, 7))
        mid[:, :10] = 1
        mid[:, 30:] = 2  # the chunks in between are never written
        two = f.create_dataset("unlim2", (10, 10), "f4", maxshape=(None, None), chunks=(3, 3))
        two[:5, :5] = 1
        f.create_dataset("single", data=np.arange(12.0).reshape(3, 4), chunks=(3, 4))
        f.create_dataset("singlez", data=np.arange(12.0).reshape(3, 4), compression="gzip")
        f.create_dataset("partial", shape=(100, 100), chunks=(10, 10), dtype="f4")[:35, 50:] = 3
        big = f.create_dataset("bigmax", (20, 20), "u1", maxshape=(40, 40), chunks=(5, 5))
        big[...] = 1
        paged = f.create_dataset("paged", (3000, 4), "f4", chunks=(1, 4), compression="gzip")
        paged[:500] = 1
        paged[2100:2200] = 2  # the data block page in between is never initialized
        e = f.create_dataset(
            "paged_unlim", (0, 3), "i8", maxshape=(None, 3), chunks=(1, 3), compression="gzip"
        )
        e.resize((20000, 3))
        e[:7000] = 5
        e[15000:15010] = 6
        dcpl = h5py.h5p.create(h5py.h5p.DATASET_CREATE)
        dcpl.set_chunk((4, 4))
        dcpl.set_alloc_time(h5py.h5d.ALLOC_TIME_EARLY)
        dcpl.set_fill_time(h5py.h5d.FILL_TIME_NEVER)
        space = h5py.h5s.create_simple((10, 10))
        h5py.h5d.create(f.id, b"implicit", h5py.h5t.NATIVE_FLOAT, space, dcpl=dcpl)
        f.create_dataset("zero", shape=(0, 5), maxshape=(None, 5), chunks=(2, 5), dtype="f4")
        f.create_dataset("never", shape=(10, 5), chunks=(2, 5), dtype="f4")
        # chunks that skipped deflate, flagged in their filter masks
        noise = RNG.integers(0, 256, 400 * 8, dtype="u1")
        skip = f.create_dataset("skipped", data=noise, chunks=(8,), compression="gzip")
        for start in (0, 800, 3192):
            skip.id.write_direct_chunk((start,), noise[start : start + 8].tobytes(), 1)
    return path


def write_big_btree(path: Path) -> Path:
    """15,000 chunks in a version-1 B-tree of three levels, and a 1-D one of 12,000."""
    with h5py.File(path, "w") as f:
        f.create_dataset("b", shape=(300, 200), chunks=(2, 2), dtype="u1")[...] = 1
        f.create_dataset("c", data=np.arange(12000, dtype="i2"), chunks=(1,))
    return path


def write_userblock(path: Path, libver: Any) -> Path:
    """A user block before the superblock: addresses are relative to it."""
    with h5py.File(path, "w", libver=libver, userblock_size=1024) as f:
        f.create_dataset("d", data=np.arange(3000.0), chunks=(9,))
    return path


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("chunk_index")
    return {
        "netcdf": write_netcdf(d / "nc.nc"),
        "h5_default": write_h5(d / "default.h5", None),
        "h5_latest": write_h5(d / "latest.h5", "latest"),
        "h5_v110": write_h5(d / "v110.h5", ("v110", "v110")),
        "big_btree": write_big_btree(d / "big.h5"),
        "userblock": write_userblock(d / "ub.h5", None),
        "userblock_latest": write_userblock(d / "ub_latest.h5", "latest"),
    }


# ---------------------------------------------------------------------- helpers
def file_reader(path: Path) -> tuple[ReadFn, int, Callable[[], None]]:
    fd = os.open(path, os.O_RDONLY)
    return (lambda off, n: os.pread(fd, n, off)), os.fstat(fd).st_size, lambda: os.close(fd)


def parse(path: Path, name: str, read: ReadFn | None = None) -> ChunkColumns | None:
    """Run the parser on one dataset, with h5py supplying what the reader's hook does."""
    own, size, close = file_reader(path)
    try:
        with h5py.File(path, "r") as f:
            d = f[name]
            return read_chunk_index(
                read or own,
                header_address=h5py.h5g.get_objinfo(d.id).objno[0],
                superblock_at=f.id.get_create_plist().get_userblock(),
                file_size=size,
                shape=d.shape,
                maxshape=d.maxshape,
                chunks=d.chunks,
            )
    finally:
        close()


def chunk_iter(path: Path, name: str) -> ChunkColumns:
    with h5py.File(path, "r") as f:
        infos: list[Any] = []
        f[name].id.chunk_iter(infos.append)
        rank = len(f[name].shape)
    return hdf5._infos_columns(infos, rank) if infos else empty(rank)


def empty(rank: int) -> ChunkColumns:
    z = np.zeros(0, np.uint64)
    return ChunkColumns(np.zeros((0, rank), np.int64), z.astype(np.uint32), z, z)


def by_coords(c: ChunkColumns) -> tuple[np.ndarray, ...]:
    order = np.lexsort(c.coords.T[::-1]) if len(c) else np.zeros(0, np.intp)
    return c.coords[order], c.filter_mask[order], c.byte_offset[order], c.size[order]


def assert_same(ours: ChunkColumns, ref: ChunkColumns) -> None:
    names = ["coords", "mask", "offset", "size"]
    for a, b, what in zip(by_coords(ours), by_coords(ref), names, strict=True):
        np.testing.assert_array_equal(a, b, err_msg=what)
        assert a.dtype == b.dtype, what


def datasets(path: Path) -> list[str]:
    names: list[str] = []
    with h5py.File(path, "r") as f:
        f.visititems(
            lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) and o.chunks else None
        )
    return names


# which index each dataset uses, per file; absent: the default B-tree of that file
LATEST = {
    "d1": "farray",
    "d2z": "farray",
    "d3": "farray",
    "d4": "farray",
    "unlim": "earray",
    "unlim_mid": "earray-swizzled",
    "unlim2": None,  # version-2 B-tree: left to chunk_iter
    "single": "single",
    "singlez": "single",
    "partial": "farray",
    "bigmax": "farray",
    "paged": "farray",
    "paged_unlim": "earray",
    "implicit": "implicit",
    "zero": "earray",
    "never": "farray",
    "skipped": "farray",
}
KINDS: dict[str, dict[str, str | None]] = {"h5_latest": LATEST, "h5_v110": LATEST}


def cases() -> Iterator[tuple[str, str]]:
    names = {
        "netcdf": ["v", "w", "s", "q", "many", "t", "y", "x", "z", "n"],
        "big_btree": ["b", "c"],
        "userblock": ["d"],
        "userblock_latest": ["d"],
    }
    for key in ("h5_default", "h5_latest", "h5_v110"):
        names[key] = list(LATEST)
    for key, dsets in names.items():
        for name in dsets:
            yield key, name


# ---------------------------------------------------------------------- columns
@pytest.mark.parametrize(("key", "name"), list(cases()))
def test_columns_equal_chunk_iter(files: dict[str, Path], key: str, name: str) -> None:
    path = files[key]
    with h5py.File(path, "r") as f:
        if name not in f or f[name].chunks is None:
            pytest.skip("contiguous in this file")
    expected_kind = KINDS.get(key, {}).get(name, "btree1")
    if key == "userblock_latest":
        expected_kind = "farray"
    ours = parse(path, name)
    if expected_kind is None:
        assert ours is None
        return
    assert ours is not None and ours.kind == expected_kind
    if expected_kind == "earray-swizzled":
        return  # chunk_iter is wrong there: see test_swizzled_extensible_array
    assert_same(ours, chunk_iter(path, name))


def test_every_dataset_of_the_files_is_covered(files: dict[str, Path]) -> None:
    listed = set(cases())
    for key, path in files.items():
        for name in datasets(path):
            assert (key, name) in listed, (key, name)


def test_swizzled_extensible_array(files: dict[str, Path]) -> None:
    """An extensible array whose unlimited dimension is not the first: the chunks are
    indexed with that dimension moved first. HDF5 2.0's chunk_iter maps them back
    wrongly, so the parser is checked against the data: each chunk's bytes, read at the
    parsed offset, must be that chunk's values."""
    path = files["h5_latest"]
    ours = parse(path, "unlim_mid")
    assert ours is not None and len(ours) == 3 * 8 * 2
    own, _, close = file_reader(path)
    try:
        with h5py.File(path, "r") as f:
            d = f["unlim_mid"]
            full = d[...]
            for coord, offset, size in zip(ours.coords, ours.byte_offset, ours.size, strict=True):
                raw = np.frombuffer(own(int(offset), int(size)), "<i4").reshape(d.chunks)
                sel = tuple(
                    slice(o, min(o + c, s))
                    for o, c, s in zip(coord, d.chunks, d.shape, strict=True)
                )
                got = raw[tuple(slice(0, s.stop - s.start) for s in sel)]
                np.testing.assert_array_equal(got, full[sel])
    finally:
        close()


def test_multi_level_btree(files: dict[str, Path]) -> None:
    ours = parse(files["big_btree"], "b")
    assert ours is not None and len(ours) == 15000
    assert_same(ours, chunk_iter(files["big_btree"], "b"))


def test_superblock_versions(files: dict[str, Path]) -> None:
    for key, version in [("h5_default", 0), ("h5_latest", 3)]:
        own, _, close = file_reader(files[key])
        try:
            assert own(8, 1)[0] == version
            assert read_superblock(own) == (8, 8)
        finally:
            close()
    assert read_superblock(lambda off, n: b"not an HDF5 file at all" * 3) is None
    assert read_superblock(lambda off, n: b"") is None


# ---------------------------------------------------------------------- the reader
def open_both(path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Any, list[str]]:
    """The reader's variables with the parser on every chunked variable, and with
    chunk_iter only; and the kinds of index the parser read."""
    kinds: list[str] = []
    real = hdf5._index_columns

    def spy(*args: Any) -> ChunkColumns | None:
        columns = real(*args)
        kinds.append("none" if columns is None else columns.kind)
        return columns

    with monkeypatch.context() as m:
        m.setattr(hdf5, "_INDEX_MIN_CHUNKS", 0)
        m.setattr(hdf5, "_index_columns", spy)
        new = HDF5Reader().open(Location.of(path)).variables
    with monkeypatch.context() as m:
        m.setattr(hdf5, "_INDEX_MIN_CHUNKS", 1 << 62)
        old = HDF5Reader().open(Location.of(path)).variables
    return new, old, kinds


@pytest.mark.parametrize(
    "key", ["netcdf", "h5_default", "h5_latest", "h5_v110", "big_btree", "userblock"]
)
def test_manifests_equal_the_chunk_iter_path(
    files: dict[str, Path], key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    new, old, kinds = open_both(files[key], monkeypatch)
    assert new.keys() == old.keys()
    skip = {"unlim_mid"} if key in ("h5_latest", "h5_v110") else set()
    for name in new.keys() - skip:
        a, b = new[name].data.manifest, old[name].data.manifest
        assert a.equals(b), name
        assert a.inline == b.inline, name
    parsed = [k for k in kinds if k != "none"]
    assert parsed
    assert set(parsed) <= {"btree1", "farray", "earray", "earray-swizzled", "single", "implicit"}
    if key in ("h5_latest", "h5_v110"):
        assert {"farray", "earray", "single", "implicit"} & set(parsed) >= {"farray", "earray"}


def test_skipped_filter_chunks_are_reencoded(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("h5_default", "h5_latest"):
        new, old, _ = open_both(files[key], monkeypatch)
        manifest = new["skipped"].data.manifest
        assert len(manifest.inline) == 3 and len(manifest) == 400
        assert manifest.equals(old["skipped"].data.manifest)


def test_remote_file_object_is_shared_with_h5py(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A remote file is parsed through the file object h5py reads (seek, then read)."""
    import fsspec

    path = files["big_btree"]
    local = HDF5Reader().open(Location.of(path)).variables
    kinds: list[str | None] = []
    real = hdf5._index_columns

    def spy(*args: Any) -> ChunkColumns | None:
        columns = real(*args)
        kinds.append(None if columns is None else columns.kind)
        return columns

    url = f"memory://vz-chunk-index/{path.name}"  # a remote file: fsspec's in-memory store
    fsspec.filesystem("memory").pipe(url, path.read_bytes())
    monkeypatch.setattr(hdf5, "_index_columns", spy)
    remote = HDF5Reader().open(Location(url)).variables
    assert kinds == ["btree1", "btree1"]
    for name in local:
        a, b = local[name].data.manifest, remote[name].data.manifest
        np.testing.assert_array_equal(a.offsets, b.offsets)
        np.testing.assert_array_equal(a.lengths, b.lengths)


def test_small_grids_use_chunk_iter(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    monkeypatch.setattr(hdf5, "_index_columns", lambda var, *a: calls.append(var.path))
    HDF5Reader().open(Location.of(files["userblock"]))  # 334 chunks: parsed
    assert calls == ["/d"]
    calls.clear()
    HDF5Reader().open(Location.of(files["netcdf"]))
    assert "/w" not in calls and "/many" in calls  # 20 chunks: chunk_iter


# ---------------------------------------------------------------------- damage
def damaged(data: bytes, edits: dict[int, bytes]) -> ReadFn:
    buf = bytearray(data)
    for at, new in edits.items():
        buf[at : at + len(new)] = new
    frozen = bytes(buf)
    return lambda off, n: frozen[off : off + n]


def tree_nodes(data: bytes) -> list[int]:
    out, at = [], data.find(b"TREE")
    while at >= 0:
        if data[at + 4] == 1:  # a raw-data chunk node
            out.append(at)
        at = data.find(b"TREE", at + 1)
    return out


def check_sane(path: Path, name: str, columns: ChunkColumns | None, size: int) -> None:
    """A parse of a damaged file: None, or rows that pass every invariant."""
    if columns is None:
        return
    with h5py.File(path, "r") as f:
        d = f[name]
        grid = [-(-s // c) for s, c in zip(d.shape, d.chunks, strict=True)]
        assert len(columns) <= int(np.prod(grid))
        assert np.all(columns.coords % np.asarray(d.chunks) == 0)
    assert np.all(columns.byte_offset + columns.size <= size)


@pytest.mark.parametrize("what", ["signature", "level", "entries", "cycle", "child", "key"])
def test_damaged_btree_nodes_fall_back(files: dict[str, Path], what: str) -> None:
    path = files["big_btree"]
    data = path.read_bytes()
    nodes = tree_nodes(data)
    assert len(nodes) > 100
    root = max(nodes, key=lambda at: data[at + 5])  # the highest level
    leaf = next(at for at in nodes if data[at + 5] == 0)
    edits = {
        "signature": {leaf: b"TRXE"},
        "level": {leaf + 5: b"\x01"},
        "entries": {leaf + 6: b"\xff\xff"},
        # the root's first child pointer (after header and first key) points to the root
        "cycle": {root + 24 + 32: root.to_bytes(8, "little")},
        "child": {root + 24 + 32: (len(data) + 10).to_bytes(8, "little")},
        # a leaf key's offset in the element dimension must be 0
        "key": {leaf + 24 + 8 + 16: b"\x01"},
    }[what]
    t0 = time.perf_counter()
    columns = parse(path, "b", damaged(data, edits))
    assert columns is None
    assert time.perf_counter() - t0 < 2


def test_truncated_index_falls_back(files: dict[str, Path]) -> None:
    path = files["big_btree"]
    data = path.read_bytes()
    offsets: list[int] = []
    parse(path, "b", lambda off, n: offsets.append(off) or data[off : off + n])
    nodes = sorted(off for off in offsets if data[off : off + 4] == b"TREE")
    assert len(nodes) > 200
    for cut in (nodes[len(nodes) // 2] + 100, nodes[-1] + 10):
        assert parse(path, "b", damaged(data[:cut], {})) is None


@pytest.mark.parametrize("key", ["big_btree", "h5_latest", "netcdf"])
def test_random_bit_flips_never_raise(files: dict[str, Path], key: str) -> None:
    """Flip bits all over the metadata: the parser returns None or sane rows, quickly."""
    path = files[key]
    data = path.read_bytes()
    names = [n for n in datasets(path) if n != "unlim_mid"]
    rng = np.random.default_rng(7)
    targets = [at for at in tree_nodes(data)] + [
        data.find(sig) for sig in (b"FAHD", b"FADB", b"EAHD", b"EAIB", b"EASB", b"EADB", b"OHDR")
    ]
    targets = [t for t in targets if t >= 0]
    t0 = time.perf_counter()
    for i in range(150):
        at = int(rng.choice(targets)) + int(rng.integers(0, 64))
        if at >= len(data):
            continue
        flip = bytes([data[at] ^ (1 << int(rng.integers(0, 8)))])
        name = names[i % len(names)]
        columns = parse(path, name, damaged(data, {at: flip}))
        check_sane(path, name, columns, len(data))
    assert time.perf_counter() - t0 < 60


@pytest.mark.parametrize("key", ["big_btree", "netcdf"])
def test_damaged_files_agree_with_chunk_iter(
    files: dict[str, Path], key: str, tmp_path: Path
) -> None:
    """On a file with a flipped bit in its index, the parser gives chunk_iter's answer
    (a version-1 B-tree has no checksum: both read the same damaged values) or None."""
    path = files[key]
    data = path.read_bytes()
    names = datasets(path)
    targets = tree_nodes(data)
    rng = np.random.default_rng(11)
    bad = tmp_path / "bad.h5"
    for i in range(40):
        at = int(rng.choice(targets)) + int(rng.integers(0, 200))
        buf = bytearray(data)
        buf[at] ^= 1 << int(rng.integers(0, 8))
        bad.write_bytes(bytes(buf))
        name = names[i % len(names)]
        columns = parse(bad, name)
        if columns is not None:
            try:
                expected = chunk_iter(bad, name)
            except (OSError, RuntimeError, ValueError):
                continue  # HDF5 refuses the damaged index (the parser may still read it)
            assert_same(columns, expected)


@pytest.mark.parametrize("sig", [b"FADB", b"EADB", b"EAIB", b"FAHD", b"EAHD"])
def test_checksummed_blocks_detect_damage(files: dict[str, Path], sig: bytes) -> None:
    path = files["h5_latest"]
    data = path.read_bytes()
    at = data.find(sig)
    assert at > 0
    read = damaged(data, {at + 20: bytes([data[at + 20] ^ 0x10])})
    with h5py.File(path, "r") as f:
        names = [n for n in datasets(path) if f[n].id.get_storage_size() > 0]
    refused = 0
    for name in names:
        clean = parse(path, name)
        hit = parse(path, name, read)
        if hit is None:
            refused += clean is not None
            continue
        assert clean is not None
        assert_same(hit, clean)  # a dataset whose index the damage missed
    assert refused >= 1  # the dataset whose block was hit


def test_reader_on_damaged_index_raises_file_format_error_or_opens(
    files: dict[str, Path], tmp_path: Path
) -> None:
    path = files["big_btree"]
    data = bytearray(path.read_bytes())
    leaf = next(at for at in tree_nodes(bytes(data)) if data[at + 5] == 0)
    data[leaf : leaf + 4] = b"XXXX"
    broken = tmp_path / "broken.h5"
    broken.write_bytes(bytes(data))
    with pytest.raises(FileFormatError):
        HDF5Reader().open(Location.of(broken))  # the parser falls back; HDF5 then refuses


def test_lying_sizes_do_not_allocate(files: dict[str, Path]) -> None:
    """Huge counts in array headers: refused before anything of that size exists."""
    path = files["h5_latest"]
    data = path.read_bytes()
    at = data.find(b"FAHD")
    huge = (1 << 60).to_bytes(8, "little")
    columns = parse(path, "d1", damaged(data, {at + 8: huge}))
    assert columns is None or len(columns) == 143


def test_huge_key_offsets_in_the_chunk_iter_path(files: dict[str, Path], tmp_path: Path) -> None:
    """A leaf key with an offset past 2**63: the parser refuses it, and chunk_iter's
    answer (read as unsigned) puts that chunk outside the grid instead of overflowing."""
    path = files["big_btree"]
    data = bytearray(path.read_bytes())
    offsets: list[int] = []
    parse(path, "b", lambda off, n: offsets.append(off) or bytes(data[off : off + n]))
    leaf = next(o for o in offsets if data[o : o + 4] == b"TREE" and data[o + 5] == 0)
    data[leaf + 24 + 8 : leaf + 24 + 16] = (2**64 - 2).to_bytes(8, "little")
    broken = tmp_path / "huge_key.h5"
    broken.write_bytes(bytes(data))
    assert parse(broken, "b") is None
    try:
        manifest = HDF5Reader().open(Location.of(broken)).variables["b"].data.manifest
    except FileFormatError:
        return
    assert len(manifest) == 15000 - 1


def test_lying_entry_count_on_the_root_is_bounded(files: dict[str, Path]) -> None:
    """A root claiming 65,535 entries is read once at that size, and its 65,535
    children must then fit in the file: they do not, so nothing more is read."""
    path = files["big_btree"]
    data = path.read_bytes()
    offsets: list[int] = []
    parse(path, "b", lambda off, n: offsets.append(off) or data[off : off + n])
    root = offsets[next(i for i, o in enumerate(offsets) if data[o : o + 4] == b"TREE")]
    sizes: list[int] = []
    lying = damaged(data, {root + 6: b"\xff\xff"})
    assert parse(path, "b", lambda off, n: sizes.append(n) or lying(off, n)) is None
    assert sum(sizes) < 4 << 20


def test_read_errors_fall_back_to_chunk_iter(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    def fail(self: Any, location: Location, offset: int, size: int) -> bytes:
        raise OSError("connection reset")

    expected = HDF5Reader().open(Location.of(files["big_btree"])).variables
    monkeypatch.setattr(FileCache, "read_at", fail)
    got = HDF5Reader().open(Location.of(files["big_btree"])).variables
    for name in expected:
        assert got[name].data.manifest.equals(expected[name].data.manifest)
