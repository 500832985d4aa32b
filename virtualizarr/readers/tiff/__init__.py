"""The TIFF / GeoTIFF / COG reader.

Importing this package imports neither tifffile nor imagecodecs: it holds what recognises
a TIFF file by its first bytes and registers the reader lazily (:data:`READER`).

* :mod:`~virtualizarr.readers.tiff.reader` -- the reader: series and pyramid levels to
  variables and groups (tifffile parses the file structure);
* :mod:`~virtualizarr.readers.tiff.layout` -- one series' tiles or strips to a chunk
  grid, a manifest and codecs (pure);
* :mod:`~virtualizarr.readers.tiff.geo` -- GeoTIFF tags to ``x``/``y`` coordinates and
  attributes (pure).
"""

from typing import Final

from virtualizarr.readers.base import LazyReader, Probe

__all__ = ["ALIASES", "MAGICS", "NAME", "READER", "detect"]

NAME = "tiff"
ALIASES = ("geotiff", "cog", "tif")

MAGICS: Final = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
"""Classic TIFF (little- and big-endian) and BigTIFF."""


def detect(probe: Probe) -> bool:
    """True if the probed file starts with a TIFF or BigTIFF byte-order mark and magic.

    Examples
    --------
    >>> from virtualizarr.io.objects import Location
    >>> detect(Probe({"version": 1}))
    False
    """
    return bytes(probe.head[:4]) in MAGICS


READER = LazyReader(NAME, detect, "virtualizarr.readers.tiff.reader:TIFFReader", aliases=ALIASES)
"""The registered TIFF reader (tifffile is imported when a file is opened)."""
