"""Measurement Sets of the layouts telescopes write, built from the simulator (and edited with
python-casacore where the simulator cannot say it), each with the truth of its target.

Every variant observes the default three fields (flux/bandpass calibrator, phase calibrator,
STAR with a background sky model) so that it can be flagged, calibrated and turned into a
dynamic spectrum; ``Variant.star`` gives the star's true Stokes I and V at any (time, frequency)
of the MS.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from radiocal.store import schema as S
from radiocal.ms.write import write_ms
from radiocal.model.flux_standards import FluxModel
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
    """Autocorrelation rows in the second half of the observation only."""
    full = _write(root, "autocorrelations_full", simulate(_config(autocorrelations=True)))

    def early_auto(a1, a2, time, ddid, times):
        return (a1 == a2) & (time < times[times.size // 2])
    return _without_rows(full, root / "autocorrelations.ms", early_auto)


def _edit(ms: Path, fn) -> None:
    import casacore.tables as ct

    with ct.table(str(ms), readonly=False, ack=False) as t:
        fn(t)


def _without_rows(full: Variant, ms: Path, gone) -> Variant:
    """A copy of ``full`` without the rows ``gone(a1, a2, time, ddid, unique times)`` picks."""
    import casacore.tables as ct

    v = Variant(ms, full.skymodel, full.truth, {}, full.n_cross)
    with ct.table(str(full.ms), ack=False) as t:
        a1, a2 = t.getcol("ANTENNA1"), t.getcol("ANTENNA2")
        time, ddid = t.getcol("TIME"), t.getcol("DATA_DESC_ID")
        drop = gone(a1, a2, time, ddid, np.unique(time))
        # The simulator's storage managers cannot remove rows: copy the others
        with t.selectrows(np.flatnonzero(~drop)) as kept:
            kept.copy(str(v.ms), deep=True).close()
    return v


def missing_rows(root: Path) -> Variant:
    """Rows of one baseline missing in half the integrations, and one integration of spw 1 gone."""
    full = _write(root, "missing_rows_full", simulate(_config()))

    def gone(a1, a2, time, ddid, times):
        return ((a1 == 0) & (a2 == 1) & np.isin(time, times[::2])) | ((ddid == 1) & (time == times[-5]))
    return _without_rows(full, root / "missing_rows.ms", gone)


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
    """An ANTENNA table padded with unnamed rows between and after the real ones (pyuvdata),
    and two named antennas that are in no row (out of the array that day)."""
    import casacore.tables as ct

    v = _write(root, "blank_antennas", simulate(_config()))
    n = 6
    new_index = np.array([0, 2, 3, 5, 6, 7])  # real antenna k becomes row new_index[k]
    n_rows = 11
    with ct.table(str(v.ms / "ANTENNA"), readonly=False, ack=False) as ant:
        cols = {c: ant.getcol(c) for c in ("NAME", "STATION", "POSITION", "DISH_DIAMETER", "MOUNT",
                                           "TYPE", "OFFSET", "FLAG_ROW")}
        ant.addrows(n_rows - n)
        for c, values in cols.items():
            if isinstance(values, list):
                padded = [""] * n_rows
                for k in range(n):
                    padded[new_index[k]] = values[k]
                padded[-2:] = values[:2] if c not in ("NAME", "STATION") else ["SPARE1", "SPARE2"]
            else:
                padded = np.zeros((n_rows,) + values.shape[1:], values.dtype)
                padded[new_index] = values
                padded[-2:] = values[:2] + (5000.0 if c == "POSITION" else 0)   # 5 km away
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


def scans_channels_correlations(root: Path) -> Variant:
    """Two spws at the same times with their own scan numbers, channel counts (16, 8) and
    correlations (RR RL LR LL; RR LL): all three differences at once."""
    sim = simulate(_config(spws=((1.30e9, 4.0e6, 16), (1.40e9, 8.0e6, 8))))
    datasets = [ds if ds.attrs[S.ATTR_SPW_ID] == 0 else
                _renumber(ds.isel({S.POLARIZATION: [0, 3]}), ds.attrs[S.ATTR_SCAN] + 10)
                for ds in sim.datasets]
    return _write(root, "scans_channels_correlations", sim, datasets)


def flagged_rows(root: Path) -> Variant:
    """FLAG_ROW set on every row of the first phase-calibrator scan, and on the star's first
    integration in spw 1."""
    v = _write(root, "flagged_rows", simulate(_config()))

    def flag(t):
        scan, ddid, time = t.getcol("SCAN_NUMBER"), t.getcol("DATA_DESC_ID"), t.getcol("TIME")
        star = scan == 3
        t.putcol("FLAG_ROW", (scan == 2) | (star & (ddid == 1) & (time == time[star].min())))
    _edit(v.ms, flag)
    return v


def empty_field_and_spw(root: Path) -> Variant:
    """A FIELD row and a SPECTRAL_WINDOW (with its DATA_DESCRIPTION) that no row uses."""
    import casacore.tables as ct

    v = _write(root, "empty_field_and_spw", simulate(_config()))
    with ct.table(str(v.ms / "FIELD"), readonly=False, ack=False) as field:
        field.copyrows(field, startrowin=2, startrowout=-1, nrow=1)
        field.putcell("NAME", field.nrows() - 1, "UNOBSERVED")
    with ct.table(str(v.ms / "SPECTRAL_WINDOW"), readonly=False, ack=False) as spw:
        spw.copyrows(spw, startrowin=0, startrowout=-1, nrow=1)
        new = spw.nrows() - 1
        spw.putcell("NAME", new, "UNUSED")
        for column in ("CHAN_FREQ", "REF_FREQUENCY"):
            spw.putcell(column, new, spw.getcell(column, new) + 5e8)
    with ct.table(str(v.ms / "DATA_DESCRIPTION"), readonly=False, ack=False) as dd:
        dd.copyrows(dd, startrowin=0, startrowout=-1, nrow=1)
        dd.putcell("SPECTRAL_WINDOW_ID", dd.nrows() - 1, new)
    return v


def _add_spectrum_column(t, name, values):
    import casacore.tables as ct

    t.addcols(ct.maketabdesc(ct.makearrcoldesc(name, 0.0, 2, valuetype="float")))
    t.putcol(name, values.astype(np.float32))


def channel_weights(root: Path) -> Variant:
    """WEIGHT_SPECTRUM rising from 0.5 to 1.5 times WEIGHT across each band."""
    v = _write(root, "channel_weights", simulate(_config()))

    def add(t):
        weight = t.getcol("WEIGHT")
        ramp = np.linspace(0.5, 1.5, t.getcell("DATA", 0).shape[0])
        _add_spectrum_column(t, "WEIGHT_SPECTRUM", weight[:, None, :] * ramp[None, :, None])
    _edit(v.ms, add)
    return v


def sigma_only(root: Path) -> Variant:
    """No WEIGHT column: SIGMA and SIGMA_SPECTRUM only."""
    v = _write(root, "sigma_only", simulate(_config()))

    def drop(t):
        sigma = t.getcol("SIGMA")
        nchan = t.getcell("DATA", 0).shape[0]
        _add_spectrum_column(t, "SIGMA_SPECTRUM", np.repeat(sigma[:, None, :], nchan, axis=1))
        t.removecols(["WEIGHT"])
    _edit(v.ms, drop)
    return v


def corrected_only(root: Path) -> Variant:
    """No DATA column: the visibilities are in CORRECTED_DATA (a copy whose raw data went)."""
    v = _write(root, "corrected_only", simulate(_config()))
    _edit(v.ms, lambda t: t.renamecol("DATA", "CORRECTED_DATA"))
    return v


def baseline_ordered(root: Path) -> Variant:
    """Rows in baseline order (ANTENNA1, ANTENNA2, TIME), and no POINTING table."""
    import casacore.tables as ct

    full = _write(root, "baseline_ordered_full", simulate(_config()))
    v = Variant(root / "baseline_ordered.ms", full.skymodel, full.truth, {}, full.n_cross)
    with ct.table(str(full.ms), ack=False) as t:
        order = np.lexsort((t.getcol("TIME"), t.getcol("ANTENNA2"), t.getcol("ANTENNA1")))
        with t.selectrows(order) as sorted_rows:
            sorted_rows.copy(str(v.ms), deep=True).close()
    with ct.table(str(v.ms), readonly=False, ack=False) as t:
        t.removekeyword("POINTING")
    shutil.rmtree(v.ms / "POINTING")
    return v


def concat_observations(root: Path, name: str, first_config: SimConfig,
                        second_config: SimConfig, share_fields: bool) -> Variant:
    """Two simulated observations joined as CASA's concat joins them: the second's rows
    appended with OBSERVATION_ID 1 and scan numbers after the first's, and an OBSERVATION row
    of its own. ``share_fields``: the fields' positions agree, so concat keeps one FIELD row
    each; else the second's fields become FIELD rows of their own."""
    import casacore.tables as ct

    first = _write(root, f"{name}_first", simulate(first_config))
    later = simulate(second_config)
    second = _write(root, f"{name}_second", later)
    v = Variant(root / f"{name}.ms", first.skymodel, SimpleNamespace(
        times=np.concatenate([first.truth.times, later.truth.times]), freqs=first.truth.freqs,
        star_I=np.concatenate([first.truth.star_I, later.truth.star_I]),
        star_V=np.concatenate([first.truth.star_V, later.truth.star_V]),
        observations=(first.truth, later.truth)), {}, first.n_cross)
    shutil.copytree(first.ms, v.ms)
    n_fields = len(first_config.fields)
    with ct.table(str(v.ms), readonly=False, ack=False) as t, \
            ct.table(str(second.ms), ack=False) as appended:
        n0, n1, last_scan = t.nrows(), appended.nrows(), int(t.getcol("SCAN_NUMBER").max())
        appended.copyrows(t)
        t.putcol("OBSERVATION_ID", np.ones(n1, np.int32), startrow=n0, nrow=n1)
        t.putcol("SCAN_NUMBER", appended.getcol("SCAN_NUMBER") + last_scan, startrow=n0, nrow=n1)
        if not share_fields:
            t.putcol("FIELD_ID", appended.getcol("FIELD_ID") + n_fields, startrow=n0, nrow=n1)
    if not share_fields:
        with ct.table(str(v.ms / "FIELD"), readonly=False, ack=False) as field:
            field.copyrows(field, startrowin=0, startrowout=-1, nrow=n_fields)
            for column in ("PHASE_DIR", "DELAY_DIR", "REFERENCE_DIR"):
                direction = field.getcol(column)
                direction[n_fields:, 0, 1] += np.radians(0.1 / 3600)
                field.putcol(column, direction)
    with ct.table(str(v.ms / "OBSERVATION"), readonly=False, ack=False) as obs, \
            ct.table(str(second.ms / "OBSERVATION"), ack=False) as appended:
        appended.copyrows(obs)
    return v


