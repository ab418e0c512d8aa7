"""The simulator's polarised instrument: ``J_p = G_p B_p D_p X P_p`` (CASA's order).

``G B`` diagonal (gains and bandpasses), ``D_p = [[1, d_x], [d_y, 1]]`` constant leakages,
``X = diag(exp(i phi(nu)), 1)`` the cross-hand phase common to all antennas, ``P_p`` the feed
rotation by the parallactic angle (:func:`radiocal.astro.feed_rotation`). Only used when
:attr:`SimConfig.full_jones`; otherwise the simulator keeps its diagonal equation.
"""

from __future__ import annotations

import numpy as np

from radiocal.astro import feed_rotation, parallactic_angles, rotating_antennas
from radiocal.simulate.config import SimConfig


def instrument(config: SimConfig, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Leakages (antenna, 2) complex and the second hand's gain ratio (antenna,) complex."""
    n = int(config.n_antennas)
    draws = rng.standard_normal((n, 2, 2))
    leakage = config.leakage_rms * (draws[..., 0] + 1j * draws[..., 1]) / np.sqrt(2)
    ratio = (1 + 0.1 * rng.standard_normal(n)) * np.exp(1j * rng.uniform(-np.pi, np.pi, n))
    return leakage, ratio


def cross_phase(config: SimConfig, nu: np.ndarray) -> np.ndarray:
    """The instrument's cross-hand phase at ``nu`` (Hz): (frequency,) radians."""
    return config.xy_phase + 2 * np.pi * config.xy_delay * (nu - nu[0])


def jones(diagonal, leakage, phase, chi, basis) -> np.ndarray:
    """Full Jones (time, antenna, frequency, 2, 2) complex128.

    ``diagonal`` (time, antenna, hand, frequency) ``G B``; ``leakage`` (antenna, 2);
    ``phase`` (frequency,); ``chi`` (time, antenna) radians.
    """
    nt, nant, _, nf = diagonal.shape
    d = np.zeros((nant, 2, 2), dtype=np.complex128)
    d[:, 0, 0] = d[:, 1, 1] = 1.0
    d[:, 0, 1], d[:, 1, 0] = leakage[:, 0], leakage[:, 1]
    x = np.zeros((nf, 2, 2), dtype=np.complex128)
    x[:, 0, 0], x[:, 1, 1] = np.exp(1j * phase), 1.0
    dx = d[:, None] @ x[None]                                       # (antenna, frequency, 2, 2)
    g = diagonal.transpose(0, 1, 3, 2)                              # (time, antenna, freq, hand)
    return g[..., :, None] * dx[None] @ feed_rotation(chi, basis)[:, :, None]


def parallactic(times, positions, mounts, ra, dec) -> np.ndarray:
    """(time, antenna) parallactic angles; zero for antennas that are not alt-az."""
    chi = parallactic_angles(times, positions, ra, dec)
    return np.where(rotating_antennas(mounts)[None, :], chi, 0.0)


def corrupt(full, a1, a2, sky, pols) -> np.ndarray:
    """``J_p S J_q^H`` per baseline: ``sky`` (time, baseline, frequency, 4) in the order of
    ``pols`` (XX XY YX YY or RR RL LR LL); returns the same shape."""
    order = [(0, 0), (0, 1), (1, 0), (1, 1)]
    m = np.zeros(sky.shape[:3] + (2, 2), dtype=np.complex128)
    for k, _ in enumerate(pols):
        m[..., order[k][0], order[k][1]] = sky[..., k]
    jp = full[:, a1]
    jq = full[:, a2]
    v = jp @ m @ np.conj(np.swapaxes(jq, -1, -2))
    out = np.empty(sky.shape, dtype=np.complex128)
    for k in range(4):
        out[..., k] = v[..., order[k][0], order[k][1]]
    return out
