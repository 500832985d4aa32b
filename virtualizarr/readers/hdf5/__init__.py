"""The HDF5 / netCDF4 reader.

Importing this package does not import h5py: it holds what recognises an HDF5 file and
registers the reader lazily (:data:`READER`); :mod:`~virtualizarr.readers.hdf5.reader`
is imported when a file is opened.

* :mod:`~virtualizarr.readers.hdf5.reader` -- the reader: groups and variables;
* :mod:`~virtualizarr.readers.hdf5.storage` -- layouts, chunk indexes and inlining, to
  manifests;
* :mod:`~virtualizarr.readers.hdf5.dims` -- dimension names as netCDF-C resolves them;
* :mod:`~virtualizarr.readers.hdf5.attrs` -- attributes as netCDF-C shows them;
* :mod:`~virtualizarr.readers.hdf5.filters` -- HDF5 filters to Zarr codecs;
* :mod:`~virtualizarr.readers.hdf5.objects`, :mod:`~virtualizarr.readers.hdf5.chunk_index`,
  :mod:`~virtualizarr.readers.hdf5.heap_guard` -- file structures read from the bytes.
"""

from virtualizarr.readers.base import LazyReader, Probe
from virtualizarr.readers.hdf5.objects import SIGNATURE

__all__ = ["ALIASES", "NAME", "READER", "detect"]

NAME = "hdf5"
ALIASES = ("netcdf4", "hdf", "h5")


def detect(probe: Probe) -> bool:
    """True if the probed file starts with the HDF5 signature.

    Files with a user block put the signature at byte 512, 1024, ...; open those with
    ``filetype="hdf5"``.
    """
    return probe.head[:8] == SIGNATURE


READER = LazyReader(NAME, detect, "virtualizarr.readers.hdf5.reader:HDF5Reader", aliases=ALIASES)
"""The registered HDF5 reader (h5py is imported when a file is opened)."""
