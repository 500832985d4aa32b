"""``FileCache`` (virtualizarr.io.files): ranged reads of local files and URLs, shared by
threads, under a descriptor limit, and remote file objects opened once."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import fsspec
import pytest

from virtualizarr.errors import ChunkReadError, SourceNotFoundError
from virtualizarr.io.files import FileCache
from virtualizarr.io.objects import Location

DATA = bytes(range(256)) * 64  # 16 KiB, every offset distinguishable modulo 256


def _file(path: Path, data: bytes = DATA) -> Path:
    path.write_bytes(data)
    return path


@pytest.fixture
def local(tmp_path: Path) -> Path:
    return _file(tmp_path / "data.bin")


@pytest.fixture
def memory_file() -> Iterator[Location]:
    """A ``memory://`` file holding :data:`DATA` (removed afterwards)."""
    prefix = f"vz-files-{uuid.uuid4().hex}"
    loc = Location(f"memory://{prefix}/data.bin")
    Location(f"memory://{prefix}").put("data.bin", DATA)
    yield loc
    fsspec.filesystem("memory").rm(f"/{prefix}", recursive=True)


# ---------------------------------------------------------------------- read
@pytest.mark.parametrize(("offset", "length"), [(0, 0), (0, 1), (5, 300), (16000, 384), (0, 16384)])
def test_read_exact_ranges(local: Path, offset: int, length: int) -> None:
    with FileCache() as files:
        assert files.read(local.as_uri(), offset, length) == DATA[offset : offset + length]
        assert files.read(str(local), offset, length) == DATA[offset : offset + length]


def test_read_decodes_file_uris(tmp_path: Path) -> None:
    path = _file(tmp_path / "a b%20#c.bin", b"spaces")
    with FileCache() as files:
        assert files.read(Location.of(path).url, 1, 4) == b"pace"


def test_read_from_many_threads(tmp_path: Path) -> None:
    paths = [_file(tmp_path / f"f{i}.bin", bytes([i]) * 1000 + DATA) for i in range(4)]
    jobs = [
        (p.as_uri(), i, off, n) for i, p in enumerate(paths) for off, n in [(0, 10), (995, 600)]
    ]
    jobs *= 50

    def expected(i: int, off: int, n: int) -> bytes:
        return (bytes([i]) * 1000 + DATA)[off : off + n]

    with FileCache() as files, ThreadPoolExecutor(8) as pool:
        got = list(pool.map(lambda j: files.read(j[0], j[2], j[3]), jobs))
        assert len(files._fds) == 4  # one descriptor per file, shared by every thread
    assert got == [expected(i, off, n) for _, i, off, n in jobs]


def test_descriptor_limit(tmp_path: Path) -> None:
    paths = [_file(tmp_path / f"f{i}.bin", bytes([65 + i]) * 100) for i in range(3)]
    with FileCache(limit=1) as files:
        for _ in range(3):
            for i, p in enumerate(paths):
                assert files.read(p.as_uri(), 10, 5) == bytes([65 + i]) * 5
                assert files.size(Location.of(p)) == 100
        assert len(files._fds) == 1


def test_descriptor_limit_from_threads(tmp_path: Path) -> None:
    paths = [_file(tmp_path / f"f{i}.bin", bytes([65 + i]) * 100) for i in range(3)]
    with FileCache(limit=1) as files, ThreadPoolExecutor(6) as pool:
        got = list(pool.map(lambda i: files.read(paths[i % 3].as_uri(), 0, 3), range(90)))
        assert len(files._fds) <= 1
    assert got == [bytes([65 + i % 3]) * 3 for i in range(90)]


def test_read_after_close_reopens(local: Path) -> None:
    files = FileCache()
    assert files.read(local.as_uri(), 0, 4) == DATA[:4]
    fd = files._fds[str(local)]
    files.close()
    assert files._fds == {}
    with pytest.raises(OSError):
        os.fstat(fd)  # really closed
    assert files.read(local.as_uri(), 4, 4) == DATA[4:8]
    files.close()


def test_close_is_idempotent(local: Path) -> None:
    files = FileCache()
    files.read(str(local), 0, 1)
    files.close()
    files.close()
    assert files._fds == {}


def test_context_manager_closes(local: Path) -> None:
    with FileCache() as files:
        files.read(local.as_uri(), 0, 1)
        fd = files._fds[str(local)]
        os.fstat(fd)
    assert files._fds == {}
    with pytest.raises(OSError):
        os.fstat(fd)


