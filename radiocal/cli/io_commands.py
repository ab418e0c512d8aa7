"""``radiocal convert``, ``export`` and ``info``: Measurement Sets in and out of stores."""

from __future__ import annotations

import json
import os

import click

from radiocal.cli.config_options import config_option
from radiocal.cli.engine_commands import make_engine
from radiocal.cli.selection_options import selection_from_options, selection_options
from radiocal.errors import InputError
from radiocal.io.step import ConvertConfig


def _read(inputs, selection, **options):
    from radiocal.io.ms import read_ms

    return read_ms(list(inputs), selection=selection, **options)


def _casacore_failure(err: RuntimeError, what: str) -> InputError:
    """casacore reports damaged tables as RuntimeError from inside dask tasks."""
    lines = str(err).strip().splitlines()
    return InputError(f"{what}: reading failed ({lines[0] if lines else type(err).__name__})")


@click.command()
@click.argument("inputs", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(), help="The zarr store to write.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output store.")
@config_option(ConvertConfig, "renumber_scans")
@config_option(ConvertConfig, "join_subbands")
@selection_options
@click.pass_context
def convert(ctx, inputs, output, overwrite, renumber_scans, join_subbands, **selection):
    """Convert one or many Measurement Sets (or directories of them) into a zarr store.

    Several MS are joined: sub-bands of the same integrations along frequency, then integrations
    along time (e.g. a directory of OVRO-LWA YYYYMMDD_HHMMSS_XXMHz.ms files becomes one dataset).
    The store is marked complete only when everything is written. Its chunks hold at most the
    run's chunk budget (``radiocal --chunk-mb N convert ...``).
    """
    from radiocal.io.probe import refuse_overlap
    from radiocal.io.store import write_store

    refuse_overlap(output, inputs)
    if os.path.exists(output) and not overwrite:
        raise click.UsageError(f"{output}: already exists (use --overwrite to replace it)")
    # The engine first: it sets the chunk budget the datasets are chunked by
    with make_engine(ctx):
        datasets = _read(inputs, selection_from_options(**selection), renumber_scans=renumber_scans,
                         join_subbands=join_subbands)
        try:
            write_store(datasets, output, overwrite=overwrite)
        except RuntimeError as err:
            raise _casacore_failure(err, ", ".join(inputs)) from None
    nvis = sum(ds.sizes["time"] * ds.sizes["baseline"] * ds.sizes["frequency"] * ds.sizes["polarization"]
               for ds in datasets)
    click.echo(f"wrote {output}: {len(datasets)} partitions, {nvis} visibility cells")


@click.command()
@click.argument("store", type=click.Path())
@click.argument("output", type=click.Path())
@click.option("--overwrite", is_flag=True, help="Replace an existing output MS.")
@selection_options
@click.pass_context
def export(ctx, store, output, overwrite, **selection):
    """Export a store to a new Measurement Set that CASA and WSClean open.

    Writes DATA, FLAG (the store's current flags), WEIGHT (and WEIGHT_SPECTRUM when weights vary
    across channels), UVW, and CORRECTED_DATA / MODEL_DATA when the store has them.
    """
    from radiocal.io.ms import write_ms
    from radiocal.io.selection import select
    from radiocal.io.probe import refuse_overlap
    from radiocal.io.store import open_store

    refuse_overlap(output, [store])
    if os.path.exists(output) and not overwrite:
        raise click.UsageError(f"{output}: already exists (use --overwrite to replace it)")
    datasets = open_store(store)
    sel = selection_from_options(**selection)
    if any(v is not None for v in selection.values()):
        datasets = select(datasets, sel)
    with make_engine(ctx):
        write_ms(datasets, output, overwrite=overwrite)
    click.echo(f"wrote {output}: {len(datasets)} partitions")


@click.command()
@click.argument("path", type=click.Path())
@click.option("--no-flags", is_flag=True, help="Skip the pass over the flags (faster on large data).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def info(path, no_flags, as_json):
    """Summarise a Measurement Set or a store, like CASA's listobs."""
    from radiocal.io.ms import read_ms
    from radiocal.io.store import is_store, open_store
    from radiocal.io.summary import format_summary, summarize

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
