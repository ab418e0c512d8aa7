"""``radiocal convert``, ``export`` and ``info``: Measurement Sets in and out of stores."""

from __future__ import annotations

import dataclasses
import json
import os

import click

from radiocal.cli.common import run_step, step_config
from radiocal.cli.config_options import config_options
from radiocal.cli.engine_commands import make_engine
from radiocal.errors import InputError
from radiocal.ms.step import ConvertConfig, ExportConfig
from radiocal.select.config import SelectionConfig

# the selection options read as the other commands' (--field SEL ...)
_SELECTION = {f.name: {"metavar": "SEL"} for f in dataclasses.fields(SelectionConfig)}


def _casacore_failure(err: RuntimeError, what: str) -> InputError:
    """casacore reports damaged tables as RuntimeError from inside dask tasks."""
    lines = str(err).strip().splitlines()
    return InputError(f"{what}: reading failed ({lines[0] if lines else type(err).__name__})")


@click.command()
@click.argument("ms", nargs=-1, required=True, type=click.Path(), metavar="IN.ms...")
@click.option("-o", "--output", required=True, type=click.Path(), help="The zarr store to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output store.")
@config_options(ConvertConfig, skip=("ms",), **_SELECTION)
@click.pass_context
def convert(ctx, ms, output, overwrite, **options):
    """Convert one or many Measurement Sets (or directories of them) into a zarr store (the
    convert step; its options are ConvertConfig's, as in pipeline YAML).

    Several MS are joined: sub-bands of the same integrations along frequency, then integrations
    along time (e.g. a directory of OVRO-LWA YYYYMMDD_HHMMSS_XXMHz.ms files becomes one dataset;
    their integrations, each phased to its own zenith, are rephased to the first one's, or to
    --phase-centre).
    The store is marked complete only when everything is written. Its chunks hold at most the
    run's chunk budget (``radiocal --chunk-mb N convert ...``) or --chunk-mb.
    """
    from radiocal.ms.probe import refuse_overlap, start_probe

    refuse_overlap(output, ms)
    if os.path.exists(output) and not overwrite:
        raise click.UsageError(f"{output}: already exists (use --overwrite to replace it)")
    start_probe(ms)   # in a child process, while this one imports and starts the engine
    from radiocal.store.zarr_store import write_store

    config = step_config("convert", dict(options, ms=ms))
    # The engine first: it sets the chunk budget the datasets are chunked by
    with make_engine(ctx) as engine:
        datasets = run_step(engine, "convert", [], config)
        try:
            write_store(datasets, output, overwrite=overwrite)
        except RuntimeError as err:
            raise _casacore_failure(err, ", ".join(ms)) from None
    nvis = sum(ds.sizes["time"] * ds.sizes["baseline"] * ds.sizes["frequency"] * ds.sizes["polarization"]
               for ds in datasets)
    click.echo(f"wrote {output}: {len(datasets)} partitions, {nvis} visibility cells")


@click.command()
@click.argument("store", type=click.Path())
@click.argument("path", type=click.Path(), metavar="OUTPUT")
@config_options(ExportConfig, skip=("path",),
                overwrite={"help": "Replace an existing output MS."}, **_SELECTION)
@click.pass_context
def export(ctx, store, path, **options):
    """Export a store to a new Measurement Set that CASA and WSClean open (the export step; its
    options are ExportConfig's, as in pipeline YAML).

    Writes DATA, FLAG (the store's current flags), WEIGHT (and WEIGHT_SPECTRUM when weights vary
    across channels), UVW, and CORRECTED_DATA / MODEL_DATA when the store has them.
    """
    from radiocal.ms.probe import refuse_overlap
    from radiocal.store.zarr_store import open_store

    refuse_overlap(path, [store])
    if os.path.exists(path) and not options["overwrite"]:
        raise click.UsageError(f"{path}: already exists (use --overwrite to replace it)")
    config = step_config("export", dict(options, path=os.path.abspath(path)))
    datasets = open_store(store)
    with make_engine(ctx) as engine:
        run_step(engine, "export", datasets, config, outdir=os.path.dirname(os.path.abspath(path)),
                 inputs=[store])
    click.echo(f"wrote {path}: {len(datasets)} partitions")


@click.command()
@click.argument("path", type=click.Path())
@click.option("--no-flags", is_flag=True, help="Skip the pass over the flags (faster on large data).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(path, no_flags, as_json):
    """Summarise a Measurement Set or a store, like CASA's listobs."""
    from radiocal.ms.read import read_ms
    from radiocal.store.zarr_store import is_store, open_store
    from radiocal.ms.summary import format_summary, summarize

    datasets = open_store(path) if is_store(path) else read_ms(path)
    try:
        summary = summarize(datasets, with_flags=not no_flags)
    except RuntimeError as err:
        raise _casacore_failure(err, path) from None
    if as_json:
        click.echo(json.dumps(summary, indent=2))
    else:
        click.echo(format_summary(summary, path))


commands = [convert, export, info]
