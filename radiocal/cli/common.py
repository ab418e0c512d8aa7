"""What several commands share: comma-separated name lists, and running a pipeline of entries
with the engine and printing how it ended (``phaseref``, ``demo``, ``lwa``)."""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import click

SET_HELP = "Override a step option (repeatable), as in `radiocal run`."


def split_names(values) -> list[str]:
    """``("a,b", "c")`` -> ``["a", "b", "c"]``: a repeatable option of comma-separated names."""
    return [v.strip() for value in values or () for v in value.split(",") if v.strip()]


def run_entries(ctx, entries, outdir, overrides=(), progress=None) -> dict:
    """Run pipeline ``entries`` (YAML-like dicts) into ``outdir`` on the command's engine."""
    from radiocal.cli.engine_commands import make_engine, refuse_writing_inputs, start_probing
    from radiocal.engine.pipeline import load_pipeline

    steps = load_pipeline(entries, overrides)
    refuse_writing_inputs(steps, outdir)
    start_probing(steps)
    from radiocal.engine.runner import run_pipeline

    quiet = bool((ctx.find_root().obj or {}).get("quiet"))
    show = progress if progress is not None else (sys.stderr.isatty() and not quiet)
    with make_engine(ctx) as engine:
        return run_pipeline(steps, outdir, engine, show_progress=show)


def _summary(outdir: Path) -> list[str]:
    """A few lines on what the run found, from its qa.json."""
    import json

    qa_path = outdir / "qa.json"
    if not qa_path.exists():
        return []
    qa = json.loads(qa_path.read_text())
    lines = [f"status: {qa['status']}"]
    flagged = qa["flagged"]
    lines.append(f"flagged: {100 * flagged['final']:.1f}% of the data after the run"
                 + (f" ({100 * flagged['input']:.1f}% in the input)" if flagged.get("input") is not None
                    else ""))
    for name, per_spw in qa.get("fluxscale", {}).items():
        found = ", ".join(f"{v['flux_jy']:.4g} Jy at {v['frequency_hz'] / 1e9:.4g} GHz"
                          for v in per_spw.values())
        lines.append(f"fluxscale: {name} {found}")
    for plot in qa.get("plots", []):
        if Path(plot).name.startswith("dynspec_"):
            lines.append(f"dynamic spectrum: {plot}")
    lines += [f"warning: {w}" for w in qa.get("warnings", [])[:3]]
    return lines


def echo_done(ctx, document, outdir: Path, started: float) -> None:
    """Print how a run ended (steps, time, products, the report's headline), unless --quiet."""
    if (ctx.find_root().obj or {}).get("quiet"):
        return
    ran = sum(1 for s in document["steps"] if s["status"] == "ran")
    click.echo(f"radiocal: {len(document['steps'])} step(s) complete ({ran} run) in "
               f"{time.monotonic() - started:.1f} s")
    click.echo(f"products in {outdir}: report.pdf, plots/, calibrated.ms, caltables/, store.zarr")
    for line in _summary(outdir):
        click.echo(f"  {line}")



def step_config(step: str, options: dict):
    """The registered step ``step``'s config from a command's options, checked as the YAML's
    (an unknown or bad value is one line naming the step)."""
    from radiocal.registry import get_step, make_config

    return make_config(get_step(step), options)


def run_step(engine, step: str, datasets, config, *, store=None, outdir=None, inputs=(),
             report=False):
    """Run the registered step ``step`` on ``datasets`` as ``radiocal run`` would: a command is a
    thin call of it, so the CLI, the YAML and the library do the same work. ``report``: what
    the step reports (its logger's INFO lines, which a run writes to log.txt) is printed."""
    from radiocal.engine.context import StepContext
    from radiocal.registry import get_step

    logger = logging.getLogger(f"radiocal.step.{step}")
    context = StepContext(outdir=None if outdir is None else Path(outdir),
                          store=None if store is None else Path(store), logger=logger,
                          engine=engine, step_name=step, inputs=[Path(p) for p in inputs])
    if not report:
        return get_step(step).run(list(datasets), config, context)
    echo = _Echo(logging.INFO)
    level = logger.level
    logger.setLevel(logging.INFO)   # the terminal's handlers keep their own level
    logger.addHandler(echo)
    try:
        return get_step(step).run(list(datasets), config, context)
    finally:
        logger.removeHandler(echo)
        logger.setLevel(level)


class _Echo(logging.Handler):
    """A step's report lines on the terminal, as they come."""

    def emit(self, record):
        click.echo(record.getMessage())
