"""Write virtual datasets as Zarr v3 *manifest stores* (zarr-specs proposal #287).

Layout of a store written by ``ds.virtualize.to_zarr("out.zarr")``::

    out.zarr/zarr.json            group: attributes, plus the "virtualizarr" extension
    out.zarr/<var>/zarr.json      array metadata (Zarr v3) with a storage transformer
    out.zarr/<var>/manifest.json  {"c/0/1": {"path": ..., "offset": ..., "length": ...}}
    out.zarr/<var>/c/0/0          real chunk files: inline chunks and loaded variables

* A virtual array's ``zarr.json`` carries ``"storage_transformers": [{"name":
  "chunk-manifest-json", "configuration": {"manifest": "./manifest.json"}}]``. The manifest
  maps chunk keys (the array's ``chunk_key_encoding``, e.g. ``"c/0/1"``) to byte ranges of
  source files (absolute URIs). A chunk key absent from the manifest is read from the store
  itself (a chunk file) if one exists, and is otherwise missing: it reads as
  ``fill_value``, the array metadata's own fill value (xarray does not mask with a Zarr
  v3 fill value; ``_FillValue`` travels as an attribute).
* Loaded (non-virtual) variables are CF-encoded as xarray would write them and stored as
  ordinary Zarr arrays: one uncompressed chunk, no storage transformer.
* Every node's ``zarr.json`` has an extension field ``"virtualizarr": {"must_understand":
  false, "attribute_dtypes": {...}}`` recording the NumPy dtypes of attributes (see
  :mod:`virtualizarr.attrtypes`); the group's also lists ``"arrays"`` in dataset order.

Stores are written into a temporary directory beside the target and renamed into place,
so a failure never leaves a half-written store.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import warnings
from collections.abc import Hashable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numcodecs
import numpy as np
import xarray as xr
from zarr.core.metadata.v3 import ArrayV3Metadata

from virtualizarr.attrtypes import attribute_dtypes, attrs_to_json
from virtualizarr.errors import InvalidArgumentError, OutputExistsError, UnsupportedFeatureError
from virtualizarr.identity import dataset_sources
from virtualizarr.io import local_path
from virtualizarr.manifests.array import ManifestArray
from virtualizarr.manifests.metadata import make_array_metadata

__all__ = ["MANIFEST_TRANSFORMER", "atomic_directory", "dataset_to_manifest_store"]

MANIFEST_TRANSFORMER = "chunk-manifest-json"
"""Name of the storage transformer that points an array at its ``manifest.json``."""


def _dumps(doc: Any) -> bytes:
    return json.dumps(doc, indent=2, allow_nan=False, default=_default).encode()


def _default(obj: Any) -> Any:
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"cannot encode {type(obj).__name__} as JSON")


@contextmanager
def atomic_directory(path: str | os.PathLike[str], mode: str = "w-") -> Iterator[Path]:
    """Build a directory in a temporary sibling and rename it to ``path`` on success.

    Parameters
    ----------
    path : str or path-like
        The directory to create.
    mode : {"w-", "w"}
        ``"w-"`` refuses an existing ``path``; ``"w"`` replaces it.

    Yields
    ------
    pathlib.Path
        The temporary directory to fill.

    Raises
    ------
    OutputExistsError
        If ``path`` exists and ``mode="w-"``.
    """
    if mode not in ("w", "w-"):
        raise InvalidArgumentError(
            f"mode must be 'w-' (refuse to overwrite) or 'w' (replace); found {mode!r}."
        )
    dest = Path(local_path(os.fspath(path))).expanduser().absolute()
    if mode == "w-" and dest.exists():
        raise OutputExistsError(f"{dest} already exists; pass mode='w' to replace it.")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".tmp", dir=dest.parent))
    try:
        yield tmp
        if mode == "w-":
            try:
                os.rename(tmp, dest)
            except OSError:
                if dest.exists():
                    raise OutputExistsError(
                        f"{dest} appeared while writing; pass mode='w' to replace it."
                    ) from None
                raise
        else:
            old = None
            if dest.exists() or dest.is_symlink():
                old = Path(
                    tempfile.mkdtemp(prefix=f".{dest.name}.", suffix=".old", dir=dest.parent)
                )
                os.rename(dest, old / "x")
            try:
                os.rename(tmp, dest)
            except BaseException:
                if old is not None:  # put the previous output back before reporting
                    os.rename(old / "x", dest)
                    old.rmdir()
                raise
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _ext(attrs: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"must_understand": False, **extra, "attribute_dtypes": attribute_dtypes(attrs)}


def _chunk_path(meta: ArrayV3Metadata, coords: tuple[int, ...]) -> str:
    return meta.chunk_key_encoding.encode_chunk_key(coords)


def _write_file(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _virtual_array(adir: Path, var: xr.Variable, arr: ManifestArray) -> None:
    meta = arr.metadata
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # fixed-length bytes: "not in the v3 spec"
        doc = meta.to_dict()
    attrs = dict(var.attrs)
    doc["attributes"] = attrs_to_json(attrs)
    doc["dimension_names"] = [str(d) for d in var.dims]
    doc["storage_transformers"] = [
        {"name": MANIFEST_TRANSFORMER, "configuration": {"manifest": "./manifest.json"}}
    ]
    doc["virtualizarr"] = _ext(attrs)
    m = arr.manifest
    ids, offsets, lengths = m.path_ids, m.offsets, m.lengths
    if ids.ndim == 0:  # a scalar's one chunk: np.nonzero refuses 0-d arrays
        ids, offsets, lengths = ids.reshape(1), offsets.reshape(1), lengths.reshape(1)
    entries: dict[str, dict[str, Any]] = {}
    present = np.nonzero(ids >= 0)
    if present[0].size:
        coords = list(zip(*(c.tolist() for c in present), strict=True)) if arr.ndim else [()]
        paths = np.asarray(m.paths, dtype=object)[ids[present]].tolist()
        offs = offsets[present].tolist()
        lens = lengths[present].tolist()
        for c, p, o, n in zip(coords, paths, offs, lens, strict=True):
            entries[_chunk_path(meta, tuple(c))] = {"path": p, "offset": o, "length": n}
    inline = np.nonzero(ids < -1)
    if inline[0].size:
        coords = list(zip(*(c.tolist() for c in inline), strict=True)) if arr.ndim else [()]
        for c, pid in zip(coords, ids[inline].tolist(), strict=True):
            _write_file(adir / _chunk_path(meta, tuple(c)), m.inline[-2 - pid])
    _write_file(adir / "zarr.json", _dumps(doc))
    _write_file(adir / "manifest.json", _dumps(entries))


def _loaded_array(adir: Path, name: str, var: xr.Variable) -> None:
    encoded = xr.conventions.encode_cf_variable(var, name=name)
    values = np.asarray(encoded.values)
    attrs = dict(encoded.attrs)
    if values.dtype.kind in "UT":
        values = values.astype(object)
    dtype = values.dtype
    if dtype.kind == "O":
        fill: Any = ""
    elif dtype.kind in "SV":
        fill = b""
    else:
        dtype = dtype.newbyteorder("<") if dtype.itemsize > 1 else dtype
        fill = np.zeros((), dtype)[()]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        meta = make_array_metadata(
            shape=values.shape,
            dtype=dtype,
            chunks=[max(int(s), 1) for s in values.shape],
            fill_value=fill,
            dimension_names=[str(d) for d in encoded.dims],
        )
        doc = meta.to_dict()
    doc["attributes"] = attrs_to_json(attrs)
    doc["virtualizarr"] = _ext(attrs)
    _write_file(adir / "zarr.json", _dumps(doc))
    if values.size:
        if dtype.kind == "O":
            data = bytes(numcodecs.VLenUTF8().encode(values.ravel()))
        else:
            data = np.ascontiguousarray(values.astype(dtype)).tobytes()
        _write_file(adir / _chunk_path(meta, (0,) * values.ndim), data)


def _var_name(name: Hashable) -> str:
    s = str(name)
    if not s or "/" in s or s.startswith(".") or s == "zarr.json":
        raise UnsupportedFeatureError(
            f"variable name {s!r} cannot be a Zarr array name; rename it before writing."
        )
    return s


def write_manifest_group(root: Path, ds: xr.Dataset) -> None:
    """Write the group of a virtual dataset into the (existing, empty) directory ``root``.

    Parameters
    ----------
    root : pathlib.Path
    ds : xarray.Dataset
    """
    variables, attrs = xr.conventions.encode_dataset_coordinates(ds)
    names = []
    for name, var in variables.items():
        key = _var_name(name)
        names.append(key)
        adir = root / key
        if isinstance(var.data, ManifestArray):
            _virtual_array(adir, var, var.data)
        else:
            _loaded_array(adir, key, var)
    gdoc = {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": attrs_to_json(attrs),
        "virtualizarr": _ext(dict(attrs), arrays=names),
    }
    sources = dataset_sources(ds)  # identities of the sources, to detect stale references
    if sources:
        gdoc["virtualizarr"] = _ext(dict(attrs), arrays=names, sources=sources)
    _write_file(root / "zarr.json", _dumps(gdoc))


def dataset_to_manifest_store(
    ds: xr.Dataset, store: str | os.PathLike[str], *, mode: str = "w-"
) -> None:
    """Write a virtual dataset as a Zarr v3 manifest store on local disk.

    Parameters
    ----------
    ds : xarray.Dataset
        A virtual dataset (variables backed by ``ManifestArray`` or NumPy).
    store : str or path-like
        The store's directory.
    mode : {"w-", "w"}
        ``"w-"`` (default) refuses an existing store; ``"w"`` replaces it.

    Raises
    ------
    OutputExistsError
        If the store exists and ``mode="w-"``.
    UnsupportedFeatureError
        If a variable name cannot be a Zarr array name.

    Examples
    --------
    >>> dataset_to_manifest_store(vds, "virtual.zarr")  # doctest: +SKIP
    """
    with atomic_directory(store, mode) as tmp:
        write_manifest_group(tmp, ds)
