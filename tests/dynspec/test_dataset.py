"""Predict, subtract and dynamic spectra on canonical datasets."""

import math

import dask
import dask.array as da
import numpy as np
import pytest
import xarray as xr

from radiocal.dynspec import dataset as D
from radiocal.dynspec.config import DynspecConfig
from radiocal.errors import ConfigError, SelectionError
from radiocal.store import schema as S
from radiocal.model.dataset import predict_model
from radiocal.model.skymodel import read_skymodel


def _raise(*args, **kwargs):
    raise RuntimeError("a graph builder computed")


def _target(star):
    return [ds for ds in star["calibrated"] if ds.attrs[S.ATTR_FIELD_NAME] == "STAR"]


def test_predict_matches_simulator_model(star):
    """The simulator's model minus our prediction of the background is the star alone."""
    truth = star["truth"]
    sky = read_skymodel(star["skymodel"])
    for ds in _target(star):
        model = predict_model(ds, sky)[S.VISIBILITY_MODEL].values
        ti = truth.time_index(ds)
        i = truth.star_I[ti, 0, :][:, None, :]
        v = truth.star_V[ti, 0, :][:, None, :]
        star_only = np.stack([i + v, 0 * i, 0 * i, i - v], axis=-1)
        residual = truth.model[ds.attrs[S.ATTR_PARTITION]] - model - star_only
        # Positions in the text file are rounded to 1e-8 deg: ~1e-4 rad of phase on these baselines.
        assert np.abs(residual).max() < 2e-4 * np.abs(model).max()


def test_subtract_model_only_leaves_float_precision(star):
    """A dataset whose data are the model (plain-numpy DFT) subtracts to float precision."""
    sky = read_skymodel(star["skymodel"])
    ds = _target(star)[0].drop_vars(S.VISIBILITY_CORRECTED)
    lmn = sky.lmn(ds.attrs[S.ATTR_PHASE_CENTER])
    freq = ds[S.FREQUENCY].values
    uvw = ds[S.UVW].values
    flux = sky.spectra(freq)[:, :, 0]
    phase = 2j * np.pi / 299792458.0 * (uvw @ (lmn - [0, 0, 1]).T)[..., None] * freq   # (t, b, s, f)
    model = (np.exp(phase) * flux[None, None]).sum(axis=2)
    data = np.stack([model, 0 * model, 0 * model, model], axis=-1).astype(np.complex64)
    ds = ds.assign({S.VISIBILITY: (ds[S.VISIBILITY].dims, data)})
    residual = D.subtract_model(predict_model(ds, sky))
    assert residual.attrs[D.ATTR_SUBTRACTED_FROM] == S.VISIBILITY
    res = residual[S.VISIBILITY_CORRECTED].values
    assert res.dtype == np.complex64
    peak = np.abs(data).max()
    assert np.abs(res).max() < 4 * np.finfo(np.float32).eps * peak


def test_subtract_through_a_measurement_set(star, tmp_path):
    """An MS holding only the model, written and read back by radiocal.ms, subtracts to ~0."""
    from radiocal.ms.read import read_ms
    from radiocal.ms.write import write_ms

    sky = read_skymodel(star["skymodel"])
    ds = _target(star)[0].drop_vars(S.VISIBILITY_CORRECTED)
    ds = ds.assign({S.FLAG: ds[S.FLAG] & False})
    model = predict_model(ds, sky)[S.VISIBILITY_MODEL].values
    ds = ds.assign({S.VISIBILITY: (ds[S.VISIBILITY].dims, model)})
    write_ms([ds], str(tmp_path / "model.ms"))
    back = read_ms([str(tmp_path / "model.ms")])
    assert len(back) == 1
    out = D.subtract_model(predict_model(back[0], sky))
    res = out[S.VISIBILITY_CORRECTED].values
    assert np.abs(res).max() < 4 * np.finfo(np.float32).eps * np.abs(model).max()


def test_builders_do_not_compute(star):
    with dask.config.set(scheduler=_raise):
        ds = predict_model(_target(star)[0], read_skymodel(star["skymodel"]))
        ds = D.subtract_model(ds)
        spec = D.dynamic_spectrum(_target(star), DynspecConfig(field="STAR", skymodel=star["skymodel"], timeavg=2))
        assert isinstance(ds[S.VISIBILITY_CORRECTED].data, da.Array)
        assert isinstance(spec["I"].data, da.Array)
        assert isinstance(spec[D.CHANNEL_FLAG].data, da.Array)
        with pytest.raises(RuntimeError, match="computed"):
            spec["I"].values


