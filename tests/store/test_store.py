"""The zarr store's on-disk form: compact weights and coordinates, undone on opening."""

from __future__ import annotations

import json
import os
import shutil

import dask.array as da
import numpy as np
import pytest
import xarray as xr
import zarr

from radiocal.errors import InputError
from radiocal.store import rawchunks
from radiocal.store import schema as S
from radiocal.ms.read import read_ms
from radiocal.ms.write import write_ms
from radiocal.store.zarr_store import (
    COORDS_GROUP,
    VERSION_ATTR,
    link_array,
    open_store,
    partition_path,
    stored_array,
    update_store,
    write_store,
)

DIMS4 = [S.TIME, S.BASELINE, S.FREQUENCY, S.POLARIZATION]


@pytest.fixture(scope="module")
def small_ms(tmp_path_factory):
    """A small simulated MS: several scans (partitions), WEIGHT without WEIGHT_SPECTRUM."""
    from radiocal.simulate import SimConfig, simulate_ms

    path = tmp_path_factory.mktemp("store") / "small.ms"
    simulate_ms(path, SimConfig(seed=2))
    return str(path)


def _stored_dims(store, partition, variable):
    with open(os.path.join(partition_path(store, partition), variable, ".zattrs")) as f:
        return json.load(f)["_ARRAY_DIMENSIONS"]


def _ramp(ds):
    """Channel-dependent weights: what WEIGHT_SPECTRUM or calibration with calwt give."""
    ramp = xr.DataArray(np.linspace(1, 2, ds.sizes[S.FREQUENCY]), dims=S.FREQUENCY)
    return (ds[S.WEIGHT] * ramp).astype(np.float32).transpose(*DIMS4)


def test_channel_constant_weight_is_stored_once_and_opened_in_full(small_ms, tmp_path):
    datasets = read_ms(small_ms, chunk_bytes=200_000)
    store = write_store(datasets, tmp_path / "obs.zarr")
    for ds, back in zip(datasets, open_store(store)):
        name = ds.attrs[S.ATTR_PARTITION]
        assert _stored_dims(store, name, S.WEIGHT) == [S.TIME, S.BASELINE, S.POLARIZATION]
        assert back[S.WEIGHT].dims == tuple(DIMS4)
        assert back[S.WEIGHT].dtype == np.float32
        assert back[S.WEIGHT].chunks == ds[S.WEIGHT].chunks
        np.testing.assert_array_equal(back[S.WEIGHT].values, ds[S.WEIGHT].values)
        # Readers get ordinary writable, contiguous blocks
        block = back[S.WEIGHT].data.blocks[0, 0, 0, 0].compute()
        assert block.flags.c_contiguous and block.flags.writeable


def test_weight_spectrum_input_is_stored_in_full(small_ms, tmp_path):
    weighted = [ds.assign({S.WEIGHT: _ramp(ds)}) for ds in read_ms(small_ms)]
    write_ms(weighted, tmp_path / "ws.ms")   # channel-varying weights: WEIGHT_SPECTRUM
    datasets = read_ms(tmp_path / "ws.ms")
    store = write_store(datasets, tmp_path / "obs.zarr")
    for want, back in zip(weighted, open_store(store)):
        assert _stored_dims(store, back.attrs[S.ATTR_PARTITION], S.WEIGHT) == DIMS4
        np.testing.assert_array_equal(back[S.WEIGHT].values, want[S.WEIGHT].values)


def test_update_store_writes_changed_weights_in_full_and_unchanged_ones_compactly(small_ms, tmp_path):
    store = write_store(read_ms(small_ms), tmp_path / "obs.zarr")
    stored = open_store(store)
    first, rest = stored[0], stored[1:]
    ramped = first.assign({S.WEIGHT: _ramp(first)})
    expected = [ramped[S.WEIGHT].values] + [ds[S.WEIGHT].values for ds in rest]
    update_store([ramped] + rest, store, [S.WEIGHT])
    back = open_store(store)
    assert _stored_dims(store, first.attrs[S.ATTR_PARTITION], S.WEIGHT) == DIMS4
    compact = [S.TIME, S.BASELINE, S.POLARIZATION]
    assert all(_stored_dims(store, ds.attrs[S.ATTR_PARTITION], S.WEIGHT) == compact for ds in rest)
    for want, got in zip(expected, back):
        np.testing.assert_array_equal(got[S.WEIGHT].values, want)


def test_weight_assigned_in_place_is_stored_in_full(small_ms, tmp_path):
    datasets = read_ms(small_ms)
    weight = datasets[0][S.WEIGHT].data
    weight[0, 0, 0, 0] = 7.0   # dask's in-place assignment: one channel now differs
    store = write_store(datasets, tmp_path / "obs.zarr")
    back = open_store(store)[0]
    assert _stored_dims(store, back.attrs[S.ATTR_PARTITION], S.WEIGHT) == DIMS4
    assert back[S.WEIGHT].values[0, 0, 0, 0] == 7.0
    assert back[S.WEIGHT].values[0, 0, 1, 0] != 7.0


