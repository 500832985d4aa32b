"""Writers never lose data: atomic outputs, mode="w-"/"w", failures injected mid-write."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.errors import InvalidArgumentError, OutputExistsError
from virtualizarr.writers import kerchunk as kerchunk_writer
from virtualizarr.writers import parquet as parquet_writer
from virtualizarr.writers import zarr as zarr_writer
from virtualizarr.writers.encode import EncodedDataset

FORMATS = ["json", "parquet", "zarr"]


class Boom(RuntimeError):
    """The injected failure."""


@pytest.fixture
def vds(tmp_path: Path) -> xr.Dataset:
    ds = xr.Dataset(
        {
            "a": (("x", "y"), np.arange(12, dtype="f4").reshape(3, 4)),
            "b": (("x",), np.arange(3, dtype="i4")),
        },
        coords={"x": np.arange(3)},
    )
    src = tmp_path / "src.nc"
    ds.to_netcdf(src, engine="netcdf4", encoding={"a": {"chunksizes": (1, 4)}})
    return vz.open_virtual_dataset(src)


def write(ds: xr.Dataset, fmt: str, out: Path, **kw: Any) -> None:
    if fmt == "zarr":
        ds.virtualize.to_zarr(out, **kw)
    else:
        ds.virtualize.to_kerchunk(out, format=fmt, **kw)


def snapshot(path: Path) -> dict[str, bytes]:
    if path.is_file():
        return {"": path.read_bytes()}
    return {
        str(p.relative_to(path)): p.read_bytes() for p in sorted(path.rglob("*")) if p.is_file()
    }


def litter(parent: Path, out: Path) -> list[str]:
    """Anything beside ``out`` that the writer left (temporary files or directories)."""
    return sorted(p.name for p in parent.iterdir() if p.name.startswith(f".{out.name}"))


def target(tmp_path: Path, fmt: str) -> Path:
    return tmp_path / "out" / {"json": "refs.json", "parquet": "refs.parq", "zarr": "v.zarr"}[fmt]


@pytest.mark.parametrize("fmt", FORMATS)
def test_written_atomically_and_readable(vds: xr.Dataset, tmp_path: Path, fmt: str) -> None:
    out = target(tmp_path, fmt)
    write(vds, fmt, out)
    assert out.exists() and litter(out.parent, out) == []
    with xr.open_dataset(out, engine="virtualizarr") as ds:
        xr.testing.assert_identical(ds.load(), xr.open_dataset(tmp_path / "src.nc").load())


@pytest.mark.parametrize("fmt", FORMATS)
def test_default_mode_refuses_existing_output(vds: xr.Dataset, tmp_path: Path, fmt: str) -> None:
    out = target(tmp_path, fmt)
    write(vds, fmt, out)
    before = snapshot(out)
    with pytest.raises(OutputExistsError) as info:
        write(vds.drop_vars("b"), fmt, out)
    assert isinstance(info.value, FileExistsError)
    assert "mode='w'" in str(info.value)
    assert snapshot(out) == before and litter(out.parent, out) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_mode_w_replaces(vds: xr.Dataset, tmp_path: Path, fmt: str) -> None:
    out = target(tmp_path, fmt)
    write(vds, fmt, out)
    write(vds.drop_vars("b"), fmt, out, mode="w")
    with xr.open_dataset(out, engine="virtualizarr") as ds:
        assert "b" not in ds and "a" in ds
    assert litter(out.parent, out) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_bad_mode_refused(vds: xr.Dataset, tmp_path: Path, fmt: str) -> None:
    out = target(tmp_path, fmt)
    with pytest.raises(ValueError, match="mode") as info:
        write(vds, fmt, out, mode="a")
    if fmt != "json":  # the JSON writer's mode check lives in virtualizarr.io
        assert isinstance(info.value, InvalidArgumentError)
    assert not out.exists()


def test_bad_format_refused(vds: xr.Dataset, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="format must be"):
        vds.virtualize.to_kerchunk(tmp_path / "x", format="yaml")
    with pytest.raises(InvalidArgumentError, match="record_size"):
        vds.virtualize.to_kerchunk(tmp_path / "p", format="parquet", record_size=0)


def _fail_on_call(n: int, fn: Callable[..., Any]) -> Callable[..., Any]:
    calls = {"n": 0}

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] >= n:
            raise Boom(f"injected failure in {fn.__name__}")
        return fn(*args, **kwargs)

    return wrapper


def _inject(monkeypatch: pytest.MonkeyPatch, fmt: str) -> None:
    """Make the writer of ``fmt`` fail halfway through its output."""
    if fmt == "json":  # after the chunk references were streamed to the temporary file
        monkeypatch.setattr(EncodedDataset, "extension", _fail_on_call(1, EncodedDataset.extension))
    elif fmt == "parquet":  # after the first array's records
        monkeypatch.setattr(
            parquet_writer, "_write_field", _fail_on_call(2, parquet_writer._write_field)
        )
    else:  # after the first array's chunk files, manifest.json and zarr.json
        real = zarr_writer._virtual_array
        monkeypatch.setattr(zarr_writer, "_virtual_array", _fail_on_call(2, real))


@pytest.mark.parametrize("mode", ["w-", "w"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_failure_mid_write_keeps_previous_output(
    vds: xr.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, mode: str
) -> None:
    out = target(tmp_path, fmt)
    write(vds.drop_vars("b"), fmt, out)
    before = snapshot(out)
    _inject(monkeypatch, fmt)
    with pytest.raises((Boom, OutputExistsError)) as info:
        write(vds, fmt, out, mode=mode)
    assert info.type is (OutputExistsError if mode == "w-" else Boom)
    assert snapshot(out) == before
    assert litter(out.parent, out) == []


@pytest.mark.parametrize("fmt", FORMATS)
def test_failure_mid_write_leaves_nothing(
    vds: xr.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    out = target(tmp_path, fmt)
    _inject(monkeypatch, fmt)
    with pytest.raises(Boom):
        write(vds, fmt, out)
    assert not out.exists()
    assert not out.parent.exists() or litter(out.parent, out) == []


@pytest.mark.parametrize("fmt", ["parquet", "zarr"])
def test_failed_final_rename_restores_previous_directory(
    vds: xr.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """mode='w' moves the old directory aside first; if the swap fails, it comes back."""
    out = target(tmp_path, fmt)
    write(vds.drop_vars("b"), fmt, out)
    before = snapshot(out)
    real_rename = os.rename

    def rename(src: Any, dst: Any) -> None:
        if Path(dst) == out and str(src).endswith(".tmp"):  # the new directory's swap-in
            raise Boom("injected failure in rename")
        real_rename(src, dst)

    monkeypatch.setattr(os, "rename", rename)  # the module the writer renames with
    with pytest.raises(Boom):
        write(vds, fmt, out, mode="w")
    monkeypatch.undo()
    assert snapshot(out) == before
    assert litter(out.parent, out) == []


def test_failure_mid_write_of_a_file_keeps_previous(
    vds: xr.Dataset, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A failure while the JSON bytes are being written (a short disk write)."""
    out = target(tmp_path, "json")
    write(vds.drop_vars("b"), "json", out)
    before = snapshot(out)
    real = kerchunk_writer._chunk_ref_json
    monkeypatch.setattr(kerchunk_writer, "_chunk_ref_json", _fail_on_call(2, real))
    with pytest.raises(Boom):  # after the first array's references were written
        write(vds, "json", out, mode="w")
    assert snapshot(out) == before and litter(out.parent, out) == []


