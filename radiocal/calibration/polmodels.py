"""Linear polarisation of the standard polarisation calibrators (Perley & Butler 2013).

Perley & Butler 2013, ApJS 206, 16, "Integrated Polarization Properties of 3C48, 3C138, 3C147
and 3C286" (arXiv:1302.6662), Table 4: fractional linear polarisation and position angle (EVPA,
degrees, north through east) against frequency. The values below are the table's, as tabulated
by the MeerKAT (IDIA) and uGMRT polarisation pipelines; the abstract gives 3C286's angle rising
from 33 degrees at 8 GHz to 36 degrees at 45 GHz. Between nodes the fraction and the angle are
interpolated linearly in frequency; outside the nodes they hold the end values.

* 3C286: stable (fraction rising by ~0.015 %/yr, not modelled); the angle calibrator of choice.
* 3C138: variable (the fraction follows its total flux): a few percent uncertain.
* 3C48: below 2 GHz its angle is scrambled by Faraday rotation and the fraction is < 1 %: there
  it is treated as unpolarised (a leakage calibrator), at 2.5-8.5 GHz as a weak angle
  calibrator. 3C147 is depolarised below 4 GHz and is not listed.

Stokes V of all of them is taken as zero.

Leakage calibrators (:data:`UNPOLARISED`): sources whose polarisation is below ~0.1 %, on which
CASA's ``polcal(poltype='Df')`` solves leakages from a single scan (relative leakages: one
complex offset common to all antennas stays undetermined, and it does not leak Stokes I into
the cross hands).
"""

from __future__ import annotations

import numpy as np

from radiocal.model.flux_standards import ALIASES, FluxModel, standard_model

# name -> (frequency GHz, fractional polarisation, EVPA degrees)
PERLEY_BUTLER_2013 = {
    "3C286": ((1.02, 1.47, 1.87, 2.57, 3.57, 4.89, 6.68, 8.43, 11.3, 45.0),
              (0.086, 0.098, 0.101, 0.106, 0.112, 0.115, 0.119, 0.121, 0.123, 0.123),
              (33.0, 33.0, 33.0, 33.0, 33.0, 33.0, 33.0, 33.0, 34.0, 36.0)),
    "3C138": ((1.05, 1.45, 1.64, 1.95, 2.45, 2.95, 3.25),
              (0.056, 0.075, 0.084, 0.090, 0.104, 0.107, 0.100),
              (-14.0, -11.0, -10.0, -10.0, -10.0, -10.0, -10.0)),
    "3C48": ((2.565, 8.435), (0.015, 0.054), (-112.9, -63.4)),
}
# below this frequency (GHz) 3C48's polarisation is unusable (Faraday rotation, < 1 %)
_3C48_DEPOLARISED_GHZ = 2.0
# name -> highest frequency (GHz) at which it is unpolarised: OQ208 = J1407+2827 (NRAO's
# leakage calibrator; Perley's 2019 VLA tests call it unpolarised), PKS 1934-638 (ATCA's
# leakage calibrator), 3C147 (< 0.1 % at 20 cm, Perley 2008; depolarised below 4 GHz as
# Perley & Butler 2013 show) and 3C48 below 2 GHz (above).
UNPOLARISED = {"J1407+2827": 50.0, "OQ208": 50.0, "1407+284": 50.0, "1934-638": 50.0,
               "3C147": 4.0, "3C48": _3C48_DEPOLARISED_GHZ}


def polarisation_standard(name: str) -> str | None:
    """Canonical name (3C286, 3C138, 3C48) of a polarisation standard, else None."""
    key = str(name).strip().upper().replace(" ", "")
    canonical = ALIASES.get(key, key)
    return canonical if canonical in PERLEY_BUTLER_2013 else None


def fractional_qu(name: str, freqs) -> np.ndarray:
    """Fractional Stokes ``(Q/I, U/I)`` of a standard at ``freqs`` (Hz): (frequency, 2) float64.

    Zero where the source is unpolarised (3C48 below 2 GHz).
    """
    canonical = polarisation_standard(name)
    if canonical is None:
        raise ValueError(f"{name!r} is not a polarisation standard (3C286, 3C138, 3C48)")
    nodes, frac, angle = (np.asarray(v, dtype=np.float64) for v in PERLEY_BUTLER_2013[canonical])
    ghz = np.asarray(freqs, dtype=np.float64) / 1e9
    p = np.interp(ghz, nodes, frac)
    chi = np.radians(np.interp(ghz, nodes, angle))
    if canonical == "3C48":
        p = np.where(ghz < _3C48_DEPOLARISED_GHZ, 0.0, p)
    return np.stack([p * np.cos(2 * chi), p * np.sin(2 * chi)], axis=-1)


def stokes_model(name: str, freqs, flux: FluxModel | None = None) -> np.ndarray:
    """Stokes ``(I, Q, U, V)`` in Jy of a calibrator at ``freqs`` (Hz): (frequency, 4) float64.

    ``flux`` is its Stokes I model (default: its Perley & Butler 2017 standard); a field that
    is no polarisation standard is unpolarised.
    """
    freqs = np.asarray(freqs, dtype=np.float64)
    flux = flux if flux is not None else standard_model(name)
    out = np.zeros(freqs.shape + (4,))
    out[..., 0] = flux(freqs)
    if polarisation_standard(name) is not None:
        out[..., 1:3] = fractional_qu(name, freqs) * out[..., :1]
    return out


def is_polarised(name: str, freqs) -> bool:
    """Whether a field is a standard with usable linear polarisation at ``freqs`` (Hz)."""
    return (polarisation_standard(name) is not None
            and bool(np.any(np.hypot(*fractional_qu(name, freqs).T) > 0.01)))


def is_unpolarised(name: str, freqs) -> bool:
    """Whether a field is a known leakage calibrator (:data:`UNPOLARISED`) at every one of
    ``freqs`` (Hz)."""
    key = str(name).strip().upper().replace(" ", "")
    limit = UNPOLARISED.get(ALIASES.get(key, key), UNPOLARISED.get(key))
    return limit is not None and bool(np.all(np.asarray(freqs, dtype=np.float64) / 1e9 < limit))
