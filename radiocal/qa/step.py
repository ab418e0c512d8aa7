"""The ``report`` pipeline step: QA plots in ``plots/``, ``report.pdf`` and ``qa.json``.

The calibrator roles default to those of the pipeline's ``calibrate`` step (read from its record
in the store), so a pipeline file names them once.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass

from radiocal.registry import register_step


@dataclass(frozen=True)
class ReportConfig:
    fluxcal: str = dataclasses.field(default="", metadata={
        "help": "flux calibrator (default: the calibrate step's)"})
    bpcal: str = dataclasses.field(default="", metadata={
        "help": "bandpass calibrator (default: the calibrate step's)"})
    phasecal: str = dataclasses.field(default="", metadata={
        "help": "phase calibrator (default: the calibrate step's)"})
    targets: tuple = dataclasses.field(default=(), metadata={
        "help": "target fields (default: the calibrate step's)"})
    output: str = dataclasses.field(default="report.pdf", metadata={
        "help": "PDF report; relative paths are inside the output directory"})
    plots: str = dataclasses.field(default="plots", metadata={
        "help": "directory of the PNG plots, inside the output directory unless absolute"})
    max_flagged: float = dataclasses.field(default=0.5, metadata={
        "help": "warn when more than this fraction of the data ends up flagged"})
    filed_in: str = dataclasses.field(default="", metadata={
        "help": "parent directory that files the run by its status (radiocal lwa: "
                "FILED_IN/successful/ or unsuccessful/); the report names where it goes"})

    def __post_init__(self):
        if not 0 < self.max_flagged <= 1:
            # ValueError: the registry turns it into a ConfigError naming the step
            raise ValueError(f"max_flagged must be in (0, 1], not {self.max_flagged}")


def _step_config(store, name: str) -> dict:
    """The config of the last complete run of step ``name`` recorded in the store ({} if none)."""
    from radiocal.engine.checkpoint import read_records

    try:
        records = read_records(store)
    except (OSError, KeyError, ValueError):
        return {}
    found = [r for r in records if r.get("name") == name and r.get("status") == "complete"]
    return dict(found[-1].get("config") or {}) if found else {}


def _bandpass_fields(store) -> dict:
    """Without a ``calibrate`` step (sky-model calibration), the fields the bandpass was solved
    on are the calibrators the report looks at."""
    from radiocal.store import caltables as C
    from radiocal.qa.summaries import load_tables

    names = [str(n) for tds in load_tables(store).get("bandpass", [])
             for n in tds.attrs.get(C.ATTR_FIELD_NAMES, [])]
    return {"bpcal": ",".join(dict.fromkeys(names))} if names else {}


def _start_drawing(context) -> None:
    from radiocal.qa.report import start_figures

    start_figures(context.outdir, context.store)


@register_step("report", ReportConfig, kind="sink", prepare=_start_drawing)
def report(datasets, config: ReportConfig, context):
    """QA plots and a PDF report whose first page summarises the run.

    Plots: calibrators before/after calibration, solutions per antenna, flags, dynamic spectra.
    """
    from radiocal.qa.report import RunInfo, build_report

    roles = _step_config(context.store, "calibrate") or _bandpass_fields(context.store)
    sky = _step_config(context.store, "sky_bandpass")
    provenance_path = context.outdir / "provenance.json"
    provenance = json.loads(provenance_path.read_text()) if provenance_path.exists() else {}
    info = RunInfo(
        outdir=context.outdir, store=context.store,
        fluxcal=config.fluxcal or roles.get("fluxcal", ""),
        bpcal=config.bpcal or roles.get("bpcal", ""),
        phasecal=config.phasecal or roles.get("phasecal", ""),
        targets=tuple(config.targets or roles.get("targets", ())),
        provenance=provenance, max_flagged=config.max_flagged,
        delay_reference=sky.get("delay_reference", ""),
        delay_threshold_ns=float(sky.get("delay_threshold_ns", 2.0)), filed_in=config.filed_in)
    summary = build_report(datasets, info, context.output_path(config.output),
                           context.output_path(config.plots))
    context.logger.info("report: %s (%s), %d plots in %s", summary["report"], summary["status"],
                        len(summary["plots"]), context.output_path(config.plots))
    return datasets
