"""The predict on canonical datasets (xr.Dataset -> xr.Dataset, lazy): a sky model's visibilities
in the data's correlations, for subtraction (``predict``, ``dynspec --skymodel``) and for solving
against a sky (``ateam``).

Correlations from Stokes follow CASA (and the IAU for circular feeds): ``RR = I + V``,
``RL = Q + iU``, ``LR = Q - iU``, ``LL = I - V``; ``XX = I + Q``, ``XY = U + iV``, ``YX = U - iV``,
``YY = I - Q``.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from radiocal.errors import InputError
from radiocal.model import graph
from radiocal.model.skymodel import SkyModel
from radiocal.store import schema

# A dataset held in memory is chunked this many times along time before graphs are built on it
DEFAULT_TIME_CHUNK = 64

# Row: correlation; columns: coefficients of (I, Q, U, V).
_STOKES_TO_CORR = {
    "RR": (1, 0, 0, 1), "RL": (0, 1, 1j, 0), "LR": (0, 1, -1j, 0), "LL": (1, 0, 0, -1),
    "XX": (1, 1, 0, 0), "XY": (0, 0, 1, 1j), "YX": (0, 0, 1, -1j), "YY": (1, -1, 0, 0),
    "I": (1, 0, 0, 0), "Q": (0, 1, 0, 0), "U": (0, 0, 1, 0), "V": (0, 0, 0, 1),
}


def stokes_to_correlation(polarizations) -> np.ndarray:
    """Matrix that turns Stokes (I, Q, U, V) into the given correlations.

    Returns
    -------
    (4, polarization) complex128 : ``corr = stokes @ M``
    """
    layout = schema.check_polarizations(polarizations)
    return np.array([_STOKES_TO_CORR[p] for p in layout], dtype=np.complex128).T.copy()


def dask_backed(ds: xr.Dataset) -> xr.Dataset:
    """Small coordinates in memory, large variables as dask arrays chunked along time.

    Coordinates (antenna names, baseline indices, ...) are metadata: a dask-backed one is read on
    the local thread, so building a graph works even where the data's scheduler forbids computing.
    """
    # Variables, not ds[name]: a DataArray costs ~0.1 ms to make, and partitions have ~20 names
    variables = ds.variables
    lazy = [name for name in ds.coords if isinstance(variables[name].data, da.Array)]
    if lazy:
        values = da.compute(*(ds[name].data for name in lazy), scheduler="sync")
        ds = ds.assign_coords({name: (ds[name].dims, value, ds[name].attrs) for name, value in zip(lazy, values)})
        variables = ds.variables
    eager = {name: ds[name].chunk({schema.TIME: DEFAULT_TIME_CHUNK}) for name in ds.data_vars
             if variables[name].chunks is None and schema.TIME in variables[name].dims}
    return ds.assign(eager) if eager else ds


def predict_model(ds: xr.Dataset, skymodel: SkyModel, convention: str = "casa") -> xr.Dataset:
    """Predict a sky model into ``VISIBILITY_MODEL`` (lazy DFT with the w-term).

    Parameters
    ----------
    ds : canonical dataset; needs ``UVW``, ``frequency``, ``polarization`` and the ``phase_center``
        attribute.
    skymodel : SkyModel
    convention : "casa" (default, the sign of CASA's ``ft`` and of real data) or "fourier"

    Returns
    -------
    xr.Dataset
        ``ds`` with ``VISIBILITY_MODEL`` (time, baseline, frequency, polarization) complex64
        chunked like ``VISIBILITY``.
    """
    ds = dask_backed(ds)
    pols = schema.check_polarizations(ds[schema.POLARIZATION].values)
    if schema.ATTR_PHASE_CENTER not in ds.attrs:
        raise InputError(f"partition {ds.attrs.get(schema.ATTR_PARTITION, '?')}: no phase_center attribute")
    freq = ds[schema.FREQUENCY].values.astype(np.float64)
    lmn = np.ascontiguousarray(skymodel.lmn(ds.attrs[schema.ATTR_PHASE_CENTER]))
    if np.any(lmn[:, 2] <= 0):
        raise InputError("sky model has components beyond the horizon of the phase centre")
    brightness = skymodel.spectra(freq) @ stokes_to_correlation(pols)
    vis = ds[schema.VISIBILITY].data
    model = graph.predict(
        da.asarray(ds[schema.UVW].transpose(schema.TIME, schema.BASELINE, schema.UVW_LABEL).data),
        da.from_array(freq, chunks=(vis.chunks[2],)),
        da.from_array(np.ascontiguousarray(brightness), chunks=(-1, vis.chunks[2], -1)),
        lmn,
        np.ascontiguousarray(skymodel.gaussian_shape()),
        vis.chunks,
        convention,
    )
    return ds.assign({schema.VISIBILITY_MODEL: (ds[schema.VISIBILITY].dims, model)})
