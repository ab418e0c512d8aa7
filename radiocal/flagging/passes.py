"""A strategy's flaggers fused into passes over planes: one task per plane between decisions.

Run flagger by flagger (:mod:`radiocal.flagging.dataset`), a strategy was ~180 tasks per
partition (reads, kernels, ORs, reductions, counts of every stage), each ~1 ms of the
distributed scheduler's latency: flagging a VLA-like store at 2 threads had no task running a
third of the time. Here the flaggers between two decisions taken over every plane (antenna
health, array statistics) run in one task per plane, which reads its visibilities, runs them in
turn and keeps what each flagged in a code per sample (:data:`BEFORE` for flags it started
with, then one code per stage); the counts are one histogram of the codes at the end. A
decision is one task over the small per-plane statistics the pass before it left. The flags are
those of the flaggers run one by one: the same kernels on the same planes, in the same order.

Between passes, and after the last, each plane's codes go to the spill directory when one is
set (written by the task that made them, read back by the next), so they are never all held in
memory while a decision waits for its last plane (see :mod:`radiocal.flagging.graph`).
"""

from __future__ import annotations

import dataclasses

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.core import flatten
from dask.highlevelgraph import HighLevelGraph
from dask.utils import apply

from radiocal._numba import record
from radiocal.flagging import basic_kernels as bk
from radiocal.flagging import dataset as fd
from radiocal.flagging import graph
from radiocal.flagging import kernels as k
from radiocal.flagging import spectral as sp
from radiocal.store import rawchunks
from radiocal.store import schema as S
from radiocal.store.zarr_store import channel_free

# Codes of a sample: 0 unflagged, BEFORE flagged when the strategy started, then each stage's.
BEFORE = 1
CLIP_REASONS = ("nonfinite", "zero_weight", "zero")
# Keys of the samples flagged before and after the strategy among the counts
FLAGGED = ("flagged_before", "flagged_after")
# Flaggers that have a per-plane form here (any other in a strategy: flagger by flagger)
FUSED = {"clip", "shadow", "antenna_health", "sumthreshold", "mad", "spectral", "array",
         "dilate"}


def fusable(flaggers) -> bool:
    """Whether every flagger of ``flaggers`` (``(name, params)``) runs in fused passes."""
    return all(name in FUSED for name, _ in flaggers)


# -- per-plane steps (run inside the pass's task) ----------------------------------------------

@dataclasses.dataclass(frozen=True)
class _Step:
    """One flagger's work on a plane: ``kind`` names the function of :func:`_apply`, ``code``
    the first of the codes it gives, ``args`` its parameters."""

    kind: str
    code: int
    args: tuple = ()


def _apply(step: _Step, flag, data, loc, decision, shadow):
    """``step`` on one plane: the new flags (bool), or codes (uint8, 0 where unchanged)."""
    kind, args = step.kind, step.args
    vis = data.get("vis")
    if kind == "clip":
        weight = graph.channels(data["weight"], vis)
        return _clip_codes(vis, weight, flag, step.code, *args)
    if kind == "shadow":
        mask = shadow[args[0]][:, loc[0]:loc[1]]
        return flag | mask[:, :, None, None]
    if kind == "antennas":
        return flag | args[0][loc[0]:loc[1]][None, :, None, None]
    if kind == "bad":
        return flag | decision[loc[0]:loc[1]][None, :, None, None]
    if kind == "common":
        return flag | decision[:, None, :, :]
    if kind == "sumthreshold":
        return k.sumthreshold_block(*graph.canonical(vis, flag, *args))
    if kind == "mad":
        return k.mad_block(*graph.canonical(vis, flag, *args))
    if kind == "sumthreshold_mad":
        code = k.sumthreshold_mad_block(*graph.canonical(vis, flag, *args))
        # kernel codes 1, 2 are this step's first and second
        return np.where(code > 0, code + np.uint8(step.code - 1), np.uint8(0))
    if kind == "spectral":
        params, width, edges = args
        if width is not None:
            vis = sp.model_residual_block(vis, data["model"], flag, width, edges)
        return sp.spectral_block(*graph.canonical(vis, flag, params, edges))
    if kind == "dilate":
        return k.dilate_block(flag, *args)
    if kind == "propagate":
        return np.ascontiguousarray(np.broadcast_to(flag.any(axis=3, keepdims=True), flag.shape))
    raise ValueError(f"unknown fused step {kind!r}")


