"""Apply polarisation calibration: parallel-hand chain, KCROSS, Df, Xf and parallactic angle.

Each antenna's Jones matrix, in CASA's order from the correlator outwards,
``J = G_chain . diag(k, 1) . D . diag(x, 1) . P`` (``G_chain`` the diagonal K/B/G terms of the
chain, ``k = exp(2 pi i tau (nu - nu_ref))`` the cross-hand delay, ``D = [[1, d_x], [d_y, 1]]``,
``x`` the cross-hand phase, ``P`` the feed rotation), is inverted per (time, channel) and the
four correlations are corrected as ``J_p^-1 V J_q^-H`` chunk by chunk (CASA's applycal with
``parang=True``). Unlike CASA's first-order ``Df`` the leakage matrix is inverted exactly; the
difference is second order in ``d``.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import dask.array as da
import numpy as np
import xarray as xr

from radiocal.calibration import graph
from radiocal.calibration import pol_kernels as PK
from radiocal.calibration.jones import chain_jones, select_table_spw
from radiocal.astro import feed_rotation
from radiocal.calibration.parang import dataset_parang
from radiocal.calibration.polcal import corr_index, feed_basis
from radiocal.store import caltables as C
from radiocal.store import schema as S


@dataclass(frozen=True)
class PolTerms:
    """Polarisation tables to apply (each a table, or None) and whether to derotate ``P``."""

    kcross: list | None = field(default=None, hash=False, compare=False)
    xf: list | None = field(default=None, hash=False, compare=False)
    df: list | None = field(default=None, hash=False, compare=False)
    parang: bool = True

    def record(self) -> dict:
        """What a dataset corrected with these terms carries in ``ATTR_POLCAL``."""
        return {"cross_hand_phase": self.xf is not None, "leakage": self.df is not None,
                "parallactic_angle": bool(self.parang)}


def _channel_values(tds, var, freqs) -> np.ndarray:
    """A table's per-channel values at ``freqs`` (linear in real and imaginary parts; NaN
    where flagged): complex (antenna, frequency, hand)."""
    values = np.asarray(tds[var].values[0], dtype=np.complex128)       # first solution
    values = np.where(np.asarray(tds[C.SOL_FLAG].values[0]), np.nan, values)
    sol_freq = tds[C.SOL_FREQ].values.astype(np.float64)
    if sol_freq.size == 1:
        return np.broadcast_to(values, (values.shape[0], freqs.size, values.shape[2])).copy()
    out = np.empty((values.shape[0], freqs.size, values.shape[2]), dtype=np.complex128)
    for a in range(values.shape[0]):
        for h in range(values.shape[2]):
            v = values[a, :, h]
            out[a, :, h] = (np.interp(freqs, sol_freq, v.real)
                            + 1j * np.interp(freqs, sol_freq, v.imag))
    return out


def static_terms(ds, terms: PolTerms):
    """(antenna, frequency, 2, 2) complex: ``diag(k, 1) D diag(x, 1)`` of a partition."""
    freqs = ds[S.FREQUENCY].values.astype(np.float64)
    nant = ds.sizes[S.ANTENNA]
    out = np.zeros((nant, freqs.size, 2, 2), dtype=np.complex128)
    out[..., 0, 0] = out[..., 1, 1] = 1.0
    if terms.xf is not None:
        x = _channel_values(select_table_spw(terms.xf, ds), C.GAIN, freqs)[..., 0]
        out[..., 0, 0] *= x
    if terms.df is not None:
        d = _channel_values(select_table_spw(terms.df, ds), C.GAIN, freqs)
        leak = np.zeros_like(out)
        leak[..., 0, 0] = leak[..., 1, 1] = 1.0
        leak[..., 0, 1], leak[..., 1, 0] = d[..., 0], d[..., 1]
        out = leak @ out
    if terms.kcross is not None:
        tds = select_table_spw(terms.kcross, ds)
        tau = np.where(np.asarray(tds[C.SOL_FLAG].values[0, :, 0]), np.nan,
                       tds[C.DELAY].values[0, :, 0])                  # (antenna, hand)
        ref = float(tds.attrs[C.ATTR_DELAY_REF])
        k = np.exp(2j * np.pi * tau[:, None, :] * (freqs - ref)[None, :, None])
        out = out * np.stack([k[..., 0], k[..., 1]], axis=-1)[..., :, None]
    return out


def _inverse_block(gains, chi, channels, *, static, basis, parang):
    gains = graph._only_block(gains)
    chi = graph._only_block(chi)
    jones = gains[..., :, None] * static[None][:, :, channels]           # (t, a, f, 2, 2)
    if parang:
        jones = jones @ feed_rotation(chi, basis)[:, :, None]
    with np.errstate(invalid="ignore", divide="ignore"):
        det = jones[..., 0, 0] * jones[..., 1, 1] - jones[..., 0, 1] * jones[..., 1, 0]
        inverse = np.empty_like(jones)
        inverse[..., 0, 0], inverse[..., 1, 1] = jones[..., 1, 1] / det, jones[..., 0, 0] / det
        inverse[..., 0, 1], inverse[..., 1, 0] = -jones[..., 0, 1] / det, -jones[..., 1, 0] / det
    return inverse


def inverse_jones(ds, chain, terms: PolTerms) -> da.Array:
    """Lazy ``J^-1`` (time, antenna, frequency, 2, 2) complex128 of a partition, chunked like
    its visibilities along time and frequency; NaN where a term has no valid solution."""
    vis = graph._as_dask(ds[S.VISIBILITY].data)
    tchunks, fchunks = vis.chunks[0], vis.chunks[2]
    nant = ds.sizes[S.ANTENNA]
    if chain:
        gains, _ = chain_jones(ds, chain)
    else:
        gains = da.ones((ds.sizes[S.TIME], nant, ds.sizes[S.FREQUENCY], 2), np.complex128,
                        chunks=(tchunks, -1, fchunks, -1))
    gains = gains.rechunk((tchunks, -1, fchunks, -1))
    chi = dataset_parang(ds, tchunks) if terms.parang else \
        da.zeros((ds.sizes[S.TIME], nant), chunks=(tchunks, -1))
    channels = da.arange(ds.sizes[S.FREQUENCY], chunks=(fchunks,))
    return da.blockwise(
        _inverse_block, "tafij", gains, "tafk", chi, "ta", channels, "f",
        new_axes={"i": 2, "j": 2}, concatenate=False, dtype=np.complex128,
        meta=np.empty((0,) * 5, np.complex128), static=static_terms(ds, terms),
        basis=feed_basis(ds), parang=bool(terms.parang))


def _apply_block(vis, flag, weight, inverse, ant1, ant2, *, corr, calwt):
    vis_out, flag_out, weight_out = PK.apply_full_jones(
        vis, flag, graph.full_weight(weight, vis), graph._only_block(inverse), ant1, ant2, corr,
        calwt)
    return (vis_out, flag_out, weight_out) if calwt else (vis_out, flag_out)


def apply_polarized(datasets, chain, terms: PolTerms, calwt=False) -> list[xr.Dataset]:
    """Calibrate 4-correlation partitions through a diagonal chain and polarisation terms.

    Parameters
    ----------
    datasets : list of xarray.Dataset
    chain : sequence of ApplyTable, or a callable ``ds -> sequence`` (as :func:`jones.apply`)
    terms : PolTerms
    calwt : bool

    Returns
    -------
    list of xarray.Dataset with ``VISIBILITY_CORRECTED``, ``FLAG`` (and ``WEIGHT`` with calwt);
    attribute ``polarization_calibration`` records which terms were applied.
    """
    out = []
    for ds in datasets:
        links = chain(ds) if callable(chain) else chain
        corr = corr_index(ds)
        vis = graph._as_dask(ds[S.VISIBILITY].data)
        if len(vis.chunks[3]) > 1:
            vis = vis.rechunk({3: -1})
        flag = graph._as_dask(ds[S.FLAG].data).rechunk(vis.chunks)
        weight = graph.weights(graph._as_dask(ds[S.WEIGHT].data), vis.chunks,
                               lambda w, c: w.rechunk(c))
        inverse = inverse_jones(ds, links, terms)
        a1 = da.from_array(ds[S.BASELINE_ANTENNA1].values.astype(np.int64),
                           chunks=(vis.chunks[1],))
        a2 = da.from_array(ds[S.BASELINE_ANTENNA2].values.astype(np.int64),
                           chunks=(vis.chunks[1],))
        packed = da.blockwise(
            _apply_block, "tbfp", vis, "tbfp", flag, "tbfp", weight,
            graph.weight_index(weight, vis.shape[2], "f"), inverse, "tafij",
            a1, "b", a2, "b", concatenate=False, dtype=object,
            meta=np.empty((0,) * 4, dtype=object), corr=corr, calwt=bool(calwt))
        results = [packed.map_blocks(graph._pick, which, dtype=dtype,
                                     meta=np.empty((0,) * 4, dtype=dtype))
                   for which, dtype in enumerate((vis.dtype, np.dtype(bool),
                                                  weight.dtype)[:3 if calwt else 2])]
        dims = ds[S.VISIBILITY].dims
        new = {S.VISIBILITY_CORRECTED: (dims, results[0]), S.FLAG: (dims, results[1])}
        if calwt:
            new[S.WEIGHT] = (dims, results[2])
        calibrated = ds.assign(new)
        calibrated.attrs[S.ATTR_POLCAL] = terms.record()
        out.append(calibrated)
    return out

