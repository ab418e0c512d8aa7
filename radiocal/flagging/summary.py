"""Flagged fractions by antenna, field, spectral window, scan and correlation (``flagdata`` summary).

Cells without an MS row (``ROW_PRESENT`` False) are not data and are left out of every count, so
the fractions match what CASA reports for the same MS. A baseline counts towards both of its
antennas, as in CASA.
"""

from __future__ import annotations

from collections import defaultdict

import dask
import numpy as np
import xarray as xr

from radiocal.io import schema as S

SUMMARY_AXES = ("antenna", "field", "spw", "scan", "correlation")


def _counts(ds: xr.Dataset):
    """Lazy (flagged, total) per (baseline, polarization) for one partition."""
    flag = ds[S.FLAG]
    if S.ROW_PRESENT in ds:
        present = ds[S.ROW_PRESENT]
    else:
        present = xr.ones_like(flag.isel({S.FREQUENCY: 0, S.POLARIZATION: 0}, drop=True))
    flagged = (flag & present).sum((S.TIME, S.FREQUENCY))
    total = (present.sum(S.TIME) * ds.sizes[S.FREQUENCY]).broadcast_like(flagged)
    order = (S.BASELINE, S.POLARIZATION)
    return flagged.transpose(*order).data, total.transpose(*order).data


def flag_summary(datasets) -> dict:
    """Count flags over partitions (computes).

    Parameters
    ----------
    datasets : list of xarray.Dataset
        Canonical partitions.

    Returns
    -------
    dict
        ``{"total": (flagged, total), "antenna": {name: (flagged, total)}, "field": {...},
        "spw": {...}, "scan": {...}, "correlation": {...}}`` with integer sample counts.
    """
    lazy = [_counts(ds) for ds in datasets]
    computed = dask.compute(*lazy)
    table = {axis: defaultdict(lambda: np.zeros(2, np.int64)) for axis in SUMMARY_AXES}
    grand = np.zeros(2, np.int64)
    for ds, (flagged, total) in zip(datasets, computed):
        flagged = np.asarray(flagged, np.int64)
        total = np.asarray(total, np.int64)
        names = [str(n) for n in ds[S.ANTENNA_NAME].values]
        a1 = ds[S.BASELINE_ANTENNA1].values
        a2 = ds[S.BASELINE_ANTENNA2].values
        per_baseline = np.stack([flagged.sum(axis=1), total.sum(axis=1)], axis=1)
        for b in range(per_baseline.shape[0]):
            table["antenna"][names[a1[b]]] += per_baseline[b]
            if a2[b] != a1[b]:
                table["antenna"][names[a2[b]]] += per_baseline[b]
        both = np.array([flagged.sum(), total.sum()], np.int64)
        grand += both
        table["field"][str(ds.attrs.get(S.ATTR_FIELD_NAME, ds.attrs.get(S.ATTR_FIELD_ID)))] += both
        table["spw"][str(ds.attrs.get(S.ATTR_SPW_ID))] += both
        table["scan"][str(ds.attrs.get(S.ATTR_SCAN))] += both
        for p, pol in enumerate(ds[S.POLARIZATION].values):
            table["correlation"][str(pol)] += np.array([flagged[:, p].sum(), total[:, p].sum()])
    out = {"total": (int(grand[0]), int(grand[1]))}
    for axis in SUMMARY_AXES:
        out[axis] = {k: (int(v[0]), int(v[1])) for k, v in table[axis].items()}
    return out


def format_summary(summary: dict, axes=SUMMARY_AXES) -> str:
    """A plain-text table of flagged fractions, one block per axis."""
    def line(key, counts):
        flagged, total = counts
        pct = 100.0 * flagged / total if total else 0.0
        return f"  {key:<20} {pct:7.2f}%  ({flagged} of {total})"

    lines = [line("total", summary["total"])]
    for axis in axes:
        lines.append(f"by {axis}:")
        for key in sorted(summary[axis], key=_natural):
            lines.append(line(key, summary[axis][key]))
    return "\n".join(lines)


def _natural(key: str):
    return (0, int(key), "") if key.lstrip("-").isdigit() else (1, 0, key)
