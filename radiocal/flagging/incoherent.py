"""Numba kernels for spectra whose phase is incoherent along frequency, their amplitude steady.

The detector of ``spectral.py`` fits a smooth complex background along frequency. Some spectra
have no phase to follow from channel to channel while their amplitude is as smooth as any: a
writer that lost the real part and scrambled the sign of the imaginary one (ATA sets: real part
0, imaginary part of steady amplitude and random sign channel by channel), or fringes turning by
more than a quarter turn per channel (a bright source far from the phase centre on a long
baseline, coarse channels). A robust complex fit then takes the majority's phase and the other
samples, up to half, stand out as RFI (17% and 34% of two ATA sets flagged, AOFlagger 4% and
16%). A radio astronomer looks at the amplitude of such a spectrum, as AOFlagger does of every
one; here the correlations of a baseline that pass both tests below are judged on their
amplitudes, the others as before:

* phase incoherent: among pairs of neighbouring unflagged channels (all the baseline's
  integrations of the correlation), those whose phase turns by more than 90 degrees
  (``Re(v_j conj(v_j+1)) < 0``) are not fewer than half by more than three binomial sigmas, as
  for random phases (a spectrum the complex fit follows at S/N 2 has almost none);
* amplitude steady: the median squared difference of neighbouring amplitudes, over the median
  power of its spectrum, is at most that of a steady amplitude at S/N ``snr`` (per sample,
  amplitude over the complex noise's rms): ``median(chi2_1) / snr^2`` (0.114 at the default
  S/N 2). Noise alone gives 0.27 (Rayleigh amplitudes), and passes by chance in 11% of
  16-channel spectra, 0.8% of 64-channel ones (simulated): judged on their amplitude, with the
  two-sided scoring this path first had, noise spectra of 16 channels with 2% spikes had 2.2%
  of their clean samples flagged, not 1.1% (at S/N 3: 1.4%, 1.4% of spectra passing), while at
  S/N 3 the ATA sets kept 1-2 points more (not measured again since rises only are scored).

The null of the amplitude: at S/N 2 or more the Rice distribution is near its Gaussian limit, of
half the complex noise's variance, so the residual of a smooth background of the amplitude over
its scale is a standard normal. It is scored one-sided, on rises only: each residual is mapped
to the Exp(1) power of equal upper-tail probability of the normal (:func:`as_exponential`),
which the detector scores as it scores the complex fit's power. A dip is not RFI's mark here.
RFI ``r`` added to a signal ``s`` of random phase raises the mean power by ``|r|^2``; it can
lower the amplitude only while weaker than the signal, and by at most ``|s|``, so at S/N ``S``
no single sample dips by more than ``S`` sigmas (6, the first threshold, is out of reach below
S/N 6), and dips reached SumThreshold only through its long windows: runs of modest dips, where
the band steps down (ATA's spectra) or the 16-sample noise scale came out low. Scored both ways,
noise spectra of 16 channels at S/N 4 and 3 on either side of a step in the band had 1.7% of
their clean samples flagged, one-sided 0.16%, all the RFI of S/N 40 found either way
(``test_spectral``); the two ATA sets kept 2.4 points more (C0352 8.9 -> 6.5%, C0544 23.3 ->
20.8%; AOFlagger 3.8, 16.0%).

Plain numpy in and out; no dask or xarray.
"""

from __future__ import annotations

import math

import numpy as np

from radiocal._numba import njit
from radiocal.flagging.robust import median_scratch

# Median of chi-squared with one degree of freedom: 2 erfinv(1/2)^2.
CHI1_MEDIAN = 0.45493642311957283
# Spread of the log of the median of n chi2_1 samples, times sqrt(n): 1 / (2 f(m) m), f the
# density at the median m (2.33; Exp(1)'s is 1 / ln 2 = 1.44).
CHI1_LOG_MEDIAN_SPREAD = 1.0 / (2.0 * math.exp(-0.5 * CHI1_MEDIAN)
                                / math.sqrt(2.0 * math.pi * CHI1_MEDIAN) * CHI1_MEDIAN)
# Fewer pairs of neighbouring channels decide nothing: a median of so few differences cannot
# tell a steady amplitude from noise.
_MIN_PAIRS = 8
# A sample of more than this times its spectrum's median power is left out of the tests (RFI, a
# bit flip: never noise, exp(-17) for Exp(1)): a few such among 16 channels spoil half the pairs.
_OUTLIER_POWER = 25.0
# Beyond this, erfc underflows: -ln erfc(y) from its asymptotic series.
_ERFC_LIMIT = 25.0
_LN2 = math.log(2.0)


