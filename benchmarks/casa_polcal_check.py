"""Does CASA read radiocal's polarisation tables and apply them as radiocal does?

Simulates a small linear-feed MS with a polarised 3C286, cross-hand phase and delay and
leakages; radiocal solves the sequence and KCROSS / Xf / Df and writes them as CASA tables;
CASA's ``applycal`` (``parang=True``) applies bandpass, the calibrator's gains and the three
polarisation tables to a copy of the MS; the result is compared with radiocal's own
``apply_polarized`` of the same tables, correlation by correlation.

    python benchmarks/casa_polcal_check.py --casa-python /work/venvs/casa/bin/python [--work DIR]

Prints the largest and the rms difference relative to the median visibility amplitude, per
correlation. Not a test: it needs CASA.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import replace

CAL = "J1331+3030"
TABLES = ("bandpass.B", "pol_gain.G", "kcross.Kcross", "xf.Xf", "df.Df")


def child_casa(ms, work):
    """Run in CASA's Python: applycal with the parallactic angle."""
    from casatasks import applycal

    copy = os.path.join(work, "casa.ms")
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(ms, copy)
    applycal(vis=copy, field=CAL, gaintable=[os.path.join(work, t) for t in TABLES],
             interp=["nearest", "linear", "nearest", "nearest", "nearest"], parang=True,
             calwt=False, flagbackup=False)


def _keyed(times, a1, a2, values):
    return {(round(float(t), 3), int(p), int(q)): v for t, p, q, v in zip(times, a1, a2, values)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--casa-python", required=True)
    parser.add_argument("--work", default="")
    parser.add_argument("--child", nargs=2)
    args = parser.parse_args(argv)
    if args.child:
        return child_casa(*args.child)

    import casacore.tables as ct
    import numpy as np

    from radiocal.calibration.jones import ApplyTable
    from radiocal.calibration.polapply import apply_polarized
    from radiocal.calibration.polflow import solve_polarization_terms
    from radiocal.calibration.workflow import CalibrateConfig, solve_sequence
    from radiocal.ms import casa_caltables
    from radiocal.store import schema as S
    from radiocal.ms.read import read_ms
    from radiocal.simulate import SimConfig, simulate_ms
    from radiocal.simulate.config import DEFAULT_FIELDS, VLA_START

    work = args.work or tempfile.mkdtemp(prefix="casa_polcal_")
    os.makedirs(work, exist_ok=True)
    ms = os.path.join(work, "linear.ms")
    cal = replace(DEFAULT_FIELDS[0], linear_fraction=0.094, polarization_angle=math.radians(33))
    schedule = tuple(s for _ in range(4) for s in ((0, 3), (1, 2), (2, 4), (1, 2)))
    config = SimConfig(n_antennas=6, feeds="linear", spws=((1.30e9, 1e6, 8),),
                       schedule=schedule, scan_gap=900.0, start_time=VLA_START - 3 * 3600,
                       fields=(cal, DEFAULT_FIELDS[1], DEFAULT_FIELDS[2]), background=(),
                       parallactic=True, xy_phase=0.7, xy_delay=2e-9, leakage_rms=0.05,
                       noise=0.02)
    simulate_ms(ms, config, overwrite=True)
    datasets = read_ms(ms)
    calib = CalibrateConfig(fluxcal=CAL, phasecal="J1407+2827", targets=("STAR",),
                            fluxcal_model="15.0,-0.5,1.4GHz")
    tables, _ = solve_sequence(datasets, calib)
    outcome = solve_polarization_terms(datasets, tables, calibrators=[CAL], fluxcal=CAL,
                                       fluxcal_model=calib.fluxcal_model)
    if outcome.terms is None:
        raise SystemExit("no cross-hand phase solved: " + "; ".join(outcome.decisions))
    written = dict(tables, **outcome.tables)
    for name in TABLES:
        casa_caltables.write_casa_table(written[name.split(".")[0]], os.path.join(work, name),
                           overwrite=True)
    subprocess.run([args.casa_python, __file__, "--casa-python", args.casa_python, "--child",
                    ms, work], check=True, cwd=work)

    chain = [ApplyTable(tables["bandpass"], interp="nearest"), ApplyTable(outcome.tables["pol_gain"])]
    ours = {}
    parts = [ds for ds in datasets if ds.attrs[S.ATTR_FIELD_NAME] == CAL]
    for ds in apply_polarized(parts, chain, outcome.terms):
        vis = ds[S.VISIBILITY_CORRECTED].values
        flag = ds[S.FLAG].values
        vis = np.where(flag, np.nan, vis)
        t = np.repeat(ds[S.TIME].values, ds.sizes[S.BASELINE])
        a1 = np.tile(ds[S.BASELINE_ANTENNA1].values, ds.sizes[S.TIME])
        a2 = np.tile(ds[S.BASELINE_ANTENNA2].values, ds.sizes[S.TIME])
        ours.update(_keyed(t, a1, a2, vis.reshape(-1, *vis.shape[2:])))
    with ct.table(os.path.join(work, "casa.ms"), ack=False) as t:
        sel = t.query("FIELD_ID == 0 && ANTENNA1 != ANTENNA2")
        theirs = _keyed(sel.getcol("TIME"), sel.getcol("ANTENNA1"), sel.getcol("ANTENNA2"),
                        np.where(sel.getcol("FLAG"), np.nan, sel.getcol("CORRECTED_DATA")))
    keys = sorted(set(ours) & set(theirs))
    a = np.array([ours[k] for k in keys])
    b = np.array([theirs[k] for k in keys])
    scale = np.nanmedian(np.abs(a[..., [0, 3]]))
    report = {"rows_compared": len(keys), "median_parallel_amplitude": float(scale)}
    for k, name in enumerate(("XX", "XY", "YX", "YY")):
        d = np.abs(a[..., k] - b[..., k]) / scale
        report[name] = {"max_rel": float(np.nanmax(d)), "rms_rel": float(np.sqrt(np.nanmean(d ** 2))),
                        "flag_mismatch": int(np.sum(np.isnan(a[..., k]) != np.isnan(b[..., k])))}
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    sys.exit(main())