def _clip_codes(vis, weight, flag, first, params):
    """Clip's codes: ``first`` + the reason (``basic_kernels.CLIP_*``) of each new sample, the
    first that applies, as the kernel counts them."""
    new = bk.clip_block(vis, weight, flag, params)[0] & ~flag
    codes = np.zeros(flag.shape, np.uint8)
    at = np.flatnonzero(new)
    if at.size:
        v, w = vis.ravel()[at], weight.ravel()[at]
        reason = np.full(at.size, bk.CLIP_RANGE)
        if params.zeros:
            reason[(v.real == 0) & (v.imag == 0)] = bk.CLIP_ZERO
        reason[~(np.isfinite(w) & (w > 0))] = bk.CLIP_ZERO_WEIGHT
        reason[~(np.isfinite(v.real) & np.isfinite(v.imag))] = bk.CLIP_NONFINITE
        codes.ravel()[at] = first + reason
    return codes


def _tail(kind, args, flag, data, loc):
    """What a decision after the pass needs of this plane."""
    if kind == "health":
        hands, params = args
        return bk.baseline_stats(data["vis"][..., hands], flag[..., hands], params)
    if kind == "array":
        live = ~flag.all(axis=(0, 2, 3)) & args[0][loc[0]:loc[1]]
        return int(live.sum()), (flag & live[None, :, None, None]).sum(axis=1)
    return None


class _Pass:
    """The task of a pass on one plane: ``(codes or None, tail)`` (see the module docstring).

    Arguments: the regions read (``names``), then the previous pass's block (its tuple) or the
    plane's flags (the first pass), the non-raw reads' blocks, the decision and the shadow
    masks (all planes)."""

    def __init__(self, steps, names, files, tail, spill_in, spill_out, n_codes):
        self.steps, self.names, self.files, self.tail = steps, names, files, tail
        self.spill_in, self.spill_out, self.n_codes = spill_in, spill_out, n_codes

    def __dask_tokenize__(self):
        return (type(self).__name__, self.steps, self.names, self.files, self.tail,
                self.spill_in, self.spill_out, self.n_codes)

    def __call__(self, state, *args, block_info=None):
        location = block_info[0]["array-location"]
        slices = tuple(slice(a, b) for a, b in location)
        loc = location[1]
        n_read = len(self.names) - len(self.files)
        data = dict(zip(self.names, [_region(f, slices) for f in self.files] + list(args[:n_read])))
        decision, shadow = args[n_read:]
        if isinstance(state, _FlagFiles):
            state = state.files[slices]
        if isinstance(state, tuple):    # the previous pass's
            codes = self.spill_in[slices] if self.spill_in is not None else state[0]
            codes = np.array(codes, np.uint8)
        else:
            codes = np.where(state, np.uint8(BEFORE), np.uint8(0))
        flag = codes > 0
        for step in self.steps:
            new = _apply(step, flag, data, loc, decision, shadow)
            if new.dtype == np.uint8:
                fresh = new > 0
                codes[fresh] = new[fresh]
                flag = flag | fresh
            else:
                codes[new & ~flag] = step.code
                flag = new
        if self.tail == "counts":
            out = np.bincount(codes.ravel(), minlength=self.n_codes)
            if self.spill_out is not None:
                rawchunks.write_spill(self.spill_out, flag, slices)
                return None, out
            return flag, out
        tail = _tail(self.tail[0], self.tail[1], flag, data, loc) if self.tail else None
        if self.spill_out is not None:
            rawchunks.write_spill(self.spill_out, codes, slices)
            return None, tail
        return codes, tail


def _health_decision(tails, antenna1, antenna2, n_antenna, params):
    stats = np.concatenate([t[1] for t in tails], axis=0)
    return bk.health_decision(stats, antenna1, antenna2, n_antenna, params)[0]


def _array_decision(tails, fraction):
    n_live = sum(t[1][0] for t in tails)
    hits = sum(t[1][1] for t in tails)
    return (hits > fraction * n_live) & (n_live > 0)


def _counts(tails, keys):
    total = np.sum([t[1] for t in tails], axis=0)
    out = {}
    for key, codes in keys:
        out[key] = out.get(key, 0) + int(total[codes].sum())
    out[FLAGGED[0]], out[FLAGGED[1]] = int(total[BEFORE]), int(total[BEFORE:].sum())
    return out


