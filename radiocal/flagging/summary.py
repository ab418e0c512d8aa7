"""Flagged fractions by antenna, field, spectral window, scan and correlation (``flagdata`` summary).

Cells without an MS row (``ROW_PRESENT`` False) are not data and are left out of every count, so
the fractions match what CASA reports for the same MS. A baseline counts towards both of its
antennas, as in CASA.
"""

from __future__ import annotations

from collections import defaultdict

import dask
import dask.array as da
import numpy as np
import xarray as xr

from radiocal.store import schema as S

SUMMARY_AXES = ("antenna", "field", "spw", "scan", "correlation")


def _count_block(flag, present):
    """Flagged and total samples per (baseline, polarization) of one chunk:
    int64 ``(1, baseline, 1, pol, 2)``."""
    flagged = (flag & present[:, :, None, None]).sum(axis=(0, 2), dtype=np.int64)
    total = np.broadcast_to(present.sum(axis=0, dtype=np.int64)[:, None] * flag.shape[2],
                            flagged.shape)
    return np.stack([flagged, total], axis=-1)[None, :, None]


def lazy_counts(ds: xr.Dataset):
    """Lazy int64 ``(baseline, polarization, 2)``: flagged and total samples of one partition.

    One task per chunk and a sum over time and frequency chunks: an xarray expression of the
    same counts built ~10 graph layers per partition, and building them cost more than counting.
    """
    flag = ds[S.FLAG].data
    present = ds[S.ROW_PRESENT].data if S.ROW_PRESENT in ds else \
        da.ones(flag.shape[:2], bool, chunks=flag.chunks[:2])
    per_chunk = da.blockwise(_count_block, "tbfpd", flag, "tbfp", present, "tb",
                             new_axes={"d": 2}, adjust_chunks={"t": 1, "f": 1}, dtype=np.int64)
    return per_chunk.sum(axis=(0, 2))


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
    return finish_summary(datasets, dask.compute(*[lazy_counts(ds) for ds in datasets]))


def finish_summary(datasets, computed) -> dict:
    """:func:`flag_summary`'s dict from the computed :func:`lazy_counts` of ``datasets``."""
    table = {axis: defaultdict(lambda: np.zeros(2, np.int64)) for axis in SUMMARY_AXES}
    grand = np.zeros(2, np.int64)
    for ds, counts in zip(datasets, computed):
        flagged, total = counts[..., 0], counts[..., 1]
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
