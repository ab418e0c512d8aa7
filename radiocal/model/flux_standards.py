"""Flux-density standards: Perley-Butler 2017 (the A-team included), Reynolds 1994 for
1934-638, the names calibrators go by, and manual ``setjy``-style spectra.

A :class:`FluxModel` is a Stokes I spectrum; calibration turns it into model visibilities of an
unpolarised point source at the phase centre (:mod:`radiocal.calibration.models`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

from radiocal.astro import FREQUENCY_UNITS
from radiocal.errors import ConfigError

# Perley & Butler 2017, ApJS 230, 7, Table 6 (the A-team: Table 5): log10(S/Jy) = sum_k a_k log10(nu/GHz)^k.
# 3C48, 3C138 and 3C147 vary slowly; these are the paper's fits (no time dependence).
PERLEY_BUTLER_2017 = {
    "3C286": (1.2481, -0.4507, -0.1798, 0.0357),
    "3C48": (1.3253, -0.7553, -0.1914, 0.0498),
    "3C138": (1.0088, -0.4981, -0.1552, -0.0102, 0.0223),
    "3C147": (1.4516, -0.6961, -0.2007, 0.0640, -0.0464, 0.0289),
    "3C196": (1.2872, -0.8530, -0.1534, -0.0200, 0.0201),
    "3C295": (1.4701, -0.7658, -0.2780, -0.0347, 0.0399),
    # The A-team, for low-frequency (OVRO-LWA) sky-model calibration. Fitted ranges: Cyg A and
    # Tau A 0.05-12 and 0.05-4 GHz, Vir A 0.05-3 GHz, Cas A 0.2-4 GHz (extrapolated below; Cas A
    # also fades by ~0.5-1 %/yr, not modelled).
    "CYGA": (3.3498, -1.0022, -0.225, 0.023, 0.043),
    "CASA": (3.3584, -0.7518, -0.035, -0.071),
    "TAUA": (2.9516, -0.2170, -0.047, -0.067),
    "VIRA": (2.4466, -0.8116, -0.048),
}
# Reynolds 1994 (ATNF AT/39.3/040) for the southern standard: log10 S = -30.7667 + 26.4908 y
# - 7.0977 y^2 + 0.605334 y^3 with y = log10(nu/MHz), rewritten here in x = log10(nu/GHz) = y - 3.
OTHER_STANDARDS = {
    "1934-638": ("Reynolds 1994", (1.170418, 0.248618, -1.649694, 0.605334)),
}
# names calibrators go by in observing files
ALIASES = {
    "J1331+3030": "3C286", "1331+305": "3C286", "1328+307": "3C286",
    "J0137+3309": "3C48", "0137+331": "3C48", "0134+329": "3C48",
    "J0521+1638": "3C138", "0521+166": "3C138", "0518+165": "3C138",
    "J0542+4951": "3C147", "0542+498": "3C147", "0538+498": "3C147",
    "J0813+4813": "3C196", "0813+482": "3C196", "0809+483": "3C196",
    "J1411+5212": "3C295", "1411+522": "3C295", "1409+524": "3C295",
    "J1939-6342": "1934-638", "1939-638": "1934-638", "PKS1934-638": "1934-638",
    "PKSB1934-638": "1934-638", "B1934-638": "1934-638",
    "3C405": "CYGA", "CYGNUSA": "CYGA", "3C461": "CASA", "CASSIOPEIAA": "CASA",
    "3C144": "TAUA", "TAURUSA": "TAUA", "CRAB": "TAUA", "3C274": "VIRA", "VIRGOA": "VIRA",
    "M87": "VIRA",
}

_UNITS = {name.lower(): hz for name, hz in FREQUENCY_UNITS.items()}


@dataclass(frozen=True)
class FluxModel:
    """A Stokes I spectrum ``S(nu) = 10^(sum_k c_k x^k) * ...`` in one of two forms.

    ``log_coeffs`` (Perley-Butler: x = log10(nu / GHz)) or a power law with curvature
    ``flux * (nu/ref)^(alpha + curvature * log10(nu/ref))`` (CASA setjy manual).
    """

    flux: float = 1.0
    alpha: float = 0.0
    ref_frequency: float = 1e9
    curvature: float = 0.0
    log_coeffs: tuple | None = None
    name: str = ""

    def __call__(self, freqs) -> np.ndarray:
        """Flux density (Jy) at ``freqs`` (Hz), float64 (frequency,)."""
        freqs = np.asarray(freqs, dtype=np.float64)
        if self.log_coeffs is not None:
            x = np.log10(freqs / 1e9)
            return 10.0 ** np.polynomial.polynomial.polyval(x, self.log_coeffs)
        x = np.log10(freqs / self.ref_frequency)
        return self.flux * 10.0 ** ((self.alpha + self.curvature * x) * x)


def parse_manual_model(text: str) -> FluxModel:
    """``"15.0,-0.5,1.4GHz"`` (flux Jy, spectral index, reference frequency) -> FluxModel."""
    parts = [p.strip() for p in str(text).split(",")]
    if len(parts) not in (1, 2, 3, 4):
        raise ConfigError(f"flux model {text!r}: expected 'S[,alpha[,reffreq[,curvature]]]'")
    try:
        flux = float(parts[0])
        alpha = float(parts[1]) if len(parts) > 1 and parts[1] else 0.0
        curvature = float(parts[3]) if len(parts) > 3 else 0.0
    except ValueError:
        raise ConfigError(f"flux model {text!r}: flux, index and curvature must be numbers") \
            from None
    ref = 1e9
    if len(parts) > 2:
        match = re.fullmatch(r"([0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([A-Za-z]*)", parts[2])
        if not match or match.group(2).lower() not in _UNITS | {"": 1.0}:
            raise ConfigError(f"flux model {text!r}: reference frequency like '1.4GHz'")
        ref = float(match.group(1)) * _UNITS.get(match.group(2).lower(), 1.0)
    if flux <= 0 or ref <= 0:
        raise ConfigError(f"flux model {text!r}: flux and reference frequency must be > 0")
    return FluxModel(flux=flux, alpha=alpha, ref_frequency=ref, curvature=curvature,
                     name="manual")


def standard_model(name: str) -> FluxModel:
    """The standard model of a flux calibrator by name (3C286, J1331+3030, ...): Perley-Butler
    2017, Reynolds 1994 for 1934-638."""
    key = str(name).strip().upper().replace(" ", "")
    key = ALIASES.get(key, key)
    if key in OTHER_STANDARDS:
        reference, coeffs = OTHER_STANDARDS[key]
        return FluxModel(log_coeffs=coeffs, name=f"{reference} {key}")
    if key not in PERLEY_BUTLER_2017:
        known = ", ".join(sorted(PERLEY_BUTLER_2017) + sorted(OTHER_STANDARDS) + sorted(ALIASES))
        raise ConfigError(f"no Perley-Butler 2017 model for {name!r} (known: {known})")
    return FluxModel(log_coeffs=PERLEY_BUTLER_2017[key], name=f"Perley-Butler 2017 {key}")
