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

from radiocal.store import caltables as C
from radiocal.store import schema as S


# Scatter points per calibrator and plotted quantity, spread over its partitions: what the figures
# draw (and what reaches the driver) is bounded, whatever the number of integrations, baselines
# or channels. 40 000 keeps a 0.5 GB VLA-like run's phase calibrator dense to the eye.
SAMPLE_POINTS = 40_000


@dataclass
class VisSummary:
    """Parallel-hand averages of one calibrator partition, before and after calibration.

    ``by_time`` and ``uvdist`` hold a decimated sample of (time, baseline) cells, spread evenly
    over the partition (successive cells fall on other baselines), ``by_frequency`` a sample of
    baselines; ``spectrum`` is reduced over every baseline.

    Attributes
    ----------
    field, partition : str
    frequency : (frequency,) Hz
    time : (cell,) MJD seconds of the sampled cells
    uvdist : (cell,) metres
    by_time : {"before", "after"} -> (cell,) complex128, averaged over channels
    by_frequency : {"before", "after"} -> (sampled baseline, frequency) complex128, averaged
        over time
    spectrum : {"after"} -> ((frequency,) sum over baselines of ``by_frequency``'s values,
        (frequency,) number of baselines with data)
    """

    field: str
    partition: str
    frequency: np.ndarray
    time: np.ndarray
    uvdist: np.ndarray
    by_time: dict = field(default_factory=dict)
    by_frequency: dict = field(default_factory=dict)
    spectrum: dict = field(default_factory=dict)


def parallel_hands(ds) -> list[int]:
    """Indices of the parallel-hand correlations (RR, LL / XX, YY / I)."""
    pols = [str(p) for p in ds[S.POLARIZATION].values]
    return [i for i, p in enumerate(pols) if len(p) == 1 or p[0] == p[1]]


def sample_cells(n_time: int, n_baseline: int, budget: int) -> tuple[np.ndarray, np.ndarray]:
    """(time, baseline) indices of at most ``budget`` cells spread evenly over the grid, in
    row-major order. The stride is not a multiple of the number of baselines in general, so
    successive integrations contribute other baselines and every part of the uv plane shows."""
    cells = n_time * n_baseline
    flat = np.arange(cells) if cells <= budget else \
        np.unique((np.arange(budget) * (cells / budget)).astype(np.int64))
    return flat // n_baseline, flat % n_baseline


def sample_indices(n: int, budget: int) -> np.ndarray:
    """At most ``budget`` indices of ``range(n)``, evenly spaced."""
    return np.arange(n) if n <= budget else np.unique(np.linspace(0, n - 1, budget).astype(np.int64))


