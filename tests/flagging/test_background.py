"""Background and robust-statistics kernels against straightforward plain-numpy references."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from radiocal.flagging import background as bg
from radiocal.flagging import kernels as k
from radiocal.flagging import robust as rb
from radiocal.flagging.params import MadParams

RNG = np.random.default_rng(99)


def _loess_loop(values, weights, sigma, degree, leave_out, in_var):
    """The per-sample window loop LOESS (normal equations solved per sample), slow but plain."""
    n_rows, n = values.shape
    half = int(math.ceil(3.0 * sigma))
    fit = np.full((n_rows, n), np.nan)
    support = np.zeros((n_rows, n))
    var = np.zeros((n_rows, n))
    for r in range(n_rows):
        for i in range(n):
            js = np.array([j for j in range(max(0, i - half), min(n, i + half + 1))
                           if weights[r, j] > 0 and not (leave_out and j == i)], int)
            if js.size == 0:
                continue
            x = (js - i).astype(float)
            w = weights[r, js] * np.exp(-0.5 * (x / sigma) ** 2)
            support[r, i] = w.sum()
            d = min(degree, js.size - 1)
            while True:
                design = np.vander(x, d + 1, increasing=True)
                normal = design.T @ (w[:, None] * design)
                if d == 0 or np.linalg.cond(normal) < 1e10:
                    break
                d -= 1
            kernel = w * (design @ np.linalg.solve(normal, np.eye(d + 1)[0]))
            fit[r, i] = kernel @ values[r, js]
            var[r, i] = np.sum(kernel ** 2 * in_var[r, js])
    return fit, support, var


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
@pytest.mark.parametrize("leave_out", [False, True])
@pytest.mark.parametrize("sigma", [1.0, 3.0])
def test_loess_rows_matches_the_window_loop(degree, leave_out, sigma):
    n_rows, n = 7, 45
    t = np.arange(n)
    values = (5 + 0.3 * t - 0.01 * t ** 2 + np.sin(t / 4.0))[None] + RNG.normal(size=(n_rows, n))
    # Bisquare-like fractional weights, random flags, a row flagged throughout and rows with
    # only one or two samples left (the degree is lowered there).
    weights = RNG.random((n_rows, n)) * (RNG.random((n_rows, n)) > 0.25)
    weights[1] = 0.0
    weights[2] = 0.0
    weights[2, 20] = 0.7
    weights[3, :] = 0.0
    weights[3, [10, 12]] = [1.0, 0.5]
    in_var = 0.5 + RNG.random((n_rows, n))
    fit, support, var = bg.loess_rows(values, weights, sigma, degree, leave_out, in_var)
    ref_fit, ref_support, ref_var = _loess_loop(values, weights, sigma, degree, leave_out, in_var)
    np.testing.assert_array_equal(np.isnan(fit), np.isnan(ref_fit))
    assert np.isnan(fit[1]).all() and (support[1] == 0).all()
    np.testing.assert_allclose(fit, ref_fit, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(support, ref_support, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(var, ref_var, rtol=1e-7, atol=1e-10)


def test_masked_median_and_robust_sigma_are_exact_on_long_inputs():
    """Long inputs take the bracketing path: results must equal numpy's exactly."""
    for n, kind in itertools.product([4095, 4096, 9001, 30000], ["normal", "tails", "sorted",
                                                                 "ties"]):
        x = RNG.normal(size=n)
        if kind == "tails":
            x *= 1 + 50 * RNG.random(n) ** 8
        elif kind == "sorted":
            x = np.sort(x)
        elif kind == "ties":
            x = np.round(x)
        mask = RNG.random(n) < 0.2
        kept = x[~mask]
        assert rb.masked_median(x, mask) == np.median(kept)
        assert rb.robust_sigma(x, mask) == 1.4826 * np.median(np.abs(kept - np.median(kept)))
    x = RNG.normal(size=(100, 80))
    x[3, 4] = np.nan
    assert math.isnan(rb.masked_median(x, np.zeros(x.shape, bool)))
    assert math.isnan(rb.masked_median(x, np.ones(x.shape, bool)))


