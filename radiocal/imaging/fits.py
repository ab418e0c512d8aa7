"""Just enough FITS to read an imager's output: the primary header and image, and SIN pixels.

WSClean and CASA's ``exportfits`` write a single primary HDU of 2880-byte blocks: 80-character
header cards up to ``END``, then big-endian pixels (axis 1 varies fastest). This avoids a
dependency on astropy for diagnostics and tests; use astropy for anything more.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from radiocal.errors import InputError

BLOCK = 2880
CARD = 80
_DTYPES = {8: ">u1", 16: ">i2", 32: ">i4", 64: ">i8", -32: ">f4", -64: ">f8"}


def _value(text: str):
    text = text.strip()
    if text.startswith("'"):
        # A string ends at the first lone quote; '' inside it is a literal quote
        out, i = [], 1
        while i < len(text):
            if text[i] == "'":
                if text[i + 1:i + 2] == "'":
                    out.append("'")
                    i += 2
                    continue
                break
            out.append(text[i])
            i += 1
        return "".join(out).rstrip()
    text = text.split("/", 1)[0].strip()
    if text in ("T", "F"):
        return text == "T"
    for convert in (int, lambda t: float(t.replace("D", "E"))):
        try:
            return convert(text)
        except ValueError:
            pass
    return text


def read_header(path) -> tuple[dict, int]:
    """The primary header as {KEY: value} (COMMENT/HISTORY dropped) and the data's byte offset."""
    path = Path(path)
    header: dict = {}
    offset = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(BLOCK)
            if len(block) < BLOCK:
                raise InputError(f"{path}: not a FITS file (no END card)")
            offset += BLOCK
            for k in range(0, BLOCK, CARD):
                card = block[k:k + CARD].decode("ascii", errors="replace")
                key = card[:8].strip()
                if key == "END":
                    if "SIMPLE" not in header:
                        raise InputError(f"{path}: not a FITS file (no SIMPLE card)")
                    return header, offset
                if card[8:10] == "= ":
                    header[key] = _value(card[10:])


def read_fits(path) -> tuple[dict, np.ndarray]:
    """Header and pixels of a FITS primary image.

    Returns
    -------
    header : dict
    data : numpy.ndarray
        float64 (scaled by BSCALE/BZERO), axes in reverse FITS order: a WSClean image is
        (stokes, frequency, dec, ra), so ``data[0, 0, y, x]``.
    """
    header, offset = read_header(path)
    naxis = int(header.get("NAXIS", 0))
    shape = tuple(int(header[f"NAXIS{k}"]) for k in range(naxis, 0, -1))
    dtype = np.dtype(_DTYPES.get(int(header.get("BITPIX", 0)), "V1"))
    if dtype.kind == "V":
        raise InputError(f"{path}: unsupported BITPIX {header.get('BITPIX')}")
    count = int(np.prod(shape)) if shape else 0
    data = np.fromfile(path, dtype=dtype, count=count, offset=offset)
    if data.size != count:
        raise InputError(f"{path}: truncated FITS data ({data.size} of {count} pixels)")
    data = data.reshape(shape).astype(np.float64)
    scale, zero = float(header.get("BSCALE", 1.0)), float(header.get("BZERO", 0.0))
    if (scale, zero) != (1.0, 0.0):
        data = data * scale + zero
    return header, data


def sky_to_pixel(header: dict, ra: float, dec: float) -> tuple[float, float]:
    """0-based (x, y) pixel of (ra, dec) radians in a SIN-projected image (WSClean, tclean).

    Raises
    ------
    InputError
        The image is not SIN-projected or the direction is behind the tangent plane.
    """
    if not (str(header.get("CTYPE1", "")).endswith("-SIN")
            and str(header.get("CTYPE2", "")).endswith("-SIN")):
        raise InputError(f"only SIN projections are supported, not {header.get('CTYPE1')!r}")
    ra0, dec0 = math.radians(header["CRVAL1"]), math.radians(header["CRVAL2"])
    d = ra - ra0
    n = math.sin(dec) * math.sin(dec0) + math.cos(dec) * math.cos(dec0) * math.cos(d)
    if n <= 0:
        raise InputError("the direction is behind the image's tangent plane")
    l = math.cos(dec) * math.sin(d)
    m = math.sin(dec) * math.cos(dec0) - math.cos(dec) * math.sin(dec0) * math.cos(d)
    x = header["CRPIX1"] - 1 + math.degrees(l) / header["CDELT1"]
    y = header["CRPIX2"] - 1 + math.degrees(m) / header["CDELT2"]
    return x, y
