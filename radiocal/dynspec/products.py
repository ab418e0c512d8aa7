"""Polarization algebra: correlations -> Stokes products for spectra (Stokes -> correlations for
the predict is :func:`radiocal.model.dataset.stokes_to_correlation`).

Conventions are CASA's (and the IAU's for circular feeds): ``RR = I + V``, ``RL = Q + iU``,
``LR = Q - iU``, ``LL = I - V``; ``XX = I + Q``, ``XY = U + iV``, ``YX = U - iV``, ``YY = I - Q``.
Stokes parameters are then ``I = (RR + LL)/2``, ``V = (RR - LL)/2`` and so on.
"""

from __future__ import annotations

import numpy as np

from radiocal.store import schema

# Product -> {correlation: coefficient}; a product exists when all its correlations are present.
_PRODUCTS = {
    "circular": {
        "RR": {"RR": 1}, "LL": {"LL": 1},
        "I": {"RR": 0.5, "LL": 0.5}, "Q": {"RL": 0.5, "LR": 0.5},
        "U": {"RL": -0.5j, "LR": 0.5j}, "V": {"RR": 0.5, "LL": -0.5},
    },
    "linear": {
        "XX": {"XX": 1}, "YY": {"YY": 1},
        "I": {"XX": 0.5, "YY": 0.5}, "Q": {"XX": 0.5, "YY": -0.5},
        "U": {"XY": 0.5, "YX": 0.5}, "V": {"XY": -0.5j, "YX": 0.5j},
    },
    "stokes": {"I": {"I": 1}},
}
# Products formed from the cross hands, which need the cross-hand (X-Y, R-L) phase calibrated:
# Q and U of circular feeds, U and V of linear feeds (Q = (XX-YY)/2 of linear feeds is in the
# frame of the feeds unless the parallactic-angle rotation was applied)
NEEDS_CROSS_HAND = {"circular": ("Q", "U"), "linear": ("U", "V"), "stokes": ()}


def withheld_products(polarizations) -> list[str]:
    """Products a layout would give but only with its cross-hand phase calibrated."""
    everything, _ = product_matrix(polarizations)
    without, _ = product_matrix(polarizations, cross_hand_calibrated=False)
    return [p for p in everything if p not in without]


def product_matrix(polarizations, cross_hand_calibrated: bool = True) -> tuple[list[str], np.ndarray]:
    """Products available from a correlation layout and their coefficients.

    Without ``cross_hand_calibrated`` the products of :data:`NEEDS_CROSS_HAND` are left out.

    Returns
    -------
    names : list of str
        Parallel hands first, then Stokes I, Q, U, V where the layout allows them.
    coeffs : (product, polarization) complex128
        ``product = sum_k coeffs[p, k] * vis[..., k]``.
    """
    layout = schema.check_polarizations(polarizations)
    basis = "stokes" if layout == ("I",) else schema.feed_basis(layout)
    names, rows = [], []
    for name, terms in _PRODUCTS[basis].items():
        if not cross_hand_calibrated and name in NEEDS_CROSS_HAND[basis]:
            continue
        if all(corr in layout for corr in terms):
            names.append(name)
            rows.append([terms.get(corr, 0) for corr in layout])
    return names, np.array(rows, dtype=np.complex128).reshape(len(names), len(layout))
