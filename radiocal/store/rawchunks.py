"""Zarr (format 2) arrays read and written chunk file by chunk file.

An uncompressed zarr v2 chunk is nothing but the chunk's values, C order, in the array's dtype,
in a file named by its chunk indices joined with ``.``; edge chunks are stored at full size. For
these arrays zarr-python copies every chunk once more into a fresh Python ``bytes`` (on the way
out and on the way in). On a VM, touching that much fresh memory costs more than the I/O itself:
reading 0.5 GB of visibilities took 0.7-1.7 s through zarr and 0.1 s with ``numpy.fromfile``.
So radiocal reads and writes the chunk files of its uncompressed arrays itself, straight between
the files and numpy arrays.

Arrays are created here too, compressed ones included: a zarr v2 array is a ``.zarray`` and a
``.zattrs`` JSON document, which zarr-python 3 takes ~4 ms to write per array (a scan-rich MS has
hundreds) and this module well under 1 ms. Any zarr reader sees the same arrays.
"""

from __future__ import annotations

import json
import os
import threading

import dask
import dask.array as da
import numcodecs
import numpy as np
from dask.base import tokenize
from dask.core import flatten
from dask._task_spec import TaskRef, convert_legacy_graph
from dask.array.core import getter
from dask.blockwise import blockwise as core_blockwise
from dask.highlevelgraph import HighLevelGraph, MaterializedLayer
from dask.layers import ArraySliceDep

from radiocal import budget
from radiocal.errors import InputError

_ZARRAY = ".zarray"


def array_info(array_path) -> tuple | None:
    """(metadata, dims, attributes) of a zarr v2 array :func:`open_array` reads, else None:
    filters, F order, another chunk-key separator, or a dtype other than numbers, booleans and
    fixed-width strings (read those with zarr)."""
    meta = _metadata(array_path, compressed=True)
    if meta is None:
        return None
    try:
        with open(os.path.join(array_path, ".zattrs")) as f:
            attrs = json.load(f)
    except (OSError, ValueError):
        return None
    dims = tuple(attrs.pop("_ARRAY_DIMENSIONS", ()))
    return (meta, dims, attrs) if len(dims) == len(meta["shape"]) else None


def open_array(array_path, meta: dict, lazy: bool = True):
    """The values of the array :func:`array_info` described: a dask array with one task per
    chunk file (compressed or not), or with ``lazy=False`` a numpy array read now (small
    arrays: coordinates)."""
    compressor = meta.get("compressor")
    compressor = compressor and numcodecs.get_codec(compressor)
    if lazy:
        return _lazy(array_path, meta, compressor)
    reader = _ChunkFiles(os.fspath(array_path), meta["shape"], meta["chunks"], meta["dtype"],
                         compressor)
    return reader[(slice(None),) * reader.ndim]


def open_raw(array_path) -> da.Array | None:
    """A lazy dask array over an uncompressed zarr v2 array, one task per chunk file.

    Returns None when the array is not stored raw (compressed, filtered, F order): read it
    with :func:`open_array` or zarr then.
    """
    meta = _metadata(array_path)
    return None if meta is None else _lazy(array_path, meta, None)


def _lazy(array_path, meta: dict, compressor) -> da.Array:
    shape, chunk_shape = tuple(meta["shape"]), tuple(meta["chunks"])
    dtype = np.dtype(meta["dtype"])
    chunks = tuple(budget.chunk_sizes(n, c) for n, c in zip(shape, chunk_shape))
    reader = _ChunkFiles(os.fspath(array_path), shape, chunk_shape, dtype, compressor)
    # The name changes whenever the array is rewritten (update_store replaces the directory)
    stamp = os.stat(os.path.join(array_path, _ZARRAY)).st_mtime_ns
    name = ("raw-" if compressor is None else "zarr-") + tokenize(
        os.path.abspath(array_path), stamp, shape, chunk_shape, dtype.str)
    return from_regions(reader, chunks, name)


