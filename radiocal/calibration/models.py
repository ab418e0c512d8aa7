"""Model visibilities for solving: a flux-density standard or manual spectrum
(:mod:`radiocal.model.flux_standards`) as an unpolarised point source at the phase centre, a unit
point, or the ``VISIBILITY_MODEL`` column (e.g. predicted from a sky model).

The model visibility of a parallel-hand correlation is the Stokes I flux density; cross hands
are zero.
"""

from __future__ import annotations

import dask.array as da
import numpy as np
import xarray as xr

from radiocal.calibration import graph
from radiocal.errors import ConfigError, InputError
from radiocal.model.flux_standards import FluxModel, parse_manual_model, standard_model
from radiocal.store import schema as S


def resolve_model(spec, field_name: str | None = None):
    """Turn a user model spec into a model: None, a number, ``"S,alpha,ref"``, ``"column"``,
    ``"standard"`` (Perley-Butler 2017 by ``field_name``) or a calibrator name."""
    if spec is None or isinstance(spec, FluxModel):
        return spec
    if isinstance(spec, (int, float)):
        return FluxModel(flux=float(spec), name="manual")
    text = str(spec).strip()
    if text.lower() == "column":
        return "column"
    if text.lower() in ("standard", "perley-butler", "perley-butler-2017", "pb2017"):
        if not field_name:
            raise ConfigError("the standard flux model needs the calibrator's field name")
        return standard_model(field_name)
    if text and (text[0].isdigit() or text[0] == "."):
        return parse_manual_model(text)
    return standard_model(text)


def model_visibilities(ds: xr.Dataset, model) -> da.Array:
    """Model visibilities shaped like ``VISIBILITY``: complex64 dask array.

    ``model``: None (``VISIBILITY_MODEL`` when present, else a 1 Jy point), ``"column"`` (the
    ``VISIBILITY_MODEL`` variable, required), a :class:`FluxModel`, or a flux density in Jy.
    """
    model = resolve_model(model, ds.attrs.get(S.ATTR_FIELD_NAME))
    vis = ds[S.VISIBILITY].data
    if model == "column" or (model is None and S.VISIBILITY_MODEL in ds):
        if S.VISIBILITY_MODEL not in ds:
            raise InputError(f"partition {ds.attrs.get(S.ATTR_PARTITION, '')} has no model "
                             f"column (VISIBILITY_MODEL)")
        return ds[S.VISIBILITY_MODEL].data
    freqs = ds[S.FREQUENCY].values
    flux = np.ones(freqs.shape) if model is None else model(freqs)
    pols = [str(p) for p in ds[S.POLARIZATION].values]
    parallel = np.array([p == "I" or p[0] == p[1] for p in pols])
    spectrum = (flux[:, None] * parallel[None, :]).astype(np.complex64)   # (frequency, pol)
    # each chunk is a view of the small spectrum: nothing of the data's size is allocated
    chunks = vis.chunks if isinstance(vis, da.Array) else vis.shape
    spectrum = da.from_array(spectrum, chunks=(chunks[2], -1))
    # a solve makes each block in its own task (no task per block for the model)
    return graph.made_in_blocks(da.broadcast_to(spectrum, vis.shape, chunks=chunks),
                                graph.InBlocks(_spectrum_block, ((spectrum, "fp"),)))


def _spectrum_block(shape, spectrum):
    return np.broadcast_to(spectrum[None, None], shape)
