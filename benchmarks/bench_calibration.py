"""Benchmark: gain / bandpass solving and applying, in visibilities per second.

radiocal: ``read_ms`` -> ``solve`` (G ap int, B inf) on the calibrator scan, and ``apply``
(bandpass + gains, linear) of every partition computed on dask's threaded scheduler. The peer,
when CASA is installed (``--casa-python``: a Python with casatools, casatasks and casadata, run as
a separate interpreter): ``gaincal``, ``bandpass`` and ``applycal`` with the same settings on a
copy of the same MS (copying is not timed), in the same run. Each measurement runs in its own
child process (clean peak memory) from a warm page cache.

    python benchmarks/bench_calibration.py                  # simulate (once) a small MS
    python benchmarks/bench_calibration.py --integrations 280 --repeat 3 --json   # ~0.44 GB
    python benchmarks/bench_calibration.py --ms ../shared/data/vla_small/vla_small.ms
    python benchmarks/bench_calibration.py --sky-store OUT/store.zarr --chunk-mb 64

``--sky-store``: the OVRO-LWA ``sky_bandpass`` step (B and K against ``VISIBILITY_MODEL``, post-
processing, the apply computed) on a store that went through ``convert`` and ``ateam``, with 1
and with 2 threads: wall and CPU time, visibilities per second, peak RSS and the speed-up.

Prints visibilities per second of each operation (time x baseline x channel x correlation that
the operation reads), peak memory, and the ratio to CASA, or says the CASA run was skipped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402  (benchmarks/ is not a package)
    DATA_DIR,
    add_casa_option,
    casa_python,
    cpu_seconds,
    disk_bytes,
    emit_result,
    launcher_rss_mb,
    machine,
    python_child,
    run_child,
    summary,
    warm_page_cache,
)

N_ANTENNAS = 27
N_CHANNELS = 64
CALIBRATOR = "J1331+3030"
OPERATIONS = ("gaincal", "bandpass", "applycal")


# -- children ----------------------------------------------------------------------------------

def child_simulate(path: str, n_integrations: int) -> None:
    """A calibrator scan and a target scan of ``n_integrations`` each."""
    from radiocal.simulate import SimConfig, simulate_ms

    config = SimConfig(n_antennas=N_ANTENNAS, spws=((1.3e9, 1.0e6, N_CHANNELS),),
                       schedule=((0, n_integrations), (2, n_integrations)), noise=0.05)
    partial = path + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    simulate_ms(partial, config)
    os.rename(partial, path)
    emit_result(ok=True)


def child_radiocal(path: str) -> None:
    import dask

    from radiocal.calibration.config import SolveOptions
    from radiocal.calibration.dataset import solve
    from radiocal.calibration.jones import ApplyTable, apply
    from radiocal.store import schema as S
    from radiocal.ms.read import read_ms

    def nvis(datasets):
        return sum(math.prod(ds[S.VISIBILITY].shape) for ds in datasets)

    def once():
        times = {}
        datasets = read_ms([path])
        cal = [ds for ds in datasets if ds.attrs[S.ATTR_FIELD_NAME] == CALIBRATOR]
        with dask.config.set(scheduler="threads"):
            start, cpu0 = time.perf_counter(), cpu_seconds()
            gains = solve(cal, "G", SolveOptions(solint="int", calmode="ap", refant="0"))
            times["gaincal"] = (time.perf_counter() - start, nvis(cal), cpu_seconds() - cpu0)
            start, cpu0 = time.perf_counter(), cpu_seconds()
            bp = solve(cal, "B", SolveOptions(solint="inf", solnorm=True, refant="0"),
                       prior=[ApplyTable(gains)])
            times["bandpass"] = (time.perf_counter() - start, nvis(cal), cpu_seconds() - cpu0)
            start, cpu0 = time.perf_counter(), cpu_seconds()
            out = apply(datasets, [ApplyTable(bp), ApplyTable(gains)])
            dask.compute(*[(ds[S.VISIBILITY_CORRECTED].data, ds[S.FLAG].data) for ds in out])
            times["applycal"] = (time.perf_counter() - start, nvis(datasets),
                                 cpu_seconds() - cpu0)
        return times

    # The first run includes loading the cached numba kernels; the second is the steady state.
    cold = once()
    warm = once()
    emit_result(cold={k: v[0] for k, v in cold.items()}, warm={k: v[0] for k, v in warm.items()},
                nvis={k: v[1] for k, v in cold.items()},
                cpu_cold={k: v[2] for k, v in cold.items()})


def child_sky(store: str, threads: str, chunk_mb: str, work: str) -> None:
    import dask

    from radiocal.budget import chunk_budget
    from radiocal.calibration.skycal import SkyBandpassConfig, sky_bandpass_step
    from radiocal.engine.context import StepContext
    from radiocal.store import schema as S
    from radiocal.store.zarr_store import open_store

    datasets = open_store(store)
    nvis = sum(math.prod(ds[S.VISIBILITY].shape) for ds in datasets)
    with dask.config.set(scheduler="threads", num_workers=int(threads)), \
            chunk_budget(int(float(chunk_mb) * 2**20)):
        start, cpu0 = time.perf_counter(), cpu_seconds()
        out = sky_bandpass_step(datasets, SkyBandpassConfig(),
                                StepContext(outdir=Path(work), store=Path(work) / "no-store"))
        solved = time.perf_counter() - start
        dask.compute(*[ds[S.VISIBILITY_CORRECTED].data.sum() for ds in out])
        seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu0
    emit_result(seconds=seconds, solve_seconds=solved, cpu=cpu, nvis=nvis)


def sky_main(args) -> None:
    store = os.path.abspath(args.sky_store)
    DATA_DIR.mkdir(exist_ok=True)
    work = DATA_DIR / "sky_bandpass_out"
    start_machine = machine()
    runs = {}
    for threads in (1, 2):
        # the child runs in DATA_DIR: it must import this checkout's radiocal, not an installed one
        env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
        run = run_child(python_child(__file__, "--child", "sky", store, str(threads),
                                     str(args.chunk_mb), str(work)), cwd=DATA_DIR, env=env)
        if run.returncode or run.result is None:
            sys.exit(f"sky_bandpass child failed:\n{run.output}")
        runs[threads] = dict(run.result, peak_rss_mb=run.peak_rss_mb, child_cpu_s=run.cpu_s)
    report = {"store": store, "chunk_mb": args.chunk_mb, "runs": runs,
              "speedup_2_threads": runs[1]["seconds"] / runs[2]["seconds"],
              "machine_start": start_machine, "machine_end": machine()}
    if args.json:
        print(json.dumps(report, indent=1))
        return
    for threads, r in runs.items():
        print(f"sky_bandpass, {threads} thread(s): {r['seconds']:.1f} s "
              f"(solve {r['solve_seconds']:.1f} s), CPU {r['cpu']:.1f} s, "
              f"{r['nvis'] / r['seconds'] / 1e6:.2f} M vis/s, peak RSS {r['peak_rss_mb']:.0f} MB")
    print(f"2 threads / 1 thread: {report['speedup_2_threads']:.2f}x; load average start "
          f"{start_machine['loadavg']}, end {report['machine_end']['loadavg']}")


def child_casa(path: str, work: str) -> None:
    """gaincal / bandpass / applycal with the same settings, on a copy of the MS. Runs under the
    CASA interpreter: casatools/casatasks only, no radiocal."""
    from casatasks import applycal, bandpass, gaincal
    from casatools import table

    copy = os.path.join(work, "casa_cal_copy.ms")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(path, copy)
    tb = table()
    tb.open(copy + "/FIELD")
    cal_id = list(tb.getcol("NAME")).index(CALIBRATOR)
    tb.close()
    tb.open(copy)
    fields = tb.getcol("FIELD_ID")
    shape = tb.getcell("DATA", 0).shape
    tb.close()
    ncal = int((fields == cal_id).sum()) * shape[0] * shape[1]
    nall = int(fields.size) * shape[0] * shape[1]
    g, b = os.path.join(work, "bench.G"), os.path.join(work, "bench.B")
    for t in (g, b):
        shutil.rmtree(t, ignore_errors=True)
    times = {}
    start, cpu0 = time.perf_counter(), cpu_seconds()
    gaincal(vis=copy, caltable=g, field=CALIBRATOR, solint="int", calmode="ap", refant="0")
    times["gaincal"] = (time.perf_counter() - start, ncal, cpu_seconds() - cpu0)
    start, cpu0 = time.perf_counter(), cpu_seconds()
    bandpass(vis=copy, caltable=b, field=CALIBRATOR, solint="inf", solnorm=True, refant="0",
             gaintable=[g])
    times["bandpass"] = (time.perf_counter() - start, ncal, cpu_seconds() - cpu0)
    start, cpu0 = time.perf_counter(), cpu_seconds()
    # flagbackup=False: the flag-version copy is not part of radiocal's apply either.
    applycal(vis=copy, gaintable=[b, g], interp=["linear", "linear"], calwt=False,
             flagbackup=False)
    times["applycal"] = (time.perf_counter() - start, nall, cpu_seconds() - cpu0)
    for path in (copy, copy + ".flagversions", g, b):
        shutil.rmtree(path, ignore_errors=True)
    emit_result(seconds={k: v[0] for k, v in times.items()},
                nvis={k: v[1] for k, v in times.items()},
                cpu={k: v[2] for k, v in times.items()})


# -- orchestration -----------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--integrations", type=int, default=30,
                        help="integrations per scan of the simulated MS (calibrator + target)")
    parser.add_argument("--ms", help="an existing MS with a J1331+3030 scan instead of simulating")
    add_casa_option(parser)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON summary")
    parser.add_argument("--sky-store", help="measure sky_bandpass on this store instead")
    parser.add_argument("--chunk-mb", type=float, default=64.0, help="chunk budget (--sky-store)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        {"simulate": lambda p, n: child_simulate(p, int(n)), "sky": child_sky,
         "radiocal": child_radiocal, "casa": child_casa}[kind](*rest)
        return
    if args.sky_store:
        sky_main(args)
        return

    DATA_DIR.mkdir(exist_ok=True)
    if args.ms:
        ms = os.path.abspath(args.ms)
        if not os.path.isdir(ms):
            sys.exit(f"{ms}: no such Measurement Set")
    else:
        ms = str(DATA_DIR / f"calibration_{N_ANTENNAS}ant_{N_CHANNELS}ch_{args.integrations}int.ms")
    if not os.path.isdir(ms):
        sim = run_child(python_child(__file__, "--child", "simulate", ms, args.integrations))
        if sim.returncode:
            sys.exit(f"simulation failed:\n{sim.output}")
    casa, casa_note = casa_python(args.casa_python)
    start_machine = machine()
    ours, peer, cpu = [], [], {"radiocal": [], "casa": []}
    for _ in range(args.repeat):
        warm_page_cache(ms)
        os.sync()
        run = run_child(python_child(__file__, "--child", "radiocal", ms), cwd=DATA_DIR)
        if run.returncode or run.result is None:
            sys.exit(f"radiocal child failed:\n{run.output}")
        ours.append((run.result, run.peak_rss_mb))
        cpu["radiocal"].append(run.cpu_s)
        if casa:
            warm_page_cache(ms)
            os.sync()
            run = run_child([casa, __file__, "--child", "casa", ms, str(DATA_DIR)], cwd=DATA_DIR)
            if run.returncode or run.result is None:
                sys.exit(f"CASA child failed:\n{run.output}")
            peer.append((run.result, run.peak_rss_mb))
            cpu["casa"].append(run.cpu_s)
    report = {"ms": ms, "ms_bytes": disk_bytes(ms), "machine_start": start_machine,
              "machine_end": machine(), "launcher_rss_mb": launcher_rss_mb(),
              "radiocal_peak_rss_mb": max(m for _, m in ours),
              "radiocal_child_cpu_s": summary(cpu["radiocal"])}
    for op in OPERATIONS:
        nvis = ours[0][0]["nvis"][op]
        cold = [r["cold"][op] for r, _ in ours]
        warm = [r["warm"][op] for r, _ in ours]
        report[op] = {"visibilities": nvis, "radiocal_seconds": summary(cold),
                      "radiocal_vis_per_s": nvis / min(cold),
                      "radiocal_warm_vis_per_s": nvis / min(warm),
                      "radiocal_cpu_seconds": summary([r["cpu_cold"][op] for r, _ in ours])}
        if peer:
            secs = [r["seconds"][op] for r, _ in peer]
            report[op]["casa_seconds"] = summary(secs)
            report[op]["casa_vis_per_s"] = peer[0][0]["nvis"][op] / min(secs)
            report[op]["casa_cpu_seconds"] = summary([r["cpu"][op] for r, _ in peer])
            report[op]["speedup_vs_casa"] = (report[op]["radiocal_vis_per_s"]
                                             / report[op]["casa_vis_per_s"])
    if peer:
        report["casa_version"] = casa_note
        report["casa_peak_rss_mb"] = max(m for _, m in peer)
        report["casa_child_cpu_s"] = summary(cpu["casa"])
    else:
        report["casa"] = casa_note
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"MS: {ms} ({report['ms_bytes'] / 1e6:.0f} MB), best of {args.repeat}")
    for op in OPERATIONS:
        r = report[op]
        line = (f"{op:9s} {r['visibilities'] / 1e6:6.2f} M vis: radiocal "
                f"{r['radiocal_vis_per_s'] / 1e6:7.2f} M vis/s cold "
                f"({r['radiocal_seconds']['best']:.2f} s, "
                f"CPU {r['radiocal_cpu_seconds']['best']:.2f} s), "
                f"{r['radiocal_warm_vis_per_s'] / 1e6:7.2f} M vis/s warm")
        if peer:
            line += (f"; CASA {r['casa_vis_per_s'] / 1e6:7.2f} M vis/s "
                     f"({r['casa_seconds']['best']:.2f} s, "
                     f"CPU {r['casa_cpu_seconds']['best']:.2f} s); "
                     f"ratio {r['speedup_vs_casa']:.2f}x")
        print(line)
    line = f"peak RSS: radiocal {report['radiocal_peak_rss_mb']:.0f} MB"
    if peer:
        line += f", CASA {report['casa_peak_rss_mb']:.0f} MB ({casa_note})"
    print(line)
    if not peer:
        print(f"CASA: {casa_note}")
    print(f"load average start {report['machine_start']['loadavg']}, "
          f"end {report['machine_end']['loadavg']} on {report['machine_end']['cpus']} CPUs")


if __name__ == "__main__":
    main()
