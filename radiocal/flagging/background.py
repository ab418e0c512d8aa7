"""Numba kernels for the smooth background of a (time, frequency) plane.

The background is a robust local-polynomial regression (LOESS, Cleveland 1979) predicting each
sample from its neighbours only (leave one out), with the prediction's variance, so that
``(values - background) / sqrt(1 + var)`` is a residual of known scale: a spike cannot pull its own
background towards itself, and short or edge stretches, where the prediction extrapolates, are
not mistaken for outliers. Plain numpy in and out; no dask or xarray.

Speed: the window sums of the normal equations are accumulated offset by offset over whole rows
(shifted-array convolutions that vectorize), the moments and solves once per distinct weighting
of a lane (lanes weighted alike share them), and each sample's small system is solved in closed
form, so a fit costs a few tens of nanoseconds per sample; robust statistics are in
``robust.py``.

Compile time: arrays are copied by loops, not ``a[...] = b``: numba compiles each such
assignment with an error path that formats both shapes into its message (f-strings,
``str.join``, integers to strings), ~2 CPU-s of a cold compile of the LOESS call tree and again
in every kernel calling it.
"""

from __future__ import annotations

import math

import numpy as np

from radiocal._numba import njit
from radiocal.flagging.robust import (
    MAD_TO_SIGMA,
    channel_noise,
    lane_median_below,
    lane_medians,
    masked_median,
    median_scratch,
    robust_sigma,
    running_median_lanes,
)


@njit(error_model="numpy")
def _solve_small(mom, rhs, q, degree, with_var, fit, support, var, coef):
    """Fit (and variance) of every sample of a row from its sums, for degree <= 2.

    ``a`` solves ``M a = e0`` for the (degree+1)^2 Hankel matrix ``M[i, j] = mom[i + j]`` (the
    first row of its inverse: the fit is ``sum_k a_k rhs_k``), in closed form: the first column
    of the adjugate of ``M`` over its determinant. The degree is lowered where the system is
    singular (Gaussian elimination's relative pivot tests, taken without row swaps), which
    includes a sample with fewer than degree + 1 neighbours. ``mom`` has at least 5 rows and
    ``rhs`` and ``q`` at least 3 and 5, zero beyond the degree; ``a`` goes to ``coef`` (3 rows)
    for further right-hand sides.

    Written so that the loops vectorize (see :func:`_solve_cubic`): the candidate is selected
    before its divisions, ``&`` not ``and`` (a short circuit is a branch), and the variance in a
    loop of its own; ``error_model="numpy"`` lets the lowest candidate divide by a zero ``m0``.
    """
    mom0, mom1, mom2, mom3, mom4 = mom[0], mom[1], mom[2], mom[3], mom[4]
    rhs0, rhs1, rhs2 = rhs[0], rhs[1], rhs[2]
    coef0, coef1, coef2 = coef[0], coef[1], coef[2]
    linear, quadratic = degree >= 1, degree >= 2
    for i in range(fit.size):
        m0, m1, m2, m3, m4 = mom0[i], mom1[i], mom2[i], mom3[i], mom4[i]
        det1 = m0 * m2 - m1 * m1
        c0 = m2 * m4 - m3 * m3
        c1 = m2 * m3 - m1 * m4
        c2 = m1 * m3 - m2 * m2
        det = m0 * c0 + m1 * c1 + m2 * c2
        ok1 = linear & (det1 > 1e-10 * m0 * m2)
        ok2 = ok1 & quadratic & (det > 1e-10 * m4 * det1)
        den = det if ok2 else (det1 if ok1 else m0)
        a0 = (c0 if ok2 else (m2 if ok1 else 1.0)) / den
        a1 = (c1 if ok2 else -m1) / den if ok1 else 0.0
        a2 = c2 / den if ok2 else 0.0
        coef0[i] = a0
        coef1[i] = a1
        coef2[i] = a2
        value = a0 * rhs0[i] + a1 * rhs1[i] + a2 * rhs2[i]
        fit[i] = value if m0 > 0.0 else np.nan
        support[i] = m0
    if not with_var:
        return
    q0, q1, q2, q3, q4 = q[0], q[1], q[2], q[3], q[4]
    for i in range(fit.size):
        a0, a1, a2 = coef0[i], coef1[i], coef2[i]
        v = (a0 * a0 * q0[i] + 2.0 * a0 * a1 * q1[i] + (a1 * a1 + 2.0 * a0 * a2) * q2[i]
             + 2.0 * a1 * a2 * q3[i] + a2 * a2 * q4[i])
        var[i] = max(v, 0.0) if mom0[i] > 0.0 else 0.0


