"""Kernels against plain-numpy references."""


import numpy as np
import pytest

from radiocal.dynspec import kernels
from radiocal.dynspec.products import product_matrix
from radiocal.model.dataset import stokes_to_correlation


def numpy_average(vis, flag, weight, coeffs, tavg, favg):
    nt, nb, nf, _ = vis.shape
    nto, nfo = -(-nt // tavg), -(-nf // favg)
    out = np.full((nto, nfo, coeffs.shape[0], 3), np.nan)
    for p, row in enumerate(coeffs):
        used = row != 0
        good = ~flag[..., used].any(-1) & (weight[..., used] > 0).all(-1)
        x = (vis[..., used] * row[used]).sum(-1).real
        with np.errstate(divide="ignore"):
            ws = 1 / (np.abs(row[used]) ** 2 / weight[..., used]).sum(-1)
        ws = np.where(good, ws, 0.0)
        for to in range(nto):
            for fo in range(nfo):
                sl = (slice(to * tavg, (to + 1) * tavg), slice(None), slice(fo * favg, (fo + 1) * favg))
                wblk, xblk = ws[sl], x[sl]
                wb = wblk.sum(axis=(0, 2))
                live = wb > 0
                xb = (wblk * xblk).sum(axis=(0, 2))[live] / wb[live]
                wb = wb[live]
                out[to, fo, p, 2] = live.sum()
                if live.sum() == 0:
                    continue
                mean = np.average(xb, weights=wb)
                out[to, fo, p, 0] = mean
                if live.sum() > 1:
                    var = (wb * (xb - mean) ** 2).sum() / (wb.sum() - (wb**2).sum() / wb.sum())
                    out[to, fo, p, 1] = np.sqrt(var * (wb**2).sum()) / wb.sum()
    return out


@pytest.mark.parametrize("tavg,favg", [(1, 1), (2, 3)])
def test_baseline_average_matches_numpy_with_flags(tavg, favg):
    rng = np.random.default_rng(2)
    shape = (5, 7, 8, 4)
    vis = (rng.normal(size=shape) + 1j * rng.normal(size=shape)).astype(np.complex64)
    flag = rng.random(shape) < 0.2
    flag[:, 3] = True                      # a whole baseline flagged
    flag[2, :, 4, :] = True                # a fully flagged cell
    weight = rng.uniform(0.5, 2.0, shape).astype(np.float32)
    weight[0, 1, 0, 0] = 0.0               # zero weight counts as flagged
    vis[1, 2, 3, 0] = np.nan + 0j          # so does a NaN, even unflagged
    flag[1, 2, 3, 0] = False
    names, coeffs = product_matrix(("RR", "RL", "LR", "LL"))
    assert names == ["RR", "LL", "I", "Q", "U", "V"]
    vis_ref = np.where(np.isfinite(vis), vis, 0)
    flag_ref = flag | ~np.isfinite(vis)
    got = kernels.baseline_average(vis, flag, weight, coeffs, tavg, favg)
    want = numpy_average(vis_ref, flag_ref, weight, coeffs, tavg, favg)
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12, equal_nan=True)
    if tavg == 1 and favg == 1:
        assert np.isnan(got[2, 4, :, :2]).all()
        assert (got[2, 4, :, 2] == 0).all()
    # A flagged sample must not leak: changing it changes nothing.
    vis2 = vis.copy()
    vis2[flag] = 1e6
    np.testing.assert_array_equal(kernels.baseline_average(vis2, flag, weight, coeffs, tavg, favg), got)


def test_stokes_products_round_trip():
    stokes = np.array([2.0, 0.3, -0.2, 0.5])
    for pols in [("RR", "RL", "LR", "LL"), ("XX", "XY", "YX", "YY")]:
        corr = stokes @ stokes_to_correlation(pols)
        names, coeffs = product_matrix(pols)
        values = dict(zip(names, coeffs @ corr))
        for k, s in enumerate("IQUV"):
            assert values[s] == pytest.approx(stokes[k])
    names, _ = product_matrix(("RR", "LL"))
    assert names == ["RR", "LL", "I", "V"]
