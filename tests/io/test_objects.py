"""``Location`` (virtualizarr.io.objects) on a local directory and on fsspec's in-memory
filesystem, and the retry/error helpers of virtualizarr.io.remote."""

from __future__ import annotations

import pickle
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import fsspec
import pytest

import virtualizarr.io.remote as remote
from virtualizarr.errors import ChunkReadError, OutputWriteError, SourceNotFoundError
from virtualizarr.io.objects import Location
from virtualizarr.io.remote import retry, write_error


def _fill(loc: Location) -> Location:
    loc.put("b/c/deep.bin", b"0123456789")
    loc.put("a.bin", b"xy")
    loc.put("b/one.bin", b"1")
    loc.put("empty.bin", b"")
    return loc


@pytest.fixture
def memory_prefix() -> Iterator[str]:
    """A fresh ``memory://`` prefix, removed afterwards (the filesystem is global)."""
    prefix = f"vz-test-{uuid.uuid4().hex}"
    yield f"memory://{prefix}"
    fs = fsspec.filesystem("memory")
    if fs.exists(f"/{prefix}"):
        fs.rm(f"/{prefix}", recursive=True)


@pytest.fixture(params=["local", "memory"])
def store(request: pytest.FixtureRequest, tmp_path: Path, memory_prefix: str) -> Location:
    """An empty directory: ``tmp_path/store`` or a fresh ``memory://`` prefix."""
    if request.param == "local":
        return Location.of(tmp_path / "store")
    return Location(f"{memory_prefix}/store")


@pytest.fixture
def filled(store: Location) -> Location:
    return _fill(store)


# ---------------------------------------------------------------------- directories
def test_put_get_exists(store: Location) -> None:
    assert not store.exists("k.bin")
    store.put("k.bin", b"hello")
    assert store.exists("k.bin")
    assert store.get("k.bin") == b"hello"
    store.put("k.bin", b"new")  # overwritten
    assert store.get("k.bin") == b"new"


def test_get_missing_raises_file_not_found(store: Location) -> None:
    with pytest.raises(FileNotFoundError):
        store.get("missing.bin")


def test_list_sizes_nested_and_sorted(filled: Location) -> None:
    listed = filled.list()
    assert listed == {"a.bin": 2, "b/c/deep.bin": 10, "b/one.bin": 1, "empty.bin": 0}
    assert list(listed) == sorted(listed)


def test_list_of_nothing_is_empty(store: Location) -> None:
    assert store.list() == {}
    assert not store.is_dir()


def test_is_dir(filled: Location) -> None:
    assert filled.is_dir()
    assert filled.join("b").is_dir()
    assert not filled.join("a.bin").is_dir()
    assert not filled.join("nothing").is_dir()


def test_get_many(filled: Location) -> None:
    got = filled.get_many(["b/one.bin", "a.bin", "b/one.bin", "b/c/deep.bin"])
    assert got == {"b/one.bin": b"1", "a.bin": b"xy", "b/c/deep.bin": b"0123456789"}
    assert filled.get_many([]) == {}


def test_get_many_missing_raises(filled: Location) -> None:
    with pytest.raises(FileNotFoundError):
        filled.get_many(["a.bin", "missing.bin"])


def test_delete_ignores_missing_keys(filled: Location) -> None:
    filled.delete(["b/one.bin", "0-never-there.bin"])
    assert "b/one.bin" not in filled.list()
    filled.delete([])
    filled.delete(["never-there.bin"])
    assert set(filled.list()) == {"a.bin", "b/c/deep.bin", "empty.bin"}


def test_delete_several(filled: Location) -> None:
    filled.delete(["a.bin", "b/c/deep.bin"])
    assert filled.list() == {"b/one.bin": 1, "empty.bin": 0}


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_delete_ignores_a_missing_key_sorting_last(
    kind: str, tmp_path: Path, memory_prefix: str
) -> None:
    loc = _fill(Location.of(tmp_path) if kind == "local" else Location(memory_prefix))
    loc.delete(["a.bin", "zz-never-there.bin"])
    assert "a.bin" not in loc.list()


@pytest.mark.parametrize("kind", ["local", "memory"])
def test_exists_is_false_for_a_directory(kind: str, tmp_path: Path, memory_prefix: str) -> None:
    loc = _fill(Location.of(tmp_path) if kind == "local" else Location(memory_prefix))
    assert loc.exists("b/one.bin")
    assert not loc.exists("b")