def test_one_chunk_equals_many_chunks(star):
    config = DynspecConfig(field="STAR", skymodel=star["skymodel"], timeavg=2, freqavg=3)
    one = D.dynamic_spectrum([ds.chunk({S.TIME: -1}) for ds in _target(star)], config).compute()
    many = D.dynamic_spectrum([ds.chunk({S.TIME: 3}) for ds in _target(star)], config).compute()
    xr.testing.assert_allclose(one, many, rtol=1e-12)


def test_computed_sums_give_the_lazy_spectrum_bit_for_bit(star):
    """The step's route (sums over baselines computed in one pass, the rest on those arrays in
    this thread) makes the very spectrum of the lazy graph, and its pass is a task per chunk."""
    config = DynspecConfig(field="STAR", skymodel=star["skymodel"], timeavg=2)
    target = [ds.chunk({S.TIME: 3}) for ds in _target(star)]
    lazy = D.dynamic_spectrum(target, config).compute(scheduler="threads")
    with dask.config.set(scheduler="threads"):
        computed = D.dynamic_spectrum(target, config, computed=True)
    with dask.config.set(scheduler=_raise):
        with pytest.raises(RuntimeError, match="computed"):
            D.dynamic_spectrum(target, config, computed=True)
    with dask.config.set(scheduler="sync"):
        computed = computed.compute()
    xr.testing.assert_identical(lazy, computed)
    # chunks of whole averaging cells: nothing is shared between chunks, not even the values
    # the graph holds (frequencies, the model's spectra)
    whole = _target(star)[0].chunk({S.TIME: 4})
    stats = D.partition_stats(predict_model(whole, read_skymodel(star["skymodel"])), config)
    assert stats.npartitions > 1 and len(dict(stats.__dask_graph__())) == stats.npartitions


def _floor_ratio(spec, truth, name):
    live = spec[D.SCAN_COORD].values >= 0
    ti = truth.time_index(spec.isel(time=live))
    want = {"I": truth.star_I, "V": truth.star_V}[name][ti, 0, :]
    got = spec[name].values[live]
    n = spec[D.N_BASELINES].values[live]
    ok = np.isfinite(got) & (n > 1)
    floor = truth.noise / math.sqrt(2) / np.sqrt(2 * n[ok])
    rms_floor = math.sqrt(np.mean(floor**2))
    rms_error = math.sqrt(np.mean((got[ok] - want[ok]) ** 2))
    rms_reported = math.sqrt(np.mean(spec[name + D.ERR_SUFFIX].values[live][ok] ** 2))
    return rms_error / rms_floor, rms_reported / rms_floor, ok.sum()


def test_star_recovered_at_the_thermal_noise_floor(star):
    """Calibrated with the true gains, I and V are within 10% of sigma/sqrt(2)/sqrt(2 N_live)."""
    spec = D.dynamic_spectrum(star["calibrated"], DynspecConfig(field="STAR", skymodel=star["skymodel"])).compute()
    for name in ("I", "V"):
        error_ratio, reported_ratio, cells = _floor_ratio(spec, star["truth"], name)
        assert cells > 300
        assert 0.85 < error_ratio < 1.10, (name, error_ratio)
        # The error spectra (standard error over baselines) describe that scatter.
        assert 0.85 < reported_ratio < 1.15, (name, reported_ratio)
    # Without subtracting the background, the error is far above the floor: the test can fail.
    raw = D.dynamic_spectrum(star["calibrated"], DynspecConfig(field="STAR")).compute()
    assert _floor_ratio(raw, star["truth"], "I")[0] > 1.5


def test_stitching_keeps_gaps_and_scans(star):
    spec = D.dynamic_spectrum(star["calibrated"], DynspecConfig(field="STAR")).compute()
    scans = spec[D.SCAN_COORD].values
    assert list(np.unique(scans)) == [-1, 2, 4]
    gap = scans == -1
    assert gap.sum() >= 3 and np.isnan(spec["I"].values[gap]).all()
    assert (spec[D.N_BASELINES].values[gap] == 0).all() or np.isnan(spec[D.N_BASELINES].values[gap]).all()
    assert np.all(np.diff(spec[S.TIME].values) > 0)
    times = spec[S.TIME].values
    steps = np.diff(times)
    assert np.allclose(steps, 10.0, atol=1e-3)       # gap rows on the integration grid
    assert spec.attrs["field_name"] == "STAR" and spec.attrs["data_column"] == S.VISIBILITY_CORRECTED
    assert spec["I"].attrs["units"] == "Jy" and spec[D.RATIO].attrs["units"] == "1"
    per_scan = D.block_spectra(star["calibrated"], DynspecConfig(field="STAR"))
    assert [int(s[D.SCAN_COORD][0]) for s in per_scan] == [2, 4]


