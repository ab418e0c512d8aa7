"""The A-team sky model of OVRO-LWA-style bandpass calibration.

Below 100 MHz the sky seen by a dipole array is dominated by four sources: Cas A and Cyg A
(~16 kJy at 80 MHz), then Vir A and Tau A (~2 kJy). The OVRO-LWA pipeline calibrates its bandpass
against the ones above the horizon, each attenuated by a simple dipole beam ``sin(elevation)^1.6``
(the same for both feeds), leaving out those the beam suppresses below 1 %. Spectra are
Perley & Butler (2017), the published models that reach these frequencies
(:data:`radiocal.model.flux_standards.PERLEY_BUTLER_2017`).

Positions are J2000; elevations are computed at the array centre (the mean antenna position) by
:func:`radiocal.astro.elevation`, as the elevation flagger does (precession and nutation
included).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from radiocal.astro import dms, elevation, hms
from radiocal.model.flux_standards import PERLEY_BUTLER_2017, standard_model
from radiocal.errors import ConfigError
from radiocal.model.skymodel import POINT, SkyModel


@dataclass(frozen=True)
class ATeamSource:
    name: str
    ra: float    # radians, J2000
    dec: float   # radians, J2000
    model: str   # key of PERLEY_BUTLER_2017


ATEAM = (
    ATeamSource("CasA", hms(23, 23, 24.0), dms(58, 48, 54.0), "CASA"),
    ATeamSource("CygA", hms(19, 59, 28.35663), dms(40, 44, 2.0970), "CYGA"),
    ATeamSource("TauA", hms(5, 34, 31.94), dms(22, 0, 52.2), "TAUA"),
    ATeamSource("VirA", hms(12, 30, 49.42338), dms(12, 23, 28.0439), "VIRA"),
)
BEAM_EXPONENT = 1.6
MIN_BEAM = 0.01


def dipole_beam(elevation, exponent: float = BEAM_EXPONENT) -> np.ndarray:
    """Power response of a simple dipole, ``sin(elevation)^exponent``; 0 below the horizon."""
    s = np.sin(np.asarray(elevation, dtype=np.float64))
    return np.where(s > 0, np.abs(s) ** exponent, 0.0)


def pick_sources(names) -> tuple[ATeamSource, ...]:
    """A-team sources by name (``CasA``, ``Cyg A``, ... case and spaces ignored)."""
    by_key = {s.name.lower(): s for s in ATEAM}
    out = []
    for name in names:
        key = str(name).replace(" ", "").lower()
        if key not in by_key:
            raise ConfigError(f"unknown A-team source {name!r} "
                              f"(known: {', '.join(s.name for s in ATEAM)})")
        out.append(by_key[key])
    return tuple(out)


def elevations(times, antenna_positions, sources) -> np.ndarray:
    """Elevation (radians) of each source at the array centre: (time, source).

    Parameters
    ----------
    times : (time,) float, MJD seconds UTC
    antenna_positions : (antenna, 3) float, ITRF metres
    sources : sequence of ATeamSource
    """
    centre = np.asarray(antenna_positions, np.float64).mean(axis=0, keepdims=True)
    times = np.atleast_1d(np.asarray(times, np.float64))
    return np.stack([elevation(times, centre, s.ra, s.dec)[:, 0] for s in sources],
                    axis=-1) if sources else np.zeros((times.size, 0))


@dataclass(frozen=True)
class ApparentSource:
    """One A-team source as the array sees it over a time range."""

    name: str
    min_elevation_deg: float
    beam: float            # dipole beam at the mid time
    flux_80mhz: float      # intrinsic, Jy
    used: bool
    reason: str = ""       # why it was left out


def apparent_sources(times, antenna_positions, sources=ATEAM, min_elevation=0.0,
                     min_beam=MIN_BEAM, exponent=BEAM_EXPONENT) -> list[ApparentSource]:
    """Which sources to model over ``times``, and their beam attenuation.

    A source is used when it stays above ``min_elevation`` (degrees) at every time and its beam at
    the mid time is at least ``min_beam``.
    """
    times = np.asarray(times, np.float64)
    span = np.array([times.min(), 0.5 * (times.min() + times.max()), times.max()])
    elev = np.degrees(elevations(span, antenna_positions, sources))        # (3, source)
    out = []
    for k, src in enumerate(sources):
        beam = float(dipole_beam(np.radians(elev[1, k]), exponent))
        low = float(elev[:, k].min())
        flux = float(standard_model(src.model)([80e6])[0])
        if low < min_elevation:
            reason = "below the horizon" if low < 0 else f"below {min_elevation:g} deg"
            out.append(ApparentSource(src.name, low, beam, flux, False, reason))
        elif beam < min_beam:
            out.append(ApparentSource(src.name, low, beam, flux, False,
                                      f"beam {beam:.3g} < {min_beam:g}"))
        else:
            out.append(ApparentSource(src.name, low, beam, flux, True))
    return out


def ateam_skymodel(times, antenna_positions, sources=ATEAM, min_elevation=0.0,
                   min_beam=MIN_BEAM, exponent=BEAM_EXPONENT):
    """The apparent A-team sky over ``times``: intrinsic spectra times the dipole beam.

    Returns
    -------
    skymodel : SkyModel
        The used sources as points, log-polynomial spectra referenced to 1 GHz.
    report : list of ApparentSource
        Every candidate source, used or not, with elevation and beam.
    """
    report = apparent_sources(times, antenna_positions, sources, min_elevation, min_beam,
                              exponent)
    used = [(src, rep) for src, rep in zip(sources, report) if rep.used]
    n = len(used)
    nterm = max((len(PERLEY_BUTLER_2017[s.model]) - 1 for s, _ in used), default=1)
    stokes = np.zeros((n, 4))
    index = np.zeros((n, nterm))
    for i, (src, rep) in enumerate(used):
        coeffs = PERLEY_BUTLER_2017[src.model]
        # log10 S = a0 + a1 x + a2 x^2 ... with x = log10(nu / 1 GHz): DP3's logarithmic
        # spectral index about 1 GHz with S0 = 10^a0 and indices a1, a2, ...
        stokes[i, 0] = 10.0 ** coeffs[0] * rep.beam
        index[i, :len(coeffs) - 1] = coeffs[1:]
    model = SkyModel(
        name=np.array([s.name for s, _ in used], dtype=str),
        shape=np.array([POINT] * n, dtype=str),
        ra=np.array([s.ra for s, _ in used], dtype=np.float64),
        dec=np.array([s.dec for s, _ in used], dtype=np.float64),
        stokes=stokes, spectral_index=index,
        logarithmic_si=np.ones(n, dtype=bool), reference_frequency=np.full(n, 1e9),
        major=np.zeros(n), minor=np.zeros(n), orientation=np.zeros(n))
    return model, report