@njit(error_model="numpy")
def _solve_cubic(mom, rhs, q, with_var, fit, support, var, coef):
    """:func:`_solve_small` for degree 3: ``mom`` and ``q`` have 7 rows, ``rhs`` and ``coef`` 4.

    Odd degrees have the same bias order at a band edge, where the leave-one-out fit
    extrapolates, as inside it (Fan & Gijbels 1996, sect. 3.3), while inside, on a symmetric
    window, the cubic's fit is the quadratic's. ``a`` is the first column of the Hankel matrix's
    adjugate (3x3 cofactors from the 2x2 minors ``s`` of its last two rows) over its determinant;
    where that is singular (one-sided or sparse windows) the quadratic's or a lower fit is used.

    The same arithmetic as the candidates computed in turn, written so that the loops vectorize:
    with an ``if``/``elif`` chain of candidates, short-circuit ``and`` and the variance under
    ``if with_var`` in the loop it ran scalar, 10 divisions a sample, and was most of a LOESS
    fit's time on 24-lane spectra (4608 samples 47 -> 15 us, results bit for bit the same).
    """
    mom0, mom1, mom2, mom3, mom4, mom5, mom6 = mom[0], mom[1], mom[2], mom[3], mom[4], mom[5], mom[6]
    rhs0, rhs1, rhs2, rhs3 = rhs[0], rhs[1], rhs[2], rhs[3]
    coef0, coef1, coef2, coef3 = coef[0], coef[1], coef[2], coef[3]
    for i in range(fit.size):
        m0, m1, m2, m3, m4 = mom0[i], mom1[i], mom2[i], mom3[i], mom4[i]
        m5, m6 = mom5[i], mom6[i]
        det1 = m0 * m2 - m1 * m1
        c0 = m2 * m4 - m3 * m3
        c1 = m2 * m3 - m1 * m4
        c2 = m1 * m3 - m2 * m2
        det2 = m0 * c0 + m1 * c1 + m2 * c2
        s01 = m2 * m4 - m3 * m3
        s02 = m2 * m5 - m4 * m3
        s03 = m2 * m6 - m5 * m3
        s12 = m3 * m5 - m4 * m4
        s13 = m3 * m6 - m5 * m4
        s23 = m4 * m6 - m5 * m5
        d0 = m2 * s23 - m3 * s13 + m4 * s12
        d1 = -(m1 * s23 - m3 * s03 + m4 * s02)
        d2 = m1 * s13 - m2 * s03 + m4 * s01
        d3 = -(m1 * s12 - m2 * s02 + m3 * s01)
        det3 = m0 * d0 + m1 * d1 + m2 * d2 + m3 * d3
        ok1 = det1 > 1e-10 * m0 * m2
        ok2 = ok1 & (det2 > 1e-10 * m4 * det1)
        ok3 = ok2 & (det3 > 1e-10 * m6 * det2)
        den = det3 if ok3 else (det2 if ok2 else (det1 if ok1 else m0))
        a0 = (d0 if ok3 else (c0 if ok2 else (m2 if ok1 else 1.0))) / den
        a1 = (d1 if ok3 else (c1 if ok2 else -m1)) / den if ok1 else 0.0
        a2 = (d2 if ok3 else c2) / den if ok2 else 0.0
        a3 = d3 / den if ok3 else 0.0
        coef0[i] = a0
        coef1[i] = a1
        coef2[i] = a2
        coef3[i] = a3
        value = a0 * rhs0[i] + a1 * rhs1[i] + a2 * rhs2[i] + a3 * rhs3[i]
        fit[i] = value if m0 > 0.0 else np.nan
        support[i] = m0
    if not with_var:
        return
    q0, q1, q2, q3, q4, q5, q6 = q[0], q[1], q[2], q[3], q[4], q[5], q[6]
    for i in range(fit.size):
        a0, a1, a2, a3 = coef0[i], coef1[i], coef2[i], coef3[i]
        v = (a0 * a0 * q0[i] + 2.0 * a0 * a1 * q1[i] + (a1 * a1 + 2.0 * a0 * a2) * q2[i]
             + 2.0 * (a0 * a3 + a1 * a2) * q3[i] + (a2 * a2 + 2.0 * a1 * a3) * q4[i]
             + 2.0 * a2 * a3 * q5[i] + a3 * a3 * q6[i])
        var[i] = max(v, 0.0) if mom0[i] > 0.0 else 0.0


@njit
def _add_powers(acc, n_powers, flat, lanes, start, k, tap, n, first):
    """``acc[p, i] += tap k^p (a[i + k] + (-1)^p a[i - k])`` for p < ``n_powers``, i < ``n``
    x ``lanes``, with ``a`` the (sample, lane) block ``flat`` (flattened) from sample ``start``
    on, every lane at once; ``acc`` is (power, sample x lane).

    ``first`` (an array of ``n`` x ``lanes``, or empty): the sums start here, at ``first`` for
    p = 0 and at 0 for the other powers, instead of at ``acc``'s contents (the same additions in
    the same order as zeroing ``acc`` before: nothing to clear, and one read of ``acc`` less)."""
    # Flat views of whole (sample, lane) blocks: one long contiguous loop that vectorizes.
    size = n * lanes
    ahead = flat[(start + k) * lanes:(start + k + n) * lanes]
    behind = flat[(start - k) * lanes:(start - k + n) * lanes]
    init = first.size > 0
    c0 = tap
    c1 = c0 * k
    c2 = c1 * k
    c3 = c2 * k
    c4 = c3 * k
    c5 = c4 * k
    c6 = c5 * k
    r0 = acc[0]
    if n_powers == 7 or n_powers == 4:
        # The degree-3 moments and right-hand sides: every row in one pass.
        r1, r2, r3 = acc[1], acc[2], acc[3]
        if n_powers == 4:
            if init:
                for i in range(size):
                    r0[i] = first[i] + c0 * (ahead[i] + behind[i])
                    r1[i] = 0.0 + c1 * (ahead[i] - behind[i])
                    r2[i] = 0.0 + c2 * (ahead[i] + behind[i])
                    r3[i] = 0.0 + c3 * (ahead[i] - behind[i])
                return
            for i in range(size):
                r0[i] += c0 * (ahead[i] + behind[i])
                r1[i] += c1 * (ahead[i] - behind[i])
                r2[i] += c2 * (ahead[i] + behind[i])
                r3[i] += c3 * (ahead[i] - behind[i])
            return
        r4, r5, r6 = acc[4], acc[5], acc[6]
        if init:
            for i in range(size):
                s = ahead[i] + behind[i]
                d = ahead[i] - behind[i]
                r0[i] = first[i] + c0 * s
                r1[i] = 0.0 + c1 * d
                r2[i] = 0.0 + c2 * s
                r3[i] = 0.0 + c3 * d
                r4[i] = 0.0 + c4 * s
                r5[i] = 0.0 + c5 * d
                r6[i] = 0.0 + c6 * s
            return
        for i in range(size):
            s = ahead[i] + behind[i]
            d = ahead[i] - behind[i]
            r0[i] += c0 * s
            r1[i] += c1 * d
            r2[i] += c2 * s
            r3[i] += c3 * d
            r4[i] += c4 * s
            r5[i] += c5 * d
            r6[i] += c6 * s
        return
    if n_powers == 5 or n_powers == 3:
        # The degree-2 and degree-1 moments: every row in one pass, so the samples are read once.
        r1, r2 = acc[1], acc[2]
        if n_powers == 3:
            if init:
                for i in range(size):
                    r0[i] = first[i] + c0 * (ahead[i] + behind[i])
                    r1[i] = 0.0 + c1 * (ahead[i] - behind[i])
                    r2[i] = 0.0 + c2 * (ahead[i] + behind[i])
                return
            for i in range(size):
                r0[i] += c0 * (ahead[i] + behind[i])
                r1[i] += c1 * (ahead[i] - behind[i])
                r2[i] += c2 * (ahead[i] + behind[i])
            return
        r3, r4 = acc[3], acc[4]
        if init:
            for i in range(size):
                r0[i] = first[i] + c0 * (ahead[i] + behind[i])
                r1[i] = 0.0 + c1 * (ahead[i] - behind[i])
                r2[i] = 0.0 + c2 * (ahead[i] + behind[i])
                r3[i] = 0.0 + c3 * (ahead[i] - behind[i])
                r4[i] = 0.0 + c4 * (ahead[i] + behind[i])
            return
        for i in range(size):
            r0[i] += c0 * (ahead[i] + behind[i])
            r1[i] += c1 * (ahead[i] - behind[i])
            r2[i] += c2 * (ahead[i] + behind[i])
            r3[i] += c3 * (ahead[i] - behind[i])
            r4[i] += c4 * (ahead[i] + behind[i])
        return
    c = tap
    for p in range(n_powers):
        row = acc[p]
        if init:
            for i in range(size):
                row[i] = (first[i] if p == 0 else 0.0) + c * (ahead[i] + behind[i] if p % 2 == 0
                                                              else ahead[i] - behind[i])
        elif p % 2 == 0:
            for i in range(size):
                row[i] += c * (ahead[i] + behind[i])
        else:
            for i in range(size):
                row[i] += c * (ahead[i] - behind[i])
        c *= k