def test_averaging_factors(star):
    target = _target(star)
    config = DynspecConfig(field="STAR", skymodel=star["skymodel"], timeavg=4, freqavg=5)
    spec = D.dynamic_spectrum(target, config).compute()
    ntime = sum(math.ceil(ds.sizes[S.TIME] / 4) for ds in target)
    assert (spec[D.SCAN_COORD].values >= 0).sum() == ntime
    assert spec.sizes[S.FREQUENCY] == math.ceil(16 / 5)
    np.testing.assert_allclose(spec[S.FREQUENCY].values[0], target[0][S.FREQUENCY].values[:5].mean())
    np.testing.assert_allclose(spec[S.TIME].values[0], target[0][S.TIME].values[:4].mean())
    # Averaging reduces the error bars as sqrt(samples): ~sqrt(20) here.
    fine = D.dynamic_spectrum(target, DynspecConfig(field="STAR", skymodel=star["skymodel"])).compute()
    ratio = np.nanmedian(fine["I_err"].values) / np.nanmedian(spec["I_err"].values[:, :3])
    assert 3.5 < ratio < 5.5


def test_uvrange_and_baseline_exclusion(star):
    target = _target(star)
    full = D.dynamic_spectrum(target, DynspecConfig(field="STAR")).compute()
    names = [str(n) for n in target[0][S.ANTENNA_NAME].values]
    fewer = D.dynamic_spectrum(target, DynspecConfig(field="STAR", exclude_baselines=(names[0], f"{names[1]}&{names[2]}"))).compute()
    n_full = np.nanmax(full[D.N_BASELINES].values)
    assert n_full == 21                                # 7 live antennas after the dead one
    assert np.nanmax(fewer[D.N_BASELINES].values) == n_full - 6 - 1
    uv = np.hypot(*np.moveaxis(target[0][S.UVW].values[..., :2], -1, 0))
    cut = float(np.median(uv))
    short = D.dynamic_spectrum(target, DynspecConfig(field="STAR", uvrange=f"<{cut}m")).compute()
    assert 0 < np.nanmax(short[D.N_BASELINES].values) < n_full
    with pytest.raises(SelectionError, match="no antenna"):
        D.dynamic_spectrum(target, DynspecConfig(field="STAR", exclude_baselines=("XX99",)))
    with pytest.raises(SelectionError, match="fields: "):
        D.dynamic_spectrum(target, DynspecConfig(field="NOPE"))


def test_clip_masks_and_brightness_temperature(star):
    target = _target(star)
    base = D.dynamic_spectrum(target, DynspecConfig(field="STAR", skymodel=star["skymodel"])).compute()
    clip = float(np.nanpercentile(np.abs(base["I"].values), 90))
    clipped = D.dynamic_spectrum(target, DynspecConfig(field="STAR", skymodel=star["skymodel"], clip_i=clip)).compute()
    expected = np.abs(base["I"].values) > clip
    np.testing.assert_array_equal(clipped[D.CELL_FLAG].values, expected)
    assert np.isnan(clipped["V"].values[expected]).all()
    np.testing.assert_array_equal(clipped["V"].values[~expected], base["V"].values[~expected])

    masked = D.dynamic_spectrum(target, DynspecConfig(field="STAR", skymodel=star["skymodel"], sense="-",
                                                      min_fraction=0.5)).compute()
    kept = np.isfinite(masked["V"].values)
    assert kept.any()
    assert (masked["V"].values[kept] < 0).all()
    assert (np.abs(masked[D.RATIO].values[kept]) >= 0.5).all()
    assert (masked["I"].values[kept] > 0).all()

    tb = D.dynamic_spectrum(target, DynspecConfig(field="STAR", skymodel=star["skymodel"],
                                                  tb_distance_pc=10.0, tb_radius_rsun=0.5)).compute()
    nu = base[S.FREQUENCY].values
    d, r = 10.0 * 3.0856775814913673e16, 0.5 * 6.957e8
    factor = 1e-26 * 299792458.0**2 * d**2 / (2 * 1.380649e-23 * nu**2 * math.pi * r**2)
    np.testing.assert_allclose(tb["I"].values, base["I"].values * factor, rtol=1e-12)
    np.testing.assert_allclose(tb["V_err"].values, base["V_err"].values * factor, rtol=1e-12)
    np.testing.assert_allclose(tb[D.RATIO].values, base[D.RATIO].values, rtol=1e-12)
    assert tb["I"].attrs["units"] == "K" and tb.attrs["brightness_temperature"]["distance_pc"] == 10.0