def rechunk(array: da.Array, chunks, token: str = "", after=None) -> da.Array:
    """``array.rechunk(chunks)``, read straight from the chunk files when :func:`open_raw` made
    ``array``.

    A rechunk regroups whole chunks in memory: turning chunks of every baseline of a few times
    into chunks of every time of a few baselines needs every input chunk at once, that is the
    whole array. Reading each new chunk's region from the files instead keeps memory at a chunk
    (each region is read once; see :meth:`_ChunkFiles._read_chunk`).

    ``token`` gives the reads their own keys: a pass whose result gates a later pass over the
    same regions (a statistic over every plane, then a kernel per plane) reads them twice rather
    than dask holding every region in memory until the gate is decided.

    ``after``: an array whose spills (:func:`spill`) must be complete before any region is read
    (see :func:`barriers`).
    """
    source = _source(array)
    if source is None:
        return array.rechunk(chunks)
    chunks = da.core.normalize_chunks(chunks, array.shape, dtype=array.dtype,
                                      previous_chunks=array.chunks)
    if chunks == array.chunks:
        return array
    return _regions(array, source, chunks, token, after)


def reread(array: da.Array, chunks, token: str, after=None) -> da.Array:
    """``array`` in ``chunks`` under keys of its own (``token``), sharing no task with ``array``.

    An array :func:`open_raw` made is read region by region from its chunk files; any other
    array's whole graph is cloned (its sources are read again) and then rechunked. A pass that
    needs only a part of every chunk at a time (a group of channels) then holds only that part:
    with shared reads, dask keeps each source chunk until every part of it has been used.
    """
    source = _source(array)
    if source is None:
        return _renamed(array, tokenize(token)).rechunk(chunks)
    chunks = da.core.normalize_chunks(chunks, array.shape, dtype=array.dtype,
                                      previous_chunks=array.chunks)
    return _regions(array, source, chunks, token, after)


def _renamed(array: da.Array, suffix: str) -> da.Array:
    """``array`` with every task of its graph under a new key (``-suffix`` added to each name).

    (``dask.graph_manipulation.clone`` does this too, but breaks on rechunked arrays.)
    """
    # only the tasks the array's chunks need: a slice's graph holds all of its source's layers
    graph = convert_legacy_graph(dict(array.__dask_graph__().cull(
        set(flatten(array.__dask_keys__())))))

    def rename(key):
        if isinstance(key, tuple):
            return (f"{key[0]}-{suffix}",) + key[1:]
        return f"{key}-{suffix}"
    renames = {key: rename(key) for key in graph}
    tasks = {renames[key]: node.substitute(renames, key=renames[key])
             for key, node in graph.items()}
    name = f"{array.name}-{suffix}"
    return da.Array(HighLevelGraph.from_collections(name, tasks, dependencies=()), name,
                    array.chunks, meta=array._meta)


def reading(func, arrays, block_info: bool = False):
    """``func`` with the regions of ``arrays`` (each made by :func:`open_raw`) read inside its
    own task and passed first: a function for ``da.map_blocks`` over arrays of the same shape
    (the regions are where the first of them has its block). None when an array is not raw
    (read it with :func:`reread` then).

    A region read as a task of its own is ready as soon as its barrier is, and dask runs such
    reads ahead of the passes that need them: flagging a VLA-like store of 4x the length held
    every plane of a scan's visibilities read and waiting (peak 457 MB against 345 MB at 1x,
    sync scheduler). Read inside the pass, a region lives only as long as the task that uses it
    (327 against 292 MB), and the graph has a task less per chunk.

    ``block_info``: pass dask's ``block_info`` on to ``func`` too.
    """
    sources = tuple(_source(array) for array in arrays)
    if not arrays or any(source is None for source in sources):
        return None
    return _Reading(func, sources, block_info)