def test_coordinates_are_arrays_that_plain_xarray_reads_with_their_units(small_ms, tmp_path):
    datasets = read_ms(small_ms)
    # A coordinate another step might add, with its own attributes
    datasets[0] = datasets[0].assign_coords(
        antenna_gain=(S.ANTENNA, np.arange(datasets[0].sizes[S.ANTENNA], dtype=np.float32) / 3))
    datasets[0]["antenna_gain"].attrs["units"] = "Jy"
    store = write_store(datasets, tmp_path / "obs.zarr")
    group = partition_path(store, datasets[0].attrs[S.ATTR_PARTITION])
    stored_arrays = sorted(n for n in os.listdir(group) if not n.startswith("."))
    assert stored_arrays == sorted(datasets[0].variables)
    # what any xarray user sees, with no radiocal code: real coordinates, units and time scale
    plain = xr.open_zarr(group, consolidated=False)
    ds = datasets[0]
    for name in (S.TIME, S.FREQUENCY, S.POLARIZATION, S.BASELINE_ANTENNA1, S.BASELINE_ANTENNA2,
                 S.ANTENNA_NAME, S.CHANNEL_WIDTH, "antenna_gain"):
        assert name in plain.coords, name
        np.testing.assert_array_equal(plain[name].values, ds[name].values)
    assert plain[S.TIME].dtype == np.float64          # MJD seconds, not decoded to datetimes
    assert {k: plain[S.TIME].attrs[k] for k in ("units", "scale", "format")} == \
        {"units": "s", "scale": "utc", "format": "mjd"}
    assert plain[S.FREQUENCY].attrs["units"] == "Hz"
    assert plain[S.FREQUENCY].attrs["frame"] == ds.attrs[S.ATTR_FREQ_REF]
    assert plain["antenna_gain"].attrs == {"units": "Jy"}
    assert plain[S.VISIBILITY].dims == tuple(DIMS4)
    # radiocal's own reader gives back exactly the datasets written, visibilities read raw
    for ds, back in zip(datasets, open_store(store)):
        assert rawchunks.is_raw(back[S.VISIBILITY].data) and isinstance(back[S.FLAG].data, da.Array)
        xr.testing.assert_identical(ds.compute(), back.compute())


def test_damaged_compressed_chunk_is_a_one_line_error(small_ms, tmp_path):
    datasets = read_ms(small_ms)
    store = write_store(datasets, tmp_path / "obs.zarr")
    flag = os.path.join(partition_path(store, datasets[0].attrs[S.ATTR_PARTITION]), S.FLAG)
    chunk = os.path.join(flag, sorted(f for f in os.listdir(flag) if not f.startswith("."))[0])
    with open(chunk, "r+b") as f:    # same length, garbage bytes: blosc's header no longer fits
        f.write(b"\xff" * 16)
    with pytest.raises(InputError, match="damaged chunk file") as err:
        open_store(store)[0][S.FLAG].values
    assert "\n" not in str(err.value) and chunk in str(err.value)


def test_the_schema_is_checked_at_write_and_at_open(small_ms, tmp_path):
    datasets = read_ms(small_ms)
    with pytest.raises(InputError, match="no variable 'FLAG'") as err:
        write_store([datasets[0].drop_vars(S.FLAG)], tmp_path / "bad.zarr")
    assert "\n" not in str(err.value) and not (tmp_path / "bad.zarr").exists()
    store = write_store(datasets, tmp_path / "obs.zarr")
    name = datasets[1].attrs[S.ATTR_PARTITION]
    os.remove(os.path.join(partition_path(store, name), S.BASELINE_ANTENNA2))   # a shared link
    with pytest.raises(InputError, match="no coordinate 'baseline_antenna2'") as err:
        open_store(store)
    assert "\n" not in str(err.value) and name in str(err.value)


def test_store_md_reader_gets_coordinates_with_units_without_radiocal(small_ms, tmp_path,
                                                                      monkeypatch):
    """docs/store.md's plain-xarray snippet, run as written, on a store radiocal wrote."""
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[2] / "docs" / "store.md").read_text()
    snippet = next(b for b in re.findall(r"```python\n(.*?)```", text, re.S) if "open_zarr" in b)
    datasets = read_ms(small_ms)
    monkeypatch.chdir(tmp_path)
    write_store(datasets, "obs.zarr")
    scope = {}
    exec(compile(snippet, "docs/store.md", "exec"), scope)
    ds, want = scope["ds"], datasets[0]
    assert ds.attrs.get(S.ATTR_PARTITION) == "field0_spw0_scan1" == want.attrs[S.ATTR_PARTITION]
    for name in (S.TIME, S.FREQUENCY, S.BASELINE_ANTENNA1, S.BASELINE_ANTENNA2, S.POLARIZATION):
        np.testing.assert_array_equal(ds[name].values, want[name].values)
    assert ds[S.TIME].dtype == np.float64
    assert {k: ds[S.TIME].attrs[k] for k in ("units", "scale", "format")} == \
        {"units": "s", "scale": "utc", "format": "mjd"}
    assert ds[S.FREQUENCY].attrs["units"] == "Hz"
    assert ds[S.FREQUENCY].attrs["frame"] == want.attrs[S.ATTR_FREQ_REF]
    assert ds[S.UVW].attrs["units"] == "m"


