"""Untrusted references: the allowed_sources policy and the size limits (issue 7)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

import virtualizarr as vz
from virtualizarr.api import open_virtual_group
from virtualizarr.errors import UntrustedReferenceError, VirtualiZarrError
from virtualizarr.io.objects import Location
from virtualizarr.security import (
    ReferenceLimits,
    SourcePolicy,
    check_paths,
    normalize_source,
)


@pytest.fixture
def archive(tmp_path: Path) -> Path:
    """tmp/archive/a.nc (the allowed data) and tmp/secret.bin (outside it)."""
    d = tmp_path / "archive"
    d.mkdir()
    ds = xr.Dataset(
        {"v": (("x", "y"), np.arange(12, dtype="f4").reshape(3, 4), {"units": "m"})},
        coords={"x": np.arange(3)},
    )
    ds.to_netcdf(d / "a.nc", engine="netcdf4", encoding={"v": {"chunksizes": (1, 4)}})
    (tmp_path / "secret.bin").write_bytes(b"\0" * 64)
    return d


def _vds(archive: Path) -> xr.Dataset:
    return vz.open_virtual_dataset(archive / "a.nc")


def _refs(archive: Path, target: str | None = None, name: str = "refs.json") -> Path:
    vds = _vds(archive)
    if target is not None:
        vds = vds.virtualize.rename_paths(target)
    out = archive.parent / "refs" / name
    vds.virtualize.to_kerchunk(out, format="json")
    return out


# ---------------------------------------------------------------------- normalization
@pytest.mark.parametrize(
    ("path", "reference", "expected"),
    [
        ("file:///allowed/../etc/passwd", None, "file:///etc/passwd"),
        ("/allowed/./x/../y.nc", None, "file:///allowed/y.nc"),
        ("file:/data/x.nc", None, "file:///data/x.nc"),
        ("file://localhost/data/x.nc", None, "file:///data/x.nc"),
        ("file:///allowed/%2e%2e/etc/passwd", None, "file:///etc/passwd"),
        ("../x.nc", "file:///a/b/refs.json", "file:///a/x.nc"),
        ("x.nc", "s3://bkt/refs/r.json", "s3://bkt/refs/x.nc"),
        ("S3://Bkt/a/../b.nc", None, "s3://bkt/b.nc"),
        ("HTTPS://host/a/%2E%2E/b", None, "https://host/b"),
    ],
)
def test_normalize_source(path: str, reference: str | None, expected: str) -> None:
    assert normalize_source(path, reference) == expected


def test_allowed_sources_parse() -> None:
    p = SourcePolicy.parse(["S3", "/archive", "https://h/x/"])
    assert p.protocols == frozenset({"s3"})
    assert p.prefixes == ("file:///archive/", "https://h/x/")
    assert SourcePolicy.parse("*").allow_all
    assert SourcePolicy.parse(None).protocols is None
    with pytest.raises(UntrustedReferenceError, match="allowed_sources"):
        SourcePolicy.parse(["relative/dir"])


# ---------------------------------------------------------------------- default policy
def test_round_trip_unaffected(archive: Path) -> None:
    refs = _refs(archive)
    expected = xr.open_dataset(archive / "a.nc")
    with xr.open_dataset(refs, engine="virtualizarr") as ds:
        xr.testing.assert_identical(ds.load(), expected.load())
    prefix = str(archive)
    with xr.open_dataset(refs, engine="virtualizarr", allowed_sources=[prefix]) as ds:
        xr.testing.assert_identical(ds.load(), expected.load())
    vds = vz.open_virtual_dataset(refs, allowed_sources=["file"], loadable_variables=[])
    assert set(vds.variables) == {"v", "x"}
    expected.close()


def test_local_file_outside_prefix_refused(archive: Path) -> None:
    secret = (archive.parent / "secret.bin").as_uri()
    refs = _refs(archive, secret)
    allowed = [archive.as_uri() + "/"]
    with pytest.raises(UntrustedReferenceError) as info:
        xr.open_dataset(refs, engine="virtualizarr", allowed_sources=allowed)
    msg = str(info.value)
    assert "secret.bin" in msg and "refs.json" in msg and "allowed_sources" in msg
    assert isinstance(info.value, PermissionError) and isinstance(info.value, VirtualiZarrError)
    with pytest.raises(UntrustedReferenceError, match=r"secret\.bin"):
        vz.open_virtual_dataset(refs, allowed_sources=allowed)


def test_prefix_is_a_directory_boundary(archive: Path) -> None:
    sibling = archive.parent / "archive2"
    sibling.mkdir()
    (sibling / "a.nc").write_bytes((archive / "a.nc").read_bytes())
    refs = _refs(archive, (sibling / "a.nc").as_uri())
    with pytest.raises(UntrustedReferenceError, match="archive2"):
        open_virtual_group(refs, allowed_sources=[str(archive)], verify_sources=False)


def test_dotdot_traversal_refused(archive: Path) -> None:
    sneaky = archive.as_uri() + "/../secret.bin"
    refs = _refs(archive, sneaky)
    with pytest.raises(UntrustedReferenceError, match=r"secret\.bin"):
        xr.open_dataset(refs, engine="virtualizarr", allowed_sources=[str(archive)])
    encoded = archive.as_uri() + "/%2e%2e/secret.bin"
    refs2 = _refs(archive, encoded, "refs2.json")
    with pytest.raises(UntrustedReferenceError):
        vz.open_virtual_dataset(refs2, allowed_sources=[str(archive)])


def test_symlink_before_dotdot_refused(archive: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside" / "deep"
    outside.mkdir(parents=True)
    (archive / "link").symlink_to(outside)
    # lexically archive/a.nc, but the OS resolves link/.. to tmp/outside
    for path in (archive.as_uri() + "/link/../a.nc", archive.as_uri() + "/link/%2E%2E/a.nc"):
        with pytest.raises(UntrustedReferenceError):
            check_paths([path], None, SourcePolicy.parse([str(archive)]))
    check_paths([archive.as_uri() + "/sub/../a.nc"], None, SourcePolicy.parse([str(archive)]))


def test_relative_paths_resolved_against_the_reference(archive: Path) -> None:
    vds = _vds(archive).virtualize.rename_paths("../secret.bin")
    refs = archive / "refs.json"
    vds.virtualize.to_kerchunk(refs, format="json")
    with pytest.raises(UntrustedReferenceError, match=r"secret\.bin"):
        open_virtual_group(refs, allowed_sources=[str(archive)], verify_sources=False)


def test_manifest_store_and_parquet_checked(archive: Path) -> None:
    secret = (archive.parent / "secret.bin").as_uri()
    vds = _vds(archive).virtualize.rename_paths(secret)
    store = archive.parent / "store.zarr"
    vds.virtualize.to_zarr(store)
    parq = archive.parent / "refs.parq"
    vds.virtualize.to_kerchunk(parq, format="parquet")
    for target in (store, parq):
        with pytest.raises(UntrustedReferenceError, match=r"secret\.bin"):
            xr.open_dataset(target, engine="virtualizarr", allowed_sources=[str(archive)])
        # the default policy trusts local references with local paths
        open_virtual_group(target, verify_sources=False)


def test_in_memory_document_checked(archive: Path) -> None:
    refs = _vds(archive).virtualize.rename_paths("memory://x/a.nc").virtualize.to_kerchunk()
    with pytest.raises(UntrustedReferenceError, match="'memory'"):
        xr.open_dataset(refs, engine="virtualizarr")


# ---------------------------------------------------------------------- remote origins
@pytest.mark.parametrize("reference", ["s3://bucket/refs.json", "https://example.org/refs/r.json"])
def test_remote_refs_may_not_point_at_local_files(reference: str) -> None:
    with pytest.raises(UntrustedReferenceError, match="local file") as info:
        check_paths(["file:///etc/passwd"], reference, SourcePolicy())
    assert reference in str(info.value)
    with pytest.raises(UntrustedReferenceError):
        check_paths(["/etc/passwd"], reference, SourcePolicy())
    # allowed when the caller says so
    check_paths(["file:///etc/passwd"], reference, SourcePolicy.parse(["file"]))
    check_paths(["file:///data/x.nc"], reference, SourcePolicy.parse(["/data", "s3"]))
    # remote sources are fine by default
    check_paths(["s3://other/x.nc", "https://h.example/x.nc"], reference, SourcePolicy())


def test_relative_paths_of_remote_refs_stay_remote() -> None:
    check_paths(["../data/x.nc"], "s3://bucket/refs/r.json", SourcePolicy())
    with pytest.raises(UntrustedReferenceError):
        check_paths(["x.nc"], "s3://bucket/refs/r.json", SourcePolicy.parse(["s3://other/"]))


def test_remote_refs_may_not_reach_private_hosts() -> None:
    ref = "https://example.org/refs.json"
    for url in ("http://169.254.169.254/latest/meta-data", "http://127.0.0.1:8080/x"):
        with pytest.raises(UntrustedReferenceError, match="private"):
            check_paths([url], ref, SourcePolicy())
    # the reference's own host is fine (a server on loopback serving its own data)
    check_paths(["http://127.0.0.1:9000/x.nc"], "http://127.0.0.1:9000/refs.json", SourcePolicy())
    check_paths(["http://127.0.0.1/x"], ref, SourcePolicy.parse(["http"]))


@pytest.mark.parametrize(
    "url", ["memory://x/a.nc", "ftp://host/a.nc", "data:text/plain,abc", "zip://a::file:///b"]
)
def test_unknown_protocol_refused(url: str) -> None:
    with pytest.raises(UntrustedReferenceError, match="protocol"):
        check_paths([url], "file:///r/refs.json", SourcePolicy())
    proto = url.split(":", 1)[0]
    check_paths([url], "file:///r/refs.json", SourcePolicy.parse([proto]))
    check_paths([url], "file:///r/refs.json", SourcePolicy.parse("*"))


# ---------------------------------------------------------------------- limits
def _doc(archive: Path) -> dict[str, Any]:
    return _vds(archive).virtualize.to_kerchunk()  # type: ignore[no-any-return]


def test_max_references(archive: Path) -> None:
    refs = _refs(archive)
    with pytest.raises(UntrustedReferenceError, match="max_references"):
        xr.open_dataset(refs, engine="virtualizarr", limits=ReferenceLimits(max_references=3))
    xr.open_dataset(refs, engine="virtualizarr", limits=ReferenceLimits(max_references=4)).close()


def test_max_document_bytes(archive: Path) -> None:
    refs = _refs(archive)
    size = refs.stat().st_size
    with pytest.raises(UntrustedReferenceError, match="max_document_bytes"):
        vz.open_virtual_dataset(refs, limits=ReferenceLimits(max_document_bytes=size - 1))
    vz.open_virtual_dataset(refs, limits=ReferenceLimits(max_document_bytes=size))


def test_inline_limits(archive: Path) -> None:
    doc = _doc(archive)
    key = next(
        k for k in doc["refs"] if k.startswith("v/") and not k.endswith((".zarray", ".zattrs"))
    )
    doc["refs"][key] = "base64:" + "A" * 64  # 48 bytes inline
    for limits, option in [
        (ReferenceLimits(max_inline_chunk_bytes=47), "max_inline_chunk_bytes"),
        (ReferenceLimits(max_inline_total_bytes=47), "max_inline_total_bytes"),
    ]:
        with pytest.raises(UntrustedReferenceError, match=option):
            open_virtual_group(doc, limits=limits, verify_sources=False)
    open_virtual_group(doc, limits=ReferenceLimits(max_inline_chunk_bytes=48), verify_sources=False)


def test_max_json_depth(archive: Path) -> None:
    doc = _doc(archive)
    nested: Any = 1
    for _ in range(40):
        nested = [nested]
    zattrs = json.loads(doc["refs"]["v/.zattrs"])
    zattrs["deep"] = nested
    doc["refs"]["v/.zattrs"] = json.dumps(zattrs)
    with pytest.raises(UntrustedReferenceError, match="max_json_depth"):
        open_virtual_group(doc, verify_sources=False)
    open_virtual_group(doc, limits=ReferenceLimits(max_json_depth=41), verify_sources=False)


def test_absurd_nesting_of_the_document_is_invalid(tmp_path: Path) -> None:
    p = tmp_path / "deep.json"
    p.write_text("[" * 100_000 + "]" * 100_000)
    with pytest.raises(VirtualiZarrError):
        open_virtual_group(p, verify_sources=False)


def _whole_file_refs(target: str) -> dict[str, Any]:
    """A kerchunk document whose one chunk is the whole of ``target`` (``[url]``)."""
    zarray = {
        "zarr_format": 2,
        "shape": [8],
        "chunks": [8],
        "dtype": "|u1",
        "compressor": None,
        "filters": None,
        "fill_value": 0,
        "order": "C",
    }
    return {
        "version": 1,
        "refs": {
            ".zgroup": json.dumps({"zarr_format": 2}),
            "v/.zarray": json.dumps(zarray),
            "v/.zattrs": json.dumps({"_ARRAY_DIMENSIONS": ["x"]}),
            "v/0": [target],
        },
    }


def test_whole_file_references_resolve_relative_to_the_document(tmp_path: Path) -> None:
    (tmp_path / "blob.bin").write_bytes(bytes(range(8)))
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps(_whole_file_refs("blob.bin")))
    vds = vz.open_virtual_dataset(str(refs))
    entry = vds["v"].data.manifest.get_chunk((0,))
    assert entry == {"path": (tmp_path / "blob.bin").as_uri(), "offset": 0, "length": 8}


def spy_on_stat(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Record the URL of every file whose size or identity is asked for."""
    looked: list[str] = []
    real = Location.info

    def info(self: Location) -> dict[str, Any]:
        looked.append(self.url)
        return real(self)

    monkeypatch.setattr(Location, "info", info)
    return looked


