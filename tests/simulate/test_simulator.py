"""The simulator: canonical layout, determinism, physics against independent references."""

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from radiocal import astro
from radiocal.errors import ConfigError
from radiocal.ms.read import read_ms
from radiocal.store import schema as S
from radiocal.simulate import FieldSpec, PointSource, SimConfig, lwa_name, simulate
from radiocal.simulate import geometry
from radiocal.simulate.config import VLA_SITE

VLA_SMALL = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "vla_small"

DIMS4 = (S.TIME, S.BASELINE, S.FREQUENCY, S.POLARIZATION)


def _residual(sim, ds):
    """Data minus the truth's corrupted model: noise plus RFI."""
    model = sim.truth.model[ds.attrs[S.ATTR_PARTITION]]
    expected = sim.truth.corrupt(ds, model)
    expected[:, ~_live(sim, ds)] = 0.0          # a dead antenna's baselines carry no sky
    return ds[S.VISIBILITY].values.astype(np.complex128) - expected


def _live(sim, ds):
    dead = sim.truth.dead
    a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
    return np.ones(a1.size, bool) if dead is None else (a1 != dead) & (a2 != dead)


@pytest.fixture(scope="module")
def default_sim():
    return simulate(SimConfig())


def test_canonical_layout(default_sim):
    cfg = default_sim.config
    n_bl = cfg.n_antennas * (cfg.n_antennas - 1) // 2
    assert len(default_sim.datasets) == len(cfg.schedule) * len(cfg.spws)
    for scan, ds in enumerate(default_sim.datasets, start=1):
        fid, n_int = cfg.schedule[scan - 1]
        n_chan = cfg.spws[0][2]
        assert ds.sizes[S.TIME] == n_int and ds.sizes[S.BASELINE] == n_bl
        assert ds.sizes[S.FREQUENCY] == n_chan and ds.sizes[S.ANTENNA] == cfg.n_antennas
        for var, dtype in ((S.VISIBILITY, np.complex64), (S.FLAG, np.bool_),
                           (S.WEIGHT, np.float32)):
            assert ds[var].dims == DIMS4 and ds[var].dtype == dtype
        assert ds[S.UVW].dims == (S.TIME, S.BASELINE, S.UVW_LABEL) and ds[S.UVW].dtype == np.float64
        assert ds[S.ROW_PRESENT].dims == (S.TIME, S.BASELINE) and ds[S.ROW_PRESENT].values.all()
        assert not ds[S.FLAG].values.any()
        np.testing.assert_allclose(ds[S.WEIGHT].values, 1 / cfg.noise ** 2, rtol=1e-6)
        assert tuple(ds[S.POLARIZATION].values) == S.CIRCULAR
        assert tuple(ds[S.UVW_LABEL].values) == S.UVW_LABELS
        assert ds[S.ANTENNA_POSITION].dims == (S.ANTENNA, S.CARTESIAN)
        for coord in (S.ANTENNA_NAME, S.ANTENNA_STATION, S.ANTENNA_DIAMETER, S.ANTENNA_MOUNT):
            assert ds[coord].dims == (S.ANTENNA,)
        assert ds[S.CHANNEL_WIDTH].dims == (S.FREQUENCY,)
        np.testing.assert_array_equal(ds[S.INTEGRATION_TIME].values, cfg.integration_time)
        a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
        assert a1.dtype == np.int32 and np.all(a1 < a2)
        assert len(set(zip(a1, a2))) == n_bl
        np.testing.assert_allclose(np.diff(ds[S.TIME].values), cfg.integration_time)
        np.testing.assert_allclose(ds[S.FREQUENCY].values,
                                   cfg.spws[0][0] + cfg.spws[0][1] * np.arange(n_chan))
        spec = cfg.fields[fid]
        assert ds.attrs[S.ATTR_PARTITION] == S.partition_name(fid, 0, scan)
        assert ds.attrs[S.ATTR_FIELD_ID] == fid and ds.attrs[S.ATTR_FIELD_NAME] == spec.name
        assert ds.attrs[S.ATTR_SCAN] == scan and ds.attrs[S.ATTR_SPW_ID] == 0
        assert ds.attrs[S.ATTR_PHASE_CENTER] == [spec.ra, spec.dec]
        assert ds.attrs[S.ATTR_INTENTS] == spec.intents
        for attr in (S.ATTR_FIELD_CODE, S.ATTR_SPW_NAME, S.ATTR_FREQ_REF, S.ATTR_REF_FREQUENCY,
                     S.ATTR_TELESCOPE, S.ATTR_OBSERVER, S.ATTR_PROJECT, S.ATTR_SOURCES):
            assert attr in ds.attrs
    # Scans follow each other with the configured gap, and the truth covers every integration.
    starts = [ds[S.TIME].values[0] for ds in default_sim.datasets]
    ends = [ds[S.TIME].values[-1] for ds in default_sim.datasets]
    np.testing.assert_allclose(np.array(starts[1:]) - np.array(ends[:-1]),
                               cfg.integration_time + cfg.scan_gap)
    all_times = np.concatenate([ds[S.TIME].values for ds in default_sim.datasets])
    np.testing.assert_array_equal(default_sim.truth.times, all_times)