def _mean(total, count):
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def lazy_visibility_summaries(datasets, fields, budget: int = SAMPLE_POINTS):
    """The lazy reductions behind :func:`visibility_summaries`, for one compute with others.

    Returns
    -------
    (meta, lazy)
        Pass ``meta`` and the computed ``lazy`` to :func:`finish_visibility_summaries`.
    """
    wanted = set(fields)
    chosen = [ds for ds in datasets if ds.attrs.get(S.ATTR_FIELD_NAME) in wanted]
    partitions = {}
    for ds in chosen:
        name = ds.attrs.get(S.ATTR_FIELD_NAME)
        partitions[name] = partitions.get(name, 0) + 1
    lazy, meta = [], []
    for ds in chosen:
        share = max(1, budget // partitions[ds.attrs.get(S.ATTR_FIELD_NAME)])
        n_time, n_baseline = ds.sizes[S.TIME], ds.sizes[S.BASELINE]
        t_idx, b_idx = sample_cells(n_time, n_baseline, share)
        b_freq = sample_indices(n_baseline, max(1, share // ds.sizes[S.FREQUENCY]))
        par = parallel_hands(ds)
        usable = ~ds[S.FLAG].data[..., par]
        if S.ROW_PRESENT in ds:
            usable = usable & ds[S.ROW_PRESENT].data[:, :, None, None]
        # per (time, baseline) cell first, then the sampled cells: gathering cells from the
        # 4-d arrays built a costlier graph than the sums it saves
        cell_n = usable.sum(axis=(2, 3)).vindex[t_idx, b_idx]
        columns = {"before": S.VISIBILITY}
        if S.VISIBILITY_CORRECTED in ds:
            columns["after"] = S.VISIBILITY_CORRECTED
        parts = {}
        for label, name in columns.items():
            # complex64 as stored, summed in complex128
            vis = da.where(usable, ds[name].data[..., par], np.complex64(0))
            by_time = (vis.sum(axis=(2, 3), dtype=np.complex128).vindex[t_idx, b_idx], cell_n)
            if label == "after":
                # every baseline's time average, reduced over baselines for the measured flux
                t_sum = vis.sum(axis=(0, 3), dtype=np.complex128)
                t_n = usable.sum(axis=(0, 3))
                mean = da.where(t_n > 0, t_sum / da.maximum(t_n, 1), 0)
                spectrum = (mean.real.sum(axis=0), (t_n > 0).sum(axis=0))
                by_freq = (t_sum[b_freq], t_n[b_freq])
            else:
                spectrum = None
                by_freq = (vis[:, b_freq].sum(axis=(0, 3), dtype=np.complex128),
                           usable[:, b_freq].sum(axis=(0, 3)))
            parts[label] = (by_time, by_freq, spectrum)
        uvw = ds[S.UVW].data.vindex[t_idx, b_idx]
        lazy.append((parts, da.sqrt(uvw[:, 0] ** 2 + uvw[:, 1] ** 2)))
        meta.append((ds, t_idx))
    return meta, lazy


def finish_visibility_summaries(meta, computed) -> list[VisSummary]:
    """:class:`VisSummary` per partition from :func:`lazy_visibility_summaries`' results."""
    out = []
    for (ds, t_idx), (parts, uvdist) in zip(meta, computed):
        summary = VisSummary(str(ds.attrs.get(S.ATTR_FIELD_NAME)), str(ds.attrs.get(S.ATTR_PARTITION)),
                             ds[S.FREQUENCY].values, ds[S.TIME].values[t_idx], np.asarray(uvdist))
        for label, ((t_sum, t_n), (f_sum, f_n), spectrum) in parts.items():
            summary.by_time[label] = _mean(t_sum, t_n)
            summary.by_frequency[label] = _mean(f_sum, f_n)
            if spectrum is not None:
                summary.spectrum[label] = tuple(np.asarray(x) for x in spectrum)
        out.append(summary)
    return out


def visibility_summaries(datasets, fields, budget: int = SAMPLE_POINTS) -> list[VisSummary]:
    """Before/after calibration averages of the partitions of ``fields`` (one compute).

    Parameters
    ----------
    datasets : list of xr.Dataset
        Canonical partitions; ``VISIBILITY`` is "before", ``VISIBILITY_CORRECTED`` (when
        present) "after". The current ``FLAG`` selects the samples of both.
    fields : iterable of str
        Field names to summarise (the calibrators).
    budget : int
        Sampled cells (and baseline x channel values) per field, shared by its partitions.
    """
    meta, lazy = lazy_visibility_summaries(datasets, fields, budget)
    return finish_visibility_summaries(meta, dask.compute(*lazy))


def measured_flux(summaries, field_name):
    """Flux density of a calibrator measured from its calibrated data.

    The channel spectra of all its partitions (time- and baseline-averaged real part of the
    calibrated parallel hands: the mean over baselines of each baseline's time average) are
    fitted with ``S0 (nu / nu0)^alpha``, ``nu0`` the mean frequency.

    Returns
    -------
    dict or None
        ``frequency`` (Hz), ``flux`` (Jy) per channel, ``s0``, ``alpha``, ``nu0``; None when the
        field has no calibrated, unflagged data.
    """
    mine = [s for s in summaries if s.field == field_name and "after" in s.spectrum]
    if not mine:
        return None
    nu = np.concatenate([s.frequency for s in mine])
    # channel sums and counts over baselines of every partition, then one mean per frequency
    sums = np.concatenate([s.spectrum["after"][0] for s in mine])
    counts = np.concatenate([s.spectrum["after"][1] for s in mine])
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

    root = os.path.join(os.fspath(store), C.CALTABLES_GROUP)
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


def flag_states(store, datasets) -> dict:
    """The partitions whose flags the report counts: ``"now"`` (the datasets as they are) and,
    when the store keeps flag versions, ``"input"`` (the oldest version's flags)."""
    from radiocal.store.flag_versions import list_flag_versions, open_flag_version

    states = {"now": list(datasets)}
    versions = list_flag_versions(store)
    if versions:
        saved = open_flag_version(store, versions[0]["name"])
        states["input"] = [ds.assign({S.FLAG: (ds[S.FLAG].dims, saved[ds.attrs[S.ATTR_PARTITION]].data)})
                           for ds in datasets if ds.attrs[S.ATTR_PARTITION] in saved]
    return states


def visibility_and_flag_summaries(datasets, fields, store, budget: int = SAMPLE_POINTS):
    """:func:`visibility_summaries` of ``fields`` and the flag counts of :func:`flag_states`
    (``radiocal.flagging.summary.flag_summary``'s dicts by state), in one compute: the
    calibrators' flags are read once for both."""
    from radiocal.flagging.summary import finish_summary, lazy_counts

    meta, lazy = lazy_visibility_summaries(datasets, fields, budget)
    states = flag_states(store, datasets)
    counts = {state: [lazy_counts(ds) for ds in dss] for state, dss in states.items()}
    vis, counts = dask.compute(lazy, counts)
    return (finish_visibility_summaries(meta, vis),
            {state: finish_summary(states[state], counts[state]) for state in states})


def fraction(pair) -> float:
    flagged, total = (int(x) for x in pair)
    return flagged / total if total else float("nan")
