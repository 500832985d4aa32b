"""Binary manifests of a manifest store: the path table now, the columns on first use.

An array with a ``"chunk-manifest-binary"`` storage transformer (see
:mod:`virtualizarr.formats.manifest_store`) keeps its references as a JSON path table and
one file of raw columns. Opening the store reads the configuration and the path table --
all that the source policy and the identity checks look at -- and checks that the
columns file has the size the chunk grid implies (where a listing tells sizes). The
columns are read the first time a chunk of the array is looked up, through the loader
that :func:`lazy_manifest` gives ``ChunkManifest.lazy``: one bounded GET of exactly the
expected size, checked against the CRC-32 and the number of references recorded in
``zarr.json`` -- so a store rewritten after it was opened is refused, not misread.
"""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from virtualizarr.errors import InvalidReferencesError
from virtualizarr.formats.manifest_store import (
    BINARY_TRANSFORMER,
    COLUMNS,
    PATH_ID_TYPES,
    PATHS,
    columns_size,
    crc32,
    decode_columns,
)
from virtualizarr.io.objects import Location
from virtualizarr.manifests import ChunkManifest
from virtualizarr.readers.zarr_manifest.files import StoreFiles
from virtualizarr.security import check_document_size

__all__ = [
    "BinaryManifest",
    "check_columns_size",
    "check_path_table",
    "lazy_manifest",
    "parse_binary_config",
]


@dataclass(frozen=True, slots=True)
class BinaryManifest:
    """An array's binary manifest, as its ``zarr.json`` describes it.

    Attributes
    ----------
    paths_key, columns_key : str
        Store keys (relative to the group) of the path table and the columns file.
    path_id_type : str
        ``"int8"``, ``"int16"`` or ``"int32"``.
    references : int
        Cells holding a reference.
    crc32 : int
        CRC-32 of the columns file.
    """

    paths_key: str
    columns_key: str
    path_id_type: str
    references: int
    crc32: int


def _key(adir: str, name: str, rel: Any, what: str, default: str) -> str:
    """A store key inside the array's directory's store, from a relative location."""
    rel = default if rel is None else rel
    if not isinstance(rel, str):
        raise InvalidReferencesError(
            f"{adir}/zarr.json: the {what} location must be a relative path string; "
            f"found {rel!r:.80}."
        )
    key = posixpath.normpath(f"{name}/{rel}")
    if rel.startswith("/") or "://" in rel or key == ".." or key.startswith("../"):
        raise InvalidReferencesError(
            f"{adir}/zarr.json: the {what} location must be a path inside the store, "
            f"relative to the array (like './{default}'); found {rel!r:.80}."
        )
    return key


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_binary_config(adir: str, name: str, conf: Mapping[str, Any]) -> BinaryManifest:
    """Check the configuration of a ``"chunk-manifest-binary"`` transformer.

    Parameters
    ----------
    adir : str
        The array's directory, for messages.
    name : str
        The array's key prefix in the store.
    conf : mapping
        The transformer's configuration.

    Returns
    -------
    BinaryManifest

    Raises
    ------
    InvalidReferencesError
        If a field is missing or malformed.
    """
    kind = conf.get("path_id_type")
    references, crc = conf.get("references"), conf.get("crc32")
    if (
        kind not in PATH_ID_TYPES
        or not isinstance(references, int)
        or not isinstance(crc, int)
        or not _count(references)
        or not _count(crc)
    ):
        raise InvalidReferencesError(
            f"{adir}/zarr.json: the {BINARY_TRANSFORMER!r} configuration needs "
            f"'path_id_type' (one of {sorted(PATH_ID_TYPES)}), 'references' and 'crc32' "
            f"(integers >= 0); found {dict(conf)!r:.200}. Rewrite the store with "
            "ds.virtualize.to_zarr."
        )
    return BinaryManifest(
        _key(adir, name, conf.get("paths"), "path table", PATHS),
        _key(adir, name, conf.get("columns"), "manifest columns", COLUMNS),
        str(kind),
        int(references),
        int(crc),
    )


def check_path_table(where: str, table: Any) -> list[str]:
    """The path table, checked to be a JSON list of strings.

    Raises
    ------
    InvalidReferencesError
    """
    if not isinstance(table, list) or not all(isinstance(p, str) for p in table):
        raise InvalidReferencesError(
            f"{where}: a path table is a JSON list of path strings; found {table!r:.120}."
        )
    return table


