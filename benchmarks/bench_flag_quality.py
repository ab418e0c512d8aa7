"""Benchmark: what the default flagging strategy flags, against AOFlagger 3.1's default.

Two kinds of data, each flagged by radiocal (``read_ms`` -> the default strategy, i.e. the shipped
strategy of the data's telescope, on dask's threaded scheduler) and by ``aoflagger`` (on a copy;
it writes FLAG in place), each in its own child process:

- real Measurement Sets (default: every set in ``../shared/data/real``): the newly flagged
  fraction of good data (unflagged, finite, non-zero cross-correlations) — there is no truth;
- an LWA-like simulation with bright sources far from the phase centre (``--lwa-antennas``,
  192 channels, ``--lwa-integrations``; six 50-2000 Jy sources across the sky, noise 20 Jy;
  persistent RFI channels, spikes and, with 3+ integrations, a broadband burst): the fraction of
  injected RFI found and of clean data flagged. Simulated once per size under /work/benchdata
  (or ``--data-dir``), with its truth beside it.

    python benchmarks/bench_flag_quality.py                       # real sets + LWA 48 ant x 6 int
    python benchmarks/bench_flag_quality.py --lwa-antennas 352 --lwa-integrations 1 --no-real
    python benchmarks/bench_flag_quality.py --no-lwa --no-real \
        --combine-spws ../shared/data/real/carma_sza_3c273/carma_sza_3c273.ms

``--combine-spws MS`` adds MS with its windows merged into one by CASA's ``mstransform``
(``combinespws=True``; made once under ``--data-dir``): a wideband window whose noise steps
between the merged sub-bands (CARMA's two receivers differ ~10x), which a strategy assuming one
noise level per window flags by halves.

CPU seconds of the flagging alone (radiocal: data in memory; aoflagger: its whole run, reading
and writing the MS) and peak memory are reported too; give the load average with any timing.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
# radiocal from this checkout (children run this file too), not an installed copy.
sys.path.insert(1, str(Path(__file__).resolve().parents[1]))
from _common import (  # noqa: E402
    add_casa_option, casa_python, emit_result, machine, python_child, run_child)

REAL = Path(__file__).resolve().parents[2] / "shared" / "data" / "real"
# Six sources across the sky (l, m, Jy at 74 MHz, spectral index), as in tests/flagging.
SKY = ((0.3, 0.2, 2000.0, -0.7), (-0.5, 0.4, 1200.0, -0.8), (0.6, -0.5, 600.0, -0.6),
       (-0.2, -0.7, 300.0, -0.9), (0.75, 0.1, 100.0, -0.5), (-0.8, -0.3, 50.0, -0.7))


# -- children ----------------------------------------------------------------------------------

def _rows(ms):
    """Per MS row: DATA, FLAG, and whether it is a cross-correlation; plus TIME/ANTENNA1/2."""
    from casacore.tables import table

    with table(str(ms), ack=False) as t:
        cols = {c: t.getcol(c) for c in ("DATA", "FLAG", "TIME", "ANTENNA1", "ANTENNA2")}
    return cols


def _good(cols):
    import numpy as np

    cross = (cols["ANTENNA1"] != cols["ANTENNA2"])[:, None, None]
    return ~cols["FLAG"] & np.isfinite(cols["DATA"]) & (cols["DATA"] != 0) & cross


def _truth_rows(ms, cols):
    """The simulation's RFI truth per MS row (``truth.npz`` beside the MS), or None."""
    import numpy as np

    path = Path(ms).with_suffix(".truth.npz")
    if not path.exists():
        return None
    truth = np.load(path)
    rfi, times, a1, a2 = truth["rfi"], truth["time"], truth["antenna1"], truth["antenna2"]
    index = {(int(p), int(q)): b for b, (p, q) in enumerate(zip(a1, a2))}
    t_idx = np.searchsorted(times, cols["TIME"])
    b_idx = np.array([index[(int(p), int(q))] for p, q in zip(cols["ANTENNA1"], cols["ANTENNA2"])])
    return rfi[t_idx, b_idx]


def _scores(good, after, rfi):
    new = after & good
    out = {"newly_flagged": float(new.sum() / good.sum()), "n_good": int(good.sum())}
    if rfi is not None:
        out["found"] = float((new & rfi).sum() / (good & rfi).sum())
        out["false"] = float((new & ~rfi).sum() / (good & ~rfi).sum())
    return out


