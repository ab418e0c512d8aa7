"""Benchmark: the default flagging strategy, in visibilities per second per core.

radiocal: ``read_ms`` -> visibilities loaded into memory -> default strategy (clip, shadow,
antenna health, SumThreshold, MAD) computed on dask's threaded scheduler with ``--threads``
workers. Two rates are reported: the flagging alone (``flag``) and reading the MS into memory
plus flagging (``read+flag``, the closer match to the peers, which read and write the MS).
Peers, each on its own copy of the same MS (copying is not timed), in the same run:

- ``aoflagger`` (Debian package ``aoflagger``): its default strategy with ``-j`` threads, as a
  user would run it (reads the MS, writes FLAG in place);
- CASA (``--casa-python``, a Python with casatools/casatasks/casadata): ``flagdata`` with
  ``mode='tfcrop'`` then ``mode='rflag'`` (default parameters), which also reads and writes the MS.

Ratios are radiocal/peer in vis/s of the best repeat; a peer that is absent is skipped with a note.
Each measurement runs in its own child process (clean peak memory), from a warm page cache.

    python benchmarks/bench_flagging.py                            # ../shared/data/vla_small
    python benchmarks/bench_flagging.py --ms path/to.ms --threads 2 --repeat 3 --json
    python benchmarks/bench_flagging.py --simulate 420             # a simulated 0.3 GB MS

Visibilities count time x baseline x channel x correlation cells of the MS rows.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402  (benchmarks/ is not a package)
    DATA_DIR,
    add_casa_option,
    casa_python,
    disk_bytes,
    emit_result,
    launcher_rss_mb,
    machine,
    python_child,
    rate_summary,
    run_child,
    summary,
    warm_page_cache,
)

VLA_SMALL = Path(__file__).resolve().parents[2] / "shared" / "data" / "vla_small" / "vla_small.ms"


# -- children ----------------------------------------------------------------------------------

def child_simulate(path: str, n_integrations: int) -> None:
    from radiocal.simulate import SimConfig, simulate_ms

    config = SimConfig.vla_small_like(n_antennas=27, spws=((1.3e9, 1.0e6, 64),),
                                      schedule=((0, n_integrations),), dead_antenna=None, seed=3)
    simulate_ms(path, config)


def child_radiocal(ms: str, threads: int) -> None:
    import dask

    from radiocal.flagging.strategy import apply_strategy, load_strategy
    from radiocal.store import schema as S
    from radiocal.ms.read import read_ms

    start = time.perf_counter()
    datasets = [ds.persist() for ds in read_ms(ms)]
    read_seconds = time.perf_counter() - start
    n_vis = int(sum(ds[S.ROW_PRESENT].values.sum() * ds.sizes[S.FREQUENCY]
                    * ds.sizes[S.POLARIZATION] for ds in datasets))
    strategy = load_strategy("default")
    # One untimed pass compiles (or loads from cache) every numba kernel; a few dozen
    # integrations of one partition reach every kernel without flagging the data twice.
    sample = datasets[0].isel({S.TIME: slice(0, 32)})
    dask.compute(apply_strategy(sample, strategy)[0][S.FLAG].data, scheduler="sync")
    with dask.config.set(scheduler="threads", num_workers=threads):
        start, cpu = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
        flags = dask.compute(*[apply_strategy(ds, strategy)[0][S.FLAG].data for ds in datasets])
        elapsed, cpu = time.perf_counter() - start, _cpu(resource.RUSAGE_SELF) - cpu
    flagged = float(sum(f.sum() for f in flags)) / sum(f.size for f in flags)
    emit_result(seconds=elapsed, cpu_seconds=cpu, read_seconds=read_seconds, n_vis=n_vis,
                flagged_fraction=flagged)


def _cpu(who) -> float:
    """User + system CPU seconds of this process (RUSAGE_SELF, all threads) or of its reaped
    children (RUSAGE_CHILDREN): on a loaded machine CPU time varies less than wall time."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _flagged_fraction(ms: str) -> float:
    from casacore.tables import table

    with table(ms, ack=False) as t:
        return float(t.getcol("FLAG").mean())