# ---------------------------------------------------------------------- object storage
# The object-store path of the directory writers (upload everything, the commit key last,
# roll back on failure), on fsspec's in-memory filesystem; tests/remote/ runs the same
# against moto's S3 server.
def _memory_url() -> str:
    import uuid

    return f"memory://vz-atomic/{uuid.uuid4().hex}"


def test_object_store_output_commits_last_and_replaces() -> None:
    from virtualizarr.io.objects import Location
    from virtualizarr.io.write import output_directory

    url = _memory_url()
    d = Location(url)
    with output_directory(Location(url), commit_key="zarr.json") as out:
        out.put("a/zarr.json", b"a1")
        out.put("zarr.json", b"root1")
        out.put("a/c/0", b"chunk")
        assert "zarr.json" not in d.list(), "the commit key waits for everything else"
    assert d.list() == {"a/c/0": 5, "a/zarr.json": 2, "zarr.json": 5}
    with (
        pytest.raises(OutputExistsError, match=r"zarr\.json exists"),
        output_directory(Location(url), commit_key="zarr.json"),
    ):
        pass
    with output_directory(Location(url), commit_key="zarr.json", mode="w") as out:
        out.put("b/zarr.json", b"b2")
        out.put("a/zarr.json", b"a1")  # unchanged
        out.put("zarr.json", b"root2")
    assert d.list() == {"a/zarr.json": 2, "b/zarr.json": 2, "zarr.json": 5}
    assert d.get("zarr.json") == b"root2"


