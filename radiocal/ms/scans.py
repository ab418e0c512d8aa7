"""Scan numbers as an observer means them: one scan per stretch of time on one field.

Some correlators (ATA's, concatenations of per-source files, hand-edited MS) keep one
SCAN_NUMBER while the array moves between sources, or restart numbering per file. radiocal's
partitions are (field, spectral window, scan), so a calibrator visited three times under one scan
number becomes one partition with gaps, and solution intervals of ``scan`` span the target in
between. ``convert --renumber-scans`` rebuilds the numbers from the data instead.
"""

from __future__ import annotations

import numpy as np


def renumber_scans(time: np.ndarray, field: np.ndarray, scan: np.ndarray) -> np.ndarray:
    """New scan numbers (1, 2, ...) per row: a scan begins wherever, in time order, the fields
    observed (or the recorded scan numbers) change from one integration to the next.

    Rows of one integration (all baselines and spectral windows at one TIME) always share a
    scan, so sub-bands and tunings recorded at the same times stay together and join along
    frequency. Existing scan boundaries are kept: scans are only split, never merged.
    """
    time = np.asarray(time, dtype=np.float64)
    if time.size == 0:
        return np.zeros(0, dtype=np.int32)
    field = np.asarray(field, dtype=np.int64)
    scan = np.asarray(scan, dtype=np.int64)
    pair = field * (int(scan.max()) - int(scan.min()) + 1) + (scan - scan.min())
    order = np.lexsort((pair, time))
    t, p = time[order], pair[order]
    starts = np.flatnonzero(np.concatenate([[True], t[1:] != t[:-1]]))
    # What is observed at one integration: its distinct (field, scan) pairs, summarised by their
    # smallest, largest and count (pairs are sorted within the integration). Two integrations with
    # the same summary observe the same set of pairs unless an integration holds three or more
    # pairs, which only simultaneous multi-field (multi-beam) data has.
    new_pair = np.concatenate([[True], (p[1:] != p[:-1]) | (t[1:] != t[:-1])])
    lo = p[starts]
    hi = np.maximum.reduceat(p, starts)
    count = np.add.reduceat(new_pair.astype(np.int64), starts)
    changed = np.concatenate([[True], (lo[1:] != lo[:-1]) | (hi[1:] != hi[:-1])
                              | (count[1:] != count[:-1])])
    per_time = np.cumsum(changed).astype(np.int32)
    out = np.empty(time.size, dtype=np.int32)
    out[order] = np.repeat(per_time, np.diff(np.append(starts, t.size)))
    return out
