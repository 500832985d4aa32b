"""The GRIB (editions 1 and 2) reader.

Importing this package imports neither cfgrib nor ecCodes: it holds what recognises a
GRIB file by its first bytes and registers the reader lazily (:data:`READER`).

* :mod:`~virtualizarr.readers.grib.messages` -- where the messages are, and whether
  each is well formed (pure);
* :mod:`~virtualizarr.readers.grib.reader` -- the reader: cfgrib's variables, one chunk
  per message.
"""

from virtualizarr.readers.base import LazyReader, Probe

__all__ = ["ALIASES", "NAME", "READER", "detect"]

NAME = "grib"
ALIASES = ("grib2", "grib1", "grb", "grb2")


def detect(probe: Probe) -> bool:
    """True if the probed file starts with ``GRIB``.

    Examples
    --------
    >>> detect(Probe({"version": 1}))
    False
    """
    return bytes(probe.head[:4]) == b"GRIB"


READER = LazyReader(NAME, detect, "virtualizarr.readers.grib.reader:GRIBReader", aliases=ALIASES)
"""The registered GRIB reader (cfgrib and ecCodes are imported when a file is opened)."""
