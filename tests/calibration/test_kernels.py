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
                                               K.CALMODES[mode], K.SolveLimits(2, 200, 1e-12))
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
                                               K.MODE_P, K.SolveLimits(3, 200, 1e-12))
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


def _hermite_reference(values, valid, sol_time, sol_scan, times):
    """Plain numpy/scipy version of interpolate_time_hermite for one column."""
    from scipy.interpolate import CubicHermiteSpline

    ok = valid & (values != 0)
    if not ok.any():
        return None
    st, v, sc = sol_time[ok], values[ok], sol_scan[ok]
    breaks = np.flatnonzero(np.diff(sc) != 0) + 1
    nodes = []
    for idx in np.split(np.arange(st.size), breaks):
        x, g = st[idx], v[idx]
        phase = np.unwrap(np.angle(g))
        logamp = np.log(np.abs(g))
        if idx.size > 1:
            pa, pp = np.polyfit(x - x.mean(), logamp, 1), np.polyfit(x - x.mean(), phase, 1)
            nodes.append([x.mean(), pa[1], pp[1], pa[0], pp[0], True, x[0], x[-1]])
        else:
            nodes.append([x[0], logamp[0], phase[0], 0.0, 0.0, False, x[0], x[0]])
    nodes = np.array(nodes, dtype=float)
    for k in range(1, len(nodes)):
        d = nodes[k, 2] - nodes[k - 1, 2]
        nodes[k, 2] -= 2 * np.pi * np.round(d / (2 * np.pi))
    for k in range(len(nodes)):
        if not nodes[k, 5] and len(nodes) > 1:
            lo, hi = max(k - 1, 0), min(k + 1, len(nodes) - 1)
            nodes[k, 3:5] = (nodes[hi, 1:3] - nodes[lo, 1:3]) / (nodes[hi, 0] - nodes[lo, 0])
    out = np.empty(times.shape, complex)
    inside = (times > nodes[0, 0]) & (times < nodes[-1, 0])
    if len(nodes) > 1:
        la = CubicHermiteSpline(nodes[:, 0], nodes[:, 1], nodes[:, 3])(times[inside])
        ph = CubicHermiteSpline(nodes[:, 0], nodes[:, 2], nodes[:, 4])(times[inside])
        out[inside] = np.exp(la + 1j * ph)
    for t in np.flatnonzero(~inside):
        end = nodes[0] if times[t] <= nodes[0, 0] else nodes[-1]
        dx = np.clip(times[t], end[6], end[7]) - end[0]
        out[t] = np.exp(end[1] + end[3] * dx + 1j * (end[2] + end[4] * dx))
    return out


def test_interpolate_time_hermite_against_numpy(rng):
    # three scans of 4 solutions, one scan of a single solution, phases wrapping through +-pi
    sol_time = np.concatenate([np.arange(4) * 10.0, 200 + np.arange(4) * 10.0, [400.0],
                               600 + np.arange(4) * 10.0])
    sol_scan = np.repeat([2, 4, 6, 8], [4, 4, 1, 4]).astype(np.int64)
    ncol = 5
    drift = rng.uniform(-0.02, 0.02, ncol)
    phase = 3.0 + drift * sol_time[:, None] + 0.05 * rng.normal(size=(sol_time.size, ncol))
    amp = np.exp(0.1 * rng.normal(size=(sol_time.size, ncol)))
    values = amp * np.exp(1j * phase)
    valid = np.ones(values.shape, bool)
    valid[1, 0] = False             # a flagged solution inside a scan
    valid[4:8, 1] = False           # a whole scan flagged
    valid[:, 2] = False             # a column without solutions
    valid[8, 3] = False             # the single-solution scan flagged
    times = np.array([-50.0, 0.0, 15.0, 80.0, 190.0, 235.0, 300.0, 400.0, 555.0, 625.0, 700.0])
    out, flag = K.interpolate_time_hermite(values, valid, sol_time, sol_scan, times)
    for c in range(ncol):
        want = _hermite_reference(values[:, c], valid[:, c], sol_time, sol_scan, times)
        if want is None:
            assert flag[:, c].all()
            continue
        assert not flag[:, c].any()
        np.testing.assert_allclose(out[:, c], want, rtol=1e-10, atol=1e-12)


def test_interpolate_time_hermite_is_exact_for_linear_drifts():
    """Linear phase and log-amplitude drifts are followed exactly across the gaps, where the
    scans' rates carry them; a quadratic phase is followed far better than by linear."""
    sol_time = np.concatenate([k * 300.0 + np.arange(6) * 10.0 for k in range(3)])
    sol_scan = np.repeat([1, 3, 5], 6).astype(np.int64)
    times = np.linspace(sol_time[0], sol_time[-1], 97)
    valid = np.ones((sol_time.size, 1), bool)

    def gain(t):
        return np.exp((0.3 - 1e-4 * t) + 1j * (2.5 + 0.004 * t))   # 1.2 rad per 300 s gap

    out, flag = K.interpolate_time_hermite(gain(sol_time)[:, None], valid, sol_time, sol_scan,
                                           times)
    assert not flag.any()
    np.testing.assert_allclose(out[:, 0], gain(times), rtol=1e-9)

    def curved(t):
        return np.exp(1j * 1e-5 * (t - 250.0) ** 2)

    values = curved(sol_time)[:, None]
    cubic, _ = K.interpolate_time_hermite(values, valid, sol_time, sol_scan, times)
    linear, _ = K.interpolate_time(values, valid, sol_time, times, True)
    err_cubic = np.abs(np.angle(cubic[:, 0] * np.conj(curved(times)))).max()
    err_linear = np.abs(np.angle(linear[:, 0] * np.conj(curved(times)))).max()
    assert err_cubic < 0.05 * err_linear, (err_cubic, err_linear)


@pytest.mark.parametrize("with_instrument", [False, True])
def test_rotated_model_matches_numpy(rng, with_instrument):
    from radiocal.calibration import pol_kernels as PK

    nt, nant, nf = 3, 5, 4
    ant1, ant2 = (np.array(a, dtype=np.int64) for a in zip(*[(p, q) for p in range(nant)
                                                                  for q in range(p, nant)]))
    shape = (nt, nant, 2, 2)
    rot = rng.normal(size=shape) + 1j * rng.normal(size=shape)
    sky = rng.normal(size=(nf, 2, 2)) + 1j * rng.normal(size=(nf, 2, 2))
    if with_instrument:
        inst = rng.normal(size=(nant, nf, 2, 2)) + 1j * rng.normal(size=(nant, nf, 2, 2))
    else:
        inst = np.broadcast_to(np.eye(2), (nant, nf, 2, 2)).astype(np.complex128)
    corr = np.array([[0, 1], [2, 3]], dtype=np.int64)
    got = PK.rotated_model(rot, sky, inst, ant1, ant2, corr)
    p = inst[ant1][None] @ rot[:, ant1][:, :, None]           # (t, b, f, 2, 2)
    q = inst[ant2][None] @ rot[:, ant2][:, :, None]
    want = (p @ sky[None, None] @ np.conj(np.swapaxes(q, -1, -2))).reshape(nt, len(ant1), nf, 4)
    assert got.dtype == np.complex64
    np.testing.assert_allclose(got, want.astype(np.complex64), rtol=1e-5, atol=1e-5)