def test_attrs_survive_zarr_round_trip(default_sim, tmp_path):
    from radiocal.store.zarr_store import open_store, write_store

    ds = default_sim.datasets[2]
    write_store([ds], tmp_path / "p.zarr")
    back = open_store(tmp_path / "p.zarr")[0].load()
    xr.testing.assert_identical(back, ds)


def test_deterministic_and_seeded():
    cfg = SimConfig(n_antennas=4, spws=((1.4e9, 1e6, 4),), schedule=((0, 2), (2, 2)))
    one, two = simulate(cfg), simulate(cfg)
    for a, b in zip(one.datasets, two.datasets):
        xr.testing.assert_identical(a, b)
    np.testing.assert_array_equal(one.truth.G, two.truth.G)
    other = simulate(cfg.replace(seed=1))
    assert not np.allclose(other.datasets[0][S.VISIBILITY].values,
                           one.datasets[0][S.VISIBILITY].values)
    # Changing the noise leaves the gains alone: each component has its own random stream.
    np.testing.assert_array_equal(simulate(cfg.replace(noise=0.5)).truth.G, one.truth.G)


def test_noise_level_and_corruption_model():
    sim = simulate(SimConfig(n_antennas=8, noise=0.2, dead_antenna=3))
    res = np.concatenate([_residual(sim, ds)[:, _live(sim, ds)].ravel() for ds in sim.datasets])
    n = res.size
    for part in (res.real, res.imag):
        # The sample rms of n Gaussian draws scatters by rms / sqrt(2 n).
        assert abs(part.std() / (0.2 / np.sqrt(2)) - 1) < 5 / np.sqrt(2 * n)
        assert abs(part.mean()) < 5 * 0.2 / np.sqrt(2 * n)
    # The dead antenna's baselines hold noise only.
    for ds in sim.datasets:
        vis = ds[S.VISIBILITY].values[:, ~_live(sim, ds)]
        assert abs(np.sqrt(np.mean(np.abs(vis) ** 2)) / 0.2 - 1) < 0.1


