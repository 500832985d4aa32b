"""virtualizarr's main job, end to end, on files this script makes itself.

1. Write three daily netCDF4 files with netCDF4-python (a CF time axis, lat/lon, a packed
   ``int16`` variable with ``scale_factor``/``add_offset``/``_FillValue``, a compressed
   ``float32`` variable with missing values, and a static ``int8`` mask whose zeros are data).
2. Virtualize each with :func:`virtualizarr.open_virtual_dataset` (metadata only).
3. Concatenate the virtual datasets along ``time`` with :func:`xarray.concat`: only chunk
   manifests are combined, no data bytes are read.
4. Write kerchunk references as JSON with ``ds.virtualize.to_kerchunk``.
5. Read the references back through fsspec's ``reference://`` file system and the Zarr
   engine, and check the result is identical (values, dtypes, attributes, CF decoding) to
   ``xr.open_mfdataset`` on the original files.

Run it with ``./dev demo`` (or ``python examples/demo.py --output-dir DIR``). It exits
with status 1 if anything differs.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

N_FILES = 3
STEPS_PER_FILE = 4  # four 6-hourly steps per daily file
NLAT, NLON = 10, 12
AIR_FILL = np.int16(-32767)
PRECIP_FILL = np.float32(-9999.0)

# Variable names used in the report and the comparison.
CONCAT_KWARGS: dict[str, Any] = {
    "dim": "time",
    "data_vars": "minimal",
    "coords": "minimal",
    "compat": "override",
    "combine_attrs": "override",
}


def make_sample_files(outdir: Path) -> list[Path]:
    """Write ``N_FILES`` daily netCDF4 files into ``outdir`` and return their paths."""
    import netCDF4

    outdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(42)
    lat = np.linspace(45.0, 54.0, NLAT, dtype=np.float32)
    lon = np.linspace(0.0, 11.0, NLON, dtype=np.float32)
    land = (rng.random((NLAT, NLON)) > 0.5).astype(np.int8)  # real zeros: never masked
    paths = []
    for day in range(N_FILES):
        path = outdir / f"air_2026-01-{day + 1:02d}.nc"
        path.unlink(missing_ok=True)
        with netCDF4.Dataset(path, mode="w", format="NETCDF4") as nc:
            nc.title = "virtualizarr demo: synthetic 6-hourly air temperature"
            nc.Conventions = "CF-1.8"
            nc.createDimension("time", STEPS_PER_FILE)
            nc.createDimension("lat", NLAT)
            nc.createDimension("lon", NLON)

            t = nc.createVariable("time", "i4", ("time",))
            t.units = "hours since 2026-01-01 00:00:00"
            t.calendar = "standard"
            t.standard_name = "time"
            t[:] = day * 24 + 6 * np.arange(STEPS_PER_FILE, dtype=np.int32)

            la = nc.createVariable("lat", "f4", ("lat",))
            la.units = "degrees_north"
            la.standard_name = "latitude"
            la[:] = lat
            lo = nc.createVariable("lon", "f4", ("lon",))
            lo.units = "degrees_east"
            lo.standard_name = "longitude"
            lo[:] = lon

            # Packed temperature: one zlib-compressed chunk per time step.
            air = nc.createVariable(
                "air",
                "i2",
                ("time", "lat", "lon"),
                zlib=True,
                complevel=4,
                chunksizes=(1, NLAT, NLON),
                fill_value=AIR_FILL,
            )
            # float64 packing attributes: kerchunk JSON cannot record that an attribute
            # was float32, and xarray picks the decoded dtype from the attribute's type.
            air.scale_factor = np.float64(0.01)
            air.add_offset = np.float64(273.15)
            air.units = "K"
            air.standard_name = "air_temperature"
            air.set_auto_maskandscale(False)  # we write the packed integers ourselves
            kelvin = 273.15 + 10 * rng.standard_normal((STEPS_PER_FILE, NLAT, NLON))
            packed = np.round((kelvin - 273.15) / 0.01).astype(np.int16)
            packed[:, 0, 0] = AIR_FILL  # a missing corner
            air[:] = packed

            # Float precipitation with its own _FillValue, shuffled and compressed, in
            # chunks that do not cover a whole field.
            pr = nc.createVariable(
                "precip",
                "f4",
                ("time", "lat", "lon"),
                zlib=True,
                shuffle=True,
                chunksizes=(2, 5, 6),
                fill_value=PRECIP_FILL,
            )
            pr.units = "mm h-1"
            pr.set_auto_maskandscale(False)
            values = rng.gamma(0.5, 2.0, (STEPS_PER_FILE, NLAT, NLON)).astype(np.float32)
            values[values < 0.05] = PRECIP_FILL
            pr[:] = values

            # A static mask without _FillValue: its zeros are data, not missing values.
            lm = nc.createVariable("land", "i1", ("lat", "lon"), fill_value=False)
            lm.long_name = "land mask (1 = land)"
            lm[:] = land
        paths.append(path)
    return paths


def count_references(refs_path: Path) -> tuple[int, int]:
    """Return (byte-range references, inline chunks) in a kerchunk JSON document."""
    with refs_path.open() as f:
        doc = json.load(f)
    refs: dict[str, Any] = doc.get("refs", doc)
    ranges = inline = 0
    for key, value in refs.items():
        if key.rsplit("/", 1)[-1].startswith("."):
            continue  # .zgroup, .zattrs, .zarray, .zmetadata
        if isinstance(value, list):
            ranges += 1
        else:
            inline += 1
    return ranges, inline


def _differences(actual: xr.Dataset, expected: xr.Dataset) -> str | None:
    try:
        xr.testing.assert_identical(actual, expected)
    except AssertionError as err:
        return str(err)
    return None


def try_native_engine(refs_path: Path, expected: xr.Dataset) -> tuple[str, bool]:
    """Read ``refs_path`` with ``engine="virtualizarr"`` if that engine exists yet.

    Returns a line for the report and whether it counts as a failure.
    """
    if "virtualizarr" not in xr.backends.list_engines():
        return "not built yet (planned)", False
    from virtualizarr.errors import VirtualiZarrError

    try:
        with xr.open_dataset(refs_path, engine="virtualizarr") as native:
            native.load()
            diff = _differences(native, expected)
    except (NotImplementedError, VirtualiZarrError) as err:
        return f"not available yet ({type(err).__name__}: {err})", False
    if diff is not None:
        return f"DIFFERENT\n{diff}", True
    return "identical", False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--output-dir",
        type=Path,
        default=Path("demo-output"),
        help="where to write the sample files and refs.json (default: ./demo-output)",
    )
    args = parser.parse_args(argv)
    outdir: Path = args.output_dir.resolve()

    from virtualizarr import open_virtual_dataset

    files = make_sample_files(outdir)
    refs_path = outdir / "refs.json"
    refs_path.unlink(missing_ok=True)

    t0 = time.perf_counter()
    virtual = [open_virtual_dataset(str(p)) for p in files]
    combined = xr.concat(virtual, **CONCAT_KWARGS)
    combined.virtualize.to_kerchunk(str(refs_path), format="json")
    t_virtualize = time.perf_counter() - t0

    t0 = time.perf_counter()
    from_refs = xr.open_dataset(
        "reference://",
        engine="zarr",
        backend_kwargs={"consolidated": False, "storage_options": {"fo": str(refs_path)}},
    )
    with from_refs:
        from_refs.load()
    t_read = time.perf_counter() - t0

    with xr.open_mfdataset(
        files,
        combine="nested",
        concat_dim="time",
        **{k: v for k, v in CONCAT_KWARGS.items() if k != "dim"},
    ) as original:
        original.load()

    diff = _differences(from_refs, original)
    native_line, native_failed = try_native_engine(refs_path, original)
    ranges, inline = count_references(refs_path)
    source_bytes = sum(p.stat().st_size for p in files)

    print("virtualizarr demo")
    print(f"  files:              {len(files)} netCDF4 files in {outdir} ({source_bytes:,} bytes)")
    for p in files:
        print(f"                      {p.name}")
    print(f"  variables:          {', '.join(str(v) for v in from_refs.variables)}")
    print(f"  dimensions:         {dict(from_refs.sizes)}")
    print(f"  chunk references:   {ranges} byte ranges, {inline} inline chunks")
    print(f"  refs.json:          {refs_path.stat().st_size:,} bytes at {refs_path}")
    print(f"  virtualize + write: {t_virtualize:.2f} s;  read back: {t_read:.2f} s")
    print(f"  engine=virtualizarr: {native_line}")
    if diff is not None:
        print("  values identical: NO: reference://+zarr differs from xr.open_mfdataset")
        print(diff)
        return 1
    print("  values identical: yes (xr.testing.assert_identical vs xr.open_mfdataset)")
    return 1 if native_failed else 0


if __name__ == "__main__":
    sys.exit(main())
