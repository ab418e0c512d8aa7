"""Fixtures for dynamic-spectrum tests: a simulated star calibrated with its true gains."""

import numpy as np
import pytest

from radiocal.store import schema as S

simulator = pytest.importorskip("radiocal.simulate", reason="needs the project's simulator")


def calibrate_with_truth(ds, truth):
    """CORRECTED = DATA / (J_p J_q^H), weights scaled by |J_p J_q|^2; RFI and the dead antenna flagged.

    The true Jones include the cross-hand phase, so the result is marked cross-hand calibrated.
    """
    jones = truth.jones(ds)
    a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
    hands = "RL" if S.feed_basis(ds[S.POLARIZATION].values) == "circular" else "XY"
    gains = np.empty(ds[S.VISIBILITY].shape, dtype=complex)
    for k, pol in enumerate(ds[S.POLARIZATION].values):
        ha, hb = hands.index(pol[0]), hands.index(pol[1])
        gains[..., k] = jones[:, a1, ha, :] * np.conj(jones[:, a2, hb, :])
    flag = ds[S.FLAG].values | truth.rfi[ds.attrs[S.ATTR_PARTITION]]
    if truth.dead is not None:
        flag[:, (a1 == truth.dead) | (a2 == truth.dead)] = True
    dims = ds[S.VISIBILITY].dims
    return ds.assign({
        S.VISIBILITY_CORRECTED: (dims, (ds[S.VISIBILITY].values / gains).astype(np.complex64)),
        S.FLAG: (dims, flag),
        S.WEIGHT: (dims, (ds[S.WEIGHT].values * np.abs(gains) ** 2).astype(np.float32)),
    }).assign_attrs({S.ATTR_POLCAL: {"cross_hand_phase": True, "leakage": True,
                                     "parallactic_angle": True}})


@pytest.fixture(scope="session")
def star(tmp_path_factory):
    """Two target scans (with a phase-calibrator scan between) of a flaring star plus background.

    Gains near unit amplitude, so that noise after calibration is the simulated sigma.
    """
    config = simulator.SimConfig.vla_small_like(
        n_antennas=8, spws=((1.30e9, 2.0e6, 16),), schedule=((1, 3), (2, 14), (1, 3), (2, 14)),
        rfi_channels=1, rfi_bursts=1, rfi_spike_fraction=0.002, dead_antenna=5,
        gain_amp_rms=0.03, bandpass_rolloff=0.0, bandpass_ripple=0.03, seed=3,
    )
    sim = simulator.simulate(config)
    path = tmp_path_factory.mktemp("sky") / "skymodel.txt"
    path.write_text(sim.truth.sky.skymodel_text(2))
    calibrated = [calibrate_with_truth(ds, sim.truth) for ds in sim.datasets]
    return {"sim": sim, "truth": sim.truth, "skymodel": str(path), "calibrated": calibrated}


@pytest.fixture
def calibrate():
    """The true-gain calibration used by ``star``, for tests that simulate their own data."""
    return calibrate_with_truth
