"""Benchmark: predict + subtract + average over baselines (a target's dynamic spectrum).

radiocal: ``read_ms`` -> ``dynamic_spectrum`` (DFT predict of the sky model with the w-term,
lazy uvsub, baseline average with error spectra) computed on dask's threaded scheduler. The peer,
when CASA is installed (``--casa-python``: a Python with casatools, casatasks and casadata, run as
a separate interpreter): ``ft`` of the same components (a CASA component list) into MODEL_DATA of
the target field, ``uvsub``, then a ``getcol`` of the target's CORRECTED_DATA and FLAG and a numpy
Stokes I average over baselines (the route people use today), on a copy of the MS (copying is not
timed). Each measurement runs in its own child process (clean peak memory), from a warm page cache.

    python benchmarks/bench_dynspec.py                       # simulate (once) a small MS
    python benchmarks/bench_dynspec.py --integrations 500 --sources 20 --repeat 3 --json  # 0.40 GB
    python benchmarks/bench_dynspec.py --ms ../shared/data/vla_small/vla_small.ms \
        --skymodel ../shared/data/vla_small/skymodel.txt

Prints visibilities per second (time x baseline x channel x correlation of the target), peak
memory, and the CASA ratio when CASA runs (else says why it was skipped).
"""

from __future__ import annotations

import argparse
import gc
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
    ms_with_skymodel,
    python_child,
    run_child,
    summary,
    warm_page_cache,
)

N_ANTENNAS = 27
N_CHANNELS = 64
TARGET = "STAR"


# -- children ----------------------------------------------------------------------------------

def child_simulate(path: str, n_integrations: int, n_sources: int) -> None:
    """One target scan of a star with ``n_sources`` background points; writes the MS + sky model."""
    import numpy as np

    from radiocal.simulate import DEFAULT_FIELDS, PointSource, SimConfig, simulate_ms

    rng = np.random.default_rng(0)
    background = tuple(PointSource(float(l), float(m), float(s), float(a)) for l, m, s, a in zip(
        rng.uniform(-0.01, 0.01, n_sources), rng.uniform(-0.01, 0.01, n_sources),
        rng.uniform(0.05, 1.0, n_sources), rng.uniform(-1.0, 0.0, n_sources)))
    config = SimConfig(n_antennas=N_ANTENNAS, spws=((1.3e9, 1.0e6, N_CHANNELS),),
                       schedule=((0, n_integrations),), fields=(DEFAULT_FIELDS[2],),
                       background=background, noise=0.05)
    partial = path + ".partial"
    shutil.rmtree(partial, ignore_errors=True)
    sim = simulate_ms(partial, config)
    Path(partial + ".sky.txt").write_text(sim.truth.sky.skymodel_text(0))
    os.rename(partial + ".sky.txt", path + ".sky.txt")
    os.rename(partial, path)
    emit_result(ok=True)


def child_components(skymodel: str, out: str) -> None:
    """The sky model as plain JSON for the CASA child (which has no radiocal to parse it)."""
    import json as _json

    from radiocal.model.skymodel import read_skymodel

    sky = read_skymodel(skymodel)
    components = []
    for k in range(len(sky)):
        terms = sky.spectral_index[k]
        if str(sky.shape[k]).upper() != "POINT" or (terms[1:] != 0).any() or (
                terms[0] != 0 and not sky.logarithmic_si[k]):
            sys.exit(f"{skymodel}: component {sky.name[k]} is not a point with one logarithmic "
                     "spectral index; the CASA route here handles only those")
        components.append({"ra": float(sky.ra[k]), "dec": float(sky.dec[k]),
                           "flux": float(sky.stokes[k, 0]),
                           "freq": float(sky.reference_frequency[k]) or 1.4e9,
                           "index": float(terms[0])})
    Path(out).write_text(_json.dumps(components))
    emit_result(n=len(components))


