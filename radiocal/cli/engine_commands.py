"""``radiocal run`` (a pipeline file into an output directory) and ``radiocal config`` (defaults).

Other command modules that need a cluster call :func:`make_engine` with their click context: it
builds the :class:`radiocal.Engine` from the group's global options (--scheduler, --cluster, ...).
"""

from __future__ import annotations

import sys

import click


def engine_options(ctx: click.Context) -> dict:
    """The group's cluster options as keyword arguments of :class:`radiocal.engine.cluster.Engine`."""
    root = ctx.find_root()
    return dict((root.obj or {}).get("engine_options", {}))


def make_engine(ctx: click.Context):
    """A not-yet-started Engine built from the global options (use it as a context manager)."""
    from radiocal.engine.cluster import Engine

    return Engine(**engine_options(ctx))


def refuse_writing_inputs(steps, outdir) -> None:
    """An output directory that is, holds or lies inside an input MS would change the input.
    The inputs are the source step's MS: another step's ``ms`` (the image step's
    ``calibrated.ms``) is a product of the run, inside its output directory."""
    from radiocal.ms.probe import refuse_overlap

    refuse_overlap(outdir, [p for step in steps if step.spec.kind == "source"
                            for p in step.config.ms])


def start_probing(steps) -> None:
    """Probe the first step's input MS in a child process from now on, while this process starts
    the engine (the convert step waits for the verdict before reading them)."""
    from radiocal.ms.probe import start_probe

    paths = getattr(steps[0].config, "ms", None) if steps and steps[0].spec.kind == "source" else None
    if paths:
        start_probe(list(paths))


def _flag(ctx: click.Context, name: str):
    return (ctx.find_root().obj or {}).get(name)


@click.command("run")
@click.argument("pipeline", metavar="PIPELINE.yaml")
@click.argument("inputs", nargs=-1, metavar="[IN.ms]...", type=click.Path(exists=True))
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False),
              help="Output directory (store.zarr, log.txt, provenance.json, products).")
@click.option("--set", "overrides", multiple=True, metavar="STEP.KEY=VALUE",
              help="Override a step option (repeatable); STEP is a step name or its 1-based position.")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr (default: when stderr is a terminal and not --quiet).")
@click.pass_context
def run(ctx, pipeline, inputs, outdir, overrides, progress):
    """Run PIPELINE.yaml (or a packaged pipeline's name) into OUTDIR, resuming a previous run.

    PIPELINE.yaml is a list of steps, each ``{step: NAME, option: value, ...}``; ``radiocal config``
    prints every step's options. IN.ms arguments set the first step's inputs. A re-run skips the
    steps already completed with the same options and inputs, and redoes the rest.
    """
    from radiocal.engine.pipeline import load_pipeline
    from radiocal.engine.runner import run_pipeline

    steps = load_pipeline(pipeline, overrides, inputs)
    refuse_writing_inputs(steps, outdir)
    start_probing(steps)
    quiet = bool(_flag(ctx, "quiet"))
    show = progress if progress is not None else (sys.stderr.isatty() and not quiet)
    with make_engine(ctx) as engine:
        document = run_pipeline(steps, outdir, engine, show_progress=show)
    if not quiet:
        ran = sum(1 for s in document["steps"] if s["status"] == "ran")
        click.echo(f"radiocal: {len(steps)} step(s) complete ({ran} run, {len(steps) - ran} "
                   f"already done) in {document['wall_time_s']:.1f} s -> {document['outdir']}",
                   err=True)


@click.command("config")
@click.argument("steps", nargs=-1, metavar="[STEP]...")
def config(steps):
    """Print the options of every step (or the named ones) with their defaults, as pipeline YAML."""
    from radiocal.engine.pipeline import defaults_yaml

    click.echo(defaults_yaml(list(steps) or None), nl=False)


commands = [run, config]
