"""Pipeline steps: ``predict`` (sky model -> VISIBILITY_MODEL), ``subtract`` (uvsub) and
``dynspec`` (the target's dynamic spectrum, written as a zarr product)."""

from __future__ import annotations

from radiocal.dynspec.config import DynspecConfig, PredictConfig, SubtractConfig
from radiocal.dynspec.dataset import (
    N_BASELINES,
    dynamic_spectrum,
    open_dynspec,
    matches_field,
    source_variable,
    subtract_model,
    write_dynspec,
)
from radiocal.registry import register_step
from radiocal.errors import ConfigError, SelectionError
from radiocal.model.dataset import predict_model
from radiocal.model.skymodel import read_skymodel


@register_step("predict", PredictConfig)
def predict(datasets, config: PredictConfig, context):
    """Predict a makesourcedb/DP3/WSClean sky model into VISIBILITY_MODEL (DFT with the w-term)."""
    sky = read_skymodel(config.skymodel)
    out = [predict_model(ds, sky, config.phase_convention) if matches_field(ds, config.field) else ds
           for ds in datasets]
    context.logger.info("predict: %d component(s) into %d partition(s)", len(sky),
                        sum(matches_field(ds, config.field) for ds in datasets))
    return out


@register_step("subtract", SubtractConfig)
def subtract(datasets, config: SubtractConfig, context):
    """uvsub: VISIBILITY_CORRECTED = (VISIBILITY_CORRECTED or VISIBILITY) - VISIBILITY_MODEL."""
    out = []
    for ds in datasets:
        if matches_field(ds, config.field):
            context.logger.info("subtract: %s - model in %s", source_variable(ds),
                                ds.attrs.get("partition", "?"))
            ds = subtract_model(ds)
        out.append(ds)
    return out


@register_step("dynspec", DynspecConfig, kind="sink")
def dynspec(datasets, config: DynspecConfig, context):
    """Average the target field over baselines into Stokes dynamic spectra and light curves."""
    if not config.field:
        raise ConfigError("step 'dynspec': set field (the target's name or id)")
    target = context.output_path(config.output)
    # The sums over baselines in one pass on the engine; the spectrum made of them here
    spectrum = dynamic_spectrum(datasets, config, computed=True)
    context.logger.info("dynspec: field %s from %s%s", config.field, spectrum.attrs["data_column"],
                        " minus model" if spectrum.attrs["model_subtracted"] else "")
    write_dynspec(spectrum, target, overwrite=True, here=True)
    if config.uvrange and not bool(open_dynspec(target)[N_BASELINES].any().compute()):
        # which baselines a uv range keeps is known only from the UVW read with the data
        import shutil

        shutil.rmtree(target, ignore_errors=True)
        raise SelectionError(f"uvrange {config.uvrange!r} keeps no baseline of field {config.field!r}")
    context.logger.info("dynspec: wrote %s", target)
    return datasets