def test_gains_and_bandpass_applied_to_a_point_source():
    # A calibrator alone, checked against the measurement equation written out independently.
    src = FieldSpec("CAL", 3.5, 0.5, "flux,bandpass", flux=10.0, spectral_index=-0.7)
    cfg = SimConfig(fields=(src,), schedule=((0, 5),), noise=0.01, gain_amp_rms=0.2,
                    spws=((1.0e9, 8e6, 8), (2.0e9, 8e6, 12)))
    sim = simulate(cfg)
    t = sim.truth
    for ds in sim.datasets:
        spw = ds.attrs[S.ATTR_SPW_ID]
        nu = ds[S.FREQUENCY].values
        ti = np.searchsorted(t.times, ds[S.TIME].values)
        a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
        stokes_i = 10.0 * (nu / cfg.reference_frequency) ** -0.7
        vis = ds[S.VISIBILITY].values
        for k, (h1, h2) in enumerate(((0, 0), (0, 1), (1, 0), (1, 1))):
            g1 = t.G[a1, h1][:, ti].T[..., None] * t.B[a1, h1, spw, : nu.size][None]
            g2 = t.G[a2, h2][:, ti].T[..., None] * t.B[a2, h2, spw, : nu.size][None]
            expected = g1 * np.conj(g2) * (stokes_i if h1 == h2 else 0.0)
            assert np.abs(vis[..., k] - expected).max() < 6 * 0.01
            if h1 == h2:
                corrected = vis[..., k] / (g1 * np.conj(g2))
                assert np.abs(corrected - stokes_i).max() < 6 * 0.01 / 0.2 ** 2
        # The corruptions are far above the noise: the data are not the bare model.
        assert np.abs(vis[..., 0] - stokes_i).mean() > 100 * 0.01


def test_truth_bandpass_and_delays():
    cfg = SimConfig(spws=((1.0e9, 2e6, 32), (1.5e9, 1e6, 7)), delay_rms=5.0, bandpass_ripple=0.1)
    t = simulate(cfg).truth
    assert t.B.shape == (cfg.n_antennas, 2, 2, 32) and np.isnan(t.B[:, :, 1, 7:]).all()
    assert t.freqs.shape == (2, 32) and np.isnan(t.freqs[1, 7:]).all()
    np.testing.assert_allclose(np.abs(t.B[:, :, 0]).mean(-1), 1.0)
    np.testing.assert_allclose(np.abs(t.B[:, :, 1, :7]).mean(-1), 1.0)
    assert 1e-9 < np.std(t.delays) < 20e-9
    # The delay is inside B's phase: removing it leaves only the small phase ripple.
    for spw, n in ((0, 32), (1, 7)):
        nu = t.freqs[spw, :n]
        rest = t.B[:, :, spw, :n] * np.exp(-2j * np.pi * nu * t.delays[..., None])
        assert np.abs(np.angle(rest)).max() <= 0.5 * cfg.bandpass_ripple + 1e-9
    # Band edges are rolled off relative to the band centre.
    amp = np.abs(t.B[:, :, 0, :])
    assert np.all(amp[..., [0, -1]].mean(-1) < amp[..., 12:20].mean(-1))


def test_uvw_geometry(default_sim):
    for ds in default_sim.datasets:
        pos = ds[S.ANTENNA_POSITION].values
        a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
        b = pos[a1] - pos[a2]
        uvw = ds[S.UVW].values
        # A rotation keeps baseline lengths.
        np.testing.assert_allclose(np.linalg.norm(uvw, axis=-1),
                                   np.broadcast_to(np.linalg.norm(b, axis=-1), uvw.shape[:2]),
                                   rtol=1e-12)
        # w is the baseline projected on the direction of the source in the Earth-fixed frame.
        ra, dec = ds.attrs[S.ATTR_PHASE_CENTER]
        alpha = ra - astro.sidereal_time(ds[S.TIME].values, kind="mean")
        s = np.stack([np.cos(dec) * np.cos(alpha), np.cos(dec) * np.sin(alpha),
                      np.full(alpha.shape, np.sin(dec))], -1)
        np.testing.assert_allclose(uvw[..., 2], s @ b.T, atol=1e-6)
        east = np.stack([-np.sin(alpha), np.cos(alpha), np.zeros_like(alpha)], -1)
        np.testing.assert_allclose(uvw[..., 0], east @ b.T, atol=1e-6)
        # The fields are well up during the observation.
        site = astro.itrf(*VLA_SITE)[None]
        assert np.all(astro.elevation(ds[S.TIME].values, site, ra, dec) > np.radians(30))
    # The antennas stand within a few km of the VLA site.
    centre = astro.itrf(*VLA_SITE)
    pos = default_sim.datasets[0][S.ANTENNA_POSITION].values
    assert np.all(np.linalg.norm(pos - centre, axis=1) < 3000)


