"""Tiny canonical partitions with exactly known corruptions, built with numpy + xarray."""

from __future__ import annotations

import dask.array as da
import numpy as np
import pytest
import xarray as xr

from radiocal.store import schema as S

ANT_NAMES = tuple(f"ea{i:02d}" for i in range(1, 13))


def make_partition(jones, *, flux=1.0, noise=0.0, seed=0, pols=("RR", "RL", "LR", "LL"),
                   field_id=0, field_name="CAL", scan=1, spw=0, t0=5.0e9, dt=10.0,
                   freq0=1.3e9, dfreq=2e6, time_chunk=None, phase_center=(0.0, 0.5),
                   weight=1.0, freq_chunk=None):
    """A partition whose parallel hands are ``J_p(t, nu) flux conj(J_q(t, nu)) + noise``.

    ``jones``: complex (time, antenna, frequency, hand), hands in the order the pols introduce
    them (R, L). Cross hands carry only noise (an unpolarised source).
    """
    nt, nant, nf, _ = jones.shape
    ant1, ant2 = np.triu_indices(nant, 1)
    hands = []
    for p in pols:
        for h in p:
            if h not in hands:
                hands.append(h)
    h1 = [hands.index(p[0]) for p in pols]
    h2 = [hands.index(p[1]) for p in pols]
    rng = np.random.default_rng(seed)
    vis = np.zeros((nt, ant1.size, nf, len(pols)), dtype=np.complex128)
    for k, p in enumerate(pols):
        if p[0] == p[1]:
            vis[..., k] = (jones[:, ant1][..., h1[k]] * flux
                           * np.conj(jones[:, ant2][..., h2[k]]))
    vis += noise / np.sqrt(2) * (rng.standard_normal(vis.shape)
                                 + 1j * rng.standard_normal(vis.shape))
    times = t0 + dt * np.arange(nt)
    freqs = freq0 + dfreq * np.arange(nf)
    chunks = (time_chunk or nt, -1, freq_chunk or nf, -1)
    dims = (S.TIME, S.BASELINE, S.FREQUENCY, S.POLARIZATION)
    coords = {
        S.TIME: times,
        S.INTEGRATION_TIME: (S.TIME, np.full(nt, dt)),
        S.BASELINE_ANTENNA1: (S.BASELINE, ant1.astype(np.int32)),
        S.BASELINE_ANTENNA2: (S.BASELINE, ant2.astype(np.int32)),
        S.FREQUENCY: freqs,
        S.CHANNEL_WIDTH: (S.FREQUENCY, np.full(nf, dfreq)),
        S.POLARIZATION: np.array(pols),
        S.ANTENNA_NAME: (S.ANTENNA, np.array(ANT_NAMES[:nant])),
        S.ANTENNA_STATION: (S.ANTENNA, np.array([f"P{i}" for i in range(nant)])),
        S.ANTENNA_POSITION: ((S.ANTENNA, S.CARTESIAN), rng.normal(size=(nant, 3)) * 100),
        S.ANTENNA_DIAMETER: (S.ANTENNA, np.full(nant, 25.0)),
        S.ANTENNA_MOUNT: (S.ANTENNA, np.array(["alt-az"] * nant)),
        S.CARTESIAN: np.array(S.CARTESIAN_LABELS),
    }
    data = {
        S.VISIBILITY: (dims, da.from_array(vis.astype(np.complex64), chunks=chunks)),
        S.FLAG: (dims, da.zeros(vis.shape, dtype=bool, chunks=chunks)),
        S.WEIGHT: (dims, da.full(vis.shape, weight, dtype=np.float32, chunks=chunks)),
        # every row present, as a canonical dataset (and a store) requires
        S.ROW_PRESENT: ((S.TIME, S.BASELINE), da.ones((nt, ant1.size), dtype=bool,
                                                     chunks=chunks[:2])),
    }
    attrs = {
        S.ATTR_FIELD_ID: field_id, S.ATTR_FIELD_NAME: field_name,
        S.ATTR_PHASE_CENTER: list(phase_center), S.ATTR_SPW_ID: spw, S.ATTR_SPW_NAME: f"spw{spw}",
        S.ATTR_REF_FREQUENCY: float(freqs[0]), S.ATTR_SCAN: scan,
        S.ATTR_PARTITION: S.partition_name(field_id, spw, scan), S.ATTR_TELESCOPE: "VLA",
    }
    return xr.Dataset(data, coords=coords, attrs=attrs)


def random_gains(rng, nt, nant, nf, nh, amp_scatter=0.2, constant_time=True):
    """Per-antenna, per-hand complex gains (time, antenna, frequency, hand), flat in frequency."""
    shape = (1 if constant_time else nt, nant, 1, nh)
    phase = rng.uniform(-np.pi, np.pi, shape)
    g = (1 + amp_scatter * rng.uniform(-1, 1, shape)) * np.exp(1j * phase)
    return np.broadcast_to(g, (nt, nant, nf, nh)).copy()


@pytest.fixture
def rng():
    return np.random.default_rng(1234)


@pytest.fixture
def no_compute():
    """A dask scheduler that fails the test if anything is computed."""
    import dask

    def refuse(*args, **kwargs):
        raise AssertionError("graph builder computed")

    with dask.config.set(scheduler=refuse):
        yield
