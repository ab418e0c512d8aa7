"""Polarisation calibration inside the phase-referencing sequence: whether, on what, and how.

After the parallel-hand sequence, when the data hold the four correlations and a polarised
calibrator with a known model (Perley & Butler 2013: 3C286, 3C138, 3C48 above 2 GHz; a field
given as ``polcal_field``, or else the first calibrator or ``CALIBRATE_POL_ANGLE`` field that is
one), this module

1. re-solves that calibrator's gains (G, ap, int, through the bandpass) against its polarised
   model rotated by the parallactic angle, as CASA does with ``parang=True`` before ``polcal``:
   with linear feeds an unpolarised model would let the gains absorb ``Q cos 2chi + U sin 2chi``
   (the sequence's own tables are kept as they are);
2. solves KCROSS, Xf and Df on it (:func:`radiocal.calibration.polcal.solve_polarization`),
   with linear feeds jointly with the calibrators known to be unpolarised (:data:`polmodels.UNPOLARISED`, e.g. the
   phase calibrator J1407+2827) through their own sequence gains: seen at one parallactic angle,
   a polarised calibrator with linear feeds leaves the cross-hand phase and the leakages' common
   offsets degenerate, and holding the reference antenna's ``d_x`` at 0 then leaves an error in
   ``d_x + conj(d_y)``, which leaks a target's Stokes I into its cross hands (measured on the
   simulated VLA-like route: 3% of I per visibility); an unpolarised source pins exactly that
   sum;
3. does 1 and 2 once more with those terms in the gains' model;
4. returns the terms to apply with the parallactic-angle correction.

Without a polarised calibrator among the calibrators but with an unpolarised one, the
leakages alone are solved on it (CASA's ``poltype='Df'`` on an unpolarised source: relative
leakages, from any parallactic-angle coverage) and applied with the parallactic-angle rotation;
the cross hands then lack their phase, and Stokes products that need it are not written. A
polarised calibrator whose cross hands do not confirm its model stops the polarisation
calibration: nothing is applied.

Every decision is a line of text for the run's log.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np

from radiocal.calibration import polcal, polmodels
from radiocal.calibration.config import SolveOptions
from radiocal.calibration.dataset import solve
from radiocal.calibration.jones import ApplyTable
from radiocal.calibration.models import resolve_model
from radiocal.calibration.polapply import PolTerms, static_terms
from radiocal.errors import ConfigError
from radiocal.store import schema as S

POL_INTENTS = ("CALIBRATE_POL_ANGLE", "CALIBRATE_POLARIZATION")


@dataclass
class PolOutcome:
    """Tables to save (``pol_gain``, ``kcross``, ``xf``, ``df``; none unless the cross-hand
    phase was solved), terms to apply (None: nothing polarimetric) and the decisions, one line
    each."""

    tables: dict = field(default_factory=dict)
    terms: PolTerms | None = None
    decisions: list = field(default_factory=list)


def _candidates(datasets, calibrators, polcal_field):
    names = list(dict.fromkeys(str(ds.attrs.get(S.ATTR_FIELD_NAME)) for ds in datasets))
    if polcal_field:
        if polcal_field not in names:
            raise ConfigError(f"polcal_field {polcal_field!r} is not a field of the data")
        return [polcal_field]
    by_intent = [n for n in names
                 if any(i in intent for ds in datasets
                        if str(ds.attrs.get(S.ATTR_FIELD_NAME)) == n
                        for intent in ds.attrs.get(S.ATTR_INTENTS, []) for i in POL_INTENTS)]
    return list(dict.fromkeys([c for c in calibrators if c] + by_intent))


def leakage_calibrators(datasets, calibrators, exclude=()):
    """The calibrators (in order) with four correlations that are known to be unpolarised at
    their frequencies (:func:`polmodels.is_unpolarised`)."""
    out = []
    for name in dict.fromkeys(c for c in calibrators if c and c not in exclude):
        parts = [ds for ds in datasets if str(ds.attrs.get(S.ATTR_FIELD_NAME)) == name
                 and ds.sizes[S.POLARIZATION] == 4]
        if parts and polmodels.is_unpolarised(
                name, np.concatenate([ds[S.FREQUENCY].values for ds in parts])):
            out.append(name)
    return out


def plan_polarization(datasets, calibrators, polcal_field=""):
    """The polarisation calibrator's name (or None) and why, as log lines."""
    four = [ds for ds in datasets if ds.sizes[S.POLARIZATION] == 4]
    if not four:
        return None, ["polarisation: not solved: the data have no cross hands "
                      "(fewer than four correlations)"]
    for name in _candidates(datasets, calibrators, polcal_field):
        parts = [ds for ds in four if str(ds.attrs.get(S.ATTR_FIELD_NAME)) == name]
        if not parts:
            continue
        freqs = np.concatenate([ds[S.FREQUENCY].values for ds in parts])
        if polmodels.is_polarised(name, freqs):
            canonical = polmodels.polarisation_standard(name)
            q, u = polmodels.fractional_qu(name, [freqs.mean()])[0]
            return name, [f"polarisation: {name} ({canonical}) is the polarisation calibrator: "
                          f"Perley & Butler 2013 gives {100 * np.hypot(q, u):.1f}% at "
                          f"{np.degrees(np.arctan2(u, q) / 2):.1f} deg at "
                          f"{freqs.mean() / 1e9:.3f} GHz"]
        if polcal_field:
            raise ConfigError(f"polcal_field {name!r} has no known polarisation model at "
                              f"these frequencies (3C286, 3C138; 3C48 above 2 GHz)")
    return None, ["polarisation: cross-hand phase not solved: no polarised calibrator with a "
                  "known model (3C286, 3C138; 3C48 above 2 GHz) among the calibrators"]


