"""One task per chunk of a partition's writes, where dask's graph has a dozen.

Writing a partition chunk by chunk takes, per chunk, the tasks of every variable: a read of the
MS rows (or of the stored chunk), a pick of each column, a scatter onto the grid, a write of each
variable. Run on the embedded distributed cluster each task costs ~1 ms of bookkeeping in its
event loop, more than most of these tasks compute: converting a 0.6 GB, 28-partition MS was
1394 tasks, 2.5-6 s of wall time more than the same graph on dask's threaded scheduler. Here the
tasks that serve one chunk of the data alone become one task; a task several chunks need (a
solve, a plane of flags across times) stays a task of its own that the chunk tasks depend on, so
nothing is computed twice and a chunk task holds one chunk's data, as its tasks did before.
"""

from __future__ import annotations

from collections import Counter, defaultdict

import dask.array as da
from dask._task_spec import Alias, DataNode, Task, TaskRef, convert_legacy_graph
from dask.array.optimization import optimize
from dask.base import is_dask_collection, tokenize, unpack_collections
from dask.core import flatten
from dask.delayed import Delayed
from dask.highlevelgraph import HighLevelGraph
from dask.utils import ensure_dict

from radiocal.store import schema as S

# A chunk is its position along these dims; a variable without one of them (UVW, compact
# weights) goes with the first chunk along it.
CHUNK_DIMS = (S.TIME, S.BASELINE, S.FREQUENCY)
_SHARED = "shared"


def per_chunk(writes, extra=None, alongside=()) -> Delayed:
    """The writes of one partition as one task per chunk; computes to ``extra``'s value.

    Parameters
    ----------
    writes : list of (dask.array.Array, tuple of str)
        Each variable's write (:func:`radiocal.store.rawchunks.store` or ``da.store(...,
        compute=False)``: one block per chunk written)
        and the variable's dims.
    extra : object, optional
        Collections (or structures of them) computed in the same pass; their tasks, and every
        task they share with the writes, stay tasks of their own.
    alongside : object, optional
        Collections computed in the same pass too, their values dropped (other writes).
    """
    # The extra's collections join the writes' graph as they are, optimised together: wrapped
    # in dask.delayed each was optimised alone, and a one-chunk partition's chain (a flagging
    # pass, its counts) fused under new names that the writes no longer shared, so it ran twice.
    collections, repack = unpack_collections((alongside, extra))
    outputs = {}
    for array, dims in writes:
        for key in flatten(array.__dask_keys__()):
            index = dict(zip(dims, key[1:]))
            outputs[key] = tuple(index.get(dim, 0) for dim in CHUNK_DIMS)
    kept = [list(flatten(c.__dask_keys__())) for c in collections]
    pinned = {key for keys in kept for key in keys}
    graph = HighLevelGraph.merge(*(array.__dask_graph__() for array, _ in writes),
                                 *(c.__dask_graph__() for c in collections))
    fused, members, owner = _by_owner(graph, outputs, pinned)
    token = tokenize(*outputs, *pinned)
    done = []
    for chunk, nodes in members.items():
        leaf = (f"write-chunk-{token}",) + chunk
        written = Task(leaf, _nothing, *(TaskRef(k) for k, c in outputs.items()
                                         if c == chunk and owner[k] == chunk))
        fused[leaf] = Task.fuse(*nodes, written, key=leaf)
        done.append(leaf)
    done += [key for key in outputs if owner[key] == _SHARED]
    final = f"writes-{token}"
    finish = _Finish(repack, _Values([(c.__dask_postcompute__(), c.__dask_keys__())
                                      for c in collections]), len(done))
    fused[final] = Task(final, finish, *(TaskRef(k) for k in done),
                        *(TaskRef(k) for keys in kept for k in keys))
    return Delayed(final, fused)


def per_group(groups: list[list], finish=None) -> list[Delayed]:
    """Each group of collections as one task that computes their values (a list, in order),
    with every task that group alone needs fused into it; tasks several groups need stay tasks
    of their own. With ``finish`` (one callable per group), a group's task returns
    ``finish[i](values)`` instead: work on the values done where they are computed.

    Export computes a block's five arrays (reads of stored chunks, a slice of each, perhaps a
    calibration applied) ~15 tasks a block; on the embedded distributed cluster each costs ~1 ms
    of bookkeeping, which for a scan-rich MS's one-block partitions cost more than the values.
    """
    # values already in memory (a dataset loaded, a numpy coordinate) go through as they are
    lazy = [[c for c in group if is_dask_collection(c)] for group in groups]
    outputs: dict = {}
    for index, group in enumerate(lazy):
        for collection in group:
            for key in flatten(collection.__dask_keys__()):
                outputs[key] = index if outputs.get(key, index) == index else _SHARED
    graph = HighLevelGraph.merge(*(c.__dask_graph__() for group in lazy for c in group))
    fused, members, _ = _by_owner(graph, outputs)
    _copy_held(fused, members)
    token = tokenize(*outputs)
    for index, group in enumerate(groups):
        leaf = (f"group-{token}", index)
        values = _Values([(c.__dask_postcompute__(), c.__dask_keys__())
                          if is_dask_collection(c) else ((None, c), None) for c in group],
                         None if finish is None else finish[index])
        values = Task(leaf, values, *(TaskRef(key) for c in lazy[index]
                                      for key in flatten(c.__dask_keys__())))
        fused[leaf] = Task.fuse(*members[index], values, key=leaf)
    _drop_unused_held(fused)
    return [Delayed((f"group-{token}", index), fused) for index in range(len(groups))]