class _Reading:
    """``func(*regions, *blocks)``, the regions where the first of ``blocks`` lies in its array
    (see :func:`reading`)."""

    def __init__(self, func, sources, block_info=False):
        self.func, self.sources, self.block_info = func, sources, block_info

    def __call__(self, *blocks, block_info=None):
        key = tuple(slice(start, stop) for start, stop in block_info[0]["array-location"])
        regions = (source[key] for source in self.sources)
        if self.block_info:
            return self.func(*regions, *blocks, block_info=block_info)
        return self.func(*regions, *blocks)

    def __dask_tokenize__(self):
        return (type(self).__name__, tokenize(self.func), self.sources, self.block_info)


def is_raw(array: da.Array) -> bool:
    """Whether :func:`open_raw` made ``array`` (its chunks are read straight from the files)."""
    return _source(array) is not None


def chunk_files(array: da.Array):
    """The chunk files (a :class:`Regions`) behind an array :func:`open_raw`,
    :func:`open_array` or :func:`from_regions` made, compressed or not (slicing reads a region,
    decoding each compressed chunk it touches), else None."""
    source = array.__dask_graph__().get(f"original-{array.name}")
    return source if isinstance(source, Regions) else None


def _source(array: da.Array):
    """The uncompressed chunk files behind an array, else None (a compressed array's region
    would decompress its chunk once per region)."""
    source = chunk_files(array)
    return source if source is not None and source.compressor is None else None


def from_regions(regions: "Regions", chunks, name: str) -> da.Array:
    """A lazy array over ``regions`` in ``chunks``, a task per chunk; any task that takes its
    :func:`chunk_files` reads its own region instead.

    The graph ``da.from_array(regions, chunks=chunks, name=name, lock=False, asarray=False)``
    makes, built without its checks: those took ~0.3 ms an array, and every step opens a
    scan-rich store's hundreds of partitions of five arrays each.
    """
    chunks = tuple(tuple(int(n) for n in c) for c in chunks)
    original = f"original-{name}"
    index = tuple(range(regions.ndim))
    reads = core_blockwise(getter, name, index, TaskRef(original), None, ArraySliceDep(chunks),
                           index, numblocks={}, _data_producer=True, asarray=False, lock=False)
    graph = HighLevelGraph({original: MaterializedLayer({original: regions}), name: reads},
                           {original: set(), name: {original}})
    return da.Array(graph, name, chunks, meta=np.empty((0,) * regions.ndim, dtype=regions.dtype))


def _regions(array, source, chunks, token, after=None) -> da.Array:
    gates = barriers(after) if after is not None else []
    name = f"{array.name}-{tokenize(chunks, token, gates)}"
    if not gates:
        return da.from_array(source, chunks=chunks, name=name, lock=False, asarray=False,
                             meta=array._meta)
    layer = {(name,) + index: (_read_spilled, source, list(_block_slices(chunks, index)), gates)
             for index in np.ndindex(*tuple(len(c) for c in chunks))}
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[after])
    return da.Array(graph, name, chunks, meta=array._meta)


def barriers(array: da.Array) -> list:
    """The keys of the spills in ``array``'s graph that are complete once all is written.

    Reads that a pass needs together with ``array`` wait for them too: read before, a region
    would sit in memory until the spill is done, and with every region of a pass read ahead
    that way memory grew with the data (a 352-antenna store: 1.7 GB at 6, 2.5 GB at 12
    integrations).
    """
    return sorted(key for name, layer in array.__dask_graph__().layers.items()
                  if name.startswith("spilled-") for key in layer
                  if isinstance(key, str) and key.startswith("spill-done-"))


# dask config key: the directory graph builders spill to (None: nothing is spilled, values are
# held in memory). Set by whoever also removes it after the compute (``radiocal flag``, the
# runner's flag step: the store's staging area, which ``update_store`` clears).
SPILL_DIR_KEY = "radiocal.spill-dir"


