"""A whole local Icechunk repository from a virtual dataset (``virtualizarr refs -o x.icechunk``).

:func:`write_icechunk_repository` makes the repository the command line writes: one
virtual chunk container per source prefix (the common directory of local sources, one per
S3 bucket, configured from the fsspec storage options the sources were read with), the
dataset written with :func:`~virtualizarr.writers.icechunk.dataset_to_icechunk` and
committed. The repository is built in a temporary sibling directory and renamed into place
(:func:`~virtualizarr.io.write.atomic_directory`), so a failure leaves no repository, or
the previous one, behind. :func:`open_snippet` is the Python that opens it again.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import xarray as xr

from virtualizarr.errors import InvalidArgumentError, UnsupportedFeatureError
from virtualizarr.io.uri import is_local, local_path
from virtualizarr.io.write import atomic_directory
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.writers.icechunk import (
    common_directory,
    dataset_to_icechunk,
    icechunk_url,
    import_icechunk,
)

__all__ = [
    "Container",
    "open_snippet",
    "quiet_icechunk_logs",
    "source_containers",
    "write_icechunk_repository",
]


@dataclass(frozen=True, slots=True)
class Container:
    """A virtual chunk container the repository needs.

    Attributes
    ----------
    prefix : str
        Its URL prefix (``file:///data/``, ``s3://bucket/``).
    kind : {"local", "s3"}
    path : str
        For ``"local"``: the directory (ending in ``/``).
    s3 : dict
        For ``"s3"``: keyword arguments of ``icechunk.s3_store``.
    anonymous : bool
        For ``"s3"``: readers need no credentials.
    """

    prefix: str
    kind: str
    path: str = ""
    s3: Mapping[str, Any] | None = None
    anonymous: bool = False


def _s3_config(storage_options: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
    """``icechunk.s3_store`` keywords from fsspec (s3fs) storage options."""
    client = storage_options.get("client_kwargs") or {}
    endpoint = storage_options.get("endpoint_url") or client.get("endpoint_url")
    region = (
        client.get("region_name")
        or storage_options.get("region_name")
        or storage_options.get("region")
    )
    anonymous = bool(storage_options.get("anon", False))
    kwargs: dict[str, Any] = {}
    if region:
        kwargs["region"] = str(region)
    if endpoint:  # an S3-compatible server (MinIO, moto, Ceph...): path-style requests
        kwargs.update(
            endpoint_url=str(endpoint),
            allow_http=str(endpoint).startswith("http://"),
            s3_compatible=True,
            force_path_style=True,
        )
    if anonymous:
        kwargs["anonymous"] = True
    return kwargs, anonymous


def source_containers(
    urls: Sequence[str], storage_options: Mapping[str, Any] | None = None
) -> list[Container]:
    """The virtual chunk containers that hold ``urls``.

    Local sources share one container, their common directory; S3 sources get one per
    bucket, configured from ``storage_options`` (``client_kwargs.endpoint_url``,
    ``client_kwargs.region_name``, ``anon``).

    Parameters
    ----------
    urls : sequence of str
        Chunk URLs as Icechunk receives them (:func:`~virtualizarr.writers.icechunk.icechunk_url`).
    storage_options : mapping, optional
        The fsspec options the sources were read with.

    Returns
    -------
    list of Container

    Raises
    ------
    UnsupportedFeatureError
        For sources that are neither local nor on S3.

    Examples
    --------
    >>> [c.prefix for c in source_containers(["file:///d/a/x.nc", "s3://b/k/y.nc"])]
    ['file:///d/a/', 's3://b/']
    """
    local = [u for u in urls if is_local(u)]
    out = []
    if local:
        common = common_directory(local)
        prefix = icechunk_url(common + "x")[:-1]  # the directory's URL, escaped as chunks'
        out.append(Container(prefix, "local", path=common))
    s3, anonymous = _s3_config(storage_options or {})
    buckets: dict[str, None] = {}
    others: list[str] = []
    for u in urls:
        if is_local(u):
            continue
        parts = urlsplit(u)
        if parts.scheme == "s3":
            buckets[f"{parts.scheme}://{parts.netloc}/"] = None
        else:
            others.append(u)
    if others:
        raise UnsupportedFeatureError(
            f"the command line makes Icechunk containers for local and S3 sources only; "
            f"found {others[0]!r}"
            + (f" and {len(others) - 1} more" if len(others) > 1 else "")
            + ". Write the repository with the Python API instead: create it with a "
            "icechunk.VirtualChunkContainer for that prefix (icechunk.http_store(), "
            "icechunk.gcs_store(), ...) and call ds.virtualize.to_icechunk(session.store) "
            "(docs/usage.md, 'Icechunk')."
        )
    out += [Container(b, "s3", s3=s3, anonymous=anonymous) for b in buckets]
    return out


def _source_urls(ds: xr.Dataset) -> list[str]:
    paths: dict[str, None] = {}
    for var in ds.variables.values():
        if isinstance(var.data, ManifestArray):
            paths.update(dict.fromkeys(var.data.manifest.referenced_paths()))
    return [icechunk_url(p) for p in paths]


def write_icechunk_repository(
    ds: xr.Dataset,
    path: str | os.PathLike[str],
    *,
    mode: str = "w-",
    message: str = "virtualizarr refs",
    storage_options: Mapping[str, Any] | None = None,
) -> list[Container]:
    """Create a local Icechunk repository holding ``ds``, committed on branch ``main``.

    Parameters
    ----------
    ds : xarray.Dataset
        A virtual dataset.
    path : str or path-like
        The repository's directory (local).
    mode : {"w-", "w"}
        ``"w-"`` refuses an existing ``path``; ``"w"`` replaces it.
    message : str
        The commit message.
    storage_options : mapping, optional
        The fsspec options the sources were read with (S3 endpoint, region, ``anon``).

    Returns
    -------
    list of Container
        The repository's virtual chunk containers (what readers must authorize).

    Raises
    ------
    InvalidArgumentError
        If ``path`` is not local.
    OutputExistsError
        If ``path`` exists and ``mode="w-"``.
    UnsupportedFeatureError
        For sources neither local nor on S3.
    MissingDependencyError
        If icechunk is not installed.

    Examples
    --------
    >>> write_icechunk_repository(vds, "daily.icechunk")  # doctest: +SKIP
    """
    target = os.fspath(path)
    if not is_local(target):
        raise InvalidArgumentError(
            f"the command line writes Icechunk repositories on local disk only; found "
            f"{target!r}. For a repository on object storage use the Python API: "
            "icechunk.Repository.create(icechunk.s3_storage(...), config=...), then "
            "ds.virtualize.to_icechunk(session.store) (docs/usage.md, 'Icechunk')."
        )
    ic = import_icechunk()
    containers = source_containers(_source_urls(ds), storage_options)
    config = ic.RepositoryConfig.default()
    for c in containers:
        store = (
            ic.local_filesystem_store(c.path) if c.kind == "local" else ic.s3_store(**(c.s3 or {}))
        )
        config.set_virtual_chunk_container(ic.VirtualChunkContainer(c.prefix, store))
    with atomic_directory(local_path(target), mode=mode) as tmp:
        repo = ic.Repository.create(ic.local_filesystem_storage(str(tmp)), config=config)
        session = repo.writable_session("main")
        dataset_to_icechunk(ds, session.store)
        session.commit(message)
    return containers


def open_snippet(path: str | os.PathLike[str], containers: Sequence[Container]) -> str:
    """Python that opens the repository with icechunk and xarray alone.

    Parameters
    ----------
    path : str or path-like
        The repository's directory.
    containers : sequence of Container
        What :func:`write_icechunk_repository` returned.

    Returns
    -------
    str

    Examples
    --------
    >>> print(open_snippet("/r.icechunk", [Container("file:///d/", "local", path="/d/")]))
    import icechunk
    import xarray as xr
    <BLANKLINE>
    repo = icechunk.Repository.open(
        icechunk.local_filesystem_storage('/r.icechunk'),
        authorize_virtual_chunk_access={
            'file:///d/': icechunk.credentials.LocalFileSystemAccess,
        },
    )
    ds = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)
    """
    lines = []
    for c in containers:
        if c.kind == "local":
            cred = "icechunk.credentials.LocalFileSystemAccess"
        elif c.anonymous:
            cred = "icechunk.s3_credentials(anonymous=True)"
        else:
            cred = "icechunk.s3_credentials(from_env=True)"
        lines.append(f"        {c.prefix!r}: {cred},")
    where = os.path.abspath(local_path(os.fspath(path)))
    return "\n".join(
        [
            "import icechunk",
            "import xarray as xr",
            "",
            "repo = icechunk.Repository.open(",
            f"    icechunk.local_filesystem_storage({where!r}),",
            "    authorize_virtual_chunk_access={",
            *lines,
            "    },",
            ")",
            'ds = xr.open_zarr(repo.readonly_session("main").store, consolidated=False)',
        ]
    )


def quiet_icechunk_logs() -> None:
    """Show only Icechunk's errors on stderr (for the command line), unless the user set
    ``ICECHUNK_LOG``: Icechunk warns about every local repository it opens.

    Raises
    ------
    MissingDependencyError
        If icechunk is not installed.
    """
    if "ICECHUNK_LOG" not in os.environ:
        import_icechunk().set_logs_filter("error")
