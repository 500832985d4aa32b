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

__all__ = ["ALIASES", "NAME", "READER", "detect", "superblock_offset"]

NAME = "hdf5"
ALIASES = ("netcdf4", "hdf", "h5")

_MAX_USER_BLOCK_BITS = 48
"""Largest user block searched: ``2**47`` bytes (the search stops at the file's end)."""


def superblock_offset(probe: Probe) -> int | None:
    """Where the HDF5 superblock of the probed file is, or None if it is not HDF5.

    HDF5 looks for its signature at byte 0, then 512, 1024, 2048, ... (a *user block*
    before the superblock, as MATLAB v7.3 .mat files have; every address in the file is
    relative to the superblock). Offsets inside the probe's head cost nothing; later ones
    are read, 8 bytes each, only in the registry's second pass (:attr:`Probe.extended`).

    Parameters
    ----------
    probe : Probe

    Returns
    -------
    int or None

    Examples
    --------
    >>> superblock_offset(Probe({"version": 1, "refs": {}})) is None
    True
    """
    if probe.head[:8] == SIGNATURE:
        return 0
    for bits in range(9, _MAX_USER_BLOCK_BITS):
        found = probe.read_at(1 << bits, 8)
        if len(found) < 8:
            return None  # past the end of the file
        if found == SIGNATURE:
            return 1 << bits
    return None


def detect(probe: Probe) -> bool:
    """True if the probed file is HDF5: its signature at byte 0, or after a user block
    (byte 512, 1024, 2048, ...).

    Parameters
    ----------
    probe : Probe

    Returns
    -------
    bool
    """
    return superblock_offset(probe) is not None


READER = LazyReader(NAME, detect, "virtualizarr.readers.hdf5.reader:HDF5Reader", aliases=ALIASES)
"""The registered HDF5 reader (h5py is imported when a file is opened)."""