def test_sorting_network_sorts_every_zero_one_input():
    """By the 0-1 principle a comparator network sorting all 0/1 inputs sorts everything."""
    for n in range(1, 12):
        for keep in (n, n // 2 + 1):
            net = rb.sorting_network(n, keep)
            assert (net[:, 0] < net[:, 1]).all()
            bits = ((np.arange(2 ** n)[:, None] >> np.arange(n)) & 1).astype(float)
            lanes = bits.T.copy()
            rb._apply_network(lanes, net)
            np.testing.assert_array_equal(lanes[:keep].T, np.sort(bits, axis=1)[:, :keep])
    values = RNG.normal(size=(25, 300))
    net = rb.sorting_network(25, 13)
    out = values.copy()
    rb._apply_network(out, net)
    np.testing.assert_array_equal(out[:13], np.sort(values, axis=0)[:13])
    np.testing.assert_array_equal(np.sort(out, axis=0), np.sort(values, axis=0))


def test_bitonic_merger_sorts_every_bitonic_input():
    # 0/1 bitonic inputs (1..1 0..0 1..1) suffice (0-1 principle); then the MAD's case: the
    # distances of sorted values (ties, +inf for masked slots) from their median.
    for n in range(1, 26):
        for keep in (n, n // 2 + 1):
            net = rb.bitonic_merger(n, keep)
            assert (net[:, 0] < net[:, 1]).all() and (net < n).all()
            bits = np.array([[1.0] * a + [0.0] * (n - a - c) + [1.0] * c
                             for a in range(n + 1) for c in range(n + 1 - a)])
            lanes = bits.T.copy()
            rb._apply_network(lanes, net)
            np.testing.assert_array_equal(lanes[:keep].T, np.sort(bits, axis=1)[:, :keep])
    values = np.sort(np.round(RNG.normal(size=(25, 300)), 1), axis=0)
    values[20:, ::3] = np.inf
    dist = np.abs(values - np.median(values, axis=0))
    out = dist.copy()
    rb._apply_network(out, rb.bitonic_merger(25, 13))
    np.testing.assert_array_equal(out[:13], np.sort(dist, axis=0)[:13])


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("shape,half_time,half_freq", [((30, 17), 2, 2), ((9, 40), 1, 3),
                                                       ((5, 5), 2, 2), ((12, 7), 0, 2)])
def test_window_median_mad_matches_numpy(shape, half_time, half_freq, ties):
    values = RNG.normal(size=shape)
    if ties:
        values = np.round(values, 1)
    mask = RNG.random(shape) < 0.3
    mask[0, :] = True
    med, mad = rb.window_median_mad(values, mask, half_time, half_freq, 3)
    for t in range(shape[0]):
        for f in range(shape[1]):
            box = (slice(max(0, t - half_time), t + half_time + 1),
                   slice(max(0, f - half_freq), f + half_freq + 1))
            kept = values[box][~mask[box]]
            if kept.size < 3:
                assert math.isnan(med[t, f]) and math.isnan(mad[t, f])
                continue
            assert med[t, f] == np.median(kept)
            assert mad[t, f] == np.median(np.abs(kept - np.median(kept)))


@pytest.mark.parametrize("lanes, half", [(3, 3), (12, 3), (12, 8), (24, 24)])
def test_running_median_lanes_matches_numpy_on_either_path(lanes, half):
    # Few lanes or wide windows: a sorted window updated sample by sample; else the sorting
    # network. Repeated values (quantized data) exercise removing one of several equal values.
    values = np.round(RNG.normal(size=(80, lanes)), 1)
    weights = (RNG.random((80, lanes)) > 0.2).astype(float)
    values[5, 0] = np.nan
    out = rb.running_median_lanes(values, weights, half)
    for j in range(lanes):
        for i in range(80):
            window = values[max(0, i - half):i + half + 1, j]
            kept = window[(weights[max(0, i - half):i + half + 1, j] > 0) & np.isfinite(window)]
            if kept.size:
                assert out[i, j] == np.median(kept)
            else:
                assert math.isnan(out[i, j])


def test_running_median_leaves_out_flagged_and_nonfinite_samples():
    values = RNG.normal(size=(4, 40))
    weights = (RNG.random((4, 40)) > 0.3).astype(float)
    weights[2] = 0.0
    values[3, 7] = np.inf
    out = rb.running_median_rows(values, weights, 6)
    for r in range(4):
        for i in range(40):
            sel = [j for j in range(max(0, i - 6), min(40, i + 7))
                   if weights[r, j] > 0 and np.isfinite(values[r, j])]
            if sel:
                assert out[r, i] == np.median(values[r, sel])
            else:
                assert math.isnan(out[r, i])


def _channel_noise_reference(resid, mask, half):
    """:func:`robust.channel_noise` written out: per channel the window of channels holding it
    (centred, left, right; not cut short by the band's edges) whose log deviations spread least."""
    n_f = resid.shape[1]
    centre = np.median(resid[~mask])
    dev = np.array([np.median(np.abs(resid[~mask[:, f], f] - centre)) if (~mask[:, f]).any()
                    else np.nan for f in range(n_f)])
    dev[~(dev > 0)] = np.nan
    out = np.full(n_f, np.nan)
    for f in range(n_f):
        best = None
        for lo, hi in ((max(0, f - half), min(n_f - 1, f + half)), (max(0, f - half), f),
                       (f, min(n_f - 1, f + half))):
            logs = np.log(dev[lo:hi + 1][~np.isnan(dev[lo:hi + 1])])
            if hi - lo < min(half, n_f - 1) or logs.size < 2:
                continue
            if best is None or logs.var() < best[0] - 1e-12:
                best = (logs.var(), lo, hi)
        lo, hi = (best[1], best[2]) if best else (max(0, f - half), min(n_f - 1, f + half))
        kept = dev[lo:hi + 1][~np.isnan(dev[lo:hi + 1])]
        if kept.size:
            out[f] = 1.4826 * np.median(kept)
    return out


@pytest.mark.parametrize("n_t, n_f, half", [(24, 64, 16), (1, 40, 4), (6, 12, 16),
                                             (rb._NETWORK_SAMPLES + 1, 8, 2)])
def test_channel_noise_matches_numpy(n_t, n_f, half):
    noise = np.where(np.arange(n_f) < n_f // 2, 1.0, 10.0)
    resid = RNG.normal(size=(n_t, n_f)) * noise
    mask = RNG.random((n_t, n_f)) < 0.1
    mask[:, 3] = True
    np.testing.assert_allclose(rb.channel_noise(resid, mask, half),
                               _channel_noise_reference(resid, mask, half), rtol=1e-12)


@pytest.mark.parametrize("n_t", [1, 2, 7, 60, rb._NETWORK_SAMPLES])
def test_column_deviations_are_each_columns_selected_median(n_t):
    # The sorting network across columns gives each column's median bit for bit as a selection
    # does, masked samples (as +inf) and unmasked infinities sorting last, NaN spoiling only its
    # own column.
    resid = RNG.normal(size=(n_t, 9))
    mask = RNG.random((n_t, 9)) < 0.3
    mask[:, 0] = True
    resid[0, 1] = np.inf
    resid[-1, 2] = np.nan
    mask[:, 1:3] = False
    resid[:, 3] = 0.25
    centre = 0.25
    expected = np.full(9, np.nan)
    for f in range(9):
        col = np.abs(resid[~mask[:, f], f] - centre)
        if col.size:
            expected[f] = rb.median_scratch(col.copy(), col.size)
    got = rb._column_deviations(resid, mask, centre)
    np.testing.assert_array_equal(got, expected)
    assert np.isnan(got[0]) and np.isnan(got[2]) and got[3] == 0.0


def test_channel_noise_keeps_a_step_and_ignores_a_noisy_channel():
    # Two sub-bands merged into one window, system temperatures 10x apart, and a persistent
    # line in one channel: each channel's noise is its own side's, beside the step too.
    n_t, n_f = 30, 96
    noise = np.where(np.arange(n_f) < 48, 1.0, 10.0)
    noise[20] = 30.0
    resid = RNG.normal(size=(n_t, n_f)) * noise
    out = rb.channel_noise(resid, np.zeros((n_t, n_f), bool), 16)
    expected = np.where(np.arange(n_f) < 48, 1.0, 10.0)
    np.testing.assert_allclose(out, expected, rtol=0.2)


def test_mad_block_matches_numpy_window_statistics():
    n_t, n_f = 20, 16
    t = np.linspace(-1, 1, n_t)[:, None]
    vis = ((30 + 5 * t + RNG.normal(0, 1, (n_t, n_f)))[:, None, :, None]).astype(np.complex64)
    vis[5, 0, 3, 0] += 9.0
    vis[12:15, 0, 9:12, 0] += RNG.normal(0, 6, (3, 3))
    flag = np.zeros(vis.shape, bool)
    flag[0, 0, :4, 0] = True
    out = k.mad_block(vis, flag, MadParams())
    amp = np.abs(vis[:, 0, :, 0]).astype(float)
    mask = flag[:, 0, :, 0]
    resid, _ = bg.standardized_residual(np.where(mask, 0.0, amp), mask, 3.0, 0.0, 2, 2,
                                        MadParams().noise_channels)
    med = np.full((n_t, n_f), np.nan)
    sig = np.full((n_t, n_f), np.nan)
    for i in range(n_t):
        for j in range(n_f):
            box = (slice(max(0, i - 2), i + 3), slice(max(0, j - 2), j + 3))
            kept = resid[box][~mask[box]]
            if kept.size >= 3:
                med[i, j] = np.median(kept)
                sig[i, j] = 1.4826 * np.median(np.abs(kept - med[i, j]))
    typical = np.median(sig[~mask & ~np.isnan(sig)])
    ref = mask | (~np.isnan(med) & ((np.abs(resid - med) > 5.0 * typical)
                                    | (sig > 3.0 * typical)))
    np.testing.assert_array_equal(out[:, 0, :, 0], ref)
    assert ref[5, 3]


@pytest.mark.parametrize("degree", [0, 1, 2])
def test_fill_across_matches_loess_rows_at_the_missing_samples(degree):
    bg_plane = RNG.normal(10.0, 1.0, (6, 30))
    var = 0.1 + RNG.random((6, 30))
    bg_plane[:, 4] = np.nan            # a channel flagged throughout
    bg_plane[2, 10:25] = np.nan        # a wide gap: the middle is out of reach
    bg_plane[5, :] = np.nan            # nothing known in the row
    missing = np.isnan(bg_plane)
    known = np.where(missing, 0.0, 1.0)
    ref, _, ref_var = bg.loess_rows(np.where(missing, 0.0, bg_plane), known, 2.0, degree, False,
                                    np.where(missing, 1.0, var))
    filled, filled_var = bg_plane.copy(), var.copy()
    bg._fill_across(filled, filled_var, 2.0, degree)
    np.testing.assert_array_equal(filled[~missing], bg_plane[~missing])
    np.testing.assert_allclose(filled[missing], ref[missing], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(filled_var[missing], ref_var[missing], rtol=1e-8, atol=1e-12)
    assert np.isnan(filled[5]).all() and np.isnan(filled[2, 17])


@pytest.mark.parametrize("n, lanes", [(1, 40), (8, 40), (60, 32), (rb._NETWORK_SAMPLES, 5),
                                      (rb._NETWORK_SAMPLES + 1, 5), (60, 4)])
def test_lane_medians_are_each_lanes_selected_median(n, lanes):
    # By network (short lanes, more than four) or selection: each lane's median of its valid,
    # finite samples bit for bit, inf where it has none.
    rng = np.random.default_rng(6)
    values = np.abs(np.round(rng.normal(size=(n, lanes)), 1))
    values[rng.random(values.shape) < 0.05] = np.nan
    values[rng.random(values.shape) < 0.05] = np.inf
    valid = rng.random(values.shape) < 0.8
    valid[:, 3] = False
    expected = np.full(lanes, np.inf)
    for j in range(lanes):
        kept = values[valid[:, j] & np.isfinite(values[:, j]), j]
        if kept.size:
            expected[j] = rb.median_scratch(kept.copy(), kept.size)
    np.testing.assert_array_equal(rb.lane_medians(values, valid), expected)


def test_lane_median_below_is_comparing_the_lane_medians():
    # odd and even counts, ties at the bound, NaN/inf samples, lanes with nothing valid
    rng = np.random.default_rng(5)
    for n in (1, 2, 7, 8, 60):
        values = np.round(rng.normal(size=(n, 40)), 1)
        centre = np.round(rng.normal(size=(n, 40)), 1)
        values[rng.random(values.shape) < 0.05] = np.nan
        values[rng.random(values.shape) < 0.05] = np.inf
        valid = rng.random(values.shape) < 0.8
        valid[:, 3] = False
        medians = rb.lane_medians(np.abs(values - centre), valid)
        bounds = np.concatenate([medians[:20], np.round(rng.random(20), 1)])
        bounds[5] = np.inf
        got = rb.lane_median_below(values, centre, valid, bounds)
        np.testing.assert_array_equal(got, medians < bounds)