def _base(tables) -> list:
    """The parallel-hand terms the polarisation solves see the data through."""
    base = [ApplyTable(tables["delay"])] if "delay" in tables else []
    base.append(ApplyTable(tables["bandpass"]))
    return base


def _polarised(datasets, calibrators, fluxcal, fluxcal_model, polcal_field, stokes):
    """The polarisation calibrator (name or None), the decisions, its model and partitions."""
    name, decisions = plan_polarization(datasets, calibrators, polcal_field)
    if name is None:
        return None, decisions, None, []
    if stokes is None:
        flux = resolve_model(fluxcal_model if name == fluxcal else "standard", name)

        def stokes(freqs, name=name, flux=flux):
            return polmodels.stokes_model(name, freqs, flux)

    parts = [ds for ds in datasets if str(ds.attrs.get(S.ATTR_FIELD_NAME)) == name
             and ds.sizes[S.POLARIZATION] == 4]
    return name, decisions, stokes, parts


def polarised_gains_request(datasets, tables, *, calibrators, fluxcal, fluxcal_model,
                            options=SolveOptions(), polcal_field="", stokes=None):
    """The first gain solve of :func:`solve_polarization_terms` as a request for
    :func:`radiocal.calibration.dataset.solve_jointly` (None when nothing polarimetric is
    solved): it needs only the bandpass (``tables``), so it can share a pass over the data with
    the sequence's phase solves. Give its table to :func:`solve_polarization_terms` as
    ``gains``. ``options``: the sequence's (its reference antennas and limits)."""
    if not any(ds.sizes[S.POLARIZATION] == 4 for ds in datasets):
        return None
    name, _, stokes, parts = _polarised(datasets, calibrators, fluxcal, fluxcal_model,
                                        polcal_field, stokes)
    if name is None:
        return None
    return _gains_request(parts, stokes, _base(tables), None, options)


