"""Applying tables: interpolation, gainfield, spwmap, calwt, flags, laziness."""

import numpy as np
import pytest

from .conftest import make_partition, random_gains
from radiocal.calibration.config import SolveOptions
from radiocal.calibration.dataset import solve
from radiocal.calibration.jones import ApplyTable, apply, chain_jones
from radiocal.errors import ConfigError, InputError
from radiocal.store import caltables as C
from radiocal.store import schema as S


def _table(values, times, fields, *, flag=None, names=("A", "B"), centers=((0, 0.5), (1.0, 0.5)),
           spw=0, freq=(1.3e9,), cal_type="G", scans=None):
    """A hand-made table: values (time, antenna, frequency, hand)."""
    values = np.asarray(values, dtype=np.complex128)
    nt, nant, nf, nh = values.shape
    flag = np.zeros(values.shape, bool) if flag is None else flag
    ant_names = np.array([f"ea{i:02d}" for i in range(1, nant + 1)])
    antennas = {S.ANTENNA_NAME: ((S.ANTENNA,), ant_names)}
    attrs = {S.ATTR_SPW_ID: spw, "combined_spws": [spw], C.ATTR_FIELD_IDS: [0, 1],
             C.ATTR_FIELD_NAMES: list(names), C.ATTR_FIELD_CENTERS: [list(c) for c in centers]}
    return [C.make_table_dataset(cal_type, values, flag, np.ones(values.shape),
                                 np.zeros(values.shape), time=times, interval=np.zeros(nt),
                                 field_id=fields,
                                 scan_number=np.ones(nt) if scans is None else scans, frequency=freq,
                                 channel_width=np.ones(nf), hands=("R", "L")[:nh],
                                 antennas=antennas, attrs=attrs)]


def test_solve_then_apply_recovers_the_model(rng):
    g = random_gains(rng, 5, 6, 8, 2, constant_time=False)
    ds = make_partition(g, flux=3.0, noise=0.0)
    table = solve([ds], "G", SolveOptions(solint="int", refant="ea01"), model=3.0)
    out = apply([ds], [ApplyTable(table, interp="nearest")])[0]
    corrected = out[S.VISIBILITY_CORRECTED].values
    np.testing.assert_allclose(corrected[..., [0, 3]], 3.0, atol=1e-4)
    assert not out[S.FLAG].values.any()


def test_linear_time_interpolation_between_solutions(rng):
    # phase goes 0 -> 90 degrees between solutions at t=0 and t=40 on antenna 1
    vals = np.ones((2, 3, 1, 2), complex)
    vals[1, 1] = 1j
    table = _table(vals, times=[5e9, 5e9 + 40], fields=[0, 0])
    ds = make_partition(np.ones((5, 3, 2, 2)), t0=5e9, dt=10.0)
    jones, _ = chain_jones(ds, [ApplyTable(table)])
    phase = np.degrees(np.angle(jones.compute()[:, 1, 0, 0]))
    np.testing.assert_allclose(phase, [0, 22.5, 45, 67.5, 90], atol=1e-9)
    jones, _ = chain_jones(ds, [ApplyTable(table, interp="nearest")])
    np.testing.assert_allclose(np.degrees(np.angle(jones.compute()[:, 1, 0, 0])),
                               [0, 0, 0, 90, 90], atol=1e-9)


def test_flagged_solutions_skip_or_propagate():
    vals = np.ones((3, 2, 1, 2), complex) * np.array([1, 2, 3])[:, None, None, None]
    flag = np.zeros(vals.shape, bool)
    flag[1, 0] = True
    table = _table(vals, times=[0.0, 10.0, 20.0], fields=[0, 0, 0], flag=flag)
    ds = make_partition(np.ones((3, 2, 1, 2)), t0=0.0, dt=10.0)
    skip, skip_flag = chain_jones(ds, [ApplyTable(table)])
    np.testing.assert_allclose(np.abs(skip.compute()[:, 0, 0, 0]), [1, 2, 3])
    assert not skip_flag.compute().any()
    prop, prop_flag = chain_jones(ds, [ApplyTable(table, propagate_flags=True)])
    assert prop_flag.compute()[1, 0].all() and not prop_flag.compute()[[0, 2]].any()