def test_uvw_convention_matches_casa():
    casacore_tables = pytest.importorskip("casacore.tables")
    ms = VLA_SMALL / "vla_small.ms"
    if not ms.exists():
        pytest.skip(f"reference data missing: {ms}")
    pos = casacore_tables.table(str(ms / "ANTENNA"), ack=False).getcol("POSITION")
    centres = casacore_tables.table(str(ms / "FIELD"), ack=False).getcol("PHASE_DIR")[:, 0]
    main = casacore_tables.table(str(ms), ack=False)
    rows = slice(0, 3510, 97)
    t, f = main.getcol("TIME")[rows], main.getcol("FIELD_ID")[rows]
    a1, a2 = main.getcol("ANTENNA1")[rows], main.getcol("ANTENNA2")[rows]
    ref = main.getcol("UVW")[rows]
    ours = np.array([geometry.uvw(pos, a1[i:i + 1], a2[i:i + 1], t[i:i + 1], *centres[f[i]])[0, 0]
                     for i in range(t.size)])
    # Same sign and orientation; differences are CASA's precession to the date (a fraction of a
    # degree of rotation).
    err = np.linalg.norm(ours - ref, axis=1) / np.linalg.norm(ref, axis=1)
    assert err.max() < 0.02


def test_background_sources_follow_the_dft_convention():
    star = FieldSpec("T", 3.6, 0.44, "target", flux=0.0)
    src = PointSource(0.01, -0.02, 2.0, -0.5)
    cfg = SimConfig(fields=(star,), background=(src,), schedule=((0, 3),), n_correlations=2)
    sim = simulate(cfg)
    ds = sim.datasets[0]
    model = sim.truth.model[ds.attrs[S.ATTR_PARTITION]]
    uvw = ds[S.UVW].values
    nu = ds[S.FREQUENCY].values
    n = np.sqrt(1 - src.l ** 2 - src.m ** 2)
    path = uvw[..., 0] * src.l + uvw[..., 1] * src.m + uvw[..., 2] * (n - 1)
    phase = path[..., None] * nu / 299792458.0
    expected = 2.0 * (nu / cfg.reference_frequency) ** -0.5 * np.exp(2j * np.pi * phase)
    np.testing.assert_allclose(model[..., 0], expected, rtol=1e-10)
    np.testing.assert_allclose(model[..., 1], expected, rtol=1e-10)
    # The sky-model text puts the source where (l, m) says.
    line = sim.truth.sky.skymodel_text(0).splitlines()[1].split(",")
    ra, dec = np.radians(float(line[2].strip()[:-3])), np.radians(float(line[3].strip()[:-3]))
    np.testing.assert_allclose(astro.lm_from_radec(ra, dec, star.ra, star.dec)[:2], (src.l, src.m),
                               atol=1e-9)


@pytest.mark.parametrize("feeds,ncorr", [("circular", 4), ("circular", 2), ("linear", 4),
                                         ("linear", 2), ("linear", 1)])
