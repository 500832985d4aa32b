"""Reader for TIFF, BigTIFF, GeoTIFF and Cloud-Optimized GeoTIFF files.

tifffile parses the file structure (IFDs, tags, series, pyramid levels); only the IFDs
and tag values are read, never the image data. Each series becomes a variable named
``image`` whose chunks are the file's tiles or strips (:mod:`.layout`):

* the first series is the root group; further series are groups ``series_1``, ...;
* the reduced-resolution levels of a pyramid (COG overviews, SubIFDs) are groups
  ``overview_1``, ``overview_2``, ... of their series;
* dimension names come from tifffile's axes: ``y`` and ``x`` for rows and columns,
  ``band`` for samples, ``time``, ``z``, ``channel``, ``page``..., so ``image`` has the
  shape and values ``tifffile`` gives (``series.asarray(level=...)``);
* a GeoTIFF adds ``y``/``x`` coordinates and its GeoKeys as attributes (:mod:`.geo`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, Final

import numpy as np

from virtualizarr.errors import (
    FileFormatError,
    MissingDependencyError,
    UnexpectedOptionError,
    UnsupportedFeatureError,
    VirtualiZarrError,
)
from virtualizarr.io.files import FileCache
from virtualizarr.io.objects import Location
from virtualizarr.manifests import (
    ManifestArray,
    VirtualGroup,
    VirtualVariable,
    check_dimension_sizes,
    make_array_metadata,
)
from virtualizarr.readers.base import Probe, Source, check_grid_cells, require_location
from virtualizarr.readers.tiff import ALIASES, NAME, detect
from virtualizarr.readers.tiff.geo import geo_attributes, pixel_coordinates
from virtualizarr.readers.tiff.layout import ImageCodecs, PageInfo, series_layout
from virtualizarr.readers.values import inline_variable

__all__ = ["TIFFReader", "read_tiff"]

VARIABLE: Final = "image"
"""The name of each series' image variable."""

AXIS_NAMES: Final = {
    "Y": "y",
    "X": "x",
    "S": "band",
    "Z": "z",
    "T": "time",
    "C": "channel",
    "I": "image_index",
    "Q": "page",
    "E": "wavelength",
    "A": "angle",
    "P": "phase",
    "R": "tile",
    "H": "lifetime",
    "L": "exposure",
    "V": "event",
    "M": "mosaic",
}
"""tifffile's axis codes to dimension names."""

_GDAL_TAGS: Final = {42112: "GDAL_METADATA", 42113: "GDAL_NODATA"}


def _import_tifffile() -> Any:
    try:
        import tifffile
    except ImportError as e:
        raise MissingDependencyError(
            f"reading TIFF files needs the package 'tifffile' ({e}). Install it with "
            "`pip install tifffile imagecodecs` (or `pip install virtualizarr[tiff]`)."
        ) from e
    return tifffile


def _dims(axes: str) -> tuple[str, ...]:
    out: list[str] = []
    for a in axes:
        name = AXIS_NAMES.get(a, a.lower())
        while name in out:
            name += "_"
        out.append(name)
    return tuple(out)


def _codecs_of(page: Any, tifffile: Any) -> ImageCodecs:
    compression = int(page.compression)
    colorspace: tuple[Any, Any] = (None, None)
    if compression == 7:
        colorspace = tifffile.tifffile.jpeg_decode_colorspace(
            int(page.photometric),
            int(page.planarconfig),
            tuple(page.extrasamples),
            bool(page.is_jfif),
        )
    return ImageCodecs(
        compression=compression,
        predictor=int(page.predictor),
        jpeg_tables=page.jpegtables,
        jpeg_header=page.jpegheader,
        jpeg_colorspace=colorspace,
    )


def _page_info(page: Any, tifffile: Any, where: str) -> PageInfo:
    if page.dtype is None or page.fillorder != 1 or page.sampleformat not in (1, 2, 3):
        raise UnsupportedFeatureError(
            f"{where}: samples of {page.bitspersample} bits (SampleFormat "
            f"{int(page.sampleformat)}, FillOrder {int(page.fillorder)}) have no NumPy dtype "
            "a codec decodes to; only 8/16/32/64-bit integer and float samples are supported."
        )
    sep, depth, length, width, contig = (int(n) for n in page.shaped)
    if depth != 1 or page.imagedepth != 1 or page.tiledepth != 1:
        raise UnsupportedFeatureError(
            f"{where}: volumetric (ImageDepth > 1) images and tiles are not supported."
        )
    if page.subsampling not in (None, (1, 1)) and int(page.compression) != 7:
        raise UnsupportedFeatureError(
            f"{where}: chroma-subsampled YCbCr samples outside JPEG are not supported."
        )
    bits = page.bitspersample
    jpeg = int(page.compression) == 7
    if bits != page.dtype.itemsize * 8 and not (jpeg and bits == 12):
        raise UnsupportedFeatureError(
            f"{where}: {bits}-bit samples are packed; only 8/16/32/64-bit samples are supported."
        )
    dtype = np.dtype(page.dtype)
    if dtype.itemsize > 1:
        dtype = dtype.newbyteorder(page.parent.byteorder)
    tiled = bool(page.is_tiled)
    tile = (int(page.tilelength), int(page.tilewidth)) if tiled else (int(page.rowsperstrip), width)
    fill: Any = 0
    nodata = page.nodata
    if nodata:
        try:
            fill = np.asarray(nodata).astype(dtype.newbyteorder("="))[()]
        except (ValueError, TypeError, OverflowError):
            fill = 0
    codecs = _codecs_of(page, tifffile)
    return PageInfo(dtype, sep, length, width, contig, tiled, tile, codecs, fill)


