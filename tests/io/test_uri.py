"""Paths and URIs (virtualizarr.io.uri): pure functions, no file is touched."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from virtualizarr.io.uri import (
    is_http,
    is_local,
    is_relative,
    join_uri,
    local_path,
    relative_to,
    resolve_relative,
    to_uri,
)


# ---------------------------------------------------------------------- classification
@pytest.mark.parametrize(
    ("url", "local"),
    [
        ("/data/a.nc", True),
        ("file:///data/a.nc", True),
        ("data/a.nc", True),
        ("a.nc", True),
        ("s3://bucket/a.nc", False),
        ("memory://x/a.nc", False),
        ("https://host/a.nc", False),
        ("gs://bucket/a.nc", False),
    ],
)
def test_is_local(url: str, local: bool) -> None:
    assert is_local(url) is local


def test_is_local_accepts_path_objects() -> None:
    assert is_local(Path("/data/a.nc"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("url", "http"),
    [
        ("http://host/a.nc", True),
        ("https://host/a.nc", True),
        ("HTTPS://HOST/a.nc", True),
        ("s3://bucket/a.nc", False),
        ("file:///http/a.nc", False),
        ("/http://x", False),
    ],
)
def test_is_http(url: str, http: bool) -> None:
    assert is_http(url) is http


@pytest.mark.parametrize(
    ("path", "relative"),
    [
        ("a.nc", True),
        ("raw/a.nc", True),
        ("../a.nc", True),
        ("./a.nc", True),
        ("/data/a.nc", False),
        ("file:///data/a.nc", False),
        ("s3://bucket/a.nc", False),
        ("https://host/a.nc", False),
    ],
)
def test_is_relative(path: str, relative: bool) -> None:
    assert is_relative(path) is relative


# ---------------------------------------------------------------------- local paths
@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("file:///data/a%20b.nc", "/data/a b.nc"),
        ("file:///data/a%2520b.nc", "/data/a%20b.nc"),
        ("file:///data/%C3%BC.nc", "/data/ü.nc"),
        ("file:///data/a%23b.nc", "/data/a#b.nc"),
        ("/data/a%20b.nc", "/data/a%20b.nc"),  # a plain path is not decoded
        ("/data/a.nc", "/data/a.nc"),
    ],
)
def test_local_path_decodes_file_uris_only(url: str, path: str) -> None:
    assert local_path(url) == path


@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("/data/a.nc", "file:///data/a.nc"),
        ("/data/a b.nc", "file:///data/a%20b.nc"),
        ("/data/a%20b.nc", "file:///data/a%2520b.nc"),  # a literal percent sign
        ("/data/a#b?.nc", "file:///data/a%23b%3F.nc"),
        ("/data/ü.nc", "file:///data/%C3%BC.nc"),
        ("/data/x/../a.nc", "file:///data/a.nc"),
        ("file:///data/a%20b.nc", "file:///data/a%20b.nc"),  # already a URI: unchanged
        ("s3://bucket/a b.nc", "s3://bucket/a b.nc"),
        ("https://host/a.nc?x=1", "https://host/a.nc?x=1"),
    ],
)
def test_to_uri(path: str, uri: str) -> None:
    assert to_uri(path) == uri


@pytest.mark.parametrize("name", ["a.nc", "a b.nc", "a%20b.nc", "a#b.nc", "ü.nc"])
def test_to_uri_round_trips_through_local_path(name: str) -> None:
    path = f"/data/dir {name}/{name}"
    assert local_path(to_uri(path)) == path


def test_to_uri_of_a_relative_path_is_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert to_uri("sub/a.nc") == (tmp_path.resolve() / "sub" / "a.nc").as_uri()
    assert to_uri(Path("a.nc")) == (tmp_path.resolve() / "a.nc").as_uri()


def test_to_uri_expands_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert to_uri("~/data/a b.nc") == (tmp_path.resolve() / "data" / "a b.nc").as_uri()


# ---------------------------------------------------------------------- joining
@pytest.mark.parametrize(
    ("base", "name", "joined"),
    [
        ("s3://b/d", "x", "s3://b/d/x"),
        ("s3://b/d/", "x", "s3://b/d/x"),
        ("s3://b/d/", "/x/y", "s3://b/d/x/y"),
        ("file:///d", "a/zarr.json", "file:///d/a/zarr.json"),
    ],
)
def test_join_uri(base: str, name: str, joined: str) -> None:
    assert join_uri(base, name) == joined


# ---------------------------------------------------------------------- relative paths
@pytest.mark.parametrize(
    ("uri", "reference", "relative"),
    [
        ("file:///d/a.nc", "file:///d/refs.json", "a.nc"),
        ("file:///d/raw/a.nc", "file:///d/refs.json", "raw/a.nc"),
        ("file:///d/a.nc", "file:///d/sub/refs.json", "../a.nc"),
        ("file:///x/a.nc", "file:///d/sub/refs.json", "../../x/a.nc"),
        ("file:///d/a%20b.nc", "file:///d/refs.json", "a%20b.nc"),
        ("file:///d/raw/a.nc", "file:///d/store.zarr/", "raw/a.nc"),  # a store directory
        ("s3://b/data/raw/a.nc", "s3://b/data/refs.json", "raw/a.nc"),
        ("https://h:8/d/a.nc", "https://h:8/d/e/refs.json", "../a.nc"),
    ],
)
def test_relative_to(uri: str, reference: str, relative: str) -> None:
    assert relative_to(uri, reference) == relative
    assert resolve_relative(relative, reference) == uri


@pytest.mark.parametrize(
    ("uri", "reference"),
    [
        ("s3://other/a.nc", "s3://b/refs.json"),  # another bucket
        ("s3://b/a.nc", "gs://b/refs.json"),  # another protocol
        ("s3://b/a.nc", "file:///b/refs.json"),
        ("file:///d/a.nc", "s3://b/d/refs.json"),
        ("https://h:1/d/a.nc", "https://h:2/d/refs.json"),  # another port
        ("https://h/d/a.nc", "http://h/d/refs.json"),
        ("/d/a.nc", "/d/refs.json"),  # not URIs: nothing to relate
    ],
)
def test_relative_to_keeps_other_hosts_absolute(uri: str, reference: str) -> None:
    assert relative_to(uri, reference) == uri
    assert resolve_relative(relative_to(uri, reference), reference) == uri


@pytest.mark.parametrize(
    ("path", "reference", "resolved"),
    [
        ("a.nc", "file:///d/refs.json", "file:///d/a.nc"),
        ("./a.nc", "file:///d/refs.json", "file:///d/a.nc"),
        ("../a.nc", "file:///x/y/refs.json", "file:///x/a.nc"),
        ("../../a.nc", "file:///x/y/refs.json", "file:///a.nc"),
        ("raw/../raw/./a.nc", "s3://b/d/refs.json", "s3://b/d/raw/a.nc"),
        ("a.nc", "file:///refs.json", "file:///a.nc"),
        ("a.nc", "s3://b/refs.json", "s3://b/a.nc"),
        ("a.nc", "http://127.0.0.1:8/d/refs.json", "http://127.0.0.1:8/d/a.nc"),
        ("a.nc", "https://h/d/refs.json?sig=1#frag", "https://h/d/a.nc"),  # no query kept
        ("a.nc", "file:///d/store.zarr/", "file:///d/a.nc"),
    ],
)
def test_resolve_relative(path: str, reference: str, resolved: str) -> None:
    assert resolve_relative(path, reference) == resolved


@pytest.mark.parametrize(
    "path", ["s3://c/a.nc", "file:///x/a.nc", "/abs/a.nc", "https://h/a.nc", "memory://m/a"]
)
def test_resolve_relative_leaves_absolute_paths(path: str) -> None:
    assert resolve_relative(path, "file:///d/refs.json") == path


# ---------------------------------------------------------------------- round trips
# Object keys as URLs hold them unescaped: any character but the separator and control
# characters (which urllib strips). Sources may hold ':#?;' too (a key with '#', '?' or ';'
# stays absolute; one starting 'x:' is anchored with './'); reference locations may not.
def _segments(exclude: str) -> st.SearchStrategy[str]:
    return st.text(
        alphabet=st.characters(
            codec="utf-8", exclude_categories=["Cc"], exclude_characters="/" + exclude
        ),
        min_size=1,
        max_size=8,
    ).filter(lambda s: s not in (".", ".."))


_SEGMENT = _segments(":#?;")
_SEGMENTS = st.lists(_segments(""), min_size=1, max_size=4)
_ROOTS = st.sampled_from(["file://", "s3://bucket", "gs://b", "https://host:8080", "memory://m"])


@settings(max_examples=300, deadline=None)
@given(root=_ROOTS, source=_SEGMENTS, ref_dir=st.lists(_SEGMENT, max_size=3), name=_SEGMENT)
def test_relative_round_trip(root: str, source: list[str], ref_dir: list[str], name: str) -> None:
    uri = root + "/" + "/".join(source)
    reference = root + "/" + "/".join([*ref_dir, name])
    rel = relative_to(uri, reference)
    assert rel == uri or is_relative(rel)
    assert resolve_relative(rel, reference) == uri


_LOCAL_NAME = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="/\0"), min_size=1, max_size=8
).filter(lambda s: s not in (".", ".."))


@settings(max_examples=200, deadline=None)
@given(
    source=st.lists(_LOCAL_NAME, min_size=1, max_size=4), ref_dir=st.lists(_LOCAL_NAME, max_size=3)
)
def test_relative_round_trip_of_local_paths(source: list[str], ref_dir: list[str]) -> None:
    """Any local file name (percent-encoded by to_uri) survives the round trip."""
    uri = to_uri("/" + "/".join(source))
    reference = to_uri("/" + "/".join([*ref_dir, "refs.json"]))
    rel = relative_to(uri, reference)
    assert is_relative(rel)
    assert resolve_relative(rel, reference) == uri


def test_relative_round_trip_of_a_key_with_a_colon() -> None:
    uri, reference = "s3://bucket/d/run1:out.nc", "s3://bucket/d/refs.json"
    assert resolve_relative(relative_to(uri, reference), reference) == uri


@pytest.mark.parametrize(
    "uri",
    [
        "s3://bucket/d/a#1.nc",
        "s3://bucket/d/a?b.nc",
        "https://h/d/a;v=1.nc",
        "https://h/d/a.nc?token=x",
    ],
)
def test_relative_round_trip_keeps_fragment_and_query(uri: str) -> None:
    reference = uri.split("/d/")[0] + "/d/refs.json"
    assert resolve_relative(relative_to(uri, reference), reference) == uri


@pytest.mark.parametrize("root", ["memory://", "hdfs://"])
def test_resolve_relative_keeps_an_empty_authority(root: str) -> None:
    """fsspec itself writes memory URLs this way (``Location.glob``: ``memory:///d/a.nc``)."""
    assert resolve_relative("a.nc", f"{root}/d/refs.json") == f"{root}/d/a.nc"
