"""The run's report: PNG plots in ``plots/`` and ``report.pdf`` whose first page summarises the run.

:func:`build_report` gathers the numbers (:mod:`radiocal.qa.summaries`), draws the figures
(:mod:`radiocal.qa.plots`, :func:`radiocal.dynspec.plot.plot_dynamic_spectrum`), writes each as a
PNG and as a page of the PDF, and returns the summary as a dict (also ``qa.json``).
"""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from radiocal.calibration.postprocess import good_feed_fraction
from radiocal.store import schema as S
from radiocal.qa import plots, render, skychecks
from radiocal.qa import summaries as Q

log = logging.getLogger("radiocal.qa")

SOLUTION_TABLES = (("bandpass", "Bandpass (B)"), ("phase_int", "Gain phase per integration (G)"),
                   ("flux_cal", "Gain amplitude on the flux scale (G)"))
LINES_PER_PAGE = 44
MIN_SUCCESS = 0.8    # warn when fewer solution intervals than this fraction succeed
MIN_BANDPASS_FEEDS = 0.5   # fail when fewer antenna feeds than this have a bandpass


@dataclass
class RunInfo:
    """What the report says about the run besides the data: roles, paths, provenance."""

    outdir: Path
    store: Path
    fluxcal: str = ""
    bpcal: str = ""
    phasecal: str = ""
    targets: tuple = ()
    provenance: dict = field(default_factory=dict)
    max_flagged: float = 0.5
    delay_reference: str = ""      # the sky_bandpass step's reference delay table, if any
    delay_threshold_ns: float = 2.0
    filed_in: str = ""             # a parent directory that files the run by its status

    @property
    def calibrators(self) -> list[str]:
        bpcal = (self.bpcal or self.fluxcal).split(",")   # several fields in sky-model runs
        return [n for n in dict.fromkeys([self.fluxcal, *bpcal, self.phasecal]) if n]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.+-]", "_", name)


def run_warnings(log_path: Path) -> list[str]:
    """WARNING/ERROR lines in ``log.txt`` of the runs that made the outputs: of each step, its
    latest running (a resumed run skips the steps already complete, whose warnings still hold;
    a step run again replaces its earlier ones), and whatever the latest run logged outside a
    step. A run from its first step forgets the earlier runs."""
    if not log_path.exists():
        return []
    by_step: dict[int, list[str]] = {}
    loose: list[str] = []        # the latest run's lines outside a running step
    current = None
    for line in log_path.read_text(errors="replace").splitlines():
        step = re.search(r" step (\d+)/\d+ \S+: (running|already complete)", line)
        if step:
            index, running = int(step.group(1)), step.group(2) == "running"
            if index == 1:
                loose = []
                if running:
                    by_step.clear()
            current = index if running else None
            if running:
                by_step[index] = []
            continue
        match = re.match(r"^\S+ \S+ (WARNING|ERROR) (\S+): (.*)$", line)
        if match:
            (by_step[current] if current is not None else loose).append(
                f"{match.group(2)}: {match.group(3)}")
    return [w for index in sorted(by_step) for w in by_step[index]] + loose


