"""One TIFF series' tiles or strips as a chunk grid, a manifest and a codec chain (pure).

A TIFF page stores its image as tiles (every tile full-size, edge tiles padded) or as
strips of ``RowsPerStrip`` rows (the last strip holding what is left). Samples are
interleaved (``PlanarConfiguration`` 1: chunks ``(rows, columns, samples)``) or stored as
separate planes (2: chunks ``(1, rows, columns)``, all of plane 0 first). A series is one
page or a stack of same-shaped pages, each page a run of chunks along the leading axes.

Chunk shapes follow the file:

* tiles: ``(tile_length, tile_width)`` (plus the samples);
* strips: ``(rows_per_strip, width)``; when the last strip is short, an uncompressed
  image is cut into runs of ``gcd(rows_per_strip, length)`` rows (regular, each a byte
  range of its strip) and a compressed one gets a rectilinear grid along the rows (its
  last chunk is the short strip; Zarr's rectilinear grids are experimental, see
  ``docs/usage.md``).

Codecs (encoding order): the predictor (``imagecodecs_delta`` / ``imagecodecs_floatpred``
with the chunk's shape and stored dtype), then the compression.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from virtualizarr.errors import FileFormatError, UnsupportedFeatureError
from virtualizarr.manifests import MISSING, ChunkManifest
from virtualizarr.manifests.metadata import AxisChunks

__all__ = ["COMPRESSIONS", "ImageCodecs", "PageInfo", "SeriesLayout", "series_layout"]

# TIFF compression tag values to codecs; None means stored uncompressed.
COMPRESSIONS: Final[dict[int, str | None]] = {
    1: None,
    5: "imagecodecs_lzw",
    7: "imagecodecs_jpeg",
    8: "zlib",
    32946: "zlib",
    50013: "zlib",
    32773: "imagecodecs_packbits",
    34925: "lzma",
    50000: "zstd",
    50001: "imagecodecs_webp",
    33003: "imagecodecs_jpeg2k",
    33004: "imagecodecs_jpeg2k",
    33005: "imagecodecs_jpeg2k",
    34712: "imagecodecs_jpeg2k",
    50002: "imagecodecs_jpegxl",
    52546: "imagecodecs_jpegxl",
    34933: "imagecodecs_png",
}
IMAGE_CODECS: Final = frozenset(
    {
        "imagecodecs_jpeg",
        "imagecodecs_webp",
        "imagecodecs_jpeg2k",
        "imagecodecs_jpegxl",
        "imagecodecs_png",
    }
)
"""Codecs that decode to a native-endian image array whatever the file's byte order."""

PREDICTORS: Final = {2: ("imagecodecs_delta", 1), 3: ("imagecodecs_floatpred", 1)}


@dataclass(frozen=True, slots=True)
class ImageCodecs:
    """How a page's chunks are encoded (from its tags)."""

    compression: int
    predictor: int = 1
    jpeg_tables: bytes | None = None
    jpeg_header: bytes | None = None
    jpeg_colorspace: tuple[Any, Any] = (None, None)


@dataclass(frozen=True, slots=True)
class PageInfo:
    """What the layout needs of a series' key page (tifffile's ``keyframe``).

    Attributes
    ----------
    dtype : numpy.dtype
        The samples' dtype in the file's byte order.
    separate, length, width, contig : int
        The page's ``shaped`` sizes: separate sample planes, rows, columns, interleaved
        samples.
    tiled : bool
    tile : tuple of int
        ``(tile_length, tile_width)``, or ``(rows_per_strip, width)`` for strips.
    codecs : ImageCodecs
    fill_value : scalar
        What a missing (empty) tile reads as.
    """

    dtype: np.dtype[Any]
    separate: int
    length: int
    width: int
    contig: int
    tiled: bool
    tile: tuple[int, int]
    codecs: ImageCodecs
    fill_value: Any = 0


@dataclass(frozen=True, slots=True)
class SeriesLayout:
    """A series as one virtual array: its shape, chunks, codecs and manifest."""

    shape: tuple[int, ...]
    chunks: tuple[AxisChunks, ...]
    codecs: tuple[dict[str, Any], ...]
    stored_dtype: np.dtype[Any]
    manifest: ChunkManifest


def _page_dims(info: PageInfo) -> tuple[list[int], list[int]]:
    """The page's array shape (size-1 sample axes dropped) and the axes kept (of 4)."""
    full = [info.separate, info.length, info.width, info.contig]
    keep = [i for i, n in enumerate(full) if i in (1, 2) or n > 1]
    return [full[i] for i in keep], keep


