"""``radiocal lwa``: OVRO-LWA-style sky-model bandpass calibration of many small MS files.

The packaged pipeline ``radiocal/pipelines/lwa.yaml`` runs in ``OUTDIR/<run>/`` (``<run>``: the
``YYYYMMDD_HHMMSS`` of the earliest file, as OVRO-LWA names them); when it ends, the directory is
moved to ``OUTDIR/successful/<run>`` or ``OUTDIR/unsuccessful/<run>`` (pipeline error or a QA
report that FAILED), so an operator sees at a glance which runs need a look. Running the same
command again takes the run back out of either, resumes it and files it again.
"""

from __future__ import annotations

import json
import re
import shutil
import time
from pathlib import Path

import click

from radiocal.calibration.config import ATeamConfig, SkyBandpassConfig
from radiocal.cli.common import SET_HELP, echo_done, run_entries, split_names
from radiocal.cli.config_options import config_option
from radiocal.cli.pipeline_commands import template_entries
from radiocal.errors import RadiocalError
from radiocal.flagging.config import FlagConfig

PIPELINE = "lwa"
OUTCOMES = ("successful", "unsuccessful")
_LWA_STAMP = re.compile(r"(\d{8}_\d{6})_\d+MHz\.ms$")


def run_name(inputs) -> str:
    """``YYYYMMDD_HHMMSS`` of the earliest OVRO-LWA-named file, else the first input's name."""
    from radiocal.ms.read import expand_inputs

    paths = expand_inputs([str(p) for p in inputs])
    stamps = sorted(m.group(1) for m in (_LWA_STAMP.search(Path(p).name) for p in paths) if m)
    if stamps:
        return stamps[0]
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", Path(paths[0].rstrip("/")).stem) or "run"


def lwa_entries(inputs, *, bad_antennas=(), bad_antennas_file="", refant="", uvrange=None,
                delay_reference="", sources=(), min_elevation=None, image=True,
                filed_in="") -> list[dict]:
    """The packaged lwa pipeline with these options, as ``{step: NAME, ...}`` entries.

    ``filed_in``: the parent directory of successful/ and unsuccessful/ (the report names the
    place the run is filed in)."""
    entries = []
    for entry in template_entries(PIPELINE, inputs):
        name = entry["step"]
        if name == "flag":
            entry["bad_antennas"] = list(bad_antennas)
            entry["bad_antennas_file"] = (str(Path(bad_antennas_file).resolve())
                                          if bad_antennas_file else "")
        elif name == "ateam":
            if sources:
                entry["sources"] = list(sources)
            if min_elevation is not None:
                entry["min_elevation"] = float(min_elevation)
        elif name == "sky_bandpass":
            entry["refant"] = refant
            if uvrange is not None:
                entry["uvrange"] = uvrange
            entry["delay_reference"] = (str(Path(delay_reference).resolve())
                                        if delay_reference else "")
        elif name == "image" and not image:
            continue
        elif name == "report":
            entry["filed_in"] = str(filed_in)
        entries.append(entry)
    return entries


def _take_back(outdir: Path, name: str) -> Path:
    """The run's working directory, moved back out of successful/ or unsuccessful/ if filed."""
    work = outdir / name
    for outcome in OUTCOMES:
        filed = outdir / outcome / name
        if filed.exists():
            if work.exists():
                raise click.UsageError(f"both {work} and {filed} exist; remove one")
            filed.rename(work)
    return work


def _file(outdir: Path, work: Path, outcome: str) -> Path:
    target = outdir / outcome / work.name
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(work), str(target))
    return target


def _qa_status(work: Path) -> tuple[str, list[str]]:
    qa = work / "qa.json"
    if not qa.exists():
        return "FAILED", ["no QA report was written"]
    document = json.loads(qa.read_text())
    return document.get("status", "FAILED"), list(document.get("problems", []))


@click.command("lwa")
@click.argument("inputs", nargs=-1, required=True, metavar="FILES_OR_DIR...",
                type=click.Path(exists=True))
@click.option("-o", "--outdir", required=True, type=click.Path(file_okay=False),
              help="Parent directory: the run goes to OUTDIR/<run>, then successful/ or "
                   "unsuccessful/.")
@config_option(FlagConfig, "bad_antennas", metavar="NAME[,NAME...]")
@config_option(FlagConfig, "bad_antennas_file", type=click.Path(exists=True, dir_okay=False),
               default=None)
@config_option(SkyBandpassConfig, "refant")
# None: the pipeline file's value (leaving out the short baselines that see the diffuse Galaxy)
@config_option(SkyBandpassConfig, "uvrange", default=None, show_default=False)
@config_option(SkyBandpassConfig, "delay_reference", type=click.Path(exists=True), default=None)
# () and None: the pipeline file's values
@config_option(ATeamConfig, "sources", metavar="NAME[,NAME...]", default=(),
               show_default=", ".join(ATeamConfig.sources))
@config_option(ATeamConfig, "min_elevation", default=None, show_default=False)
@click.option("--image/--no-image", default=None,
              help="WSClean diagnostic images of the calibrated data (default: when wsclean is "
                   "installed).")
@click.option("--set", "overrides", multiple=True, metavar="STEP.KEY=VALUE", help=SET_HELP)
@click.option("--progress/--no-progress", default=None,
              help="Progress bars on stderr (default: when stderr is a terminal).")
@click.pass_context
def lwa(ctx, inputs, outdir, bad_antennas, bad_antennas_file, refant, uvrange, delay_reference,
        sources, min_elevation, image, overrides, progress):
    """OVRO-LWA bandpass calibration: join the YYYYMMDD_HHMMSS_XXMHz.ms files, flag, model the
    A-team, solve and check the bandpass, export, (image,) report.

    The run is made in OUTDIR/<YYYYMMDD_HHMMSS>/ and then moved into OUTDIR/successful/ or
    OUTDIR/unsuccessful/. Inside: store.zarr, caltables/ (bandpass.B, delay.K and zarr copies
    in the store), skymodel_ateam.txt, calibrated.ms, plots/, report.pdf, qa.json, log.txt,
    provenance.json. The input files are only read.
    """
    started = time.monotonic()
    if image is None:   # the image step warns when WSClean is absent; don't ask for that
        from radiocal.imaging.wsclean import find_wsclean

        try:
            image = bool(find_wsclean())
        except RadiocalError:
            image = False
    outdir = Path(outdir).expanduser().resolve()
    name = run_name(inputs)
    work = _take_back(outdir, name)
    entries = lwa_entries(inputs, bad_antennas=split_names(bad_antennas),
                          bad_antennas_file=bad_antennas_file or "", refant=refant,
                          uvrange=uvrange, delay_reference=delay_reference or "",
                          sources=split_names(sources), min_elevation=min_elevation, image=image,
                          filed_in=outdir)
    try:
        document = run_entries(ctx, entries, work, overrides, progress)
    except RadiocalError as err:
        if work.exists():
            filed = _file(outdir, work, "unsuccessful")
            raise type(err)(f"{err} (run filed in {filed})") from None
        raise
    except Exception:   # a bug: file the run; Ctrl-C or a kill leaves it in place to resume
        if work.exists():
            _file(outdir, work, "unsuccessful")
        raise
    status, problems = _qa_status(work)
    outcome = "unsuccessful" if status == "FAILED" else "successful"
    filed = _file(outdir, work, outcome)
    document["outdir"] = str(filed)
    echo_done(ctx, document, filed, started)
    if outcome == "unsuccessful":
        raise RadiocalError(f"run {name} FAILED its QA ({'; '.join(problems) or 'see report'}): "
                            f"filed in {filed}")


commands = [lwa]