def collect(datasets, info: RunInfo, tables: dict | None = None) -> dict:
    """Every number of the summary page (computes small reductions of the data).

    ``tables``: the store's calibration tables (:func:`radiocal.qa.summaries.load_tables`), if
    already loaded."""
    tables = Q.load_tables(info.store) if tables is None else tables
    vis, flags = Q.visibility_and_flag_summaries(datasets, info.calibrators, info.store)
    fluxscale = Q.fluxscale_from_tables(tables, info.fluxcal)
    measured = {name: Q.measured_flux(vis, name) for name in info.calibrators}
    counts = Q.solution_counts(tables)
    warnings = run_warnings(info.outdir / "log.txt")
    problems = []
    final = Q.fraction(flags["now"]["total"])
    if final > info.max_flagged:
        warnings.append(f"qa: {100 * final:.0f}% of the data are flagged "
                        f"(more than {100 * info.max_flagged:.0f}%)")
    # a table solved in some spws: the others are skipped, their data flagged on apply (the
    # calibrate step warns of them); a table with no solution at all is a failure
    solved = {row["table"] for row in counts if row["succeeded"]}
    for row in counts:
        # a few intervals lost to flagged integrations are normal; CASA warns on the same basis
        if row["expected"] and row["succeeded"] is not None and \
                row["succeeded"] < MIN_SUCCESS * row["expected"]:
            warnings.append(f"qa: table {row['table']} spw {row['spw']}: {row['succeeded']} of "
                            f"{row['expected']} solution intervals succeeded")
        if row["expected"] and not row["succeeded"] and row["table"] not in solved:
            problems.append(f"table {row['table']} spw {row['spw']} has no solutions")
    # antennas listed in the ANTENNA table that observed nothing have no feeds to solve
    present = np.unique(np.concatenate(
        [ds[name].values for ds in datasets
         for name in (S.BASELINE_ANTENNA1, S.BASELINE_ANTENNA2)])) if datasets else None
    for tds in tables.get("bandpass", []):
        good = good_feed_fraction([tds], present)
        # a spw with no solution at all, while others have some, is a skipped one (above)
        if good < MIN_BANDPASS_FEEDS and (good > 0 or "bandpass" not in solved):
            problems.append(f"bandpass spw {tds.attrs.get(S.ATTR_SPW_ID, 0)}: only "
                            f"{100 * good:.0f}% of antenna feeds have solutions")
    criteria = [_criterion("every calibration table has solutions",
                           not any("has no solutions" in p for p in problems))]
    if "bandpass" in tables:
        good = good_feed_fraction(tables["bandpass"], present)
        criteria.append(_criterion(f"the bandpass has solutions for >= {100 * MIN_BANDPASS_FEEDS:.0f}% "
                                   f"of antenna feeds in every spw", not any(
                                       p.startswith("bandpass spw") for p in problems),
                                   f"{100 * good:.0f}% overall"))
    for name in info.calibrators:
        if measured.get(name) is None:
            problems.append(f"calibrator {name} has no calibrated, unflagged data")
    if info.calibrators:
        criteria.append(_criterion("every calibrator has calibrated, unflagged data",
                                   all(measured.get(n) is not None for n in info.calibrators)))
    if info.phasecal and info.phasecal not in fluxscale:
        problems.append(f"fluxscale found no flux density for {info.phasecal}")
    if info.phasecal:
        criteria.append(_criterion(f"fluxscale found a flux density for {info.phasecal}",
                                   info.phasecal in fluxscale))
    sky_models = calibration_sky_models(info.outdir)
    ateam = skychecks.ateam_on_images(info.outdir / "images", sky_models)
    if sky_models:
        failed = skychecks.source_problems(ateam)
        problems += failed
        band = [r for r in ateam if r["band"]]
        criteria.append(_criterion(
            f"each A-team source on the band-averaged image: flux within "
            f"{100 * skychecks.FLUX_TOLERANCE:.0f}% of the model, position within "
            f"{skychecks.POSITION_TOLERANCE_DEG:g} deg",
            not failed if band else None, f"{len(band)} measured" if band else "no images"))
    delays = skychecks.delay_comparison(tables, info.delay_reference, info.delay_threshold_ns)
    first = datasets[0] if datasets else None
    fields = sorted({str(ds.attrs.get(S.ATTR_FIELD_NAME)) for ds in datasets})
    times = [ds[S.TIME].values for ds in datasets]
    return {
        "telescope": str(first.attrs.get(S.ATTR_TELESCOPE, "")) if first is not None else "",
        "project": str(first.attrs.get(S.ATTR_PROJECT, "")) if first is not None else "",
        "fields": fields,
        "partitions": len(datasets),
        "antennas": int(first.sizes.get(S.ANTENNA, 0)) if first is not None else 0,
        "channels": sum(ds.sizes[S.FREQUENCY] for ds in {ds.attrs.get(S.ATTR_SPW_ID): ds
                                                         for ds in datasets}.values()),
        "polarizations": [str(p) for p in first[S.POLARIZATION].values] if first is not None else [],
        "centre_frequency": float(np.median(np.concatenate([ds[S.FREQUENCY].values for ds in datasets])))
        if datasets else None,
        "time_range": [float(min(t.min() for t in times)), float(max(t.max() for t in times))]
        if times else [],
        "fluxscale": {name: {str(spw): {"frequency_hz": f, "flux_jy": s} for spw, (f, s) in v.items()}
                      for name, v in fluxscale.items()},
        "measured": {name: (None if m is None else {k: m[k] for k in ("s0", "alpha", "nu0")})
                     for name, m in measured.items()},
        "flagged": {"input": Q.fraction(flags["input"]["total"]) if "input" in flags else None,
                    "final": final,
                    "by_field": {k: Q.fraction(v) for k, v in flags["now"]["field"].items()}},
        "solutions": counts,
        "warnings": warnings,
        "problems": problems,
        "status": "FAILED" if problems else ("SUCCEEDED WITH WARNINGS" if warnings else "SUCCEEDED"),
        "criteria": criteria,
        "ateam": ateam,
        "delays": [{k: d[k] for k in ("spw", "reference", "threshold_ns", "rms_ns", "moved") if k in d}
                   for d in delays],
        "_vis": vis, "_flags": flags, "_tables": tables, "_sky_models": sky_models,
        "_delays": delays,
    }


