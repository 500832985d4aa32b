"""Readers: one package per source format, all found through :mod:`virtualizarr.readers.base`.

Built-in readers, in the order they are tried:

* ``hdf5`` (aliases ``netcdf4``, ``hdf``, ``h5``) -- :mod:`virtualizarr.readers.hdf5`,
  imported lazily (h5py);
* ``netcdf3`` -- :mod:`virtualizarr.readers.netcdf3`;
* ``manifest_store`` (alias ``zarr_manifest``) -- :mod:`virtualizarr.readers.zarr_manifest`:
  our manifest stores (tried before the plain Zarr reader: they are Zarr stores too);
* ``zarr`` -- :mod:`virtualizarr.readers.zarr`: plain Zarr v2 and v3 stores (a manifest
  store given with ``filetype="zarr"`` goes to ``manifest_store``);
* ``kerchunk`` -- :mod:`virtualizarr.readers.kerchunk`: JSON, dicts and Parquet stores;
* ``dmrpp`` -- :mod:`virtualizarr.readers.dmrpp`: OPeNDAP DMR++ sidecars of HDF5 files;
* ``tiff`` (aliases ``geotiff``, ``cog``, ``tif``) -- :mod:`virtualizarr.readers.tiff`,
  imported lazily (tifffile; imagecodecs decodes the chunks);
* ``grib`` (aliases ``grib2``, ``grib1``, ``grb``, ``grb2``) --
  :mod:`virtualizarr.readers.grib`, imported lazily (cfgrib, ecCodes);
* ``fits`` (aliases ``fit``, ``fts``) -- :mod:`virtualizarr.readers.fits`, imported lazily
  (astropy).
"""

from virtualizarr.readers import (
    dmrpp,
    fits,
    grib,
    hdf5,
    kerchunk,
    netcdf3,
    tiff,
    zarr,
    zarr_manifest,
)
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
    zarr_manifest.READER,
    zarr.READER,
    kerchunk.READER,
    dmrpp.READER,
    tiff.READER,
    grib.READER,
    fits.READER,
):
    register_reader(_reader)
del _reader
