"""The ``radiocal`` command: a click group whose subcommands live in sibling modules.

Errors the user can fix (:class:`radiocal.errors.RadiocalError`, click usage errors, the file
system's OSError) print one line to stderr and exit non-zero; anything else is an internal error,
also one line (exit 70). ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import atexit
import gc
import logging
import sys

import click

from radiocal import __version__
from radiocal.budget import CHUNK_MB_HELP, mib_to_bytes
from radiocal.errors import RadiocalError

# Modules that each define ``commands`` (a list of click commands) to attach to the group.
_COMMAND_MODULES = (
    "radiocal.cli.ms_commands",
    "radiocal.cli.engine_commands",
    "radiocal.cli.flag_commands",
    "radiocal.cli.calibration_commands",
    "radiocal.cli.dynspec_commands",
    "radiocal.cli.pipeline_commands",
    "radiocal.cli.imaging_commands",
    "radiocal.cli.lwa_commands",
)

# After the exit handlers the interpreter tears its modules down, running full garbage
# collections over everything still alive: in a `radiocal convert` process (~1500 modules, the
# run's graphs and datasets) that took 0.5-0.7 CPU-s and 1.6-3.4 s of wall time (load 9-13)
# after the command had finished, 0.15 s with this. Freezing moves the survivors out of the
# collector's reach; they are still freed as their references go, only unreachable cycles are
# left to the operating system, as an exiting process leaves everything. Registered first, so
# it runs after the exit handlers of what the command imports (distributed's, say).
atexit.register(gc.freeze)


def _size(ctx, param, value):
    """A memory size as dask reads it (4GB, 512MiB), checked before any cluster starts."""
    if value is None:
        return value
    from dask.utils import parse_bytes

    try:
        parse_bytes(value)
    except (ValueError, TypeError):
        raise click.BadParameter(f"{value!r} is not a size such as 4GB or 512MiB") from None
    return value


class _LazyGroup(click.Group):
    """The group, importing command modules (in ``_COMMAND_MODULES`` order) only until the one
    holding the invoked command: `radiocal convert` then imports no flagging, calibration or
    imaging code (0.7 -> 0.2 CPU-s of imports before the command runs). ``commands``, help and
    completion see every command."""

    def __init__(self, *args, **kwargs):
        self._unloaded = list(_COMMAND_MODULES)
        super().__init__(*args, **kwargs)

    @property
    def commands(self) -> dict:
        self._load_until(None)
        return self._commands

    @commands.setter
    def commands(self, value: dict) -> None:
        self._commands = value

    def get_command(self, ctx, cmd_name):
        self._load_until(cmd_name)
        return self._commands.get(cmd_name)

    def _load_until(self, name: str | None) -> None:
        import importlib
        import importlib.util

        while self._unloaded and (name is None or name not in self._commands):
            module_name = self._unloaded.pop(0)
            if importlib.util.find_spec(module_name) is None:
                continue
            for command in importlib.import_module(module_name).commands:
                self._commands[command.name] = command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]},
             invoke_without_command=True)
@click.version_option(__version__, prog_name="radiocal")
@click.option("--debug", is_flag=True, help="Show full tracebacks on errors.")
@click.option("-v", "--verbose", count=True, help="Log progress (-v) or everything (-vv) to stderr.")
@click.option("-q", "--quiet", is_flag=True, help="Only errors on stderr.")
@click.option("--scheduler", metavar="ADDRESS",
              help="Use a running dask scheduler (tcp://HOST:PORT), or 'threads'/'sync' to run "
                   "in this process. Default: start a local cluster.")
@click.option("--cluster", type=click.Choice(["local", "slurm", "pbs", "sge"]), default="local",
              show_default=True, help="Start workers locally or submit them as batch jobs.")
@click.option("--workers", type=click.IntRange(min=1),
              help="Local worker processes (default: sized to the machine).")
@click.option("--worker-processes/--worker-threads", "processes", default=None,
              help="Local workers as processes, or as threads of this process (default: threads "
                   "on machines with up to 4 cores unless --workers is given, processes beyond).")
@click.option("--threads-per-worker", type=click.IntRange(min=1),
              help="Threads per local worker (default: cores / workers).")
@click.option("--memory-limit", metavar="SIZE", callback=_size,
              help="Memory limit per local worker, e.g. 4GB (default: available / workers).")
@click.option("--jobs", type=click.IntRange(min=1), default=1, show_default=True,
              help="Batch jobs to submit (--cluster slurm|pbs|sge).")
@click.option("--cores", type=click.IntRange(min=1), help="Cores per batch job.")
@click.option("--memory", metavar="SIZE", callback=_size, help="Memory per batch job, e.g. 16GB.")
@click.option("--walltime", metavar="HH:MM:SS", help="Wall time per batch job.")
@click.option("--queue", help="Batch queue / partition.")
@click.option("--interface", metavar="NAME",
              help="Network interface the batch-queue scheduler and workers listen on, one the "
                   "compute nodes reach (ib0; lo for a SLURM of this machine alone). Default: "
                   "dask-jobqueue's config, else every interface.")
@click.option("--dry-run-jobscript", is_flag=True,
              help="Print the batch script that would be submitted, and exit without submitting.")
@click.option("--chunk-mb", type=click.FloatRange(min=0, min_open=True), help=CHUNK_MB_HELP + ".")
@click.option("--dashboard/--no-dashboard", default=False, show_default=True,
              help="Serve the dask dashboard (on 127.0.0.1 for a local cluster).")
@click.pass_context
def cli(ctx: click.Context, debug: bool, verbose: int, quiet: bool, scheduler, cluster, workers,
        processes, threads_per_worker, memory_limit, jobs, cores, memory, walltime, queue, interface,
        dry_run_jobscript, chunk_mb, dashboard) -> None:
    """Measurement Sets to calibrated data and dynamic spectra, on a laptop or a dask cluster."""
    ctx.ensure_object(dict)
    ctx.obj["debug"] = debug
    ctx.obj["quiet"] = quiet
    ctx.obj["verbose"] = verbose
    # Warnings by default: a command's own output is the result; -v shows what the engine does
    level = logging.ERROR if quiet else [logging.WARNING, logging.INFO, logging.DEBUG][min(verbose, 2)]
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.setLevel(level)  # a run's log file may ask for more than the terminal shows
    ctx.obj["engine_options"] = dict(
        scheduler=scheduler, cluster=cluster, workers=workers, processes=processes,
        threads_per_worker=threads_per_worker, memory_limit=memory_limit, jobs=jobs, cores=cores,
        memory=memory, walltime=walltime, queue=queue, interface=interface, dashboard=dashboard,
        chunk_bytes=None if chunk_mb is None else mib_to_bytes(chunk_mb))
    if dry_run_jobscript:
        from radiocal.engine.cluster import Engine

        click.echo(Engine(**ctx.obj["engine_options"]).job_script())
        ctx.exit(0)
    if ctx.invoked_subcommand is None:
        click.echo(ctx.get_help())


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
    except OSError as err:
        # The file system said no (permissions, a file where a directory should be, no space):
        # the user's to fix, and the path says where.
        if debug:
            raise
        where = f"{err.filename}: " if err.filename else ""
        click.echo(f"radiocal: error: {where}{err.strerror or err}", err=True)
        sys.exit(1)
    except Exception as err:  # noqa: BLE001 - the last line of defence: one line, never a traceback
        if debug:
            raise
        text = " ".join(str(err).split())[:300] or "no message"
        click.echo(f"radiocal: internal error: {type(err).__name__}: {text} "
                   f"(rerun with --debug for the traceback, and please report it)", err=True)
        sys.exit(70)
    if isinstance(status, int) and status:
        sys.exit(status)


if __name__ == "__main__":
    main()
