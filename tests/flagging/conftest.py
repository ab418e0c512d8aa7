"""Small canonical partitions for the flagging tests, made by the project's simulator."""

from __future__ import annotations

import numpy as np
import pytest


def raising_scheduler(*args, **kwargs):
    raise AssertionError("a graph builder computed")


def score(datasets, flagged, truth, dead=None):
    """(fraction of RFI flagged, fraction of clean samples flagged) over present cells."""
    from radiocal.store import schema as S

    hit = n_rfi = false = n_clean = 0
    for ds, flags in zip(datasets, flagged):
        rfi = truth[ds.attrs[S.ATTR_PARTITION]]
        keep = np.broadcast_to(ds[S.ROW_PRESENT].values[:, :, None, None], rfi.shape).copy()
        if dead is not None:
            a1 = ds[S.BASELINE_ANTENNA1].values
            a2 = ds[S.BASELINE_ANTENNA2].values
            keep &= ((a1 != dead) & (a2 != dead))[None, :, None, None]
        hit += (flags & rfi & keep).sum()
        n_rfi += (rfi & keep).sum()
        false += (flags & ~rfi & keep).sum()
        n_clean += (~rfi & keep).sum()
    return hit / n_rfi, false / n_clean


@pytest.fixture(scope="session")
def small_sim():
    """A tiny VLA-like run: 5 antennas, 16 channels, 4 scans, RFI and a dead antenna."""
    from radiocal.simulate import SimConfig, simulate

    return simulate(SimConfig(n_antennas=5, dead_antenna=4, rfi_channels=1, rfi_bursts=1,
                              rfi_spike_fraction=0.005, seed=21))
