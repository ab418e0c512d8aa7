"""Chunk-file I/O of zarr v2 arrays: the same files zarr itself reads and writes."""

import os

import dask.array as da
import numpy as np
import pytest
import zarr

from radiocal.errors import InputError
from radiocal.store import rawchunks


def _values(shape, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(np.complex64)


@pytest.fixture
def group(tmp_path):
    path = tmp_path / "g.zarr"
    zarr.open_group(str(path), mode="w", zarr_format=2)
    return str(path)


def test_written_chunks_are_what_zarr_reads(group):
    values = _values((7, 5, 3, 2))
    data = da.from_array(values, chunks=(3, 5, 2, 2))   # edge chunks along time and frequency
    writer = rawchunks.create_array(group, "V", data, ("time", "baseline", "frequency", "pol"),
                                  {"units": "Jy"})
    da.store(data, writer, lock=False)
    array = zarr.open_array(os.path.join(group, "V"), mode="r", zarr_format=2)
    np.testing.assert_array_equal(array[...], values)
    assert array.attrs["_ARRAY_DIMENSIONS"] == ["time", "baseline", "frequency", "pol"]
    assert array.attrs["units"] == "Jy"
    # zarr v2 keeps edge chunks whole
    assert os.path.getsize(os.path.join(group, "V", "2.0.1.0")) == 3 * 5 * 2 * 2 * 8


@pytest.mark.parametrize("dtype", [np.bool_, np.float32, np.float64])
def test_compressed_arrays_written_here_are_what_zarr_reads_and_writes(group, dtype):
    import numcodecs

    rng = np.random.default_rng(3)
    values = (rng.random((7, 5, 3)) * 4).astype(dtype)
    data = da.from_array(values, chunks=(3, 5, 3))
    blosc = numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.SHUFFLE, blocksize=0)
    da.store(data, rawchunks.create_array(group, "ours", data, ("t", "b", "p"), {}, blosc),
             lock=False)
    ours = zarr.open_array(os.path.join(group, "ours"), mode="r", zarr_format=2)
    np.testing.assert_array_equal(ours[...], values)
    # metadata as zarr writes it for the same array (through xarray: NaN fill for floats)
    theirs = zarr.open_group(group, mode="a", zarr_format=2).create_array(
        "theirs", shape=values.shape, chunks=(3, 5, 3), dtype=dtype, compressors=blosc,
        fill_value=np.nan if np.dtype(dtype).kind == "f" else None,
        attributes={"_ARRAY_DIMENSIONS": ["t", "b", "p"]})
    assert ours.metadata.to_dict() == theirs.metadata.to_dict()


def test_zarr_written_chunks_read_back_exactly(group):
    values = _values((9, 4, 6, 1), seed=1)
    zarr.open_group(group, mode="a", zarr_format=2).create_array(
        "V", shape=values.shape, chunks=(4, 4, 4, 1), dtype=values.dtype, compressors=None,
        fill_value=None)[...] = values
    lazy = rawchunks.open_raw(os.path.join(group, "V"))
    assert lazy.chunks == ((4, 4, 1), (4,), (4, 2), (1,))
    np.testing.assert_array_equal(lazy.compute(), values)
    # Slices across chunk boundaries, as a rechunked graph asks for them
    np.testing.assert_array_equal(lazy.rechunk((3, 2, 5, 1)).compute(), values)
    np.testing.assert_array_equal(lazy[2:7, 1:3, 3:5].compute(), values[2:7, 1:3, 3:5])


def test_compressed_arrays_are_left_to_zarr(group):
    zarr.open_group(group, mode="a", zarr_format=2).create_array(
        "F", shape=(4, 4), chunks=(2, 2), dtype=bool)[...] = True
    assert rawchunks.open_raw(os.path.join(group, "F")) is None
    assert rawchunks.open_raw(os.path.join(group, "missing")) is None


def test_missing_chunk_reads_as_zeros_and_truncated_chunk_fails(group):
    values = _values((4, 2), seed=2)
    data = da.from_array(values, chunks=(2, 2))
    da.store(data, rawchunks.create_array(group, "V", data, ("a", "b"), {}), lock=False)
    os.remove(os.path.join(group, "V", "1.0"))
    lazy = rawchunks.open_raw(os.path.join(group, "V"))
    np.testing.assert_array_equal(lazy.compute(), np.concatenate([values[:2], np.zeros((2, 2))]))
    with open(os.path.join(group, "V", "0.0"), "r+b") as f:
        f.truncate(8)
    with pytest.raises(InputError, match="truncated chunk"):
        rawchunks.open_raw(os.path.join(group, "V")).compute()


def test_irregular_chunks_are_refused(group):
    data = da.from_array(np.zeros((10, 2), np.complex64), chunks=((3, 5, 2), (2,)))
    with pytest.raises(ValueError, match="irregular chunks"):
        rawchunks.create_array(group, "V", data, ("a", "b"), {})


def test_a_rewritten_array_gets_a_new_graph_name(group):
    values = _values((2, 2))
    data = da.from_array(values, chunks=(2, 2))
    da.store(data, rawchunks.create_array(group, "V", data, ("a", "b"), {}), lock=False)
    first = rawchunks.open_raw(os.path.join(group, "V"))
    assert first.name == rawchunks.open_raw(os.path.join(group, "V")).name
    os.utime(os.path.join(group, "V", ".zarray"), ns=(1, 1))
    assert rawchunks.open_raw(os.path.join(group, "V")).name != first.name


def test_spilled_arrays_read_back_exactly_in_any_chunks_after_every_write(tmp_path):
    """Chunks of every baseline of one time, spilled and read as planes of every time of a few
    baselines (and back): the values are the array's, each read waits for all the writes, and
    two reads of one spill write it once."""
    import dask

    values = np.random.default_rng(3).random((5, 11, 6, 2)) > 0.4
    data = da.from_array(values, chunks=(1, 11, 4, 2))
    planes = rawchunks.spill(data, tmp_path / "spill", {0: -1, 1: 3, 2: -1, 3: -1})
    again = rawchunks.spill(data, tmp_path / "spill", None, token="again")
    assert planes.chunks == ((5,), (3, 3, 3, 2), (6,), (2,))
    assert again.chunks == data.chunks
    from dask._task_spec import convert_legacy_graph

    graph = convert_legacy_graph({**planes.__dask_graph__(), **again.__dask_graph__()})
    writes = [key for key in graph if isinstance(key, tuple) and key[0].startswith("spill-write")]
    assert len(writes) == data.npartitions
    barrier = next(key for key in graph if isinstance(key, str) and key.startswith("spill-done"))
    reads = [key for key in graph if isinstance(key, tuple) and key[0] == planes.name]
    assert all(barrier in graph[key].dependencies for key in reads)
    a, b = dask.compute(planes, again, scheduler="threads")
    np.testing.assert_array_equal(a, values)
    np.testing.assert_array_equal(b, values)


def test_irregular_arrays_are_rechunked_not_spilled(tmp_path):
    data = da.from_array(np.arange(10), chunks=((3, 4, 3),))
    out = rawchunks.spill(data, tmp_path / "spill", (5, 5))
    assert not any(name.startswith("spilled-") for name in out.dask.layers)
    np.testing.assert_array_equal(out.compute(scheduler="sync"), np.arange(10))