def spill_dir() -> str | None:
    """The directory set under :data:`SPILL_DIR_KEY`, or None."""
    return dask.config.get(SPILL_DIR_KEY, None)


def spill(array: da.Array, directory, chunks=None, token: str = "") -> da.Array:
    """``array`` written to raw chunk files under ``directory`` and read back in ``chunks``
    (default: its own), region by region.

    Every read waits until every chunk is written, so memory holds a chunk per running task,
    never the array: a later pass whose every chunk depends on all of an earlier pass (a decision
    over every plane, then OR-ed into each; planes regrouped into the store's chunks) would
    otherwise keep the earlier pass's whole output in memory until it runs. The writes and the
    barrier are keyed by ``array`` and ``directory`` alone, so spilling the same array again
    (another ``chunks`` or ``token``: reads under keys of their own) writes it once.
    An array whose chunks zarr could not hold (irregular) is rechunked in memory instead.
    """
    chunks = da.core.normalize_chunks(chunks or array.chunks, array.shape, dtype=array.dtype,
                                      previous_chunks=array.chunks)
    written = spilled_files(array)
    if written is not None:
        # already in spill files (the pass that made it wrote them): read in ``chunks``
        files, done = written
        return spilled(files, chunks, done, array, token)
    if not _regular(array.chunks):
        return array.rechunk(chunks)
    tag = tokenize(array.name, os.fspath(directory))
    files = _ChunkFiles(os.path.join(os.fspath(directory), f"spill-{tag}"), array.shape,
                        tuple(c[0] if c else 0 for c in array.chunks), array.dtype)
    write, done = f"spill-write-{tag}", f"spill-done-{tag}"
    layer = {}
    for index in np.ndindex(*array.numblocks):
        layer[(write,) + index] = (_write_spilled, files, (array.name,) + index,
                                   list(_block_slices(array.chunks, index)))
    layer[done] = (_all_written, [(write,) + index for index in np.ndindex(*array.numblocks)])
    name = f"spilled-{tokenize(tag, chunks, token)}"
    for index in np.ndindex(*tuple(len(c) for c in chunks)):
        layer[(name,) + index] = (_read_spilled, files, list(_block_slices(chunks, index)), done)
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[array])
    return da.Array(graph, name, chunks, meta=array._meta)


def spill_files(directory, array_name: str, shape, chunks, dtype):
    """Chunk files under ``directory`` for a spill that the tasks making ``array_name`` write
    themselves (``files[slices] = block``, one whole chunk of ``chunks`` each): a pass whose
    output is spilled anyway saves a write task per chunk. Read it back with :func:`spilled`."""
    chunks = da.core.normalize_chunks(chunks, shape, dtype=dtype)
    if not _regular(chunks):
        raise ValueError(f"spill files need regular chunks, not {chunks}")
    tag = tokenize(array_name, os.fspath(directory))
    return _ChunkFiles(os.path.join(os.fspath(directory), f"spill-{tag}"), shape,
                       tuple(c[0] if c else 0 for c in chunks), dtype)


def write_spill(files, block, slices) -> None:
    """Write ``block`` at ``slices`` (one whole chunk) of :func:`spill_files`' ``files``."""
    _write_spilled(files, block, list(slices))


def spilled(files, chunks, done, after, token: str = "") -> da.Array:
    """The array in spill ``files`` read back in ``chunks``, region by region, every read after
    the task ``done`` (a key of ``after``'s graph, complete once every chunk is written).

    :func:`spill` of such an array reads the same files in its chunks: nothing is written twice.
    """
    chunks = da.core.normalize_chunks(chunks, files.shape, dtype=files.dtype)
    name = f"spilled-{tokenize(files, chunks, done, token)}"
    layer = {(name,) + index: (_read_spilled, files, list(_block_slices(chunks, index)), done)
             for index in np.ndindex(*tuple(len(c) for c in chunks))}
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[after])
    return da.Array(graph, name, chunks, meta=np.empty((0,) * len(files.shape), files.dtype))


