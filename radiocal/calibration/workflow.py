"""The standard phase-referencing sequence (``radiocal calibrate``), as library functions.

1. pre-bandpass phase on the bandpass calibrator (G, p, int) [optionally a delay first (K)];
2. bandpass (B, inf, combine scan, solnorm) through the pre-bandpass phases;
3. phases on every calibrator through the bandpass: per integration (int.G) and per scan (inf.G);
4. amplitudes (G, ap, inf) through bandpass and int phases, and (like the VLA pipeline) short
   interval amplitudes (``cal_amp_solint``) for the calibrators' own correction;
5. fluxscale: the phase calibrator's flux density bootstrapped from the flux calibrator (a joint
   fit of the gain drift and the flux density on the short-interval amplitudes, see
   :func:`radiocal.calibration.fluxscale.fluxscale`); both amplitude tables put on that scale;
6. apply: calibrators with their own int phases and short amplitudes, targets with the phase
   calibrator's gains (gainfield). By default (``target_interp`` ``hermite``) the target gains
   follow a cubic Hermite curve through each phase-calibrator scan's mean phase, log amplitude
   and their rates of change, all fitted to its short-interval (int) solutions: gains that
   drift over the calibrator cycle are tracked along their curvature, where CASA's recipe
   (``linear`` between the per-scan inf solutions) cuts the chord. ``linear`` and ``nearest``
   use the inf phases and scaled inf amplitudes like CASA.
7. with ``polcal`` (default) and a polarised calibrator with four correlations: cross-hand
   delay, cross-hand phase and leakages, applied with the parallactic-angle rotation
   (:mod:`radiocal.calibration.polflow`); the parallel-hand tables are not changed by it.
"""

from __future__ import annotations

import logging

from radiocal.calibration.dataset import solve, solve_jointly
from radiocal.calibration.fluxscale import fluxscale
from radiocal.calibration.intervals import observation_ids
from radiocal.calibration.config import CalibrateConfig, SolveOptions
from radiocal.calibration.jones import ApplyTable, apply
from radiocal.calibration.models import resolve_model
from radiocal.calibration.parang import prepare as prepare_parang
from radiocal.calibration.parang import prepare_soon as prepare_parang_soon
from radiocal.calibration.polapply import apply_polarized
from radiocal.calibration.polflow import plan_polarization, polarised_gains_request
from radiocal.calibration.polflow import solve_polarization_terms
from radiocal.errors import SelectionError
from radiocal.store import schema as S

log = logging.getLogger(__name__)


def _fields(datasets, names):
    wanted = set(names)
    picked = [ds for ds in datasets if ds.attrs.get(S.ATTR_FIELD_NAME) in wanted]
    found = {ds.attrs.get(S.ATTR_FIELD_NAME) for ds in picked}
    missing = sorted(wanted - found)
    if missing:
        known = sorted({str(ds.attrs.get(S.ATTR_FIELD_NAME)) for ds in datasets})
        raise SelectionError(f"no data for field(s) {', '.join(missing)} "
                             f"(fields: {', '.join(known)})")
    return picked


def _last_scan_of(datasets, name):
    """Drop every integration of field ``name`` but those of its last visit (all spectral
    windows): the scan of its last integration, in that integration's observation, since a
    concatenation may number each observation's scans from 1 and one partition then holds a
    scan number of several observations."""
    mine = [ds for ds in datasets if ds.attrs.get(S.ATTR_FIELD_NAME) == name]
    visits = {(int(o), ds.attrs[S.ATTR_SCAN]) for ds in mine for o in observation_ids(ds)}
    _, obs, scan = max((float(t), int(o), ds.attrs[S.ATTR_SCAN]) for ds in mine
                       for t, o in zip(ds[S.TIME].values, observation_ids(ds)))
    kept = []
    for ds in datasets:
        if ds.attrs.get(S.ATTR_FIELD_NAME) != name:
            kept.append(ds)
        elif ds.attrs[S.ATTR_SCAN] == scan:
            last = observation_ids(ds) == obs
            if last.any():
                kept.append(ds if last.all() else ds.isel({S.TIME: last}))
    log.info("calibrate: flux calibrator %s solved on its last scan (%d%s) of %d", name, scan,
             f", observation {obs}" if len({o for o, _ in visits}) > 1 else "", len(visits))
    return kept