@njit
def _add_powers4(acc, n_powers, flat, lanes, start, k, taps, n, first):
    """:func:`_add_powers` for the four offsets ``k .. k + 3`` (``taps[k:k + 4]``) in one pass,
    for 3, 4, 5 or 7 powers: each sum gets the same terms in the same order, read and written
    once instead of four times (the per-offset passes were bound by those loads and stores).
    Other counts of powers (degrees 0 and 1 of the time fits' lowered degree) go offset by
    offset."""
    if n_powers != 3 and n_powers != 4 and n_powers != 5 and n_powers != 7:
        for o in range(4):
            _add_powers(acc, n_powers, flat, lanes, start, k + o, taps[k + o], n,
                        first if o == 0 else first[:0])
        return
    size = n * lanes
    a0 = flat[(start + k) * lanes:(start + k + n) * lanes]
    b0 = flat[(start - k) * lanes:(start - k + n) * lanes]
    a1 = flat[(start + k + 1) * lanes:(start + k + 1 + n) * lanes]
    b1 = flat[(start - k - 1) * lanes:(start - k - 1 + n) * lanes]
    a2 = flat[(start + k + 2) * lanes:(start + k + 2 + n) * lanes]
    b2 = flat[(start - k - 2) * lanes:(start - k - 2 + n) * lanes]
    a3 = flat[(start + k + 3) * lanes:(start + k + 3 + n) * lanes]
    b3 = flat[(start - k - 3) * lanes:(start - k - 3 + n) * lanes]
    # c[p][o] = taps[k + o] (k + o)^p, built as _add_powers builds it
    k0, k1, k2, k3 = k, k + 1, k + 2, k + 3
    c00, c01, c02, c03 = taps[k0], taps[k1], taps[k2], taps[k3]
    c10, c11, c12, c13 = c00 * k0, c01 * k1, c02 * k2, c03 * k3
    c20, c21, c22, c23 = c10 * k0, c11 * k1, c12 * k2, c13 * k3
    c30, c31, c32, c33 = c20 * k0, c21 * k1, c22 * k2, c23 * k3
    c40, c41, c42, c43 = c30 * k0, c31 * k1, c32 * k2, c33 * k3
    c50, c51, c52, c53 = c40 * k0, c41 * k1, c42 * k2, c43 * k3
    c60, c61, c62, c63 = c50 * k0, c51 * k1, c52 * k2, c53 * k3
    init = first.size > 0
    r0, r1, r2 = acc[0], acc[1], acc[2]
    if n_powers == 3:
        if init:
            for i in range(size):
                s0, s1, s2, s3 = a0[i] + b0[i], a1[i] + b1[i], a2[i] + b2[i], a3[i] + b3[i]
                d0, d1, d2, d3 = a0[i] - b0[i], a1[i] - b1[i], a2[i] - b2[i], a3[i] - b3[i]
                r0[i] = (((first[i] + c00 * s0) + c01 * s1) + c02 * s2) + c03 * s3
                r1[i] = (((0.0 + c10 * d0) + c11 * d1) + c12 * d2) + c13 * d3
                r2[i] = (((0.0 + c20 * s0) + c21 * s1) + c22 * s2) + c23 * s3
            return
        for i in range(size):
            s0, s1, s2, s3 = a0[i] + b0[i], a1[i] + b1[i], a2[i] + b2[i], a3[i] + b3[i]
            d0, d1, d2, d3 = a0[i] - b0[i], a1[i] - b1[i], a2[i] - b2[i], a3[i] - b3[i]
            r0[i] = (((r0[i] + c00 * s0) + c01 * s1) + c02 * s2) + c03 * s3
            r1[i] = (((r1[i] + c10 * d0) + c11 * d1) + c12 * d2) + c13 * d3
            r2[i] = (((r2[i] + c20 * s0) + c21 * s1) + c22 * s2) + c23 * s3
        return
    r3 = acc[3]
    if n_powers == 4:
        if init:
            for i in range(size):
                s0, s1, s2, s3 = a0[i] + b0[i], a1[i] + b1[i], a2[i] + b2[i], a3[i] + b3[i]
                d0, d1, d2, d3 = a0[i] - b0[i], a1[i] - b1[i], a2[i] - b2[i], a3[i] - b3[i]
                r0[i] = (((first[i] + c00 * s0) + c01 * s1) + c02 * s2) + c03 * s3
                r1[i] = (((0.0 + c10 * d0) + c11 * d1) + c12 * d2) + c13 * d3
                r2[i] = (((0.0 + c20 * s0) + c21 * s1) + c22 * s2) + c23 * s3
                r3[i] = (((0.0 + c30 * d0) + c31 * d1) + c32 * d2) + c33 * d3
            return
        for i in range(size):
            s0, s1, s2, s3 = a0[i] + b0[i], a1[i] + b1[i], a2[i] + b2[i], a3[i] + b3[i]
            d0, d1, d2, d3 = a0[i] - b0[i], a1[i] - b1[i], a2[i] - b2[i], a3[i] - b3[i]
            r0[i] = (((r0[i] + c00 * s0) + c01 * s1) + c02 * s2) + c03 * s3
            r1[i] = (((r1[i] + c10 * d0) + c11 * d1) + c12 * d2) + c13 * d3
            r2[i] = (((r2[i] + c20 * s0) + c21 * s1) + c22 * s2) + c23 * s3
            r3[i] = (((r3[i] + c30 * d0) + c31 * d1) + c32 * d2) + c33 * d3
        return
    r4 = acc[4]
    if n_powers == 5:
        if init:
            for i in range(size):
                s0, s1, s2, s3 = a0[i] + b0[i], a1[i] + b1[i], a2[i] + b2[i], a3[i] + b3[i]
                d0, d1, d2, d3 = a0[i] - b0[i], a1[i] - b1[i], a2[i] - b2[i], a3[i] - b3[i]
                r0[i] = (((first[i] + c00 * s0) + c01 * s1) + c02 * s2) + c03 * s3
                r1[i] = (((0.0 + c10 * d0) + c11 * d1) + c12 * d2) + c13 * d3
                r2[i] = (((0.0 + c20 * s0) + c21 * s1) + c22 * s2) + c23 * s3
                r3[i] = (((0.0 + c30 * d0) + c31 * d1) + c32 * d2) + c33 * d3
                r4[i] = (((0.0 + c40 * s0) + c41 * s1) + c42 * s2) + c43 * s3
            return
        for i in range(size):
            s0, s1, s2, s3 = a0[i] + b0[i], a1[i] + b1[i], a2[i] + b2[i], a3[i] + b3[i]
            d0, d1, d2, d3 = a0[i] - b0[i], a1[i] - b1[i], a2[i] - b2[i], a3[i] - b3[i]
            r0[i] = (((r0[i] + c00 * s0) + c01 * s1) + c02 * s2) + c03 * s3
            r1[i] = (((r1[i] + c10 * d0) + c11 * d1) + c12 * d2) + c13 * d3
            r2[i] = (((r2[i] + c20 * s0) + c21 * s1) + c22 * s2) + c23 * s3
            r3[i] = (((r3[i] + c30 * d0) + c31 * d1) + c32 * d2) + c33 * d3
            r4[i] = (((r4[i] + c40 * s0) + c41 * s1) + c42 * s2) + c43 * s3
        return
    r5, r6 = acc[5], acc[6]
    if init:
        for i in range(size):
            s0, s1, s2, s3 = a0[i] + b0[i], a1[i] + b1[i], a2[i] + b2[i], a3[i] + b3[i]
            d0, d1, d2, d3 = a0[i] - b0[i], a1[i] - b1[i], a2[i] - b2[i], a3[i] - b3[i]
            r0[i] = (((first[i] + c00 * s0) + c01 * s1) + c02 * s2) + c03 * s3
            r1[i] = (((0.0 + c10 * d0) + c11 * d1) + c12 * d2) + c13 * d3
            r2[i] = (((0.0 + c20 * s0) + c21 * s1) + c22 * s2) + c23 * s3
            r3[i] = (((0.0 + c30 * d0) + c31 * d1) + c32 * d2) + c33 * d3
            r4[i] = (((0.0 + c40 * s0) + c41 * s1) + c42 * s2) + c43 * s3
            r5[i] = (((0.0 + c50 * d0) + c51 * d1) + c52 * d2) + c53 * d3
            r6[i] = (((0.0 + c60 * s0) + c61 * s1) + c62 * s2) + c63 * s3
        return
    for i in range(size):
        s0, s1, s2, s3 = a0[i] + b0[i], a1[i] + b1[i], a2[i] + b2[i], a3[i] + b3[i]
        d0, d1, d2, d3 = a0[i] - b0[i], a1[i] - b1[i], a2[i] - b2[i], a3[i] - b3[i]
        r0[i] = (((r0[i] + c00 * s0) + c01 * s1) + c02 * s2) + c03 * s3
        r1[i] = (((r1[i] + c10 * d0) + c11 * d1) + c12 * d2) + c13 * d3
        r2[i] = (((r2[i] + c20 * s0) + c21 * s1) + c22 * s2) + c23 * s3
        r3[i] = (((r3[i] + c30 * d0) + c31 * d1) + c32 * d2) + c33 * d3
        r4[i] = (((r4[i] + c40 * s0) + c41 * s1) + c42 * s2) + c43 * s3
        r5[i] = (((r5[i] + c50 * d0) + c51 * d1) + c52 * d2) + c53 * d3
        r6[i] = (((r6[i] + c60 * s0) + c61 * s1) + c62 * s2) + c63 * s3