def per_block(array: da.Array) -> da.Array:
    """``array`` with each block one task: every task that block alone needs (reads, a model, a
    subtraction, flags) fused into it; tasks several blocks need stay tasks of their own.

    For a graph that reduces chunks to small results (a dynamic spectrum's sums over baselines),
    where a dozen tasks a chunk each cost distributed's bookkeeping.
    """
    keys = list(flatten(array.__dask_keys__()))
    fused, members, _ = _by_owner(array.__dask_graph__(), {key: key for key in keys})
    _copy_held(fused, members)
    name = "per-block-" + array.name
    for key in keys:
        block = (name,) + key[1:]
        fused[block] = Task.fuse(*members[key], key=block)
    _drop_unused_held(fused)
    graph = HighLevelGraph.from_collections(name, fused, dependencies=())
    return da.Array(graph, name, array.chunks, meta=array._meta)


def _copy_held(shared: dict, members: dict) -> None:
    """Put each value the graph holds (a stored array's chunk files, a small constant) that
    several owners read into each owner's nodes (``members``), not left as a task of its own
    for the cluster to keep; :func:`_drop_unused_held` then removes it from ``shared``."""
    held = {key: node for key, node in shared.items() if isinstance(node, DataNode)}
    for nodes in members.values():
        needed = {dep for node in nodes for dep in node.dependencies if dep in held}
        nodes.extend(held[dep] for dep in needed)


def _drop_unused_held(fused: dict) -> None:
    """Remove the held values (:func:`_copy_held`) no task of ``fused`` depends on any more."""
    used = {dep for node in fused.values() for dep in node.dependencies}
    for key in [key for key, node in fused.items() if isinstance(node, DataNode) and key not in used]:
        del fused[key]


def _by_owner(graph, outputs: dict, pinned=frozenset()) -> tuple:
    """``graph`` optimised, ``outputs`` and ``pinned`` kept, split by :func:`_owners`: the
    tasks that stay their own (a dict), the tasks each owner alone needs (owner -> nodes) and
    the owner of every key."""
    keep = list(outputs) + list(pinned)
    dsk = _unaliased(convert_legacy_graph(ensure_dict(optimize(graph, keep))), set(keep))
    owner = _owners(dsk, outputs, pinned)
    shared = {key: node for key, node in dsk.items() if owner[key] == _SHARED}
    members: dict = defaultdict(list)
    for key, node in dsk.items():
        if owner[key] != _SHARED:
            members[owner[key]].append(node)
    return shared, members, owner


def _unaliased(dsk: dict, keep: set) -> dict:
    """``dsk`` with every chain dask fused under the key its dependents use (``keep``: keys
    asked for, never renamed).

    dask's ``fuse_linear_task_spec`` names a fused chain anew and leaves an ``Alias`` under the
    chain's last key, which distributed runs as a task of its own (~2 ms of its bookkeeping):
    flagging the VLA-like x4 store ran 524 such aliases among its 2348 tasks (a read fused with
    the one task using it: UVW into the shadow mask, stored flags into their spill).
    """
    used = Counter(dep for node in dsk.values() for dep in node.dependencies)
    out = dict(dsk)
    for key, node in dsk.items():
        target = node.target if isinstance(node, Alias) else None
        if used[target] == 1 and target not in keep and isinstance(out.get(target), Task):
            out[key] = out.pop(target).substitute({}, key=key)
    return out


class _Finish:
    """The final task: given the chunks' (dropped) results, then every key of the extra's
    collections in order, the extra's value."""

    def __init__(self, repack, values, n_done):
        self.repack, self.values, self.n_done = repack, values, n_done

    def __call__(self, *values):
        # repack gives the arguments unpacked: one, (alongside, extra)
        return self.repack(self.values(*values[self.n_done:]))[0][1]


class _Values:
    """A group's task: given every key of its collections in order, their values (each
    collection finalised as dask.compute would), or ``then`` of them."""

    def __init__(self, finishes, then=None):
        self.finishes = finishes
        self.then = then

    def __call__(self, *values):
        values = iter(values)
        # (func, args), keys of a collection; (None, value), None of a value in memory
        out = [args if func is None else func(_nested(keys, values), *args)
               for (func, args), keys in self.finishes]
        return out if self.then is None else self.then(out)


def _nested(keys, values):
    """``keys`` (nested lists of keys) with each key replaced by the next of ``values``."""
    if isinstance(keys, list):
        return [_nested(key, values) for key in keys]
    return next(values)


def _owners(dsk: dict, outputs: dict, pinned: set) -> dict:
    """key -> the chunk (or group) whose outputs alone need it, or ``_SHARED``.

    An output is its chunk's; a key of ``pinned`` (the extra's, read by the final task) is shared;
    any other task is the chunk's whose tasks are all its dependents.
    Decided from the leaves down (reverse topological order), so every dependent is decided first.
    """
    dependents: dict = {key: [] for key in dsk}
    for key, node in dsk.items():
        for dep in node.dependencies:
            if dep in dependents:
                dependents[dep].append(key)
    waiting = {key: len(users) for key, users in dependents.items()}
    ready = [key for key, count in waiting.items() if count == 0]
    owner: dict = {}
    while ready:
        key = ready.pop()
        users = {owner[user] for user in dependents[key]}
        if key in outputs:
            users.add(outputs[key])
        if key in pinned:
            users.add(_SHARED)
        owner[key] = users.pop() if len(users) == 1 else _SHARED
        for dep in dsk[key].dependencies:
            if dep in waiting:
                waiting[dep] -= 1
                if waiting[dep] == 0:
                    ready.append(dep)
    return owner


def _nothing(*_written) -> None:
    return None
