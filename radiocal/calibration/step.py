"""Pipeline steps: ``calibrate`` (the phase-referencing sequence), ``solve`` (one table) and
``applycal`` (tables).

``calibrate`` and ``applycal`` return lazy datasets with ``VISIBILITY_CORRECTED`` (and updated
``FLAG``/``WEIGHT``); the runner writes them. ``solve`` writes its table and passes the datasets on. ``calibrate`` solves its tables eagerly (they are small reductions of the
data) and saves them under the run's store (``caltables/<name>``, zarr) and output directory
(``caltables/<name>.<type>``, CASA format).
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ThreadPoolExecutor

from radiocal.calibration.config import (SOLVE_TYPES, ApplyConfig, CalibrateConfig, SolveConfig,
                                         SolveOptions)
from radiocal.calibration.jones import ApplyTable, apply
from radiocal.calibration.workflow import calibrate
from radiocal.registry import register_step
from radiocal.errors import ConfigError
from radiocal.ms import casa_caltables
from radiocal.store import caltables as C
from radiocal.store import schema as S
from radiocal.store.zarr_store import spilling_into

TABLE_SUFFIX = {"delay": "K", "bpphase": "G", "bandpass": "B", "phase_int": "G",
                "phase_inf": "G", "amp": "G", "flux": "G", "flux_cal": "G", "amp_cal": "G",
                "pol_gain": "G", "kcross": "Kcross", "xf": "Xf", "df": "Df"}


def save_tables(tables: dict, store, outdir=None, overwrite=True) -> list[str]:
    """Write solved tables into ``store/caltables/<name>`` (and CASA copies in ``outdir``).

    Without a store (a step called from a script), the zarr tables go to
    ``outdir/caltables/<name>.zarr`` instead, so no half-made store directory appears.
    """
    written = []
    in_store = os.path.exists(os.path.join(os.fspath(store), ".zgroup"))
    for name, table in tables.items():
        if in_store or outdir is None:
            path = os.path.join(os.fspath(store), C.CALTABLES_GROUP, name)
        else:
            path = os.path.join(os.fspath(outdir), C.CALTABLES_GROUP, f"{name}.zarr")
        C.write_table_zarr(table, path, overwrite=overwrite)
        written.append(path)
        if outdir is not None:
            casa = os.path.join(os.fspath(outdir), C.CALTABLES_GROUP,
                                f"{name}.{TABLE_SUFFIX.get(name, C.table_type(table))}")
            os.makedirs(os.path.dirname(casa), exist_ok=True)
            casa_caltables.write_casa_table(table, casa, overwrite=overwrite)
            written.append(casa)
    return written


def solution_counts(name: str, table) -> list[str]:
    """One line per spectral window of ``table``: solution intervals expected, attempted and
    succeeded, and the flagged fraction (as CASA's solver logs)."""
    lines = []
    for tds in table:
        counts = tds.attrs.get(C.ATTR_COUNTS, {})
        if counts:
            lines.append(f"{name} spw {tds.attrs.get('spw_id')}: {counts['expected']} solution "
                         f"intervals expected, {counts['attempted']} attempted, "
                         f"{counts['succeeded']} succeeded; "
                         f"{100 * float(tds[C.SOL_FLAG].values.mean()):.1f}% of solutions flagged")
    return lines


def load_table(path):
    """A calibration table from a zarr table directory or a CASA calibration table."""
    path = os.fspath(path)
    if C.is_table_zarr(path):
        return C.read_table_zarr(path)
    return casa_caltables.read_casa_table(path)


@register_step("calibrate", CalibrateConfig)
def calibrate_step(datasets, config: CalibrateConfig, context):
    """Phase-referencing calibration: bandpass, phases, amplitudes, fluxscale, apply."""
    config = dataclasses.replace(config, targets=tuple(config.targets))
    # Each table is written (zarr and CASA: 0.1-0.3 s each, 2 s for phaseref's eight at load 8)
    # by a thread as soon as it is final, while the driver waits on the sequence's next
    # computes, not all of them between the last solve and the apply.
    writer = ThreadPoolExecutor(1, thread_name_prefix="radiocal-caltables")
    saving = {}

    def solved(name, table):
        saving[name] = writer.submit(save_tables, {name: table}, context.store, context.outdir)

    try:
        # per-channel statistics spill into the run store's staging area (calibration/graph.py)
        with spilling_into(getattr(context, "store", None)):
            out, tables, flux = calibrate(datasets, config, logger=context.logger,
                                          solved=solved)
        written = [path for name in tables for path in saving[name].result()]
    finally:
        # a failed step leaves what was being written, and writes no more
        writer.shutdown(cancel_futures=True)
    for name, table in tables.items():
        for line in solution_counts(name, table):
            context.logger.info("%s", line)
    for result in flux.values():
        context.logger.info("%s", result.summary())
    for path in written:
        context.logger.info("calibrate: wrote %s", path)
    return out


def apply_chain(config: ApplyConfig) -> list[ApplyTable]:
    """The tables of ``config`` read, with their interpolation, gainfield and spwmap."""
    if not config.gaintable:
        raise ConfigError("applycal: no gaintable given")

    def pick(values, i, default):
        if not values:
            return default
        return values[i] if len(values) > 1 else values[0]

    spwmap = tuple(int(s) for s in config.spwmap) or None
    return [ApplyTable(load_table(path), interp=pick(config.interp, i, "linear") or "linear",
                       gainfield=pick(config.gainfield, i, None) or None, spwmap=spwmap)
            for i, path in enumerate(config.gaintable)]


@register_step("applycal", ApplyConfig)
def applycal_step(datasets, config: ApplyConfig, context):
    """Apply calibration tables to every partition, or to those of the fields named."""
    picked = {id(ds) for ds in _of_fields(datasets, config.field, "applycal")}
    chain = apply_chain(config)
    return [apply([ds], chain, calwt=config.calwt)[0] if id(ds) in picked else ds
            for ds in datasets]


def _of_fields(datasets, fields, step: str) -> list:
    """The partitions of ``fields`` (names; empty: all), or a one-line error naming ``step``."""
    names = set(fields)
    picked = [ds for ds in datasets if not names or ds.attrs.get(S.ATTR_FIELD_NAME) in names]
    if not picked:
        raise ConfigError(f"step {step!r}: no partitions of field(s) {', '.join(sorted(names))}")
    return picked


@register_step("solve", SolveConfig, kind="sink")
def solve_step(datasets, config: SolveConfig, context):
    """Solve one table on the calibrator's partitions and write it (the datasets pass on)."""
    from radiocal.calibration.dataset import solve

    picked = _of_fields(datasets, config.field, "solve")
    cal_type = SOLVE_TYPES[config.kind] if config.kind != "gain" else config.gaintype
    table = solve(picked, cal_type, SolveOptions.of(config), model=config.model or None,
                  prior=[ApplyTable(load_table(path)) for path in config.gaintable])
    for line in solution_counts(config.output, table):
        context.logger.info("%s", line)
    for path in save_tables({config.output: table}, context.store, context.outdir):
        context.logger.info("solve: wrote %s", path)
    return datasets