@njit
def _same_lane(weights, in_var, with_var, a, b):
    """Whether lanes ``a`` and ``b`` enter :func:`_loess`'s normal equations alike: the same
    positive weights (a weight <= 0 or NaN is none) and, for the variance, the same ``in_var``
    where weighted."""
    for i in range(weights.shape[0]):
        wa, wb = weights[i, a], weights[i, b]
        wa = wa if wa > 0.0 else 0.0
        wb = wb if wb > 0.0 else 0.0
        if wa != wb:
            return False
        if with_var and wa > 0.0 and in_var[i, a] != in_var[i, b]:
            return False
    return True


@njit
def _argsort(key):
    """Indices that sort ``key``, by Shell sort: numba's np.argsort compiles its quicksort
    (~1 CPU-s of every cold compile of the LOESS). The order of equal keys is not defined, nor
    needed by :func:`_distinct_lanes` (a NaN key only keeps lanes from sharing a solve)."""
    n = key.size
    order = np.arange(n)
    gap = 1
    while gap < n // 3:
        gap = 3 * gap + 1
    while gap > 0:
        for i in range(gap, n):
            j = order[i]
            v = key[j]
            k = i
            while k >= gap and key[order[k - gap]] > v:
                order[k] = order[k - gap]
                k -= gap
            order[k] = j
        gap //= 3
    return order


