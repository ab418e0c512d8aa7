"""Flagging kernels against plain-numpy references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from radiocal.flagging import background as bg
from radiocal.flagging import basic_kernels as bk
from radiocal.flagging import kernels as k
from radiocal.flagging import robust as rb
from radiocal.flagging.params import (
    AntennaHealthParams,
    ClipParams,
    DilateParams,
    MadParams,
    QuackParams,
    ShadowParams,
    SumThresholdParams,
)



@pytest.fixture
def rng():
    """A generator of each test's own: a shared one made a test's data depend on which tests
    ran before it (``-k`` selections, a test run alone)."""
    return np.random.default_rng(1234)


def test_masked_median_and_robust_sigma_match_numpy(rng):
    values = rng.normal(3.0, 2.0, (40, 30))
    mask = rng.random((40, 30)) < 0.3
    kept = values[~mask]
    assert k.masked_median(values, mask) == pytest.approx(np.median(kept))
    ref = 1.4826 * np.median(np.abs(kept - np.median(kept)))
    assert k.robust_sigma(values, mask) == pytest.approx(ref)
    assert math.isnan(k.masked_median(values, np.ones_like(mask)))


@pytest.mark.parametrize("n", [1, 2, 17, 18, 1023, 1024, 4095, 6912, 6913])
@pytest.mark.parametrize("kind", ["normal", "ties", "sorted", "reversed", "heavy_tails"])
def test_median_scratch_is_numpys_median(n, kind):
    from radiocal.flagging.robust import median_scratch

    rng = np.random.default_rng(n)
    values = {"normal": rng.normal(size=n), "ties": rng.integers(0, 4, n).astype(float),
              "sorted": np.sort(rng.normal(size=n)), "reversed": np.sort(rng.normal(size=n))[::-1],
              "heavy_tails": rng.standard_cauchy(n)}[kind].copy()
    assert median_scratch(values.copy(), n) == np.median(values)
    values[n // 2] = np.nan
    assert math.isnan(median_scratch(values, n))


def _loess_reference(y, w, sigma, degree, i, leave_out):
    n = y.size
    half = int(math.ceil(3 * sigma))
    js = [j for j in range(max(0, i - half), min(n, i + half + 1))
          if w[j] > 0 and not (leave_out and j == i)]
    x = np.array(js, float) - i
    ww = w[js] * np.exp(-0.5 * (x / sigma) ** 2)
    design = np.vander(x, degree + 1, increasing=True)
    normal = design.T @ (ww[:, None] * design)
    coef_row = np.linalg.solve(normal, np.eye(degree + 1)[0])
    kernel = ww * (design @ coef_row)
    return kernel @ y[js], np.sum(kernel ** 2)


@pytest.mark.parametrize("degree,leave_out", [(1, False), (2, False), (2, True), (3, True)])
def test_loess_matches_weighted_least_squares(degree, leave_out, rng):
    n = 25
    y = np.cumsum(rng.normal(size=n)) + 0.1 * np.arange(n) ** 2
    w = (rng.random(n) > 0.2).astype(float)
    fit, support, var = bg.loess_rows(y[None], w[None], 2.0, degree, leave_out, np.ones((1, n)))
    for i in range(n):
        ref, ref_var = _loess_reference(y, w, 2.0, degree, i, leave_out)
        assert fit[0, i] == pytest.approx(ref, rel=1e-8, abs=1e-8)
        assert var[0, i] == pytest.approx(ref_var, rel=1e-8)
    assert (support >= 0).all()


def test_loess_reproduces_a_quadratic_exactly():
    x = np.arange(20.0)
    y = 3.0 - 0.5 * x + 0.07 * x ** 2
    fit, _, _ = bg.loess_rows(y[None], np.ones((1, 20)), 1.5, 2, True, np.ones((1, 20)))
    np.testing.assert_allclose(fit[0], y, rtol=1e-9)


def test_running_median_matches_numpy(rng):
    values = rng.normal(size=(3, 17))
    weights = (rng.random((3, 17)) > 0.3).astype(float)
    out = rb.running_median_rows(values, weights, 2)
    for r in range(3):
        for i in range(17):
            sel = [j for j in range(max(0, i - 2), min(17, i + 3)) if weights[r, j] > 0]
            if sel:
                assert out[r, i] == pytest.approx(np.median(values[r, sel]))
            else:
                assert math.isnan(out[r, i])


def _sumthreshold_reference(z, mask, window, threshold):
    out = mask.copy()
    for r in range(z.shape[0]):
        idx = np.flatnonzero(~mask[r])
        for s in range(len(idx) - window + 1):
            run = idx[s:s + window]
            if abs(z[r, run].sum()) > window * threshold:
                out[r, run[0]:run[-1] + 1] = True
    return out


@pytest.mark.parametrize("window", [1, 2, 4, 8])
def test_sumthreshold_rows_matches_reference(window, rng):
    z = rng.normal(size=(6, 40))
    z[2, 10:14] += 3.0
    z[4, 30] -= 9.0
    mask = rng.random((6, 40)) < 0.1
    out = mask.copy()
    k.sumthreshold_rows(z, mask, window, 6.0 / 1.5 ** math.log2(window), out)
    np.testing.assert_array_equal(out, _sumthreshold_reference(z, mask, window,
                                                               6.0 / 1.5 ** math.log2(window)))


def test_sumthreshold_after_a_score_of_a_bit_flip():
    """A score of 1e19 (a bit flip's, 2^65 times the noise) once rounded the running sum to
    multiples of 2048: the sample beside it went unflagged and channels after it were flagged
    for the rounding error."""
    z = np.zeros((1, 16))
    z[0, 2], z[0, 3] = 1.9e19, 6.5
    z[0, 4:] = np.random.default_rng(1).uniform(-1.0, 1.0, 12)
    for window in (1, 2, 4, 8):
        threshold = 6.0 / 1.5 ** math.log2(window)
        out = np.zeros(z.shape, bool)
        k.sumthreshold_rows(z, out.copy(), window, threshold, out)
        np.testing.assert_array_equal(out, _sumthreshold_reference(z, np.zeros(z.shape, bool),
                                                                   window, threshold))
    out = k.sumthreshold_2d(z, np.zeros(z.shape, bool), 6.0, 1.5, 64, 128)
    assert out[0, 2:4].all() and not out[0, 4:].any()


def _sumthreshold_2d_reference(z, mask, first_threshold, rho, max_t, max_f):
    """Frequency then time pass per window, each by :func:`_sumthreshold_reference`."""
    flags = mask.copy()
    window = 1
    while window <= max(max_t, max_f):
        threshold = first_threshold / rho ** math.log2(window)
        if window <= max_f and window <= z.shape[1]:
            flags = _sumthreshold_reference(z, flags, window, threshold)
        if window <= max_t and window <= z.shape[0]:
            flags = _sumthreshold_reference(z.T, flags.T, window, threshold).T
        window *= 2
    return flags


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("first_threshold", [6.0, 12.0, 24.0])
def test_sumthreshold_2d_matches_reference_as_flags_accumulate(seed, first_threshold):
    # Rows ruled out by their prefix-sum range in one pass must be measured again once a pass
    # in either direction flags some of their samples: RFI of every width, both directions.
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(60, 32))
    z[rng.integers(0, 60, 3)] += rng.uniform(0.5, 3.0, (3, 1))     # broadband bursts
    z[:, rng.integers(0, 32, 3)] += rng.uniform(0.3, 2.0, (1, 3))  # lines
    z[20:40, 10:14] += 1.0                                          # a faint blob
    z.reshape(-1)[rng.integers(0, z.size, 30)] += rng.choice([-12.0, 8.0, 30.0], 30)
    mask = rng.random(z.shape) < 0.05
    mask[:, 7] = True
    out = k.sumthreshold_2d(z, mask, first_threshold, 1.5, 64, 128)
    np.testing.assert_array_equal(
        out, _sumthreshold_2d_reference(z, mask, first_threshold, 1.5, 64, 128))
    assert (out & ~mask).any()


def test_sumthreshold_2d_in_place_matches_passes_on_copies(rng):
    # The passes write into the flags they read (the time passes through a transposed view):
    # the same flags as passes on copies, on bursts, a line and a spike.
    z = rng.normal(size=(40, 24))
    z[10:13, :] += 4.0
    z[:, 5] += 1.5
    z[20, 20] = 9.0
    mask = rng.random(z.shape) < 0.05
    out = k.sumthreshold_2d(z, mask, 6.0, 1.5, 16, 32)
    np.testing.assert_array_equal(out, _sumthreshold_2d_reference(z, mask, 6.0, 1.5, 16, 32))
    assert out[20, 20] and out[10:13].mean() > 0.9


def test_sumthreshold_2d_measures_a_row_again_once_it_gains_flags():
    # Runs of 8 x 1.8 sigma pass the window-8 threshold (6 / 1.5^3 = 1.78) only once the
    # negative sample splitting them is flagged: in row 8 by the row's own window-1 pass, in
    # row 0 by the window-2 pass along time (column 12); before that, the ranges of their
    # prefix sums (7.4 and 9.4) are below what any window of 4 or more needs.
    z = np.zeros((16, 32))
    z[8, 18:22] = z[8, 23:27] = 1.8
    z[8, 22] = -7.0
    z[0, 8:12] = z[0, 13:17] = 1.8
    z[0:4, 12] = -5.0
    mask = np.zeros(z.shape, bool)
    out = k.sumthreshold_2d(z, mask, 6.0, 1.5, 64, 128)
    np.testing.assert_array_equal(out, _sumthreshold_2d_reference(z, mask, 6.0, 1.5, 64, 128))
    assert out[0, 8:17].all() and out[8, 18:27].all() and out.sum() == 2 * 9 + 3


def _sir_reference(flags, eta):
    out = flags.copy()
    n = flags.shape[1]
    for r in range(flags.shape[0]):
        for a in range(n):
            for b in range(a + 1, n + 1):
                if flags[r, a:b].sum() >= (1 - eta) * (b - a) - 1e-12:
                    out[r, a:b] = True
    return out


@pytest.mark.parametrize("eta", [0.0, 0.2, 0.5])
def test_sir_matches_brute_force(eta, rng):
    flags = rng.random((5, 30)) < 0.35
    np.testing.assert_array_equal(k.sir_rows(flags, eta), _sir_reference(flags, eta))


def test_dilate_block_is_sir_then_grow(rng):
    flags = rng.random((12, 3, 20, 2)) < 0.3
    out = k.dilate_block(flags, DilateParams(0.2, 0.3, 0.5, 1.0))
    for b in range(3):
        for p in range(2):
            plane = _sir_reference(flags[:, b, :, p], 0.3)
            plane = _sir_reference(plane.T, 0.2).T
            plane[:, plane.sum(axis=0) > 0.5 * 12] = True
            np.testing.assert_array_equal(out[:, b, :, p], plane)


def _noise_plane(rng, n_t, n_f, sigma=1.0, level=50.0):
    t = np.linspace(-1, 1, n_t)[:, None]
    f = np.linspace(-1, 1, n_f)[None, :]
    # A steep, rippled band times a drifting gain: what uncalibrated data look like.
    band = (1 - 0.6 * f ** 8) * (1 + 0.05 * np.sin(9 * f))
    return level * (1 + 0.1 * t) * band + rng.normal(0, sigma, (n_t, n_f))


def _rfi_planes(rng):
    """Six baselines of noisy band with a broadband burst, a fluctuating line, a spike and a
    4 x 4 blob at 8 sigma per sample: ``vis``, the RFI's cells, the blob's cells."""
    n_t, n_b, n_f, n_p = 24, 6, 48, 2
    amp = np.stack([np.stack([_noise_plane(rng, n_t, n_f) for _ in range(n_p)], -1)
                    for _ in range(n_b)], 1)
    rfi = np.zeros(amp.shape, bool)
    rfi[7, :, :, :] = True            # broadband burst
    rfi[:, :, 20, :] = True           # persistent but fluctuating line
    rfi[3, 2, 5, :] = True            # single spike
    blob = np.zeros(amp.shape, bool)
    blob[12:16, 4, 30:34, :] = True   # a 4 x 4 blob at 8 sigma per sample
    vis = amp.astype(np.complex64)
    vis[7] += 20.0
    vis[:, :, 20] += rng.normal(15.0, 6.0, (n_t, n_b, n_p))
    vis[3, 2, 5] += 12.0
    vis[12:16, 4, 30:34] += 8.0
    return vis, rfi | blob, blob


def test_sumthreshold_block_finds_rfi_and_spares_clean_data(rng):
    vis, rfi, blob = _rfi_planes(rng)
    flag = np.zeros(vis.shape, bool)
    flag[0, 0, 0, 0] = True
    out = k.sumthreshold_block(vis, flag, SumThresholdParams())
    assert out[0, 0, 0, :].all()  # existing flags kept (and propagated)
    assert out[rfi & ~blob].mean() > 0.99
    assert out[~rfi].mean() < 0.01


@pytest.mark.xfail(strict=True, reason="the leave-one-out background along time (sigma_time 3) "
                   "follows a burst as long as its kernel: the blob's two middle integrations "
                   "are missed and its neighbours in time flagged, on every seed tried")
def test_sumthreshold_block_finds_a_blob_as_long_as_its_time_kernel(rng):
    """Measured with generators seeded 0-9 and 1234: 6-16 of the blob's 32 cells missed (all
    RFI 98.2-99.3% found, when the test above asserted > 99% with the blob in: it passed only
    after other tests had drawn from a shared generator)."""
    vis, _, blob = _rfi_planes(rng)
    out = k.sumthreshold_block(vis, np.zeros(vis.shape, bool), SumThresholdParams())
    assert out[blob].mean() > 0.99


def test_sumthreshold_block_keeps_nonfinite_out_of_fits(rng):
    vis = (_noise_plane(rng, 16, 32)[:, None, :, None]).astype(np.complex64)
    vis[4, 0, 10, 0] = np.nan
    vis[9, 0, 3, 0] = 1e3
    flag = np.zeros(vis.shape, bool)
    out = k.sumthreshold_block(vis, flag, SumThresholdParams())
    assert out[4, 0, 10, 0] and out[9, 0, 3, 0]
    assert out.mean() < 0.02


def test_mad_block_flags_point_outliers_only(rng):
    vis = np.stack([_noise_plane(rng, 20, 32) for _ in range(2)], 1)[..., None].astype(np.complex64)
    vis[10, 1, 16, 0] += 15.0
    out = k.mad_block(vis, np.zeros(vis.shape, bool), MadParams())
    assert out[10, 1, 16, 0]
    assert out.sum() <= 3


ST_DEFAULT = SumThresholdParams()
ST_NO_COMBINE = SumThresholdParams(sigma_frequency=2.0, robust_iterations=0,
                                   combine_correlations=False, line_threshold=4.0)


@pytest.mark.parametrize("st,mad", [
    (ST_DEFAULT, MadParams(robust_iterations=0)),   # MAD's fit is SumThreshold's last: reused
    (ST_DEFAULT, MadParams(threshold=4.0)),   # bisquare MAD: fitted anew
    (ST_DEFAULT, MadParams(half_window_time=1, threshold=4.0, sigma_time=2.0,
                           robust_iterations=0, degree=1)),   # other background: fitted anew
    (ST_NO_COMBINE, MadParams(half_window_frequency=1, threshold=4.0, sigma_frequency=2.0,
                              robust_iterations=0)),
])
def test_sumthreshold_mad_block_equals_the_two_in_turn(st, mad):
    rng = np.random.default_rng(7)
    n_t, n_b, n_f, n_p = 30, 8, 40, 4
    vis = (rng.normal(size=(n_t, n_b, n_f, n_p)) + 1j * rng.normal(size=(n_t, n_b, n_f, n_p))
           + 5.0).astype(np.complex64)
    vis[6:9, :, 11] += 25.0                          # bursts SumThreshold finds
    vis[:, 3, 30] *= 3.0
    spots = rng.integers(0, vis.size, 400)
    vis.reshape(-1)[spots] += rng.choice([6.0, 9.0, 14.0], spots.size)   # some for MAD
    vis.reshape(-1)[spots[:3]] = np.nan
    flag = rng.random(vis.shape) < 0.02
    flag[:, 2] = True                                # a baseline flagged throughout
    after_st = k.sumthreshold_block(vis, flag, st)
    after_mad = k.mad_block(vis, after_st, mad)
    code = k.sumthreshold_mad_block(vis, flag, st, mad)
    assert code.dtype == np.uint8
    np.testing.assert_array_equal(flag | (code == k.BY_SUMTHRESHOLD), after_st)
    np.testing.assert_array_equal(flag | (code > 0), after_mad)
    assert (code == k.BY_SUMTHRESHOLD).sum() == (after_st & ~flag).sum() > 0
    assert (code == k.BY_MAD).sum() == (after_mad & ~after_st).sum() > 0


def test_the_plain_codes_kernel_flags_as_the_full_one():
    # Parameters without a fit along frequency or a line test run the variant compiled without
    # them; the full kernel given the same parameters flags the same samples.
    rng = np.random.default_rng(3)
    vis = (rng.normal(size=(24, 6, 32, 2)) + 1j * rng.normal(size=(24, 6, 32, 2))
           + 4.0).astype(np.complex64)
    vis[5:8, :, 9] += 20.0
    vis.reshape(-1)[rng.integers(0, vis.size, 200)] += 8.0
    flag = rng.random(vis.shape) < 0.02
    mad = MadParams(robust_iterations=0)
    assert k.codes_kernel(ST_DEFAULT, mad) is k._sumthreshold_codes_time
    assert k.codes_kernel(ST_NO_COMBINE, mad) is k._sumthreshold_codes
    assert k.codes_kernel(ST_DEFAULT, MadParams(sigma_frequency=2.0)) is k._sumthreshold_codes
    args = k.sumthreshold_args(ST_DEFAULT, mad)
    plain = k._sumthreshold_codes_time(vis, flag, *args)
    np.testing.assert_array_equal(plain, k._sumthreshold_codes(vis, flag, *args))
    assert (plain == k.BY_SUMTHRESHOLD).sum() > 0 and (plain == k.BY_MAD).sum() > 0


def test_spectral_lines_finds_a_steady_line_on_a_flat_band(rng):
    amp = 10.0 + rng.normal(0, 0.1, (12, 40))
    amp[:, 17] += 1.0
    lines = k.spectral_lines(amp, np.zeros(amp.shape, bool), 2.0, 2, 2, 6.0, 1.5, 8, 0.1)
    assert lines[17] and lines.sum() == 1


def test_clip_block_matches_numpy_and_counts_reasons(rng):
    vis = (rng.normal(size=(4, 3, 5, 2)) + 1j * rng.normal(size=(4, 3, 5, 2))).astype(np.complex64)
    weight = np.ones(vis.shape, np.float32)
    vis[0, 0, 0, 0] = np.nan
    vis[1, 1, 1, 1] = np.inf
    weight[2, 2, 2, 0] = 0.0
    vis[3, 0, 4, 1] = 0.0
    vis[3, 1, 3, 0] = 50.0
    flag = np.zeros(vis.shape, bool)
    flag[0, 0, 0, 0] = True  # already flagged: flagged again but not counted
    out, counts = bk.clip_block(vis, weight, flag, ClipParams(0.0, 10.0, True))
    amp = np.abs(vis)
    ref = flag | ~np.isfinite(vis) | (weight <= 0) | (vis == 0) | (np.nan_to_num(amp, nan=0) > 10)
    np.testing.assert_array_equal(out, ref)
    assert counts.tolist() == [1, 1, 1, 1]


def test_weights_flag_only_planes_that_carry_weights(rng):
    """Zero, negative or NaN weights flag their samples on a baseline and correlation with a
    positive weight; a plane with none (a converter's zeros, ATA's -1.2e12) has no weights to
    go by and is left to the other criteria, as AOFlagger and CASA leave it."""
    vis = (rng.normal(size=(3, 4, 5, 2)) + 1j * rng.normal(size=(3, 4, 5, 2))).astype(np.complex64)
    weight = np.ones(vis.shape, np.float32)
    weight[:, 0] = 0.0                    # baseline 0: every weight zero
    weight[:, 1, :, 0] = -1.2e12          # baseline 1, first correlation: junk
    weight[1, 2, 3, 1] = 0.0              # baseline 2: one zero among positive weights
    weight[2, 3, 0, 0] = np.nan           # baseline 3: one NaN among positive weights
    flag = np.zeros(vis.shape, bool)
    out, counts = bk.clip_block(vis, weight, flag, ClipParams())
    expected = np.zeros(vis.shape, bool)
    expected[1, 2, 3, 1] = expected[2, 3, 0, 0] = True
    np.testing.assert_array_equal(out, expected)
    assert counts.tolist() == [0, 2, 0, 0]


def test_shadow_block_flags_the_antenna_behind():
    uvw = np.zeros((2, 3, 3))
    a1 = np.array([0, 0, 1])
    a2 = np.array([1, 2, 2])
    diameter = np.array([25.0, 25.0, 25.0])
    uvw[0, 0] = [10.0, 5.0, -30.0]    # antenna 1 behind antenna 0, closer than 25 m
    uvw[0, 1] = [300.0, 0.0, 10.0]
    uvw[0, 2] = [290.0, -5.0, 40.0]
    uvw[1] = [[100.0, 0.0, 1.0], [300.0, 0.0, 10.0], [200.0, 0.0, 9.0]]
    out = bk.shadow_block(uvw, a1, a2, diameter, ShadowParams(0.0))
    np.testing.assert_array_equal(out, [[True, False, True], [False, False, False]])


def test_quack_times_matches_reference():
    times = np.arange(10) * 10.0 + 5.0
    interval = np.full(10, 10.0)
    out = bk.quack_times(times, interval, 0.0, 100.0, QuackParams(25.0, 10.0))
    ref = (times - 5.0 < 25.0) | (times + 5.0 > 90.0)
    np.testing.assert_array_equal(out, ref)


def test_baseline_stats_match_numpy(rng):
    vis = (rng.normal(size=(5, 3, 16, 2)) + 1j * rng.normal(size=(5, 3, 16, 2))).astype(np.complex64)
    vis[:, 1] += 10.0
    flag = rng.random(vis.shape) < 0.2
    out = bk.baseline_stats(vis, flag, AntennaHealthParams(channel_window=4))
    for b in range(3):
        for p in range(2):
            amps, cohs = [], []
            for t in range(5):
                good = [v for v, f in zip(vis[t, b, :, p], flag[t, b, :, p]) if not f]
                amps += [abs(v) for v in good]
                for s in range(0, len(good) - 3, 4):
                    run = np.array(good[s:s + 4])
                    pairs = run[1:] * run[:-1].conj()
                    cohs.append(abs(pairs.sum()) / (np.abs(run[1:]) * np.abs(run[:-1])).sum())
            assert out[b, p, 0] == pytest.approx(np.median(amps), rel=1e-5)
            assert out[b, p, 1] == pytest.approx(np.median(cohs), rel=1e-5)
            assert out[b, p, 2] == len(cohs)
    assert out[1, 0, 1] > 0.9 > out[0, 0, 1]


HEALTH = AntennaHealthParams(channel_window=8, dead_fraction=0.2, min_coherence_excess=0.3,
                             amplitude_factor=5.0, amplitude_sigma=5.0)


def test_health_decision_finds_dead_antenna_and_spares_noise_fields():
    n_ant = 6
    a1, a2 = np.triu_indices(n_ant, 1)
    stats = np.zeros((a1.size, 2, 3))
    stats[..., 0] = 10.0
    stats[..., 1] = 0.95
    stats[..., 2] = 12   # runs of channels per baseline
    dead = (a1 == 3) | (a2 == 3)
    stats[dead, :, 0] = 0.1
    stats[dead, :, 1] = 0.43
    stats[0, :, 1] = 0.43  # one dead baseline between healthy antennas 0 and 1
    bad, bad_ant = bk.health_decision(stats, a1, a2, n_ant, HEALTH)
    np.testing.assert_array_equal(bad_ant, np.arange(n_ant) == 3)
    expected = dead.copy()
    expected[0] = True
    np.testing.assert_array_equal(bad, expected)
    # One run per baseline (8 channels, one integration): no baseline is judged dead on its
    # own; the dead antenna, judged over its five baselines, still is.
    one_run = stats.copy()
    one_run[..., 2] = 1
    bad, bad_ant = bk.health_decision(one_run, a1, a2, n_ant, HEALTH)
    np.testing.assert_array_equal(bad_ant, np.arange(n_ant) == 3)
    np.testing.assert_array_equal(bad, dead)
    # Pure noise everywhere: deadness cannot be judged, nothing is flagged.
    stats[..., 0] = 0.1
    stats[..., 1] = 0.43
    bad, bad_ant = bk.health_decision(stats, a1, a2, n_ant, HEALTH)
    assert not bad.any() and not bad_ant.any()


def test_health_decision_keeps_a_low_gain_antenna_when_its_autocorrelation_explains_it():
    """Antenna 2 has a tenth of its peers' voltage gain (crosses x0.1, autocorrelation x0.01)
    but correlates like them: normalised by the autocorrelations it is no outlier. Without
    them only the raw amplitudes are left, which cannot tell it from a broken antenna. Antenna 4
    is dead (noise-like coherence) whatever its amplitudes, antenna 5 correlates 10x more than its
    power predicts (an outlier either way)."""
    n_ant = 8
    a1, a2 = np.triu_indices(n_ant)   # with the autocorrelations
    gain = np.ones(n_ant)
    gain[2] = 0.1
    excess = np.ones(n_ant)
    excess[5] = 10.0
    stats = np.zeros((a1.size, 2, 3))
    stats[..., 0] = (0.05 * gain[a1] * gain[a2] * excess[a1] * excess[a2])[:, None]
    stats[..., 1] = 0.95
    stats[..., 2] = 12
    auto = a1 == a2
    stats[auto, :, 0] = (gain[a1[auto]] ** 2)[:, None]
    stats[(a1 == 4) | (a2 == 4), :, 1] = 0.43
    stats[auto, :, 1] = 0.95
    _, bad_ant = bk.health_decision(stats, a1, a2, n_ant, HEALTH)
    np.testing.assert_array_equal(np.flatnonzero(bad_ant), [4, 5])
    cross = ~auto
    _, bad_ant = bk.health_decision(stats[cross], a1[cross], a2[cross], n_ant, HEALTH)
    np.testing.assert_array_equal(np.flatnonzero(bad_ant), [2, 4, 5])
    # One antenna's autocorrelation flagged: raw and normalised amplitudes do not compare, so
    # all are judged raw.
    no_auto_6 = stats.copy()
    no_auto_6[auto & (a1 == 6), :, 0] = np.nan
    _, bad_ant = bk.health_decision(no_auto_6, a1, a2, n_ant, HEALTH)
    np.testing.assert_array_equal(np.flatnonzero(bad_ant), [2, 4, 5])


def test_coherence_follows_a_fringe_along_frequency_and_noise_sits_at_the_floor():
    """A bright source far from the phase centre turns 0.3 turns per channel on a long baseline:
    the coherence of neighbours is that of a steady signal (a run's plain sum would nearly
    cancel); pure noise sits at :func:`coherence_floor` (its mean; the median is a little below)."""
    rng = np.random.default_rng(5)
    shape = (20, 2, 64, 2)
    noise = (rng.normal(size=shape) + 1j * rng.normal(size=shape)) / np.sqrt(2)
    fringe = np.exp(2j * np.pi * 0.3 * np.arange(64))[None, None, :, None]
    flag = np.zeros(shape, bool)
    params = AntennaHealthParams(channel_window=8)
    live = bk.baseline_stats((10.0 * fringe + noise).astype(np.complex64), flag, params)
    assert (live[..., 1] > 0.95).all()
    dead = bk.baseline_stats(noise.astype(np.complex64), flag, params)
    assert (np.abs(dead[..., 1] - bk.coherence_floor(8)) < 0.08).all(), dead[..., 1]
    assert (dead[..., 2] == 20 * 8).all()
