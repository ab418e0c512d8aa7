"""Reading Measurement Sets: the public entry point of the MS layer.

``read_ms`` takes one MS, several, or a directory of them (OVRO-LWA writes one MS per integration
and sub-band, named ``YYYYMMDD_HHMMSS_XXMHz.ms``), probes them, reads each
(:mod:`radiocal.ms.read_one`), joins and rephases them and returns lazy canonical partitions.
"""

from __future__ import annotations

import numpy as np
import xarray as xr

from radiocal.errors import InputError
from radiocal.ms.join import join_measurement_sets
from radiocal.budget import chunk_bytes as budget_chunk_bytes
from radiocal.ms.meta import spectral_windows
from radiocal.ms.read_one import read_single_ms
from radiocal.ms.probe import expand_inputs, probe_measurement_sets
from radiocal.ms.rephase import common_phase_centre

__all__ = ["read_ms", "expand_inputs"]


def read_ms(path_or_paths, selection=None, chunk_bytes: int | None = None,
            renumber_scans: bool = False, join_subbands: bool = True,
            phase_centre: tuple[float, float] | None = None) -> list[xr.Dataset]:
    """Read one or many Measurement Sets lazily into canonical partitions.

    Parameters
    ----------
    path_or_paths : str, os.PathLike or sequence of them
        MS paths, or directories holding ``*.ms``. Several MS are joined along frequency
        (sub-bands) and time (see :mod:`radiocal.ms.join`).
    selection : radiocal.select.selection.Selection, optional
        CASA-style data selection applied after joining.
    chunk_bytes : int, optional
        Most ``VISIBILITY`` bytes per chunk; default: the run's budget
        (:func:`radiocal.budget.chunk_bytes`).
    renumber_scans : bool
        Number scans from the data (a new scan wherever the field changes in time) instead of
        the recorded SCAN_NUMBER (:mod:`radiocal.ms.scans`).
    join_subbands : bool
        Join partitions of different MS recorded at the same times along frequency (default);
        False keeps them as separate spectral windows (e.g. two LO tunings far apart).
    phase_centre : (ra, dec), optional
        J2000 radians: rephase every partition to this centre (UVW rotated, visibilities
        phased; :mod:`radiocal.ms.rephase`). Without it, drift-scan files of several MS (one
        field name, each phased to the zenith of its own time, as OVRO-LWA writes them) are
        rephased to the first integration's zenith and joined into one dataset over time.

    Returns
    -------
    list of xarray.Dataset
        Canonical datasets (``docs/data-model.md``), sorted by first time then spectral window.
    """
    paths = expand_inputs(path_or_paths)
    probe_measurement_sets(paths)   # a damaged file is a one-line error here, not a crash later
    chunk_bytes = budget_chunk_bytes() if chunk_bytes is None else int(chunk_bytes)
    if len(paths) == 1:
        per_ms = [read_single_ms(paths[0], chunk_bytes=chunk_bytes, renumber_scans=renumber_scans)]
    else:
        channels = _joined_channels([spectral_windows(path) for path in paths]) if join_subbands else 0
        per_ms = [read_single_ms(path, chunk_bytes=chunk_bytes, layout_channels=channels,
                                 renumber_scans=renumber_scans)
                  for path in paths]
    if len(per_ms) == 1:
        datasets = per_ms[0] if phase_centre is None else common_phase_centre(per_ms[0], phase_centre)
    else:
        datasets = join_measurement_sets(per_ms, chunk_bytes, join_frequency=join_subbands,
                                         phase_centre=phase_centre)
    if selection is not None:
        from radiocal.select.selection import select

        datasets = select(datasets, selection)
    return datasets


def _joined_channels(spws) -> int:
    """Channels of a partition after joining sub-bands, when every MS (``spws``: each one's
    spectral windows) holds one spectral window (OVRO-LWA's files): the files are read in chunks that line up once joined. 0 otherwise."""
    if any(len(windows) != 1 for windows in spws):
        return 0
    freqs = np.concatenate([spw.chan_freq for windows in spws for spw in windows.values()])
    return int(np.unique(freqs).size)