def test_object_store_output_rolls_back_and_reports_what_it_could_not_restore(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from virtualizarr.errors import OutputWriteError
    from virtualizarr.io.objects import Location
    from virtualizarr.io.write import output_directory

    url = _memory_url()
    d = Location(url)
    with output_directory(Location(url), commit_key="zarr.json") as out:
        out.put("a/zarr.json", b"old")
        out.put("a/c/0", b"old chunk")
        out.put("zarr.json", b"old root")
    before = {k: d.get(k) for k in d.list()}
    with (
        pytest.raises(Boom),
        output_directory(Location(url), commit_key="zarr.json", mode="w") as out,
    ):
        out.put("a/zarr.json", b"new")
        out.put("n/zarr.json", b"new array")
        raise Boom("the writer failed")
    assert {k: d.get(k) for k in d.list()} == before
    # the roll-back itself fails: the original error says so
    real_put = Location.put

    def put(self: Location, key: str, data: bytes) -> None:
        if data == b"old":
            raise OutputWriteError(f"cannot restore {key}")
        real_put(self, key, data)

    monkeypatch.setattr(Location, "put", put)
    with (
        pytest.raises(Boom) as info,
        output_directory(Location(url), commit_key="zarr.json", mode="w") as out,
    ):
        out.put("a/zarr.json", b"new")
        out.put("zarr.json", b"new root")
        raise Boom("the writer failed")
    assert "could not all be restored" in "".join(getattr(info.value, "__notes__", []))


def test_object_store_stale_objects_left_behind_warn(monkeypatch: pytest.MonkeyPatch) -> None:
    from virtualizarr.errors import OutputWriteError
    from virtualizarr.io.objects import Location
    from virtualizarr.io.write import output_directory

    url = _memory_url()
    with output_directory(Location(url), commit_key=".zmetadata") as out:
        out.put("old/refs.0.parq", b"x")
        out.put(".zmetadata", b"{}")

    def delete(self: Location, keys: object) -> None:
        raise OutputWriteError("delete refused")

    monkeypatch.setattr(Location, "delete", delete)
    with (
        pytest.warns(RuntimeWarning, match="could not be deleted"),
        output_directory(Location(url), commit_key=".zmetadata", mode="w") as out,
    ):
        out.put("new/refs.0.parq", b"y")
        out.put(".zmetadata", b"{}")
    monkeypatch.undo()
    assert Location(url).get("new/refs.0.parq") == b"y"


@pytest.mark.parametrize("key", ["", "/abs", "a/../b", "a//b", "."])
def test_object_keys_must_stay_inside_the_output(key: str) -> None:
    from virtualizarr.io.objects import Location
    from virtualizarr.io.write import output_directory

    with (
        pytest.raises(InvalidArgumentError, match="relative path"),
        output_directory(Location(_memory_url()), commit_key="zarr.json") as out,
    ):
        out.put(key, b"x")


def test_store_on_memory_filesystem_follows_the_remote_source_policy(
    vds: xr.Dataset, tmp_path: Path
) -> None:
    """A store read from a non-local location may not reach local files unless allowed."""
    from virtualizarr.errors import UntrustedReferenceError

    url = _memory_url() + "/v.zarr"
    vds.virtualize.to_zarr(url)
    with pytest.raises(UntrustedReferenceError, match="memory"):
        xr.open_dataset(url, engine="virtualizarr")
    with xr.open_dataset(url, engine="virtualizarr", allowed_sources=["file"]) as ds:
        xr.testing.assert_identical(ds.load(), xr.open_dataset(tmp_path / "src.nc").load())