def _codec_chain(
    info: PageInfo, chunk: Sequence[int], rows_vary: bool
) -> tuple[tuple[dict[str, Any], ...], np.dtype[Any]]:
    """Codec configurations (encoding order) and the dtype the decoded bytes have."""
    c = info.codecs
    if c.compression not in COMPRESSIONS:
        raise UnsupportedFeatureError(
            f"TIFF compression {c.compression} has no maintained codec that virtualizarr "
            f"maps (supported: {sorted(COMPRESSIONS)}); this image cannot be virtualized."
        )
    name = COMPRESSIONS[c.compression]
    stored = info.dtype
    codecs: list[dict[str, Any]] = []
    if c.predictor in PREDICTORS:
        if name in IMAGE_CODECS:
            raise UnsupportedFeatureError(
                f"a TIFF predictor ({c.predictor}) together with compression "
                f"{c.compression} is not supported."
            )
        pid, dist = PREDICTORS[c.predictor]
        shape = [int(n) for n in chunk]
        if rows_vary:
            shape[-3 if info.contig > 1 else -2] = -1
        codecs.append(
            {
                "name": f"numcodecs.{pid}",
                "configuration": {
                    "shape": shape,
                    "dtype": stored.str,
                    "axis": -2 if info.contig > 1 else -1,
                    "dist": dist,
                },
            }
        )
    elif c.predictor != 1:
        raise UnsupportedFeatureError(
            f"TIFF predictor {c.predictor} is not supported (only 1, 2 and 3 are)."
        )
    if name is None:
        return tuple(codecs), stored
    conf: dict[str, Any] = {}
    if name == "imagecodecs_jpeg":
        conf = {
            "tables": None if c.jpeg_tables is None else base64.b64encode(c.jpeg_tables).decode(),
            "header": None if c.jpeg_header is None else base64.b64encode(c.jpeg_header).decode(),
            "bitspersample": info.dtype.itemsize * 8 if info.dtype.itemsize > 1 else 8,
            "colorspace_jpeg": c.jpeg_colorspace[0],
            "colorspace_data": c.jpeg_colorspace[1],
        }
    elif name == "imagecodecs_webp" and info.contig == 4:
        conf = {"hasalpha": True}
    codecs.append({"name": f"numcodecs.{name}", "configuration": conf})
    if name in IMAGE_CODECS:
        stored = stored.newbyteorder("=")
    return tuple(codecs), stored


def _row_split(info: PageInfo) -> tuple[AxisChunks, int]:
    """Chunking of the rows axis, and rows per chunk inside a strip (0: whole strips)."""
    rows = info.tile[0] if info.tiled else min(info.tile[0], info.length)
    if info.tiled or info.length % rows == 0:
        return max(rows, 1), 0
    if info.codecs.compression == 1:
        return math.gcd(rows, info.length), math.gcd(rows, info.length)
    n = math.ceil(info.length / rows)
    return (rows,) * (n - 1) + (info.length - rows * (n - 1),), 0


def series_layout(
    info: PageInfo,
    pages: Sequence[tuple[Sequence[int], Sequence[int]]],
    lead_shape: Sequence[int],
    url: str,
    file_size: int,
    where: str,
) -> SeriesLayout:
    """Lay out a series of same-shaped pages as one virtual array.

    Parameters
    ----------
    info : PageInfo
        The series' key page.
    pages : sequence of (offsets, bytecounts)
        Each page's ``StripOffsets``/``TileOffsets`` and byte counts, in file order.
    lead_shape : sequence of int
        The axes the pages are stacked along (their product is ``len(pages)``; empty for
        one page).
    url : str
        The file, as recorded in the manifest.
    file_size : int
        Its size: every chunk must lie inside it.
    where : str
        The series, for messages.

    Returns
    -------
    SeriesLayout

    Raises
    ------
    FileFormatError
        If the offsets and byte counts disagree with the image's geometry or the file.
    UnsupportedFeatureError
        For compressions and predictors without a mapped codec.
    """
    if min(info.length, info.width, info.tile[0], info.tile[1], info.separate, info.contig) < 1:
        raise FileFormatError(
            f"{where}: an image of {info.length} x {info.width} pixels in chunks of "
            f"{info.tile} is empty or malformed; expected positive sizes."
        )
    if math.prod(lead_shape) != len(pages):
        raise FileFormatError(f"{where}: {len(pages)} pages do not fill the shape {lead_shape}.")
    rows_chunk, sub_rows = _row_split(info)
    cols = info.tile[1] if info.tiled else info.width
    page_shape, keep = _page_dims(info)
    full_chunk: list[AxisChunks] = [1, rows_chunk, max(cols, 1), info.contig]
    chunks: list[AxisChunks] = [*([1] * len(lead_shape)), *(full_chunk[i] for i in keep)]
    decoded_chunk = [c if isinstance(c, int) else max(c) for c in (full_chunk[i] for i in keep)]
    codecs, stored = _codec_chain(info, decoded_chunk, not isinstance(rows_chunk, int))
    n_rows = math.ceil(info.length / info.tile[0])
    n_cols = math.ceil(info.width / cols) if info.tiled else 1
    per_page = info.separate * n_rows * n_cols
    if sub_rows:
        offsets, lengths = _split_strips(info, pages, per_page, n_rows, sub_rows, where)
        grid_rows = info.length // sub_rows
    else:
        offsets, lengths = _chunk_ranges(info, pages, per_page, where)
        grid_rows = n_rows
    grid4 = [info.separate, grid_rows, n_cols, 1]
    grid = (*lead_shape, *(grid4[i] for i in keep))
    shape = (*lead_shape, *page_shape)
    offsets = offsets.reshape(grid)
    lengths = lengths.reshape(grid)
    ends = offsets + lengths
    empty = lengths == 0
    if np.any(~empty & (ends > np.uint64(file_size))):
        raise FileFormatError(
            f"{where}: a tile or strip ends past the end of the file ({file_size} bytes); the "
            "file is truncated or its offsets are corrupt."
        )
    ids = np.where(empty, MISSING, 0).astype(np.int32)
    manifest = ChunkManifest([url], ids, np.where(empty, 0, offsets), lengths)
    return SeriesLayout(shape, tuple(chunks), codecs, stored, manifest)