def _level_group(
    series: Any,
    tifffile: Any,
    url: str,
    size: int,
    where: str,
    full: tuple[int, int] | None,
    geokeys: Any,
    drop: set[str],
) -> VirtualGroup:
    """One pyramid level of one series as a group: ``image`` (and ``y``/``x``)."""
    pages = list(series.pages)
    if not pages or any(p is None for p in pages):
        raise UnsupportedFeatureError(f"{where}: the series has missing pages.")
    key = series.keyframe
    info = _page_info(key, tifffile, where)
    shape = tuple(int(n) for n in series.shape)
    page_shape = [n for i, n in enumerate((info.separate, info.length, info.width, info.contig))
                  if i in (1, 2) or n > 1]  # fmt: skip
    k = len(page_shape)
    if len(shape) < k or list(shape[len(shape) - k :]) != page_shape:
        raise UnsupportedFeatureError(
            f"{where}: tifffile shows this series as {shape} ({series.axes}), which does not "
            f"end with its pages' shape {tuple(page_shape)}; such a layout is not supported."
        )
    lead = shape[: len(shape) - k]
    if math.prod(lead) != len(pages):
        raise UnsupportedFeatureError(
            f"{where}: {len(pages)} pages do not stack to the series shape {shape}."
        )
    dims = _dims(str(series.axes))
    if len(dims) != len(shape):
        raise FileFormatError(f"{where}: axes {series.axes!r} do not match shape {shape}.")
    offsets = [(tuple(p.dataoffsets), tuple(p.databytecounts)) for p in pages]
    grid_cells = len(pages) * info.separate * math.ceil(info.length / max(info.tile[0], 1))
    check_grid_cells((grid_cells,), sum(len(o) for o, _ in offsets), where, FileFormatError)
    layout = series_layout(info, offsets, lead, url, size, where)
    variables: dict[str, VirtualVariable] = {}
    attrs: dict[str, Any] = dict(geo_attributes(geokeys))
    coords: dict[str, Any] = {}
    if full is not None and "y" in dims and "x" in dims:
        extra, coords = pixel_coordinates(geokeys, full, (info.length, info.width))
        attrs.update(extra)
    for tag, name in _GDAL_TAGS.items():
        value = key.tags.valueof(tag)
        if isinstance(value, str):
            attrs[name] = value
    if VARIABLE not in drop:
        metadata = make_array_metadata(
            shape=layout.shape,
            dtype=layout.stored_dtype,
            chunks=layout.chunks,
            fill_value=info.fill_value,
            codecs=layout.codecs,
            dimension_names=dims,
        )
        data = ManifestArray(metadata, layout.manifest, name=VARIABLE)
        variables[VARIABLE] = VirtualVariable(dims, data, attrs)
    for name, (values, cattrs) in coords.items():
        if name not in drop:
            variables[name] = inline_variable(name, values, (name,), cattrs)
    check_dimension_sizes(variables, where, FileFormatError)
    return VirtualGroup(variables)


def _series_group(
    series: Any, tifffile: Any, url: str, size: int, where: str, drop: set[str]
) -> VirtualGroup:
    if getattr(series, "is_multifile", False):
        raise UnsupportedFeatureError(
            f"{where}: the series spans several files (OME-TIFF); open each file on its own."
        )
    key = series.keyframe
    geokeys = key.geotiff_tags if key.is_geotiff else None
    full = (int(key.imagelength), int(key.imagewidth))
    levels = list(series.levels) or [series]
    base = _level_group(levels[0], tifffile, url, size, where, full, geokeys, drop)
    groups = {
        f"overview_{i}": _level_group(
            lvl, tifffile, url, size, f"{where}, overview {i}", full, geokeys, drop
        )
        for i, lvl in enumerate(levels[1:], start=1)
    }
    return VirtualGroup(base.variables, base.attrs, groups)


