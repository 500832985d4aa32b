"""The FITS reader.

Importing this package does not import astropy: it holds what recognises a FITS file by
its first bytes (``SIMPLE  =``) and registers the reader lazily (:data:`READER`).

* :mod:`~virtualizarr.readers.fits.reader` -- the reader: image HDUs and binary tables
  as byte ranges (astropy parses the headers);
* :mod:`~virtualizarr.readers.fits.scaling` -- ``BITPIX``/``BSCALE``/``BZERO``/``BLANK``
  to stored dtypes, codecs and CF attributes (pure).
"""

from virtualizarr.readers.base import LazyReader, Probe

__all__ = ["ALIASES", "NAME", "READER", "detect"]

NAME = "fits"
ALIASES = ("fit", "fts")


def detect(probe: Probe) -> bool:
    """True if the probed file starts with the FITS primary header's ``SIMPLE  =``.

    Examples
    --------
    >>> detect(Probe({"version": 1}))
    False
    """
    return bytes(probe.head[:9]) == b"SIMPLE  ="


READER = LazyReader(NAME, detect, "virtualizarr.readers.fits.reader:FITSReader", aliases=ALIASES)
"""The registered FITS reader (astropy is imported when a file is opened)."""