def test_gainfield_named_and_nearest():
    vals = np.ones((2, 2, 1, 2), complex)
    vals[1] = 2.0
    table = _table(vals, times=[0.0, 10.0], fields=[0, 1])
    ds = make_partition(np.ones((2, 2, 1, 2)), t0=0.0, dt=10.0, phase_center=(0.9, 0.5))
    by_name, _ = chain_jones(ds, [ApplyTable(table, gainfield="A")])
    assert np.allclose(by_name.compute(), 1.0)
    nearest, _ = chain_jones(ds, [ApplyTable(table, gainfield="nearest")])
    assert np.allclose(nearest.compute(), 2.0)
    with pytest.raises(InputError):
        chain_jones(ds, [ApplyTable(table, gainfield="C")])


def test_spwmap_and_bandpass_frequency_interpolation():
    freqs = 1.3e9 + 4e6 * np.arange(3)
    vals = np.ones((1, 2, 3, 2), complex) * np.array([1.0, 2.0, 4.0])[None, None, :, None]
    table = _table(vals, times=[0.0], fields=[0], freq=freqs, spw=0, cal_type="B")
    ds = make_partition(np.ones((1, 2, 5, 2)), t0=0.0, spw=3, freq0=1.3e9, dfreq=2e6)
    with pytest.raises(InputError):
        chain_jones(ds, [ApplyTable(table)])
    jones, _ = chain_jones(ds, [ApplyTable(table, spwmap=(0, 0, 0, 0))])
    np.testing.assert_allclose(np.abs(jones.compute()[0, 0, :, 0]), [1, 1.5, 2, 3, 4])
    near, _ = chain_jones(ds, [ApplyTable(table, spwmap=(0, 0, 0, 0), freq_interp="nearest")])
    np.testing.assert_allclose(np.abs(near.compute()[0, 0, :, 0]), [1, 1, 2, 2, 4])


def test_calwt_and_solution_flags(rng):
    vals = np.full((1, 3, 1, 2), 2.0, complex)
    flag = np.zeros(vals.shape, bool)
    flag[0, 2, 0, 1] = True          # antenna 2, hand L
    table = _table(vals, times=[0.0], fields=[0], flag=flag)
    ds = make_partition(np.ones((2, 3, 1, 2)), t0=0.0, flux=4.0)
    out = apply([ds], [ApplyTable(table)], calwt=True)[0]
    vis = out[S.VISIBILITY_CORRECTED].values
    fl = out[S.FLAG].values
    w = out[S.WEIGHT].values
    np.testing.assert_allclose(vis[:, 0, :, 0], 1.0)        # 4 / (2 * 2)
    np.testing.assert_allclose(w[:, 0], 16.0)
    ant2 = ds[S.BASELINE_ANTENNA2].values == 2
    # baselines to antenna 2: correlations with its L hand flagged (RL, LL), the others not
    assert fl[:, ant2][..., [1, 3]].all() and not fl[:, ant2][..., [0, 2]].any()
    assert not fl[:, ~ant2].any()


def test_bad_interp_is_a_config_error():
    with pytest.raises(ConfigError):
        ApplyTable([], interp="cubic")
    with pytest.raises(ConfigError, match="freq_interp"):
        ApplyTable([], freq_interp="hermite")