def test_feeds_correlations_and_star(feeds, ncorr):
    star = FieldSpec("STAR", 3.6, 0.44, "target", flux=1.0, circular_fraction=0.3, variability=2.0)
    cfg = SimConfig(fields=(star,), background=(), schedule=((0, 12),), feeds=feeds,
                    n_correlations=ncorr, noise=0.0, gain_amp_rms=0.0, gain_phase_rms=0.0,
                    delay_rms=0.0, bandpass_ripple=0.0, bandpass_rolloff=0.0)
    sim = simulate(cfg)
    ds = sim.datasets[0]
    pols = tuple(ds[S.POLARIZATION].values)
    hands = "RL" if feeds == "circular" else "XY"
    full = tuple(a + b for a in hands for b in hands)
    assert pols == {4: full, 2: (full[0], full[3]), 1: (full[0],)}[ncorr]
    assert S.feed_basis(pols) == feeds
    # Without noise, dividing out each correlation's two hands leaves the coherencies.
    j = sim.truth.jones(ds)
    a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
    hand = {"R": 0, "L": 1, "X": 0, "Y": 1}
    vis = np.stack([ds[S.VISIBILITY].values[..., k]
                    / (j[:, a1, hand[p[0]], :] * np.conj(j[:, a2, hand[p[1]], :]))
                    for k, p in enumerate(pols)], axis=-1)
    stokes_i, stokes_v = sim.truth.star_I[:, 0, :], sim.truth.star_V[:, 0, :]
    assert sim.truth.star_I.shape == (12, 1, 16)
    assert stokes_i.max() > 2.5 * stokes_i.min()          # the flare is there
    assert np.all(stokes_v.min(0) < 0.3 * stokes_i.min(0))  # and changes the polarisation
    expect = {"RR": stokes_i + stokes_v, "LL": stokes_i - stokes_v, "RL": 0 * stokes_i,
              "LR": 0 * stokes_i, "XX": stokes_i, "YY": stokes_i, "XY": 1j * stokes_v,
              "YX": -1j * stokes_v}
    for k, pol in enumerate(pols):
        np.testing.assert_allclose(vis[..., k],
                                   np.broadcast_to(expect[pol][:, None], vis.shape[:3]),
                                   atol=1e-5 * stokes_i.max())


def test_rfi_mask_marks_the_corrupted_samples():
    cfg = SimConfig(rfi_channels=2, rfi_bursts=3, rfi_spike_fraction=0.01, noise=0.05,
                    rfi_amplitude=10.0, dead_antenna=2)
    sim = simulate(cfg)
    bursts = 0
    for ds in sim.datasets:
        name = ds.attrs[S.ATTR_PARTITION]
        mask = sim.truth.rfi[name]
        assert mask.shape == ds[S.VISIBILITY].shape and mask.dtype == bool
        big = np.abs(_residual(sim, ds)) > 10 * cfg.noise
        np.testing.assert_array_equal(big, mask)
        # The same samples in every correlation.
        assert np.all(mask == mask[..., :1])
        persistent = mask.all(axis=(0, 1, 3))
        assert persistent.sum() == 2
        bursts += int(mask.all(axis=(1, 2, 3)).sum())
        spikes = mask[:, :, ~persistent, 0]
        spikes = spikes[~spikes.all(axis=(1, 2))]
        assert spikes.mean() < 0.05
    assert bursts == 3
    clean = simulate(cfg.replace(rfi_channels=0, rfi_bursts=0, rfi_spike_fraction=0.0))
    assert not any(m.any() for m in clean.truth.rfi.values())


def test_autocorrelations():
    sim = simulate(SimConfig(autocorrelations=True, n_antennas=4, schedule=((0, 2),)))
    ds = sim.datasets[0]
    a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
    assert ds.sizes[S.BASELINE] == 10 and (a1 == a2).sum() == 4
    np.testing.assert_array_equal(ds[S.UVW].values[:, a1 == a2], 0.0)
    res = _residual(sim, ds)
    assert np.abs(res).max() < 6 * sim.config.noise


def test_several_spws_and_model_column():
    cfg = SimConfig(spws=((1.0e9, 1e6, 4), (1.2e9, 2e6, 6)), model_column=True, noise=0.0)
    sim = simulate(cfg)
    assert [ds.attrs[S.ATTR_PARTITION] for ds in sim.datasets[:2]] == ["field0_spw0_scan1",
                                                                       "field0_spw1_scan1"]
    assert sim.datasets[1].sizes[S.FREQUENCY] == 6
    assert sim.truth.star_I.shape == (cfg.n_times, 2, 6)
    assert np.isnan(sim.truth.star_I[:, 0, 4:]).all()
    for ds in sim.datasets:
        model = sim.truth.model[ds.attrs[S.ATTR_PARTITION]]
        np.testing.assert_array_equal(ds[S.VISIBILITY_MODEL].values, model.astype(np.complex64))
        np.testing.assert_allclose(ds[S.VISIBILITY].values, sim.truth.corrupt(ds, model),
                                   rtol=1e-5, atol=1e-6)
        assert sim.partition(ds.attrs[S.ATTR_PARTITION]) is ds


