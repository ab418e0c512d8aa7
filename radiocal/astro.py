"""Astronomy in one place, on astropy: time scales, sidereal time, alt/az, parallactic angles
and feed rotation, angles, units.

radiocal keeps times as the MS does: seconds since MJD 0 (1858-11-17), UTC (``MJD seconds``).
Directions are J2000 right ascension and declination in radians; antenna positions are ITRF
(x, y, z) metres. Everything here takes arrays and makes one astropy call per array (one ``Time``
of a scan's times, never one per row): astropy's per-call overhead is ~1 ms, its per-element cost
microseconds.

Earth orientation (UT1 - UTC, polar motion) comes from the IERS tables that astropy ships
(``astropy-iers-data``); radiocal never downloads them at run time (a pipeline on a cluster node
has no network, and a run must not depend on one). Outside the tables' span, UT1 is taken as UTC
(error < 0.9 s of time, 14 arcsec of hour angle), as the hand-written formulas this module
replaced always did. Parallactic angles take UT1 as UTC everywhere and call ERFA (astropy's own
library) directly: reading the tables and importing astropy's coordinates cost more than they
change there (:func:`parallactic_angles`).

astropy is imported on first use: its import costs ~0.8 s, which ``import radiocal`` and the
CLI's start-up must not pay.

The feed rotation, in CASA's convention (``PJones``):

* linear feeds: ``P = [[cos chi, sin chi], [-sin chi, cos chi]]``, so an observed ``XX`` is
  ``I + Q cos 2chi + U sin 2chi`` and ``XY`` is ``U cos 2chi - Q sin 2chi + iV``;
* circular feeds: ``P = diag(exp(-i chi), exp(+i chi))``, so ``RL = (Q + iU) exp(-2i chi)``.
"""

from __future__ import annotations

import contextlib
import datetime
import math

import numpy as np

# Physical constants, SI (the values of astropy.constants, checked by the tests; literals here so
# that reading one does not import astropy)
SPEED_OF_LIGHT = 299792458.0      # m/s, exact by definition
BOLTZMANN = 1.380649e-23          # J/K, exact by definition
PARSEC = 3.0856775814913673e16    # m
SOLAR_RADIUS = 6.957e8            # m, IAU 2015 nominal
JANSKY = 1e-26                    # W m^-2 Hz^-1
SECONDS_PER_DAY = 86400.0
ARCSEC = math.pi / (180.0 * 3600.0)  # radians

# Radians per angle unit and Hz per frequency unit: the spellings CASA, WSClean and sky-model
# files use. Parsers that accept units look them up here.
ANGLE_UNITS = {
    "rad": 1.0, "deg": math.pi / 180.0, "arcmin": 60.0 * ARCSEC, "amin": 60.0 * ARCSEC,
    "arcsec": ARCSEC, "asec": ARCSEC, "mas": 1e-3 * ARCSEC,
}
FREQUENCY_UNITS = {"Hz": 1.0, "kHz": 1e3, "KHz": 1e3, "MHz": 1e6, "GHz": 1e9, "THz": 1e12}


# MJD 0 (1858-11-17T00:00 UTC), the origin of MS times. Calendar conversions below count 86400 s
# per day, as MS times do (a time in a leap second has no calendar stamp of its own).
MJD_EPOCH = datetime.datetime(1858, 11, 17, tzinfo=datetime.timezone.utc)
_MJD_EPOCH64 = np.datetime64("1858-11-17T00:00:00", "us")


def to_datetime(mjd_seconds: float) -> datetime.datetime:
    """An aware UTC ``datetime`` of one MJD-seconds time stamp."""
    return MJD_EPOCH + datetime.timedelta(seconds=float(mjd_seconds))


def to_datetime64(mjd_seconds) -> np.ndarray:
    """``datetime64[us]`` (UTC) of MJD seconds, any shape (matplotlib's time axes take these)."""
    seconds = np.asarray(mjd_seconds, dtype=np.float64)
    return _MJD_EPOCH64 + np.round(seconds * 1e6).astype("timedelta64[us]")


@contextlib.contextmanager
def _offline():
    """IERS tables from the installed package only; UT1 = UTC where they end (module docstring)."""
    from astropy.utils import iers

    with iers.conf.set_temp("auto_download", False), \
            iers.conf.set_temp("iers_degraded_accuracy", "ignore"):
        yield


def to_time(mjd_seconds):
    """An astropy ``Time`` (UTC) of MJD seconds; any shape.

    Whole days and the fraction go in separately, so no precision is lost to the MJD's size.
    """
    from astropy.time import Time

    seconds = np.asarray(mjd_seconds, dtype=np.float64)
    days = np.floor(seconds / SECONDS_PER_DAY)
    return Time(days, (seconds - days * SECONDS_PER_DAY) / SECONDS_PER_DAY, format="mjd",
                scale="utc")


