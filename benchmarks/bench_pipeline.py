"""Benchmark: end to end, raw MS to a target's dynamic spectrum, radiocal against the CASA route.

radiocal (route ``pipeline``, the default): ``radiocal phaseref ... --skymodel``, i.e. convert ->
flag (default strategy) -> calibrate (the standard phase-referencing sequence with fluxscale and
apply) -> dynspec (predict, subtract, average over baselines) -> export (calibrated.ms) -> report
(plots, report.pdf, qa.json), split by step from the run's provenance.json. Route ``commands``:
convert, flag, calibrate and dynspec as four commands, each paying its interpreter start, imports
and cluster start.

The CASA route (``--casa-python``: a Python with casatools, casatasks and casadata, run as a
separate interpreter), on a copy of the same MS (copying is not timed), in the same run:
``flagdata`` tfcrop + rflag -> ``setjy`` (manual flux model) -> ``gaincal`` p/int ->
``bandpass`` (inf, combine scan, solnorm) -> ``gaincal`` p/int, p/inf, ap/inf -> ``fluxscale`` ->
``applycal`` (calibrators with their own phases, the target with the phase calibrator's via
gainfield) -> ``ft`` of the sky model (component list) into the target -> ``uvsub`` -> ``getcol``
of the target's CORRECTED_DATA and FLAG and a numpy Stokes I average over baselines.

Issues 7 and 17 ask radiocal, report included, to be at least 3x faster than the CASA route on a
scan-rich multi-spw MS. Each route runs in its own child process tree (peak memory is the
largest process of the tree, CPU time the sum), from a warm page cache, interleaved repeats.

    python benchmarks/bench_pipeline.py                      # simulate (once) a 0.56 GB MS
    python benchmarks/bench_pipeline.py --scale 4 --repeat 3 --data-dir /work/benchdata --json
    python benchmarks/bench_pipeline.py --ms ../shared/data/vla_small/vla_small.ms \\
        --skymodel ../shared/data/vla_small/skymodel.txt
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# the radiocal of this checkout, in this process and in the radiocal commands it runs (their cwd
# is the data directory, where an installed copy would be found instead)
REPO = str(Path(__file__).resolve().parents[1])
sys.path.insert(1, REPO)
RADIOCAL_ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(
    [REPO, *filter(None, [os.environ.get("PYTHONPATH")])])}
from _common import (  # noqa: E402  (benchmarks/ is not a package)
    DATA_DIR,
    add_casa_option,
    casa_python,
    disk_bytes,
    emit_result,
    launcher_rss_mb,
    machine,
    ms_with_skymodel,
    python_child,
    run_child,
    summary,
    warm_page_cache,
)

FLUXCAL, PHASECAL, TARGET = "J1331+3030", "J1407+2827", "STAR"
FLUX_MODEL = (15.0, -0.5, 1.4e9)          # the flux calibrator's model (as in vla_small)
N_ANTENNAS, N_SPWS, N_CHANNELS = 27, 2, 32
# scan-rich: the fluxcal, then (phasecal, target) x 6, then the phasecal: 14 scans of 702
# integrations in all, each scan's length multiplied by --scale.
SCHEDULE = ((0, 60), *((1, 30), (2, 72)) * 6, (1, 30))


# -- children ----------------------------------------------------------------------------------

def child_simulate(path: str, scale: int) -> None:
    """A VLA-like 27-antenna phase-referencing MS of 2 spws x 32 channels and 14 scans, with RFI
    and a dead antenna (28 partitions: scan-rich, as real VLA schedules are)."""
    from radiocal.simulate import SimConfig, simulate_ms

    config = SimConfig.vla_small_like(
        n_antennas=N_ANTENNAS,
        spws=tuple((1.3e9 + 0.1e9 * k, 1.0e6, N_CHANNELS) for k in range(N_SPWS)),
        schedule=tuple((field, n * scale) for field, n in SCHEDULE), seed=7)
    partial = path + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    sim = simulate_ms(partial, config)
    Path(path + ".sky.txt").write_text(sim.truth.sky.skymodel_text(2))
    os.rename(partial, path)
    emit_result(ok=True)


def child_radiocal(ms: str, skymodel: str, work: str, options: str = "[]") -> None:
    """The four radiocal commands in turn; each step's wall time. ``options``: a JSON list of
    global options put before each command, e.g. ``["--scheduler", "threads"]``."""
    global_options = json.loads(options)
    store = os.path.join(work, "pipeline_store.zarr")
    dynspec = os.path.join(work, "pipeline_ds.zarr")
    radiocal = [sys.executable, "-m", "radiocal.cli.main", *global_options]
    steps = {
        "convert": [*radiocal, "convert", ms, "-o", store, "--overwrite"],
        "flag": [*radiocal, "flag", store],
        "calibrate": [*radiocal, "calibrate", store, "--fluxcal", FLUXCAL,
                      "--fluxcal-model", "{},{},{}Hz".format(*FLUX_MODEL),
                      "--phasecal", PHASECAL, "--target", TARGET, "--refant", "0"],
        "dynspec": [*radiocal, "dynspec", store, "--field", TARGET, "--skymodel", skymodel,
                    "-o", dynspec, "--overwrite"],
    }
    seconds = {}
    try:
        for name, argv in steps.items():
            start = time.perf_counter()
            done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                  env=RADIOCAL_ENV)
            seconds[name] = time.perf_counter() - start
            if done.returncode:
                sys.exit(f"{name} failed ({done.returncode}):\n{done.stdout}")
    finally:
        shutil.rmtree(store, ignore_errors=True)
        shutil.rmtree(dynspec, ignore_errors=True)
    emit_result(seconds=seconds, total=sum(seconds.values()))


def child_pipeline(ms: str, skymodel: str, work: str, options: str = "[]") -> None:
    """``radiocal phaseref ... --skymodel`` (one process, one cluster): convert, flag, calibrate,
    dynspec, export and report, as a user runs the flow. Step times come from provenance.json."""
    outdir = os.path.join(work, "pipeline_run")
    shutil.rmtree(outdir, ignore_errors=True)
    argv = [sys.executable, "-m", "radiocal.cli.main", *json.loads(options), "phaseref", ms,
            "--fluxcal", FLUXCAL, "--fluxcal-model", "{},{},{}Hz".format(*FLUX_MODEL),
            "--phasecal", PHASECAL, "--target", TARGET, "--skymodel", skymodel, "--refant", "0",
            "-o", outdir]
    try:
        start = time.perf_counter()
        done = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env=RADIOCAL_ENV)
        total = time.perf_counter() - start
        if done.returncode:
            sys.exit(f"radiocal phaseref failed ({done.returncode}):\n{done.stdout}")
        with open(os.path.join(outdir, "provenance.json")) as f:
            provenance = json.load(f)
        with open(os.path.join(outdir, "qa.json")) as f:
            qa = json.load(f)
        seconds = {s["step"]: s["wall_time_s"] for s in provenance["steps"]}
        seconds["start+imports"] = total - sum(seconds.values())
        peak_mb = {s["step"]: (s.get("peak_memory_bytes") or 0) / 2**20 for s in provenance["steps"]}
    finally:
        shutil.rmtree(outdir, ignore_errors=True)
    emit_result(seconds=seconds, total=total, status=qa["status"], step_peak_rss_mb=peak_mb,
                phasecal_flux={spw: v["flux_jy"] for spw, v in qa["fluxscale"][PHASECAL].items()})


def child_casa(ms: str, components: str, work: str) -> None:
    """The CASA route on a copy of the MS. Runs under the CASA interpreter (no radiocal)."""
    import numpy as np
    from casatasks import (applycal, bandpass, flagdata, fluxscale, ft, gaincal, setjy,
                           uvsub)
    from casatools import componentlist, table

    copy = os.path.join(work, "casa_pipeline.ms")
    tables = os.path.join(work, "casa_pipeline_tables")
    for path in (copy, copy + ".flagversions", tables):
        shutil.rmtree(path, ignore_errors=True)
    shutil.copytree(ms, copy)
    os.mkdir(tables)
    cl_path = os.path.join(tables, "sky.cl")
    cl = componentlist()
    for c in json.loads(Path(components).read_text()):
        cl.addcomponent(
            dir=f"J2000 {c['ra']}rad {c['dec']}rad", flux=c["flux"], fluxunit="Jy",
            freq=f"{c['freq']}Hz", shape="point", spectrumtype="spectral index", index=c["index"])
    cl.rename(cl_path)
    cl.close()
    t = {name: os.path.join(tables, name) for name in
         ("bpphase.G", "bp.B", "int.G", "inf.G", "amp.G", "flux.G")}
    cals = f"{FLUXCAL},{PHASECAL}"
    seconds = {}

    def step(name, function, **kwargs):
        start = time.perf_counter()
        out = function(**kwargs)
        seconds[name] = seconds.get(name, 0.0) + time.perf_counter() - start
        return out

    try:
        # flagbackup=False here and in applycal: radiocal's flag step saves a flag version, CASA's
        # backups are left out, which only makes the CASA route faster.
        step("flag", flagdata, vis=copy, mode="tfcrop", flagbackup=False)
        step("flag", flagdata, vis=copy, mode="rflag", flagbackup=False)
        step("setjy", setjy, vis=copy, field=FLUXCAL, standard="manual",
             fluxdensity=[FLUX_MODEL[0], 0, 0, 0], spix=[FLUX_MODEL[1]],
             reffreq=f"{FLUX_MODEL[2]}Hz")
        step("gaincal", gaincal, vis=copy, caltable=t["bpphase.G"], field=FLUXCAL, solint="int",
             calmode="p", refant="0")
        step("bandpass", bandpass, vis=copy, caltable=t["bp.B"], field=FLUXCAL, solint="inf",
             combine="scan", solnorm=True, refant="0", gaintable=[t["bpphase.G"]])
        step("gaincal", gaincal, vis=copy, caltable=t["int.G"], field=cals, solint="int",
             calmode="p", refant="0", gaintable=[t["bp.B"]])
        step("gaincal", gaincal, vis=copy, caltable=t["inf.G"], field=cals, solint="inf",
             calmode="p", refant="0", gaintable=[t["bp.B"]])
        step("gaincal", gaincal, vis=copy, caltable=t["amp.G"], field=cals, solint="inf",
             calmode="ap", refant="0", gaintable=[t["bp.B"], t["int.G"]])
        fs = step("fluxscale", fluxscale, vis=copy, caltable=t["amp.G"], fluxtable=t["flux.G"],
                  reference=FLUXCAL, transfer=PHASECAL)
        for field in (FLUXCAL, PHASECAL):
            step("applycal", applycal, vis=copy, field=field, calwt=False, flagbackup=False,
                 gaintable=[t["bp.B"], t["int.G"], t["flux.G"]], gainfield=["", field, field],
                 interp=["nearest", "linear", "linear"])
        step("applycal", applycal, vis=copy, field=TARGET, calwt=False, flagbackup=False,
             gaintable=[t["bp.B"], t["inf.G"], t["flux.G"]], gainfield=["", PHASECAL, PHASECAL],
             interp=["nearest", "linear", "linear"])
        step("ft", ft, vis=copy, field=TARGET, complist=cl_path, usescratch=True)
        step("uvsub", uvsub, vis=copy)
        start = time.perf_counter()
        tb = table()
        tb.open(copy + "/FIELD")
        target_id = list(tb.getcol("NAME")).index(TARGET)
        tb.close()
        tb.open(copy)
        sub = tb.query(f"FIELD_ID=={target_id}")
        data = sub.getcol("CORRECTED_DATA")      # (corr, chan, row)
        flag = sub.getcol("FLAG")
        times = sub.getcol("TIME")
        sub.close()
        tb.close()
        both = ~flag[0] & ~flag[-1]
        stokes_i = 0.5 * (data[0] + data[-1]).real
        utimes, index = np.unique(times, return_inverse=True)
        sums = np.zeros((utimes.size, data.shape[1]))
        counts = np.zeros_like(sums)
        np.add.at(sums, index, np.where(both, stokes_i, 0).T)
        np.add.at(counts, index, both.T)
        with np.errstate(invalid="ignore"):
            spectrum = sums / counts
        seconds["average"] = time.perf_counter() - start
    finally:
        for path in (copy, copy + ".flagversions", tables):
            shutil.rmtree(path, ignore_errors=True)
    phasecal_flux = {}   # per spw, as radiocal's qa.json gives it
    for value in fs.values():
        if isinstance(value, dict) and value.get("fieldName") == PHASECAL:
            phasecal_flux = {spw: float(v["fluxd"][0]) for spw, v in value.items()
                             if spw.isdigit() and isinstance(v, dict) and "fluxd" in v}
    emit_result(seconds=seconds, total=sum(seconds.values()), phasecal_flux=phasecal_flux,
                spectrum_shape=list(spectrum.shape))


# -- orchestration -----------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=int, default=1,
                        help="simulate 14 scans of 27 antennas, 2 spws x 32 channels, each scan "
                             "SCALE times as long (1: 702 integrations, a 0.56 GB MS)")
    parser.add_argument("--ms", help="an existing MS with fields J1331+3030, J1407+2827, STAR")
    parser.add_argument("--skymodel", help="the target's sky model (with --ms)")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR,
                        help="where the simulated MS is cached and the runs write "
                             f"(default: {DATA_DIR})")
    parser.add_argument("--radiocal-options", default="", metavar="OPTS",
                        help="global radiocal options for every command, space-separated "
                             "(e.g. '--scheduler threads'; default: radiocal's local cluster)")
    add_casa_option(parser)
    parser.add_argument("--routes", default="pipeline,casa",
                        help="comma-separated: pipeline (one `radiocal run`), commands (four "
                             "radiocal commands), casa")
    parser.add_argument("--json", action="store_true", help="print one JSON summary")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        {"simulate": lambda p, s: child_simulate(p, int(s)), "radiocal": child_radiocal,
         "pipeline": child_pipeline, "casa": child_casa}[kind](*rest)
        return

    data_dir = args.data_dir.resolve()
    data_dir.mkdir(exist_ok=True)
    ms, skymodel = ms_with_skymodel(
        args.ms, args.skymodel,
        data_dir / f"pipeline_{N_ANTENNAS}ant_{N_SPWS}x{N_CHANNELS}ch_14scans_x{args.scale}.ms",
        __file__, args.scale)
    routes = [r.strip() for r in args.routes.split(",") if r.strip()]
    casa, casa_note = casa_python(args.casa_python) if "casa" in routes else (None, "not asked for")
    components = str(data_dir / (Path(ms).stem + ".pipeline_components.json"))
    if casa:
        # bench_dynspec's converter: the sky model as JSON for the CASA interpreter.
        run = run_child(python_child(Path(__file__).with_name("bench_dynspec.py"), "--child",
                                     "components", skymodel, components))
        if run.returncode:
            casa, casa_note = None, f"skipped: {run.output.strip().splitlines()[-1]}"
    options = json.dumps(args.radiocal_options.split())
    methods = {}
    if "pipeline" in routes:
        methods["radiocal"] = python_child(__file__, "--child", "pipeline", ms, skymodel,
                                           str(data_dir), options)
    if "commands" in routes:
        methods["commands"] = python_child(__file__, "--child", "radiocal", ms, skymodel,
                                           str(data_dir), options)
    if casa:
        methods["casa"] = [casa, __file__, "--child", "casa", ms, components, str(data_dir)]
    report = {"ms": ms, "ms_bytes": disk_bytes(ms), "radiocal_options": args.radiocal_options,
              "machine_start": machine()}
    runs = {name: [] for name in methods}
    for _ in range(args.repeat):
        for name, argv in methods.items():
            warm_page_cache(ms)
            os.sync()
            print(f"running {name} ...", file=sys.stderr)
            res = run_child(argv, cwd=data_dir)
            if res.returncode or res.result is None:
                sys.exit(f"{name} failed:\n{res.output}")
            runs[name].append({"wall_s": res.wall_s, "cpu_s": res.cpu_s,
                               "peak_rss_mb": res.peak_rss_mb,
                               "loadavg_after": os.getloadavg()[0], **res.result})
    if os.path.exists(components):
        os.remove(components)
    report["machine_end"] = machine()
    report["launcher_rss_mb"] = launcher_rss_mb()
    for name, rows in runs.items():
        report[name] = {"total_seconds": summary([r["total"] for r in rows]),
                        "cpu_seconds": summary([r["cpu_s"] for r in rows]),
                        "peak_rss_mb": max(r["peak_rss_mb"] for r in rows), "runs": rows}
    first = next((name for name in methods if name != "casa"), None)
    if casa and first:
        report["casa_version"] = casa_note
        for stat in ("best", "median"):
            report[f"speedup_vs_casa_{stat}"] = (report["casa"]["total_seconds"][stat]
                                                 / report[first]["total_seconds"][stat])
    else:
        report["casa"] = casa_note
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"MS: {ms} ({report['ms_bytes'] / 1e6:.0f} MB), best of {args.repeat}")
    for name in methods:
        r = report[name]
        best = min(r["runs"], key=lambda row: row["total"])
        steps = ", ".join(f"{k} {v:.1f}" for k, v in best["seconds"].items())
        print(f"  {name:8s} {r['total_seconds']['best']:7.1f} s (median "
              f"{r['total_seconds']['median']:.1f} s, CPU {r['cpu_seconds']['median']:.1f} s), "
              f"peak {r['peak_rss_mb']:.0f} MB: {steps}")
        if "report" in best["seconds"]:
            print(f"           report {100 * best['seconds']['report'] / best['total']:.0f}% of the "
                  f"route, peak {best['step_peak_rss_mb']['report']:.0f} MB")
    if casa and first:
        print(f"  {first} speed-up over CASA: {report['speedup_vs_casa_best']:.2f}x (best), "
              f"{report['speedup_vs_casa_median']:.2f}x (median)")
    else:
        print(f"  CASA: {casa_note}")
    print(f"  load average start {report['machine_start']['loadavg']}, "
          f"end {report['machine_end']['loadavg']} on {report['machine_end']['cpus']} CPUs")


if __name__ == "__main__":
    main()
