"""The predict kernel against a plain-numpy DFT."""


import numpy as np
import pytest

from radiocal.model import kernels
from radiocal.model.dataset import stokes_to_correlation

C = 299792458.0


def numpy_predict(uvw, freq, lmn, brightness, gauss):
    """Straightforward DFT: sum over sources of B * shape * exp(+2 pi i (ul + vm + w(n-1)) nu / c), CASA's sign."""
    u, v, w = (uvw[..., k][..., None] * freq / C for k in range(3))  # wavelengths (t, b, f)
    out = np.zeros(uvw.shape[:2] + (freq.size, brightness.shape[2]), complex)
    for s in range(lmn.shape[0]):
        l, m, n = lmn[s]
        fringe = np.exp(2j * np.pi * (u * l + v * m + w * (n - 1)))
        major, minor, pa = gauss[s]
        up = u * np.sin(pa) + v * np.cos(pa)
        vp = u * np.cos(pa) - v * np.sin(pa)
        sigma_to_fwhm = 2 * np.sqrt(2 * np.log(2))
        smaj, smin = major / sigma_to_fwhm, minor / sigma_to_fwhm
        shape = np.exp(-2 * np.pi**2 * (smaj**2 * up**2 + smin**2 * vp**2))
        out += (fringe * shape)[..., None] * brightness[s][None, None]
    return out


FREQS = {
    "regular": np.linspace(1.0e9, 1.2e9, 5),
    "regular-many": np.linspace(1.0e9, 1.2e9, 100),          # crosses re-anchoring of the fringe
    "irregular": np.array([1.0e9, 1.01e9, 1.05e9, 1.06e9, 1.2e9]),
}


@pytest.mark.parametrize("grid", sorted(FREQS))
@pytest.mark.parametrize("pols", [("RR", "LL"), ("XX", "XY", "YX", "YY"), ("RR",)])
def test_predict_matches_numpy_dft(pols, grid):
    rng = np.random.default_rng(1)
    uvw = rng.normal(0, 800, (3, 6, 3))
    freq = FREQS[grid]
    lm = rng.uniform(-0.02, 0.02, (4, 2))
    lmn = np.column_stack([lm, np.sqrt(1 - (lm**2).sum(1))])
    arcsec = np.pi / 180 / 3600
    gauss = np.array([[0, 0, 0], [40 * arcsec, 15 * arcsec, 0.3], [0, 0, 0], [25 * arcsec, 25 * arcsec, 2.0]])
    stokes = rng.normal(1, 0.3, (4, freq.size, 4))
    brightness = stokes @ stokes_to_correlation(pols)
    got = kernels.predict_components(uvw, freq, lmn, brightness, gauss)
    want = numpy_predict(uvw, freq, lmn, brightness, gauss)
    assert got.dtype == np.complex64 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6 * np.abs(want).max())
    # The Gaussians must actually resolve on these baselines, or the test would not test them.
    assert np.abs(want).std() > 0.1


def test_gaussian_total_flux_at_zero_spacing():
    gauss = np.array([[60 * np.pi / 180 / 3600, 20 * np.pi / 180 / 3600, 1.0]])
    out = kernels.predict_components(np.zeros((1, 1, 3)), np.array([1e9]), np.array([[0.0, 0, 1]]),
                                     np.full((1, 1, 1), 2.5 + 0j), gauss)
    assert out[0, 0, 0, 0] == pytest.approx(2.5)