def mjd_seconds(time) -> np.ndarray:
    """MJD seconds (UTC) of an astropy ``Time``, float64 of the same shape."""
    utc = time.utc
    return (np.asarray(utc.jd1, np.float64) - 2400000.5) * SECONDS_PER_DAY \
        + np.asarray(utc.jd2, np.float64) * SECONDS_PER_DAY


def sidereal_time(mjd_seconds, longitude: float = 0.0, kind: str = "apparent") -> np.ndarray:
    """Local sidereal time in radians, [0, 2 pi), at an east ``longitude`` (radians).

    ``kind`` is ``"apparent"`` (the hour angle of the true equinox, what pointing needs) or
    ``"mean"``; UT1 from the IERS tables, IAU 2006/2000A.
    """
    from astropy import units as u

    with _offline():
        st = to_time(mjd_seconds).sidereal_time(kind, longitude=longitude * u.rad)
    return np.asarray(st.to_value(u.rad), dtype=np.float64) % (2.0 * math.pi)


def _locations(positions):
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    xyz = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    return EarthLocation.from_geocentric(xyz[:, 0], xyz[:, 1], xyz[:, 2], unit=u.m)


def geodetic(positions) -> np.ndarray:
    """WGS84 (east longitude, latitude) in radians and height in metres of ITRF positions.

    positions: (antenna, 3) metres -> (antenna, 3).
    """
    from astropy import units as u

    lon, lat, height = _locations(positions).to_geodetic("WGS84")
    return np.stack([lon.to_value(u.rad), lat.to_value(u.rad), height.to_value(u.m)], axis=-1)


def itrf(longitude, latitude, height) -> np.ndarray:
    """ITRF (x, y, z) metres of WGS84 geodetic positions (radians, radians, metres): (..., 3)."""
    from astropy import units as u
    from astropy.coordinates import EarthLocation

    loc = EarthLocation.from_geodetic(np.asarray(longitude) * u.rad, np.asarray(latitude) * u.rad,
                                      np.asarray(height) * u.m, ellipsoid="WGS84")
    return np.stack([loc.x.to_value(u.m), loc.y.to_value(u.m), loc.z.to_value(u.m)], axis=-1)


def _itrs_directions(mjd_seconds, ra: float, dec: float) -> np.ndarray:
    """Unit vectors (time, 3) in ITRS towards a J2000 direction at each time.

    Precession, nutation, annual aberration, UT1 and polar motion are astropy's (FK5 J2000 ->
    GCRS -> CIRS -> ITRS); only diurnal aberration (< 0.32 arcsec) is left out, because the
    direction is formed once for the whole array rather than per antenna.
    """
    from astropy import units as u
    from astropy.coordinates import FK5, ITRS, SkyCoord

    times = to_time(np.atleast_1d(np.asarray(mjd_seconds, np.float64)))
    with _offline():
        source = SkyCoord(ra * u.rad, dec * u.rad, frame=FK5(equinox="J2000"))
        itrs = source.transform_to(ITRS(obstime=times))
    cart = itrs.cartesian.xyz.value                                  # (3, time)
    return (cart / np.linalg.norm(cart, axis=0)).T


def _enu_axes(positions):
    """East, north and up unit vectors (antenna, 3) of ITRF positions (WGS84 normal)."""
    lonlat = geodetic(positions)
    lon, lat = lonlat[:, 0], lonlat[:, 1]
    sl, cl, sp, cp = np.sin(lon), np.cos(lon), np.sin(lat), np.cos(lat)
    east = np.stack([-sl, cl, np.zeros_like(lon)], axis=-1)
    north = np.stack([-sp * cl, -sp * sl, cp], axis=-1)
    up = np.stack([cp * cl, cp * sl, sp], axis=-1)
    return east, north, up


def altaz(mjd_seconds, positions, ra: float, dec: float) -> tuple[np.ndarray, np.ndarray]:
    """Azimuth (from north through east) and elevation, radians, of a J2000 direction.

    Parameters
    ----------
    mjd_seconds : (time,) float, UTC
    positions : (antenna, 3) float, ITRF metres
    ra, dec : float, radians (J2000)

    Returns
    -------
    azimuth, elevation : (time, antenna) float64
        Geometric (no refraction); precession and nutation included (see ``_itrs_directions``).
    """
    direction = _itrs_directions(mjd_seconds, ra, dec)               # (time, 3)
    east, north, up = _enu_axes(positions)                           # (antenna, 3) each
    e, n, z = direction @ east.T, direction @ north.T, direction @ up.T
    return np.arctan2(e, n) % (2.0 * math.pi), np.arcsin(np.clip(z, -1.0, 1.0))