def check_columns_size(files: StoreFiles, cfg: BinaryManifest, grid: tuple[int, ...]) -> int:
    """The columns file's expected size, checked against the limits and, where the store
    is listed, against the file's size (before anything is read).

    Raises
    ------
    InvalidReferencesError
        If the references cannot fit the grid, or a listed store lacks the file or has it
        with another size.
    UntrustedReferenceError
        If the file would exceed ``limits.max_document_bytes``.
    """
    cells = int(np.prod(grid, dtype=np.int64))
    if cfg.references > cells:
        raise InvalidReferencesError(
            f"{files.label(cfg.columns_key)}: {cfg.references} references recorded for a "
            f"chunk grid of {cells} cells. The store is damaged; rewrite it."
        )
    expected = columns_size(cells, cfg.path_id_type)
    check_document_size(files.label(cfg.columns_key), expected, files.limits)
    listed = files.size(cfg.columns_key)
    if listed is None and files.listable:
        raise InvalidReferencesError(
            f"{files.label(cfg.columns_key)} is missing from the manifest store; expected the "
            "array's manifest columns there (its zarr.json names them). Rewrite the store."
        )
    if listed is not None and listed != expected:
        raise InvalidReferencesError(
            f"{files.label(cfg.columns_key)} is {listed} bytes; a chunk grid of {grid} with "
            f"{cfg.path_id_type} path ids needs {expected}. The store is damaged or being "
            "rewritten: open it again, or rewrite it."
        )
    return expected


def _columns_loader(
    directory: Location,
    key: str,
    label: str,
    cfg: BinaryManifest,
    grid: tuple[int, ...],
    size: int,
    inline_cells: npt.NDArray[np.int64],
) -> Any:
    def load() -> tuple[Any, Any, Any]:
        damaged = "The store is damaged, or was rewritten since it was opened: open it again."
        try:
            data = directory.get_bounded(key, size)
        except OSError as e:  # removed, refused, unreachable (after retries)
            raise InvalidReferencesError(
                f"{label} could not be read ({type(e).__name__}: {e}). The manifest store "
                "may have been moved, removed or rewritten since it was opened: open it again."
            ) from None
        if len(data) != size or crc32(data) != cfg.crc32:
            raise InvalidReferencesError(
                f"{label}: expected {size} bytes with the CRC-32 {cfg.crc32} recorded in the "
                f"array's zarr.json; found {len(data)} bytes with CRC-32 {crc32(data)}. " + damaged
            )
        ids, offs, lens = decode_columns(data, grid, cfg.path_id_type)
        found = int(np.count_nonzero(ids >= 0))
        if found != cfg.references:
            raise InvalidReferencesError(
                f"{label} holds {found} references; zarr.json records {cfg.references}. " + damaged
            )
        if len(inline_cells):
            where = tuple(inline_cells.T) if grid else ()
            if (ids[where] >= 0).any():
                raise InvalidReferencesError(
                    f"{label}: a chunk has both a manifest reference and a chunk file in the "
                    "store; expected one or the other. The store is damaged; rewrite it."
                )
            ids = ids.astype(np.int32)  # a writable copy, wide enough for inline ids
            if grid:
                ids[where] = -2 - np.arange(len(inline_cells), dtype=np.int32)
            else:  # a scalar's one chunk
                ids[()] = -2
        return ids, offs, lens

    return load


def lazy_manifest(
    files: StoreFiles,
    cfg: BinaryManifest,
    paths: Sequence[str],
    grid: tuple[int, ...],
    inline_cells: Sequence[tuple[int, ...]],
    inline: Sequence[bytes],
) -> ChunkManifest:
    """The array's manifest, its columns read from the store on first use.

    Parameters
    ----------
    files : StoreFiles
        The store (its directory and limits).
    cfg : BinaryManifest
    paths : sequence of str
        The path table, resolved to absolute URIs.
    grid : tuple of int
        The chunk grid's shape.
    inline_cells : sequence of tuple of int
        Grid coordinates of the array's chunk files (inline chunks), in the order of
        ``inline``.
    inline : sequence of bytes
        Their bytes.

    Returns
    -------
    ChunkManifest
        Lazy: nothing of the columns is read until a chunk is looked up.

    Raises
    ------
    InvalidReferencesError
        If the columns file cannot have the right size (see :func:`check_columns_size`).
    """
    size = check_columns_size(files, cfg, grid)
    cells = np.array(inline_cells, dtype=np.int64).reshape(len(inline_cells), len(grid))
    loader = _columns_loader(
        files.dir,
        files.prefix + cfg.columns_key,
        files.label(cfg.columns_key),
        cfg,
        grid,
        size,
        cells,
    )
    return ChunkManifest.lazy(
        paths, grid, loader, inline=inline, present=cfg.references + len(inline)
    )