def test_shared_coordinates_are_stored_once_and_linked(small_ms, tmp_path):
    datasets = read_ms(small_ms)
    assert len(datasets) > 1
    store = write_store(datasets, tmp_path / "obs.zarr")
    shared = os.path.join(store, COORDS_GROUP)
    for ds in datasets:
        group = partition_path(store, ds.attrs[S.ATTR_PARTITION])
        for name in ds.coords:
            # time is each partition's own; the rest link into coords/
            assert os.path.islink(os.path.join(group, name)) == (name != S.TIME), name
    distinct = {(name, ds[name].values.tobytes()) for ds in datasets for name in ds.coords
                if name != S.TIME}
    assert len([e for e in os.listdir(shared) if not e.startswith(".")]) == len(distinct)
    # radiocal's reader decodes a shared array once, each partition gets its own Variable
    back = open_store(store)
    assert back[0][S.ANTENNA_NAME].variable is not back[1][S.ANTENNA_NAME].variable
    for ds, opened in zip(datasets, back):
        xr.testing.assert_identical(ds.compute(), opened.compute())


def test_layout_3_store_with_coordinates_in_every_partition_is_still_read(small_ms, tmp_path):
    datasets = read_ms(small_ms)
    store = write_store(datasets, tmp_path / "obs.zarr")
    for ds in datasets:   # what layout 3 wrote: copies in place of the links, no coords/
        group = partition_path(store, ds.attrs[S.ATTR_PARTITION])
        for name in ds.coords:
            link = os.path.join(group, name)
            if os.path.islink(link):
                target = os.path.realpath(link)
                os.remove(link)
                shutil.copytree(target, link)
    shutil.rmtree(os.path.join(store, COORDS_GROUP))
    zarr.open_group(store, mode="r+", zarr_format=2, use_consolidated=False).attrs[VERSION_ATTR] = 3
    for ds, back in zip(datasets, open_store(store)):
        xr.testing.assert_identical(ds.compute(), back.compute())


def test_store_of_another_layout_version_is_refused(small_ms, tmp_path):
    store = write_store(read_ms(small_ms), tmp_path / "obs.zarr")
    root = zarr.open_group(store, mode="r+", zarr_format=2, use_consolidated=False)
    for old in (1, 2):   # 2 kept the coordinates in an attribute
        root.attrs[VERSION_ATTR] = old
        with pytest.raises(InputError, match=f"version {old}, this radiocal reads versions 3, 4") as err:
            open_store(store)
        assert "\n" not in str(err.value)


def test_linked_copy_of_a_stored_array_keeps_its_values_when_the_store_is_updated(small_ms,
                                                                                  tmp_path):
    store = write_store(read_ms(small_ms, chunk_bytes=200_000), tmp_path / "obs.zarr")
    ds = open_store(store)[0]
    # raw visibilities and compact weights are not plain arrays in canonical dims
    assert stored_array(store, ds, S.VISIBILITY) is None
    assert stored_array(store, ds, S.WEIGHT) is None
    source = stored_array(store, ds, S.FLAG)
    assert source == os.path.join(partition_path(store, ds.attrs[S.ATTR_PARTITION]), S.FLAG)
    before = ds[S.FLAG].values
    copy = tmp_path / "backup" / S.FLAG
    link_array(source, copy)
    chunk = next(f for f in os.listdir(copy) if not f.startswith("."))
    assert os.path.samefile(copy / chunk, os.path.join(source, chunk))   # linked, not copied

    flipped = ~ds[S.FLAG].data
    # values asked for beside the writes come from the same pass (flipped is read once)
    (count,) = update_store([ds.assign({S.FLAG: (ds[S.FLAG].dims, flipped)})], store, [S.FLAG],
                            also=[flipped.sum()])
    assert count == (~before).sum()
    np.testing.assert_array_equal(open_store(store)[0][S.FLAG].values, ~before)
    np.testing.assert_array_equal(zarr.open_array(str(copy), mode="r")[...], before)


def test_partition_with_a_coordinate_of_another_kind_is_written_by_xarray(small_ms, tmp_path):
    datasets = read_ms(small_ms, chunk_bytes=200_000)
    first = datasets[0]
    utc = np.datetime64("2026-01-01T00:00:00", "ns") + np.arange(first.sizes[S.TIME]).astype(
        "timedelta64[s]")
    marked = first.assign_coords(utc=(S.TIME, utc))     # datetimes: not a plain array
    store = write_store([marked] + datasets[1:], tmp_path / "obs.zarr")
    assert os.path.isdir(os.path.join(partition_path(store, first.attrs[S.ATTR_PARTITION]), "utc"))
    for ds, back in zip([marked] + datasets[1:], open_store(store)):
        xr.testing.assert_identical(back.compute(), ds.compute())
