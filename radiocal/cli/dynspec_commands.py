"""``radiocal dynspec`` (a target's dynamic spectrum from a store) and ``radiocal plot``."""

from __future__ import annotations

import os

import click

from radiocal.cli.common import run_step, step_config
from radiocal.cli.config_options import config_options
from radiocal.dynspec.config import DynspecConfig


def _open_inputs(path: str, field: str):
    from radiocal.dynspec.dataset import names_field
    from radiocal.errors import InputError
    from radiocal.store.zarr_store import is_store, open_store, partition_attrs

    if is_store(path):
        # Only the field's partitions: opening is ~3 ms a partition, and a scan-rich store's
        # calibrator scans are hundreds. None of them: all, so the step names the fields there are.
        chosen = [name for name, attrs in partition_attrs(path).items() if names_field(attrs, field)]
        return open_store(path, partitions=chosen or None)
    if os.path.isfile(os.path.join(path, "table.dat")):
        from radiocal.ms.read import read_ms

        return read_ms([path])
    raise InputError(f"{path}: neither a radiocal store nor a Measurement Set")


@click.command("dynspec")
@click.argument("store", type=click.Path(exists=True))
@config_options(DynspecConfig,
                field={"required": True},
                output={"decls": ("-o",), "required": True, "show_default": False,
                        "help": "Dynamic spectrum zarr to write."},
                exclude_baselines={"decls": ("--exclude-baseline",), "metavar": "ANT1&ANT2|ANT"})
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.pass_context
def dynspec(ctx, store, overwrite, **options):
    """Dynamic spectrum of a target field: average over baselines into time x frequency (the
    dynspec step; its options are DynspecConfig's, as in pipeline YAML).

    STORE is a radiocal store or a Measurement Set. Uses calibrated data (VISIBILITY_CORRECTED)
    when it has them, else the raw DATA, and says which. With --skymodel the background sky is
    predicted and subtracted first (uvsub). Writes I, V, the parallel hands, V/I (as V_over_I),
    each with *_err, and light curves.
    """
    from radiocal.cli.engine_commands import make_engine
    from radiocal.dynspec.dataset import open_dynspec
    from radiocal.ms.probe import refuse_overlap

    output = os.path.abspath(options["output"])
    refuse_overlap(output, [store])
    if os.path.exists(output) and not overwrite:
        raise click.UsageError(f"{options['output']}: already exists (use --overwrite to replace it)")
    config = step_config("dynspec", dict(options, output=output))
    datasets = _open_inputs(store, config.field)
    with make_engine(ctx) as engine:
        run_step(engine, "dynspec", datasets, config, outdir=os.path.dirname(output), inputs=[store])
    spectrum = open_dynspec(output)
    column = spectrum.attrs["data_column"]
    what = "calibrated data (VISIBILITY_CORRECTED)" if column == "VISIBILITY_CORRECTED" else \
        "uncalibrated DATA (no VISIBILITY_CORRECTED in the store)"
    click.echo(f"dynspec: field {spectrum.attrs['field_name']}: using {what}"
               f"{', minus the sky model' if spectrum.attrs['model_subtracted'] else ''}")
    click.echo(f"wrote {options['output']}: {spectrum.sizes['time']} times x "
               f"{spectrum.sizes['frequency']} channels, products "
               f"{', '.join(spectrum.attrs['products'])} in {spectrum.attrs['units']}")


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