def solve_polarization_terms(datasets, tables, *, calibrators, fluxcal, fluxcal_model,
                             options=SolveOptions(), polcal_field="", stokes=None,
                             gains=None) -> PolOutcome:
    """Plan, solve and package the polarisation terms (see the module docstring).

    ``tables`` are the sequence's (``bandpass``, optional ``delay``; ``phase_int`` and
    ``amp_cal``, when present, calibrate the unpolarised calibrators for the leakage solve);
    ``calibrators`` the calibrator field names in order of preference; ``stokes(freqs) ->
    (frequency, 4)`` replaces the standard's model (Stokes I from ``fluxcal_model`` for the flux
    calibrator); ``gains``: the table of :func:`polarised_gains_request` when already solved;
    ``options``: the sequence's solve options (its reference antennas and limits).
    """
    name, decisions, stokes, parts = _polarised(datasets, calibrators, fluxcal, fluxcal_model,
                                                polcal_field, stokes)
    outcome = PolOutcome(decisions=decisions)
    if not any(ds.sizes[S.POLARIZATION] == 4 for ds in datasets):
        return outcome
    base = _base(tables)
    if name is not None:
        # the degeneracy the unpolarised calibrators lift is that of linear feeds (see the
        # module docstring); with circular feeds the polarised calibrator's own solve reaches
        # the floor, and joining them would only add their data to it (VLA-like x1 calibrate
        # 20 -> 52 s)
        joint = (_leakage_requests(datasets, tables, calibrators, fluxcal, fluxcal_model, base,
                                   exclude=(name,))
                 if polcal.feed_basis(parts[0]) == "linear" else [])
        gains, solution = _gains_then_polarisation(parts, stokes, base, None, joint, options,
                                                   gains)
        if "xf" in solution.tables:
            # once more with the solved leakages and cross-hand phase in the gains' model: the
            # leakage of the calibrator's polarisation into the parallel hands (d P, ~0.5% of I)
            # then no longer lands in the gains, and from there in the next solve
            terms = PolTerms(kcross=solution.tables.get("kcross"), xf=solution.tables["xf"],
                             df=solution.tables.get("df"), parang=True)
            gains, solution = _gains_then_polarisation(parts, stokes, base, terms, joint,
                                                       options)
        outcome.decisions += solution.decisions
        if "xf" in solution.tables:
            if joint:
                outcome.decisions.append(
                    "polarisation: leakages solved jointly with the unpolarised "
                    f"calibrator(s) {', '.join(_names(joint))}")
            outcome.tables["pol_gain"] = gains
            outcome.tables.update(solution.tables)
            outcome.terms = PolTerms(kcross=solution.tables.get("kcross"),
                                     xf=solution.tables["xf"], df=solution.tables.get("df"),
                                     parang=True)
            outcome.decisions.append("polarisation: applying KCROSS, Xf, Df and the "
                                     "parallactic-angle rotation to every partition with four "
                                     "correlations")
            return outcome
        # nothing is applied (nor saved) when the polarised calibrator's cross hands do not
        # confirm its model: the data disagree with what the solve assumes, and leakages alone
        # would change only the cross hands, whose products are not written
        outcome.decisions.append("polarisation: nothing polarimetric applied (no cross-hand "
                                 "phase); Stokes products that need it are not written")
        return outcome
    leak = _leakage_requests(datasets, tables, calibrators, fluxcal, fluxcal_model, base,
                             exclude=())
    if not leak:
        outcome.decisions.append("polarisation: no unpolarised leakage calibrator "
                                 f"({', '.join(sorted(polmodels.UNPOLARISED))}) among the "
                                 "calibrators either: nothing polarimetric applied")
        return outcome
    solution = polcal.solve_polarization(leak, refant=options.refant)
    outcome.decisions += solution.decisions
    outcome.tables["df"] = solution.tables["df"]
    outcome.terms = PolTerms(df=solution.tables["df"], parang=True)
    outcome.decisions.append(
        f"polarisation: leakages (Df) solved on the unpolarised calibrator(s) "
        f"{', '.join(_names(leak))}, applied with the parallactic-angle rotation; no cross-hand "
        "phase: Stokes products that need it are not written")
    return outcome


def _names(requests):
    return list(dict.fromkeys(str(r.datasets[0].attrs.get(S.ATTR_FIELD_NAME))
                              for r in requests))


def _leakage_requests(datasets, tables, calibrators, fluxcal, fluxcal_model, base, exclude):
    """Unpolarised calibrators as leakage-only requests, each through its own sequence gains
    (``phase_int`` and ``amp_cal``, solved against the model given here: the flux
    calibrator's, else 1 Jy)."""
    if "phase_int" not in tables or "amp_cal" not in tables:
        return []
    requests = []
    for name in leakage_calibrators(datasets, calibrators, exclude):
        parts = tuple(ds for ds in datasets if str(ds.attrs.get(S.ATTR_FIELD_NAME)) == name
                      and ds.sizes[S.POLARIZATION] == 4)
        flux = resolve_model(fluxcal_model, name) if name == fluxcal else None

        def stokes(freqs, flux=flux):
            out = np.zeros(np.shape(freqs) + (4,))
            out[..., 0] = 1.0 if flux is None else flux(np.asarray(freqs, dtype=np.float64))
            return out

        prior = tuple(base + [ApplyTable(tables["phase_int"], gainfield=name),
                              ApplyTable(tables["amp_cal"], gainfield=name)])
        requests.append(polcal.PolRequest(parts, stokes, prior, polarised=False))
    return requests


def _gains_request(parts, stokes, base, terms, options):
    """The calibrator's gain solve against its polarised model (corrupted by ``terms`` when
    given), as a :func:`radiocal.calibration.dataset.solve_jointly` request."""
    modelled = [ds.assign({S.VISIBILITY_MODEL: (
        ds[S.VISIBILITY].dims,
        polcal.polarized_model(ds, stokes, None if terms is None else static_terms(ds, terms)))})
        for ds in parts]
    return (modelled, "G", dataclasses.replace(options, solint="int", calmode="ap"),
            dict(model="column", prior=base))


def _gains_then_polarisation(parts, stokes, base, terms, leak, options, gains=None):
    """The calibrator's gains against its polarised model (corrupted by ``terms`` when
    given; ``gains`` when already solved), then the polarisation solve through them, with the
    leakage-only ``leak`` requests."""
    if gains is None:
        modelled, cal_type, solve_options, data = _gains_request(parts, stokes, base, terms,
                                                                 options)
        gains = solve(modelled, cal_type, solve_options, **data)
    request = polcal.PolRequest(tuple(parts), stokes, tuple(base + [ApplyTable(gains)]))
    return gains, polcal.solve_polarization([request] + list(leak), refant=options.refant)
