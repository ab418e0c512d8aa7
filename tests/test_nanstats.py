"""radiocal.nanstats: numpy's NaN-skipping statistics, silent where a slice is all NaN."""

import warnings

import numpy as np
import pytest

from radiocal import nanstats


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("axis", [None, 0, 1, 2, (0, 2)])
@pytest.mark.parametrize("keepdims", [False, True])
@pytest.mark.parametrize("name", ["nanmedian", "nanmin"])
def test_as_numpy_and_silent(dtype, axis, keepdims, name):
    values = np.random.default_rng(7).normal(size=(5, 4, 3)).astype(dtype)
    values[values < 0.3] = np.nan
    values[1] = np.nan          # all-NaN slices along every axis
    values[:, 2] = np.nan
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        expected = getattr(np, name)(values, axis=axis, keepdims=keepdims)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = getattr(nanstats, name)(values, axis=axis, keepdims=keepdims)
    assert np.shape(got) == np.shape(expected)
    assert np.asarray(got).dtype == np.asarray(expected).dtype
    np.testing.assert_array_equal(got, expected)


def test_all_nan_is_nan_without_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(nanstats.nanmedian(np.full(4, np.nan)))
        assert np.isnan(nanstats.nanmin(np.full((2, 3), np.nan), axis=1)).all()
