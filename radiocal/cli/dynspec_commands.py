"""``radiocal dynspec`` (a target's dynamic spectrum from a store) and ``radiocal plot``."""

from __future__ import annotations

import dataclasses
import os

import click

from radiocal.dynspec.config import PHASE_CONVENTIONS, SENSES, DynspecConfig

_HELP = {f.name: f.metadata.get("help", "") for f in dataclasses.fields(DynspecConfig)}


def _tb_pair(ctx, param, value):
    if value is None:
        return None
    try:
        distance, radius = (float(x) for x in value.split(","))
    except ValueError:
        raise click.BadParameter("expected DIST,RADIUS (parsec, solar radii), e.g. 5.2,0.3") from None
    if not (distance > 0 and radius > 0):
        raise click.BadParameter("distance and radius must be positive")
    return distance, radius


def _open_inputs(path: str):
    from radiocal.errors import InputError
    from radiocal.io.store import is_store, open_store

    if is_store(path):
        return open_store(path)
    if os.path.isfile(os.path.join(path, "table.dat")):
        from radiocal.io.ms import read_ms

        return read_ms([path])
    raise InputError(f"{path}: neither a radiocal store nor a Measurement Set")


@click.command("dynspec")
@click.argument("store", type=click.Path(exists=True))
@click.option("--field", required=True, help="Target field name or id.")
@click.option("--skymodel", type=click.Path(exists=True, dir_okay=True),
              help="Sky model (makesourcedb/DP3/WSClean text) to predict and subtract first.")
@click.option("-o", "--output", required=True, type=click.Path(), help="Dynamic spectrum zarr to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--timeavg", default=1, show_default=True, type=click.IntRange(min=1), help=_HELP["timeavg"])
@click.option("--freqavg", default=1, show_default=True, type=click.IntRange(min=1), help=_HELP["freqavg"])
@click.option("--uvrange", default="", help=_HELP["uvrange"])
@click.option("--exclude-baseline", "exclude", multiple=True, metavar="ANT1&ANT2|ANT",
              help=_HELP["exclude_baselines"] + " (repeatable)")
@click.option("--clip-i", default=0.0, type=click.FloatRange(min=0), help=_HELP["clip_i"])
@click.option("--clip-v", default=0.0, type=click.FloatRange(min=0), help=_HELP["clip_v"])
@click.option("--sense", default="", type=click.Choice(SENSES), help=_HELP["sense"])
@click.option("--min-fraction", default=0.0, type=click.FloatRange(0, 1), help=_HELP["min_fraction"])
@click.option("--tb", callback=_tb_pair, metavar="DIST,RADIUS",
              help="Brightness temperature for a source at DIST parsec of radius RADIUS solar radii "
                   "(default: flux density in Jy).")
@click.option("--subtract-model", is_flag=True, help=_HELP["subtract_model"])
@click.option("--max-channel-noise", default=DynspecConfig.max_channel_noise, show_default=True,
              type=click.FloatRange(min=0), help=_HELP["max_channel_noise"])
@click.option("--phase-convention", default="casa", show_default=True,
              type=click.Choice(PHASE_CONVENTIONS), help=_HELP["phase_convention"])
@click.pass_context
def dynspec(ctx, store, field, skymodel, output, overwrite, timeavg, freqavg, uvrange, exclude, clip_i,
            clip_v, sense, min_fraction, tb, subtract_model, max_channel_noise, phase_convention):
    """Dynamic spectrum of a target field: average over baselines into time x frequency.

    Uses calibrated data (VISIBILITY_CORRECTED) when the store has them, else the raw DATA, and
    says which. With --skymodel the background sky is predicted and subtracted first (uvsub).
    Writes I, V, the parallel hands, V/I (as V_over_I), each with *_err, and light curves.
    """
    from radiocal.cli.engine_commands import make_engine
    from radiocal.dynspec.dataset import dynamic_spectrum, write_dynspec
    from radiocal.io.probe import refuse_overlap

    refuse_overlap(output, [store])
    if os.path.exists(output) and not overwrite:
        raise click.UsageError(f"{output}: already exists (use --overwrite to replace it)")
    config = DynspecConfig(
        field=field, skymodel=skymodel or "", subtract_model=subtract_model, timeavg=timeavg,
        freqavg=freqavg, uvrange=uvrange, exclude_baselines=tuple(exclude), clip_i=clip_i,
        clip_v=clip_v, sense=sense, min_fraction=min_fraction,
        tb_distance_pc=tb[0] if tb else 0.0, tb_radius_rsun=tb[1] if tb else 0.0,
        max_channel_noise=max_channel_noise, phase_convention=phase_convention,
    )
    spectrum = dynamic_spectrum(_open_inputs(store), config)
    column = spectrum.attrs["data_column"]
    what = "calibrated data (VISIBILITY_CORRECTED)" if column == "VISIBILITY_CORRECTED" else \
        "uncalibrated DATA (no VISIBILITY_CORRECTED in the store)"
    click.echo(f"dynspec: field {spectrum.attrs['field_name']}: using {what}"
               f"{', minus the sky model' if spectrum.attrs['model_subtracted'] else ''}")
    with make_engine(ctx):
        write_dynspec(spectrum, output, overwrite=overwrite)
    click.echo(f"wrote {output}: {spectrum.sizes['time']} times x {spectrum.sizes['frequency']} channels, "
               f"products {', '.join(spectrum.attrs['products'])} in {spectrum.attrs['units']}")


@click.command("plot")
@click.argument("spectrum", type=click.Path(exists=True))
@click.option("-o", "--output", required=True, type=click.Path(), help="Image to write (.png, .pdf).")
@click.option("--products", default=None,
              help="Comma-separated panels to draw (I, V, V/I, RR, LL, Q, U, ...); default I,V,V/I.")
def plot(spectrum, output, products):
    """Plot a dynamic spectrum: I, V and V/I over UTC time and MHz, and the light curves."""
    from radiocal.dynspec.dataset import RATIO, open_dynspec
    from radiocal.dynspec.plot import plot_dynamic_spectrum

    names = None
    if products:
        names = [RATIO if p.strip() == "V/I" else p.strip() for p in products.split(",") if p.strip()]
    plot_dynamic_spectrum(open_dynspec(spectrum), output, products=names)
    click.echo(f"wrote {output}")


commands = [dynspec, plot]
