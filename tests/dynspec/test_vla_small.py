"""The judged check on ../shared/data/vla_small: the star's I and V at the thermal-noise floor.

``test_true_gains`` needs only the MS reader: it calibrates with truth.npz's gains and flags the
injected RFI and the dead antenna, so it measures the dynamic-spectrum stage alone.
``test_after_default_flagging_and_calibration`` runs radiocal's own flagging and calibration first
(skipped until those steps exist).
"""

import math
from pathlib import Path

import numpy as np
import pytest

from radiocal.dynspec import dataset as D
from radiocal.dynspec.config import DynspecConfig
from radiocal.store import schema as S

from ..conftest import VLA_SMALL_PHASE_CONVENTION

DATA = Path(__file__).resolve().parents[3] / "shared" / "data" / "vla_small"
MS = DATA / "vla_small.ms"
TARGET = "STAR"

pytestmark = pytest.mark.skipif(not MS.exists(), reason="../shared/data/vla_small is not available")


@pytest.fixture(scope="module")
def truth():
    return dict(np.load(DATA / "truth.npz"))


@pytest.fixture(scope="module")
def partitions():
    ms = pytest.importorskip("radiocal.ms.read", reason="needs the MS reader")
    return ms.read_ms([str(MS)])


def _row_index(ds):
    """(time, baseline) -> MS row number, -1 where the MS has no row."""
    from casacore.tables import table

    with table(str(MS), ack=False) as main:
        time, a1, a2 = main.getcol("TIME"), main.getcol("ANTENNA1"), main.getcol("ANTENNA2")
    lookup = {(t, p, q): row for row, (t, p, q) in enumerate(zip(time, a1, a2))}
    b1, b2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
    return np.array([[lookup.get((t, p, q), -1) for p, q in zip(b1, b2)] for t in ds[S.TIME].values])


def calibrate_with_truth(ds, truth):
    """CORRECTED = DATA / (J_p J_q^H) with truth's G and B; RFI and the dead antenna flagged."""
    ds = ds.load()
    ti = np.searchsorted(truth["utimes"], ds[S.TIME].values)
    jones = truth["G"][:, :, ti].transpose(2, 0, 1)[..., None] * truth["B"][None, :, :, 0, :]  # t, ant, hand, f
    a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
    gains = np.empty(ds[S.VISIBILITY].shape, dtype=complex)
    for k, pol in enumerate(ds[S.POLARIZATION].values):
        ha, hb = "RL".index(pol[0]), "RL".index(pol[1])
        gains[..., k] = jones[:, a1, ha, :] * np.conj(jones[:, a2, hb, :])
    rows = _row_index(ds)
    rfi = np.where((rows >= 0)[..., None, None], truth["rfi"][np.maximum(rows, 0)], True)
    flag = ds[S.FLAG].values | rfi
    flag[:, (a1 == truth["dead"]) | (a2 == truth["dead"])] = True
    dims = ds[S.VISIBILITY].dims
    return ds.assign({
        S.VISIBILITY_CORRECTED: (dims, (ds[S.VISIBILITY].values / gains).astype(np.complex64)),
        S.FLAG: (dims, flag),
        S.WEIGHT: (dims, (ds[S.WEIGHT].values * np.abs(gains) ** 2).astype(np.float32)),
    })


def floor_ratios(spec, truth):
    """rms error against truth over the floor sigma/sqrt(2)/sqrt(2 N_live), for I and V."""
    live = spec[D.SCAN_COORD].values >= 0
    ti = np.searchsorted(truth["utimes"], spec[S.TIME].values[live])
    n = spec[D.N_BASELINES].values[live]
    out = {}
    for name in ("I", "V"):
        got = spec[name].values[live]
        want = truth[f"star_{name}"][ti, 0, :]
        ok = np.isfinite(got) & (n > 1)
        floor = truth["noise"] / math.sqrt(2) / np.sqrt(2 * n[ok])
        out[name] = math.sqrt(np.mean((got[ok] - want[ok]) ** 2)) / math.sqrt(np.mean(floor**2))
    return out


def optimal_ratio(spec, calibrated, truth):
    """rms of the best possible error (inverse-variance mean of the calibrated baselines) over the
    sigma floor: above 1 where the true gains are below unit amplitude (the band edges)."""
    live = spec[D.SCAN_COORD].values >= 0
    best = []
    for ds in calibrated:
        w = np.where(ds[S.FLAG].values, 0.0, ds[S.WEIGHT].values.astype(float))
        wr, wl = w[..., 0], w[..., 3]
        usable = (wr > 0) & (wl > 0)
        # WEIGHT = 1/sigma^2 per complex sample; Re(I) of a baseline has (1/wRR + 1/wLL)/8.
        wr, wl = np.where(usable, wr, 1.0), np.where(usable, wl, 1.0)
        inverse = np.where(usable, 8.0 / (1 / wr + 1 / wl), 0.0).sum(axis=1)
        with np.errstate(divide="ignore"):
            best.append(1.0 / inverse)
    best = np.concatenate(best)
    n = spec[D.N_BASELINES].values[live]
    ok = np.isfinite(spec["I"].values[live]) & (n > 1)
    floor = truth["noise"] / math.sqrt(2) / np.sqrt(2 * n[ok])
    return math.sqrt(np.mean(best[ok])) / math.sqrt(np.mean(floor**2))