def _criterion(text: str, passed: bool | None, value: str = "") -> dict:
    """One pass/fail criterion of the run (None: not applicable to this run)."""
    return {"criterion": text, "passed": passed, "value": value}


def summary_lines(summary: dict, info: RunInfo) -> list[str]:
    """The first page, as lines of monospaced text."""
    from radiocal.ms.summary import format_time

    prov = info.provenance
    steps = prov.get("steps", [])
    lines = [f"  problem: {p}" for p in summary["problems"]]
    t = summary["time_range"]
    lines += [
        f"Output      {filed_path(summary, info)}",
        f"Inputs      {', '.join(i.get('path', '') for i in prov.get('inputs', [])) or '-'}",
        f"Data        {summary['telescope']} {summary['project']}: {summary['partitions']} partitions (field/spw/scan), "
        f"{summary['antennas']} antennas, {summary['channels']} channels, "
        f"{' '.join(summary['polarizations'])}",
        f"Time        {format_time(t[0]) if t else '-'} to {format_time(t[1], with_date=False) if t else '-'}",
        f"Roles       flux cal {info.fluxcal or '-'}, bandpass cal {info.bpcal or info.fluxcal or '-'}, "
        f"phase cal {info.phasecal or '-'}, targets {', '.join(info.targets) or '-'}",
    ]
    lines += criteria_lines(summary, info)
    if not summary["_sky_models"]:   # a sky-model field is no point source: see the A-team table
        lines += ["", "FLUX DENSITIES",
                  f"  {'field':<16}{'fluxscale':>26}   {'measured on calibrated data':<36}"]
    for name in info.calibrators if not summary["_sky_models"] else ():
        scale = summary["fluxscale"].get(name, {})
        text = "; ".join(f"{v['flux_jy']:.4g} Jy @ {v['frequency_hz'] / 1e9:.4g} GHz"
                         for v in scale.values()) or ("(flux calibrator: model)" if name == info.fluxcal else "-")
        m = summary["measured"].get(name)
        meas = (f"{m['s0']:.4g} Jy @ {m['nu0'] / 1e9:.4g} GHz, index {m['alpha']:+.2f}"
                if m else "no data")
        lines.append(f"  {name:<16}{text:>26}   {meas}")
    lines += sky_model_lines(summary["_sky_models"], summary)
    lines += ateam_lines(summary["ateam"]) + delay_lines(summary["_delays"])
    flagged = summary["flagged"]
    lines += ["", "FLAGGED DATA",
              f"  input MS {100 * flagged['input']:.1f}%  ->  after the run {100 * flagged['final']:.1f}%"
              if flagged["input"] is not None else f"  after the run {100 * flagged['final']:.1f}%",
              "  by field: " + ", ".join(f"{k} {100 * v:.1f}%" for k, v in flagged["by_field"].items()),
              "", "CALIBRATION SOLUTIONS (solution intervals)",
              f"  {'table':<12}{'type':<6}{'spw':>4}{'expected':>10}{'attempted':>11}{'succeeded':>11}"
              f"{'flagged':>10}"]
    for row in summary["solutions"]:
        lines.append(f"  {row['table']:<12}{row['type']:<6}{row['spw']:>4}{row['expected']!s:>10}"
                     f"{row['attempted']!s:>11}{row['succeeded']!s:>11}{100 * row['flagged']:>9.1f}%")
    lines += ["", "STEPS"]
    for step in steps:
        wall = step.get("wall_time_s")
        lines.append(f"  {step.get('index', 0) + 1:>2}. {step.get('step', ''):<14}{step.get('status', ''):<9}"
                     f"{'' if wall is None else f'{wall:8.1f} s'}")
    lines += ["", f"WARNINGS ({len(summary['warnings'])})"]
    lines += [f"  {w}" for w in summary["warnings"]] or ["  none"]
    products = [p for p in ("calibrated.ms", "caltables", "store.zarr") if (info.outdir / p).exists()]
    products += sorted(p.name for p in info.outdir.glob("dynspec*.zarr"))
    lines += ["", "PRODUCTS (in the output directory)", "  " + ", ".join(products + ["plots/", "log.txt",
                                                                                    "provenance.json"])]
    return lines


