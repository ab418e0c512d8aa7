"""The delay (K) solve as a graph over blocks of per-cell statistics (graph only).

A delay fits all channels of a cell at once, and for a large array the statistics of every
channel and baseline of one cell are far bigger than a chunk (352 antennas, 768 channels: 3.8 GB).
So the fit runs block by block (:mod:`radiocal.calibration.delay`): each (channel, baseline) block
of the summed statistics is solved per channel and reduced to what the phase fit needs, which is
spilled to a file; the first guess comes from the per-channel gains; each Gauss-Newton step then
reads the blocks back one at a time and sums their shares. Memory is a few blocks per thread; the
spill lives in dask's ``temporary-directory`` (which every worker must see) and is removed by
the last task of its cell group.
"""

from __future__ import annotations

import operator
import os
import tempfile

import dask
import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.highlevelgraph import HighLevelGraph

from radiocal.calibration import delay as D
from radiocal.calibration import kernels as K

N_ITER = 6
SPLIT_EVERY = 8


def _spill(stats, path, dnu):
    yw, const = D.phase_data(stats, dnu)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    # float64 values after their shape, rather than np.save: np.load parses its header with
    # ast.literal_eval, which CPython 3.11.7 can fail in two threads at once ("AST constructor
    # recursion depth mismatch", seen on a 352-antenna delay solve)
    with open(path, "wb") as f:
        np.array([yw.ndim, *yw.shape], np.int64).tofile(f)
        np.ascontiguousarray(yw, np.float64).tofile(f)
    return const


def _load(path) -> np.ndarray:
    with open(path, "rb") as f:
        ndim = int(np.fromfile(f, np.int64, 1)[0])
        shape = tuple(int(n) for n in np.fromfile(f, np.int64, ndim))
        return np.fromfile(f, np.float64).reshape(shape)


def _channels(blocks, paths, dnu, ant1, ant2, nant, refants, limits):
    """One channel chunk: its per-channel gains, its blocks spilled, their constant terms.

    Both uses of a chunk's statistics are in one task so that each chunk's statistics are
    released as soon as they are summed: were the spills tasks of their own, dask could hold
    every chunk's statistics (a whole cell's) until it got round to them.
    """
    const = np.concatenate([_spill(block, path, dnu) for block, path in zip(blocks, paths)],
                           axis=1)
    stats = np.concatenate(blocks, axis=2)
    gains, _, _, flag, used_ref = K.solve_cells(stats, ant1, ant2, nant, refants, K.MODE_AP,
                                                limits)
    return (gains, flag, used_ref), const


def _sum(parts):
    total = np.array(parts[0], dtype=np.float64)
    for part in parts[1:]:
        total += part
    return total


def _first_guess(channels, consts, freqs, ref_freq, ant1, ant2, nant, minblperant):
    gains = np.concatenate([c[0] for c in channels], axis=1)     # (cell, frequency, ant, hand)
    flag = np.concatenate([c[1] for c in channels], axis=1)
    used_ref = np.concatenate([c[2] for c in channels], axis=1)  # (cell, frequency, hand)
    const = np.concatenate(consts, axis=1)                        # (cell, baseline, hand, C)
    ncell, _, _, nh = gains.shape
    state = dict(active=np.zeros((ncell, nh, nant), bool),
                 use_bl=np.zeros((ncell, nh, len(ant1)), bool), ref=np.full((ncell, nh), -1),
                 phi=np.zeros((ncell, nh, nant)), tau=np.zeros((ncell, nh, nant)),
                 normal=np.zeros((ncell, nh, 2 * nant, 2 * nant)), nobs=np.zeros((ncell, nh)),
                 red=np.ones((ncell, nh)))
    for c in range(ncell):
        for h in range(nh):
            active, use_bl, ref, phi, tau = D.first_guess(
                gains[c, :, :, h], flag[c, :, :, h], used_ref[c, :, h], const[c, :, h, 4],
                freqs, ref_freq, ant1, ant2, nant, minblperant)
            state["active"][c, h], state["use_bl"][c, h], state["ref"][c, h] = active, use_bl, ref
            state["phi"][c, h], state["tau"][c, h] = phi, tau
            if ref >= 0:
                state["normal"][c, h], state["nobs"][c, h] = D.normal_equations(
                    const[c, :, h], ant1, ant2, nant, active, use_bl, ref)
    return state


def _phase_sums(path, dnu, baselines, bl_slice, state, nant):
    ant1, ant2 = baselines
    yw = _load(path)
    return D.phase_sums(yw, dnu, ant1, ant2, state["use_bl"][:, :, bl_slice], state["phi"],
                        state["tau"], nant)


def _step(state, sums, nant):
    state = dict(state, phi=state["phi"].copy(), tau=state["tau"].copy(),
                 red=state["red"].copy())
    for c, h in zip(*np.nonzero(state["ref"] >= 0)):
        state["phi"][c, h], state["tau"][c, h], state["red"][c, h] = D.gauss_newton_step(
            state["normal"][c, h], state["nobs"][c, h], sums[c, h], state["active"][c, h],
            state["ref"][c, h], state["phi"][c, h], state["tau"][c, h], nant)
    return state