@pytest.mark.parametrize("seed", range(12))
def test_vla_dishes_stand_two_diameters_apart(seed):
    # The jitter along an arm once put 25 m dishes 8.5 m apart: overlapping dishes, which the
    # flagger rightly refuses to shadow (with a warning) on the project's own simulations.
    ants = geometry.layout(SimConfig(n_antennas=27), np.random.default_rng(seed))
    pos = ants["position"]
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)[np.triu_indices(len(pos), 1)]
    assert d.min() >= 2 * ants["diameter"].max() - 1e-6


def test_lwa_layout_and_names():
    cfg = SimConfig.lwa()
    sim = simulate(cfg)
    ds = sim.datasets[0]
    assert tuple(ds[S.POLARIZATION].values) == S.LINEAR
    assert ds.attrs[S.ATTR_TELESCOPE] == "OVRO_LWA"
    np.testing.assert_array_equal(ds[S.ANTENNA_DIAMETER].values, 2.0)
    pos = ds[S.ANTENNA_POSITION].values
    d = np.linalg.norm(pos[:, None] - pos[None], axis=-1)[np.triu_indices(cfg.n_antennas, 1)]
    assert d.min() >= 5.0 - 1e-6 and d.max() < 500
    # Contiguous sub-bands on the OVRO-LWA grid, named like the real files.
    f = np.concatenate([d[S.FREQUENCY].values for d in sim.datasets[: len(cfg.spws)]])
    np.testing.assert_allclose(np.diff(f), cfg.spws[0][1], rtol=1e-9)
    names = [lwa_name(cfg.start_time, s[0]) for s in cfg.spws]
    assert names[0].endswith("_55MHz.ms") and names[1].endswith("_59MHz.ms")
    assert lwa_name(0.0, 13.398e6) == "18581117_000000_13MHz.ms"
    assert lwa_name(86400.0 + 3661.0, 73.1e6) == "18581118_010101_73MHz.ms"
    # Cygnus A is in the sky model and dominates the cross-correlations.
    assert any(src.flux > 1e4 for src in cfg.background)
    assert np.median(np.abs(ds[S.VISIBILITY].values[..., [0, 3]])) > 100 * cfg.noise


@pytest.mark.parametrize("changes", [
    dict(layout="meerkat"), dict(feeds="helical"), dict(n_correlations=3), dict(n_antennas=1),
    dict(spws=((1e9, 1e6, 0),)), dict(schedule=((7, 2),)), dict(dead_antenna=99),
    dict(rfi_spike_fraction=1.5), dict(rfi_bursts=1000), dict(rfi_channels=99),
    dict(fields=(FieldSpec("X", 0.0, 0.0, "science"),)), dict(noise=-1.0),
])
def test_bad_config_is_a_config_error(changes):
    with pytest.raises(ConfigError, match="simulator"):
        SimConfig(**changes)


def test_config_is_hashable_and_accepts_lists():
    cfg = SimConfig(spws=[[1e9, 1e6, 4]], schedule=[[0, 2]])
    assert cfg.spws == ((1e9, 1e6, 4),) and cfg.schedule == ((0, 2),)
    assert hash(cfg) == hash(replace(cfg))


