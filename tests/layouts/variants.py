"""Measurement Sets of the layouts telescopes write, built from the simulator (and edited with
python-casacore where the simulator cannot say it), each with the truth of its target.

Every variant observes the default three fields (flux/bandpass calibrator, phase calibrator,
STAR with a background sky model) so that it can be flagged, calibrated and turned into a
dynamic spectrum; ``Variant.star`` gives the star's true Stokes I and V at any (time, frequency)
of the MS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from radiocal.store import schema as S
from radiocal.ms.write import write_ms
from radiocal.simulate import SimConfig, simulate

FLUXCAL, PHASECAL, TARGET = "J1331+3030", "J1407+2827", "STAR"
TWO_SPWS = ((1.30e9, 4.0e6, 16), (1.40e9, 4.0e6, 16))


@dataclass
class Variant:
    ms: Path
    skymodel: Path
    truth: object
    # MS TIME -> the simulated time it stands for (irregular timestamps move TIME)
    time_map: dict
    n_cross: int  # cross-correlation baselines with data (dead antenna excluded)

    def star(self, times, freqs):
        """True (I, V) of the star: (time, frequency) arrays."""
        t = np.array([self.time_map.get(float(x), float(x)) for x in times])
        ti = np.searchsorted(self.truth.times, t)
        flat_f = self.truth.freqs.ravel()
        flat_i = self.truth.star_I.reshape(self.truth.star_I.shape[0], -1)
        flat_v = self.truth.star_V.reshape(self.truth.star_V.shape[0], -1)
        fi = np.array([int(np.nanargmin(np.abs(flat_f - f))) for f in freqs])
        return flat_i[np.ix_(ti, fi)], flat_v[np.ix_(ti, fi)]


def _config(**changes) -> SimConfig:
    base = dict(n_antennas=6, spws=TWO_SPWS, schedule=((0, 4), (1, 3), (2, 8), (1, 3)),
                gain_amp_rms=0.05, noise=0.05, seed=7)
    base.update(changes)
    return SimConfig(**base)


def _write(root: Path, name: str, sim, datasets=None) -> Variant:
    ms = root / f"{name}.ms"
    write_ms(sim.datasets if datasets is None else datasets, str(ms))
    sky = root / f"{name}_sky.txt"
    sky.write_text(sim.truth.sky.skymodel_text(sim.truth.star_field))
    n_ant = sim.config.n_antennas - (sim.config.dead_antenna is not None)
    return Variant(ms, sky, sim.truth, {}, n_ant * (n_ant - 1) // 2)


def _renumber(ds, scan):
    ds.attrs[S.ATTR_SCAN] = scan
    ds.attrs[S.ATTR_PARTITION] = S.partition_name(ds.attrs[S.ATTR_FIELD_ID], ds.attrs[S.ATTR_SPW_ID], scan)
    return ds


def separate_scans(root: Path) -> Variant:
    """Two spws at the same times, each with its own scan numbers (CASA's simulator, concat)."""
    sim = simulate(_config())
    for ds in sim.datasets:
        if ds.attrs[S.ATTR_SPW_ID] == 1:
            _renumber(ds, ds.attrs[S.ATTR_SCAN] + 10)
    return _write(root, "separate_scans", sim)


def mixed_setups(root: Path) -> Variant:
    """spw 0: 16 channels, RR RL LR LL; spw 1: 8 channels, RR LL only."""
    sim = simulate(_config(spws=((1.30e9, 4.0e6, 16), (1.40e9, 8.0e6, 8))))
    datasets = [ds if ds.attrs[S.ATTR_SPW_ID] == 0 else ds.isel({S.POLARIZATION: [0, 3]})
                for ds in sim.datasets]
    return _write(root, "mixed_setups", sim, datasets)


def overlapping_spws(root: Path) -> Variant:
    """spw 1 repeats the upper half of spw 0's channels (same frequencies) and goes beyond."""
    sim = simulate(_config(spws=((1.30e9, 4.0e6, 16), (1.332e9, 4.0e6, 16))))
    return _write(root, "overlapping_spws", sim)


def autocorrelations(root: Path) -> Variant:
    return _write(root, "autocorrelations", simulate(_config(autocorrelations=True)))


def _edit(ms: Path, fn) -> None:
    import casacore.tables as ct

    with ct.table(str(ms), readonly=False, ack=False) as t:
        fn(t)


def missing_rows(root: Path) -> Variant:
    """Rows of one baseline missing in half the integrations, and one integration of spw 1 gone."""
    import casacore.tables as ct

    full = _write(root, "missing_rows_full", simulate(_config()))
    v = Variant(root / "missing_rows.ms", full.skymodel, full.truth, {}, full.n_cross)
    with ct.table(str(full.ms), ack=False) as t:
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
        time, ddid = t.getcol("TIME"), t.getcol("DATA_DESC_ID")
        times = np.unique(time)
        gone = ((a1 == 0) & (a2 == 1) & np.isin(time, times[::2])) | ((ddid == 1) & (time == times[-5]))
        # The simulator's storage managers cannot remove rows: copy the others
        with t.selectrows(np.flatnonzero(~gone)) as kept:
            kept.copy(str(v.ms), deep=True).close()
    return v


def observations_and_arrays(root: Path) -> Variant:
    """Two observations (and arrays) concatenated, each numbering its scans from 1."""
    sim = simulate(_config(schedule=((0, 4), (1, 3), (2, 6), (1, 3), (2, 6), (1, 3))))
    for ds in sim.datasets:
        if ds.attrs[S.ATTR_SCAN] > 3:
            _renumber(ds, ds.attrs[S.ATTR_SCAN] - 3)
    v = _write(root, "observations_and_arrays", sim)
    split = float(sim.truth.times[4 + 3 + 6 + 1])

    def second(t):
        late = t.getcol("TIME") > split
        for col in ("OBSERVATION_ID", "ARRAY_ID"):
            values = t.getcol(col)
            values[late] = 1
            t.putcol(col, values)
    _edit(v.ms, second)
    import casacore.tables as ct

    with ct.table(str(v.ms / "OBSERVATION"), readonly=False, ack=False) as obs:
        obs.copyrows(obs, startrowin=0, startrowout=-1, nrow=1)
    return v


def blank_antennas(root: Path) -> Variant:
    """An ANTENNA table padded with unnamed rows between and after the real ones (pyuvdata)."""
    import casacore.tables as ct

    v = _write(root, "blank_antennas", simulate(_config()))
    n = 6
    new_index = np.array([0, 2, 3, 5, 6, 7])  # real antenna k becomes row new_index[k]
    n_rows = 9
    with ct.table(str(v.ms / "ANTENNA"), readonly=False, ack=False) as ant:
        cols = {c: ant.getcol(c) for c in ("NAME", "STATION", "POSITION", "DISH_DIAMETER", "MOUNT",
                                           "TYPE", "OFFSET", "FLAG_ROW")}
        ant.addrows(n_rows - n)
        for c, values in cols.items():
            if isinstance(values, list):
                padded = [""] * n_rows
                for k in range(n):
                    padded[new_index[k]] = values[k]
            else:
                padded = np.zeros((n_rows,) + values.shape[1:], values.dtype)
                padded[new_index] = values
            ant.putcol(c, padded)

    def remap(t):
        for col in ("ANTENNA1", "ANTENNA2"):
            t.putcol(col, new_index[t.getcol(col)].astype(np.int32))
    _edit(v.ms, remap)
    return v


def irregular_times(root: Path) -> Variant:
    """Integrations a few seconds off their grid and an INTERVAL ten times too short."""
    sim = simulate(_config())
    v = _write(root, "irregular_times", sim)
    rng = np.random.default_rng(1)
    jitter = {float(t): float(t + rng.uniform(-2.0, 2.0)) for t in sim.truth.times}

    def move(t):
        time = t.getcol("TIME")
        moved = np.array([jitter[float(x)] for x in time])
        t.putcol("TIME", moved)
        t.putcol("TIME_CENTROID", moved)
        t.putcol("INTERVAL", np.full(time.size, 1.0))
        t.putcol("EXPOSURE", np.full(time.size, 1.0))
    _edit(v.ms, move)
    v.time_map = {new: old for old, new in jitter.items()}
    return v


VARIANTS = {f.__name__: f for f in (separate_scans, mixed_setups, overlapping_spws, missing_rows,
                                    autocorrelations, observations_and_arrays, blank_antennas,
                                    irregular_times)}
