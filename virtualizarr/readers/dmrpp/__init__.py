"""The DMR++ reader: OPeNDAP Hyrax's XML sidecars of HDF5/netCDF-4 files.

* :mod:`~virtualizarr.readers.dmrpp.parse` -- the XML, parsed (pure);
* :mod:`~virtualizarr.readers.dmrpp.reader` -- the sidecar to virtual variables.
"""

from virtualizarr.readers.dmrpp.parse import DmrppDataset, parse_dmrpp
from virtualizarr.readers.dmrpp.reader import READER, DmrppReader, open_dmrpp

__all__ = ["READER", "DmrppDataset", "DmrppReader", "open_dmrpp", "parse_dmrpp"]
