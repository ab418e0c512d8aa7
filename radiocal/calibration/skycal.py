"""Sky-model bandpass calibration, the OVRO-LWA way: steps ``ateam`` and ``sky_bandpass``.

``ateam`` predicts the A-team sources above the horizon (attenuated by the dipole beam,
:mod:`radiocal.model.ateam`) into ``VISIBILITY_MODEL`` and writes the model it used to the
output directory. ``sky_bandpass`` solves a bandpass against that model on baselines outside a
uv-range cut (short baselines see the diffuse Galactic emission the model lacks), flags outlier
antennas and channels of the solutions and fills flagged channels, solves delays as a diagnostic
(compared with a reference table when one is given), saves the tables and applies the bandpass.
"""

from __future__ import annotations

import dataclasses

from radiocal.calibration import postprocess
from radiocal.calibration.config import ATeamConfig, SkyBandpassConfig, SolveOptions
from radiocal.model.ateam import ateam_skymodel, pick_sources
from radiocal.calibration.dataset import solve_jointly
from radiocal.calibration.jones import ApplyTable, apply
from radiocal.calibration.step import load_table, save_tables
from radiocal.registry import register_step
from radiocal.select.selection import flag_outside_uv
from radiocal.errors import ConfigError, SelectionError
from radiocal.store import schema as S
from radiocal.store.zarr_store import spilling_into


@register_step("ateam", ATeamConfig)
def ateam_step(datasets, config: ATeamConfig, context):
    """Predict the apparent A-team (dipole beam, horizon cut) into VISIBILITY_MODEL."""
    from radiocal.model.dataset import predict_model
    from radiocal.model.skymodel import format_skymodel

    sources = pick_sources(config.sources)
    out, texts = [], {}
    for ds in datasets:
        times = ds[S.TIME].values
        model, report = ateam_skymodel(times, ds[S.ANTENNA_POSITION].values, sources,
                                       config.min_elevation, config.min_beam,
                                       config.beam_exponent)
        lmn = model.lmn(ds.attrs[S.ATTR_PHASE_CENTER])
        behind = lmn[:, 2] <= 0   # above the horizon yet beyond the phase centre's tangent plane
        if behind.any():
            context.logger.warning("ateam: %s beyond 90 deg of the phase centre of %s; left out",
                                   ", ".join(model.name[behind]), ds.attrs.get(S.ATTR_PARTITION))
            model = _subset(model, ~behind)
        name = ds.attrs.get(S.ATTR_PARTITION, "?")
        for rep in report:
            if rep.used:
                context.logger.info("ateam: %s: %s at >= %.1f deg, beam %.3f, %.0f Jy at 80 MHz",
                                    name, rep.name, rep.min_elevation_deg, rep.beam,
                                    rep.flux_80mhz)
            else:
                context.logger.info("ateam: %s: %s left out (%s)", name, rep.name, rep.reason)
        if len(model) == 0:
            raise SelectionError(f"ateam: no A-team source is usable during {name} "
                                 f"(all below {config.min_elevation:g} deg or the beam limit)")
        texts[name] = format_skymodel(model)
        out.append(predict_model(ds, model))
    _write_models(context.output_path(config.output), texts)
    return out


def _write_models(path, texts: dict) -> None:
    """One sky-model file when every partition saw the same sky (the usual snapshot), else one
    per partition (``<stem>_<partition>.txt``): each file is a model DP3 or WSClean can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if len(set(texts.values())) <= 1:
        path.write_text(next(iter(texts.values()), ""))
        return
    for partition, text in texts.items():
        path.with_name(f"{path.stem}_{partition}{path.suffix}").write_text(text)


def _subset(model, keep):
    return type(model)(**{f.name: getattr(model, f.name)[keep]
                          for f in dataclasses.fields(model)})


@register_step("sky_bandpass", SkyBandpassConfig)
def sky_bandpass_step(datasets, config: SkyBandpassConfig, context):
    """Bandpass against VISIBILITY_MODEL with a uv cut; post-flag, fill, delay check, apply."""
    if not datasets:
        raise SelectionError("sky_bandpass: no data")
    if any(S.VISIBILITY_MODEL not in ds for ds in datasets):
        raise ConfigError("sky_bandpass needs VISIBILITY_MODEL: put an 'ateam' or 'predict' "
                          "step before it")
    cut = [flag_outside_uv(ds, config.uvrange) for ds in datasets]
    options, against = SolveOptions.of(config), dict(model="column")
    # one pass over the data: both solves read the same per-channel statistics
    with spilling_into(getattr(context, "store", None)):
        bandpass, delay = solve_jointly([(cut, "B", options, against),
                                         (cut, "K", options, against)])
    bandpass, outliers = postprocess.flag_bandpass_outliers(
        bandpass, antenna_threshold=config.antenna_threshold,
        channel_threshold=config.channel_threshold,
        antenna_min_deviation=config.antenna_min_deviation)
    for spw, bad in outliers["antennas"].items():
        if bad:
            context.logger.warning("sky_bandpass: spw %s: outlier antenna(s) flagged: %s", spw,
                                   ", ".join(f"{a} {h}" for a, h in bad))
    for spw, n in outliers["channels"].items():
        context.logger.info("sky_bandpass: spw %s: %d outlier channel solutions flagged", spw, n)
    if config.interpolate:
        bandpass = postprocess.interpolate_flagged_channels(bandpass)
    if config.delay_reference:
        reference = load_table(config.delay_reference)
        delay, moved = postprocess.compare_delays(delay, reference,
                                                  threshold=config.delay_threshold_ns * 1e-9)
        for spw, antennas in moved.items():
            for (antenna, hand), ns in sorted(antennas.items()):
                context.logger.warning("sky_bandpass: spw %s: delay of %s %s moved %+.1f ns from "
                                       "the reference", spw, antenna, hand, ns)
        if not any(moved.values()):
            context.logger.info("sky_bandpass: delays agree with %s within %g ns",
                                config.delay_reference, config.delay_threshold_ns)
    good = postprocess.good_feed_fraction(bandpass)
    context.logger.info("sky_bandpass: %.0f%% of antenna feeds have bandpass solutions",
                        100 * good)
    for path in save_tables({"delay": delay, "bandpass": bandpass}, context.store,
                            context.outdir):
        context.logger.info("sky_bandpass: wrote %s", path)
    return apply(datasets, [ApplyTable(bandpass)])
