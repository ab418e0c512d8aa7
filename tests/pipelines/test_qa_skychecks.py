"""Sky-model QA: a source found on an image where and as bright as it was put; the criteria."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radiocal.imaging.fits import sky_to_pixel
from radiocal.qa import skychecks

HEADER = {"CTYPE1": "RA---SIN", "CTYPE2": "DEC--SIN", "CRVAL1": 300.0, "CRVAL2": 37.0,
          "CRPIX1": 65.0, "CRPIX2": 65.0, "CDELT1": -0.5, "CDELT2": 0.5}


def _image_with(ra, dec, flux, shift=(0.0, 0.0), sigma=1.5):
    """A 128 x 128 image with a Gaussian of peak ``flux`` at (ra, dec) moved by ``shift`` pixels."""
    x0, y0 = sky_to_pixel(HEADER, ra, dec)
    y, x = np.mgrid[:128, :128]
    r2 = (x - x0 - shift[0]) ** 2 + (y - y0 - shift[1]) ** 2
    return flux * np.exp(-r2 / (2 * sigma ** 2))


@pytest.mark.parametrize("shift", [(0.0, 0.0), (0.3, -0.2), (2.0, 1.0)])
def test_a_source_is_measured_where_it_was_put(shift):
    ra, dec = math.radians(305.0), math.radians(40.0)
    plane = _image_with(ra, dec, 1000.0, shift)
    found = skychecks.measure_source(HEADER, plane, ra, dec)
    expected = math.hypot(shift[0] * 0.5, shift[1] * 0.5)
    # the parabola through three samples of a Gaussian of 1.5 px: within 0.1 px (0.05 deg)
    assert found["offset_deg"] == pytest.approx(expected, abs=0.05)
    assert 950 < found["measured_jy"] <= 1000.0


def test_a_source_off_the_image_is_not_measured():
    plane = np.zeros((128, 128))
    assert skychecks.measure_source(HEADER, plane, math.radians(120.0), math.radians(-60.0)) is None


def test_problems_name_the_source_and_the_tolerance():
    row = dict(image="X-MFS-image.fits", prefix="X", band=True, source="CygA",
               frequency_hz=6e7, model_jy=1000.0)
    good = {**row, "measured_jy": 1100.0, "ratio": 1.1, "offset_deg": 0.2}
    faint = {**row, "measured_jy": 500.0, "ratio": 0.5, "offset_deg": 0.2}
    moved = {**row, "measured_jy": 1000.0, "ratio": 1.0, "offset_deg": 3.0}
    channel = {**faint, "band": False}     # channel images show the spectrum, they do not fail
    assert skychecks.source_problems([good, channel]) == []
    (flux,) = skychecks.source_problems([faint])
    assert "CygA" in flux and "30%" in flux
    (position,) = skychecks.source_problems([moved])
    assert "3.00 deg" in position


def test_image_groups_pair_band_and_channel_images(tmp_path):
    for name in ("A-MFS-image.fits", "A-0000-image.fits", "A-0001-image.fits", "A-0000-dirty.fits",
                 "B-image.fits"):
        (tmp_path / name).touch()
    groups = skychecks.image_groups(tmp_path)
    assert groups["A"]["band"].name == "A-MFS-image.fits"
    assert [p.name for p in groups["A"]["channels"]] == ["A-0000-image.fits", "A-0001-image.fits"]
    assert groups["B"]["band"].name == "B-image.fits" and groups["B"]["channels"] == []