def spilled_files(array: da.Array):
    """``(files, done)`` when ``array`` is a spill read back (:func:`spill`, :func:`spilled`),
    else None."""
    layer = array.__dask_graph__().layers.get(array.name)
    if layer is None or not array.name.startswith("spilled-"):
        return None
    task = layer.get((array.name,) + (0,) * array.ndim)
    if not (isinstance(task, tuple) and task and task[0] is _read_spilled):
        return None
    return task[1], task[3]


def _regular(chunks) -> bool:
    return all(len(c) < 2 or (all(x == c[0] for x in c[:-1]) and c[-1] <= c[0]) for c in chunks)


def _block_slices(chunks, index):
    for c, i in zip(chunks, index):
        start = sum(c[:i])
        yield slice(start, start + c[i])


def _write_spilled(files, block, slices) -> None:
    os.makedirs(files.path, exist_ok=True)
    _write_block(files, block, slices)


def _write_block(files, block, slices) -> None:
    files[tuple(slices)] = block


def _all_written(_writes) -> None:
    return None


def _read_spilled(files, slices, _done) -> np.ndarray:
    return files[tuple(slices)]


def create_array(group_path, name: str, data: da.Array, dims, attrs: dict, compressor=None):
    """Create the zarr v2 array ``name`` in an existing group; return its chunk-file writer.

    ``data``'s chunks must be regular (all but the last equal along each axis), as zarr's are;
    a numpy array is one chunk.
    ``compressor`` is a numcodecs codec (None: raw chunks, readable by :func:`open_raw`); ``attrs``
    must be JSON-ready. The caller stores ``data`` into the writer with :func:`store`.
    """
    chunks = getattr(data, "chunks", None) or tuple((n,) for n in data.shape)
    chunk_shape = tuple(c[0] if c else 0 for c in chunks)
    if not _regular(chunks):
        raise ValueError(f"{name}: irregular chunks {chunks}")
    dtype = np.dtype(data.dtype)
    path = os.path.join(os.fspath(group_path), name)
    os.makedirs(path)
    meta = {
        "shape": list(data.shape), "chunks": list(chunk_shape), "dtype": dtype.str,
        # as xarray writes them: NaN for floats, none otherwise (every chunk is written anyway)
        "fill_value": "NaN" if dtype.kind == "f" else None,
        "order": "C", "filters": None, "dimension_separator": ".",
        "compressor": None if compressor is None else compressor.get_config(),
        "zarr_format": 2,
    }
    _write_json(os.path.join(path, _ZARRAY), meta)
    _write_json(os.path.join(path, ".zattrs"), {"_ARRAY_DIMENSIONS": list(dims), **attrs})
    return _ChunkFiles(path, data.shape, chunk_shape, dtype, compressor, fresh=True)


def store(data: da.Array, files: "_ChunkFiles") -> da.Array:
    """Lazily write ``data`` into the chunk files :func:`create_array` returned: one task per
    chunk, keyed by its block index, as ``dask.array.store(..., compute=False)`` makes them
    (computing to None), without its graph building (~2 ms per array: a scan-rich MS's
    partitions write five arrays each)."""
    name = "store-" + tokenize(data.name, files)
    offsets = [np.cumsum((0,) + tuple(c)).tolist() for c in data.chunks]
    layer = {(name,) + index: (_write_block, files, (data.name,) + index,
                               [slice(o[i], o[i + 1]) for o, i in zip(offsets, index)])
             for index in np.ndindex(*data.numblocks)}
    graph = HighLevelGraph.from_collections(name, layer, dependencies=[data])
    return da.Array(graph, name, data.chunks, meta=np.empty((0,) * data.ndim, dtype=data.dtype))


