"""Array layouts, sidereal time and (u, v, w) for the simulator.

Conventions follow CASA's simulator, checked against ``../shared/data/vla_small``: the baseline of a
row is ``position[antenna1] - position[antenna2]`` (ITRF), rotated to (u, v, w) with the Greenwich
hour angle of the phase centre; precession and nutation are ignored (the simulated data are
self-consistent, which is all the tests need).
"""

from __future__ import annotations

import numpy as np

from radiocal.io.testing.config import SimConfig

# (east longitude, latitude, height above the WGS84 ellipsoid): radians, radians, metres
VLA_SITE = (np.radians(-107.6184), np.radians(34.0790), 2124.0)
LWA_SITE = (np.radians(-118.2817), np.radians(37.2398), 1183.0)

_WGS84_A = 6378137.0
_WGS84_F = 1 / 298.257223563


def geodetic_to_itrf(lon: float, lat: float, height: float) -> np.ndarray:
    """ITRF (x, y, z) in metres of a WGS84 geodetic position; shape (cartesian,)."""
    e2 = _WGS84_F * (2 - _WGS84_F)
    n = _WGS84_A / np.sqrt(1 - e2 * np.sin(lat) ** 2)
    return np.array([
        (n + height) * np.cos(lat) * np.cos(lon),
        (n + height) * np.cos(lat) * np.sin(lon),
        (n * (1 - e2) + height) * np.sin(lat),
    ])


def enu_to_itrf(enu: np.ndarray, site: tuple[float, float, float]) -> np.ndarray:
    """ITRF positions (antenna, cartesian) of east/north/up offsets (antenna, 3) from a site."""
    lon, lat, height = site
    east = np.array([-np.sin(lon), np.cos(lon), 0.0])
    north = np.array([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)])
    up = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    return geodetic_to_itrf(*site) + enu[:, :1] * east + enu[:, 1:2] * north + enu[:, 2:3] * up


def gmst(mjd_seconds) -> np.ndarray:
    """Greenwich mean sidereal time, radians, of MJD seconds (UTC taken as UT1)."""
    days = np.asarray(mjd_seconds, dtype=np.float64) / 86400.0 - 51544.5
    return np.radians((280.46061837 + 360.98564736629 * days) % 360.0)


def lst(mjd_seconds, longitude: float) -> np.ndarray:
    """Local sidereal time, radians in [0, 2 pi), at an east longitude (radians)."""
    return (gmst(mjd_seconds) + longitude) % (2 * np.pi)


def layout(config: SimConfig, rng: np.random.Generator) -> dict:
    """Antenna table of the configured array.

    Returns
    -------
    dict
        ``name``, ``station`` (antenna,) str; ``position`` (antenna, cartesian) ITRF metres;
        ``diameter`` (antenna,) metres; ``mount`` (antenna,) str; ``site`` (lon, lat, height).
    """
    n = int(config.n_antennas)
    if config.layout == "vla":
        # A compact Y: arms at the VLA's azimuths, antennas spread out along them with jitter so
        # that no two baselines are redundant.
        arms = (("N", np.radians(355.0)), ("E", np.radians(115.0)), ("W", np.radians(236.0)))
        enu, names = [], []
        for i in range(n):
            arm, az = arms[i % 3]
            k = i // 3 + 1
            r = 35.0 * k ** 1.6 * (1 + 0.15 * rng.standard_normal()) + 10.0
            a = az + 0.03 * rng.standard_normal()
            enu.append([r * np.sin(a), r * np.cos(a), rng.normal(0, 0.5)])
            names.append(f"{arm}{k:02d}")
        site, diameter, mount = VLA_SITE, 25.0, "alt-az"
    else:
        # A dense random core, no two dipoles closer than 5 m.
        radius = max(50.0, 12.0 * np.sqrt(n))
        enu = []
        while len(enu) < n:
            e, nn = rng.uniform(-radius, radius, 2)
            if np.hypot(e, nn) > radius:
                continue
            if all(np.hypot(e - p[0], nn - p[1]) >= 5.0 for p in enu):
                enu.append([e, nn, 0.0])
        names = [f"LWA{i + 1:03d}" for i in range(n)]
        site, diameter, mount = LWA_SITE, 2.0, "alt-az"
    enu = np.asarray(enu, dtype=np.float64)
    return dict(
        name=np.array(names), station=np.array(names),
        position=enu_to_itrf(enu, site),
        diameter=np.full(n, diameter), mount=np.array([mount] * n), site=site,
    )


def baselines(n_antennas: int, autocorrelations: bool) -> tuple[np.ndarray, np.ndarray]:
    """Antenna pairs ``ant1 <= ant2`` in MS order: (baseline,) int32 each."""
    k = 0 if autocorrelations else 1
    a1, a2 = np.triu_indices(n_antennas, k)
    return a1.astype(np.int32), a2.astype(np.int32)


def uvw(positions: np.ndarray, ant1: np.ndarray, ant2: np.ndarray, times: np.ndarray,
        ra: float, dec: float) -> np.ndarray:
    """(u, v, w) in metres of each baseline towards a J2000 direction.

    Parameters
    ----------
    positions : (antenna, cartesian) ITRF metres
    ant1, ant2 : (baseline,) int
    times : (time,) MJD seconds
    ra, dec : float, radians

    Returns
    -------
    (time, baseline, uvw_label) float64
    """
    b = positions[ant1] - positions[ant2]                       # (baseline, cartesian)
    h = (gmst(times) - ra)[:, None]                              # Greenwich hour angle (time, 1)
    sh, ch, sd, cd = np.sin(h), np.cos(h), np.sin(dec), np.cos(dec)
    bx, by, bz = b[None, :, 0], b[None, :, 1], b[None, :, 2]
    u = sh * bx + ch * by
    v = -sd * ch * bx + sd * sh * by + cd * bz
    w = cd * ch * bx - cd * sh * by + sd * bz
    return np.stack([u, v, w], axis=-1)


def elevation(times: np.ndarray, ra: float, dec: float, site) -> np.ndarray:
    """Elevation, radians, of a direction seen from a site: (time,)."""
    h = lst(times, site[0]) - ra
    lat = site[1]
    return np.arcsin(np.sin(lat) * np.sin(dec) + np.cos(lat) * np.cos(dec) * np.cos(h))


def lm_from_radec(ra: float, dec: float, ra0: float, dec0: float):
    """Direction cosines (l, m) of (ra, dec) about (ra0, dec0), or None behind the tangent plane."""
    d = ra - ra0
    n = np.sin(dec) * np.sin(dec0) + np.cos(dec) * np.cos(dec0) * np.cos(d)
    if n <= 0:
        return None
    return (float(np.cos(dec) * np.sin(d)),
            float(np.sin(dec) * np.cos(dec0) - np.cos(dec) * np.sin(dec0) * np.cos(d)))


def radec_from_lm(l: float, m: float, ra0: float, dec0: float) -> tuple[float, float]:
    """(ra, dec) radians of direction cosines (l, m) about (ra0, dec0); ra in [0, 2 pi)."""
    n = np.sqrt(1.0 - l * l - m * m)
    dec = np.arcsin(m * np.cos(dec0) + n * np.sin(dec0))
    ra = ra0 + np.arctan2(l, n * np.cos(dec0) - m * np.sin(dec0))
    return float(ra % (2 * np.pi)), float(dec)
