"""``radiocal phaseref`` (the phase-referencing pipeline) and ``radiocal demo`` (it, on simulated data).

Both build the packaged pipeline ``radiocal/pipelines/phaseref.yaml`` with the options given and
run it through the engine's runner, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import click

from radiocal.calibration.config import CalibrateConfig
from radiocal.cli.calibration_commands import ROLES_FROM_DATA, roles_from_data
from radiocal.cli.common import SET_HELP, echo_done, run_entries, split_names
from radiocal.cli.config_options import config_option
from radiocal.dynspec.config import DynspecConfig

PIPELINE = "phaseref"
DEMO_TARGET = "STAR"


def dynspec_name(target: str) -> str:
    """The dynamic-spectrum product of one target, inside the output directory."""
    return f"dynspec_{re.sub(r'[^A-Za-z0-9_.+-]', '_', target)}.zarr"


def template_entries(pipeline: str, inputs) -> list[dict]:
    """The entries of a packaged pipeline (copies), its ``convert`` step reading ``inputs``."""
    import yaml

    from radiocal.engine.pipeline import packaged_pipeline

    entries = [dict(e) for e in yaml.safe_load(packaged_pipeline(pipeline).read_text())]
    for entry in entries:
        if entry["step"] == "convert":
            entry["ms"] = [str(Path(p).expanduser().resolve()) for p in inputs]
    return entries


def phaseref_entries(inputs, *, fluxcal, phasecal, targets, bpcal="", fluxcal_model="standard",
                     refant="", skymodel=None, image=False) -> list[dict]:
    """The packaged phaseref pipeline with these options, as ``{step: NAME, ...}`` entries.

    The file's single ``dynspec`` entry becomes one per target when a sky model is given, and is
    dropped otherwise; ``image`` adds the ``image`` step (WSClean) before the report.
    """
    entries = []
    for entry in template_entries(PIPELINE, inputs):
        name = entry["step"]
        if name == "calibrate":
            entry.update(fluxcal=fluxcal, bpcal=bpcal, phasecal=phasecal, targets=list(targets),
                         fluxcal_model=fluxcal_model, refant=refant)
        elif name == "dynspec":
            if skymodel:
                entries += [dict(entry, field=target, skymodel=str(Path(skymodel).resolve()),
                                 output=dynspec_name(target)) for target in targets]
            continue
        elif name == "report" and image:
            entries.append({"step": "image"})
        entries.append(entry)
    return entries


@click.command("phaseref")
@click.argument("inputs", nargs=-1, required=True, metavar="IN.ms [IN2.ms]...",
                type=click.Path(exists=True))
@config_option(CalibrateConfig, "fluxcal", note=ROLES_FROM_DATA)
@config_option(CalibrateConfig, "fluxcal_model")
@config_option(CalibrateConfig, "bpcal")
@config_option(CalibrateConfig, "phasecal", note=ROLES_FROM_DATA)
@config_option(CalibrateConfig, "targets", decls=("--target",), metavar="NAME[,NAME...]",
               note=ROLES_FROM_DATA)
@config_option(DynspecConfig, "skymodel", type=click.Path(exists=True, dir_okay=False),
               default=None, note="the targets' other sources; given: each target's dynamic "
                                  "spectrum is made")
@config_option(CalibrateConfig, "refant")
@click.option("--image", is_flag=True,
              help="Also image calibrated.ms with WSClean, one image per field, into OUTDIR/images/.")
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False),
              help="Output directory (see the README's 'Output directory').")
@click.option("--set", "overrides", multiple=True, metavar="STEP.KEY=VALUE", help=SET_HELP)
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr (default: when stderr is a terminal).")
@click.pass_context
def phaseref(ctx, inputs, fluxcal, fluxcal_model, bpcal, phasecal, targets, skymodel, refant,
             image, outdir, overrides, progress):
    """Phase-referencing pipeline: convert, flag, calibrate, dynamic spectra, export, report.

    The input MS are only read. OUTDIR gets store.zarr, caltables/ (CASA tables; the zarr ones
    are in the store), calibrated.ms (CORRECTED_DATA), one dynspec_<TARGET>.zarr per target when
    --skymodel is given, plots/*.png, report.pdf, qa.json, log.txt and provenance.json. Running
    the same command again resumes an interrupted run and redoes only what changed.
    """
    started = time.monotonic()
    targets = split_names(targets)
    if not (fluxcal and phasecal and targets):
        import logging

        from radiocal.engine.runner import run_log

        roles = roles_from_data(ctx, lambda: _read_for_roles(inputs), fluxcal, bpcal, phasecal,
                                targets, fluxcal_model)
        # the role choice belongs in the run's log.txt too (written only once the roles are
        # known: a bad role is an error before anything, OUTDIR included, is made)
        with run_log(outdir) as handler:
            logger = logging.getLogger("radiocal.roles")
            handler.handle(logger.makeRecord(logger.name, logging.INFO, __file__, 0,
                                             roles.describe(), None, None))
        fluxcal, bpcal, phasecal, targets = roles.fluxcal, roles.bpcal, roles.phasecal, roles.targets
    entries = phaseref_entries(inputs, fluxcal=fluxcal, phasecal=phasecal,
                               targets=targets, bpcal=bpcal, fluxcal_model=fluxcal_model,
                               refant=refant, skymodel=skymodel, image=image)
    document = run_entries(ctx, entries, outdir, overrides, progress)
    echo_done(ctx, document, Path(document["outdir"]), started)


def _read_for_roles(inputs):
    from radiocal.ms.read import read_ms

    return read_ms(list(inputs))


def make_demo_inputs(directory: Path):
    """Simulate the demo observation into ``directory`` (``demo.ms``, ``skymodel.txt``).

    A VLA-like phase-referencing run (``SimConfig.vla_small_like``): flux/bandpass calibrator
    J1331+3030 (15 Jy, index -0.5), phase calibrator J1407+2827 (2.5 Jy, index -0.3), and a
    circularly polarised flaring star with background sources, with gains, bandpasses, delays,
    a dead antenna and RFI. An existing complete MS is kept, so a re-run resumes.
    """
    from radiocal.simulate import SimConfig, simulate

    config = SimConfig.vla_small_like()
    ms = directory / "demo.ms"
    sky = directory / "skymodel.txt"
    if (ms / "table.dat").exists() and sky.exists():
        return ms, sky, config
    directory.mkdir(parents=True, exist_ok=True)
    sim = simulate(config)
    partial = directory / "demo.ms.partial"
    if partial.exists():
        shutil.rmtree(partial)
    from radiocal.ms.write import write_ms

    write_ms(sim.datasets, str(partial))
    if ms.exists():
        shutil.rmtree(ms)
    partial.rename(ms)   # the MS appears complete or not at all
    target = [f.name for f in config.fields].index(DEMO_TARGET)
    sky.write_text(sim.truth.sky.skymodel_text(target))
    return ms, sky, config


@click.command("demo")
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False),
              help="Directory for the simulated inputs (input/) and the pipeline's products (phaseref/).")
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr (default: when stderr is a terminal).")
@click.pass_context
def demo(ctx, outdir, progress):
    """Simulate a small VLA-like observation and run the phaseref pipeline on it.

    OUTDIR/input/ gets the simulated demo.ms and the target's sky model; OUTDIR/phaseref/ the
    pipeline's products, among them plots/dynspec_STAR.png and report.pdf.
    """
    started = time.monotonic()
    outdir = Path(outdir).expanduser().resolve()
    ms, sky, config = make_demo_inputs(outdir / "input")
    fields = [f.name for f in config.fields]
    entries = phaseref_entries([ms], fluxcal=fields[0], phasecal=fields[1], targets=[DEMO_TARGET],
                               fluxcal_model="15.0,-0.5,1.4GHz", skymodel=sky)
    document = run_entries(ctx, entries, outdir / PIPELINE, (), progress)
    echo_done(ctx, document, Path(document["outdir"]), started)


commands = [phaseref, demo]