def solve_sequence(datasets, config: CalibrateConfig, with_phases=None, solved=None):
    """Solve every table of the sequence.

    ``with_phases``: ``tables -> request or None``, a further solve (a
    :func:`radiocal.calibration.dataset.solve_jointly` request) made once the bandpass is
    known (``tables``) and solved in the same pass as the phases; its table is returned third.
    ``solved``: ``(name, table) -> None``, called once for each table of ``tables`` as soon as
    it is final, while the rest of the sequence is still to be solved.

    Returns
    -------
    tables : dict
        ``{"delay"?, "bpphase", "bandpass", "phase_int", "phase_inf", "amp", "amp_cal", "flux",
        "flux_cal"}`` tables.
    flux : dict
        Field name -> :class:`radiocal.calibration.fluxscale.FluxResult`.
    """
    bpcal = config.bpcal or config.fluxcal
    cal_names = list(dict.fromkeys([config.fluxcal, bpcal, config.phasecal]))
    _fields(datasets, cal_names)      # unknown field names fail before any work
    if config.fluxcal_scans == "last":
        datasets = _last_scan_of(datasets, config.fluxcal)
    flux_model = resolve_model(config.fluxcal_model, config.fluxcal)
    models = {name: None for name in cal_names}
    models[config.fluxcal] = flux_model
    tables = {}
    bp_data = _fields(datasets, [bpcal])
    bp_model = models[bpcal] or 1.0
    prior = []
    if config.solve_delay:
        tables["delay"] = solve(bp_data, "K",
                                SolveOptions.of(config, solint="inf", combine="scan"),
                                model=bp_model)
        prior = [ApplyTable(tables["delay"])]
    tables["bpphase"] = solve(bp_data, "G", SolveOptions.of(config, solint="int", calmode="p"),
                              model=bp_model, prior=prior)
    tables["bandpass"] = solve(bp_data, "B",
                               SolveOptions.of(config, solint="inf", combine="scan", solnorm=True),
                               model=bp_model, prior=prior + [ApplyTable(tables["bpphase"])])
    through_bp = prior + [ApplyTable(tables["bandpass"])]
    final = solved or (lambda name, table: None)
    for name in ("delay", "bpphase", "bandpass"):
        if name in tables:
            final(name, tables[name])
    # each calibrator against its own model; solutions of all calibrators in one table. The
    # solves of every calibrator at one stage are independent: one pass over the data each.
    data = {name: _fields(datasets, [name]) for name in cal_names}
    model = {name: models[name] or 1.0 for name in cal_names}
    also = with_phases(tables) if with_phases is not None else None
    phases = solve_jointly([
        (data[name], "G", SolveOptions.of(config, solint=solint, calmode="p"),
         dict(model=model[name], prior=through_bp))
        for name in cal_names for solint in ("int", "inf")] + ([also] if also else []))
    also = phases.pop() if also else None
    tables["phase_int"] = merge_tables(phases[0::2])
    tables["phase_inf"] = merge_tables(phases[1::2])
    final("phase_int", tables["phase_int"])
    final("phase_inf", tables["phase_inf"])
    amp_solints = list(dict.fromkeys(["inf", config.cal_amp_solint]))
    amps = solve_jointly([
        (data[name], "G", SolveOptions.of(config, solint=solint, calmode="ap"),
         dict(model=model[name], prior=through_bp + [ApplyTable(phases[2 * k], gainfield=name)]))
        for k, name in enumerate(cal_names) for solint in amp_solints])
    tables["amp"] = merge_tables(amps[0::len(amp_solints)])
    transfer = [n for n in cal_names if n != config.fluxcal]
    tables["amp_cal"] = merge_tables(amps[len(amp_solints) - 1::len(amp_solints)])
    final("amp", tables["amp"])
    final("amp_cal", tables["amp_cal"])
    # the drift fit wants many amplitude samples in time: the short-interval ones
    source = tables["amp_cal"] if config.fluxscale_method == "fit" else tables["amp"]
    _, flux = fluxscale(source, config.fluxcal, transfer, method=config.fluxscale_method,
                        degree=2, local=True)
    for name, result in flux.items():
        if result.skipped:
            log.warning("fluxscale: no common unflagged antennas for %r and %r in spw %s: "
                        "no flux density there; its solutions are flagged, so the data they "
                        "calibrate (its own and the targets') are flagged on apply", name,
                        config.fluxcal, ", ".join(map(str, result.skipped)))
    tables["flux"] = rescale(tables["amp"], flux)
    # the calibrators' own short-interval amplitudes, put on the same flux scale
    tables["flux_cal"] = rescale(tables["amp_cal"], flux)
    final("flux", tables["flux"])
    final("flux_cal", tables["flux_cal"])
    for result in flux.values():
        log.info("%s", result.summary())
    return (tables, flux) if with_phases is None else (tables, flux, also)