def _as_arrays(
    pages: Sequence[tuple[Sequence[int], Sequence[int]]], per_page: int, where: str
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    for page_offsets, page_counts in pages:
        if len(page_offsets) != per_page or len(page_counts) != per_page:
            raise FileFormatError(
                f"{where}: a page lists {len(page_offsets)} offsets and {len(page_counts)} "
                "byte counts, but "
                f"its geometry needs {per_page} tiles or strips; the file is corrupt."
            )
    if not pages or per_page == 0:
        return np.zeros(0, np.uint64), np.zeros(0, np.uint64)
    offsets = np.concatenate([np.asarray(o, dtype=np.uint64) for o, _ in pages])
    counts = np.concatenate([np.asarray(c, dtype=np.uint64) for _, c in pages])
    return offsets, counts


def _chunk_ranges(
    info: PageInfo,
    pages: Sequence[tuple[Sequence[int], Sequence[int]]],
    per_page: int,
    where: str,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """One chunk per tile or strip; uncompressed ones are read for their exact size."""
    offsets, counts = _as_arrays(pages, per_page, where)
    counts = np.where(offsets == 0, 0, counts).astype(np.uint64)
    if info.codecs.compression != 1:
        return offsets, counts
    rows = info.tile[0] if info.tiled else min(info.tile[0], info.length)
    cols = info.tile[1] if info.tiled else info.width
    need = np.uint64(rows * cols * info.contig * info.dtype.itemsize)
    if np.any((counts != 0) & (counts < need)):
        raise FileFormatError(
            f"{where}: an uncompressed tile or strip holds fewer bytes than its {int(need)}; "
            "the file is corrupt."
        )
    return offsets, np.where(counts == 0, 0, need).astype(np.uint64)


def _split_strips(
    info: PageInfo,
    pages: Sequence[tuple[Sequence[int], Sequence[int]]],
    per_page: int,
    n_strips: int,
    sub_rows: int,
    where: str,
) -> tuple[npt.NDArray[np.uint64], npt.NDArray[np.uint64]]:
    """Uncompressed strips cut into runs of ``sub_rows`` rows (a regular grid)."""
    offsets, counts = _as_arrays(pages, per_page, where)
    rps = min(info.tile[0], info.length)
    row_bytes = info.width * info.contig * info.dtype.itemsize
    strip_rows = np.minimum(rps, info.length - rps * np.arange(n_strips))
    strip_rows = np.tile(strip_rows, len(pages) * info.separate).astype(np.uint64)
    if np.any((offsets != 0) & (counts < strip_rows * np.uint64(row_bytes))):
        raise FileFormatError(
            f"{where}: an uncompressed strip holds fewer bytes than its rows need; the file "
            "is corrupt."
        )
    pieces = (strip_rows // np.uint64(sub_rows)).astype(np.int64)
    starts = np.repeat(offsets, pieces)
    first = np.repeat(np.cumsum(pieces) - pieces, pieces)
    k = (np.arange(int(pieces.sum()), dtype=np.int64) - first).astype(np.uint64)
    length = np.uint64(sub_rows * row_bytes)
    missing = starts == 0
    offs = np.where(missing, 0, starts + k * length).astype(np.uint64)
    return offs, np.where(missing, 0, length).astype(np.uint64)
