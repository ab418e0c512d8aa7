"""Astronomy on astropy: the few positional quantities the engine needs (no hand-made
sidereal time, precession or geodesy), and the feed rotation they cause.

The feed rotation, in CASA's convention (``PJones``):

* linear feeds: ``P = [[cos chi, sin chi], [-sin chi, cos chi]]``, so an observed ``XX`` is
  ``I + Q cos 2chi + U sin 2chi`` and ``XY`` is ``U cos 2chi - Q sin 2chi + iV``;
* circular feeds: ``P = diag(exp(-i chi), exp(+i chi))``, so ``RL = (Q + iU) exp(-2i chi)``.
"""

from __future__ import annotations

import numpy as np


def rotating_antennas(mounts) -> np.ndarray:
    """(antenna,) bool: the antennas whose feeds rotate on the sky (alt-az mounts)."""
    keys = [str(m).strip().upper().replace("_", "-") for m in mounts]
    return np.array([k.startswith("ALT-AZ") or k.startswith("ALTAZ") for k in keys], dtype=bool)


def parallactic_angles(times, positions, ra: float, dec: float) -> np.ndarray:
    """Parallactic angle of ``(ra, dec)`` (J2000, radians) at each antenna.

    Astropy gives the source's apparent hour angle (apparent sidereal time at the antenna's
    longitude minus the right ascension of date, ``TETE``), its declination of date and the
    antenna's geodetic latitude; the angle is the spherical triangle pole-zenith-source,
    ``tan chi = sin H / (cos dec tan lat - sin dec cos H)``, as CASA's ``MSDerivedValues``.

    Parameters
    ----------
    times : (time,) float64, MJD seconds UTC
    positions : (antenna, 3) float64, ITRF metres

    Returns
    -------
    (time, antenna) float64, radians
    """
    import astropy.units as u
    from astropy.coordinates import TETE, EarthLocation, SkyCoord
    from astropy.time import Time
    from astropy.utils import iers

    times = np.asarray(times, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if times.size == 0 or positions.shape[0] == 0:
        return np.zeros((times.size, positions.shape[0]))
    # UT1-UTC (< 1 s) moves the angle by < 15 arcsec: never download IERS tables for it
    with iers.conf.set_temp("auto_download", False), \
            iers.conf.set_temp("iers_degraded_accuracy", "ignore"):
        t = Time(times / 86400.0, format="mjd", scale="utc")
        apparent = SkyCoord(ra=ra * u.rad, dec=dec * u.rad, frame="icrs").transform_to(
            TETE(obstime=t))
        geodetic = EarthLocation.from_geocentric(*positions.T, unit=u.m).to_geodetic()
        lst = t[:, None].sidereal_time("apparent", longitude=geodetic.lon[None, :]).rad
    hour = lst - apparent.ra.rad[:, None]
    delta = apparent.dec.rad[:, None]
    lat = geodetic.lat.rad[None, :]
    return np.arctan2(np.sin(hour), np.cos(delta) * np.tan(lat) - np.sin(delta) * np.cos(hour))


def feed_rotation(chi: np.ndarray, basis: str) -> np.ndarray:
    """CASA's ``P`` Jones for angles ``chi`` (any shape): complex128 (..., 2, 2)."""
    out = np.zeros(np.shape(chi) + (2, 2), dtype=np.complex128)
    if basis == "linear":
        c, s = np.cos(chi), np.sin(chi)
        out[..., 0, 0], out[..., 0, 1], out[..., 1, 0], out[..., 1, 1] = c, s, -s, c
    elif basis == "circular":
        out[..., 0, 0], out[..., 1, 1] = np.exp(-1j * chi), np.exp(1j * chi)
    else:
        raise ValueError(f"feed rotation needs a linear or circular basis, not {basis!r}")
    return out