def child_aoflagger(ms: str, threads: int) -> None:
    import subprocess

    from casacore.tables import table

    with table(ms, ack=False) as t:
        data = t.getcol("DATA", nrow=1)
        n_vis = int(t.nrows() * data.shape[1] * data.shape[2])
    with tempfile.TemporaryDirectory(dir=DATA_DIR) as tmp:
        copy = os.path.join(tmp, "copy.ms")
        shutil.copytree(ms, copy)
        start, cpu = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
        done = subprocess.run(["aoflagger", "-j", str(threads), copy],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        elapsed, cpu = time.perf_counter() - start, _cpu(resource.RUSAGE_CHILDREN) - cpu
        if done.returncode:
            sys.exit(f"aoflagger exited with {done.returncode}:\n{done.stdout}")
        flagged = _flagged_fraction(copy)
    emit_result(seconds=elapsed, cpu_seconds=cpu, n_vis=n_vis, flagged_fraction=flagged)


def child_casa(ms: str, threads: int) -> None:
    """CASA flagdata tfcrop then rflag on a copy; runs under the CASA interpreter (no radiocal,
    no python-casacore there: only casatools). CASA's flagdata is single-threaded (``threads``
    is not used)."""
    from casatasks import flagdata
    from casatools import table

    with tempfile.TemporaryDirectory(dir=DATA_DIR) as tmp:
        copy = os.path.join(tmp, "copy.ms")
        shutil.copytree(ms, copy)
        tb = table()
        tb.open(copy)
        shape = tb.getcell("DATA", 0).shape        # (corr, chan)
        n_vis = int(tb.nrows() * shape[0] * shape[1])
        tb.close()
        start, cpu = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
        # flagbackup=False: the backup copies FLAG into .flagversions, which radiocal's and
        # aoflagger's timings do not include either.
        flagdata(vis=copy, mode="tfcrop", flagbackup=False)
        flagdata(vis=copy, mode="rflag", flagbackup=False)
        elapsed, cpu = time.perf_counter() - start, _cpu(resource.RUSAGE_SELF) - cpu
        tb.open(copy)
        flagged = float(tb.getcol("FLAG").mean())
        tb.close()
    emit_result(seconds=elapsed, cpu_seconds=cpu, n_vis=n_vis, flagged_fraction=flagged)


# -- orchestration ------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ms", help="Measurement Set to flag (default: ../shared vla_small)")
    parser.add_argument("--simulate", type=int, metavar="N",
                        help="simulate (once, cached) a 27-antenna, 64-channel MS of N "
                             "integrations")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--no-aoflagger", action="store_true", help="skip the aoflagger peer")
    add_casa_option(parser)
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args()

    DATA_DIR.mkdir(exist_ok=True)
    if args.simulate:
        ms = DATA_DIR / f"flagging_27ant_64ch_{args.simulate}int.ms"
        if not ms.exists():
            print(f"simulating {ms} ...", file=sys.stderr)
            partial = ms.with_suffix(".partial")
            shutil.rmtree(partial, ignore_errors=True)
            done = run_child(python_child(__file__, "simulate", str(partial), str(args.simulate)))
            if done.returncode:
                sys.exit(done.output)
            os.rename(partial, ms)
    else:
        ms = Path(args.ms) if args.ms else VLA_SMALL
    if not ms.exists():
        sys.exit(f"{ms}: no such Measurement Set")

    notes = {}
    methods = {"radiocal": python_child(__file__, "radiocal", str(ms), str(args.threads))}
    if args.no_aoflagger:
        notes["aoflagger"] = "skipped: --no-aoflagger"
    elif shutil.which("aoflagger"):
        methods["aoflagger"] = python_child(__file__, "aoflagger", str(ms), str(args.threads))
    else:
        notes["aoflagger"] = "skipped: the aoflagger command is not installed"
    casa, casa_note = casa_python(args.casa_python)
    if casa:
        methods["casa"] = [casa, __file__, "casa", str(ms), str(args.threads)]
    else:
        notes["casa"] = casa_note

    report = {"ms": str(ms), "ms_bytes": disk_bytes(ms), "threads": args.threads,
              "machine_start": machine()}
    if casa:
        report["casa_version"] = casa_note
    rows = {name: [] for name in methods}
    for _ in range(args.repeat):
        for name, argv in methods.items():   # interleaved: load bursts hit every method
            warm_page_cache(ms)
            os.sync()
            res = run_child(argv, cwd=DATA_DIR)
            if res.returncode or res.result is None:
                sys.exit(f"{name} failed:\n{res.output}")
            row = {"wall_s": res.wall_s, "cpu_s": res.cpu_s, "peak_rss_mb": res.peak_rss_mb,
                   "loadavg_after": os.getloadavg()[0], **res.result}
            row["vis_per_s"] = res.result["n_vis"] / res.result["seconds"]
            if res.result.get("cpu_seconds"):
                row["vis_per_cpu_s"] = res.result["n_vis"] / res.result["cpu_seconds"]
            if "read_seconds" in res.result:
                row["read_flag_vis_per_s"] = res.result["n_vis"] / (
                    res.result["seconds"] + res.result["read_seconds"])
            rows[name].append(row)
    report["machine_end"] = machine()
    report["launcher_rss_mb"] = launcher_rss_mb()
    for name, runs in rows.items():
        entry = {"seconds": summary([r["seconds"] for r in runs]),
                 "vis_per_s": rate_summary([r["vis_per_s"] for r in runs]),
                 "peak_rss_mb": max(r["peak_rss_mb"] for r in runs),
                 "n_vis": runs[0]["n_vis"],
                 "flagged_fraction": runs[0]["flagged_fraction"], "runs": runs}
        entry["vis_per_s_per_core"] = entry["vis_per_s"]["best"] / (
            1 if name == "casa" else args.threads)
        if all("vis_per_cpu_s" in r for r in runs):
            entry["vis_per_cpu_s"] = rate_summary([r["vis_per_cpu_s"] for r in runs])
        if name == "radiocal":
            entry["read_flag_vis_per_s"] = rate_summary([r["read_flag_vis_per_s"] for r in runs])
        report[name] = entry
    for peer in ("aoflagger", "casa"):
        if peer in rows:
            best = report[peer]["vis_per_s"]["best"]
            report[f"ratio_radiocal_over_{peer}"] = {
                "flag": report["radiocal"]["vis_per_s"]["best"] / best,
                "read+flag": report["radiocal"]["read_flag_vis_per_s"]["best"] / best}
            if "vis_per_cpu_s" in report["radiocal"] and "vis_per_cpu_s" in report[peer]:
                report[f"ratio_radiocal_over_{peer}"]["flag_per_cpu_s"] = (
                    report["radiocal"]["vis_per_cpu_s"]["best"]
                    / report[peer]["vis_per_cpu_s"]["best"])
        else:
            report[peer] = notes[peer]
    if args.json:
        print(json.dumps(report, indent=2))
        return
    rc = report["radiocal"]
    print(f"{ms} ({report['ms_bytes'] / 1e6:.0f} MB, {rc['n_vis'] / 1e6:.1f} M vis), "
          f"{args.threads} thread(s), best of {args.repeat}")
    print(f"  radiocal default   flag {rc['vis_per_s']['best'] / 1e6:7.2f} M vis/s "
          f"({rc['seconds']['best']:.2f} s), "
          f"read+flag {rc['read_flag_vis_per_s']['best'] / 1e6:7.2f}"
          f" M vis/s, {rc['vis_per_cpu_s']['best'] / 1e6:.2f} M vis per CPU-s (flag), "
          f"peak {rc['peak_rss_mb']:.0f} MB, flagged {rc['flagged_fraction']:.1%}")
    for peer, label in (("aoflagger", "aoflagger default "), ("casa", "CASA tfcrop+rflag ")):
        if peer not in rows:
            print(f"  {peer}: {report[peer]}")
            continue
        r = report[peer]
        ratio = report[f"ratio_radiocal_over_{peer}"]
        print(f"  {label} {r['vis_per_s']['best'] / 1e6:7.2f} M vis/s "
              f"({r['seconds']['best']:.2f} s), "
              f"{r['vis_per_cpu_s']['best'] / 1e6:.2f} M vis per CPU-s, "
              f"peak {r['peak_rss_mb']:.0f} MB, flagged {r['flagged_fraction']:.1%}; "
              f"radiocal/{peer}: {ratio['flag']:.2f}x (flag), "
              f"{ratio['read+flag']:.2f}x (read+flag), "
              f"{ratio['flag_per_cpu_s']:.2f}x (flag, per CPU-s)")
    print(f"  load average start {report['machine_start']['loadavg']}, "
          f"end {report['machine_end']['loadavg']} on {report['machine_end']['cpus']} CPUs")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] in ("simulate", "radiocal", "aoflagger", "casa"):
        role, *rest = sys.argv[1:]
        {"simulate": lambda p, n: child_simulate(p, int(n)),
         "radiocal": lambda m, t: child_radiocal(m, int(t)),
         "aoflagger": lambda m, t: child_aoflagger(m, int(t)),
         "casa": lambda m, t: child_casa(m, int(t))}[role](*rest)
    else:
        main()