def elevation(mjd_seconds, positions, ra: float, dec: float) -> np.ndarray:
    """Elevation, radians, of a J2000 direction per (time, antenna); see :func:`altaz`."""
    return altaz(mjd_seconds, positions, ra, dec)[1]


def zenith(mjd_seconds, position) -> tuple[np.ndarray, np.ndarray]:
    """J2000 (ra, dec), radians, of the zenith (WGS84 normal) of one ITRF position at each time.

    ``mjd_seconds`` (time,) UTC, ``position`` (3,) metres -> two (time,) float64; one astropy
    transform for all times (precession, nutation, aberration, no refraction).
    """
    from astropy import units as u
    from astropy.coordinates import FK5, AltAz, SkyCoord

    times = to_time(np.atleast_1d(np.asarray(mjd_seconds, np.float64)))
    with _offline():
        up = SkyCoord(alt=np.full(times.shape, 90.0) * u.deg, az=np.zeros(times.shape) * u.deg,
                      frame=AltAz(obstime=times, location=_locations(position)[0]))
        j2000 = up.transform_to(FK5(equinox="J2000"))
    return (np.asarray(j2000.ra.to_value(u.rad), np.float64),
            np.asarray(j2000.dec.to_value(u.rad), np.float64))


def angular_distance(ra1, dec1, ra2, dec2) -> np.ndarray:
    """Great-circle distance, radians, between directions (arrays broadcast)."""
    s = (np.sin(dec1) * np.sin(dec2) + np.cos(dec1) * np.cos(dec2) * np.cos(np.subtract(ra1, ra2)))
    return np.arccos(np.clip(s, -1.0, 1.0))


def rotating_antennas(mounts) -> np.ndarray:
    """(antenna,) bool: the antennas whose feeds rotate on the sky (alt-az mounts)."""
    keys = [str(m).strip().upper().replace("_", "-") for m in mounts]
    return np.array([k.startswith("ALT-AZ") or k.startswith("ALTAZ") for k in keys], dtype=bool)


