"""OVRO-LWA-style post-processing of bandpass and delay tables."""

import numpy as np
import pytest

from radiocal.calibration.config import SkyBandpassConfig
from radiocal.calibration.postprocess import (compare_delays, flag_bandpass_outliers,
                                              interpolate_flagged_channels)
from radiocal.errors import ConfigError
from radiocal.store import caltables as C
from radiocal.store import schema as S


def _table(values, cal_type="B", flag=None):
    nt, na, nf, nh = values.shape
    flag = np.zeros(values.shape, bool) if flag is None else flag
    antennas = {S.ANTENNA_NAME: ((S.ANTENNA,), np.array([f"LWA{i:03d}" for i in range(na)]))}
    return [C.make_table_dataset(
        cal_type, values, flag, np.ones(values.shape), np.zeros(values.shape),
        time=np.arange(nt, dtype=float), interval=np.zeros(nt), field_id=np.zeros(nt),
        scan_number=np.ones(nt), frequency=50e6 + 24e3 * np.arange(nf), channel_width=np.ones(nf),
        hands=("X", "Y")[:nh], antennas=antennas, attrs={S.ATTR_SPW_ID: 0})]


# The sky_bandpass step's thresholds (the one place they are declared)
STEP = SkyBandpassConfig()
THRESHOLDS = dict(antenna_threshold=STEP.antenna_threshold,
                  channel_threshold=STEP.channel_threshold)


def test_flag_bandpass_outliers(rng):
    nf = 64
    smooth = 1 + 0.2 * np.sin(np.linspace(0, 3, nf))
    values = (smooth[None, None, :, None] * (1 + 0.01 * rng.standard_normal((1, 12, nf, 2)))
              * np.exp(1j * rng.uniform(-1, 1, (1, 12, 1, 2)))).astype(np.complex64)
    values[0, 4] *= 0.05          # a nearly dead antenna
    values[0, 7, 20, 1] *= 3.0    # one RFI channel
    table, report = flag_bandpass_outliers(_table(values), **THRESHOLDS,
                                           antenna_min_deviation=STEP.antenna_min_deviation)
    flag = table[0][C.SOL_FLAG].values
    assert flag[0, 4].all()
    assert ("LWA004", "X") in report["antennas"][0] and ("LWA004", "Y") in report["antennas"][0]
    assert flag[0, 7, 20, 1] and not flag[0, 7, 20, 0]
    # only the planted problems (and a handful of noise channels at most)
    assert flag.sum() < flag[0, 4].size + 10


def test_bandpass_outlier_floor(rng):
    """Antennas that agree to 0.1%: 3% off is a MAD outlier, but not a bad antenna."""
    values = (1 + 0.001 * rng.standard_normal((1, 10, 16, 1))).astype(np.complex64)
    values[0, 3] *= 1.03
    values[0, 6] *= 0.5
    plain = flag_bandpass_outliers(_table(values), **THRESHOLDS, antenna_min_deviation=0.0)[0][0][
        C.SOL_FLAG].values
    floored = flag_bandpass_outliers(_table(values), **THRESHOLDS, antenna_min_deviation=0.25)[0][
        0][C.SOL_FLAG].values
    assert plain[0, 3].all() and plain[0, 6].all()
    assert not floored[0, 3].any() and floored[0, 6].all()


def test_interpolate_flagged_channels():
    nf = 10
    truth = np.exp(1j * np.linspace(0, 1, nf)) * np.linspace(1, 2, nf)
    values = np.broadcast_to(truth[None, None, :, None], (1, 2, nf, 1)).astype(np.complex64).copy()
    flag = np.zeros(values.shape, bool)
    flag[0, 0, [3, 4]] = True
    flag[0, 1] = True                       # fully flagged antenna stays flagged
    values[flag] = 0
    out = interpolate_flagged_channels(_table(values, flag=flag))[0]
    np.testing.assert_allclose(out[C.GAIN].values[0, 0, :, 0], truth, rtol=1e-5)
    assert not out[C.SOL_FLAG].values[0, 0].any() and out[C.SOL_FLAG].values[0, 1].all()


def test_compare_delays():
    ref = np.zeros((1, 6, 1, 2))
    ref[0, :, 0, 0] = np.arange(6) * 1e-9
    now = ref.copy() + 0.3e-9               # a common offset (another reference) is ignored
    now[0, 2, 0, 1] += 5e-9                 # antenna 2, Y moved
    table, report = compare_delays(_table(now, "K"), _table(ref, "K"), threshold=2e-9)
    flag = table[0][C.SOL_FLAG].values
    assert flag[0, 2, 0, 1] and flag.sum() == 1
    assert list(report[0]) == [("LWA002", "Y")]
    assert abs(report[0][("LWA002", "Y")] - 5.0) < 1e-6
    with pytest.raises(ConfigError):
        compare_delays(_table(now.astype(complex), "B"), _table(ref, "K"), threshold=2e-9)
