"""Polarisation solves: cross-hand delay (KCROSS), cross-hand phase (Xf) and leakage (Df).

After the parallel-hand terms (K, B, G: each hand referenced to the reference antenna's) the
cross hands still carry the reference antenna's X-Y (R-L) phase ``xi`` and the antennas'
leakages ``d``; with CASA's order ``K B G D X P`` (:mod:`radiocal.calibration.pol_kernels` has
the equations), the cross hands are linear in ``(xi, d_x, conj(d_y))``. Every chunk of every
calibrator partition is reduced to per-baseline sums of the normal equations, per channel
(:func:`radiocal.calibration.pol_kernels.accumulate_pol_stats`); the sums of all chunks, scans
and calibrators are added by the same tree reduction as the gain solves
(:func:`radiocal.calibration.reduce.cell_sums`), and each channel is solved for one ``xi`` and
every antenna's ``(d_x, d_y)`` at once, so neither term biases the other. Then:

* KCROSS: a delay fitted to ``xi`` across the spw (8x padded FFT, then a weighted slope);
* Xf: ``xi`` without that delay, unit amplitude, per channel (CASA's ``diag(p, 1)``);
* Df: the leakages, in the frame CASA applies them (after KCROSS, before Xf).

``xi`` needs a polarised calibrator with a known model (:mod:`radiocal.calibration.polmodels`).
Leakages of linear feeds are absolute when a polarised calibrator was seen over a range of
parallactic angle (``min_parang_range``): the rotating ``Q`` tells ``d_x`` from ``d_y``.
Otherwise, and always for circular feeds (where only Stokes V would), one complex offset common
to all antennas is undetermined (``d_x + c``, ``d_y - conj(c)``) and is fixed by ``d_x = 0`` on
the reference antenna, as CASA's relative D solution; it leaks V into Q and U only.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import dask
import dask.array as da
from dask.layers import ArraySliceDep
import numpy as np

from radiocal.calibration import graph, reduce
from radiocal.calibration import pol_kernels as PK
from radiocal.calibration.dataset import parse_refant
from radiocal.calibration.jones import chain_jones, data_hands
from radiocal.astro import feed_rotation
from radiocal.calibration.parang import dataset_parang, partition_parang
from radiocal.errors import ConfigError, InputError
from radiocal.store import caltables as C
from radiocal.store import schema as S

MIN_XY_SNR = 5.0     # median per-channel SNR of xi below which the cross-hand phase is unknown


@dataclass(frozen=True)
class PolRequest:
    """Calibrator data for the polarisation solve.

    ``stokes(freqs)`` gives the source's ``(I, Q, U, V)`` in Jy, (frequency, 4); ``prior`` the
    parallel-hand apply chain of these partitions (a list of ApplyTable).
    """

    datasets: tuple
    stokes: object
    prior: tuple = field(default=(), hash=False, compare=False)
    polarised: bool = True


@dataclass
class PolSolution:
    """Tables (``kcross``, ``xf``, ``df``; missing when not determined) and what was decided."""

    tables: dict
    decisions: list
    xy_phase: dict          # spw -> (frequency,) radians of xi (delay included), NaN unsolved
    xy_phase_err: dict      # spw -> (frequency,) radians
    leakage: dict           # spw -> (antenna, frequency, 2) complex d_x, d_y (solve frame)
    leakage_err: dict       # spw -> (antenna, frequency, 2) standard error of each d


def corr_index(ds) -> np.ndarray:
    """(2, 2) polarization index of each hand pair; an InputError without all four."""
    hands, hand1, hand2, _ = data_hands(ds)
    if len(hand1) != 4:
        raise InputError(f"partition {ds.attrs.get(S.ATTR_PARTITION, '?')}: polarisation "
                         f"calibration needs the four correlations (has {len(hand1)})")
    out = np.full((2, 2), -1, dtype=np.int64)
    out[hand1, hand2] = np.arange(4)
    return out


def feed_basis(ds) -> str:
    return S.feed_basis([str(p) for p in ds[S.POLARIZATION].values])


def _rotation_block(chi, *, basis):
    return feed_rotation(chi, basis)


def rotation(ds, time_chunks) -> da.Array:
    """Lazy feed rotation ``P`` (time, antenna, 2, 2) complex128 of a partition."""
    chi = dataset_parang(ds, time_chunks)
    return chi.map_blocks(_rotation_block, basis=feed_basis(ds), new_axis=(2, 3),
                          chunks=chi.chunks + ((2,), (2,)), dtype=np.complex128,
                          meta=np.empty((0,) * 4, np.complex128))


def _accumulate_block(region, vis, weight, flag, gains, rot, stokes, ant1, ant2, *, corr,
                      circular, files=None):
    if files is not None:
        vis, flag, weight = graph._read_stored(region, files, vis, flag, weight)
    vis, flag, gains, rot, stokes = (graph._only_block(b) for b in (vis, flag, gains, rot, stokes))
    weight = graph.full_weight(weight, vis)
    return PK.accumulate_pol_stats(vis, weight, flag, gains, rot, stokes, ant1, ant2, corr,
                                   circular)[None, :, :, None, :]


def accumulate(ds, stokes, prior, bchunks, fchunks) -> da.Array:
    """Per-chunk sums of one partition: (time chunk, frequency, baseline, 1, N_POL_STATS)."""
    stored = tuple(graph._as_dask(ds[v].data) for v in (S.VISIBILITY, S.FLAG, S.WEIGHT))
    vis = stored[0]
    nbl = vis.shape[1]
    tchunks, _, _ = graph.accumulation_chunks(
        (vis.chunks[0], bchunks, fchunks), 4, nbl, True, -(-PK.N_POL_STATS // 5), summed=True)
    chunks = (tchunks, bchunks, fchunks, (vis.shape[3],))
    # what the store holds in these chunks is read inside the task (graph._stored_inputs), the
    # rest rechunked to the blocks
    files = graph._stored_inputs(*stored)
    vis_in, flag_in, weight_in = graph.block_inputs(stored, files, chunks,
                                                    lambda x, c, _: x.rechunk(c), "f")
    inputs = [*vis_in, *weight_in, *flag_in]
    nant = ds.sizes[S.ANTENNA]
    if prior:
        gains, _ = chain_jones(ds, prior)
    else:
        gains = da.ones((ds.sizes[S.TIME], nant, ds.sizes[S.FREQUENCY], 2), dtype=np.complex128,
                        chunks=(tchunks, -1, fchunks, -1))
    gains = gains.rechunk((tchunks, -1, fchunks, -1))
    rot = rotation(ds, tchunks)
    spectrum = da.from_array(np.ascontiguousarray(stokes(ds[S.FREQUENCY].values), np.float64),
                             chunks=(fchunks, -1))
    a1 = graph.per_block(ds[S.BASELINE_ANTENNA1].values.astype(np.int64), bchunks)
    a2 = graph.per_block(ds[S.BASELINE_ANTENNA2].values.astype(np.int64), bchunks)
    stats = da.blockwise(
        _accumulate_block, "tfbhs", ArraySliceDep(chunks[:3]), "tbf", *inputs,
        gains, "tafk", rot, "tajk", spectrum, "fz", a1, "b", a2, "b",
        new_axes={"h": 1, "s": PK.N_POL_STATS}, adjust_chunks={"t": (1,) * len(tchunks)},
        concatenate=False, dtype=np.float64, meta=np.empty((0,) * 5, np.float64),
        corr=corr_index(ds), circular=feed_basis(ds) == "circular",
        files=files if any(read is not None for read in files) else None,
        # every input is in the blocks' chunks already (blockwise dependencies cannot be
        # aligned)
        align_arrays=False)
    # every partition's sums must share the frequency and baseline chunks of the reduction
    return stats.rechunk({1: fchunks, 2: bchunks})


def _sky_matrix(stokes, basis) -> np.ndarray:
    """(frequency, 2, 2) coherency of Stokes ``(I, Q, U, V)`` (frequency, 4) in a feed basis."""
    i, q, u, v = (stokes[:, k] for k in range(4))
    out = np.empty((stokes.shape[0], 2, 2), dtype=np.complex128)
    if basis == "circular":
        out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = i + v, q + 1j * u, q - 1j * u, i - v
    else:
        out[:, 0, 0], out[:, 0, 1], out[:, 1, 0], out[:, 1, 1] = i + q, u + 1j * v, u - 1j * v, i - q
    return out


def _model_block(shape, rot, sky, ant1, ant2, instrument, *, corr):
    return PK.rotated_model(rot, sky, instrument, ant1, ant2, corr)


def _model_task(rot, sky, ant1, ant2, instrument, *, corr):
    rot, sky, instrument = (graph._only_block(b) for b in (rot, sky, instrument))
    return _model_block(None, rot, sky, ant1, ant2, instrument, corr=corr)


def polarized_model(ds, stokes, instrument=None) -> da.Array:
    """Model visibilities of a polarised point calibrator, rotated into each antenna's feed
    frame (CASA's ``parang=True`` model): complex64 like ``VISIBILITY``, lazy.

    A gain solve against it does not absorb the calibrator's ``Q``/``U`` into the
    parallel-hand gains, which linear feeds would otherwise do (``XX = I + Q cos 2chi + ...``).
    ``instrument`` (antenna, frequency, 2, 2), the already solved ``KCROSS D X`` of each
    antenna, corrupts the model too (then the gains need not absorb the leakage of the
    calibrator's polarisation into the parallel hands either).
    """
    vis = graph._as_dask(ds[S.VISIBILITY].data)
    tchunks, bchunks, fchunks = vis.chunks[:3]
    sky = _sky_matrix(np.asarray(stokes(ds[S.FREQUENCY].values), np.float64), feed_basis(ds))
    a1 = da.from_array(ds[S.BASELINE_ANTENNA1].values.astype(np.int64), chunks=(bchunks,))
    a2 = da.from_array(ds[S.BASELINE_ANTENNA2].values.astype(np.int64), chunks=(bchunks,))
    if instrument is None:
        instrument = np.broadcast_to(np.eye(2), (ds.sizes[S.ANTENNA], sky.shape[0], 2, 2))
    # one block per channel chunk, handed over through the graph like the sky
    instrument = da.from_array(np.ascontiguousarray(instrument, np.complex128),
                               chunks=(-1, fchunks, 2, 2))
    inputs = ((rotation(ds, tchunks), "taij"),
              (da.from_array(sky, chunks=(fchunks, 2, 2)), "fij"),
              (a1, "b"), (a2, "b"), (instrument, "afij"))
    model = da.blockwise(
        _model_task, "tbfp", *(x for pair in inputs for x in pair), new_axes={"p": 4},
        concatenate=False, dtype=np.complex64, meta=np.empty((0,) * 4, np.complex64),
        corr=corr_index(ds))
    # a solve makes each block inside its accumulate task (graph.made_in_blocks)
    return graph.made_in_blocks(model, graph.InBlocks(_model_block, inputs,
                                                      {"corr": corr_index(ds)}))


# -- solving one channel ---------------------------------------------------------------------


def _normal_equations(stats, ant1, ant2, nant):
    """Normal matrix (U, U), right-hand side (U,), sum w|obs|^2 and count of one channel.

    ``stats`` (baseline, N_POL_STATS); unknowns ``u = (xi, d_x[0..N), conj(d_y)[0..N))``.
    """
    n_u = 1 + 2 * nant
    a = np.zeros((n_u, n_u), dtype=np.complex128)
    rhs = np.zeros(n_u, dtype=np.complex128)
    e = PK.EQ_STATS
    for eq, cols in ((0, (np.zeros_like(ant1), 1 + ant1, 1 + nant + ant2)),
                     (1, (np.zeros_like(ant1), 1 + nant + ant1, 1 + ant2))):
        s = stats[:, eq * e:(eq + 1) * e]
        for k in range(3):
            np.add.at(a, (cols[k], cols[k]), s[:, k])
            np.add.at(rhs, cols[k], s[:, 9 + 2 * k] + 1j * s[:, 10 + 2 * k])
        for n, (k, m) in enumerate(((0, 1), (0, 2), (1, 2))):
            value = s[:, 3 + 2 * n] + 1j * s[:, 4 + 2 * n]
            np.add.at(a, (cols[k], cols[m]), value)
            np.add.at(a, (cols[m], cols[k]), np.conj(value))
    e0, e1 = stats[:, e - 2].sum() + stats[:, 2 * e - 2].sum(), \
        stats[:, e - 1].sum() + stats[:, 2 * e - 1].sum()
    return a, rhs, e0, e1


def solve_channel(stats, ant1, ant2, nant, refant, solve_xi, relative):
    """Least-squares ``(xi, d_x, conj(d_y))`` of one channel and their standard errors.

    Unknowns without data (no baseline, or no polarised signal for ``xi``) stay NaN. With
    ``relative`` the reference antenna's ``d_x`` is held at 0.

    Returns
    -------
    u : complex (1 + 2 nant,), err : float (1 + 2 nant,) (standard error of the complex value)
    """
    a, rhs, sum_sq, count = _normal_equations(stats, ant1, ant2, nant)
    n_u = a.shape[0]
    diag = a.diagonal().real
    scale = diag.max() if diag.size and diag.max() > 0 else 1.0
    keep = diag > 1e-12 * scale
    keep[0] = keep[0] and solve_xi
    if relative:
        keep[1 + refant] = False
    u = np.full(n_u, np.nan + 0j)
    err = np.full(n_u, np.nan)
    if relative and diag[1 + refant] > 1e-12 * scale:
        u[1 + refant], err[1 + refant] = 0.0, 0.0       # held, not unknown: a valid solution
    idx = np.flatnonzero(keep)
    if idx.size == 0 or count <= idx.size:
        return u, err
    sub = a[np.ix_(idx, idx)]
    try:
        cov = np.linalg.inv(sub)
    except np.linalg.LinAlgError:
        return u, err
    sol = cov @ rhs[idx]
    # the noise from the channel's own residual, chi^2 = |obs|^2 - 2 Re(u^H b) + u^H A u per
    # complex degree of freedom (weights need not be absolute)
    chi2 = sum_sq - 2 * np.real(np.vdot(sol, rhs[idx])) + np.real(np.vdot(sol, sub @ sol))
    sigma2 = max(chi2, 0.0) / max(count - idx.size, 1)
    u[idx] = sol
    err[idx] = np.sqrt(np.maximum(cov.diagonal().real, 0) * sigma2)
    return u, err


def _solve_block(stats, *, ant1, ant2, nant, refant, solve_xi, relative):
    block = graph._only_block(stats)[0, :, :, 0, :]            # (frequency, baseline, stat)
    out = np.empty((block.shape[0], 1 + 2 * nant, 3))
    for f in range(block.shape[0]):
        u, err = solve_channel(block[f], ant1, ant2, nant, refant, solve_xi, relative)
        out[f, :, 0], out[f, :, 1], out[f, :, 2] = u.real, u.imag, err
    return out


# -- cross-hand delay ------------------------------------------------------------------------


def fit_cross_delay(xi, err, freqs, ref_freq) -> float:
    """Delay (s) of the phase of ``xi`` across channels: FFT peak (8x padded), then a weighted
    straight-line fit of the remaining phase (CASA's KCROSS is the FFT peak alone)."""
    ok = np.isfinite(xi) & np.isfinite(err) & (err > 0)
    if ok.sum() < 2:
        return 0.0
    df = np.median(np.diff(freqs)) if freqs.size > 1 else 0.0
    if df == 0:
        return 0.0
    channel = np.rint((freqs - freqs[0]) / df).astype(np.int64)
    n = 8 * (int(channel.max()) + 1)
    grid = np.zeros(n, dtype=np.complex128)
    grid[channel[ok]] = xi[ok] / np.abs(xi[ok]) / err[ok] ** 2
    peak = int(np.argmax(np.abs(np.fft.fft(grid))))
    tau = (peak if peak < n // 2 else peak - n) / (n * df)
    w = 1.0 / err[ok] ** 2
    resid = np.angle(xi[ok] * np.exp(-2j * np.pi * tau * (freqs[ok] - ref_freq)))
    x = freqs[ok] - ref_freq
    xm = np.sum(w * x) / w.sum()
    ym = np.sum(w * resid) / w.sum()
    denom = np.sum(w * (x - xm) ** 2)
    return float(tau + (np.sum(w * (x - xm) * (resid - ym)) / denom / (2 * np.pi)
                        if denom > 0 else 0.0))


# -- the solve -------------------------------------------------------------------------------


def _parang_range(requests, refant) -> float:
    """Range (radians) of parallactic angle at the reference antenna over the polarised
    calibrators' integrations (0 when none rotates)."""
    chis = []
    for req in requests:
        if not req.polarised:
            continue
        for ds in req.datasets:
            chi = partition_parang(ds)
            if chi.size:
                chis.append(chi[:, min(refant, chi.shape[1] - 1)])
    if not chis:
        return 0.0
    chi = np.concatenate(chis)
    # the angle enters as 2 chi: the spread of exp(2i chi) about its mean direction
    centre = np.angle(np.mean(np.exp(2j * chi))) / 2
    spread = np.angle(np.exp(2j * (chi - centre))) / 2
    return float(spread.max() - spread.min())


def solve_polarization(requests, *, refant=None, min_parang_range=math.radians(30.0),
                       solve_leakage=True) -> PolSolution:
    """Solve KCROSS, Xf and Df on calibrators.

    Parameters
    ----------
    requests : sequence of PolRequest
        Every calibrator's partitions (4 correlations), model and parallel-hand chain.
    refant : str or None
        Reference antenna preference (as the gain solves).
    min_parang_range : float
        Radians of parallactic angle the polarised calibrators must span for absolute leakages.
    solve_leakage : bool
        Also solve (and write) Df; without it the leakages are still solved for, so they
        cannot bias ``xi``, but not kept.

    Returns
    -------
    PolSolution
    """
    requests = [r for r in requests if r.datasets]
    if not requests:
        raise InputError("polarisation calibration: no calibrator data")
    first = requests[0].datasets[0]
    basis = feed_basis(first)
    hands = ("X", "Y") if basis == "linear" else ("R", "L")
    nant = first.sizes[S.ANTENNA]
    ref = int(parse_refant(first, refant)[0])
    coverage = _parang_range(requests, ref)
    # circular feeds: V, not Q, separates the hands' leakages (d_R + c, d_L - conj(c) changes
    # the cross hands by -2cV), so only relative leakages exist whatever the coverage
    relative = basis == "circular" or coverage < min_parang_range
    polarised = any(r.polarised for r in requests)
    decisions = [f"polarisation: {basis} feeds; parallactic angle range of the polarised "
                 f"calibrator {math.degrees(coverage):.1f} deg"]
    by_spw: dict = {}
    for req in requests:
        for ds in req.datasets:
            if feed_basis(ds) != basis:
                raise ConfigError("polarisation calibration: calibrators differ in feed basis")
            by_spw.setdefault(int(ds.attrs[S.ATTR_SPW_ID]), []).append((ds, req))
    graphs = {}
    for spw, items in by_spw.items():
        ds0 = items[0][0]
        vis = graph._as_dask(ds0[S.VISIBILITY].data)
        # a block's sums are one piece whatever its integrations: counted per integration,
        # blocks of 2 of 32 channels made 16 tasks per chunk, and 288 rechunks (VLA-like x1)
        _, bchunks, fchunks = graph.accumulation_chunks(
            vis.chunks[:3], 4, vis.shape[1], True, -(-PK.N_POL_STATS // 5), summed=True)
        stats = [accumulate(ds, req.stokes, req.prior, bchunks, fchunks) for ds, req in items]
        cells = [np.zeros(s.shape[0], dtype=np.int64) for s in stats]
        total = reduce.cell_sums(stats, cells, 1, 1).rechunk({2: -1})
        graphs[spw] = da.blockwise(
            _solve_block, "fuk", total, "cfbhs", new_axes={"u": 1 + 2 * nant, "k": 3},
            concatenate=True, dtype=np.float64, meta=np.empty((0, 0, 0)),
            ant1=ds0[S.BASELINE_ANTENNA1].values.astype(np.int64),
            ant2=ds0[S.BASELINE_ANTENNA2].values.astype(np.int64), nant=nant, refant=ref,
            solve_xi=polarised, relative=relative)
    solved = dict(zip(graphs, dask.compute(*graphs.values())))
    result = PolSolution({}, decisions, {}, {}, {}, {})
    tables = {"kcross": [], "xf": [], "df": []}
    for spw, packed in sorted(solved.items()):
        ds0, _ = by_spw[spw][0]
        freqs = ds0[S.FREQUENCY].values.astype(np.float64)
        xi = packed[:, 0, 0] + 1j * packed[:, 0, 1]
        xi_err = packed[:, 0, 2]
        dx = packed[:, 1:1 + nant, 0] + 1j * packed[:, 1:1 + nant, 1]
        dy = np.conj(packed[:, 1 + nant:, 0] + 1j * packed[:, 1 + nant:, 1])
        d_err = np.stack([packed[:, 1:1 + nant, 2], packed[:, 1 + nant:, 2]], axis=-1)
        phase_err = xi_err / np.abs(xi)
        result.xy_phase[spw] = np.angle(xi)
        result.xy_phase_err[spw] = phase_err
        result.leakage[spw] = np.stack([dx.T, dy.T], axis=-1)
        result.leakage_err[spw] = d_err.transpose(1, 0, 2)
        snr = np.abs(xi) / xi_err
        # |xi| is the cross hands' amplitude over the model's: ~1 when the calibrator shows the
        # polarisation its model says, ~0 when its cross hands hold no signal
        amplitude = np.nanmedian(np.abs(xi)) if np.isfinite(xi).any() else 0.0
        detected = (polarised and np.isfinite(snr).any() and np.nanmedian(snr) >= MIN_XY_SNR
                    and 0.5 < amplitude < 2.0)
        items = [ds for ds, _ in by_spw[spw]]
        meta = _table_meta(items, hands, ref, coverage, relative)
        if detected:
            ref_freq = float(ds0.attrs.get(S.ATTR_REF_FREQUENCY, freqs[0]))
            tau = fit_cross_delay(xi, xi_err, freqs, ref_freq)
            k = np.exp(2j * np.pi * tau * (freqs - ref_freq))
            # a channel without cross-hand data has xi = 0: its Xf is NaN, no solution (a
            # flagged one in the table), and nansum below passes it by
            with np.errstate(invalid="ignore", divide="ignore"):
                xf = xi / k / np.abs(xi)
                mean = np.degrees(np.angle(np.nansum(xf / phase_err ** 2)))
            tables["kcross"].append(_kcross_table(meta, tau, ref_freq, nant))
            tables["xf"].append(_xf_table(meta, xf, phase_err, freqs, nant))
            # CASA applies KCROSS before D and Xf after it: D_casa = K^-1 D K
            dx, dy = dx / k[:, None], dy * k[:, None]
            decisions.append(f"polarisation: spw {spw}: cross-hand delay {tau * 1e9:.3f} ns, "
                             f"mean cross-hand phase {mean:.1f} deg (median SNR "
                             f"{np.nanmedian(snr):.0f})")
        else:
            why = ("no polarised calibrator" if not polarised else
                   f"the cross hands do not show the model's polarisation (amplitude "
                   f"{amplitude:.2f} of the model's, median SNR "
                   f"{np.nanmedian(snr) if np.isfinite(snr).any() else 0:.1f})")
            decisions.append(f"polarisation: spw {spw}: cross-hand phase not solved: {why}")
        if solve_leakage:
            tables["df"].append(_df_table(meta, dx.T, dy.T, d_err.transpose(1, 0, 2), freqs))
            why = ("circular feeds" if basis == "circular" else
                   f"parallactic-angle range < {math.degrees(min_parang_range):.0f} deg")
            decisions.append(f"polarisation: spw {spw}: leakages "
                             + (f"relative (reference antenna d = 0: {why})" if relative
                                else "absolute (parallactic-angle coverage)")
                             + f", median |d| {np.nanmedian(np.abs(dx)):.3f}")
    result.tables = {name: table for name, table in tables.items() if table}
    return result


def _table_meta(datasets, hands, ref, coverage, relative):
    times = np.concatenate([ds[S.TIME].values for ds in datasets])
    fields = {}
    for ds in datasets:
        fields[int(ds.attrs[S.ATTR_FIELD_ID])] = (str(ds.attrs.get(S.ATTR_FIELD_NAME, "")),
                                                  list(ds.attrs.get(S.ATTR_PHASE_CENTER,
                                                                    [0.0, 0.0])))
    ids = sorted(fields)
    first = datasets[0]
    attrs = {
        S.ATTR_SPW_ID: int(first.attrs[S.ATTR_SPW_ID]),
        "combined_spws": [int(first.attrs[S.ATTR_SPW_ID])],
        S.ATTR_SPW_NAME: str(first.attrs.get(S.ATTR_SPW_NAME, "")),
        S.ATTR_REF_FREQUENCY: float(first.attrs.get(S.ATTR_REF_FREQUENCY,
                                                    first[S.FREQUENCY].values[0])),
        C.ATTR_REFANT: str(first[S.ANTENNA_NAME].values[ref]),
        C.ATTR_FIELD_IDS: ids, C.ATTR_FIELD_NAMES: [fields[i][0] for i in ids],
        C.ATTR_FIELD_CENTERS: [fields[i][1] for i in ids],
        C.ATTR_COUNTS: {"expected": 1, "attempted": 1, "succeeded": 1},
        C.ATTR_PARAMS: json.dumps({"solint": "inf", "combine": "scan,field",
                                   "parang_range_deg": round(math.degrees(coverage), 2),
                                   "relative_leakage": bool(relative)}),
        S.ATTR_TELESCOPE: str(first.attrs.get(S.ATTR_TELESCOPE, "")),
        S.ATTR_SOURCES: list(first.attrs.get(S.ATTR_SOURCES, [])),
    }
    return dict(time=[float(np.mean([times.min(), times.max()]))],
                interval=[float(times.max() - times.min())], field_id=[ids[0]],
                scan_number=[int(first.attrs.get(S.ATTR_SCAN, 0))], hands=hands,
                antennas=C.antenna_coords(first), attrs=attrs,
                reference_antenna=[ref])


def _make(cal_type, meta, values, flag, snr, err, freqs, widths, hands, extra=None):
    attrs = dict(meta["attrs"])
    attrs.update(extra or {})
    return C.make_table_dataset(
        cal_type, values, flag, snr, err, time=meta["time"], interval=meta["interval"],
        field_id=meta["field_id"], scan_number=meta["scan_number"], frequency=freqs,
        channel_width=widths, hands=hands, antennas=meta["antennas"], attrs=attrs,
        reference_antenna=meta["reference_antenna"])


def _kcross_table(meta, tau, ref_freq, nant):
    values = np.zeros((1, nant, 1, 2))
    values[..., 0] = tau
    zeros = np.zeros(values.shape, np.float32)
    return _make("KCROSS", meta, values, np.zeros(values.shape, bool), zeros, zeros,
                 [ref_freq], [0.0], meta["hands"], {C.ATTR_DELAY_REF: ref_freq})


def _xf_table(meta, xf, err, freqs, nant):
    ok = np.isfinite(xf)
    values = np.broadcast_to(np.where(ok, xf, 1.0)[None, None, :, None], (1, nant, xf.size, 1))
    flag = np.broadcast_to(~ok[None, None, :, None], values.shape)
    err = np.broadcast_to(np.nan_to_num(err)[None, None, :, None], values.shape)
    with np.errstate(divide="ignore"):
        snr = np.where(err > 0, 1.0 / err, 0.0)
    return _make("Xf", meta, values.copy(), flag.copy(), snr, err.copy(), freqs,
                 np.full(freqs.size, np.median(np.diff(freqs)) if freqs.size > 1 else 0.0),
                 meta["hands"][:1])


def _df_table(meta, dx, dy, err, freqs):
    values = np.stack([dx, dy], axis=-1)[None]           # (1, antenna, frequency, 2)
    ok = np.isfinite(values)
    err = np.nan_to_num(err)[None]                      # (1, antenna, frequency, 2)
    with np.errstate(divide="ignore", invalid="ignore"):
        snr = np.where(ok & (err > 0), np.abs(np.nan_to_num(values)) / err, 0.0)
    return _make("Df", meta, np.where(ok, values, 0), ~ok, snr, err, freqs,
                 np.full(freqs.size, np.median(np.diff(freqs)) if freqs.size > 1 else 0.0),
                 meta["hands"])
