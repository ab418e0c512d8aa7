"""The minimal FITS reader against a file written card by card (no imager needed)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radiocal.errors import InputError
from radiocal.imaging.fits import read_fits, read_header, sky_to_pixel


def _card(key: str, value: str) -> bytes:
    return f"{key:<8}= {value:>20}".ljust(80).encode("ascii")


def _write(path, cards: list[bytes], data: bytes):
    header = b"".join(cards) + b"END".ljust(80)
    header += b" " * (-len(header) % 2880)
    path.write_bytes(header + data + b"\0" * (-len(data) % 2880))


def test_header_values_and_scaled_pixels(tmp_path):
    pixels = np.arange(12, dtype=">i2").reshape(3, 4)       # (y, x): NAXIS1 = 4
    cards = [_card("SIMPLE", "T"), _card("BITPIX", "16"), _card("NAXIS", "2"),
             _card("NAXIS1", "4"), _card("NAXIS2", "3"), _card("BSCALE", "0.5"),
             _card("BZERO", "1.0D1"), _card("BUNIT", "'JY/BEAM '"),
             _card("OBJECT", "'it''s / here'"), _card("CDELT1", "-2.5E-3 / deg")]
    _write(tmp_path / "a.fits", cards, pixels.tobytes())
    header, data = read_fits(tmp_path / "a.fits")
    assert header["BUNIT"] == "JY/BEAM" and header["OBJECT"] == "it's / here"
    assert header["CDELT1"] == -2.5e-3 and header["SIMPLE"] is True and header["NAXIS1"] == 4
    np.testing.assert_array_equal(data, pixels.astype(float) * 0.5 + 10.0)
    assert read_header(tmp_path / "a.fits")[1] == 2880


def test_not_fits_and_truncated(tmp_path):
    (tmp_path / "b.fits").write_bytes(b"hello" * 1000)
    with pytest.raises(InputError, match="not a FITS file"):
        read_fits(tmp_path / "b.fits")
    cards = [_card("SIMPLE", "T"), _card("BITPIX", "-32"), _card("NAXIS", "2"),
             _card("NAXIS1", "100"), _card("NAXIS2", "100")]
    header = b"".join(cards) + b"END".ljust(80)
    (tmp_path / "c.fits").write_bytes(header + b" " * (-len(header) % 2880) + b"\0" * 400)
    with pytest.raises(InputError, match="truncated"):
        read_fits(tmp_path / "c.fits")


def test_sky_to_pixel_sin():
    header = {"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN", "CRVAL1": 200.0, "CRVAL2": 30.0,
              "CRPIX1": 129.0, "CRPIX2": 129.0, "CDELT1": -0.01, "CDELT2": 0.01}
    assert sky_to_pixel(header, math.radians(200.0), math.radians(30.0)) == pytest.approx((128, 128))
    x, y = sky_to_pixel(header, math.radians(200.0), math.radians(30.05))
    assert x == pytest.approx(128) and y == pytest.approx(133, abs=1e-3)
    x, _ = sky_to_pixel(header, math.radians(200.1), math.radians(30.0))
    assert x < 128                                    # east is left
    with pytest.raises(InputError, match="SIN"):
        sky_to_pixel(dict(header, CTYPE1="RA---TAN"), 0.0, 0.0)
    with pytest.raises(InputError, match="behind"):
        sky_to_pixel(header, math.radians(20.0), math.radians(-30.0))
