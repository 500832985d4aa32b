"""Helpers for the Icechunk round-trip tests: in-memory repositories with virtual chunk
containers for the directories that hold the sources, and the plain read path
(``xr.open_zarr(session.store)``) the results are compared through."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import xarray as xr

from virtualizarr.errors import UnsupportedFeatureError

ic = pytest.importorskip("icechunk", reason="icechunk is an optional dependency (extra 'icechunk')")
ic.set_logs_filter("error")


def memory_repo(*roots: Path) -> Any:
    """An in-memory repository with a virtual chunk container for each directory."""
    cfg = ic.RepositoryConfig.default()
    auth = {}
    for root in roots:
        root = root.resolve()
        prefix = root.as_uri().rstrip("/") + "/"
        cfg.set_virtual_chunk_container(
            ic.VirtualChunkContainer(prefix, ic.local_filesystem_store(f"{root}/"))
        )
        auth[prefix] = ic.credentials.LocalFileSystemAccess
    return ic.Repository.create(
        ic.in_memory_storage(), config=cfg, authorize_virtual_chunk_access=auth
    )


def committed_store(vds: xr.Dataset, *roots: Path, **write: Any) -> Any:
    """``vds`` written with ``to_icechunk`` and committed: a read-only session's store."""
    repo = memory_repo(*roots)
    session = repo.writable_session("main")
    vds.virtualize.to_icechunk(session.store, **write)
    session.commit("test")
    return repo.readonly_session("main").store


def open_store(store: Any, **kwargs: Any) -> xr.Dataset:
    """What plain xarray reads from the store, loaded."""
    with xr.open_zarr(store, consolidated=False, **kwargs) as ds:
        return ds.load()


def through_icechunk(vds: xr.Dataset, *roots: Path, **kwargs: Any) -> xr.Dataset:
    """``vds`` into a new repository and back through ``xr.open_zarr``."""
    return open_store(committed_store(vds, *roots), **kwargs)


def string_fills(vds: xr.Dataset) -> list[str]:
    """Bytes and string variables with a ``_FillValue``: xarray cannot read them from
    Zarr v3, so ``to_icechunk`` refuses them (docs/usage.md, known limitations)."""
    return [
        str(k)
        for k, v in vds.variables.items()
        if "_FillValue" in v.attrs and np.dtype(v.dtype).kind in "SUTO"
    ]


def assert_string_fill_refused(vds: xr.Dataset, *roots: Path) -> None:
    """The refusal names the first such variable and what to do; nothing is written."""
    repo = memory_repo(*roots)
    session = repo.writable_session("main")
    first = string_fills(vds)[0]
    with pytest.raises(UnsupportedFeatureError, match=rf"'{first}'.*xarray cannot read"):
        vds.virtualize.to_icechunk(session.store)
    assert not session.has_uncommitted_changes