def test_get_bounded(filled: Location) -> None:
    assert filled.get_bounded("b/c/deep.bin", 4) == b"01234"  # max_bytes + 1: "larger"
    assert filled.get_bounded("b/c/deep.bin", 100) == b"0123456789"
    assert filled.get_bounded("b/c/deep.bin", 10) == b"0123456789"  # exactly max: not larger
    with pytest.raises(FileNotFoundError):
        filled.get_bounded("missing.bin", 4)


@pytest.mark.parametrize("caps_missing", [False, True])
def test_get_many_bounded_leaves_missing_out(filled: Location, caps_missing: bool) -> None:
    caps = {"a.bin": 10, "b/c/deep.bin": 2}
    if caps_missing:
        caps = {"missing.bin": 5, **caps, "other/missing.bin": 1}
    assert filled.get_many_bounded(caps) == {"a.bin": b"xy", "b/c/deep.bin": b"012"}
    assert filled.get_many_bounded({"missing.bin": 3}) == {}


# ---------------------------------------------------------------------- single files
def test_head_read_read_range(filled: Location) -> None:
    f = filled.join("b/c/deep.bin")
    assert f.head() == b"01234567"
    assert f.head(3) == b"012"
    assert f.head(100) == b"0123456789"  # fewer when the file is shorter
    assert f.read() == b"0123456789"
    assert f.read_range(2, 5) == b"23456"
    assert f.read_range(0, 10) == b"0123456789"
    assert f.read_range(10, 0) == b""


def test_read_range_past_the_end(filled: Location) -> None:
    f = filled.join("b/c/deep.bin")
    with pytest.raises(ChunkReadError, match="ends after 10 bytes") as e:
        f.read_range(8, 4)
    assert f.url in str(e.value)
    with pytest.raises(ChunkReadError, match="truncated or changed"):
        f.read_range(20, 1)


def test_read_range_of_a_missing_file(store: Location) -> None:
    f = store.join("missing.bin")
    with pytest.raises(ChunkReadError, match="does not exist") as e:
        f.read_range(0, 1)
    assert f.url in str(e.value)


def test_head_and_read_of_a_missing_file(store: Location) -> None:
    f = store.join("missing.bin")
    with pytest.raises(FileNotFoundError):
        f.head()
    with pytest.raises(FileNotFoundError):
        f.read()


def test_head_of_a_directory(filled: Location) -> None:
    with pytest.raises(IsADirectoryError):
        filled.head()
    with pytest.raises(IsADirectoryError):
        filled.join("b").head()


def test_info_and_size(filled: Location) -> None:
    f = filled.join("b/c/deep.bin")
    info = f.info()
    assert info["size"] == 10 and f.size() == 10
    assert filled.join("empty.bin").size() == 0
    if f.is_local:
        assert info["mtime_ns"] == Path(f.local_path).stat().st_mtime_ns
    filled.put("b/c/deep.bin", b"abc")  # a rewrite is seen at once
    assert f.size() == 3


def test_info_of_a_missing_file(store: Location) -> None:
    f = store.join("missing.bin")
    with pytest.raises(SourceNotFoundError, match="does not exist") as e:
        f.info()
    assert f.url in str(e.value)
    with pytest.raises(SourceNotFoundError):
        f.size()


def test_known_size_only_locally(filled: Location) -> None:
    f = filled.join("b/c/deep.bin")
    assert f.known_size() == (10 if f.is_local else None)


