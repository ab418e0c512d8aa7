"""Rephase partitions to another phase centre: drift-scan integrations become one field.

OVRO-LWA writes each integration phased to the zenith of its own time, so every file has its
own FIELD PHASE_DIR. One dataset over time needs one phase centre: each partition is rephased
to a common centre (the first integration's zenith, or one the user gives), as WSClean's
``chgcentre`` and CASA's ``phaseshift`` do, rather than carrying a phase centre per time that
every consumer (sky-model predict, subtraction, dynamic spectra, the A-team model, flagging
by elevation, export, imaging) would have to honour (``docs/data-model.md``).

UVW of a row are its baseline's coordinates in the frame of the J2000 phase centre (w towards
it), so a new centre rotates them: ``uvw' = R(new) R(old)^T uvw``, exact, and consistent with
the phases the correlator wrote whatever its precession model (recomputing UVW from antenna
positions would mix two models). With the visibilities' sign convention (CASA's, of the
simulator: ``V = sum S exp(+2 pi i (u l + v m + w (n - 1)) nu / c)``) a point source moves
from phase ``w_old`` to ``w_new`` of its path, so ``V' = V exp(2 pi i (w_old - w_new) nu / c)``.
"""

from __future__ import annotations

import logging
import math

import dask.array as da
import numpy as np
import xarray as xr

from radiocal.astro import SPEED_OF_LIGHT, angular_distance, format_dec, format_ra, zenith
from radiocal.store import schema as S

log = logging.getLogger(__name__)

# A partition is "phased to its zenith" when its centre is this close to the J2000 zenith of
# the array centre at its middle time: the real OVRO-LWA files are 0.2 deg off (their zenith is
# of date and geocentric), the zenith moves 0.25 deg/min in hour angle.
ZENITH_TOLERANCE = math.radians(1.0)
# Centres closer than this (radians, ~0.2 milliarcsec) are the same centre
SAME_CENTRE = 1e-9
_VISIBILITIES = (S.VISIBILITY, S.VISIBILITY_CORRECTED, S.VISIBILITY_MODEL)


def uvw_frame(ra: float, dec: float) -> np.ndarray:
    """(3, 3): rows are the u, v, w axes of a J2000 phase centre in J2000 cartesian coordinates
    (w towards the centre, v towards the north celestial pole, u east)."""
    sa, ca, sd, cd = math.sin(ra), math.cos(ra), math.sin(dec), math.cos(dec)
    return np.array([[-sa, ca, 0.0], [-sd * ca, -sd * sa, cd], [cd * ca, cd * sa, sd]])


def _phase_block(vis, uvw, freq, dw):
    """``vis`` (time, baseline, frequency, polarization) times the fringe that moves its
    phase centre: ``dw`` (3,) gives ``w_old - w_new = uvw . dw`` in metres."""
    turns = (uvw @ dw)[..., None] * (freq / SPEED_OF_LIGHT)          # float64
    return (vis * np.exp(2j * np.pi * turns)[..., None]).astype(vis.dtype)


def rephase(ds: xr.Dataset, ra: float, dec: float) -> xr.Dataset:
    """``ds`` rephased to the J2000 centre ``(ra, dec)`` radians: lazy, chunks kept.

    UVW are rotated and every visibility column (DATA, CORRECTED, MODEL) takes the fringe of
    the shift; flags and weights are unchanged; the ``phase_center`` attribute is the new one.
    """
    old = [float(x) for x in ds.attrs[S.ATTR_PHASE_CENTER]]
    if angular_distance(old[0], old[1], ra, dec) < SAME_CENTRE:
        return ds
    rotation = uvw_frame(ra, dec) @ uvw_frame(*old).T               # old (u, v, w) -> new
    dw = np.array([0.0, 0.0, 1.0]) - rotation[2]
    uvw = ds[S.UVW].transpose(S.TIME, S.BASELINE, S.UVW_LABEL).data
    updates = {S.UVW: ((S.TIME, S.BASELINE, S.UVW_LABEL),
                       da.map_blocks(np.matmul, uvw, rotation.T, dtype=np.float64))}
    freq = ds[S.FREQUENCY].values.astype(np.float64)
    for name in _VISIBILITIES:
        if name not in ds:
            continue
        dims = (S.TIME, S.BASELINE, S.FREQUENCY, S.POLARIZATION)
        vis = ds[name].transpose(*dims).data
        phased = da.blockwise(_phase_block, "tbfp", vis, "tbfp", uvw, "tbx",
                              da.from_array(freq, chunks=(vis.chunks[2],)), "f",
                              dw, None, concatenate=True, dtype=vis.dtype)
        updates[name] = (dims, phased)
    out = ds.assign(updates)
    out.attrs = dict(ds.attrs)
    out.attrs[S.ATTR_PHASE_CENTER] = [float(ra), float(dec)]
    return out


def _zenith_phased(datasets: list[xr.Dataset]) -> np.ndarray:
    """(partition,) bool: each partition's centre within ZENITH_TOLERANCE of the zenith at the
    middle of its times (one astropy transform for all)."""
    mid = np.array([float(np.median(ds[S.TIME].values)) for ds in datasets])
    position = datasets[0][S.ANTENNA_POSITION].values.mean(axis=0)
    ra, dec = zenith(mid, position)
    centres = np.array([ds.attrs[S.ATTR_PHASE_CENTER] for ds in datasets], dtype=np.float64)
    return angular_distance(centres[:, 0], centres[:, 1], ra, dec) < ZENITH_TOLERANCE


def common_phase_centre(datasets: list[xr.Dataset],
                        centre: tuple[float, float] | None = None) -> list[xr.Dataset]:
    """Partitions with one phase centre where a dataset over time needs one.

    ``centre`` (J2000 radians): every partition is rephased to it. ``None``: partitions of one
    field name that are each phased to the zenith of their own time (drift-scan files) and do
    not share a centre are rephased to the centre of the earliest; any other field keeps its
    centres (fields of one name at different places, a mosaic's pointings, stay apart).
    """
    if centre is not None:
        log.info("convert: every partition rephased to %s %s", format_ra(centre[0], 3),
                 format_dec(centre[1], 2))
        return [rephase(ds, *centre) for ds in datasets]
    by_name: dict[str, list[int]] = {}
    for k, ds in enumerate(datasets):
        by_name.setdefault(str(ds.attrs[S.ATTR_FIELD_NAME]), []).append(k)
    out = list(datasets)
    for name, members in by_name.items():
        parts = [datasets[k] for k in members]
        centres = np.array([ds.attrs[S.ATTR_PHASE_CENTER] for ds in parts], dtype=np.float64)
        spread = angular_distance(centres[:, :1], centres[:, 1:2], centres[:, 0], centres[:, 1])
        if spread.max() < SAME_CENTRE or not _zenith_phased(parts).all():
            continue
        first = min(parts, key=lambda ds: float(ds[S.TIME].values[0]))
        ra, dec = (float(x) for x in first.attrs[S.ATTR_PHASE_CENTER])
        log.info("convert: field %s is a drift scan (%d partitions, each phased to its own "
                 "zenith); rephased to the first integration's zenith %s %s", name, len(parts),
                 format_ra(ra, 3), format_dec(dec, 2))
        for k in members:
            out[k] = rephase(datasets[k], ra, dec)
    return out