def create_group(path, attrs: dict) -> None:
    """A new zarr v2 group directory with JSON-ready ``attrs``."""
    os.makedirs(path, exist_ok=True)
    _write_json(os.path.join(path, ".zgroup"), {"zarr_format": 2})
    _write_json(os.path.join(path, ".zattrs"), attrs)


def update_attrs(path, attrs: dict) -> None:
    """Make JSON-ready ``attrs`` the attributes of the zarr v2 group or array at ``path``,
    writing its ``.zattrs`` only when they differ (most updates of a partition leave its
    attributes as they were; each write is a file)."""
    target = os.path.join(os.fspath(path), ".zattrs")
    try:
        with open(target) as f:
            if json.load(f) == json.loads(json.dumps(attrs)):
                return
    except (OSError, ValueError):
        pass
    _write_json(target, attrs)


def _write_json(path, document) -> None:
    text = json.dumps(document, indent=2)   # one write: json.dump writes piece by piece
    with open(path, "w") as f:
        f.write(text)


class Regions:
    """What a task can read a region of inside itself: ``self[slices]`` is that region as
    numpy. ``chunk_shape`` and ``compressor`` say what a read costs: a region of a compressed
    array decodes every stored chunk it touches whole.

    The chunk files of a zarr array are one (:class:`_ChunkFiles`); values made region by
    region from others are another (:class:`radiocal.select.resolve.OutsideUvFlags`, stored
    flags with a uv cut)."""

    def __init__(self, shape, chunk_shape, dtype, compressor=None):
        self.compressor = compressor
        self.shape = tuple(int(n) for n in shape)
        self.chunk_shape = tuple(int(c) for c in chunk_shape)
        self.dtype = np.dtype(dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, key):
        raise NotImplementedError