def test_whole_file_references_are_checked_before_the_target_is_looked_at(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    looked = spy_on_stat(monkeypatch)
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"12345678")
    inside = tmp_path / "inside"
    inside.mkdir()
    refs = inside / "refs.json"
    refs.write_text(json.dumps(_whole_file_refs(outside.as_uri())))
    with pytest.raises(UntrustedReferenceError, match=r"outside\.bin"):
        vz.open_virtual_dataset(str(refs), allowed_sources=[inside.as_uri() + "/"])
    with pytest.raises(UntrustedReferenceError, match=r"outside\.bin"):
        open_virtual_group(_whole_file_refs(outside.as_uri()), allowed_sources=["s3://"])
    assert not [u for u in looked if "outside.bin" in u]  # refused without a stat of it


def _whole_file_parquet(root: Path, target: str) -> Path:
    """A kerchunk Parquet store whose one chunk is the whole of ``target``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    refs = _whole_file_refs(target)["refs"]
    store = root / "refs.parq"
    (store / "v").mkdir(parents=True)
    meta = {k: v for k, v in refs.items() if not k.endswith("/0")}
    (store / ".zmetadata").write_text(json.dumps({"metadata": meta, "record_size": 10}))
    table = pa.table(
        {
            "path": [target],
            "offset": pa.array([0], pa.int64()),
            "size": pa.array([0], pa.int64()),
            "raw": pa.array([None], pa.binary()),
        }
    )
    pq.write_table(table, store / "v" / "refs.0.parq")
    return store


def test_whole_file_parquet_references_are_sized_after_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pytest.importorskip("pyarrow")
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(8)))
    ok = vz.open_virtual_dataset(str(_whole_file_parquet(tmp_path / "a", blob.as_uri())))
    assert ok["v"].data.manifest.get_chunk((0,)) == {
        "path": blob.as_uri(),
        "offset": 0,
        "length": 8,
    }
    looked = spy_on_stat(monkeypatch)
    inside = tmp_path / "b"
    store = _whole_file_parquet(inside, blob.as_uri())
    with pytest.raises(UntrustedReferenceError, match=r"blob\.bin"):
        vz.open_virtual_dataset(str(store), allowed_sources=[inside.as_uri() + "/"])
    assert not [u for u in looked if "blob.bin" in u]