def test_known_size_of_a_missing_local_file(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        Location.of(tmp_path / "missing.bin").known_size()


# ---------------------------------------------------------------------- naming
def test_label_join_at(store: Location) -> None:
    f = store.join("sub/x.nc")
    assert f.url == store.url + "/sub/x.nc"
    assert f.name == "x.nc"
    assert f.storage_options == store.storage_options
    if store.is_local:
        assert store.label() == store.local_path
        assert store.label("sub/x.nc") == f.local_path == f.label()
        assert not store.label().startswith("file://")
    else:
        assert store.label() == store.url
        assert store.label("sub/x.nc") == f.url
    other = store.at("memory://elsewhere/y.nc")
    assert other.url == "memory://elsewhere/y.nc" and other.storage_options == store.storage_options


def test_join_reaches_what_put_wrote(store: Location) -> None:
    store.put("g/zarr.json", b"{}")
    assert store.join("g/zarr.json").read() == store.get("g/zarr.json") == b"{}"
    assert store.join("g").is_dir()


def test_options_travel_with_join_and_at() -> None:
    loc = Location("s3://bucket/refs", {"anon": True})
    assert loc.join("a/zarr.json").storage_options == {"anon": True}
    assert loc.at("s3://other/a.nc") == Location("s3://other/a.nc", {"anon": True})
    assert loc.url_of("a") == "s3://bucket/refs/a"
    assert not loc.is_local and not loc.is_http and loc.listable
    assert not Location("https://h/a.zarr").listable


def test_of_makes_file_uris(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    loc = Location.of("dir name/a.nc")
    assert loc.url == (tmp_path.resolve() / "dir name" / "a.nc").as_uri()
    assert "%20" in loc.url
    assert loc.local_path == str(tmp_path.resolve() / "dir name" / "a.nc")
    assert loc.is_local
    assert Location.of(loc) is loc
    assert Location.of(tmp_path / "a.nc") == Location(tmp_path.resolve().joinpath("a.nc").as_uri())
    assert Location.of("s3://b/a.nc", {"anon": True}) == Location("s3://b/a.nc", {"anon": True})


def test_of_reads_a_local_file_with_spaces(tmp_path: Path) -> None:
    path = tmp_path / "a b%20c.nc"
    path.write_bytes(b"content")
    loc = Location.of(path)
    assert loc.read() == b"content" and loc.size() == 7
    assert loc.label() == str(path.resolve())


def test_equality_and_hash() -> None:
    a = Location("s3://b/a.nc", {"anon": True})
    assert a == Location("s3://b/a.nc", {"anon": True})
    assert a != Location("s3://b/a.nc")
    assert a != Location("s3://b/other.nc", {"anon": True})
    assert a != "s3://b/a.nc"
    assert hash(a) == hash(Location("s3://b/a.nc"))
    assert len({a, Location("s3://b/a.nc", {"anon": True})}) == 1
    assert repr(a) == "Location('s3://b/a.nc')"


@pytest.mark.parametrize(
    "loc",
    [
        Location("s3://b/a.nc", {"anon": True, "client_kwargs": {"endpoint_url": "http://x"}}),
        Location("file:///data/a%20b.nc"),
        Location("memory://m/store"),
    ],
)
def test_pickles(loc: Location) -> None:
    back = pickle.loads(pickle.dumps(loc))
    assert back == loc and back.is_local == loc.is_local


def test_pickles_after_use(filled: Location) -> None:
    filled.list()  # the memory location now holds its filesystem
    back = pickle.loads(pickle.dumps(filled))
    assert back == filled and back.get("a.bin") == b"xy"


# ---------------------------------------------------------------------- retries
@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(remote, "BACKOFF", 0)


def _failing(times: int, error: BaseException) -> tuple[list[int], Callable[[], str]]:
    calls: list[int] = []

    def fn() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise error
        return "done"

    return calls, fn


@pytest.mark.usefixtures("no_backoff")
@pytest.mark.parametrize(
    "error",
    [ConnectionError("reset"), TimeoutError("slow"), OSError("503 Service Unavailable")],
)
def test_retry_retries_transient_failures(error: BaseException) -> None:
    calls, fn = _failing(2, error)
    assert retry(fn, "s3://b/k") == "done"
    assert len(calls) == 3


@pytest.mark.usefixtures("no_backoff")
@pytest.mark.parametrize(
    "error", [FileNotFoundError("k"), PermissionError("denied"), ValueError("bad")]
)
def test_retry_does_not_retry_permanent_failures(error: BaseException) -> None:
    calls, fn = _failing(1, error)
    with pytest.raises(type(error)):
        retry(fn, "s3://b/k")
    assert len(calls) == 1


@pytest.mark.usefixtures("no_backoff")
def test_retry_gives_up_after_tries() -> None:
    calls, fn = _failing(10, ConnectionError("down"))
    with pytest.raises(ConnectionError, match="down"):
        retry(fn, "s3://b/k", tries=3)
    assert len(calls) == 3


def test_retry_backs_off_exponentially(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(time, "sleep", slept.append)
    _, fn = _failing(3, ConnectionError("reset"))
    assert retry(fn, "s3://b/k") == "done"
    assert slept == [remote.BACKOFF, 2 * remote.BACKOFF, 4 * remote.BACKOFF]


def test_write_error_messages() -> None:
    e = write_error("s3://b/k", PermissionError("Access Denied"))
    assert isinstance(e, OutputWriteError) and isinstance(e, OSError)
    assert str(e).startswith("could not write s3://b/k: PermissionError: Access Denied;")
    assert "bucket exists" in str(e) and "credentials" in str(e)
    missing = write_error("s3://nobucket/k", FileNotFoundError("NoSuchBucket"))
    assert "bucket exists" in str(missing)
    other = write_error("s3://b/k", ConnectionError("reset"))
    assert "ConnectionError: reset" in str(other)
    assert "check the connection" in str(other) and "bucket exists" not in str(other)