def test_noisy_channels_are_blanked_in_the_products_only(star):
    """A channel whose calibrated noise is three times the band's is blanked by the default
    max_channel_noise and kept with 0; every other cell is unchanged."""
    noisy, rng = 5, np.random.default_rng(1)
    target = []
    for ds in _target(star):
        vis = ds[S.VISIBILITY_CORRECTED].values.copy()
        sigma = star["truth"].noise * math.sqrt(8.0)     # (1 + 8) = 3^2 times the variance
        shape = vis[:, :, noisy].shape
        vis[:, :, noisy] += sigma / math.sqrt(2) * (rng.normal(size=shape) + 1j * rng.normal(size=shape))
        target.append(ds.assign({S.VISIBILITY_CORRECTED: (ds[S.VISIBILITY_CORRECTED].dims, vis)}))
    config = DynspecConfig(field="STAR", skymodel=star["skymodel"])
    masked = D.dynamic_spectrum(target, config).compute()
    kept = D.dynamic_spectrum(target, DynspecConfig(field="STAR", skymodel=star["skymodel"],
                                                    max_channel_noise=0.0)).compute()
    assert masked.attrs["max_channel_noise"] == pytest.approx(math.sqrt(2))
    noise = masked[D.CHANNEL_NOISE].values
    assert 2.5 < noise[noisy] < 3.5
    rest = np.delete(noise, noisy)
    assert np.all(rest[np.isfinite(rest)] < config.max_channel_noise)      # NaN: an RFI channel
    np.testing.assert_array_equal(masked[D.CHANNEL_FLAG].values, np.arange(noise.size) == noisy)
    live = masked[D.SCAN_COORD].values >= 0
    for name in ("I", "V", "I_err", D.RATIO):
        assert np.isnan(masked[name].values[:, noisy]).all()
        assert np.isfinite(kept[name].values[live, noisy]).any()
        others = np.delete(np.arange(noise.size), noisy)
        np.testing.assert_array_equal(masked[name].values[:, others], kept[name].values[:, others])
    assert masked[D.CELL_FLAG].values[:, noisy].all()
    assert not kept[D.CHANNEL_FLAG].values.any() and not kept[D.CELL_FLAG].values.any()
    with pytest.raises(ConfigError, match="max_channel_noise"):
        DynspecConfig(field="STAR", max_channel_noise=-1.0)


def test_light_curves_are_inverse_variance_band_means(star):
    spec = D.dynamic_spectrum(_target(star), DynspecConfig(field="STAR", skymodel=star["skymodel"])).compute()
    i, e = spec["I"].values, spec["I_err"].values
    w = np.where(np.isfinite(i) & np.isfinite(e) & (e > 0), 1 / e**2, 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        want = (w * np.nan_to_num(i)).sum(1) / w.sum(1)
    np.testing.assert_allclose(spec["I_lightcurve"].values, want, rtol=1e-12)
    assert spec["I_lightcurve"].dims == (S.TIME,)


@pytest.mark.parametrize("feeds,ncorr,products", [
    ("circular", 2, ["RR", "LL", "I", "V"]),
    ("linear", 4, ["XX", "YY", "I", "Q", "U", "V"]),
    ("circular", 1, ["RR"]),
])
def test_correlation_layouts(feeds, ncorr, products, calibrate):
    sim_mod = pytest.importorskip("radiocal.simulate")
    cfg = sim_mod.SimConfig(n_antennas=4, spws=((1.3e9, 4e6, 4),), schedule=((2, 3),), feeds=feeds,
                            n_correlations=ncorr, noise=0.0, background=())
    sim = sim_mod.simulate(cfg)
    ds = calibrate(sim.datasets[0], sim.truth)
    spec = D.dynamic_spectrum([ds], DynspecConfig(field="STAR")).compute()
    assert spec.attrs["products"] == products + (["V_over_I"] if "V" in products else [])
    # noise-free: the errors are float rounding and say nothing about channel quality
    assert not spec[D.CHANNEL_FLAG].values.any()
    ti = sim.truth.time_index(ds)
    want_i = sim.truth.star_I[ti, 0, :4]
    if "I" in products:
        np.testing.assert_allclose(spec["I"].values, want_i, rtol=1e-5)
        np.testing.assert_allclose(spec["V"].values, sim.truth.star_V[ti, 0, :4], rtol=1e-4, atol=1e-6)
    else:
        np.testing.assert_allclose(spec["RR"].values, want_i + sim.truth.star_V[ti, 0, :4], rtol=1e-5)


def test_zarr_round_trip(star, tmp_path):
    spec = D.dynamic_spectrum(_target(star), DynspecConfig(field="STAR", skymodel=star["skymodel"], timeavg=3))
    path = D.write_dynspec(spec, tmp_path / "ds.zarr")
    back = D.open_dynspec(path)
    xr.testing.assert_identical(back.compute(), spec.compute())
    with pytest.raises(Exception, match="already exists"):
        D.write_dynspec(spec, path)


def test_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="timeavg"):
        DynspecConfig(field="S", timeavg=0)
    with pytest.raises(ConfigError, match="sense"):
        DynspecConfig(field="S", sense="up")
    with pytest.raises(ConfigError, match="both"):
        DynspecConfig(field="S", tb_distance_pc=3.0)
