"""The netCDF3 reader: classic (CDF-1), 64-bit offset (CDF-2) and 64-bit data (CDF-5).

* :mod:`~virtualizarr.readers.netcdf3.header` -- the header, parsed from bytes (pure);
* :mod:`~virtualizarr.readers.netcdf3.reader` -- the reader: header to virtual variables.
"""

from virtualizarr.readers.netcdf3.reader import (
    READER,
    NetCDF3Reader,
    read_header,
    virtualize_header,
)

__all__ = ["READER", "NetCDF3Reader", "read_header", "virtualize_header"]