def _a_day_later(config: SimConfig, seed: int) -> SimConfig:
    return replace(config, start_time=config.start_time + 86164.1, seed=seed)


# Gains constant in time within each observation (a random phase per antenna and hand, a new
# draw for the second), so that B (inf, combine scan) holds all of G B of its observation
STEADY = dict(n_antennas=6, spws=((1.30e9, 4.0e6, 16),), schedule=((0, 4), (1, 2), (0, 4)),
              n_correlations=2, gain_amp_rms=0.0, gain_phase_rms=0.0, noise=0.02, seed=3)
STEADY_FLUXCAL = FluxModel(flux=15.0, alpha=-0.5, ref_frequency=1.4e9)


def steady_concat(root: Path, name: str) -> Variant:
    """Two observations of :data:`STEADY` gains a sidereal day apart, their fields merged."""
    first = SimConfig(**STEADY)
    return concat_observations(root, name, first, _a_day_later(first, 4), share_fields=True)


def fluxcal_parts(v: Variant) -> list:
    """The flux calibrator's (field 0) partitions of ``v``'s MS."""
    from radiocal.ms.read import read_ms

    return [ds for ds in read_ms(v.ms) if ds.attrs[S.ATTR_FIELD_ID] == 0]


def concatenated(root: Path) -> Variant:
    """What CASA's concat writes for two observations of the same fields a sidereal day apart
    whose positions differ by 0.1 arcsec (more than concat's tolerance for merging them)."""
    return concat_observations(root, "concatenated", _config(), _a_day_later(_config(), 8),
                               share_fields=False)


def concatenated_shared_fields(root: Path) -> Variant:
    """The same with the fields merged (one FIELD row each, the usual concat): only
    OBSERVATION_ID tells the two days' calibrator scans apart."""
    return concat_observations(root, "concatenated_shared_fields", _config(),
                               _a_day_later(_config(), 8), share_fields=True)


VARIANTS = {f.__name__: f for f in (separate_scans, mixed_setups, overlapping_spws, missing_rows,
                                    autocorrelations, observations_and_arrays, blank_antennas,
                                    irregular_times, scans_channels_correlations, flagged_rows,
                                    empty_field_and_spw, channel_weights, sigma_only,
                                    corrected_only, baseline_ordered, concatenated,
                                    concatenated_shared_fields)}