def _finish(state, paths, nant):
    for path in paths:
        if os.path.exists(path):
            os.remove(path)
    if paths:
        try:
            os.rmdir(os.path.dirname(paths[0]))
        except OSError:
            pass        # other cell groups' files are still there
    ncell, nh = state["ref"].shape
    packed = np.zeros((ncell, 1, nant, nh, K.N_PACKED))
    for c in range(ncell):
        for h in range(nh):
            ref = state["ref"][c, h]
            cov = np.linalg.inv(state["normal"][c, h]) if ref >= 0 else None
            delay, snr, err, flag = D.delay_solutions(state["active"][c, h], ref,
                                                      state["tau"][c, h], cov,
                                                      state["red"][c, h], nant)
            packed[c, 0, :, h] = np.stack([delay, np.zeros(nant), snr, err, flag,
                                           np.full(nant, ref)], axis=-1)
    return packed


def _tree(dsk, name, keys, func):
    """Sum ``keys`` by a tree of ``func`` tasks; the key of the total."""
    level, depth = list(keys), 0
    while len(level) > 1:
        depth += 1
        nxt = []
        for k in range(0, len(level), SPLIT_EVERY):
            key = (name, depth, k // SPLIT_EVERY)
            dsk[key] = (func, level[k:k + SPLIT_EVERY])
            nxt.append(key)
        level = nxt
    return level[0]


def solve(stats, freqs, ref_freq, ant1, ant2, nant, refants, limits: K.SolveLimits,
          n_iter=N_ITER):
    """Delays of every cell from summed per-channel statistics.

    Parameters
    ----------
    stats : dask array float64 (cell, frequency, baseline, hand, 5)
        One chunk per cell group along cells; any chunks along frequency and baselines.
    freqs : float64 (frequency,)
    ref_freq : float

    Returns
    -------
    packed : dask array float64 (cell, 1, antenna, hand, 5)
        Delay (s), 0, SNR, error (s), flag, reference antenna, as
        :func:`radiocal.calibration.graph.reduce_and_solve`.
    """
    ant1 = np.asarray(ant1, np.int64)
    ant2 = np.asarray(ant2, np.int64)
    refants = np.asarray(refants, np.int64)
    dnu = np.asarray(freqs, np.float64) - float(ref_freq)
    kchunks, fchunks, bchunks = stats.chunks[:3]
    fstart = np.cumsum((0,) + fchunks)
    bstart = np.cumsum((0,) + bchunks)
    token = tokenize(stats, freqs, ref_freq, ant1, ant2, nant, refants, limits, n_iter)
    name = "calib-delay-" + token
    spill_dir = os.path.join(dask.config.get("temporary-directory", None)
                             or tempfile.gettempdir(), "radiocal-delay-" + token)
    dsk = {(name + "-baselines", bi): (tuple, [ant1[bstart[bi]:bstart[bi + 1]],
                                               ant2[bstart[bi]:bstart[bi + 1]]])
           for bi in range(len(bchunks))}
    for g in range(len(kchunks)):
        paths, consts, channels = [], [], []
        for fi in range(len(fchunks)):
            row = [os.path.join(spill_dir, f"{g}_{fi}_{bi}.f64") for bi in range(len(bchunks))]
            paths.extend((fi, bi, path) for bi, path in enumerate(row))
            key = (name + "-channels", g, fi)
            dsk[key] = (_channels, [(stats.name, g, fi, bi, 0, 0) for bi in range(len(bchunks))],
                        row, dnu[fstart[fi]:fstart[fi + 1]], ant1, ant2, nant, refants,
                        limits)
            for part, keys in ((0, channels), (1, consts)):
                dsk[(name + "-part", g, fi, part)] = (operator.getitem, key, part)
                keys.append((name + "-part", g, fi, part))
        const = _tree(dsk, (name + "-const", g), consts, _sum)
        state = (name + "-state", g, 0)
        dsk[state] = (_first_guess, channels, [const], np.asarray(freqs, np.float64),
                      float(ref_freq), ant1, ant2, nant, limits.minblperant)
        for it in range(1, n_iter + 1):
            shares = []
            for fi, bi, path in paths:
                key = (name + "-sums", g, it, fi, bi)
                bsl = slice(bstart[bi], bstart[bi + 1])
                # the antennas of a baseline chunk by key: embedded in each of the iterations x
                # chunks tasks they made a 352-antenna graph ~370 MiB
                dsk[key] = (_phase_sums, path, dnu[fstart[fi]:fstart[fi + 1]],
                            (name + "-baselines", bi), bsl, state, nant)
                shares.append(key)
            total = _tree(dsk, (name + "-total", g, it), shares, _sum)
            dsk[(name + "-state", g, it)] = (_step, state, total, nant)
            state = (name + "-state", g, it)
        dsk[(name, g, 0, 0, 0, 0)] = (_finish, state, [p for _, _, p in paths], nant)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[stats])
    nh = stats.shape[3]
    return da.Array(graph, name, (kchunks, (1,), (nant,), (nh,), (K.N_PACKED,)),
                    dtype=np.float64,
                    meta=np.empty((0,) * 5, dtype=np.float64))