@njit
def incoherent_rows(parts, weights, n_p, snr):
    """Bool per row of ``parts`` (real and imaginary part, row, channel; rows ``t * n_p + c``):
    the rows of each correlation ``c`` whose phase is incoherent and amplitude steady at S/N
    ``snr`` (see the module docstring), over the samples of positive ``weights`` (row, channel).
    ``snr`` 0 selects none."""
    n_rows, n_f = weights.shape
    out = np.zeros(n_rows, np.bool_)
    if not snr > 0.0:
        return out
    power = np.empty((n_rows, n_f))
    for i in range(n_rows):
        for j in range(n_f):
            ok = weights[i, j] > 0.0
            power[i, j] = parts[0, i, j] ** 2 + parts[1, i, j] ** 2 if ok else np.nan
    buf = np.empty(n_rows * n_f)
    outlier = np.full(n_rows, np.inf)
    limit = CHI1_MEDIAN / (snr * snr)
    for c in range(n_p):
        # The phase test first, on every pair: it rules out a spectrum the complex fit follows
        # (most of them) at the cost of a multiply-add per sample.
        pairs, turned = _turned(parts, power, c, n_p, outlier)
        if not _random_phases(pairs, turned):
            continue
        for i in range(c, n_rows, n_p):
            m = 0
            for j in range(n_f):
                if power[i, j] == power[i, j]:
                    buf[m] = power[i, j]
                    m += 1
            outlier[i] = _OUTLIER_POWER * median_scratch(buf, m) if m > 0 else np.nan
        # Again without the outliers, whose amplitudes say nothing of the spectrum's steadiness.
        pairs, turned = _turned(parts, power, c, n_p, outlier)
        if not _random_phases(pairs, turned):
            continue
        m = 0
        for i in range(c, n_rows, n_p):
            level = outlier[i] / _OUTLIER_POWER
            for j in range(n_f - 1):
                if power[i, j] <= outlier[i] and power[i, j + 1] <= outlier[i]:
                    d = math.sqrt(power[i, j + 1]) - math.sqrt(power[i, j])
                    buf[m] = d * d / level
                    m += 1
        if median_scratch(buf, m) <= limit:
            for i in range(c, n_rows, n_p):
                out[i] = True
    return out


@njit
def _turned(parts, power, c, n_p, outlier):
    """Pairs of neighbouring channels of correlation ``c`` (rows ``c::n_p``) whose powers are
    both at most ``outlier`` (per row; a NaN power is an unweighted sample), and how many of
    them turn by more than 90 degrees."""
    pairs = 0
    turned = 0
    for i in range(c, power.shape[0], n_p):
        for j in range(power.shape[1] - 1):
            if power[i, j] <= outlier[i] and power[i, j + 1] <= outlier[i]:
                pairs += 1
                dot = parts[0, i, j] * parts[0, i, j + 1] + parts[1, i, j] * parts[1, i, j + 1]
                turned += dot < 0.0
    return pairs, turned


@njit(inline="always")
def _random_phases(pairs, turned):
    """Whether ``turned`` of ``pairs`` is no fewer than half by three sigmas of
    Binomial(pairs, 1/2) (sd sqrt(pairs) / 2), with enough pairs to tell."""
    return pairs >= _MIN_PAIRS and turned >= 0.5 * pairs - 1.5 * math.sqrt(pairs)


@njit
def amplitudes(parts, rows):
    """The amplitudes of ``rows`` of ``parts`` (part, row, channel), as a stack of one group
    (1, row, channel) for the detector's fits."""
    out = np.empty((1, rows.size, parts.shape[2]))
    for k in range(rows.size):
        for j in range(parts.shape[2]):
            out[0, k, j] = math.hypot(parts[0, rows[k], j], parts[1, rows[k], j])
    return out


@njit(inline="always")
def _chi1_as_exponential(x):
    """``-ln P(chi2_1 > x)``: the Exp(1) value of the same upper-tail probability."""
    y = math.sqrt(0.5 * x)
    if y < _ERFC_LIMIT:
        return -math.log(math.erfc(y))
    return y * y + math.log(y * math.sqrt(math.pi)) - math.log1p(-0.5 / (y * y))


@njit
def as_exponential(power, scale, rows, dip):
    """In place on ``rows``: ``power``, squared amplitude residuals over their prediction
    variance (``dip`` where the residual is negative), and ``scale``, their median over ln 2
    (``noise_scale``), become the Exp(1) power of the same one-sided upper-tail probability of
    the residual under the amplitude's normal null (half chi2_1's above the fit, one minus that
    below) and 1, so that ``power / scale`` is scored as the complex fit's (NaN stays NaN)."""
    to_variance = _LN2 / CHI1_MEDIAN
    for i in rows:
        for j in range(power.shape[1]):
            e = _chi1_as_exponential(power[i, j] / (scale[i, j] * to_variance))
            # -ln P(Z > z) of the residual z: P(chi2_1 > z^2) / 2 above the fit.
            power[i, j] = -math.log1p(-0.5 * math.exp(-e)) if dip[i, j] else e + _LN2
            scale[i, j] = 1.0
