"""``radiocal flag`` (flag a store in place) and ``radiocal flags`` (versions and summary)."""

from __future__ import annotations

import dataclasses

import click

from radiocal.cli.common import split_names, step_config
from radiocal.cli.config_options import config_options
from radiocal.cli.engine_commands import make_engine
from radiocal.flagging.config import FlagConfig
from radiocal.select.config import SelectionConfig

SELECTION_PARTS = tuple(f.name for f in dataclasses.fields(SelectionConfig))


@click.command()
@click.argument("store", type=click.Path())
@config_options(FlagConfig,
                strategy={"metavar": "FILE"},
                propagate_correlations={"decls": ("--propagate/--no-propagate",),
                                        "show_default": False},
                version_name={"metavar": "NAME"},
                bad_antennas={"metavar": "NAME[,NAME...]"},
                bad_antennas_file={"metavar": "FILE"},
                **{name: {"metavar": "SEL"} for name in SELECTION_PARTS})
@click.option("--show-strategy", is_flag=True,
              help="Print the strategy (all parameters, as YAML) and exit; edit it to make your own.")
@click.pass_context
def flag(ctx, store, show_strategy, **options):
    """Flag RFI and bad data in STORE in place (the flag step; its options are FlagConfig's, as
    in pipeline YAML). The previous flags are saved as a flag version first.

    The default strategy is the one shipped for the data's telescope (TELESCOPE_NAME): it clips
    NaN/Inf/zero-weight/zero samples, flags shadowed antennas and dead or outlying antennas, then
    finds RFI per baseline along frequency in short scans (with statistics across the array) or
    with SumThreshold and a sliding-window MAD test in long ones. With selection options, flags
    change only inside the selection.
    """
    from radiocal.flagging.step import flag_store, per_telescope, strategy_for
    from radiocal.flagging.strategy import load_strategy, strategy_to_yaml

    options["bad_antennas"] = tuple(split_names(options["bad_antennas"]))
    config = step_config("flag", options)
    if show_strategy:
        click.echo(strategy_to_yaml(strategy_for(config, _telescope(store))), nl=False)
        return

    def announced(telescope):
        picked = strategy_for(config, telescope)
        click.echo(f"telescope {telescope!r}: strategy {picked.name!r}")
        return picked

    selection = config.selection()
    load_strategy(config.strategy)   # a bad strategy file is an error before the store is touched
    config.antennas()                # and so is an unreadable bad-antenna list
    with make_engine(ctx):   # the run's cluster, threads and chunk budget (--workers, --chunk-mb)
        report = flag_store(store, per_telescope(announced), selection=selection,
                            version_name=config.version_name or None,
                            save_version=config.save_version)
    (b, total), (a, _) = report["before"], report["after"]
    if report["version"] is not None:
        click.echo(f"saved previous flags as version {report['version']!r}")
    for key, value in report["counts"].items():
        click.echo(f"  {key:<24} {value:>12} newly flagged")
    pct = (lambda n: 100.0 * n / total if total else 0.0)
    click.echo(f"flagged {pct(b):.2f}% -> {pct(a):.2f}% of {total} samples")


def _telescope(store):
    """TELESCOPE_NAME of a store's first partition (None when there is no store there)."""
    from radiocal.store import schema as S
    from radiocal.store.zarr_store import is_store, open_store

    if not is_store(store):
        return None
    datasets = open_store(store)
    return datasets[0].attrs.get(S.ATTR_TELESCOPE) if datasets else None


@click.group()
def flags():
    """Flag versions (CASA flagmanager) and flag summaries of a store."""


@flags.command("list")
@click.argument("store", type=click.Path())
def list_versions(store):
    """List the flag versions saved in STORE."""
    from radiocal.store.flag_versions import list_flag_versions

    versions = list_flag_versions(store)
    if not versions:
        click.echo("no flag versions")
    for v in versions:
        click.echo(f"{v['name']:<24} {v['created']:<34} {v['comment']}")


@flags.command("save")
@click.argument("store", type=click.Path())
@click.argument("name")
@click.option("--comment", default="", help="A note stored with the version.")
@click.option("--overwrite", is_flag=True, help="Replace an existing version of that name.")
def save(store, name, comment, overwrite):
    """Save STORE's current flags as version NAME."""
    from radiocal.store.flag_versions import save_flag_version

    save_flag_version(store, name, comment, overwrite=overwrite)
    click.echo(f"saved flag version {name!r}")


@flags.command("restore")
@click.argument("store", type=click.Path())
@click.argument("name")
@click.option("--merge", type=click.Choice(["replace", "or", "and"]), default="replace",
              show_default=True, help="Replace the current flags or combine them with the version.")
def restore(store, name, merge):
    """Restore flag version NAME into STORE."""
    from radiocal.store.flag_versions import restore_flag_version

    parts = restore_flag_version(store, name, merge)
    click.echo(f"restored flag version {name!r} ({merge}) into {len(parts)} partitions")


@flags.command("delete")
@click.argument("store", type=click.Path())
@click.argument("name")
def delete(store, name):
    """Delete flag version NAME from STORE."""
    from radiocal.store.flag_versions import delete_flag_version

    delete_flag_version(store, name)
    click.echo(f"deleted flag version {name!r}")


@flags.command("summary")
@click.argument("store", type=click.Path())
@click.option("--by", "axes", default="antenna,field,spw,scan,correlation", show_default=True,
              help="Comma-separated breakdowns to show.")
@click.pass_context
def summary(ctx, store, axes):
    """Flagged fractions by antenna, field, spw, scan and correlation (like flagdata summary)."""
    from radiocal.errors import ConfigError
    from radiocal.flagging.summary import SUMMARY_AXES, flag_summary, format_summary
    from radiocal.store.zarr_store import open_store

    chosen = tuple(a.strip() for a in axes.split(",") if a.strip())
    bad = sorted(set(chosen) - set(SUMMARY_AXES))
    if bad:
        raise ConfigError(f"unknown --by {', '.join(bad)} (choose from {', '.join(SUMMARY_AXES)})")
    with make_engine(ctx):
        click.echo(format_summary(flag_summary(open_store(store)), chosen))


commands = [flag, flags]
