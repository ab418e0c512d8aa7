"""The ``radiocal`` command: a click group whose subcommands live in sibling modules.

Errors the user can fix (:class:`radiocal.errors.RadiocalError`, click usage errors) print one line
to stderr and exit non-zero; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import logging
import sys

import click

from radiocal import __version__
from radiocal.errors import RadiocalError

# Modules that each define ``commands`` (a list of click commands) to attach to the group.
_COMMAND_MODULES = (
    "radiocal.cli.io_commands",
    "radiocal.cli.engine_commands",
    "radiocal.cli.flag_commands",
    "radiocal.cli.calibration_commands",
    "radiocal.cli.dynspec_commands",
    "radiocal.cli.pipeline_commands",
)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="radiocal")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("-v", "--verbose", count=True, help="More log output (repeat for more).")
@click.option("-q", "--quiet", is_flag=True, help="Only warnings and errors.")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int, quiet: bool) -> None:
    """Measurement Sets to calibrated data and dynamic spectra, on a laptop or a dask cluster."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    level = logging.WARNING if quiet else (logging.INFO if verbose < 2 else logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _attach_commands() -> None:
    import importlib.util

    for module_name in _COMMAND_MODULES:
        if importlib.util.find_spec(module_name) is None:
            continue
        for command in importlib.import_module(module_name).commands:
            cli.add_command(command)


_attach_commands()


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the group and turn user errors into one line."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    try:
        status = cli.main(args=args, prog_name="radiocal", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("radiocal: interrupted", err=True)
        sys.exit(130)
    except click.ClickException as err:
        if debug:
            raise
        click.echo(f"radiocal: {err.format_message()}", err=True)
        sys.exit(err.exit_code)
    except RadiocalError as err:
        if debug:
            raise
        click.echo(f"radiocal: error: {err}", err=True)
        sys.exit(err.exit_code)
    except KeyboardInterrupt:
        click.echo("radiocal: interrupted", err=True)
        sys.exit(130)
    if isinstance(status, int) and status:
        sys.exit(status)


if __name__ == "__main__":
    main()