class _ChunkFiles(Regions):
    """Array-like view of one zarr array's chunk files: slicing reads, setitem writes.

    ``fresh``: the array was just created where nothing reads it until its writer is done (a
    store marked incomplete, ``update_store``'s staging area): its chunks are written in place,
    not aside and renamed (a rename is ~0.15 ms of this VM's kernel time; a scan-rich MS writes
    thousands of one-chunk arrays).
    """

    def __init__(self, path: str, shape, chunk_shape, dtype, compressor=None, fresh=False):
        super().__init__(shape, chunk_shape, dtype, compressor)
        self.path = path
        self.fresh = fresh

    def __dask_tokenize__(self):
        return (type(self).__name__, self.path, self.shape, self.chunk_shape, self.dtype.str,
                None if self.compressor is None else self.compressor.get_config())

    # -- reading -------------------------------------------------------------------------------

    def __getitem__(self, key):
        key = slices(key, self.shape)
        first = tuple(s.start // c for s, c in zip(key, self.chunk_shape))
        last = tuple((s.stop - 1) // c if s.stop > s.start else s.start // c
                     for s, c in zip(key, self.chunk_shape))
        if first == last:   # what dask asks for: one chunk, or a part of one
            origin = tuple(i * c for i, c in zip(first, self.chunk_shape))
            return self._read_chunk(first, tuple(slice(s.start - o, s.stop - o)
                                                 for s, o in zip(key, origin)))
        out = np.empty(tuple(s.stop - s.start for s in key), dtype=self.dtype)
        for index in np.ndindex(*(b - a + 1 for a, b in zip(first, last))):
            index = tuple(a + i for a, i in zip(first, index))
            origin = tuple(i * c for i, c in zip(index, self.chunk_shape))
            inner = tuple(slice(max(s.start, o), min(s.stop, o + c))
                          for s, o, c in zip(key, origin, self.chunk_shape))
            out[tuple(slice(i.start - s.start, i.stop - s.start) for i, s in zip(inner, key))] = \
                self._read_chunk(index, tuple(slice(i.start - o, i.stop - o)
                                              for i, o in zip(inner, origin)))
        return out

    def _read_chunk(self, index, part) -> np.ndarray:
        """The ``part`` (slices inside the chunk) of chunk ``index``.

        A part smaller than the chunk is read through a memory map, so only its own bytes leave
        the disk: :func:`rechunk` reads a few baselines of many chunks this way.
        """
        path = self._chunk_file(index)
        count = int(np.prod(self.chunk_shape))
        if self.compressor is not None:
            return self._decoded(path, count)[part]
        whole = all(s.start == 0 and s.stop == c for s, c in zip(part, self.chunk_shape))
        try:
            if not whole and count and os.path.getsize(path) == count * self.dtype.itemsize:
                return np.array(np.memmap(path, dtype=self.dtype, mode="r",
                                          shape=self.chunk_shape)[part])
            values = np.fromfile(path, dtype=self.dtype, count=count)
        except FileNotFoundError:
            # zarr's meaning of a missing chunk: all fill value (null, read as zeros)
            return np.zeros(self.chunk_shape, dtype=self.dtype)[part]
        if values.size != count:
            raise InputError(f"{path}: truncated chunk file ({values.size} of {count} values)")
        return values.reshape(self.chunk_shape)[part]

    def _decoded(self, path, count) -> np.ndarray:
        try:
            with open(path, "rb") as f:
                encoded = f.read()
        except FileNotFoundError:
            return np.zeros(self.chunk_shape, dtype=self.dtype)
        try:
            values = np.frombuffer(self.compressor.decode(encoded), dtype=self.dtype)
        except (RuntimeError, ValueError) as err:   # what blosc and friends raise on bad bytes
            raise InputError(f"{path}: damaged chunk file ({err})") from None
        if values.size != count:
            raise InputError(f"{path}: damaged chunk file ({values.size} of {count} values)")
        return values.reshape(self.chunk_shape)

    # -- writing -------------------------------------------------------------------------------

    def __setitem__(self, key, block):
        key = slices(key, self.shape)
        index = tuple(s.start // c for s, c in zip(key, self.chunk_shape))
        if any(s.start % c or s.stop - s.start > c for s, c in zip(key, self.chunk_shape)):
            raise ValueError(f"{self.path}: write of {key} is not one whole chunk")
        block = np.asarray(block, dtype=self.dtype)
        if block.shape != self.chunk_shape:
            # Edge chunks are stored whole; the padding is never read back
            whole = np.zeros(self.chunk_shape, dtype=self.dtype)
            whole[tuple(slice(0, n) for n in block.shape)] = block
            block = whole
        block = np.ascontiguousarray(block)
        encoded = (memoryview(block).cast("B") if self.compressor is None
                   else self.compressor.encode(block))
        path = self._chunk_file(index)
        if self.fresh:
            with open(path, "wb") as f:
                f.write(encoded)
            return
        # Written aside and renamed into place: a reader never sees a chunk half written, and
        # a run killed mid-write leaves the previous chunk (or none), never a truncated one.
        partial = f"{path}.{os.getpid()}.{threading.get_ident()}.partial"
        with open(partial, "wb") as f:
            f.write(encoded)
        os.replace(partial, path)

    def _chunk_file(self, index) -> str:
        return os.path.join(self.path, ".".join(str(i) for i in index))


def stored_chunks(array_path) -> tuple | None:
    """The chunks (dask's form) of the zarr v2 array at ``array_path``, or None if there is none."""
    try:
        with open(os.path.join(array_path, _ZARRAY)) as f:
            meta = json.load(f)
        return tuple(budget.chunk_sizes(n, c) for n, c in zip(meta["shape"], meta["chunks"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _metadata(array_path, compressed: bool = False) -> dict | None:
    """An array's ``.zarray`` if this module reads it: raw numbers, or with ``compressed`` also
    compressed numbers, booleans and fixed-width strings."""
    try:
        with open(os.path.join(array_path, _ZARRAY)) as f:
            meta = json.load(f)
        kind = np.dtype(meta["dtype"]).kind
    except (OSError, ValueError, KeyError, TypeError):
        return None
    plain = (meta.get("zarr_format") == 2 and not meta.get("filters")
             and meta.get("order", "C") == "C" and meta.get("dimension_separator", ".") == "."
             and len(meta.get("shape", ())) > 0)
    if compressed:
        return meta if plain and kind in "biufcU" else None
    return meta if plain and meta.get("compressor") is None and kind in "biufc" else None


def slices(key, shape) -> tuple[slice, ...]:
    """``key`` (slices of the leading axes) as contiguous slices of every axis of ``shape``."""
    if not isinstance(key, tuple):
        key = (key,)
    key = key + (slice(None),) * (len(shape) - len(key))
    out = []
    for k, n in zip(key, shape):
        if not isinstance(k, slice):
            raise TypeError(f"only slices index a raw zarr array, got {k!r}")
        start, stop, step = k.indices(n)
        if step != 1:
            raise TypeError("only contiguous slices index a raw zarr array")
        out.append(slice(start, max(start, stop)))
    return tuple(out)


# numcodecs' Blosc frames start with a 16-byte header whose bytes 12-15 hold the frame's length
_BLOSC_HEADER = 16


def link_target(path) -> str | None:
    """The normalised path a symbolic link at ``path`` points to, None if it is not a link."""
    try:
        target = os.readlink(path)
    except OSError:
        return None
    return os.path.normpath(os.path.join(os.path.dirname(path), target))


def check_zarr_arrays(group_path, skip=()) -> None:
    """Raise InputError naming the file when an array of a zarr (v2) group is damaged.

    Checked without decoding anything: each ``.zarray`` parses, each uncompressed chunk file is
    exactly one chunk long, each Blosc-compressed chunk file is as long as its header says.
    A missing chunk file is zarr's fill value, not damage. Arrays that are symbolic links to a
    path in ``skip`` (already read, and so checked) are not checked again.
    """
    group_path = os.fspath(group_path)
    for name in sorted(os.listdir(group_path)):
        array = os.path.join(group_path, name)
        if skip and link_target(array) in skip:
            continue
        meta_path = os.path.join(array, ".zarray")
        if not os.path.isfile(meta_path):
            continue
        try:
            with open(meta_path) as f:
                meta = json.load(f)
        except (OSError, ValueError) as err:
            raise InputError(f"{meta_path}: damaged zarr array metadata ({err})") from None
        check_chunks(array, meta)


def check_chunks(array_path, meta: dict) -> None:
    """Raise InputError naming the file when a chunk file of the zarr v2 array at
    ``array_path``, whose ``.zarray`` is ``meta``, is damaged (see :func:`check_zarr_arrays`)."""
    name = os.path.basename(os.fspath(array_path))
    try:
        chunk_bytes = int(np.prod(meta["chunks"])) * np.dtype(meta["dtype"]).itemsize
        compressor = (meta.get("compressor") or {}).get("id")
    except (ValueError, KeyError, TypeError, AttributeError) as err:
        raise InputError(f"{os.path.join(array_path, _ZARRAY)}: damaged zarr array metadata "
                         f"({err})") from None
    if meta.get("filters"):
        return
    with os.scandir(array_path) as chunks:
        for chunk in chunks:
            if chunk.name.startswith("."):
                continue
            size = chunk.stat().st_size
            if compressor is None and size != chunk_bytes:
                raise InputError(f"{chunk.path}: truncated chunk file of {name} "
                                 f"({size} of {chunk_bytes} bytes)")
            if compressor == "blosc":
                with open(chunk.path, "rb") as f:
                    header = f.read(_BLOSC_HEADER)
                if len(header) < _BLOSC_HEADER or int.from_bytes(header[12:16], "little") != size:
                    raise InputError(f"{chunk.path}: truncated or damaged chunk file of {name}")
