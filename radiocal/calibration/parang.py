"""Parallactic angle of a partition per antenna and integration (CASA's parang).

The parallactic angle ``chi`` of a source is the position angle of the zenith seen from the
source, measured from the celestial pole of date towards the east
(:func:`radiocal.astro.parallactic_angles`, on ERFA). Only alt-az mounts (ANTENNA::MOUNT
``ALT-AZ``, with any suffix such as ``+NASMYTH``, whose extra elevation term is not modelled)
rotate the feeds on the sky;
equatorial mounts and mounts radiocal does not know (``X-Y``, ``SPACE``, blank) get zero
rotation. Feed offset angles (FEED::RECEPTOR_ANGLE) are taken as zero.

The feed rotation these angles cause is :func:`radiocal.astro.feed_rotation`.
"""

from __future__ import annotations

import threading

import dask.array as da
import numpy as np
import xarray as xr

from radiocal.astro import parallactic_angles, rotating_antennas
from radiocal.store import schema as S


# one computation of a source's angles at a time: two threads asking at once would both compute
# them (and both fill the cache below)
_COMPUTING = threading.Lock()

# Angles already computed, per (phase centre, antenna positions, rotating antennas): the times
# (ascending) and their (time, antenna) angles. A calibrate asks for the same partition's angles
# in the polarised gains' model, the polarisation solve, its coverage check and the apply, and
# the spectral windows of a scan share their times: ~0.15 ms per integration of 27 antennas,
# so each is computed once. The angle of an integration does not depend on the others computed
# with it (checked bit for bit on the VLA-like stores).
_KNOWN: dict = {}
_KNOWN_MAX = 64        # sources x arrays remembered; the oldest is forgotten first


def _key(ds: xr.Dataset):
    positions = np.ascontiguousarray(ds[S.ANTENNA_POSITION].values, dtype=np.float64)
    mounts = (ds[S.ANTENNA_MOUNT].values if S.ANTENNA_MOUNT in ds.coords
              else np.full(positions.shape[0], ""))
    ra, dec = (float(x) for x in ds.attrs[S.ATTR_PHASE_CENTER])
    rotates = rotating_antennas(mounts)
    return (ra, dec, positions.tobytes(), rotates.tobytes()), positions, rotates


def _angles(key, positions, rotates, times) -> np.ndarray:
    """(time, antenna) angles at ``times``, from :data:`_KNOWN` or computed (and kept)."""
    with _COMPUTING:
        known_times, known = _KNOWN.get(key, (np.empty(0), np.empty((0, positions.shape[0]))))
        new = np.setdiff1d(times, known_times)
        if new.size:
            chi = np.zeros((new.size, positions.shape[0]))
            if rotates.any():
                chi[:, rotates] = parallactic_angles(new, positions[rotates], key[0], key[1])
            known_times = np.concatenate([known_times, new])
            order = np.argsort(known_times, kind="stable")
            known_times, known = known_times[order], np.concatenate([known, chi])[order]
            _KNOWN.pop(key, None)
            while len(_KNOWN) >= _KNOWN_MAX:
                _KNOWN.pop(next(iter(_KNOWN)))
            _KNOWN[key] = (known_times, known)
        return known[np.searchsorted(known_times, times)]


def prepare(datasets) -> None:
    """Compute the angles of every partition of ``datasets`` now, one ERFA call per source
    and array (then :func:`partition_parang` and :func:`dataset_parang` look them up)."""
    groups: dict = {}
    for ds in datasets:
        key, positions, rotates = _key(ds)
        groups.setdefault(key, (positions, rotates, []))[2].append(
            ds[S.TIME].values.astype(np.float64))
    for key, (positions, rotates, times) in groups.items():
        _angles(key, positions, rotates, np.unique(np.concatenate(times)))


def prepare_soon(datasets) -> threading.Thread:
    """:func:`prepare` in a thread of its own, started now: it then overlaps the computes a
    caller runs meanwhile instead of waiting for them on its critical path (ERFA's import and
    the angles of the VLA-like x4 store's calibrator: ~0.1 CPU-s). Whoever asks for angles first
    waits for it (the lock of :func:`_angles`); if it fails, they are computed where asked."""
    def run():
        try:
            prepare(datasets)
        except Exception:   # noqa: BLE001 - the angles are computed again where they are asked
            pass
    thread = threading.Thread(target=run, name="radiocal-parang", daemon=True)
    thread.start()
    return thread


def partition_parang(ds: xr.Dataset) -> np.ndarray:
    """Parallactic angles of a partition's phase centre: (time, antenna) float64 radians, now.

    Zero for antennas that are not alt-az mounted.
    """
    key, positions, rotates = _key(ds)
    return _angles(key, positions, rotates, ds[S.TIME].values.astype(np.float64))


def dataset_parang(ds: xr.Dataset, time_chunks=None) -> da.Array:
    """:func:`partition_parang` as a dask array in ``time_chunks`` (default the visibilities').

    The angles are computed when the graph is built, not in a task: they are the size of the
    time coordinate times the antennas, not of the visibilities, and computed once per
    partition (see :data:`_KNOWN`) they cost no task, and no compute of their own where they
    decide a solve.
    """
    if time_chunks is None:
        vis = ds[S.VISIBILITY].data
        time_chunks = vis.chunks[0] if isinstance(vis, da.Array) else (ds.sizes[S.TIME],)
    return da.from_array(partition_parang(ds), chunks=(time_chunks, -1))