def test_hermite_follows_a_drifting_gain_between_calibrator_scans():
    """Per-integration solutions of three calibrator scans; the target between them is
    calibrated far better through the scans' rates (hermite) than along the chord (linear)."""
    t0, dt = 5e9, 10.0
    cal = np.concatenate([k * 30 + np.arange(6) for k in range(3)])      # integration indices
    target = np.concatenate([k * 30 + 6 + np.arange(24) for k in range(2)])

    def jones(i):
        t = i * dt
        # antenna 1 drifts along a 20-minute sinusoid in phase and amplitude; antenna 0 is fixed
        g = np.ones((i.size, 3, 1, 2), complex)
        g[:, 1] = (np.exp(0.1 * np.sin(2 * np.pi * t / 1200.0)
                          + 1j * 0.8 * np.sin(2 * np.pi * t / 1200.0 + 0.4)))[:, None, None]
        return g

    table = _table(jones(cal), times=t0 + cal * dt, fields=np.zeros(cal.size, int),
                   scans=np.repeat([1, 3, 5], 6))
    ds = make_partition(np.ones((target[-1] + 1, 3, 2, 2)), t0=t0, dt=dt).isel(
        {S.TIME: target})
    want = jones(target)[:, 1, 0, 0]
    errors = {}
    for interp in ("linear", "hermite"):
        got = chain_jones(ds, [ApplyTable(table, interp=interp)])[0].compute()[:, 1, 0, 0]
        np.testing.assert_allclose(got, chain_jones(ds, [ApplyTable(table, interp=interp)])[0]
                                   .compute()[:, 1, 1, 0])          # every channel alike
        errors[interp] = np.abs(got / want - 1).max()
    assert errors["hermite"] < 0.15 * errors["linear"], errors
    assert errors["hermite"] < 0.03, errors


def test_apply_graph_does_not_compute(rng, no_compute):
    vals = np.ones((1, 4, 1, 2), complex)
    table = _table(vals, times=[0.0], fields=[0])
    ds = make_partition(np.ones((6, 4, 3, 2)), time_chunk=2)
    out = apply([ds], [ApplyTable(table)])[0]
    assert out[S.VISIBILITY_CORRECTED].data.chunks[0] == (2, 2, 2)


def test_hermite_nodes_split_at_scans_and_at_gaps():
    from radiocal.calibration.jones import _solution_segments

    times = np.array([0.0, 10, 20, 300, 310, 320, 600.0])
    np.testing.assert_array_equal(
        _solution_segments(times, np.array([1, 1, 1, 3, 3, 3, 5]), np.zeros(7)),
        [0, 0, 0, 1, 1, 1, 2])
    # one scan number for everything (a combined or foreign table): the gaps tell the visits apart
    np.testing.assert_array_equal(
        _solution_segments(times, np.ones(7), np.full(7, 10.0)), [0, 0, 0, 1, 1, 1, 2])
    # 60 s solutions back to back stay one run
    np.testing.assert_array_equal(
        _solution_segments(np.arange(4) * 60.0, np.ones(4), np.full(4, 60.0)), [0, 0, 0, 0])


@pytest.mark.parametrize("every", [1, 2])
def test_band_in_descending_frequency(rng, every):
    """A band written high to low (ATCA's CABB, lower sidebands) calibrates exactly as the same
    band written low to high: channel for channel, and interpolated from every other channel."""
    nf = 12
    g = random_gains(rng, 2, 5, 1, 2)
    g = g * (np.linspace(0.6, 1.4, nf) * np.exp(1j * np.linspace(0, 2.5, nf)))[None, None, :, None]
    results = []
    solved = np.arange(0, nf, every)          # the same physical channels in both orders
    for gains, freq0, dfreq, channels in ((g, 1.456e9, 4e6, solved),
                                          (g[:, :, ::-1], 1.5e9, -4e6, nf - 1 - solved[::-1])):
        ds = make_partition(gains, flux=2.0, noise=0.0, freq0=freq0, dfreq=dfreq)
        table = solve([ds.isel({S.FREQUENCY: channels})], "B",
                      SolveOptions(solint="inf", refant="ea01"), model=2.0)
        out = apply([ds], [ApplyTable(table, freq_interp="linear")])[0]
        results.append(out[S.VISIBILITY_CORRECTED].values[..., [0, 3]])
    up, down = results
    np.testing.assert_allclose(down[:, :, ::-1], up, rtol=1e-5, atol=1e-6)
    if every == 1:
        np.testing.assert_allclose(np.abs(down), 2.0, rtol=1e-4)