def child_simulate(path: str, n_antennas: int, n_integrations: int) -> None:
    import numpy as np

    from radiocal.store import schema as S
    from radiocal.simulate import SimConfig, simulate_ms
    from radiocal.simulate.config import PointSource

    config = SimConfig.lwa(
        n_subbands=1, n_channels=192, n_integrations=n_integrations, n_antennas=n_antennas,
        background=tuple(PointSource(*s) for s in SKY), noise=20.0, autocorrelations=False,
        rfi_channels=6, rfi_bursts=1 if n_integrations >= 3 else 0, rfi_spike_fraction=0.02,
        seed=7)
    sim = simulate_ms(path, config)
    (ds,) = sim.datasets
    np.savez_compressed(Path(path).with_suffix(".truth.npz"),
                        rfi=sim.truth.rfi[ds.attrs[S.ATTR_PARTITION]], time=ds[S.TIME].values,
                        antenna1=ds[S.BASELINE_ANTENNA1].values,
                        antenna2=ds[S.BASELINE_ANTENNA2].values)


def child_radiocal(ms: str, threads: int) -> None:
    """Scored on the (time, baseline) grid read_ms makes; the truth is mapped onto it."""
    import dask
    import numpy as np

    from radiocal.flagging.strategy import apply_strategy, load_strategy
    from radiocal.store import schema as S
    from radiocal.ms.read import read_ms

    datasets = [ds.persist() for ds in read_ms(ms)]
    strategies = [load_strategy("default", ds.attrs.get(S.ATTR_TELESCOPE)) for ds in datasets]
    with dask.config.set(scheduler="threads", num_workers=threads):
        start, cpu = time.perf_counter(), time.process_time()
        flags = dask.compute(*[apply_strategy(ds, st)[0][S.FLAG].data
                               for ds, st in zip(datasets, strategies)])
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    truth_path = Path(ms).with_suffix(".truth.npz")
    truth = np.load(truth_path) if truth_path.exists() else None
    goods, afters, rfis, n_vis = [], [], [], 0
    for ds, after in zip(datasets, flags):
        vis = ds[S.VISIBILITY].values
        a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
        present = ds[S.ROW_PRESENT].values[:, :, None, None]
        goods.append((~ds[S.FLAG].values & np.isfinite(vis) & (vis != 0)
                      & (a1 != a2)[None, :, None, None] & present).ravel())
        afters.append(after.ravel())
        n_vis += int(np.broadcast_to(present, vis.shape).sum())
        if truth is not None:
            index = {(int(p), int(q)): b for b, (p, q) in
                     enumerate(zip(truth["antenna1"], truth["antenna2"]))}
            t_idx = np.searchsorted(truth["time"], ds[S.TIME].values)
            b_idx = np.array([index.get((int(p), int(q)), 0) for p, q in zip(a1, a2)])
            rfis.append(truth["rfi"][t_idx][:, b_idx].ravel())
    rfi = np.concatenate(rfis) if truth is not None else None
    emit_result(seconds=elapsed, cpu_seconds=cpu, strategy=sorted({s.name for s in strategies}),
                n_vis=n_vis, **_scores(np.concatenate(goods), np.concatenate(afters), rfi))


