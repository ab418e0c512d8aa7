"""Small numeric summaries of a run for plots and the report (all computing happens here).

Visibility summaries average the parallel hands (an estimate of Stokes I for unpolarised
calibrators) over unflagged samples only; a cell with no unflagged sample is NaN.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import dask
import dask.array as da
import numpy as np

from radiocal.io import caltables as C
from radiocal.io import schema as S


@dataclass
class VisSummary:
    """Parallel-hand averages of one calibrator partition, before and after calibration.

    Attributes
    ----------
    field, partition : str
    time : (time,) MJD seconds
    frequency : (frequency,) Hz
    uvdist : (time, baseline) metres
    by_time : {"before", "after"} -> (time, baseline) complex128, averaged over channels
    by_frequency : {"before", "after"} -> (baseline, frequency) complex128, averaged over time
    """

    field: str
    partition: str
    time: np.ndarray
    frequency: np.ndarray
    uvdist: np.ndarray
    by_time: dict = field(default_factory=dict)
    by_frequency: dict = field(default_factory=dict)


def parallel_hands(ds) -> list[int]:
    """Indices of the parallel-hand correlations (RR, LL / XX, YY / I)."""
    pols = [str(p) for p in ds[S.POLARIZATION].values]
    return [i for i, p in enumerate(pols) if len(p) == 1 or p[0] == p[1]]


def _weighted_means(vis, usable, axes):
    """Lazy sum(vis * usable) / sum(usable) over ``axes`` (NaN where nothing is usable)."""
    total = da.where(usable, vis.astype(np.complex128), 0).sum(axis=axes)
    count = usable.sum(axis=axes)
    return total, count


def visibility_summaries(datasets, fields) -> list[VisSummary]:
    """Before/after calibration averages of the partitions of ``fields`` (one compute).

    Parameters
    ----------
    datasets : list of xr.Dataset
        Canonical partitions; ``VISIBILITY`` is "before", ``VISIBILITY_CORRECTED`` (when
        present) "after". The current ``FLAG`` selects the samples of both.
    fields : iterable of str
        Field names to summarise (the calibrators).
    """
    wanted = set(fields)
    lazy, meta = [], []
    for ds in datasets:
        if ds.attrs.get(S.ATTR_FIELD_NAME) not in wanted:
            continue
        par = parallel_hands(ds)
        usable = ~ds[S.FLAG].data[..., par]
        if S.ROW_PRESENT in ds:
            usable = usable & ds[S.ROW_PRESENT].data[:, :, None, None]
        columns = {"before": S.VISIBILITY}
        if S.VISIBILITY_CORRECTED in ds:
            columns["after"] = S.VISIBILITY_CORRECTED
        parts = {}
        for label, name in columns.items():
            vis = ds[name].data[..., par]
            parts[label] = (_weighted_means(vis, usable, (2, 3)), _weighted_means(vis, usable, (0, 3)))
        uvw = ds[S.UVW].data
        uvdist = da.sqrt(uvw[..., 0] ** 2 + uvw[..., 1] ** 2)
        lazy.append((parts, uvdist))
        meta.append(ds)
    computed = dask.compute(*lazy)
    out = []
    for ds, (parts, uvdist) in zip(meta, computed):
        summary = VisSummary(str(ds.attrs.get(S.ATTR_FIELD_NAME)), str(ds.attrs.get(S.ATTR_PARTITION)),
                             ds[S.TIME].values, ds[S.FREQUENCY].values, np.asarray(uvdist))
        for label, ((t_sum, t_n), (f_sum, f_n)) in parts.items():
            with np.errstate(invalid="ignore", divide="ignore"):
                summary.by_time[label] = np.where(t_n > 0, t_sum / np.maximum(t_n, 1), np.nan)
                summary.by_frequency[label] = np.where(f_n > 0, f_sum / np.maximum(f_n, 1), np.nan)
        out.append(summary)
    return out


def measured_flux(summaries, field_name):
    """Flux density of a calibrator measured from its calibrated data.

    The channel spectra of all its partitions (time- and baseline-averaged real part of the
    calibrated parallel hands) are fitted with ``S0 (nu / nu0)^alpha``, ``nu0`` the mean frequency.

    Returns
    -------
    dict or None
        ``frequency`` (Hz), ``flux`` (Jy) per channel, ``s0``, ``alpha``, ``nu0``; None when the
        field has no calibrated, unflagged data.
    """
    spectra = [s.by_frequency["after"] for s in summaries
               if s.field == field_name and "after" in s.by_frequency]
    if not spectra:
        return None
    freqs = [s.frequency for s in summaries if s.field == field_name and "after" in s.by_frequency]
    nu = np.concatenate(freqs)
    # channel sums and counts over baselines of every partition, then one mean per frequency
    sums = np.concatenate([np.nansum(sp.real, axis=0) for sp in spectra])
    counts = np.concatenate([np.isfinite(sp).sum(axis=0) for sp in spectra])
    unique, inverse = np.unique(nu, return_inverse=True)
    total = np.bincount(inverse, weights=sums, minlength=unique.size)
    n = np.bincount(inverse, weights=counts, minlength=unique.size)
    flux = np.where(n > 0, total / np.maximum(n, 1), np.nan)
    good = np.isfinite(flux) & (flux > 0)
    if not good.any():
        return None
    nu0 = float(unique[good].mean())
    if good.sum() >= 2:
        alpha, log_s0 = np.polyfit(np.log(unique[good] / nu0), np.log(flux[good]), 1)
    else:
        alpha, log_s0 = 0.0, np.log(flux[good][0])
    return {"frequency": unique, "flux": flux, "s0": float(np.exp(log_s0)), "alpha": float(alpha),
            "nu0": nu0}


# -- calibration tables ----------------------------------------------------------------------


def load_tables(store) -> dict:
    """Every calibration table saved in the store (``caltables/<name>``): name -> list of spw."""
    from radiocal.calibration.step import CALTABLES_GROUP

    root = os.path.join(os.fspath(store), CALTABLES_GROUP)
    if not os.path.isdir(root):
        return {}
    tables = {}
    for name in sorted(os.listdir(root)):
        path = os.path.join(root, name)
        if C.is_table_zarr(path):
            tables[name] = C.read_table_zarr(path)
    return tables


def solution_counts(tables: dict) -> list[dict]:
    """Per table and spw: expected/attempted/succeeded intervals and the flagged fraction."""
    rows = []
    for name, table in tables.items():
        for tds in table:
            counts = dict(tds.attrs.get(C.ATTR_COUNTS, {}))
            rows.append({"table": name, "type": tds.attrs.get(C.ATTR_CAL_TYPE, ""),
                         "spw": int(tds.attrs.get(S.ATTR_SPW_ID, 0)),
                         "expected": counts.get("expected"), "attempted": counts.get("attempted"),
                         "succeeded": counts.get("succeeded"),
                         "flagged": float(tds[C.SOL_FLAG].values.mean())})
    return rows


def fluxscale_from_tables(tables: dict, fluxcal: str = "") -> dict:
    """The flux densities fluxscale assigned, recovered from the saved amplitude tables.

    ``flux_cal`` is ``amp_cal`` divided by ``sqrt(S)`` for every transfer field (see
    :func:`radiocal.calibration.workflow.rescale`), so ``S = median(|amp_cal| / |flux_cal|)^2``
    over the field's unflagged solutions.

    Returns
    -------
    dict
        field name -> {spw id -> (frequency Hz, flux Jy)}.
    """
    if "amp_cal" not in tables or "flux_cal" not in tables:
        return {}
    out: dict = {}
    for raw, scaled in zip(tables["amp_cal"], tables["flux_cal"]):
        spw = int(raw.attrs.get(S.ATTR_SPW_ID, 0))
        names = [str(n) for n in raw.attrs.get(C.ATTR_FIELD_NAMES, [])]
        ids = [int(i) for i in raw.attrs.get(C.ATTR_FIELD_IDS, [])]
        g_raw, g_scaled = np.abs(raw[C.GAIN].values), np.abs(scaled[C.GAIN].values)
        ok = ~(raw[C.SOL_FLAG].values | scaled[C.SOL_FLAG].values) & (g_scaled > 0)
        sol_field = raw[C.SOL_FIELD].values
        freq = float(np.mean(raw[C.SOL_FREQ].values))
        for name, fid in zip(names, ids):
            if name == fluxcal:
                continue
            rows = ok & (sol_field == fid)[:, None, None, None]
            if rows.any():
                ratio = float(np.median(g_raw[rows] / g_scaled[rows]) ** 2)
                out.setdefault(name, {})[spw] = (freq, ratio)
    return out


def flag_fractions(store, datasets) -> dict:
    """Flagged fractions of the input (the oldest flag version) and now, overall and by field,
    antenna and correlation (``radiocal.flagging.summary.flag_summary``'s counts)."""
    from radiocal.flagging.summary import flag_summary
    from radiocal.io.flag_versions import list_flag_versions, open_flag_version

    result = {"now": flag_summary(datasets)}
    versions = list_flag_versions(store)
    if versions:
        saved = open_flag_version(store, versions[0]["name"])
        before = [ds.assign({S.FLAG: (ds[S.FLAG].dims, saved[ds.attrs[S.ATTR_PARTITION]].data)})
                  for ds in datasets if ds.attrs[S.ATTR_PARTITION] in saved]
        result["input"] = flag_summary(before)
    return result


def fraction(pair) -> float:
    flagged, total = (int(x) for x in pair)
    return flagged / total if total else float("nan")