def test_garbage_collection_closes(local: Path) -> None:
    files = FileCache()
    files.read(local.as_uri(), 0, 1)
    fd = files._fds[str(local)]
    del files
    with pytest.raises(OSError):
        os.fstat(fd)


def test_read_of_a_missing_file(tmp_path: Path) -> None:
    url = (tmp_path / "gone.bin").as_uri()
    with FileCache() as files, pytest.raises(ChunkReadError, match="does not exist") as e:
        files.read(url, 0, 1)
    assert url in str(e.value) and "rename_paths" in str(e.value)


def test_read_past_the_end(local: Path) -> None:
    url = local.as_uri()
    with FileCache() as files:
        with pytest.raises(ChunkReadError, match=f"ends after {len(DATA)} bytes") as e:
            files.read(url, len(DATA) - 2, 4)
        assert url in str(e.value)
        with pytest.raises(ChunkReadError, match="truncated or changed"):
            files.read(url, len(DATA) + 10, 1)


def test_read_of_a_file_truncated_while_open(local: Path) -> None:
    with FileCache() as files:
        assert files.read(local.as_uri(), 100, 10) == DATA[100:110]
        os.truncate(local, 50)  # the cached descriptor sees the new size
        with pytest.raises(ChunkReadError, match="ends after 50 bytes"):
            files.read(local.as_uri(), 40, 20)


def test_read_of_a_directory(tmp_path: Path) -> None:
    with FileCache() as files, pytest.raises(ChunkReadError, match="could not read") as e:
        files.read(tmp_path.as_uri(), 0, 1)
    assert tmp_path.as_uri() in str(e.value)


# ---------------------------------------------------------------------- remote URLs
def test_read_of_a_memory_url(memory_file: Location) -> None:
    with FileCache() as files:
        assert files.read(memory_file.url, 300, 20) == DATA[300:320]
        with pytest.raises(ChunkReadError, match="ends after") as e:
            files.read(memory_file.url, len(DATA) - 1, 2)
        assert memory_file.url in str(e.value)
        missing = memory_file.url + ".missing"
        with pytest.raises(ChunkReadError, match="does not exist") as e:
            files.read(missing, 0, 1)
        assert missing in str(e.value)


def test_location_carries_the_storage_options() -> None:
    files = FileCache(storage_options={"anon": True})
    assert files.location("s3://b/a.nc") == Location("s3://b/a.nc", {"anon": True})


# ---------------------------------------------------------------------- read_at and size
def test_read_at_and_size_of_a_local_file(local: Path) -> None:
    loc = Location.of(local)
    with FileCache() as files:
        assert files.read_at(loc, 10, 6) == DATA[10:16]
        assert files.read_at(loc, len(DATA) - 3, 10) == DATA[-3:]  # short at the end
        assert files.read_at(loc, len(DATA) + 5, 10) == b""
        assert files.size(loc) == len(DATA)
        assert files.handle(loc) == str(local)
        assert list(files._fds) == [str(local)]  # opened once for all of these


def test_size_of_a_missing_local_file(tmp_path: Path) -> None:
    with FileCache() as files, pytest.raises(FileNotFoundError):
        files.size(Location.of(tmp_path / "gone.bin"))


def test_read_at_and_size_of_a_memory_file(
    memory_file: Location, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened: list[str] = []
    original = Location.open_remote

    def counting(self: Location, **kw: object) -> object:
        opened.append(self.url)
        return original(self, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(Location, "open_remote", counting)
    with FileCache() as files:
        assert files.read_at(memory_file, 1000, 24) == DATA[1000:1024]
        assert files.read_at(memory_file, len(DATA) - 4, 100) == DATA[-4:]
        assert files.size(memory_file) == len(DATA)
        fobj = files.remote_file(memory_file)
        assert files.handle(memory_file) is fobj
        assert files.read_at(memory_file, 0, 3) == DATA[:3]
        assert opened == [memory_file.url]  # one file object, reused
        assert files._fds == {}
    assert files._remote == {}  # closed with the cache


def test_remote_file_of_a_missing_url(memory_file: Location) -> None:
    with FileCache() as files, pytest.raises(SourceNotFoundError, match="does not exist"):
        files.remote_file(memory_file.at(memory_file.url + ".missing"))
