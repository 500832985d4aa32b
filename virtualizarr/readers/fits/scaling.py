"""FITS image data types and scaling, as astropy applies them (pure).

A FITS image stores big-endian integers (``BITPIX`` 8, 16, 32, 64; 8 is unsigned) or
IEEE floats (-32, -64). astropy (``fits.open(f)[i].data``, its defaults) shows:

* no ``BSCALE``/``BZERO``/``BLANK``: the stored values (big-endian kept);
* the unsigned-integer convention (``BSCALE = 1``, ``BZERO = 2**(BITPIX-1)``; for
  ``BITPIX = 8``, ``BZERO = -128`` gives signed bytes) without ``BLANK``: ``uint16``,
  ``uint32`` (``int8``). Here a ``numcodecs.fixedscaleoffset`` filter adds ``BZERO``
  exactly (in float64, exact for these widths); the 64-bit case would lose precision
  and is refused;
* any other scaling, or a ``BLANK``: ``BZERO + BSCALE * stored`` as float32 (``BITPIX``
  8, 16, -32) or float64 (32, 64, -64), NaN where the stored value is ``BLANK``. This is
  exactly CF decoding with ``scale_factor``/``add_offset`` of that float type (both
  given, so xarray picks that type) and ``_FillValue = BLANK``; xarray applies it when
  the references are opened.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Final

import numpy as np

from virtualizarr.errors import FileFormatError, UnsupportedFeatureError

__all__ = ["BITPIX_DTYPES", "ImageEncoding", "image_encoding"]

BITPIX_DTYPES: Final = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


@dataclass(frozen=True, slots=True)
class ImageEncoding:
    """How an image's stored values become astropy's.

    Attributes
    ----------
    stored : numpy.dtype
        The dtype in the file (big-endian).
    data_type : numpy.dtype or None
        The array's dtype when a filter converts the stored values (unsigned convention).
    filters : tuple of dict
        Array-to-array codec configurations (Zarr v3).
    cf_attrs : dict
        ``scale_factor``, ``add_offset``, ``_FillValue`` to add to the attributes.
    """

    stored: np.dtype[Any]
    data_type: np.dtype[Any] | None = None
    filters: tuple[dict[str, Any], ...] = ()
    cf_attrs: dict[str, Any] = field(default_factory=dict)


def _number(value: Any, key: str, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise FileFormatError(f"{where}: {key} must be a number; found {value!r}.")
    out = float(value)
    if not np.isfinite(out):
        raise FileFormatError(f"{where}: {key} must be finite; found {value!r}.")
    return out


def image_encoding(bitpix: Any, bscale: Any, bzero: Any, blank: Any, where: str) -> ImageEncoding:
    """The encoding of an image HDU from its ``BITPIX``, ``BSCALE``, ``BZERO``, ``BLANK``.

    Parameters
    ----------
    bitpix : int
    bscale, bzero, blank : number or None
        The header's values (None when absent).
    where : str
        The HDU, for messages.

    Returns
    -------
    ImageEncoding

    Raises
    ------
    FileFormatError
        For an invalid ``BITPIX`` or non-numeric scaling keywords.
    UnsupportedFeatureError
        For the 64-bit unsigned convention.

    Examples
    --------
    >>> image_encoding(16, 1, 32768, None, "x").data_type
    dtype('>u2')
    >>> sorted(image_encoding(16, 0.5, 10.0, None, "x").cf_attrs)
    ['add_offset', 'scale_factor']
    """
    if bitpix not in BITPIX_DTYPES or isinstance(bitpix, bool):
        raise FileFormatError(
            f"{where}: BITPIX is {bitpix!r}; expected one of {sorted(BITPIX_DTYPES)}."
        )
    stored = np.dtype(BITPIX_DTYPES[bitpix])
    scale = 1.0 if bscale is None else _number(bscale, "BSCALE", where)
    zero = 0.0 if bzero is None else _number(bzero, "BZERO", where)
    integer = bitpix > 0
    if (
        integer
        and blank is not None
        and (isinstance(blank, bool) or not isinstance(blank, int | np.integer))
    ):
        raise FileFormatError(f"{where}: BLANK must be an integer; found {blank!r}.")
    has_blank = integer and blank is not None
    if scale == 1 and zero == 0 and not has_blank:
        return ImageEncoding(stored)
    unsigned_zero = -128.0 if bitpix == 8 else float(2 ** (bitpix - 1)) if integer else None
    if integer and scale == 1 and zero == unsigned_zero and not has_blank:
        if bitpix == 64:
            raise UnsupportedFeatureError(
                f"{where}: 64-bit unsigned integers (BITPIX = 64, BZERO = 2**63) have no "
                "exact codec; this image cannot be virtualized."
            )
        decoded = np.dtype(">i1" if bitpix == 8 else f">u{bitpix // 8}")
        fso = {
            "name": "numcodecs.fixedscaleoffset",
            "configuration": {
                "offset": zero,  # decoded = stored / scale + offset
                "scale": 1,
                "dtype": decoded.str,
                "astype": stored.str,
            },
        }
        return ImageEncoding(stored, decoded, (fso,))
    float_type = np.float32 if bitpix in (8, 16, -32) else np.float64
    cf: dict[str, Any] = {"scale_factor": float_type(scale), "add_offset": float_type(zero)}
    if has_blank:
        info = np.iinfo(stored)
        if not info.min <= int(blank) <= info.max:
            raise FileFormatError(
                f"{where}: BLANK = {blank} does not fit BITPIX = {bitpix} values."
            )
        cf["_FillValue"] = stored.newbyteorder("=").type(int(blank))
    return ImageEncoding(stored, cf_attrs=cf)
