"""``radiocal calibrate``, ``solve delay|bandpass|gain``, ``apply`` and ``caltable export|import``.

Tables live in the store (``STORE/caltables/<name>``); wherever a table is expected, a name in
the store or a path (zarr table or CASA calibration table) is accepted.
"""

from __future__ import annotations

import os

import click

from radiocal.calibration.config import SOLVE_TYPES, CalibrateConfig, SolveConfig
from radiocal.calibration.config import ApplyConfig, SkyBandpassConfig
from radiocal.cli.common import run_step, split_names, step_config
from radiocal.cli.config_options import config_option, config_options
from radiocal.cli.engine_commands import make_engine

from radiocal.errors import InputError



def _table_path(store, name_or_path) -> str:
    """The path of a table given by its name in the store or by a path."""
    from radiocal.store.caltables import CALTABLES_GROUP

    inside = os.path.join(store, CALTABLES_GROUP, name_or_path) if store else None
    if inside and os.path.isdir(inside):
        return inside
    if os.path.isdir(name_or_path):
        return name_or_path
    raise InputError(f"no calibration table {name_or_path!r} (neither in {store} nor a path)")


def _table(store, name_or_path):
    from radiocal.calibration.step import load_table

    return load_table(_table_path(store, name_or_path))


def _report_counts(name, table):
    from radiocal.calibration.step import solution_counts

    for line in solution_counts(name, table):
        click.echo(line)


def _write_corrected(datasets, store):
    from radiocal.store import schema as S
    from radiocal.store.zarr_store import update_store

    update_store(datasets, store, [S.VISIBILITY_CORRECTED, S.FLAG, S.WEIGHT])


# What a command that fills the roles left out (roles_from_data) adds to their help
ROLES_FROM_DATA = "default: from the data"


def roles_from_data(ctx, read, fluxcal, bpcal, phasecal, targets, fluxcal_model):
    """The calibrator and target roles the user left out, from the data's scan intents and
    field names (:mod:`radiocal.calibration.roles`); printed, and logged, with how each was
    chosen."""
    import logging

    from radiocal.calibration.roles import infer_roles, require
    from radiocal.store import schema

    datasets = read()
    manual = bool(fluxcal_model) and fluxcal_model.strip()[:1].isdigit()
    roles = require(infer_roles(datasets, fluxcal, bpcal, phasecal, targets, flux_model_given=manual),
                    sorted({str(ds.attrs.get(schema.ATTR_FIELD_NAME)) for ds in datasets}))
    logging.getLogger("radiocal.roles").info(roles.describe())
    if not (ctx.find_root().obj or {}).get("quiet"):
        click.echo(roles.describe() + " -- override with --fluxcal/--bpcal/--phasecal/--target")
    return roles


@click.command()
@click.argument("store", type=click.Path(exists=True))
@config_options(CalibrateConfig, fluxcal={"note": ROLES_FROM_DATA},
                phasecal={"note": ROLES_FROM_DATA},
                targets={"decls": ("--target",), "metavar": "NAME[,NAME...]",
                         "note": "default, when a calibrator is left out: from the data"})
@click.option("--casa-tables", type=click.Path(), default=None,
              help="Also write the tables in CASA format into this directory.")
@click.pass_context
def calibrate(ctx, store, casa_tables, **options):
    """Standard phase-referencing calibration of STORE, in place (the calibrate step; its
    options are CalibrateConfig's, as in pipeline YAML).

    Pre-bandpass phase (int), bandpass (inf, combine scan, solnorm), phases (int and inf),
    amplitudes (ap, inf; and ap per --cal-amp-solint for the calibrators themselves), fluxscale,
    then apply: calibrators with their own int phases and amplitudes, targets with the phase
    calibrator's inf phases and amplitudes. Writes VISIBILITY_CORRECTED, FLAG and WEIGHT, and the
    tables to STORE/caltables. Calibrators left out are chosen from the data's scan intents.
    """
    from radiocal.store.zarr_store import open_store

    datasets = open_store(store)
    options["targets"] = tuple(split_names(options["targets"]))
    if not (options["fluxcal"] and options["phasecal"]):
        roles = roles_from_data(ctx, lambda: datasets, options["fluxcal"], options["bpcal"],
                                options["phasecal"], list(options["targets"]),
                                options["fluxcal_model"])
        options.update(fluxcal=roles.fluxcal, bpcal=roles.bpcal, phasecal=roles.phasecal,
                       targets=tuple(roles.targets))
    config = step_config("calibrate", options)
    with make_engine(ctx) as engine:
        out = run_step(engine, "calibrate", datasets, config, store=store, outdir=casa_tables,
                       report=True)
        _write_corrected(out, store)
    click.echo(f"calibrated {len(out)} partitions of {store}")


