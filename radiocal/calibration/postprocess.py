"""Solution post-processing from the OVRO-LWA pipeline: bandpass outliers, channel filling,
delay comparison with a reference table.

All functions take and return tables (lists of per-spw datasets, in memory) plus a report.
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy.ndimage import median_filter

from radiocal.calibration import kernels as K
from radiocal.errors import ConfigError
from radiocal.store import caltables as C
from radiocal.store import schema as S


def _mad(x, axis=None):
    med = np.nanmedian(x, axis=axis, keepdims=True)
    return med, 1.4826 * np.nanmedian(np.abs(x - med), axis=axis, keepdims=True)


def _require(table, kinds):
    kind = C.table_type(table)
    if kind not in kinds:
        raise ConfigError(f"expected a {' or '.join(kinds)} table, got {kind}")


def flag_bandpass_outliers(table, *, antenna_threshold, channel_threshold, antenna_min_deviation,
                           window=9):
    """Flag outlier antennas and channels of a bandpass table.

    The thresholds have no defaults here: they are declared once, as the ``sky_bandpass`` step's
    options (``radiocal.calibration.config.SkyBandpassConfig``), which ``radiocal caltable
    flag-outliers`` takes too.

    An antenna (per hand) is flagged when its median amplitude over channels lies more than
    ``antenna_threshold`` scaled MADs from the array's median, and more than the fraction
    ``antenna_min_deviation`` of that median (where the antennas agree closely, the MAD alone
    would call a few per cent an outlier). A channel is flagged when its
    amplitude departs from a running median over ``window`` channels by more than
    ``channel_threshold`` scaled MADs of that antenna's residuals (narrow RFI, dead channels).

    Returns
    -------
    table : list of xarray.Dataset
    report : dict
        ``{"antennas": {spw: [(name, hand), ...]}, "channels": {spw: n_flagged}}``
    """
    _require(table, ("B",))
    out, report = [], {"antennas": {}, "channels": {}}
    for tds in table:
        spw = int(tds.attrs[S.ATTR_SPW_ID])
        amp = np.abs(tds[C.GAIN].values).astype(np.float64)    # (time, antenna, freq, hand)
        flag = tds[C.SOL_FLAG].values.copy()
        amp_masked = np.where(flag, np.nan, amp)
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)    # all-flagged antennas
            per_ant = np.nanmedian(amp_masked, axis=2)           # (time, antenna, hand)
            med, mad = _mad(per_ant, axis=1)
            bad_ant = np.abs(per_ant - med) > np.maximum(
                antenna_threshold * np.maximum(mad, 1e-12), antenna_min_deviation * np.abs(med))
        flag |= bad_ant[:, :, None, :]
        names = tds[S.ANTENNA_NAME].values if S.ANTENNA_NAME in tds.coords else \
            np.arange(amp.shape[1])
        report["antennas"][spw] = sorted({(str(names[a]), str(tds[C.HAND].values[h]))
                                          for _, a, h in zip(*np.nonzero(bad_ant))})
        before = int(flag.sum())
        if amp.shape[2] >= 3:
            flag |= _channel_outliers(amp, flag, channel_threshold, window)
        report["channels"][spw] = int(flag.sum()) - before
        out.append(tds.assign({C.SOL_FLAG: (tds[C.SOL_FLAG].dims, flag)}))
    return out, report


def _channel_outliers(amp, flag, threshold, window):
    """Channels departing from a running median by more than ``threshold`` sigma."""
    amp_masked = np.where(flag, np.nan, amp)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)    # all-flagged antennas
        filled = np.where(np.isnan(amp_masked),
                          np.nanmedian(amp_masked, axis=2, keepdims=True), amp_masked)
        smooth = median_filter(np.nan_to_num(filled),
                               size=(1, 1, min(window, amp.shape[2]), 1), mode="nearest")
        resid = np.where(flag, np.nan, amp - smooth)
        # residuals from a running median are biased towards zero; the noise comes from
        # neighbouring-channel differences instead
        _, dmad = _mad(np.diff(amp_masked, axis=2), axis=2)
        sigma = dmad / np.sqrt(2.0)
        bad = np.abs(resid) > threshold * np.maximum(sigma, 1e-12)
    return np.nan_to_num(bad).astype(bool)


def interpolate_flagged_channels(table, linear=True):
    """Fill flagged channels of a bandpass from the unflagged ones (amplitude and phase).

    Channels beyond the unflagged range take the nearest unflagged value; an antenna/hand with
    no unflagged channel stays flagged.
    """
    _require(table, ("B",))
    out = []
    for tds in table:
        values = tds[C.GAIN].values.astype(np.complex128)          # (time, antenna, freq, hand)
        flag = tds[C.SOL_FLAG].values
        nt, na, nf, nh = values.shape
        v = values.transpose(0, 1, 3, 2).reshape(-1, nf, 1)
        ok = ~flag.transpose(0, 1, 3, 2).reshape(-1, nf, 1)
        freqs = tds[C.SOL_FREQ].values.astype(np.float64)
        filled, still = K.interpolate_frequency(v, ok, freqs, freqs, linear)
        filled = filled.reshape(nt, na, nh, nf).transpose(0, 1, 3, 2)
        still = still.reshape(nt, na, nh, nf).transpose(0, 1, 3, 2)
        new_values = np.where(flag & ~still, filled, values).astype(np.complex64)
        out.append(tds.assign({C.GAIN: (tds[C.GAIN].dims, new_values),
                               C.SOL_FLAG: (tds[C.SOL_FLAG].dims, flag & still)}))
    return out


def compare_delays(table, reference, *, threshold):
    """Flag antennas whose delay moved by more than ``threshold`` seconds from a reference
    (declared once: ``SkyBandpassConfig.delay_threshold_ns``).

    Both tables are K tables on the same antennas; the first solution time of each is compared
    (delays are referenced to each table's reference antenna, so the median difference over
    antennas is removed first).

    Returns
    -------
    table : list of xarray.Dataset
        ``table`` with the moved antennas flagged.
    report : dict
        ``{spw: {(antenna name, hand): difference in ns}}`` of the flagged antennas.
    """
    _require(table, ("K",))
    _require(reference, ("K",))
    refs = {int(t.attrs[S.ATTR_SPW_ID]): t for t in reference}
    out, report = [], {}
    for tds in table:
        spw = int(tds.attrs[S.ATTR_SPW_ID])
        if spw not in refs:
            raise ConfigError(f"reference delay table has no spw {spw}")
        ref = refs[spw]
        names = [str(n) for n in tds[S.ANTENNA_NAME].values]
        ref_names = [str(n) for n in ref[S.ANTENNA_NAME].values]
        if names != ref_names:
            raise ConfigError("delay tables have different antennas")
        diff = tds[C.DELAY].values[:, :, 0, :] - ref[C.DELAY].values[:1, :, 0, :]
        both = ~tds[C.SOL_FLAG].values[:, :, 0, :] & ~ref[C.SOL_FLAG].values[:1, :, 0, :]
        diff = np.where(both, diff, np.nan)
        with np.errstate(all="ignore"):
            diff = diff - np.nanmedian(diff, axis=1, keepdims=True)
        moved = np.abs(np.nan_to_num(diff)) > threshold
        flag = tds[C.SOL_FLAG].values | moved[:, :, None, :]
        hands = [str(h) for h in tds[C.HAND].values]
        report[spw] = {(names[a], hands[h]): float(diff[t, a, h] * 1e9)
                       for t, a, h in zip(*np.nonzero(moved))}
        out.append(tds.assign({C.SOL_FLAG: (tds[C.SOL_FLAG].dims, flag)}))
    return out, report


def good_feed_fraction(table, antennas=None) -> float:
    """Fraction of (antenna, hand) with at least one unflagged solution in any spw of a table;
    ``antennas``: the antenna indices to count (those in the data: an ANTENNA table may list
    antennas that observed nothing, 15 of CARMA/SZA's 23), default all of the table's."""
    good = np.logical_or.reduce([(~tds[C.SOL_FLAG].values).any(axis=(0, 2)) for tds in table])
    if antennas is not None:
        good = good[np.asarray(antennas, dtype=int)]
    return float(np.mean(good)) if np.size(good) else 0.0
