"""Readers: one package per source format, all found through :mod:`virtualizarr.readers.base`.

Built-in readers, in the order they are tried:

* ``hdf5`` (aliases ``netcdf4``, ``hdf``, ``h5``) -- :mod:`virtualizarr.readers.hdf5`,
  imported lazily (h5py);
* ``netcdf3`` -- :mod:`virtualizarr.readers.netcdf3`;
* ``kerchunk`` -- :mod:`virtualizarr.readers.kerchunk`: JSON, dicts and Parquet stores;
* ``zarr`` -- :mod:`virtualizarr.readers.zarr_manifest`: our manifest stores;
* ``tiff`` (aliases ``geotiff``, ``cog``, ``tif``) -- :mod:`virtualizarr.readers.tiff`,
  imported lazily (tifffile; imagecodecs decodes the chunks);
* ``grib`` (aliases ``grib2``, ``grib1``, ``grb``, ``grb2``) --
  :mod:`virtualizarr.readers.grib`, imported lazily (cfgrib, ecCodes);
* ``fits`` (aliases ``fit``, ``fts``) -- :mod:`virtualizarr.readers.fits`, imported lazily
  (astropy).
"""

from virtualizarr.readers import fits, grib, hdf5, kerchunk, netcdf3, tiff, zarr_manifest
from virtualizarr.readers.base import (
    READERS,
    LazyReader,
    Probe,
    Reader,
    Source,
    find_reader,
    register_reader,
)

__all__ = [
    "READERS",
    "LazyReader",
    "Probe",
    "Reader",
    "Source",
    "find_reader",
    "register_reader",
]

for _reader in (
    hdf5.READER,
    netcdf3.READER,
    kerchunk.READER,
    zarr_manifest.READER,
    tiff.READER,
    grib.READER,
    fits.READER,
):
    register_reader(_reader)
del _reader