@click.command()
@click.argument("kind", type=click.Choice(sorted(SOLVE_TYPES)))
@click.argument("store", type=click.Path(exists=True))
@config_options(SolveConfig, skip=("kind",),
                output={"decls": ("-o",), "required": True, "show_default": False},
                field={"metavar": "NAME[,NAME...]"})
@click.option("--overwrite", is_flag=True, help="Replace an existing table of that name.")
@click.pass_context
def solve(ctx, kind, store, overwrite, **options):
    """Solve a delay, bandpass or gain table on STORE's calibrator data (the solve step; its
    options are SolveConfig's, as in pipeline YAML)."""
    from radiocal.errors import OutputExistsError
    from radiocal.store.caltables import CALTABLES_GROUP
    from radiocal.store.zarr_store import open_store

    output = options["output"]
    if os.path.exists(os.path.join(store, CALTABLES_GROUP, output)) and not overwrite:
        raise OutputExistsError(f"table {output!r} exists in {store} (--overwrite replaces it)")
    options.update(kind=kind, field=tuple(split_names(options["field"])),
                   gaintable=tuple(_table_path(store, t) for t in split_names(options["gaintable"])))
    config = step_config("solve", options)
    with make_engine(ctx) as engine:
        run_step(engine, "solve", open_store(store), config, store=store, report=True)


@click.command("apply")
@click.argument("store", type=click.Path(exists=True))
@config_options(ApplyConfig, gaintable={"required": True, "metavar": "TABLE[,TABLE...]",
                                        "help": "Tables in order (names in the store or paths)."},
                field={"metavar": "NAME[,NAME...]"})
@click.pass_context
def apply_command(ctx, store, **options):
    """Apply calibration tables to STORE (the applycal step; its options are ApplyConfig's, as
    in pipeline YAML). Writes VISIBILITY_CORRECTED, FLAG, WEIGHT."""
    from radiocal.store.zarr_store import open_store

    # tables, windows and fields may come comma-separated (--spwmap 0,0); gainfield '' is a value
    options.update(gaintable=tuple(_table_path(store, t) for t in split_names(options["gaintable"])),
                   spwmap=tuple(split_names(options["spwmap"])),
                   field=tuple(split_names(options["field"])))
    config = step_config("applycal", options)
    datasets = open_store(store)
    with make_engine(ctx) as engine:
        out = run_step(engine, "applycal", datasets, config, store=store)
        # the partitions of other fields pass unchanged, maybe without VISIBILITY_CORRECTED
        applied = [new for old, new in zip(datasets, out) if new is not old]
        _write_corrected(applied, store)
    click.echo(f"applied {len(config.gaintable)} table(s) to {len(applied)} partitions of {store}")


@click.group()
def caltable():
    """Calibration tables: export to / import from CASA format, show a summary."""


@caltable.command("export")
@click.argument("store", type=click.Path(exists=True))
@click.argument("name")
@click.argument("output", type=click.Path())
@click.option("--overwrite", is_flag=True)
def export_table(store, name, output, overwrite):
    """Write table NAME of STORE as a CASA calibration table OUTPUT."""
    from radiocal.ms import casa_caltables

    casa_caltables.write_casa_table(_table(store, name), output, overwrite=overwrite)
    click.echo(f"wrote {output}")