# -- building the passes ----------------------------------------------------------------------

class _Builder:
    """The passes of one partition, built flagger by flagger."""

    def __init__(self, ds, column):
        self.ds, self.column = ds, column
        flag = fd._flag(ds)
        # what the next pass starts from
        self.state, chunks = first_state(flag)
        # the flags' shape, dtype and planes (never computed)
        self.flag = flag.rechunk(chunks)
        self.steps, self.reads = [], {}
        self.decision, self.shadow = None, None
        self.keys = []                                # (count key, its codes), in order
        self.next_code = BEFORE + 1

    def code(self, key, n=1):
        codes = list(range(self.next_code, self.next_code + n))
        self.next_code += n
        self.keys.append((key, codes))
        return codes[0]

    def read(self, name, column):
        if name not in self.reads:
            self.reads[name] = fd._column(self.ds, column, self.flag)

    def close(self, tail, final=False):
        """The pending steps as one pass; returns its blocks' array."""
        files = {n: _files(self.reads[n]) for n in self.reads}
        raw = [n for n in self.reads if files[n] is not None]
        other = [n for n in self.reads if n not in raw]
        token = tokenize(self.state, self.steps, tail, self.decision, self.shadow)
        directory = rawchunks.spill_dir()
        spill_out = None
        if directory is not None:
            spill_out = rawchunks.spill_files(directory, f"pass-{token}", self.flag.shape,
                                              self.flag.chunks, bool if final else np.uint8)
        spill_in = getattr(self, "spill_in", None)
        func = _Pass(tuple(self.steps), tuple(raw + other), tuple(files[n] for n in raw),
                     "counts" if final else tail, spill_in, spill_out, self.next_code)
        after = self.state if isinstance(self.state, da.Array) else self.state.after
        blocks = [graph.in_chunks(self.reads[n], self.flag.chunks, "pass", after=after)
                  for n in other]
        out = _per_plane(func, f"flag-pass-{token}", self.flag.chunks, self.state, blocks,
                         [d for d in (self.decision, *(self.shadow or ())) if d is not None],
                         self.decision, self.shadow)
        self.state, self.spill_in = out, spill_out
        self.steps, self.reads, self.decision, self.shadow = [], {}, None, None
        return out

    def decide(self, func, *args):
        self.decision = _gather(func, self.state, *args)

    def finish(self):
        """The partition's flags (planes) and its lazy counts ``{key: int}``."""
        out = self.close(None, final=True)
        counts = _gather(_counts, out, self.keys)
        if self.spill_in is not None:
            done = _gather(_written, out)
            flag = rawchunks.spilled(self.spill_in, self.flag.chunks, (done.name,), done)
        else:
            flag = da.map_blocks(_first, out, dtype=bool, meta=np.empty((0,) * 4, bool),
                                 name=f"flag-pass-flags-{out.name}")
        return flag, counts


def _per_plane(func, name, chunks, state, blocks, delayed, decision, shadow) -> da.Array:
    """``func(state block, *blocks, decision, shadow, block_info=...)`` per plane, as an array
    of the blocks' results (``state`` an array in ``chunks``, or a value given to every task).
    A layer of its own: passed to ``map_blocks``, delayed arguments were lost when dask fused
    the pass with the layer of its input."""
    layer = {}
    arrays = ([state] if isinstance(state, da.Array) else []) + list(blocks)
    keys = [list(flatten(a.__dask_keys__())) for a in arrays]
    if not isinstance(state, da.Array):
        value = state
        if isinstance(state, _FlagFiles) and state.after is not None:
            # a spill's files: every task waits for the spill, as its read of the plane did
            value = (_ready, _FlagFiles(state.files), state.done)
            delayed = delayed + [state.after]
        keys.insert(0, [value] * int(np.prod([len(c) for c in chunks])))
    for j, index in enumerate(np.ndindex(*(len(c) for c in chunks))):
        location = [(sum(c[:i]), sum(c[:i + 1])) for c, i in zip(chunks, index)]
        info = {0: {"array-location": location}}
        args = [k[j] for k in keys] + [
            None if decision is None else (decision.name,),
            None if shadow is None else [(d.name,) for d in shadow]]
        layer[(name,) + index] = (apply, func, args, {"block_info": info})
    graph = HighLevelGraph.from_collections(name, layer, dependencies=arrays + delayed)
    return da.Array(graph, name, chunks, meta=np.empty((0,) * len(chunks), object))