def child_aoflagger(ms: str, threads: int) -> None:
    import resource

    with tempfile.TemporaryDirectory(dir=Path(ms).parent) as tmp:
        copy = Path(tmp) / "copy.ms"
        shutil.copytree(ms, copy)
        before = _rows(copy)
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(["aoflagger", "-j", str(threads), str(copy)],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        elapsed = time.perf_counter() - start
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if done.returncode:
            sys.exit(f"aoflagger exited with {done.returncode}:\n{done.stdout}")
        flags = _rows(copy)["FLAG"]
    cpu = (after.ru_utime + after.ru_stime) - (usage.ru_utime + usage.ru_stime)
    emit_result(seconds=elapsed, cpu_seconds=cpu, n_vis=int(before["DATA"].size),
                **_scores(_good(before), flags, _truth_rows(ms, before)))


# -- orchestration ------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ms", action="append", default=[], help="a real MS (repeatable; "
                        "default: every set in ../shared/data/real)")
    parser.add_argument("--no-real", action="store_true", help="skip the real sets")
    parser.add_argument("--lwa-antennas", type=int, default=48)
    parser.add_argument("--lwa-integrations", type=int, default=6)
    parser.add_argument("--no-lwa", action="store_true", help="skip the LWA-like simulation")
    parser.add_argument("--data-dir", default="/work/benchdata", help="where simulations go")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--combine-spws", action="append", default=[], metavar="MS",
                        help="also flag MS with its windows merged into one by CASA's "
                             "mstransform (repeatable; needs --casa-python)")
    add_casa_option(parser)
    args = parser.parse_args()

    sets = [Path(m) for m in args.ms]
    if args.combine_spws:
        python, note = casa_python(args.casa_python)
        if python is None:
            sys.exit(f"--combine-spws: {note}")
        for ms in map(Path, args.combine_spws):
            merged = Path(args.data_dir) / f"{ms.stem}_combined.ms"
            if not merged.exists():
                script = (f"from casatasks import mstransform; mstransform(vis={str(ms)!r}, "
                          f"outputvis={str(merged)!r}, combinespws=True, datacolumn='data')")
                with tempfile.TemporaryDirectory() as tmp:   # CASA drops its log in its cwd
                    done = subprocess.run([python, "-c", script], cwd=tmp, text=True,
                                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
                if done.returncode or not merged.exists():
                    sys.exit(f"mstransform failed on {ms}:\n{done.stdout}")
            sets.append(merged)
    if not sets and not args.no_real:
        sets = sorted(REAL.glob("*/*.ms"))
    if not args.no_lwa:
        ms = (Path(args.data_dir) / f"lwa_sky6_{args.lwa_antennas}ant_192ch_"
              f"{args.lwa_integrations}int.ms")
        # Shared with other benchmarks' runs: one writer at a time (the data directory's lock).
        with open(Path(args.data_dir) / ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if not ms.exists():
                print(f"simulating {ms} ...", file=sys.stderr)
                partial = ms.with_name(ms.stem + ".partial.ms")
                shutil.rmtree(partial, ignore_errors=True)
                done = run_child(python_child(__file__, "simulate", str(partial),
                                              str(args.lwa_antennas),
                                              str(args.lwa_integrations)))
                if done.returncode:
                    sys.exit(done.output)
                os.rename(partial.with_suffix(".truth.npz"), ms.with_suffix(".truth.npz"))
                os.rename(partial, ms)
        sets.append(ms)
    have_aoflagger = shutil.which("aoflagger") is not None
    report = {"threads": args.threads, "machine_start": machine(), "sets": {}}
    for ms in sets:
        entry = {}
        for name in ("radiocal", "aoflagger"):
            if name == "aoflagger" and not have_aoflagger:
                entry[name] = "skipped: the aoflagger command is not installed"
                continue
            res = run_child(python_child(__file__, name, str(ms), str(args.threads)))
            if res.returncode or res.result is None:
                sys.exit(f"{name} failed on {ms}:\n{res.output}")
            entry[name] = {**res.result, "peak_rss_mb": res.peak_rss_mb,
                           "loadavg_after": os.getloadavg()[0]}
        report["sets"][ms.name] = entry
    report["machine_end"] = machine()
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"{'set':<40} {'radiocal':>10} {'AOFlagger':>10}   (newly flagged % of good data)")
    for name, entry in report["sets"].items():
        rc, ao = entry["radiocal"], entry.get("aoflagger")
        ao_text = f"{100 * ao['newly_flagged']:9.2f}%" if isinstance(ao, dict) else "   -"
        print(f"{name:<40} {100 * rc['newly_flagged']:9.2f}% {ao_text}")
        for label, r in (("radiocal", rc), ("aoflagger", ao)):
            if not isinstance(r, dict):
                continue
            extra = (f", RFI found {100 * r['found']:.2f}%, clean flagged {100 * r['false']:.2f}%"
                     if "found" in r else "")
            print(f"    {label:<10} {r['n_vis'] / r['cpu_seconds'] / 1e6:6.2f} M vis per CPU-s, "
                  f"peak {r['peak_rss_mb']:.0f} MB{extra}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("simulate", "radiocal", "aoflagger"):
        kind = sys.argv[1]
        if kind == "simulate":
            child_simulate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        else:
            {"radiocal": child_radiocal, "aoflagger": child_aoflagger}[kind](
                sys.argv[2], int(sys.argv[3]))
    else:
        main()