def filed_path(summary: dict, info: RunInfo) -> str:
    """Where the run ends up: ``FILED_IN/successful|unsuccessful/<run>`` when a parent files it."""
    if not info.filed_in:
        return str(info.outdir)
    outcome = "unsuccessful" if summary["status"] == "FAILED" else "successful"
    return str(Path(info.filed_in) / outcome / info.outdir.name)


def criteria_lines(summary: dict, info: RunInfo) -> list[str]:
    """The checks that decide FAILED (and, when a parent files the run, unsuccessful/)."""
    outcome = (f" -> filed in {info.filed_in}/unsuccessful/, else successful/" if info.filed_in
               else "")
    lines = ["", f"PASS/FAIL CRITERIA (any failed: FAILED{outcome})",
             "  [pass] every step completed (a failed step stops the run before this report)"]
    for c in summary["criteria"]:
        mark = {True: "pass", False: "FAIL", None: "n/a "}[c["passed"]]
        lines.append(f"  [{mark}] {c['criterion']}" + (f" ({c['value']})" if c["value"] else ""))
    lines.append(f"  warnings only: more than {100 * info.max_flagged:.0f}% flagged, fewer than "
                 f"{100 * MIN_SUCCESS:.0f}% of solution intervals solved, delays moved from the "
                 "reference")
    return lines


def ateam_lines(rows: list[dict]) -> list[str]:
    """Each modelled source measured on the images, band-averaged image first."""
    if not rows:
        return []
    lines = ["", "A-TEAM ON THE IMAGES (peak within "
             f"{skychecks.SEARCH_DEG:g} deg of the model position; model: apparent, dipole beam)",
             f"  {'source':<8}{'image':<28}{'MHz':>8}{'model Jy':>11}{'measured':>11}"
             f"{'ratio':>7}{'offset deg':>12}"]
    for r in sorted(rows, key=lambda r: (not r["band"], r["source"], r["frequency_hz"])):
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"  {r['source']:<8}{r['image'][:27]:<28}{r['frequency_hz'] / 1e6:>8.2f}"
                     f"{r['model_jy']:>11.0f}{r['measured_jy']:>11.0f}{ratio:>7}"
                     f"{r['offset_deg']:>12.2f}")
    return lines


def delay_lines(delays: list[dict]) -> list[str]:
    lines = []
    for d in delays:
        good = ~d["flagged"]
        text = (f"  spw {d['spw']}: {int(good.sum())} of {good.size} antenna feeds solved, "
                f"|delay| up to {np.nanmax(np.abs(np.where(good, d['delay_ns'], np.nan))):.1f} ns"
                if good.any() else f"  spw {d['spw']}: no delay solutions")
        lines += ["", "DELAYS" + (f" against {d['reference']}" if "reference" in d else
                                  " (no reference table given: --delay-reference)"), text]
        if "reference" in d:
            rms = "-" if d["rms_ns"] is None else f"{d['rms_ns']:.2f} ns"
            moved = ", ".join(f"{a} {h} {ns:+.1f} ns" for a, h, ns in d["moved"]) or "none"
            lines += [f"  rms difference {rms}; moved more than {d['threshold_ns']:g} ns: {moved}"]
    return lines


def calibration_sky_models(outdir: Path) -> list:
    """``(path, SkyModel)`` of the sky models the ateam step wrote, if the run made any."""
    from radiocal.calibration.config import ATEAM_MODEL_FILE
    from radiocal.model.skymodel import read_skymodel

    stem = Path(ATEAM_MODEL_FILE).stem
    return [(path, read_skymodel(path)) for path in sorted(outdir.glob(f"{stem}*.txt"))]