@dataclasses.dataclass(frozen=True)
class _Files:
    """Where a pass reads an array inside its task: ``files`` (``rawchunks.chunk_files``), of
    the full (time, baseline, frequency, polarization) array or, ``compact``, of a channel-free
    (time, baseline, polarization) one."""

    files: object
    compact: bool = False


@dataclasses.dataclass(frozen=True)
class _FlagFiles:
    """The first pass's flags, read inside its task from chunk files: the store's, or those of
    a spill of them into planes (``after``: the spill read back, whose task ``done`` completes
    once every chunk is written)."""

    files: object
    after: object = None
    done: object = None


def _ready(files: _FlagFiles, _done) -> _FlagFiles:
    return files


# A pass reads the store's (compressed) flags of its plane inside its task when no stored chunk
# is decoded more than this many times (once per plane it overlaps; flags are 1/8 of their
# visibilities' bytes), instead of a spill of the partition's flags into planes first (a
# write per stored chunk, a barrier and a read per plane: 8 tasks of the 80 a VLA-like scan had).
MAX_DECODES = 4


def _files(array):
    """How a pass reads ``array`` inside its task (:class:`_Files`), or None (as blocks of
    its own, :func:`radiocal.flagging.graph.in_chunks`)."""
    compact = channel_free(array)
    if compact is not None:
        files = rawchunks.chunk_files(compact)
        return None if files is None else _Files(files, True)
    files = rawchunks.chunk_files(array)
    # a compressed array would be decoded whole for every plane that reads a part of a chunk
    return _Files(files) if files is not None and files.compressor is None else None


def _region(read: _Files, slices):
    if read.compact:
        return read.files[(slices[0], slices[1], slices[3])][:, :, None, :]
    return read.files[slices]


def first_state(flag: da.Array):
    """What the first pass starts from: the flags' chunk files (read inside its tasks) when
    that decodes no stored chunk more than :data:`MAX_DECODES` times, else the flags in planes
    (:func:`radiocal.flagging.graph.to_planes`): their spill's files when they are spilled."""
    chunks = da.core.normalize_chunks(graph.plane_chunks(flag.shape), flag.shape)
    files = rawchunks.chunk_files(flag)
    if files is not None and chunks != flag.chunks:
        ends = np.cumsum(chunks[1])
        stored = files.chunk_shape[1]
        decodes = max(np.searchsorted(ends, min(start + stored, ends[-1]) - 1, side="right")
                      - np.searchsorted(ends, start, side="right") + 1
                      for start in range(0, int(ends[-1]), stored))
        if decodes <= MAX_DECODES:
            return _FlagFiles(files), chunks
    planes = graph.to_planes(flag)
    spilled = rawchunks.spilled_files(planes)
    if spilled is not None:
        # the spill's files are raw: a plane's region is read inside the pass's task (a task of
        # ~2 ms of the scheduler's bookkeeping less per plane; 262 of the VLA-like x4 store's)
        return _FlagFiles(spilled[0], planes, spilled[1]), chunks
    return planes, chunks


def _gather(func, array, *args) -> da.Array:
    """``func([every block of array], *args)`` as one task: a 0-d array whose one block is the
    result (an array, not a delayed value: computed together with arrays of the same graph,
    delayed values came back in each other's places)."""
    name = f"{func.__name__.strip('_')}-{tokenize(func, array, args)}"
    layer = {(name,): (func, list(flatten(array.__dask_keys__())), *args)}
    return da.Array(HighLevelGraph.from_collections(name, layer, dependencies=[array]), name,
                    (), meta=np.empty((), object))


def _written(blocks) -> None:
    return None


def _first(block):
    return block[0]