def _true_gain_spectrum(partitions, truth, edge_channels=0):
    calibrated = [calibrate_with_truth(ds, truth) for ds in partitions if ds.attrs[S.ATTR_FIELD_NAME] == TARGET]
    if edge_channels:
        for ds in calibrated:
            ds[S.FLAG].values[:, :, :edge_channels] = True
            ds[S.FLAG].values[:, :, -edge_channels:] = True
    # every channel kept: these tests measure the averaging itself, band edges included
    spec = D.dynamic_spectrum(calibrated, DynspecConfig(field=TARGET, skymodel=str(DATA / "skymodel.txt"),
                                                        phase_convention=VLA_SMALL_PHASE_CONVENTION,
                                                        max_channel_noise=0.0))
    return spec.compute(), calibrated


def test_true_gains_reach_the_best_possible_error(partitions, truth):
    """With the true gains, the errors are those of the optimal weighted mean over baselines."""
    spec, calibrated = _true_gain_spectrum(partitions, truth)
    ratios = floor_ratios(spec, truth)
    best = optimal_ratio(spec, calibrated, truth)
    print(f"vla_small, true gains: rms error / floor {ratios}; best possible / floor {best:.3f}")
    for name in ("I", "V"):
        assert 0.92 < ratios[name] / best < 1.05, (name, ratios[name], best)


def test_true_gains_within_10_percent_of_the_floor_without_band_edges(partitions, truth):
    """The band-edge roll-off (|B| ~ 0.67 in the outermost channels) lifts the calibrated noise
    there to ~2.2 sigma; without those two channels the floor criterion holds."""
    spec, calibrated = _true_gain_spectrum(partitions, truth, edge_channels=1)
    ratios = floor_ratios(spec, truth)
    print("vla_small, true gains, outermost channels flagged: rms error / floor", ratios)
    assert ratios["I"] < 1.10 and ratios["V"] < 1.10


@pytest.mark.slow
def test_after_default_flagging_and_calibration(partitions, truth, tmp_path):
    """The judged route: default flagging, calibration, then predict + subtract + dynspec.

    Before 16:00 UTC on 2026-11-23 this gave I 1.20, V 1.24: the target's phases, linearly
    interpolated between phase-calibrator scans, were off by ~3 degrees rms against gains
    drifting on ~15-minute periods, and that error times the 1.8 Jy background left in the
    subtraction dominated. The calibrate step now follows each calibrator scan's phase rate
    (hermite), which matches the true gains (I 1.08, V 1.13 over all channels); the rest is the
    band edges, where the bandpass roll-off lifts the calibrated noise by 1/|B|^2 ~ 2.3, and
    which the dynamic spectrum blanks (max_channel_noise) without flagging any visibility.
    """
    pytest.importorskip("radiocal.flagging.step", reason="needs the flag step")
    pytest.importorskip("radiocal.calibration.step", reason="needs the calibration steps")
    from radiocal.engine.context import StepContext
    from radiocal.registry import all_steps, make_config

    steps = all_steps()
    if any(name not in steps for name in ("flag", "calibrate")):
        pytest.skip(f"needs the flag and calibrate steps (have {', '.join(steps)})")
    context = StepContext.for_library(tmp_path)
    plan = [
        ("flag", {}),
        ("calibrate", {"fluxcal": "J1331+3030", "phasecal": "J1407+2827", "targets": [TARGET],
                       "fluxcal_model": "15,-0.5,1.4GHz", "calwt": True}),
    ]
    datasets = partitions
    for name, options in plan:
        spec = steps[name]
        datasets = spec.run(datasets, make_config(spec, options), context)
    spectrum = D.dynamic_spectrum(datasets, DynspecConfig(field=TARGET, skymodel=str(DATA / "skymodel.txt"),
                                                                    phase_convention=VLA_SMALL_PHASE_CONVENTION))
    assert spectrum.attrs["data_column"] == S.VISIBILITY_CORRECTED
    spectrum = spectrum.compute()
    ratios = floor_ratios(spectrum, truth)
    blanked = spectrum[D.CHANNEL_FLAG].values
    print("vla_small, radiocal flagging + calibration: rms error / floor", ratios,
          f"; channels blanked {np.flatnonzero(blanked).tolist()} of {blanked.size}")
    assert ratios["I"] < 1.10 and ratios["V"] < 1.10
    # the criterion must not be met by blanking the spectrum: only the band edges may go
    assert blanked.sum() <= blanked.size // 8
