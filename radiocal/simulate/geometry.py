"""Array layouts and (u, v, w) for the simulator.

Conventions follow CASA's simulator, checked against ``../shared/data/vla_small``: the baseline of a
row is ``position[antenna1] - position[antenna2]`` (ITRF), rotated to (u, v, w) with the Greenwich
mean sidereal hour angle (:func:`radiocal.astro.sidereal_time`) of the J2000 phase centre;
precession and nutation are left out of (u, v, w) (the simulated data are self-consistent, which is
all the tests need).
"""

from __future__ import annotations

import numpy as np

from radiocal import astro
from radiocal.simulate.config import LWA_SITE, VLA_SITE, SimConfig


def enu_to_itrf(enu: np.ndarray, site: tuple[float, float, float]) -> np.ndarray:
    """ITRF positions (antenna, cartesian) of east/north/up offsets (antenna, 3) from a site."""
    lon, lat, height = site
    east = np.array([-np.sin(lon), np.cos(lon), 0.0])
    north = np.array([-np.sin(lat) * np.cos(lon), -np.sin(lat) * np.sin(lon), np.cos(lat)])
    up = np.array([np.cos(lat) * np.cos(lon), np.cos(lat) * np.sin(lon), np.sin(lat)])
    return astro.itrf(*site) + enu[:, :1] * east + enu[:, 1:2] * north + enu[:, 2:3] * up


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
        # that no two baselines are redundant. The jitter may not bring an antenna nearer its
        # arm's previous one than two dishes: the real array's pads stand 35 m or more apart,
        # and dishes closer than a diameter would overlap (the flagger then refuses to shadow).
        diameter = 25.0
        arms = (("N", np.radians(355.0)), ("E", np.radians(115.0)), ("W", np.radians(236.0)))
        enu, names, outermost = [], [], {}
        for i in range(n):
            arm, az = arms[i % 3]
            k = i // 3 + 1
            r = 35.0 * k ** 1.6 * (1 + 0.15 * rng.standard_normal()) + 10.0
            r = max(r, outermost.get(arm, -np.inf) + 2 * diameter)
            outermost[arm] = r
            a = az + 0.03 * rng.standard_normal()
            enu.append([r * np.sin(a), r * np.cos(a), rng.normal(0, 0.5)])
            names.append(f"{arm}{k:02d}")
        site, mount = VLA_SITE, "alt-az"
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


def zenith(times: np.ndarray, site: tuple[float, float, float]) -> np.ndarray:
    """The zenith of ``site`` at each time as the simulator's phase centre: (time, 2) radians,
    (local mean sidereal time, latitude), as :meth:`SimConfig.lwa` places its field."""
    lst = astro.sidereal_time(times, site[0], kind="mean")
    return np.stack([lst, np.full(lst.shape, site[1])], axis=-1)


def baselines(n_antennas: int, autocorrelations: bool) -> tuple[np.ndarray, np.ndarray]:
    """Antenna pairs ``ant1 <= ant2`` in MS order: (baseline,) int32 each."""
    k = 0 if autocorrelations else 1
    a1, a2 = np.triu_indices(n_antennas, k)
    return a1.astype(np.int32), a2.astype(np.int32)


def uvw(positions: np.ndarray, ant1: np.ndarray, ant2: np.ndarray, times: np.ndarray,
        ra, dec) -> np.ndarray:
    """(u, v, w) in metres of each baseline towards a J2000 direction.

    Parameters
    ----------
    positions : (antenna, cartesian) ITRF metres
    ant1, ant2 : (baseline,) int
    times : (time,) MJD seconds
    ra, dec : float, or (time,) float for a phase centre per time (drift scans); radians

    Returns
    -------
    (time, baseline, uvw_label) float64
    """
    b = positions[ant1] - positions[ant2]                       # (baseline, cartesian)
    h = (astro.sidereal_time(times, kind="mean") - ra)[:, None]  # Greenwich hour angle (time, 1)
    dec = np.asarray(dec, dtype=np.float64)[..., None]
    sh, ch, sd, cd = np.sin(h), np.cos(h), np.sin(dec), np.cos(dec)
    bx, by, bz = b[None, :, 0], b[None, :, 1], b[None, :, 2]
    u = sh * bx + ch * by
    v = -sd * ch * bx + sd * sh * by + cd * bz
    w = cd * ch * bx - cd * sh * by + sd * bz
    return np.stack([u, v, w], axis=-1)
