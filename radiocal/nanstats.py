"""NaN-skipping statistics that warn of nothing, for code that runs in worker threads.

numpy's ``nanmedian`` and ``nanmin`` warn ("All-NaN slice encountered") where every value of a
slice is NaN, which flagged data makes common. Silencing that with ``warnings.catch_warnings``
swaps the interpreter's global filter list, which is not safe while other threads run (on
Python < 3.14): a warning silenced in one task could escape from another, or a filter set by
the user be lost. These give NaN for such slices without raising the warning at all.
"""

from __future__ import annotations

import numpy as np


def nanmedian(values, axis=None, keepdims: bool = False):
    """``np.nanmedian`` of ``values`` along ``axis``, NaN (and no warning) where all are NaN."""
    return _quiet(np.nanmedian, values, axis, keepdims)


def nanmin(values, axis=None, keepdims: bool = False):
    """``np.nanmin`` of ``values`` along ``axis``, NaN (and no warning) where all are NaN."""
    return _quiet(np.nanmin, values, axis, keepdims)


def _quiet(reduce, values, axis, keepdims):
    values = np.asarray(values)
    empty = np.isnan(values).all(axis=axis, keepdims=True)
    out = np.where(empty, np.nan, reduce(np.where(empty, 0.0, values), axis=axis, keepdims=True))
    if keepdims:
        return out
    return out.reshape(())[()] if axis is None else np.squeeze(out, axis=axis)