def test_simulate_ms_writes_an_ms(tmp_path):
    tables = pytest.importorskip("casacore.tables")
    from radiocal.simulate import simulate_ms

    cfg = SimConfig(n_antennas=4, spws=((1.4e9, 1e6, 4),), schedule=((0, 2), (2, 3)))
    sim = simulate_ms(tmp_path / "sim.ms", cfg)
    assert sim.paths == [tmp_path / "sim.ms"]
    with tables.table(str(tmp_path / "sim.ms"), ack=False) as t:
        assert t.nrows() == 5 * 6
        data = t.getcol("DATA")
        assert data.shape == (30, 4, 4)
        scans = t.getcol("SCAN_NUMBER")
        assert sorted(set(scans)) == [1, 2]
        ref = sim.datasets[0][S.VISIBILITY].values
        rows = (scans == 1)
        got = data[rows]
        # Same visibilities, whatever the row order: compare as multisets of row sums.
        np.testing.assert_allclose(np.sort(got.sum(axis=(1, 2))),
                                   np.sort(ref.reshape(-1, 4, 4).sum(axis=(1, 2))), rtol=1e-5)
    with pytest.raises(Exception):
        simulate_ms(tmp_path / "sim.ms", cfg)


def test_lwa_files(tmp_path):
    tables = pytest.importorskip("casacore.tables")
    from radiocal.simulate import lwa_files

    cfg = SimConfig.lwa(n_subbands=2, n_channels=3, n_integrations=2, n_antennas=4)
    sim = lwa_files(tmp_path / "lwa", cfg)
    names = sorted(p.name for p in (tmp_path / "lwa").iterdir())
    assert names == [p.name for p in sim.paths] and len(names) == 4
    assert {n.rsplit("_", 1)[1] for n in names} == {"55MHz.ms", "59MHz.ms"}
    assert len({n.rsplit("_", 1)[0] for n in names}) == 2
    for p in sim.paths:
        with tables.table(str(p), ack=False) as t:
            assert t.nrows() == 4 * 5 // 2     # one integration, baselines with autocorrelations
            assert len(set(t.getcol("TIME"))) == 1
        with tables.table(str(p / "SPECTRAL_WINDOW"), ack=False) as spw:
            assert spw.nrows() == 1 and spw.getcol("CHAN_FREQ").shape == (1, 3)


def test_simulated_ms_reads_back_as_the_simulated_datasets(tmp_path):
    from radiocal.simulate import simulate_ms

    cfg = SimConfig(n_antennas=4, spws=((1.3e9, 4e6, 6), (1.4e9, 2e6, 3)), feeds="linear",
                    n_correlations=2, autocorrelations=True, schedule=((0, 2), (1, 1), (2, 3)))
    sim = simulate_ms(tmp_path / "rt.ms", cfg)
    back = {ds.attrs[S.ATTR_PARTITION]: ds for ds in read_ms(str(tmp_path / "rt.ms"))}
    assert sorted(back) == sorted(ds.attrs[S.ATTR_PARTITION] for ds in sim.datasets)
    for ds in sim.datasets:
        got = back[ds.attrs[S.ATTR_PARTITION]].load()
        for var in (S.VISIBILITY, S.FLAG, S.WEIGHT, S.UVW, S.ROW_PRESENT):
            np.testing.assert_array_equal(got[var].values, ds[var].values)
        for coord in ds.coords:
            np.testing.assert_array_equal(got[coord].values, ds[coord].values)
        for attr, value in ds.attrs.items():
            if attr != S.ATTR_SOURCES:
                assert got.attrs[attr] == value, attr


def test_lwa_files_join_into_one_dataset(tmp_path):
    from radiocal.simulate import lwa_files

    cfg = SimConfig.lwa(n_subbands=3, n_channels=2, n_integrations=2, n_antennas=3)
    sim = lwa_files(tmp_path, cfg)
    (joined,) = read_ms([str(p) for p in sim.paths])
    assert joined.sizes[S.TIME] == 2 and joined.sizes[S.FREQUENCY] == 6
    np.testing.assert_array_equal(joined[S.TIME].values, sim.truth.times)
    np.testing.assert_allclose(joined[S.FREQUENCY].values, sim.truth.freqs.ravel())
    expected = np.concatenate([ds[S.VISIBILITY].values for ds in sim.datasets], axis=2)
    np.testing.assert_array_equal(joined[S.VISIBILITY].values, expected)