def sequence_chain(tables, config: CalibrateConfig):
    """The parallel-hand apply chain of a partition: ``ds -> [ApplyTable, ...]``."""
    bpcal = config.bpcal or config.fluxcal
    calibrators = {config.fluxcal, bpcal, config.phasecal}
    base = [ApplyTable(tables["delay"])] if "delay" in tables else []
    base.append(ApplyTable(tables["bandpass"]))

    def chain(ds):
        name = ds.attrs.get(S.ATTR_FIELD_NAME)
        if name in calibrators:
            return base + [ApplyTable(tables["phase_int"], gainfield=name),
                           ApplyTable(tables["flux_cal"], gainfield=name)]
        if config.target_interp == "hermite":
            # the short-interval solutions carry each calibrator scan's rate of change
            phases, amps = tables["phase_int"], tables["flux_cal"]
        else:
            phases, amps = tables["phase_inf"], tables["flux"]
        return base + [ApplyTable(phases, interp=config.target_interp, gainfield=config.phasecal),
                       ApplyTable(amps, interp=config.target_interp, gainfield=config.phasecal)]

    return chain


def apply_sequence(datasets, tables, config: CalibrateConfig, pol_terms=None):
    """Calibrate every calibrator and target partition with the sequence's tables (lazy);
    with ``pol_terms`` (:class:`radiocal.calibration.polapply.PolTerms`) the partitions with
    four correlations get the polarisation terms too."""
    wanted = {config.fluxcal, config.bpcal or config.fluxcal, config.phasecal}
    wanted |= set(config.targets)
    selected = [ds for ds in datasets if ds.attrs.get(S.ATTR_FIELD_NAME) in wanted]
    if not selected:
        raise SelectionError("none of the calibrator or target fields is in the data")
    chain = sequence_chain(tables, config)
    if pol_terms is None:
        return apply(selected, chain, calwt=config.calwt)
    if pol_terms.parang:
        # one ERFA call per source for every partition's angles (parang.prepare)
        prepare_parang([ds for ds in selected if ds.sizes[S.POLARIZATION] == 4])
    return [apply_polarized([ds], chain, pol_terms, calwt=config.calwt)[0]
            if ds.sizes[S.POLARIZATION] == 4 else apply([ds], chain, calwt=config.calwt)[0]
            for ds in selected]


def calibrate(datasets, config: CalibrateConfig, logger=log, solved=None):
    """Solve the sequence and apply it: ``(calibrated datasets (lazy), tables, flux results)``;
    the polarisation decisions go to ``logger`` (a step's, which ``radiocal calibrate`` shows).
    ``solved``: ``(name, table) -> None``, called once for each of the tables as soon as it is
    final (see :func:`solve_sequence`)."""
    if not (config.fluxcal and config.phasecal):
        raise SelectionError("calibrate needs --fluxcal and --phasecal")
    if config.polcal:
        # the polarised calibrator's model needs its parallactic angles once the bandpass is
        # solved: computed meanwhile, not on the driver between two computes
        options = _polcal_options(config)
        name, _ = plan_polarization(datasets, options["calibrators"], config.polcal_field)
        parts = [ds for ds in datasets if ds.attrs.get(S.ATTR_FIELD_NAME) == name
                 and ds.sizes[S.POLARIZATION] == 4]
        if parts:
            prepare_parang_soon(parts)
    # the polarisation calibrator's first gains need only the bandpass: solved in the
    # phases' pass, not in a pass of their own
    tables, flux, pol_gains = solve_sequence(
        datasets, config, lambda tables: polarised_gains(datasets, tables, config), solved)
    sequence = set(tables)
    terms, decisions = polarization_terms(datasets, tables, config, pol_gains)
    if solved is not None:
        for name in tables:
            if name not in sequence:
                solved(name, tables[name])
    for line in decisions:
        logger.info("%s", line)
    return apply_sequence(datasets, tables, config, terms), tables, flux