@njit(inline="always")  # one jitted caller: no level of its own
def _distinct_lanes(weights, in_var, with_var):
    """Lanes with the same normal equations (:func:`_same_lane`), which one solve serves.

    Returns ``(rep, first)``: lane ``j`` is solved as distinct lane ``rep[j]``, whose first lane
    is ``first[rep[j]]`` (both ``arange(lanes)`` when every lane is distinct). Lanes are keyed by
    a weighted sum of their weights, sorted, and only lanes with equal keys compared (linear in
    the lanes, not quadratic).
    """
    n, lanes = weights.shape
    key = np.zeros(lanes)
    for i in range(n):
        # Irrational steps: two different weight patterns rarely share a key.
        c = 1.0 + (i * 0.6180339887498949) % 1.0
        # Selects, not branches, so the loop over the lanes vectorizes; lanes weighted alike
        # get the same key all the same (a key only groups lanes that are then compared).
        if with_var:
            for j in range(lanes):
                w = weights[i, j]
                key[j] += c * w + c * c * in_var[i, j] if w > 0.0 else 0.0
        else:
            for j in range(lanes):
                w = weights[i, j]
                key[j] += c * w if w > 0.0 else 0.0
    order = _argsort(key)
    rep = np.empty(lanes, np.int64)
    first = np.empty(lanes, np.int64)
    n_distinct = 0
    run = 0  # the first distinct lane with the current key
    for k in range(lanes):
        j = order[k]
        if k == 0 or key[j] != key[order[k - 1]]:
            run = n_distinct
        found = -1
        for m in range(run, n_distinct):
            if _same_lane(weights, in_var, with_var, j, first[m]):
                found = m
                break
        if found < 0:
            first[n_distinct] = j
            found = n_distinct
            n_distinct += 1
        rep[j] = found
    if n_distinct == lanes:
        # All distinct: the lanes in their own order, nothing to gather.
        for j in range(lanes):
            rep[j] = j
            first[j] = j
    return rep, first[:n_distinct]


# Samples x lanes of one tile of :func:`_loess`: its sums (up to 7 moments, 7 variance sums and
# 4 right-hand sides per group) then stay in the core's cache between accumulation and solve.
# Whole planes did not once they held more than ~50 lanes of 192 samples: 7.3 -> 20 us per lane.
_TILE = 1024