@caltable.command("import")
@click.argument("casa_table", type=click.Path(exists=True))
@click.argument("store", type=click.Path(exists=True))
@click.argument("name")
@click.option("--overwrite", is_flag=True)
def import_table(casa_table, store, name, overwrite):
    """Read CASA_TABLE into STORE as table NAME."""
    from radiocal.ms import casa_caltables
    from radiocal.store import caltables as C

    table = casa_caltables.read_casa_table(casa_table)
    C.write_table_zarr(table, os.path.join(store, C.CALTABLES_GROUP, name), overwrite=overwrite)
    click.echo(f"imported {casa_table} as {name} ({C.table_type(table)}, {len(table)} spw)")


@caltable.command("show")
@click.argument("store", type=click.Path(exists=True))
@click.argument("name")
def show_table(store, name):
    """Summarise table NAME (a name in STORE or a path)."""
    from radiocal.store import caltables as C

    table = _table(store, name)
    for tds in table:
        click.echo(f"{C.table_type(table)} table, spw {tds.attrs.get('spw_id')}: "
                   f"{tds.sizes[C.SOL_TIME]} solution times x {tds.sizes['antenna']} antennas x "
                   f"{tds.sizes[C.SOL_FREQ]} channels x hands "
                   f"{[str(h) for h in tds[C.HAND].values]}; "
                   f"{100 * float(tds[C.SOL_FLAG].values.mean()):.1f}% flagged")
    _report_counts(name, table)


def _save(store, name, table, overwrite=True):
    from radiocal.store import caltables as C

    C.write_table_zarr(table, os.path.join(store, C.CALTABLES_GROUP, name), overwrite=overwrite)


@caltable.command("flag-outliers")
@click.argument("store", type=click.Path(exists=True))
@click.argument("name")
@click.option("-o", "--output", default=None, help="New table name (default: replace NAME).")
@config_option(SkyBandpassConfig, "antenna_threshold")
@config_option(SkyBandpassConfig, "antenna_min_deviation")
@config_option(SkyBandpassConfig, "channel_threshold")
@config_option(SkyBandpassConfig, "interpolate", decls=("--fill/--no-fill",))
def flag_outliers(store, name, output, antenna_threshold, antenna_min_deviation,
                  channel_threshold, interpolate):
    """Flag outlier antennas and channels of bandpass table NAME (OVRO-LWA post-processing, as
    the lwa flow's sky_bandpass step does with the same options)."""
    from radiocal.calibration.postprocess import (flag_bandpass_outliers,
                                                  interpolate_flagged_channels)

    table, report = flag_bandpass_outliers(_table(store, name),
                                           antenna_threshold=antenna_threshold,
                                           channel_threshold=channel_threshold,
                                           antenna_min_deviation=antenna_min_deviation)
    for spw, ants in report["antennas"].items():
        listed = ", ".join(f"{a}/{h}" for a, h in ants) or "none"
        click.echo(f"spw {spw}: outlier antennas {listed}; "
                   f"{report['channels'][spw]} channel solutions flagged")
    if interpolate:
        table = interpolate_flagged_channels(table)
    _save(store, output or name, table)


@caltable.command("compare-delays")
@click.argument("store", type=click.Path(exists=True))
@click.argument("name")
@click.argument("reference")
@config_option(SkyBandpassConfig, "delay_threshold_ns", decls=("--threshold-ns",))
@click.option("-o", "--output", default=None, help="New table name (default: replace NAME).")
def compare_delays_command(store, name, reference, delay_threshold_ns, output):
    """Flag antennas of delay table NAME that moved relative to REFERENCE (name or path)."""
    from radiocal.calibration.postprocess import compare_delays

    table, report = compare_delays(_table(store, name), _table(store, reference),
                                   threshold=delay_threshold_ns * 1e-9)
    for spw, moved in report.items():
        for (ant, hand), diff in sorted(moved.items()):
            click.echo(f"spw {spw}: {ant}/{hand} moved by {diff:+.2f} ns")
        if not moved:
            click.echo(f"spw {spw}: no antenna moved by more than {delay_threshold_ns} ns")
    _save(store, output or name, table)


commands = [calibrate, solve, apply_command, caltable]