def _polcal_options(config: CalibrateConfig) -> dict:
    bpcal = config.bpcal or config.fluxcal
    return dict(calibrators=list(dict.fromkeys([config.fluxcal, bpcal, config.phasecal])),
                fluxcal=config.fluxcal, fluxcal_model=config.fluxcal_model,
                options=SolveOptions.of(config), polcal_field=config.polcal_field)


def polarised_gains(datasets, tables, config: CalibrateConfig):
    """The request of step 7's first gain solve (None: nothing to solve), see
    :func:`radiocal.calibration.polflow.polarised_gains_request`."""
    if not config.polcal:
        return None
    return polarised_gains_request(datasets, tables, **_polcal_options(config))


def polarization_terms(datasets, tables, config: CalibrateConfig, gains=None):
    """Step 7: the polarisation terms to apply (None: nothing polarimetric) and the decisions
    (log lines); the solved tables are added to ``tables``. ``gains``: the table of
    :func:`polarised_gains`' request, when solved already."""
    if not config.polcal:
        return None, ["polarisation: not solved (polcal disabled)"]
    outcome = solve_polarization_terms(datasets, tables, gains=gains, **_polcal_options(config))
    tables.update(outcome.tables)
    return outcome.terms, outcome.decisions


def rescale(table, flux):
    """Divide each transfer field's gains by ``sqrt(S)`` of its fluxscale result; flag them in
    the spws it skipped (no flux scale there)."""
    import numpy as np

    from radiocal.store import caltables as C

    out = []
    for tds in table:
        spw = int(tds.attrs[S.ATTR_SPW_ID])
        gains = tds[C.GAIN].values.copy()
        flags = tds[C.SOL_FLAG].values.copy()
        for name, result in flux.items():
            rows = np.isin(tds[C.SOL_FIELD].values, C.field_ids(tds, name))
            if spw in result.skipped:
                flags[rows] = True
            else:
                gains[rows] /= np.sqrt(result.flux[spw])
        out.append(tds.assign({C.GAIN: (tds[C.GAIN].dims, gains),
                               C.SOL_FLAG: (tds[C.SOL_FLAG].dims, flags)}))
    return out


def merge_tables(tables):
    """Concatenate solutions of several solves (same type, same spws) along ``time_solution``."""
    import xarray as xr

    from radiocal.store import caltables as C

    by_spw: dict = {}
    for table in tables:
        for tds in table:
            by_spw.setdefault(int(tds.attrs[S.ATTR_SPW_ID]), []).append(tds)
    merged = []
    for spw, parts in sorted(by_spw.items()):
        attrs = dict(parts[0].attrs)
        ids, names, centers = [], [], []
        for part in parts:
            for fid, name, center in zip(part.attrs[C.ATTR_FIELD_IDS],
                                         part.attrs[C.ATTR_FIELD_NAMES],
                                         part.attrs[C.ATTR_FIELD_CENTERS]):
                if fid not in ids:
                    ids.append(fid)
                    names.append(name)
                    centers.append(center)
        counts = {k: sum(p.attrs[C.ATTR_COUNTS][k] for p in parts)
                  for k in ("expected", "attempted", "succeeded")}
        ds = xr.concat(parts, dim=C.SOL_TIME, data_vars="minimal", coords="different",
                       compat="equals", combine_attrs="override").sortby(C.SOL_TIME)
        attrs.update({C.ATTR_FIELD_IDS: ids, C.ATTR_FIELD_NAMES: names,
                      C.ATTR_FIELD_CENTERS: centers, C.ATTR_COUNTS: counts})
        ds.attrs = attrs
        merged.append(ds)
    return merged
