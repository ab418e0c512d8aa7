"""Numba kernels for the smooth background of a (time, frequency) plane and robust statistics.

The background is a robust local-polynomial regression (LOESS, Cleveland 1979) predicting each
sample from its neighbours only (leave one out), with the prediction's variance, so that
``(values - background) / sqrt(1 + var)`` is a residual of known scale: a spike cannot pull its own
background towards itself, and short or edge stretches, where the prediction extrapolates, are
not mistaken for outliers. Plain numpy in and out; no dask or xarray.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from radiocal.engine.numba import JIT

MAD_TO_SIGMA = 1.4826


@numba.njit(**JIT)
def masked_median(values, mask):
    """Median of ``values[~mask]`` (any shape); NaN when everything is masked."""
    flat_v = values.ravel()
    flat_m = mask.ravel()
    buf = np.empty(flat_v.size, np.float64)
    n = 0
    for i in range(flat_v.size):
        if not flat_m[i]:
            buf[n] = flat_v[i]
            n += 1
    if n == 0:
        return np.nan
    return np.median(buf[:n])


@numba.njit(**JIT)
def robust_sigma(values, mask):
    """Gaussian-equivalent sigma, 1.4826 x the MAD of ``values[~mask]``; NaN when all masked."""
    med = masked_median(values, mask)
    if np.isnan(med):
        return np.nan
    dev = np.abs(values - med)
    return MAD_TO_SIGMA * masked_median(dev, mask)


@numba.njit(**JIT)
def _first_row_inverse(moments, degree, out, m):
    """Solve ``M a = e0`` for the (degree+1)^2 Hankel matrix ``M[i, j] = moments[i + j]``.

    ``a`` is the first row of the inverse (M is symmetric): the fit's constant term is
    ``sum_k a_k rhs_k`` and its equivalent kernel ``l_j = w_j sum_k a_k x_j^k``. Gaussian
    elimination with partial pivoting in the work array ``m`` (at least (degree+1, degree+2));
    returns False when the system is singular.
    """
    n = degree + 1
    for i in range(n):
        for j in range(n):
            m[i, j] = moments[i + j]
        m[i, n] = 1.0 if i == 0 else 0.0
    for col in range(n):
        piv = col
        for i in range(col + 1, n):
            if abs(m[i, col]) > abs(m[piv, col]):
                piv = i
        if abs(m[piv, col]) <= 1e-10 * (abs(moments[2 * col]) + 1e-300):
            return False
        if piv != col:
            for j in range(n + 1):
                m[col, j], m[piv, j] = m[piv, j], m[col, j]
        for i in range(col + 1, n):
            f = m[i, col] / m[col, col]
            for j in range(col, n + 1):
                m[i, j] -= f * m[col, j]
    for i in range(n - 1, -1, -1):
        acc = m[i, n]
        for j in range(i + 1, n):
            acc -= m[i, j] * out[j]
        out[i] = acc / m[i, i]
    return True


@numba.njit(**JIT)
def loess_rows(values, weights, sigma, degree, leave_out, in_var):
    """Local-polynomial weighted regression along the last axis of a 2-D array.

    Parameters
    ----------
    values : ndarray, float64, shape (row, sample)
    weights : ndarray, float64, shape (row, sample)
        Non-negative sample weights; 0 excludes a sample (flagged).
    sigma : float
        Width of the Gaussian kernel in samples; the window is +/- ceil(3 sigma).
    degree : int
        Local polynomial degree (lowered where too few samples make the fit singular).
    leave_out : bool
        Predict each sample from its neighbours only (leave-one-out), so an outlier cannot pull
        its own background towards itself.
    in_var : ndarray, float64, shape (row, sample)
        Variance of each input sample in units of the noise variance (1 for raw data).

    Returns
    -------
    fit : ndarray, float64, shape (row, sample)
        The fitted value at each sample (NaN where no weighted sample is in reach).
    support : ndarray, float64, shape (row, sample)
        Sum of kernel x sample weights used for each fit (0 where ``fit`` is NaN).
    var : ndarray, float64, shape (row, sample)
        Variance of the fit, ``sum_j l_j^2 in_var_j`` with ``l`` the equivalent kernel.
    """
    n_rows, n = values.shape
    half = int(math.ceil(3.0 * sigma))
    kern = np.empty(half + 1)
    for k in range(half + 1):
        kern[k] = math.exp(-0.5 * (k / sigma) ** 2)
    fit = np.full((n_rows, n), np.nan)
    support = np.zeros((n_rows, n))
    var = np.zeros((n_rows, n))
    moments = np.empty(2 * degree + 1)
    rhs = np.empty(degree + 1)
    coef = np.empty(degree + 1)
    work = np.empty((degree + 1, degree + 2))
    for r in range(n_rows):
        for i in range(n):
            moments[:] = 0.0
            rhs[:] = 0.0
            npts = 0
            lo, hi = max(0, i - half), min(n, i + half + 1)
            for j in range(lo, hi):
                w = weights[r, j]
                if w <= 0.0 or (leave_out and j == i):
                    continue
                w *= kern[abs(j - i)]
                x = float(j - i)
                y = values[r, j]
                xk = 1.0
                for k in range(2 * degree + 1):
                    moments[k] += w * xk
                    if k <= degree:
                        rhs[k] += w * xk * y
                    xk *= x
                npts += 1
            if npts == 0:
                continue
            support[r, i] = moments[0]
            d = min(degree, npts - 1)
            while d > 0 and not _first_row_inverse(moments, d, coef, work):
                d -= 1
            if d == 0:
                coef[0] = 1.0 / moments[0]
            value = 0.0
            for k in range(d + 1):
                value += coef[k] * rhs[k]
            fit[r, i] = value
            acc = 0.0
            for j in range(lo, hi):
                w = weights[r, j]
                if w <= 0.0 or (leave_out and j == i):
                    continue
                x = float(j - i)
                xk = 1.0
                lj = 0.0
                for k in range(d + 1):
                    lj += coef[k] * xk
                    xk *= x
                lj *= w * kern[abs(j - i)]
                acc += lj * lj * in_var[r, j]
            var[r, i] = acc
    return fit, support, var


@numba.njit(**JIT)
def _bisquare(residual, scale, weights):
    """Tukey bisquare robustness weights for ``residual / (6 scale)``, zero where ``weights`` is."""
    out = np.zeros(residual.shape)
    if not scale > 0.0:
        return weights.copy()
    for i in range(residual.shape[0]):
        for j in range(residual.shape[1]):
            if weights[i, j] <= 0.0 or np.isnan(residual[i, j]):
                continue
            u = residual[i, j] / (6.0 * scale)
            if abs(u) < 1.0:
                out[i, j] = weights[i, j] * (1.0 - u * u) ** 2
    return out


@numba.njit(**JIT)
def running_median_rows(values, weights, half):
    """Median of the positively weighted samples within +/- ``half`` along the last axis.

    Returns NaN where no such sample is in reach. Shapes (row, sample) -> (row, sample).
    """
    n_rows, n = values.shape
    out = np.full((n_rows, n), np.nan)
    buf = np.empty(2 * half + 1)
    for r in range(n_rows):
        for i in range(n):
            m = 0
            for j in range(max(0, i - half), min(n, i + half + 1)):
                if weights[r, j] > 0.0:
                    buf[m] = values[r, j]
                    m += 1
            if m > 0:
                out[r, i] = np.median(buf[:m])
    return out


@numba.njit(**JIT)
def _row_mad(resid, weights, r):
    n = resid.shape[1]
    buf = np.empty(n)
    m = 0
    for j in range(n):
        if weights[r, j] > 0.0 and not np.isnan(resid[r, j]):
            buf[m] = abs(resid[r, j])
            m += 1
    return np.median(buf[:m]) if m > 0 else np.inf


@numba.njit(**JIT)
def robust_loess_rows(values, weights, sigma, robust_iterations, degree, in_var):
    """Robust LOESS along rows (see :func:`loess_rows`): bisquare reweighting, then a final
    leave-one-out fit. Returns ``(fit, support, var)``."""
    w = weights
    if robust_iterations > 0:
        fit, _, _ = loess_rows(values, weights, sigma, degree, False, in_var)
        # Robustness weights need a first fit that strong RFI has not dragged. A least-squares
        # LOESS follows steep bandpass edges but is pulled by RFI covering much of a short axis; a
        # running median resists the RFI but is biased on slopes. Per row we start from whichever
        # leaves the smaller median absolute residual.
        med = running_median_rows(values, weights, max(1, int(math.ceil(2.0 * sigma))))
        r_fit = values - fit
        r_med = values - med
        for r in range(values.shape[0]):
            if _row_mad(r_med, weights, r) < _row_mad(r_fit, weights, r):
                fit[r] = med[r]
        for it in range(robust_iterations):
            resid = values - fit
            scale = MAD_TO_SIGMA * masked_median(np.abs(resid), (weights <= 0.0) | np.isnan(resid))
            w = _bisquare(resid, scale, weights)
            if it < robust_iterations - 1:
                fit, _, _ = loess_rows(values, w, sigma, degree, False, in_var)
    return loess_rows(values, w, sigma, degree, True, in_var)


@numba.njit(**JIT)
def background_2d(values, mask, sigma_time, sigma_freq, robust_iterations, degree):
    """Smooth background of one (time, frequency) plane and its variance.

    Robust LOESS along frequency (skipped when ``sigma_freq`` is 0), then along time; each sample
    is predicted from its neighbours only, so ``values - background`` is a prediction residual
    with variance ``noise^2 (1 + var)``.

    Parameters
    ----------
    values : ndarray, float64, shape (time, frequency)
    mask : ndarray, bool, shape (time, frequency)
        True where a sample must not influence the fit.
    sigma_time, sigma_freq : float
        Kernel widths in samples (``sigma_freq`` 0: every channel is fitted along time alone).
    robust_iterations : int
        Bisquare reweighting passes (0 = plain weighted LOESS).
    degree : int
        Local polynomial degree of both fits.

    Returns
    -------
    background : ndarray, float64, shape (time, frequency)
    var : ndarray, float64, shape (time, frequency)
        Variance of the background in units of the noise variance of one sample.
    """
    weights = np.where(mask, 0.0, 1.0)
    ones = np.ones(values.shape)
    if sigma_freq > 0.0:
        along_f, support_f, var_f = robust_loess_rows(values, weights, sigma_freq,
                                                       robust_iterations, degree, ones)
        weights_t = np.where(support_f > 0.0, 1.0, 0.0)
    else:
        along_f, var_f, weights_t = values.copy(), ones, weights
    fill = np.where(weights_t > 0.0, along_f, 0.0)
    along_t, _, var_t = robust_loess_rows(fill.T.copy(), weights_t.T.copy(), sigma_time,
                                           robust_iterations, degree, var_f.T.copy())
    bg = along_t.T.copy()
    var = var_t.T.copy()
    if np.isnan(bg).any():
        # Samples with nothing unmasked in reach along time (a channel flagged throughout) get
        # their background interpolated across frequency.
        known = np.where(np.isnan(bg), 0.0, 1.0)
        across, _, var_x = loess_rows(np.where(np.isnan(bg), 0.0, bg), known, 2.0, 1, False,
                                      np.where(np.isnan(var), 1.0, var))
        for i in range(bg.shape[0]):
            for j in range(bg.shape[1]):
                if np.isnan(bg[i, j]):
                    bg[i, j] = across[i, j]
                    var[i, j] = var_x[i, j]
    level = masked_median(values, mask)
    for i in range(bg.shape[0]):
        for j in range(bg.shape[1]):
            if np.isnan(bg[i, j]):
                bg[i, j] = level
                var[i, j] = 1.0
    return bg, var


@numba.njit(**JIT)
def standardized_residual(values, mask, sigma_time, sigma_freq, robust_iterations, degree):
    """Prediction residual of a plane in units of its robust noise.

    Returns
    -------
    z : ndarray, float64, shape (time, frequency)
        ``(values - background) / sqrt(1 + var) / sigma`` with sigma the 1.4826 x MAD of the
        unmasked standardized residuals.
    sigma : float
        That noise estimate (NaN when everything is masked).
    """
    bg, var = background_2d(values, mask, sigma_time, sigma_freq, robust_iterations, degree)
    resid = (values - bg) / np.sqrt(1.0 + var)
    sigma = robust_sigma(resid, mask)
    return resid / sigma, sigma