@njit
def _loess(values, weights, sigma, degree, leave_out, in_var, with_var):
    """:func:`loess_lanes` of a stack ``values`` (group, sample, lane) whose groups share
    ``weights`` and ``in_var`` (sample, lane), such as a spectrum's real and imaginary parts:
    the normal equations' moments, their solution and the variance are the groups', so each
    further group adds only its right-hand sides and one multiply-add per sample. Lanes with the
    same weights (the correlations of a spectrum, unflagged spectra) share them too: moments and
    solves are computed once per distinct lane (:func:`_distinct_lanes`), with the same
    arithmetic, so the result is that of solving every lane. Returns ``fit`` (group, sample,
    lane), ``support`` and ``var`` (sample, lane); ``with_var`` False skips the variance
    (returned as zeros). ``degree``: 0 to 3."""
    n_g, n, lanes = values.shape
    half = int(math.ceil(3.0 * sigma))
    n_mom = 2 * degree + 1
    rep, first = _distinct_lanes(weights, in_var, with_var)
    n_u = first.size
    shared = n_u < lanes
    fit = np.empty((n_g, n, lanes))
    support = np.empty((n, lanes))
    var = np.zeros((n, lanes))
    # Samples x = j - i of a window enter the normal equations only through sums of
    # w_j kern(x) x^p, so every sum is a convolution of the weighted samples with the taps
    # kern(k) k^p: accumulate them offset by offset over a tile of samples (all lanes at once,
    # contiguous, vectorized), pairing +k with -k, then solve each sample's small system.
    # Weights (and their sums) per distinct lane, right-hand sides per lane; (sample, lane)
    # blocks flattened.
    w_pad = np.zeros((n + 2 * half) * n_u)
    y_pad = np.zeros((n_g, (n + 2 * half) * lanes))
    # Variance sums only where they are used (a third of a plain fit's sums).
    v_pad = np.zeros((n + 2 * half) * n_u if with_var else 0)
    # Group by group: each fill a contiguous loop that vectorizes (with the groups innermost,
    # this was the largest part of a fit's own time on 24-lane spectra).
    for g in range(n_g):
        for i in range(n):
            for j in range(lanes):
                w = weights[i, j]
                y_pad[g, (half + i) * lanes + j] = w * values[g, i, j] if w > 0.0 else 0.0
    for i in range(n):
        for u in range(n_u):
            w = weights[i, first[u]]
            ok = w > 0.0
            w_pad[(half + i) * n_u + u] = w if ok else 0.0
            if with_var:
                v_pad[(half + i) * n_u + u] = w * w * in_var[i, first[u]] if ok else 0.0
    taps = np.empty(half + 1)
    for k in range(1, half + 1):
        taps[k] = math.exp(-0.5 * (k / sigma) ** 2)
    taps2 = taps * taps
    # At least the rows of degree 2 (zero beyond ``degree``) for :func:`_solve_small`.
    n_rows = max(n_mom, 5)
    n_rhs = max(degree + 1, 3)
    n_coef = degree + 1 if degree == 3 else 3
    tile = max(1, min(n, _TILE // lanes))
    # One set of the tiles' buffers, each tile's sums starting afresh in them (the first offset's
    # pass writes them, see :func:`_add_powers`): no allocation or clearing per tile.
    mom_buf = np.empty(n_rows * tile * n_u)
    q_buf = np.empty(n_rows * tile * n_u if with_var else n_rows)
    rhs_buf = np.empty((n_g, n_rhs * tile * lanes))
    coef_buf = np.empty(n_coef * tile * n_u)
    zero = np.zeros(tile * max(n_u, lanes))
    # Shared solves: the solver's own fit (of no group) and sums go to scratch.
    rhs_0 = np.zeros(n_rhs * tile * n_u if shared else 0)
    fit_0 = np.empty(tile * n_u if shared else 0)
    support_u = np.empty(tile * n_u if shared else 0)
    var_u = np.zeros(tile * n_u if shared else 0)
    coef_all_buf = np.empty(n_coef * tile * lanes if shared else 0)
    for i0 in range(0, n, tile):
        m = min(tile, n - i0)
        size_u = m * n_u
        size = m * lanes
        at = half + i0
        mom = mom_buf[:n_rows * size_u].reshape(n_rows, size_u)
        q = q_buf[:n_rows * size_u].reshape(n_rows, size_u) if with_var else \
            q_buf.reshape(n_rows, 1)
        # Where the sums start: the sample itself unless it is left out.
        start_w = w_pad[at * n_u:(at + m) * n_u] if not leave_out else zero[:size_u]
        start_v = v_pad[at * n_u:(at + m) * n_u] if with_var and not leave_out else \
            zero[:size_u]
        _sums(mom, n_mom, w_pad, n_u, at, half, taps, m, start_w)
        if with_var:
            _sums(q, n_mom, v_pad, n_u, at, half, taps2, m, start_v)
        for g in range(n_g):
            rhs_g = rhs_buf[g, :n_rhs * size].reshape(n_rhs, size)
            start_y = y_pad[g, at * lanes:(at + m) * lanes] if not leave_out else zero[:size]
            _sums(rhs_g, degree + 1, y_pad[g], lanes, at, half, taps, m, start_y)
            for p in range(degree + 1, n_rhs):
                for i in range(size):
                    rhs_g[p, i] = 0.0
        for p in range(n_mom, n_rows):
            for i in range(size_u):
                mom[p, i] = 0.0
            if with_var:
                for i in range(size_u):
                    q[p, i] = 0.0
        coef = coef_buf[:n_coef * size_u].reshape(n_coef, size_u)
        rhs_first = rhs_buf[0, :n_rhs * size].reshape(n_rhs, size)
        if shared:
            # The solver's fit is of no group (every group's comes from the coefficients)
            solve_rhs = rhs_0[:n_rhs * size_u].reshape(n_rhs, size_u)
            solve_fit = fit_0[:size_u]
            solve_support = support_u[:size_u]
            solve_var = var_u[:size_u]
        else:
            # Lanes in their own order: the solver writes the first group's fit, the support
            # and the variance in place.
            solve_rhs = rhs_first
            solve_fit = fit[0].reshape(n * lanes)[i0 * lanes:(i0 + m) * lanes]
            solve_support = support.reshape(n * lanes)[i0 * lanes:(i0 + m) * lanes]
            solve_var = var.reshape(n * lanes)[i0 * lanes:(i0 + m) * lanes]
        if degree == 3:
            _solve_cubic(mom, solve_rhs, q, with_var, solve_fit, solve_support, solve_var, coef)
        else:
            _solve_small(mom, solve_rhs, q, degree, with_var, solve_fit, solve_support,
                         solve_var, coef)
        if shared:
            # Each lane takes its distinct lane's solution.
            coef_all = coef_all_buf[:n_coef * size].reshape(n_coef, size)
            for i in range(m):
                for j in range(lanes):
                    u = i * n_u + rep[j]
                    x = i * lanes + j
                    support[i0 + i, j] = support_u[u]
                    var[i0 + i, j] = var_u[u]
                    for p in range(n_coef):
                        coef_all[p, x] = coef[p, u]
            coef = coef_all
        tile_support = support.reshape(n * lanes)[i0 * lanes:(i0 + m) * lanes]
        for g in range(1 if not shared else 0, n_g):
            rhs_g = rhs_buf[g, :n_rhs * size].reshape(n_rhs, size)
            _fit_from_coefficients(coef, tile_support, rhs_g,
                                   fit[g].reshape(n * lanes)[i0 * lanes:(i0 + m) * lanes])
    return fit, support, var


@njit
def _sums(acc, n_powers, flat, lanes, at, half, taps, m, start):
    """The window sums of one tile (:func:`_add_powers`): offsets 1 .. ``half``, four per pass,
    the sums starting at ``start`` (power 0) and 0 (the others)."""
    if half == 0:
        for i in range(m * lanes):
            acc[0, i] = start[i]
        for p in range(1, n_powers):
            for i in range(m * lanes):
                acc[p, i] = 0.0
        return
    first = start
    k = 1
    while k + 3 <= half:
        _add_powers4(acc, n_powers, flat, lanes, at, k, taps, m, first)
        first = start[:0]
        k += 4
    while k <= half:
        _add_powers(acc, n_powers, flat, lanes, at, k, taps[k], m, first)
        first = start[:0]
        k += 1


@njit(inline="always")  # one jitted caller: no level of its own
def _fit_from_coefficients(coef, mom0, rhs, fit):
    """A further group's fit from the solvers' ``coef`` (their ``a``, one row per power), with
    their expression and order of operations (the same result as solving again)."""
    if coef.shape[0] == 4:
        c0, c1, c2, c3 = coef[0], coef[1], coef[2], coef[3]
        r0, r1, r2, r3 = rhs[0], rhs[1], rhs[2], rhs[3]
        for i in range(fit.size):
            value = c0[i] * r0[i] + c1[i] * r1[i] + c2[i] * r2[i] + c3[i] * r3[i]
            fit[i] = value if mom0[i] > 0.0 else np.nan
        return
    c0, c1, c2 = coef[0], coef[1], coef[2]
    r0, r1, r2 = rhs[0], rhs[1], rhs[2]
    for i in range(fit.size):
        value = c0[i] * r0[i] + c1[i] * r1[i] + c2[i] * r2[i]
        fit[i] = value if mom0[i] > 0.0 else np.nan


@njit
def loess_lanes(values, weights, sigma, degree, leave_out, in_var):
    """Local-polynomial weighted regression along the first axis, lane by lane.

    A (time, frequency) plane is fitted along time in its own layout, every channel a lane;
    :func:`loess_rows` is the same along the last axis.

    Parameters
    ----------
    values : ndarray, float64, shape (sample, lane)
    weights : ndarray, float64, shape (sample, lane)
        Non-negative sample weights; 0 excludes a sample (flagged).
    sigma : float
        Width of the Gaussian kernel in samples; the window is +/- ceil(3 sigma).
    degree : int
        Local polynomial degree, 0 to 3 (lowered where too few samples make the fit singular).
    leave_out : bool
        Predict each sample from its neighbours only (leave-one-out), so an outlier cannot pull
        its own background towards itself.
    in_var : ndarray, float64, shape (sample, lane)
        Variance of each input sample in units of the noise variance (1 for raw data).

    Returns
    -------
    fit : ndarray, float64, shape (sample, lane)
        The fitted value at each sample (NaN where no weighted sample is in reach).
    support : ndarray, float64, shape (sample, lane)
        Sum of kernel x sample weights used for each fit (0 where ``fit`` is NaN).
    var : ndarray, float64, shape (sample, lane)
        Variance of the fit, ``sum_j l_j^2 in_var_j`` with ``l`` the equivalent kernel.
    """
    fit, support, var = _loess(values[None], weights, sigma, degree, leave_out, in_var, True)
    return fit[0], support, var


@njit(inline="always")  # a wrapper: no level of its own (issue 17, compile time)
def loess_rows(values, weights, sigma, degree, leave_out, in_var):
    """:func:`loess_lanes` along the last axis: shapes (row, sample) in and out."""
    fit, support, var = _loess(values.T.copy()[None], weights.T.copy(), sigma, degree,
                               leave_out, in_var.T.copy(), True)
    return fit[0].T.copy(), support.T.copy(), var.T.copy()


@njit
def _bisquare(residual, scale, weights):
    """Tukey bisquare robustness weights for ``residual / (6 scale)``, zero where ``weights`` is."""
    if not scale > 0.0:
        return weights.copy()
    out = np.empty(residual.shape)
    flat_r, flat_w, flat_o = residual.ravel(), weights.ravel(), out.ravel()
    # Branch-free (every weight computed, the kept ones selected), so the loop vectorizes: a
    # NaN residual fails ``abs(u) < 1`` as it failed the test it replaces.
    for i in range(flat_o.size):
        w = flat_w[i]
        u = flat_r[i] / (6.0 * scale)
        b = w * (1.0 - u * u) ** 2
        flat_o[i] = b if not w <= 0.0 and abs(u) < 1.0 else 0.0
    return out


@njit
def _abs_median(values, fit, weights):
    """Median of ``|values - fit|`` over the positively weighted, non-NaN samples (``inf`` when
    there are none)."""
    buf = np.empty(values.size)
    m = 0
    for i in range(values.shape[0]):
        for j in range(values.shape[1]):
            d = abs(values[i, j] - fit[i, j])
            if weights[i, j] > 0.0 and not np.isnan(d):
                buf[m] = d
                m += 1
    return median_scratch(buf, m) if m > 0 else np.inf


@njit(inline="always")  # one jitted caller: no level of its own
def robust_start(values, weights, fit, sigma):
    """The start of bisquare reweighting, in place on ``fit`` (sample, lane), a plain fit of
    ``values``: robustness weights need a first fit that strong RFI has not dragged. A
    least-squares LOESS follows steep bandpass edges but is pulled by RFI covering much of a
    short axis; a running median (+/- 2 ``sigma``) resists the RFI but is biased on slopes. Per
    lane, whichever leaves the smaller median absolute residual."""
    med = running_median_lanes(values, weights, max(1, int(math.ceil(2.0 * sigma))))
    valid = weights > 0.0
    from_fit = lane_medians(np.abs(values - fit), valid)
    # whether the running median's median absolute residual is the smaller (counted)
    better = lane_median_below(values, med, valid, from_fit)
    for j in range(values.shape[1]):
        if better[j]:
            for i in range(values.shape[0]):
                fit[i, j] = med[i, j]


@njit
def robust_loess_stack(values, weights, sigma, robust_iterations, degree, in_var):
    """Robust LOESS along the sample axis (see :func:`loess_lanes`: bisquare reweighting, then a
    final leave-one-out fit) of each group of ``values`` (group, sample, lane), all starting from
    ``weights`` (sample, lane): the first, plain fit is shared (see :func:`_loess`), the bisquare
    weights and later fits are each group's. Returns ``(fit, support, var)``, each
    (group, sample, lane)."""
    n_g, n, lanes = values.shape
    out_fit = np.empty((n_g, n, lanes))
    out_support = np.empty((n_g, n, lanes))
    out_var = np.empty((n_g, n, lanes))
    first = np.empty((0, n, lanes))
    if robust_iterations > 0:
        first, _, _ = _loess(values, weights, sigma, degree, False, in_var, False)
    for g in range(n_g):
        v = values[g]
        w = weights
        if robust_iterations > 0:
            fit = first[g]
            robust_start(v, weights, fit, sigma)
            for it in range(robust_iterations):
                scale = MAD_TO_SIGMA * _abs_median(v, fit, weights)
                w = _bisquare(v - fit, scale, weights)
                if it < robust_iterations - 1:
                    refit, _, _ = _loess(values[g:g + 1], w, sigma, degree, False, in_var, False)
                    fit = refit[0]
        fit_g, support_g, var_g = _loess(values[g:g + 1], w, sigma, degree, True, in_var, True)
        for i in range(n):   # loops, not slice assignments (see the module docstring)
            for j in range(lanes):
                out_fit[g, i, j] = fit_g[0, i, j]
                out_support[g, i, j] = support_g[i, j]
                out_var[g, i, j] = var_g[i, j]
    return out_fit, out_support, out_var


@njit(inline="always")  # a wrapper: no level of its own (issue 17, compile time)
def robust_loess_rows(values, weights, sigma, robust_iterations, degree, in_var):
    """:func:`robust_loess_stack` of one group along the last axis: shapes (row, sample) in and
    out."""
    # The stack's kernel directly: a jitted wrapper between would be one more level of the
    # call tree for numba to optimize again (docs/flagging.md, compile time).
    fit, support, var = robust_loess_stack(values.T.copy()[None], weights.T.copy(), sigma,
                                           robust_iterations, degree, in_var.T.copy())
    return fit[0].T.copy(), support[0].T.copy(), var[0].T.copy()


@njit(inline="always")  # one jitted caller: no level of its own
def _fill_across(bg, var, sigma, degree):
    """Replace each NaN of ``bg`` (and its ``var``) by the LOESS across the last axis of the
    non-NaN samples of its row (degree <= 2), as :func:`loess_rows` would, one sample at a time."""
    n_rows, n = bg.shape
    half = int(math.ceil(3.0 * sigma))
    mom = np.zeros((5, 1))
    rhs = np.zeros((3, 1))
    q = np.zeros((5, 1))
    fit = np.empty(1)
    support = np.empty(1)
    fit_var = np.empty(1)
    coef = np.empty((3, 1))
    # Fits read the original samples, never ones filled before them.
    src = bg.copy()
    src_var = var.copy()
    for r in range(n_rows):
        for i in range(n):
            if not np.isnan(src[r, i]):
                continue
            mom[:] = 0.0
            rhs[:] = 0.0
            q[:] = 0.0
            for j in range(max(0, i - half), min(n, i + half + 1)):
                if np.isnan(src[r, j]):
                    continue
                x = float(j - i)
                w = math.exp(-0.5 * (x / sigma) ** 2)
                xp = 1.0
                for p in range(2 * degree + 1):
                    mom[p, 0] += w * xp
                    q[p, 0] += w * w * src_var[r, j] * xp
                    if p <= degree:
                        rhs[p, 0] += w * xp * src[r, j]
                    xp *= x
            _solve_small(mom, rhs, q, degree, True, fit, support, fit_var, coef)
            bg[r, i] = fit[0]
            var[r, i] = fit_var[0]


@njit(inline="always")  # one jitted caller: no level of its own
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
    # Element loops, not np.where: numba's np.where is a generic element-by-element iteration,
    # ~3% of the 2-D detector's time on 60 x 32 planes.
    n_t, n_f = values.shape
    if sigma_freq > 0.0:
        fill = np.empty((n_t, n_f))
        weights = np.empty((n_t, n_f))
        for t in range(n_t):
            for f in range(n_f):
                weights[t, f] = 0.0 if mask[t, f] else 1.0
        along_f, support_f, var_f = robust_loess_rows(values, weights, sigma_freq,
                                                       robust_iterations, degree,
                                                       np.ones(values.shape))
        for t in range(n_t):
            for f in range(n_f):
                ok = support_f[t, f] > 0.0
                fill[t, f] = along_f[t, f] if ok else 0.0
                weights[t, f] = 1.0 if ok else 0.0
        var_in = var_f
    else:
        fill, weights, var_in = _unfitted(values, mask)
    return _along_time(values, mask, fill, weights, var_in, sigma_time, robust_iterations,
                       degree)


@njit(inline="always")  # one jitted caller: no level of its own
def background_time(values, mask, sigma_time, robust_iterations, degree):
    """:func:`background_2d` with ``sigma_freq`` 0 (along time only), without the code of the
    fit along frequency: compiled in a caller, that fit's call tree cost seconds."""
    fill, weights, var_in = _unfitted(values, mask)
    return _along_time(values, mask, fill, weights, var_in, sigma_time, robust_iterations,
                       degree)


@njit(inline="always")
def _unfitted(values, mask):
    """:func:`_along_time`'s inputs when nothing was fitted along frequency (element loops, as
    in :func:`background_2d`)."""
    n_t, n_f = values.shape
    fill = np.empty((n_t, n_f))
    weights = np.empty((n_t, n_f))
    for t in range(n_t):
        for f in range(n_f):
            fill[t, f] = 0.0 if mask[t, f] else values[t, f]
            weights[t, f] = 0.0 if mask[t, f] else 1.0
    return fill, weights, np.ones(values.shape)


@njit(inline="always")
def _along_time(values, mask, fill, weights, var_in, sigma_time, robust_iterations, degree):
    """:func:`background_2d`'s fit along time of ``fill`` (``weights``, input variance
    ``var_in``), every channel a lane; samples it cannot reach are filled across frequency."""
    # Along time every channel is a lane: no transposes
    fit, _, fit_var = robust_loess_stack(fill[None], weights, sigma_time, robust_iterations,
                                         degree, var_in)
    bg, var = fit[0], fit_var[0]
    n_missing = np.isnan(bg).sum()
    if n_missing > 0:
        # Samples with nothing unmasked in reach along time (a channel flagged throughout) get
        # their background interpolated across frequency: sample by sample when they are few,
        # else by a fit of the whole plane.
        if 4 * n_missing < bg.size:
            _fill_across(bg, var, 2.0, 1)
        else:
            # Loops, not np.where: its broadcasting compiles to ~1 CPU-s more of every caller.
            known = np.empty(bg.shape)
            src = np.empty(bg.shape)
            src_var = np.empty(bg.shape)
            for i in range(bg.shape[0]):
                for j in range(bg.shape[1]):
                    gap = np.isnan(bg[i, j])
                    known[i, j] = 0.0 if gap else 1.0
                    src[i, j] = 0.0 if gap else bg[i, j]
                    src_var[i, j] = 1.0 if np.isnan(var[i, j]) else var[i, j]
            across, _, var_x = loess_rows(src, known, 2.0, 1, False, src_var)
            for i in range(bg.shape[0]):
                for j in range(bg.shape[1]):
                    if np.isnan(bg[i, j]):
                        bg[i, j] = across[i, j]
                        var[i, j] = var_x[i, j]
        if np.isnan(bg).any():
            level = masked_median(values, mask)
            for i in range(bg.shape[0]):
                for j in range(bg.shape[1]):
                    if np.isnan(bg[i, j]):
                        bg[i, j] = level
                        var[i, j] = 1.0
    return bg, var


@njit
def standardized_residual(values, mask, sigma_time, sigma_freq, robust_iterations, degree,
                          noise_half):
    """Prediction residual of a plane in units of its robust noise.

    ``noise_half`` above 0: the noise is each channel's (:func:`robust.channel_noise`, a
    running median over +/- ``noise_half`` channels); 0: one noise level for the plane.

    Returns
    -------
    z : ndarray, float64, shape (time, frequency)
        ``(values - background) / sqrt(1 + var) / sigma`` with sigma the 1.4826 x MAD of the
        unmasked standardized residuals (of the plane, or along frequency as above).
    sigma : float
        The plane's noise (the median of the channels' when per channel; NaN when everything
        is masked).
    """
    bg, var = background_2d(values, mask, sigma_time, sigma_freq, robust_iterations, degree)
    return _standardized(values, mask, bg, var, noise_half)


@njit
def standardized_residual_time(values, mask, sigma_time, robust_iterations, degree, noise_half):
    """:func:`standardized_residual` with ``sigma_freq`` 0, compiled without the fit along
    frequency (:func:`background_time`)."""
    bg, var = background_time(values, mask, sigma_time, robust_iterations, degree)
    return _standardized(values, mask, bg, var, noise_half)


@njit(inline="always")
def _standardized(values, mask, bg, var, noise_half):
    n_t, n_f = values.shape
    resid = np.empty(values.shape)
    for t in range(n_t):
        for f in range(n_f):
            resid[t, f] = (values[t, f] - bg[t, f]) / math.sqrt(1.0 + var[t, f])
    if noise_half <= 0:
        sigma = robust_sigma(resid, mask)
        resid /= sigma
        return resid, sigma
    scale = channel_noise(resid, mask, noise_half)
    # As a (1, frequency) plane: masked_median is compiled for planes, not also for vectors
    sigma = masked_median(scale.reshape((1, n_f)), np.isnan(scale).reshape((1, n_f)))
    for f in range(n_f):
        # A channel with no noise (constant amplitudes) takes the plane's, as it did before
        # noise per channel; the plane's is not > 0 only when nothing is left to judge.
        s = scale[f] if scale[f] > 0.0 else sigma
        for t in range(n_t):
            resid[t, f] /= s
    return resid, sigma