def parallactic_angles(times, positions, ra: float, dec: float) -> np.ndarray:
    """Parallactic angle of ``(ra, dec)`` (J2000, radians) at each antenna.

    ERFA (astropy's own library, ``pyerfa``) places the source: ``atci13`` gives its CIRS
    position at each time (precession-nutation IAU 2006/2000A, light deflection, annual
    aberration), ``atio13`` its hour angle and declination at each antenna's WGS84 longitude,
    latitude and height (diurnal aberration included, no refraction), and ``hd2pa`` the angle of
    the spherical triangle pole-zenith-source, ``tan chi = sin H / (cos dec tan lat - sin dec
    cos H)``, as CASA's ``MSDerivedValues``.

    UT1 is taken as UTC and the pole as the reference pole: astropy's IERS tables (what
    :func:`sidereal_time` uses) cost ~0.7-1 CPU-s to read and astropy's import ~1 s more, all
    with the GIL held in the middle of a calibration, and what they add is below what a
    polarisation calibration can notice. |UT1 - UTC| < 0.9 s by definition, 13.5 arcsec of hour
    angle, and the angle moves at most ``1 / sin(zenith distance)`` times as fast as the hour
    angle: 0.06 deg for a source culminating 3.6 deg from the zenith (3C286 at the VLA) in the
    worst year, 0.005 deg on the VLA-like test data (UT1 - UTC = 0.07 s; against astropy's TETE
    hour angle with the IERS tables, over a day of 3C286 at the VLA), while a leakage or
    cross-hand phase solution is good to ~0.1 deg at best. Polar motion (< 0.5 arcsec) moves it
    less still.

    Parameters
    ----------
    times : (time,) float64, MJD seconds UTC
    positions : (antenna, 3) float64, ITRF metres

    Returns
    -------
    (time, antenna) float64, radians
    """
    import warnings

    import erfa

    times = np.asarray(times, dtype=np.float64)
    positions = np.asarray(positions, dtype=np.float64).reshape(-1, 3)
    if times.size == 0 or positions.shape[0] == 0:
        return np.zeros((times.size, positions.shape[0]))
    days = np.floor(times / SECONDS_PER_DAY)
    utc1, utc2 = days + 2400000.5, (times - days * SECONDS_PER_DAY) / SECONDS_PER_DAY
    with warnings.catch_warnings():
        # "dubious year": a date past ERFA's leap-second table, which astropy's Time also
        # treats as having no new leap second
        warnings.simplefilter("ignore", erfa.ErfaWarning)
        tt1, tt2 = erfa.taitt(*erfa.utctai(utc1, utc2))
        ri, di, _ = erfa.atci13(ra, dec, 0.0, 0.0, 0.0, 0.0, tt1, tt2)
        lon, lat, height = erfa.gc2gd(1, positions)                  # 1: WGS84
        _, _, hour, delta, _ = erfa.atio13(ri[:, None], di[:, None], utc1[:, None],
                                           utc2[:, None], 0.0, lon[None], lat[None],
                                           height[None], 0.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    return erfa.hd2pa(hour, delta, lat[None])


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


def lm_from_radec(ra, dec, ra0, dec0):
    """Direction cosines (l, m) of (ra, dec) about a phase centre (ra0, dec0), radians.

    Arrays broadcast (the centre too: one per time of a drift scan); also returns ``n`` (> 0 in
    front of the tangent plane) as the third item.
    """
    d = np.asarray(ra) - ra0
    sd, cd = np.sin(dec), np.cos(dec)
    l = cd * np.sin(d)
    m = sd * np.cos(dec0) - cd * np.sin(dec0) * np.cos(d)
    n = sd * np.sin(dec0) + cd * np.cos(dec0) * np.cos(d)
    return l, m, n


def radec_from_lm(l, m, ra0: float, dec0: float):
    """(ra, dec) radians of direction cosines (l, m) about (ra0, dec0); ra in [0, 2 pi)."""
    n = np.sqrt(1.0 - np.square(l) - np.square(m))
    dec = np.arcsin(m * math.cos(dec0) + n * math.sin(dec0))
    ra = ra0 + np.arctan2(l, n * math.cos(dec0) - m * math.sin(dec0))
    return ra % (2.0 * math.pi), dec


def hms(hours: float, minutes: float, seconds: float) -> float:
    """Radians of a right ascension given as hours, minutes, seconds (for tables in code)."""
    return math.radians(15.0 * (hours + minutes / 60.0 + seconds / 3600.0))


def dms(degrees: float, minutes: float, seconds: float) -> float:
    """Radians of a declination given as degrees, minutes, seconds; the sign is that of
    ``degrees`` (write ``-0.0`` for a declination between -1 and 0 deg)."""
    return math.copysign(math.radians(abs(degrees) + minutes / 60.0 + seconds / 3600.0), degrees)


def parse_angle(text: str, unit: str) -> float:
    """Radians of a sexagesimal or unit-suffixed angle, read by astropy's ``Angle``.

    ``unit`` ("hourangle" or "deg") says what a bare sexagesimal means: ``13:50:00`` and
    ``13h50m00s`` are hours for a right ascension, ``+25:10:00`` / ``25d10m00s`` degrees.
    Raises ``ValueError`` naming the text when astropy cannot read it.
    """
    from astropy import units as u
    from astropy.coordinates import Angle

    try:
        return float(Angle(text, unit=getattr(u, unit)).to_value(u.rad))
    except (ValueError, TypeError, u.UnitsError) as err:
        raise ValueError(f"cannot read angle {text!r}: {err}") from None


def parse_direction(text: str) -> tuple[float, float]:
    """J2000 (ra, dec) radians of ``'RA DEC'`` (or ``'RA,DEC'``): ``'19h59m28.36s +40d44m02.1s'``,
    ``'19:59:28.36 +40:44:02.1'`` or ``'299.87deg 40.73deg'`` (bare sexagesimal RA in hours).
    Raises ``ValueError`` naming the text."""
    parts = str(text).replace(",", " ").split()
    if len(parts) != 2:
        raise ValueError(f"direction {text!r}: expected 'RA DEC', e.g. '19h59m28.36s +40d44m02.1s'")
    ra, dec = parse_angle(parts[0], "hourangle"), parse_angle(parts[1], "deg")
    if not abs(dec) <= math.pi / 2:
        raise ValueError(f"direction {text!r}: declination outside [-90, 90] degrees")
    return ra % (2.0 * math.pi), dec


def format_ra(ra: float, precision: int = 6, sep: str = "hms") -> str:
    """``'13h50m00.000000s'`` (``sep=":"``: ``'13:50:00.000000'``) of ``ra`` radians, hours
    wrapped to [0, 24); seconds rounded to ``precision`` decimals, carrying into the minutes."""
    from astropy import units as u
    from astropy.coordinates import Longitude

    return Longitude(ra * u.rad).to_string(unit=u.hourangle, sep=sep, precision=precision,
                                           pad=True)


def format_dec(dec: float, precision: int = 5, sep: str = "dms") -> str:
    """``'+25d10m00.00000s'`` (``sep="."``: CASA's ``'+25.10.00.00000'``) of ``dec`` radians,
    the sign always written (also for -0d...)."""
    from astropy import units as u
    from astropy.coordinates import Latitude

    return Latitude(dec * u.rad).to_string(unit=u.deg, sep=sep, precision=precision, pad=True,
                                           alwayssign=True)