def sky_model_lines(models, summary: dict) -> list[str]:
    """Each calibration source's apparent flux density at the centre of the band."""
    if not models:
        return []
    centre = summary.get("centre_frequency") or 1e9
    lines = ["", f"CALIBRATION SKY MODEL (apparent: dipole beam applied; at {centre / 1e6:.1f} MHz)"]
    for path, model in models:
        flux = model.spectra([centre])[:, 0, 0]
        lines.append(f"  {path.name}: " + (", ".join(f"{n} {s:.0f} Jy" for n, s in zip(model.name, flux))
                                           or "no source"))
    return lines


STATUS_COLOURS = {"SUCCEEDED": "tab:green", "SUCCEEDED WITH WARNINGS": "tab:orange",
                  "FAILED": "tab:red"}


def _figures(summary: dict, info: RunInfo) -> list:
    """A job ``(file stem, function, args)`` for every plot, in report order
    (:mod:`radiocal.qa.render` draws them)."""
    vis = summary["_vis"]
    jobs = []
    for name in info.calibrators:
        mine = [s for s in vis if s.field == name]
        for which in ("before", "after"):
            jobs.append((f"calibrator_{_safe(name)}_{which}", plots.calibrator_figure,
                         (mine, name, which)))
    jobs += _solution_figures(summary["_tables"])
    jobs.append(("flags", plots.flag_figure, (summary["_flags"],)))
    if any(not r["band"] for r in summary["ateam"]):
        jobs.append(("ateam_spectra", plots.source_spectra_figure,
                     (summary["ateam"], summary["_sky_models"])))
    for d in summary["_delays"]:
        jobs.append((f"delays_spw{d['spw']}", plots.delay_figure, (d,)))
    markers = list(dict.fromkeys((str(n), float(r), float(d)) for _, model in summary["_sky_models"]
                                 for n, r, d in zip(model.name, model.ra, model.dec)))
    for path in sorted((info.outdir / "images").glob("*-image.fits")):
        jobs.append((f"image_{_safe(path.stem)}", plots.image_figure, (path, markers)))
    return jobs + _dynspec_figures(info.outdir)


def _solution_figures(tables: dict) -> list:
    """The jobs of the calibration solutions' figures (they need no reduction of the data)."""
    jobs = []
    for table_name, title in SOLUTION_TABLES:
        for tds in tables.get(table_name, []):
            spw = tds.attrs.get(S.ATTR_SPW_ID, 0)
            for quantity in ("amplitude", "phase"):
                if table_name == "phase_int" and quantity == "amplitude":
                    continue  # phase-only solutions: the amplitudes are 1 by construction
                if table_name == "flux_cal" and quantity == "phase":
                    continue
                jobs.append((f"{table_name}_{quantity}_spw{spw}", plots.solution_figures,
                             (tds, title, quantity)))
    return jobs


def _dynspec_figures(outdir: Path) -> list:
    """The jobs of the dynamic spectra the run wrote (products: no reduction needed)."""
    from radiocal.dynspec.dataset import open_dynspec

    jobs = []
    for path in sorted(outdir.glob("dynspec*.zarr")):
        target = open_dynspec(path).attrs.get("field_name") or path.stem
        jobs.append((f"dynspec_{_safe(str(target))}", plots.dynspec_figure, (path,)))
    return jobs


# Output directory -> (drawer, future of its inputs' identity and tables) begun by
# :func:`start_figures`, for the report of that directory to take over
_BEGUN: dict = {}


def start_figures(outdir: Path, store: Path) -> None:
    """Begin drawing the figures that need no reduction of the data (the calibration solutions
    and the dynamic spectra) in worker processes, now, in the background; the report of
    ``outdir`` takes them over (:func:`build_report`), or draws them again if their inputs
    changed meanwhile. A pipeline calls this as the step before the report starts: the export
    there keeps about one core busy (casacore writing the MS), which leaves the other to these
    figures, about half of the report's drawing. With fewer than :data:`radiocal.qa.render.MIN_POOL_CORES` cores the
    report draws every figure itself, when it runs."""
    if render.usable_cores() < render.MIN_POOL_CORES:
        return
    outdir = Path(outdir)
    previous = _BEGUN.pop(outdir, None)
    if previous is not None:    # a report prepared but never run (its run failed before it)
        previous[0].close()
    render.start_server()
    drawer = render.Drawer()
    _BEGUN[outdir] = drawer, drawer.background(_draw_products, drawer, outdir, Path(store))