def fused_strategy(ds, flaggers, column, propagate):
    """Run ``flaggers`` (all :func:`fusable`) on a partition, then propagate across
    correlations if asked.

    Returns
    -------
    flag : dask.array, bool, the partition's new flags in planes
    counts : dask.array, 0-d, whose one block is a dict
        The counts of :func:`radiocal.flagging.strategy.apply_strategy`, in its order.
    """
    b = _Builder(ds, column)
    i = 0
    while i < len(flaggers):
        name, p = flaggers[i]
        if name == "sumthreshold" and i + 1 < len(flaggers) and flaggers[i + 1][0] == "mad":
            mad = flaggers[i + 1][1]
            b.read("vis", column)
            graph.compile_ahead(k.codes_kernel(p, mad), b.reads["vis"], b.flag,
                                *k.sumthreshold_args(p, mad))
            first = b.code(f"{i}:sumthreshold")
            b.code(f"{i + 1}:mad")
            b.steps.append(_Step("sumthreshold_mad", first, (p, mad)))
            i += 2
            continue
        if name in ("sumthreshold", "mad"):
            _add_detector(b, name, p, i, column)
        elif name == "spectral":
            _add_spectral(b, p, i, column)
        else:
            _add(b, name, p, i, column)
        i += 1
    if propagate:
        b.steps.append(_Step("propagate", b.code("propagate_correlations")))
    return b.finish()


def _add(b: _Builder, name, params, i, column):
    """Any other flagger, ``params`` (its dataclass) handed on whole."""
    ds = b.ds
    if name == "clip":
        b.read("vis", column)
        b.reads["weight"] = graph.as_dask(ds[S.WEIGHT].data, b.flag.chunks)
        first = b.next_code
        b.next_code += 4
        for reason, key in enumerate(CLIP_REASONS):
            b.keys.append((key, [first + reason]))
        b.keys.append((f"{i}:clip", list(range(first, first + 4))))
        b.steps.append(_Step("clip", first, (params,)))
    elif name == "shadow":
        code = b.code(f"{i}:shadow")
        mask = fd.shadow_mask(ds, params, b.flag.chunks)
        if mask is not None:
            b.shadow = (b.shadow or []) + [_gather(np.concatenate, mask)]
            b.steps.append(_Step("shadow", code, (len(b.shadow) - 1,)))
    elif name == "antenna_health":
        code = b.code(f"{i}:antenna_health")
        a1, a2 = fd.small(ds, S.BASELINE_ANTENNA1), fd.small(ds, S.BASELINE_ANTENNA2)
        if params.antennas:
            bad = fd.antenna_mask(ds, params.antennas)
            b.steps.append(_Step("antennas", code, (bad[a1] | bad[a2],)))
        hands = fd.parallel_hands([str(p) for p in fd.small(ds, S.POLARIZATION)])
        if not hands.any():
            return
        b.read("vis", column)
        b.close(("health", (np.flatnonzero(hands), params)))
        b.decide(_health_decision, np.asarray(a1, np.int64), np.asarray(a2, np.int64),
                 int(ds.sizes[S.ANTENNA]), params)
        b.steps.append(_Step("bad", code))
    elif name == "array":
        if params.fraction >= 1.0:
            b.code(f"{i}:array")
            return
        cross = fd.small(ds, S.BASELINE_ANTENNA1) != fd.small(ds, S.BASELINE_ANTENNA2)
        b.close(("array", (cross,)))
        b.decide(_array_decision, params.fraction)
        b.steps.append(_Step("common", b.code(f"{i}:array")))
    elif name == "dilate":
        b.steps.append(_Step("dilate", b.code(f"{i}:dilate"), (params,)))
    else:
        raise ValueError(f"flagger {name!r} has no fused form")


def _add_detector(b: _Builder, name, params, i, column):
    """SumThreshold or MAD alone, ``params`` (their dataclass) handed to the kernel whole."""
    b.read("vis", column)
    if name == "sumthreshold":
        graph.compile_ahead(k.codes_kernel(params), b.reads["vis"], b.flag,
                            *k.sumthreshold_args(params))
    else:
        graph.compile_ahead(k._mad_flags, b.reads["vis"], b.flag, record(params))
    b.steps.append(_Step(name, b.code(f"{i}:{name}"), (params,)))


def _add_spectral(b: _Builder, params, i, column):
    """The spectral flagger, ``params`` (its dataclass) handed to the kernel whole."""
    ds = b.ds
    edges = np.asarray(fd.spectral_edges(ds, params.widths, params.coarse_channel), np.int64)
    b.read("vis", column)
    width = None
    if fd.subtracts_model(ds, params.subtract_model, column):
        b.read("model", S.VISIBILITY_MODEL)
        width = float(params.model_gain_width)
    graph.compile_ahead(sp._spectral_flags, b.reads["vis"], b.flag,
                        *sp.spectral_args(params, edges))
    b.steps.append(_Step("spectral", b.code(f"{i}:spectral"), (params, width, edges)))
