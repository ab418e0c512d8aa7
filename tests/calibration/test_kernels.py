"""Calibration kernels against plain-numpy references."""

import numpy as np
import pytest

from radiocal.calibration import kernels as K


def _random_block(rng, nt=3, nant=5, nf=4, npol=4):
    ant1, ant2 = np.triu_indices(nant, 1)
    nbl = ant1.size
    shape = (nt, nbl, nf, npol)
    vis = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    model = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    weight = rng.uniform(0.5, 2, shape).astype(np.float32)
    flag = rng.uniform(size=shape) < 0.2
    weight[0, 0, 0, 0] = 0.0          # zero weight must not count
    vis[1, 1, 1, 0] = np.nan          # NaN must not count
    jones = (rng.normal(size=(nt, nant, nf, 2)) + 1j * rng.normal(size=(nt, nant, nf, 2)))
    return vis, model, weight, flag, jones.astype(np.complex64), ant1, ant2


def test_accumulate_matches_numpy(rng):
    vis, model, weight, flag, jones, ant1, ant2 = _random_block(rng)
    h1 = np.array([0, 0, 1, 1])
    h2 = np.array([0, 1, 0, 1])
    corr_out = np.array([0, -1, -1, 1])
    piece = np.array([0, 0, 1])
    fcell = np.array([0, 0, 1, 1])
    stats = K.accumulate_stats(vis, model, weight, flag, jones, piece, 2, fcell, 2, ant1, ant2,
                               h1, h2, corr_out, 2)
    j = jones.astype(np.complex128)
    mc = model.astype(np.complex128) * j[:, ant1][..., h1] * np.conj(j[:, ant2][..., h2])
    ok = ~flag & (weight > 0) & np.isfinite(vis)
    w = np.where(ok, weight, 0.0)
    v = np.where(ok, vis, 0).astype(np.complex128)
    expect = np.zeros_like(stats)
    for t, k in enumerate(piece):
        for f, c in enumerate(fcell):
            for pol, o in enumerate(corr_out):
                if o < 0:
                    continue
                r = w[t, :, f, pol] * v[t, :, f, pol] * np.conj(mc[t, :, f, pol])
                expect[k, c, :, o, 0] += r.real
                expect[k, c, :, o, 1] += r.imag
                expect[k, c, :, o, 2] += w[t, :, f, pol] * np.abs(mc[t, :, f, pol]) ** 2
                expect[k, c, :, o, 3] += w[t, :, f, pol] * np.abs(v[t, :, f, pol]) ** 2
                expect[k, c, :, o, 4] += ok[t, :, f, pol]
    np.testing.assert_allclose(stats, expect, rtol=1e-9, atol=1e-9)


def _exact_stats(g, ant1, ant2, weight=1.0):
    """Noise-free statistics of one cell: y_pq = g_p conj(g_q)."""
    x = g[ant1] * np.conj(g[ant2])
    stats = np.zeros((1, 1, ant1.size, 1, 5))
    stats[0, 0, :, 0, 0] = weight * x.real
    stats[0, 0, :, 0, 1] = weight * x.imag
    stats[0, 0, :, 0, 2] = weight
    stats[0, 0, :, 0, 3] = weight * np.abs(x) ** 2
    stats[0, 0, :, 0, 4] = 10
    return stats


@pytest.mark.parametrize("mode", ["ap", "p", "a"])
def test_solve_cells_exact(rng, mode):
    nant = 7
    ant1, ant2 = np.triu_indices(nant, 1)
    amp = rng.uniform(0.5, 1.5, nant)
    phase = rng.uniform(-np.pi, np.pi, nant)
    g = {"ap": amp * np.exp(1j * phase), "p": np.exp(1j * phase), "a": amp}[mode]
    stats = _exact_stats(g.astype(np.complex128), ant1, ant2)
    gain, snr, err, flag, used = K.solve_cells(stats, ant1, ant2, nant, np.array([2]),
                                               K.CALMODES[mode], 2, 0.0, 200, 1e-12)
    expect = g * np.exp(-1j * np.angle(g[2]))
    np.testing.assert_allclose(gain[0, 0, :, 0], expect, atol=1e-8)
    assert not flag.any()
    assert used[0, 0, 0] == (2 if mode != "a" else 2)


def test_solve_cells_refant_fallback_and_minblperant(rng):
    nant = 6
    ant1, ant2 = np.triu_indices(nant, 1)
    g = np.exp(1j * rng.uniform(-np.pi, np.pi, nant))
    stats = _exact_stats(g, ant1, ant2)
    # antenna 0 (the preferred reference) has no data; antenna 5 keeps only two baselines
    stats[0, 0, (ant1 == 0) | (ant2 == 0), 0, :] = 0
    drop5 = np.flatnonzero((ant1 == 5) | (ant2 == 5))[2:]
    stats[0, 0, drop5, 0, :] = 0
    gain, snr, err, flag, used = K.solve_cells(stats, ant1, ant2, nant, np.array([0, 3]),
                                               K.MODE_P, 3, 0.0, 200, 1e-12)
    assert used[0, 0, 0] == 3
    assert flag[0, 0, 0, 0] and flag[0, 0, 5, 0]
    assert gain[0, 0, 0, 0] == 1 and gain[0, 0, 5, 0] == 1
    solved = [1, 2, 3, 4]
    np.testing.assert_allclose(gain[0, 0, solved, 0], g[solved] * np.conj(g[3]), atol=1e-9)


def test_interpolate_time_against_numpy(rng):
    sol_time = np.array([0.0, 10.0, 30.0])
    values = np.exp(1j * rng.uniform(-3, 3, (3, 4))) * rng.uniform(0.5, 2, (3, 4))
    valid = np.ones((3, 4), dtype=bool)
    valid[1, 2] = False
    times = np.array([-5.0, 0.0, 4.0, 10.0, 22.0, 40.0])
    out, flag = K.interpolate_time(values, valid, sol_time, times, True)
    assert not flag.any()
    for c in range(4):
        ok = valid[:, c]
        st, v = sol_time[ok], values[ok, c]
        amp = np.interp(times, st, np.abs(v))
        # phase: unwrap between neighbours, then interpolate
        ph = np.unwrap(np.angle(v))
        phase = np.interp(times, st, ph)
        np.testing.assert_allclose(out[:, c], amp * np.exp(1j * phase), atol=1e-12)
    near, _ = K.interpolate_time(values, valid, sol_time, times, False)
    np.testing.assert_allclose(near[:, 0], values[[0, 0, 0, 1, 2, 2], 0])


def test_apply_gains_matches_numpy(rng):
    vis, model, weight, flag, jones, ant1, ant2 = _random_block(rng)
    h1 = np.array([0, 0, 1, 1])
    h2 = np.array([0, 1, 0, 1])
    jflag = np.zeros(jones.shape, dtype=bool)
    jflag[0, 2, 1, 0] = True
    out, fout, wout = K.apply_gains(vis, flag, weight, jones, jflag, ant1, ant2, h1, h2, True)
    x = jones[:, ant1][..., h1] * np.conj(jones[:, ant2][..., h2])
    bad = jflag[:, ant1][..., h1] | jflag[:, ant2][..., h2]
    np.testing.assert_allclose(out[~bad], (vis / x)[~bad], rtol=1e-5)
    np.testing.assert_array_equal(fout, flag | bad)
    np.testing.assert_allclose(wout[~bad], (weight * np.abs(x) ** 2)[~bad], rtol=1e-5)
    assert bad.any()