def child_radiocal(path: str, skymodel: str, timeavg: int) -> None:
    import dask

    from radiocal.dynspec.config import DynspecConfig
    from radiocal.dynspec.dataset import dynamic_spectrum
    from radiocal.store import schema as S
    from radiocal.ms.read import read_ms

    def once():
        start, cpu0 = time.perf_counter(), cpu_seconds()
        datasets = read_ms([path])
        spectrum = dynamic_spectrum(datasets, DynspecConfig(field=TARGET, skymodel=skymodel,
                                                            timeavg=timeavg))
        with dask.config.set(scheduler="threads"):
            spectrum = spectrum.compute()
        nvis = sum(math.prod(ds.VISIBILITY.shape) for ds in datasets
                   if ds.attrs[S.ATTR_FIELD_NAME] == TARGET)
        return time.perf_counter() - start, nvis, spectrum, cpu_seconds() - cpu0

    # The first run includes loading the cached numba kernels; the second is the steady state
    # of a long campaign where the same process handles scan after scan.
    cold, nvis, spectrum, cpu = once()
    gc.collect()   # the reader's open tables go with their datasets before the MS is reopened
    warm, _, _, _ = once()
    emit_result(seconds=cold, warm_seconds=warm, cpu_seconds=cpu, nvis=nvis,
                cells=int(spectrum["I"].size))


def child_casa(path: str, components: str, work: str) -> None:
    """ft + uvsub + getcol + numpy baseline average, on a copy of the MS. Runs under the CASA
    interpreter: casatools/casatasks and numpy only, no radiocal."""
    import numpy as np
    from casatasks import ft, uvsub
    from casatools import componentlist, table

    copy = os.path.join(work, "casa_copy.ms")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(path, copy)
    cl_path = os.path.join(work, "sky.cl")
    shutil.rmtree(cl_path, ignore_errors=True)
    cl = componentlist()
    for c in json.loads(Path(components).read_text()):
        cl.addcomponent(
            dir=f"J2000 {c['ra']}rad {c['dec']}rad", flux=c["flux"], fluxunit="Jy",
            freq=f"{c['freq']}Hz", shape="point", spectrumtype="spectral index", index=c["index"])
    cl.rename(cl_path)
    cl.close()
    tb = table()
    tb.open(copy + "/FIELD")
    target_id = list(tb.getcol("NAME")).index(TARGET)
    tb.close()
    start, cpu0 = time.perf_counter(), cpu_seconds()
    ft(vis=copy, field=TARGET, complist=cl_path, usescratch=True)
    uvsub(vis=copy)
    tb.open(copy)
    sub = tb.query(f"FIELD_ID=={target_id}")
    data = sub.getcol("CORRECTED_DATA")      # (corr, chan, row)
    flag = sub.getcol("FLAG")
    times = sub.getcol("TIME")
    sub.close()
    tb.close()
    good = ~flag
    stokes_i = 0.5 * (data[0] + data[-1]).real
    both = good[0] & good[-1]
    utimes, index = np.unique(times, return_inverse=True)
    sums = np.zeros((utimes.size, data.shape[1]))
    counts = np.zeros_like(sums)
    np.add.at(sums, index, np.where(both, stokes_i, 0).T)
    np.add.at(counts, index, both.T)
    with np.errstate(invalid="ignore"):
        _ = sums / counts
    seconds, cpu = time.perf_counter() - start, cpu_seconds() - cpu0
    shutil.rmtree(copy, ignore_errors=True)
    shutil.rmtree(cl_path, ignore_errors=True)
    emit_result(seconds=seconds, cpu_seconds=cpu, nvis=int(data.size))


