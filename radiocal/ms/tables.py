"""Writing casacore tables so that a failed write is one error, never an abort or a half table.

Both writers (Measurement Sets in :mod:`radiocal.ms.write`, CASA calibration tables in
:mod:`radiocal.ms.casa_caltables`) build the table under ``<path>.incomplete`` and rename it when
it is whole (:func:`staged`), and hold every table they open for writing in :func:`written`.

A table whose buffers cannot be written (no space left, a file size limit) fails again in its
destructor. casacore throws from there, which terminates the process (SIGABRT) after radiocal's
one-line error, or before it when the destructor runs first.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import shutil

import numpy as np

from radiocal.errors import OutputError

INCOMPLETE_SUFFIX = ".incomplete"


@contextlib.contextmanager
def staged(path: str):
    """Yield the directory to write the table ``path`` in, renamed to ``path`` when the block
    ends; an existing ``path`` is replaced only then. A write that fails (casacore says
    RuntimeError, the OS OSError) removes the partial table and raises one
    :class:`~radiocal.errors.OutputError` naming ``path``; an interrupted one leaves it under its
    ``.incomplete`` name, never mistaken for a finished table."""
    tmp = path + INCOMPLETE_SUFFIX
    if os.path.exists(tmp):
        shutil.rmtree(tmp)
    try:
        yield tmp
    except (OSError, RuntimeError) as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OSError) and err.filename is not None:
            raise
        raise OutputError.writing(path, err) from None
    if os.path.exists(path):
        shutil.rmtree(path)
    os.rename(tmp, path)


@contextlib.contextmanager
def written(table):
    """``table``, open for writing, flushed and closed when the block ends (a failed flush
    raises). A table that cannot be flushed is never closed nor freed: casacore closes a table
    in its destructor, which flushes again and, failing, terminates the process. The exit
    reclaims it."""
    try:
        yield table
    except BaseException:
        with contextlib.suppress(RuntimeError):
            _close(table)
        raise
    _close(table)


def _close(table) -> None:
    try:
        table.flush()
    except RuntimeError:
        ctypes.pythonapi.Py_IncRef(ctypes.py_object(table))
        raise
    table.close()


def put_channels(table, row: int, freq: np.ndarray, width: np.ndarray) -> None:
    """One SPECTRAL_WINDOW row's channels: CHAN_FREQ, CHAN_WIDTH and the columns CASA derives
    from them (EFFECTIVE_BW, RESOLUTION, NUM_CHAN, TOTAL_BANDWIDTH), for MS and cal tables."""
    table.putcell("CHAN_FREQ", row, freq)
    table.putcell("CHAN_WIDTH", row, width)
    table.putcell("EFFECTIVE_BW", row, np.abs(width))
    table.putcell("RESOLUTION", row, np.abs(width))
    table.putcell("NUM_CHAN", row, freq.size)
    table.putcell("TOTAL_BANDWIDTH", row, float(np.abs(width).sum()))