def _draw_products(drawer, outdir: Path, store: Path):
    """:func:`_submit_products`, with the identity of the products as they were read first,
    for :func:`_take_over`: ``(identity, tables)``."""
    identity = _products_identity(outdir, store)
    return identity, _submit_products(drawer, outdir, store)


def _submit_products(drawer, outdir: Path, store: Path) -> dict:
    """Submit the figures that need no reduction of the data (the calibration solutions in
    ``store``, the dynamic spectra in ``outdir``); return the tables read."""
    tables = Q.load_tables(store)
    for job in _solution_figures(tables) + _dynspec_figures(outdir):
        drawer.submit(job)
    return tables


def _products_identity(outdir: Path, store: Path) -> list:
    """Name, inode, size and mtime of every file the early figures read (the store's
    calibration tables, the dynamic spectra): a step that rewrites any of them changes it."""
    from radiocal.store import caltables as C

    roots = [store / C.CALTABLES_GROUP, *sorted(outdir.glob("dynspec*.zarr"))]
    identity = []
    for root in roots:
        for folder, _, names in sorted(os.walk(root)):
            for name in sorted(names):
                st = os.stat(os.path.join(folder, name))
                identity.append((folder, name, st.st_ino, st.st_size, st.st_mtime_ns))
    return identity


def _take_over(info: RunInfo, processes: int | None):
    """``(drawer, tables)``: the drawer :func:`start_figures` began for this output directory
    with the tables it read, its figures kept when their inputs are still those it read;
    else a new drawer and None."""
    begun = _BEGUN.pop(Path(info.outdir), None)
    if begun is None:
        return render.Drawer(processes), None
    drawer, products = begun
    if processes not in (None, drawer.processes):
        drawer.close()
        return render.Drawer(processes), None
    try:
        identity, tables = products.result()
    except Exception:   # e.g. a table half written as it was read: the report reads it again
        identity = tables = None
    if identity is None or identity != _products_identity(Path(info.outdir), Path(info.store)):
        drawer.forget()
        tables = None
    return drawer, tables


def build_report(datasets, info: RunInfo, pdf_path: Path, plots_dir: Path,
                 processes: int | None = None) -> dict:
    """Write ``plots_dir/*.png`` and ``pdf_path``; return the summary (JSON-safe parts).

    ``processes``: worker processes drawing the figures (default: one per usable core from
    :data:`radiocal.qa.render.MIN_POOL_CORES` on, else 1).
    """
    drawer, tables = _take_over(info, processes)
    with drawer:
        # the figures that need no reduction are drawn while the reductions are computed
        # (unless start_figures began them)
        if tables is None:
            tables = _submit_products(drawer, info.outdir, info.store)
        summary = collect(datasets, info, tables)
        pages = drawer.pages(_figures(summary, info))
        written = _write_report(summary, info, pages, pdf_path, plots_dir)
    public = {k: v for k, v in summary.items() if not k.startswith("_")}
    public["plots"] = written
    public["report"] = str(pdf_path)
    (info.outdir / "qa.json").write_text(json.dumps(public, indent=1, default=_json_default))
    return public


def _write_report(summary: dict, info: RunInfo, pages, pdf_path: Path, plots_dir: Path) -> list:
    """Write the PNGs and the PDF (its summary page first); return the PNGs' paths."""
    from matplotlib.colors import to_rgb

    from radiocal.qa.pdf import PdfWriter

    plots_dir.mkdir(parents=True, exist_ok=True)
    title = f"radiocal report: {summary['telescope']} {summary['project']}".strip()
    written = []
    tmp = pdf_path.with_name(pdf_path.name + ".partial")
    with PdfWriter(tmp, title, render.DPI) as pdf:
        lines = [line if len(line) <= 120 else line[:117] + "..."
                 for line in summary_lines(summary, info)]
        for start in range(0, max(len(lines), 1), LINES_PER_PAGE):
            first = start == 0
            pdf.text_page(title if first else f"{title} (continued)",
                          lines[start:start + LINES_PER_PAGE], summary["status"] if first else "",
                          to_rgb(STATUS_COLOURS.get(summary["status"], "k")))
        for stem, png in pages:
            path = plots_dir / f"{stem}.png"
            path.write_bytes(png)
            pdf.png_page(png)
            written.append(str(path))
    os.replace(tmp, pdf_path)  # a reader never sees a half-written report
    return written


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    raise TypeError(type(value).__name__)
