"""Parallactic angle of a partition per antenna and integration (CASA's parang).

The parallactic angle ``chi`` of a source is the position angle of the zenith seen from the
source, measured from the celestial pole of date towards the east
(:func:`radiocal.astro.parallactic_angles`, on astropy). Only alt-az mounts (ANTENNA::MOUNT
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


# astropy holds the GIL throughout, so threads gain nothing by running it at once, and two
# first calls at once both parsed the IERS tables (~0.8 CPU-s each, seen in py-spy of calibrate)
_ASTROPY = threading.Lock()


def _parang_block(times, *, positions, rotates, ra, dec):
    chi = np.zeros((times.size, positions.shape[0]))
    if rotates.any():
        with _ASTROPY:
            chi[:, rotates] = parallactic_angles(times, positions[rotates], ra, dec)
    return chi


def dataset_parang(ds: xr.Dataset, time_chunks=None) -> da.Array:
    """Lazy parallactic angles of a partition's phase centre: (time, antenna) float64 radians.

    Zero for antennas that are not alt-az mounted. One task computes the whole partition's
    angles, then they are split into ``time_chunks`` (default the visibilities'): astropy's cost
    is per call (~25 ms for 1 or 100 integrations, GIL held), and per time chunk it was most of
    a 4-correlation calibrate's CPU (every chunk, in every solve and in the apply). The angles
    are the size of the time coordinate times the antennas, not of the visibilities.
    """
    if time_chunks is None:
        vis = ds[S.VISIBILITY].data
        time_chunks = vis.chunks[0] if isinstance(vis, da.Array) else (ds.sizes[S.TIME],)
    positions = np.asarray(ds[S.ANTENNA_POSITION].values, dtype=np.float64)
    mounts = (ds[S.ANTENNA_MOUNT].values if S.ANTENNA_MOUNT in ds.coords
              else np.full(positions.shape[0], ""))
    ra, dec = (float(x) for x in ds.attrs[S.ATTR_PHASE_CENTER])
    times = da.from_array(ds[S.TIME].values.astype(np.float64), chunks=-1)
    chi = da.map_blocks(_parang_block, times, new_axis=1,
                        chunks=(times.chunks[0], (positions.shape[0],)), dtype=np.float64,
                        meta=np.empty((0, 0)), positions=positions,
                        rotates=rotating_antennas(mounts), ra=ra, dec=dec)
    return chi.rechunk((time_chunks, -1))
