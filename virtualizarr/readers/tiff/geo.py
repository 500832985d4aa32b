"""GeoTIFF tags to ``x``/``y`` coordinates and attributes (pure).

The coordinates are those rioxarray (GDAL) gives: pixel centres of the affine transform
that ``ModelPixelScale`` + ``ModelTiepoint`` (or a ``ModelTransformation`` without
rotation) define. For ``PixelIsPoint`` rasters the tie point is a pixel's centre, as GDAL
reads it by default. Overviews cover the same extent with larger pixels. A rotated or
sheared transformation has no 1-D coordinates: only the attributes are given.

The GeoKeys become attributes of the image variable under their GeoTIFF names
(``GTModelTypeGeoKey``, ``ProjectedCSTypeGeoKey``, ``GTCitationGeoKey``...) with plain
int, float or str values, plus ``crs`` (``"EPSG:<code>"``) when the file names an EPSG
code, and GDAL's ``GDAL_NODATA``/``GDAL_METADATA`` strings as stored. No CRS
conversion (WKT, PROJ) is attempted.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import Any, Final

import numpy as np
import numpy.typing as npt

__all__ = ["geo_attributes", "pixel_coordinates"]

_USER_DEFINED: Final = 32767
_TRANSFORM_TAGS: Final = ("ModelPixelScale", "ModelTiepoint", "ModelTransformation")


def _plain(value: Any) -> Any:
    if isinstance(value, enum.Enum):
        return int(value.value) if isinstance(value.value, int) else str(value.value)
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float | str):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, list | tuple | np.ndarray):
        arr = np.asarray([_plain(v) for v in value])
        if arr.dtype.kind in "iuf":
            return arr.astype(np.float64 if arr.dtype.kind == "f" else np.int64)
        return [str(v) for v in value]
    return str(value)


def geo_attributes(geokeys: Mapping[str, Any] | None) -> dict[str, Any]:
    """The GeoTIFF keys and transform tags as attributes (plain JSON-able values).

    Parameters
    ----------
    geokeys : mapping or None
        tifffile's ``page.geotiff_tags``.

    Returns
    -------
    dict

    Examples
    --------
    >>> geo_attributes({"ProjectedCSTypeGeoKey": 32611, "GTModelTypeGeoKey": 1})["crs"]
    'EPSG:32611'
    """
    if not geokeys:
        return {}
    attrs = {str(k): _plain(v) for k, v in geokeys.items()}
    for key in ("ProjectedCSTypeGeoKey", "GeographicTypeGeoKey"):
        code = attrs.get(key)
        if isinstance(code, int) and 1024 <= code < _USER_DEFINED:
            attrs["crs"] = f"EPSG:{code}"
            break
    return attrs


def _transform(geokeys: Mapping[str, Any]) -> tuple[float, float, float, float] | None:
    """GDAL's geotransform ``(x0, dx, y0, dy)`` (outer corner of the first pixel), or None.

    None when there is no transform or it rotates or shears. Computed as GDAL does, in
    the same order, so the coordinates match rioxarray's to the last bit.
    """
    matrix = geokeys.get("ModelTransformation")
    if matrix is not None:
        m = np.asarray(matrix, dtype=np.float64).ravel()
        if m.size != 16 or m[1] != 0 or m[4] != 0 or not np.all(np.isfinite(m)):
            return None
        x0, dx, y0, dy = float(m[3]), float(m[0]), float(m[7]), float(m[5])
    else:
        scale, tie = geokeys.get("ModelPixelScale"), geokeys.get("ModelTiepoint")
        if scale is None or tie is None:
            return None
        s = np.asarray(scale, dtype=np.float64).ravel()
        t = np.asarray(tie, dtype=np.float64).ravel()
        if s.size < 2 or t.size < 6 or not (np.all(np.isfinite(s[:2])) and np.all(np.isfinite(t))):
            return None
        dx, dy = float(s[0]), -float(s[1])
        x0 = float(t[3]) - float(t[0]) * dx
        y0 = float(t[4]) - float(t[1]) * dy
    if dx == 0 or dy == 0:
        return None
    if _plain(geokeys.get("GTRasterTypeGeoKey")) == 2:  # PixelIsPoint: the tie is a centre
        x0 -= dx * 0.5 + 0.0 * 0.5
        y0 -= 0.0 * 0.5 + dy * 0.5
    return x0, dx, y0, dy


def pixel_coordinates(
    geokeys: Mapping[str, Any] | None,
    full: tuple[int, int],
    level: tuple[int, int],
) -> tuple[dict[str, Any], dict[str, tuple[npt.NDArray[np.float64], dict[str, Any]]]]:
    """Coordinates of the pixel centres of one pyramid level, with their attributes.

    Parameters
    ----------
    geokeys : mapping or None
        tifffile's ``page.geotiff_tags`` of the full-resolution image.
    full : (int, int)
        ``(length, width)`` of the full-resolution image.
    level : (int, int)
        ``(length, width)`` of this level (the same for the full image).

    Returns
    -------
    attrs : dict
        Nothing, or ``{"transform": [dx, 0, x0, 0, dy, y0]}`` of this level (the
        affine transform of pixel corners, in rasterio's order).
    coords : dict
        ``{"y": (values, attrs), "x": (values, attrs)}``, or empty.

    Examples
    --------
    >>> _, c = pixel_coordinates(
    ...     {"ModelPixelScale": [10.0, 10.0, 0.0], "ModelTiepoint": [0, 0, 0, 100.0, 50.0, 0]},
    ...     (2, 3), (2, 3))
    >>> c["x"][0].tolist(), c["y"][0].tolist()
    ([105.0, 115.0, 125.0], [45.0, 35.0])
    """
    if not geokeys:
        return {}, {}
    t = _transform(geokeys)
    if t is None or min(*full, *level) < 1:
        return {}, {}
    x0, dx, y0, dy = t
    dx *= full[1] / level[1]  # an overview covers the same extent (GDAL's overview datasets)
    dy *= full[0] / level[0]
    # pixel centres as rioxarray computes them: (transform * translation(0.5, 0.5)) * (i, j)
    cx = dx * 0.5 + 0.0 * 0.5 + x0
    cy = 0.0 * 0.5 + dy * 0.5 + y0
    x = np.arange(level[1], dtype=np.float64) * dx + np.zeros(level[1]) * 0.0 + cx
    y = np.zeros(level[0]) * 0.0 + np.arange(level[0], dtype=np.float64) * dy + cy
    geographic = _plain(geokeys.get("GTModelTypeGeoKey")) == 2
    if geographic:
        xa = {"axis": "X", "standard_name": "longitude", "units": "degrees_east"}
        ya = {"axis": "Y", "standard_name": "latitude", "units": "degrees_north"}
    else:
        xa = {"axis": "X", "standard_name": "projection_x_coordinate"}
        ya = {"axis": "Y", "standard_name": "projection_y_coordinate"}
    transform = np.array([dx, 0.0, x0, 0.0, dy, y0])  # GDAL's order
    return {"transform": transform}, {"y": (y, ya), "x": (x, xa)}