def read_tiff(location: Location, drop_variables: Iterable[str] = ()) -> VirtualGroup:
    """Describe every series and pyramid level of a TIFF file as virtual groups.

    Parameters
    ----------
    location : Location
        The file, local or remote.
    drop_variables : iterable of str
        Variables (``image``, ``x``, ``y``) to leave out.

    Returns
    -------
    VirtualGroup
        The first series; the others and the overviews as its groups.

    Raises
    ------
    FileFormatError
        If the file is not a readable TIFF file.
    UnsupportedFeatureError
        For compressions, sample formats or layouts that cannot be virtualized.
    MissingDependencyError
        If tifffile is not installed.
    """
    tifffile = _import_tifffile()
    drop = set(drop_variables)
    label = location.label()
    with FileCache(storage_options=location.storage_options) as files:
        size = files.size(location)
        try:
            with tifffile.TiffFile(files.handle(location), name=location.name) as tif:
                series = list(tif.series)
                if not series:
                    raise FileFormatError(f"{label}: the TIFF file holds no image.")
                root = _series_group(series[0], tifffile, location.url, size, label, drop)
                others = {
                    f"series_{i}": _series_group(s, tifffile, location.url, size,
                                                 f"{label}, series {i}", drop)
                    for i, s in enumerate(series[1:], start=1)
                }  # fmt: skip
        except VirtualiZarrError:
            raise
        except (MemoryError, RecursionError) as e:
            raise FileFormatError(
                f"{label}: tifffile could not parse the file ({type(e).__name__}); its IFDs "
                "are probably corrupt."
            ) from e
        except Exception as e:  # tifffile raises TiffFileError, ValueError, struct.error...
            raise FileFormatError(
                f"{label}: not a readable TIFF file ({type(e).__name__}: {e}). The file is "
                "probably truncated or corrupt; check it with tifffile or gdalinfo."
            ) from e
    return VirtualGroup(root.variables, root.attrs, {**root.groups, **others})


def group_names(tree: VirtualGroup, prefix: str = "") -> list[str]:
    """Paths of every group under ``tree`` (``["overview_1", "series_1/overview_1"]``)."""
    out: list[str] = []
    for n, sub in tree.groups.items():
        out += [prefix + n, *group_names(sub, prefix + n + "/")]
    return out


def select_group(tree: VirtualGroup, group: str | None, label: str) -> VirtualGroup:
    """The group ``group`` (a ``/``-separated path) of ``tree``; the root for None.

    Raises
    ------
    FileFormatError
        If there is no such group (the message lists those there are).
    """
    if group in (None, "", "/"):
        return tree
    node = tree
    for part in str(group).strip("/").split("/"):
        if part not in node.groups:
            names = group_names(tree)
            raise FileFormatError(
                f"{label} has no group {group!r}; its groups are {['/', *names]}. Pass one of "
                "them as group=."
            )
        node = node.groups[part]
    return node


class TIFFReader:
    """Virtualize TIFF, BigTIFF, GeoTIFF and COG files (tiles and strips as chunks).

    Examples
    --------
    >>> TIFFReader().name
    'tiff'
    """

    name = NAME
    aliases: tuple[str, ...] = ALIASES
    references = False

    def guess_can_open(self, probe: Probe) -> bool:
        """True if the file starts with a TIFF or BigTIFF header.

        Parameters
        ----------
        probe : Probe

        Returns
        -------
        bool
        """
        return detect(probe)

    def open(
        self,
        source: Source,
        *,
        group: str | None = None,
        drop_variables: Iterable[str] = (),
        **options: Any,
    ) -> VirtualGroup:
        """Describe a TIFF file: its first series, or the group ``group`` names.

        Parameters
        ----------
        source : Location
            The file, local or remote.
        group : str, optional
            ``"overview_1"`` (a pyramid level), ``"series_1"`` (another series),
            ``"series_1/overview_2"``...; the first series by default.
        drop_variables : iterable of str
            Variables to leave out (``image``, ``x``, ``y``).
        **options
            None are accepted.

        Returns
        -------
        VirtualGroup

        Raises
        ------
        FileFormatError
            If the file is not a readable TIFF file, or has no such group.
        UnsupportedFeatureError
            For compressions, sample formats or layouts that cannot be virtualized.
        MissingDependencyError
            If tifffile is not installed.
        UnexpectedOptionError
            For any option.
        """
        location = require_location(source, "TIFF")
        if options:
            raise UnexpectedOptionError(
                f"the TIFF reader takes no reader options; got {sorted(options)}. Remove them."
            )
        tree = read_tiff(location, drop_variables)
        return select_group(tree, group, location.label())