# -- orchestration -----------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--integrations", type=int, default=60)
    parser.add_argument("--ms", help=f"an existing MS with a {TARGET} field instead of simulating")
    parser.add_argument("--skymodel", help="its sky model (makesourcedb text; with --ms)")
    add_casa_option(parser)
    parser.add_argument("--sources", type=int, default=20)
    parser.add_argument("--timeavg", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--json", action="store_true", help="print one JSON summary")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        {"simulate": lambda p, n, s: child_simulate(p, int(n), int(s)),
         "components": child_components,
         "radiocal": lambda p, m, t: child_radiocal(p, m, int(t)),
         "casa": child_casa}[kind](*rest)
        return

    DATA_DIR.mkdir(exist_ok=True)
    ms, skymodel = ms_with_skymodel(
        args.ms, args.skymodel,
        DATA_DIR / f"dynspec_{N_ANTENNAS}ant_{N_CHANNELS}ch_{args.integrations}int_{args.sources}src.ms",
        __file__, args.integrations, args.sources)
    casa, casa_note = casa_python(args.casa_python)
    components = str(DATA_DIR / (Path(ms).stem + ".components.json"))
    if casa:
        run = run_child(python_child(__file__, "--child", "components", skymodel, components))
        if run.returncode:
            casa, casa_note = None, f"skipped: {run.output.strip().splitlines()[-1]}"
    start_machine = machine()
    ours, peer, warm, cpus = [], [], [], {"radiocal": [], "casa": []}
    for _ in range(args.repeat):
        warm_page_cache(ms)
        os.sync()
        run = run_child(python_child(__file__, "--child", "radiocal", ms, skymodel, args.timeavg),
                        cwd=DATA_DIR)
        if run.returncode or run.result is None:
            sys.exit(f"radiocal child failed:\n{run.output}")
        ours.append((run.result["seconds"], run.peak_rss_mb, run.result["nvis"]))
        cpus["radiocal"].append(run.result["cpu_seconds"])
        warm.append(run.result["warm_seconds"])
        if casa:
            warm_page_cache(ms)
            os.sync()
            run = run_child([casa, __file__, "--child", "casa", ms, components, str(DATA_DIR)],
                            cwd=DATA_DIR)
            if run.returncode or run.result is None:
                sys.exit(f"CASA child failed:\n{run.output}")
            peer.append((run.result["seconds"], run.peak_rss_mb, run.result["nvis"]))
            cpus["casa"].append(run.result["cpu_seconds"])
    if os.path.exists(components):
        os.remove(components)
    nvis = ours[0][2]
    report = {
        "ms": ms, "ms_bytes": disk_bytes(ms), "visibilities": nvis, "sources": args.sources,
        "timeavg": args.timeavg,
        "radiocal_seconds": summary([s for s, _, _ in ours]),
        "radiocal_vis_per_s": nvis / min(s for s, _, _ in ours),
        "radiocal_warm_vis_per_s": nvis / min(warm),
        "radiocal_peak_rss_mb": max(m for _, m, _ in ours),
        "radiocal_cpu_seconds": summary(cpus["radiocal"]),
        "launcher_rss_mb": launcher_rss_mb(),
        "machine_start": start_machine,
        "machine_end": machine(),
    }
    if peer:
        report.update({
            "casa_seconds": summary([s for s, _, _ in peer]),
            "casa_vis_per_s": peer[0][2] / min(s for s, _, _ in peer),
            "casa_peak_rss_mb": max(m for _, m, _ in peer),
            "casa_cpu_seconds": summary(cpus["casa"]),
            "casa_visibilities": peer[0][2],
            "casa_version": casa_note,
        })
        report["speedup_vs_casa"] = report["radiocal_vis_per_s"] / report["casa_vis_per_s"]
    else:
        report["casa"] = casa_note
    if args.json:
        print(json.dumps(report, indent=1))
        return
    print(f"MS: {ms} ({report['ms_bytes'] / 1e6:.0f} MB; target {nvis / 1e6:.2f} M visibilities), "
          f"best of {args.repeat}")
    print(f"radiocal predict+subtract+average: best {report['radiocal_seconds']['best']:.2f} s, "
          f"{report['radiocal_vis_per_s'] / 1e6:.2f} M vis/s cold, "
          f"{report['radiocal_warm_vis_per_s'] / 1e6:.2f} M vis/s warm, "
          f"CPU {report['radiocal_cpu_seconds']['best']:.2f} s, "
          f"peak {report['radiocal_peak_rss_mb']:.0f} MB")
    if peer:
        print(f"CASA ft+uvsub+average:            best {report['casa_seconds']['best']:.2f} s, "
              f"{report['casa_vis_per_s'] / 1e6:.2f} M vis/s, "
              f"CPU {report['casa_cpu_seconds']['best']:.2f} s, "
              f"peak {report['casa_peak_rss_mb']:.0f} MB")
        print(f"radiocal / CASA throughput: {report['speedup_vs_casa']:.2f}x")
    else:
        print(f"CASA: {casa_note}")
    print(f"load average start {report['machine_start']['loadavg']}, "
          f"end {report['machine_end']['loadavg']} on {report['machine_end']['cpus']} CPUs")


if __name__ == "__main__":
    main()
