"""select() and selection_mask() on small simulated canonical datasets, checked against plain
numpy, with a scheduler that refuses to compute while graphs are built."""

import datetime

import dask
import dask.array as da
import numpy as np
import pytest

from radiocal.astro import SPEED_OF_LIGHT
from radiocal.errors import SelectionError
from radiocal.store import schema as S
from radiocal.select.selection import (
    Selection,
    check_selection,
    first_time,
    matches_partition,
    select,
    selection_mask,
)
from radiocal.select import resolve, syntax
from radiocal.simulate import SimConfig, simulate


@pytest.fixture(scope="module")
def sim():
    config = SimConfig(
        n_antennas=4, spws=((1.30e9, 4e6, 8), (1.40e9, 4e6, 8)),
        schedule=((0, 3), (1, 2), (2, 4)), autocorrelations=True, seed=3,
    )
    return simulate(config)


@pytest.fixture
def parts(sim):
    """Dask-backed partitions, as a store or the MS reader gives them."""
    return [ds.chunk({S.TIME: 2}) for ds in sim.datasets]


def _refuse(*args, **kwargs):
    raise AssertionError("a graph builder computed")


@pytest.fixture
def no_compute():
    with dask.config.set(scheduler=_refuse):
        yield


def _casa_time(mjd_sec, with_date=True):
    """An MJD-seconds stamp written as CASA users type it (independent of radiocal's parser)."""
    stamp = datetime.datetime(1858, 11, 17) + datetime.timedelta(seconds=float(mjd_sec))
    return stamp.strftime("%Y/%m/%d/%H:%M:%S.%f" if with_date else "%H:%M:%S.%f")


def _coord(ds, name):
    """A coordinate's values, read on the local thread even inside ``no_compute`` (chunked
    partitions carry dask-backed coordinates, as stores opened lazily do)."""
    data = ds[name].data
    return data.compute(scheduler="sync") if isinstance(data, da.Array) else np.asarray(data)


def _pairs(ds):
    names = _coord(ds, S.ANTENNA_NAME)
    return [(names[i], names[j]) for i, j in zip(_coord(ds, S.BASELINE_ANTENNA1),
                                                _coord(ds, S.BASELINE_ANTENNA2))]


def _partitions(datasets):
    return [ds.attrs[S.ATTR_PARTITION] for ds in datasets]


# --- partition-level parts ---------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, keep", [
    (dict(field="J13*"), lambda a: a["field_name"].startswith("J13")),
    (dict(field="0,2"), lambda a: a["field_id"] in (0, 2)),
    (dict(field="STAR"), lambda a: a["field_name"] == "STAR"),
    (dict(scan="1~2"), lambda a: a["scan_number"] in (1, 2)),
    (dict(scan=">1"), lambda a: a["scan_number"] > 1),
    (dict(spw="1"), lambda a: a["spw_id"] == 1),
    (dict(spw="1.404~1.41GHz"), lambda a: a["spw_id"] == 1),
    (dict(intent="*BANDPASS*"), lambda a: any("BANDPASS" in i for i in a["intents"])),
    (dict(intent="PHASE,TARGET"),
     lambda a: any("PHASE" in i or "TARGET" in i for i in a["intents"])),
    (dict(field="J1407+2827", spw="0"), lambda a: a["field_id"] == 1 and a["spw_id"] == 0),
])
def test_partition_parts(parts, no_compute, kwargs, keep):
    out = select(parts, Selection(**kwargs))
    expected = [ds.attrs[S.ATTR_PARTITION] for ds in parts if keep(ds.attrs)]
    assert expected and _partitions(out) == expected
    for ds in out:   # whole partitions: nothing else touched
        assert dict(ds.sizes) == dict(parts[0].sizes) | {S.TIME: ds.sizes[S.TIME]}


def test_empty_selection_returns_input(parts):
    assert select(parts, Selection()) == parts


def test_matches_partition_on_attrs_only(parts):
    attrs = parts[0].attrs
    assert matches_partition(Selection(field="J13*", scan="1"), attrs)
    assert not matches_partition(Selection(scan="2"), attrs)
    freq = parts[0][S.FREQUENCY].values
    assert matches_partition(Selection(spw="1.29~1.301GHz"), attrs, frequency=freq)
    assert not matches_partition(Selection(spw="1.5~1.6GHz"), attrs, frequency=freq)


# --- channels ----------------------------------------------------------------------------------

def test_spw_channels(parts, no_compute):
    out = select(parts, Selection(spw="0:2~4;7,1:0~7^3"))
    assert len(out) == len(parts)
    for ds, orig in zip(out, parts):
        chans = [2, 3, 4, 7] if ds.attrs[S.ATTR_SPW_ID] == 0 else [0, 3, 6]
        np.testing.assert_array_equal(ds[S.FREQUENCY].values, orig[S.FREQUENCY].values[chans])
        assert isinstance(ds[S.VISIBILITY].data, da.Array)
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(out[0][S.VISIBILITY].values,
                                      parts[0][S.VISIBILITY].values[:, :, [2, 3, 4, 7]])


def test_spw_channel_frequency_range(parts, no_compute):
    low, high = 1.3041e9, 1.3079e9
    out = select(parts, Selection(spw="*:1.3041~1.3079GHz"))
    assert {ds.attrs[S.ATTR_SPW_ID] for ds in out} == {0}   # spw 1 has no such channel
    freq = _coord(parts[0], S.FREQUENCY)
    half = np.abs(_coord(parts[0], S.CHANNEL_WIDTH)) / 2
    expected = freq[(freq - half <= high) & (freq + half >= low)]
    assert expected.size >= 2
    np.testing.assert_array_equal(out[0][S.FREQUENCY].values, expected)


# --- correlations ------------------------------------------------------------------------------

def test_correlation(parts, no_compute):
    out = select(parts, Selection(correlation="LL,RR"))
    for ds in out:
        assert list(ds[S.POLARIZATION].values) == ["RR", "LL"]   # the data's order is kept
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(out[0][S.FLAG].values, parts[0][S.FLAG].values[..., [0, 3]])


def test_unsupported_correlation_layout(parts):
    with pytest.raises(SelectionError, match="RR,RL,LL"):
        select(parts, Selection(correlation="RR,RL,LL"))


# --- antennas and baselines --------------------------------------------------------------------

def _expected_pairs(ds, keep):
    return [pair for pair in _pairs(ds) if keep(*pair)]


@pytest.mark.parametrize("antenna, keep", [
    ("W01", lambda p, q: "W01" in (p, q) and p != q),
    ("W01,E01", lambda p, q: bool({"W01", "E01"} & {p, q}) and p != q),
    ("W01&E01", lambda p, q: {p, q} == {"W01", "E01"}),
    ("W01,E01&", lambda p, q: {p, q} == {"W01", "E01"}),
    ("W01&&", lambda p, q: p == q == "W01"),
    ("W01,E01&&", lambda p, q: {p, q} <= {"W01", "E01"}),
    ("W01&*", lambda p, q: "W01" in (p, q) and p != q),
    ("W01&&*", lambda p, q: "W01" in (p, q)),
    ("*&&*", lambda p, q: True),
    ("*&", lambda p, q: p != q),
    ("*&&&", lambda p, q: p == q),
    ("W01&&&", lambda p, q: p == q == "W01"),
    ("!W01", lambda p, q: "W01" not in (p, q)),
    ("*&;!W01&E01", lambda p, q: p != q and {p, q} != {"W01", "E01"}),
    ("N0*&&&", lambda p, q: p == q and p.startswith("N0")),
])
def test_antenna_semantics(parts, no_compute, antenna, keep):
    ds = parts[0]
    (out, *_) = select([ds], Selection(antenna=antenna))
    expected = _expected_pairs(ds, keep)
    assert expected and _pairs(out) == expected


def test_antenna_id_ranges(parts, no_compute):
    ds = parts[0]
    names = list(_coord(ds, S.ANTENNA_NAME))
    (out,) = select([ds], Selection(antenna="0~1&2"))
    expected = _expected_pairs(ds, lambda p, q: {p, q} in ({names[0], names[2]},
                                                          {names[1], names[2]}))
    assert len(expected) == 2 and _pairs(out) == expected


def test_integer_antenna_matches_name_first_then_id(parts):
    ds = parts[0]
    n = ds.sizes[S.ANTENNA]
    renamed = ds.assign_coords({S.ANTENNA_NAME: (S.ANTENNA, [str(n - 1 - i) for i in range(n)])})
    (out,) = select([renamed], Selection(antenna="1&&&"))
    assert _pairs(out) == [("1", "1")]
    assert _coord(out, S.BASELINE_ANTENNA1).tolist() == [n - 2]
    (out,) = select([ds], Selection(antenna="1&&&"))   # no antenna is named "1": an id
    assert _coord(out, S.BASELINE_ANTENNA1).tolist() == [1]


def test_station_fallback(parts):
    ds = parts[0]
    stations = [f"PAD{i}" for i in range(ds.sizes[S.ANTENNA])]
    ds = ds.assign_coords({S.ANTENNA_STATION: (S.ANTENNA, stations)})
    (out,) = select([ds], Selection(antenna="PAD2&&&"))
    assert _coord(out, S.BASELINE_ANTENNA1).tolist() == [2]


# --- time --------------------------------------------------------------------------------------

def test_timerange_forms(parts, no_compute):
    times = np.unique(np.concatenate([ds[S.TIME].values for ds in parts]))
    t_lo, t_hi = times[2], times[5]
    cases = {
        f"{_casa_time(t_lo)}~{_casa_time(t_hi)}": (times >= t_lo) & (times <= t_hi),
        f"{_casa_time(t_lo, False)}~{_casa_time(t_hi, False)}": (times >= t_lo) & (times <= t_hi),
        f">{_casa_time(t_lo, False)}": times > t_lo,
        f"<{_casa_time(t_hi)}": times < t_hi,
        _casa_time(times[4] + 2.0, False): times == times[4],   # inside one 10 s integration
        f"{_casa_time(t_lo)}+00:{(t_hi - t_lo) // 60:02.0f}:{(t_hi - t_lo) % 60:04.1f}":
            (times >= t_lo) & (times <= t_hi),
    }
    for text, wanted in cases.items():
        out = select(parts, Selection(timerange=text))
        got = np.unique(np.concatenate([ds[S.TIME].values for ds in out]))
        np.testing.assert_array_equal(got, times[wanted], err_msg=text)


def test_time_reference_is_first_time(parts):
    start = min(ds[S.TIME].values.min() for ds in parts)
    assert first_time(parts) == start


# --- uv distance -------------------------------------------------------------------------------

def _uvdist(ds):
    uvw = ds[S.UVW].values
    return np.hypot(uvw[..., 0], uvw[..., 1])


def test_uvrange_metres(parts, no_compute):
    ds = parts[4]
    with dask.config.set(scheduler="sync"):
        uvd = _uvdist(ds)
        orig = ds.compute()
    values = np.unique(uvd[uvd > 0])
    threshold = (values[len(values) // 2] + values[len(values) // 2 + 1]) / 2
    (out,) = select([ds], Selection(uvrange=f"0~{threshold}m"))
    assert isinstance(out[S.FLAG].data, da.Array)
    inside = uvd <= threshold
    assert inside.any() and (~inside).any()
    with dask.config.set(scheduler="sync"):
        got = out.compute()
    np.testing.assert_array_equal(got[S.FLAG].values,
                                  orig[S.FLAG].values | ~inside[:, :, None, None])
    np.testing.assert_array_equal(got[S.ROW_PRESENT].values, orig[S.ROW_PRESENT].values & inside)
    np.testing.assert_array_equal(got[S.WEIGHT].values,
                                  np.where(inside[:, :, None, None], orig[S.WEIGHT].values, 0))
    np.testing.assert_array_equal(got[S.VISIBILITY].values,
                                  np.where(inside[:, :, None, None], orig[S.VISIBILITY].values, 0))
    assert got[S.VISIBILITY].dtype == np.complex64 and got[S.WEIGHT].dtype == np.float32


def test_uvrange_klambda_per_channel(parts, no_compute):
    ds = parts[4]
    with dask.config.set(scheduler="sync"):
        uvd = _uvdist(ds)
        orig = ds.compute()
    freq = ds[S.FREQUENCY].values
    lam = uvd[:, :, None] * freq[None, None, :] / 299792458.0
    # a threshold falling between the channels of the longest row, so that row is split
    row = np.unravel_index(np.argmax(uvd), uvd.shape)
    threshold = (lam[row][3] + lam[row][4]) / 2 / 1e3
    (out,) = select([ds], Selection(uvrange=f"<{threshold}klambda"))
    inside = lam < threshold * 1e3
    assert inside[row].any() and not inside[row].all()
    with dask.config.set(scheduler="sync"):
        got = out.compute()
    np.testing.assert_array_equal(got[S.FLAG].values, orig[S.FLAG].values | ~inside[..., None])
    np.testing.assert_array_equal(got[S.ROW_PRESENT].values,
                                  orig[S.ROW_PRESENT].values & inside.any(axis=-1))
    # a partly selected row keeps its data; only whole rows outside are zeroed
    np.testing.assert_array_equal(got[S.VISIBILITY].values[row], orig[S.VISIBILITY].values[row])


def test_uvrange_needs_uvw(parts):
    with pytest.raises(SelectionError, match="uvrange needs UVW"):
        select([parts[0].drop_vars(S.UVW)], Selection(uvrange="<1km"))


def test_uvrange_beyond_longest_baseline(parts):
    with pytest.raises(SelectionError, match=r"uvrange='>50km' selects no data"):
        select(parts, Selection(uvrange=">50km"))


# --- the mask for the manual flagger and laziness ----------------------------------------------

def test_selection_mask_matches_numpy(parts, no_compute):
    ds = parts[4]
    times = ds[S.TIME].values
    names = _coord(ds, S.ANTENNA_NAME)
    with dask.config.set(scheduler="sync"):
        uvd = _uvdist(ds)
    threshold = np.median(uvd[uvd > 0]) * ds[S.FREQUENCY].values.mean() / SPEED_OF_LIGHT / 1e3
    reference = first_time(parts)
    sel = Selection(spw="*:1~5^2", correlation="RR,LL", antenna="W01;!E01",
                    timerange=f"{_casa_time(times[1], False)}~{_casa_time(times[2], False)}",
                    uvrange=f">{threshold}klambda", field="STAR")
    mask = selection_mask(ds, sel, reference_time=reference)
    assert isinstance(mask.data, da.Array)
    assert mask.dims == (S.TIME, S.BASELINE, S.FREQUENCY, S.POLARIZATION)
    assert mask.data.chunks == ds[S.FLAG].data.chunks

    t_ok = (times >= times[1]) & (times <= times[2])
    a1, a2 = names[_coord(ds, S.BASELINE_ANTENNA1)], names[_coord(ds, S.BASELINE_ANTENNA2)]
    b_ok = ((a1 == "W01") | (a2 == "W01")) & (a1 != a2) & (a1 != "E01") & (a2 != "E01")
    f_ok = np.isin(np.arange(ds.sizes[S.FREQUENCY]), [1, 3, 5])
    p_ok = np.isin(_coord(ds, S.POLARIZATION), ["RR", "LL"])
    uv_ok = uvd[:, :, None] * ds[S.FREQUENCY].values / SPEED_OF_LIGHT > threshold * 1e3
    expected = (t_ok[:, None, None, None] & b_ok[None, :, None, None] & f_ok[None, None, :, None]
                & p_ok[None, None, None, :] & uv_ok[..., None])
    assert expected.any() and not expected.all()
    with dask.config.set(scheduler="sync"):
        np.testing.assert_array_equal(mask.values, expected)


def test_selection_mask_unselected_partition_is_false(parts, no_compute):
    mask = selection_mask(parts[0], Selection(field="STAR"))
    with dask.config.set(scheduler="sync"):
        assert not mask.values.any()
    mask = selection_mask(parts[0], Selection())
    with dask.config.set(scheduler="sync"):
        assert mask.values.all()


def test_full_selection_builds_without_computing(parts, no_compute):
    times = np.unique(np.concatenate([ds[S.TIME].values for ds in parts]))
    sel = Selection(field="0~2", scan="<4", spw="*:0~6", antenna="*&;!N01",
                    uvrange="0~2km", timerange=f">{_casa_time(times[0], False)}",
                    correlation="RR,LL", intent="*_*")
    out = select(parts, sel)
    assert out
    for ds in out:
        for name in (S.VISIBILITY, S.FLAG, S.WEIGHT, S.UVW, S.ROW_PRESENT):
            assert isinstance(ds[name].data, da.Array), name
        assert ds.sizes[S.FREQUENCY] == 7 and ds.sizes[S.POLARIZATION] == 2
        assert times[0] not in ds[S.TIME].values


# --- errors ------------------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs, message", [
    (dict(field="NOPE"), "field 'NOPE' matches no field"),
    (dict(field="7"), "field '7' matches no field"),
    (dict(scan="9"), "scan '9' matches no scan"),
    (dict(spw="5:1~2"), "spw '5' matches no spectral window"),
    (dict(antenna="W01&Z99"), "antenna 'Z99' matches no antenna"),
    (dict(correlation="XX"), "correlation 'XX' is not in the data"),
    (dict(intent="POINTING"), "intent 'POINTING' matches no scan intent"),
    (dict(field="0", scan="2"), "scan='2' selects no data together with field='0'"),
    (dict(spw="0:100~200"), "spw='0:100~200' selects no data"),
    (dict(spw="2~5"), "spw='2~5' selects no data"),
    (dict(scan=">3"), "scan='>3' selects no data"),
    (dict(antenna="E01&&&", field="STAR", timerange="00:00~00:01"),
     "timerange='00:00~00:01' selects no data together with field='STAR', antenna='E01&&&'"),
])
def test_errors_name_the_culprit(parts, kwargs, message):
    with pytest.raises(SelectionError) as info:
        select(parts, Selection(**kwargs))
    assert message in str(info.value) and "\n" not in str(info.value)


def test_check_selection_accepts_ranges_that_reach_beyond_the_data(parts):
    check_selection(parts, Selection(scan="1~99", field="0~9", spw="*"))


def test_no_data(parts):
    with pytest.raises(SelectionError, match="no data to select from"):
        select([], Selection(field="0"))


# --- on the CASA-written reference MS ----------------------------------------------------------

VLA_SMALL = "../shared/data/vla_small/vla_small.ms"


@pytest.fixture(scope="module")
def vla_small():
    import os

    path = os.path.join(os.path.dirname(__file__), "..", "..", VLA_SMALL)
    if not os.path.isdir(path):
        pytest.skip(f"reference data {VLA_SMALL} is not present")
    ms = pytest.importorskip("radiocal.ms.read")
    return ms.read_ms(path)


def test_vla_small_selection(vla_small):
    plain = [ds.compute() for ds in vla_small[:2]]
    ref = plain[1]
    t = ref[S.TIME].values
    names = ref[S.ANTENNA_NAME].values
    a1, a2 = names[ref[S.BASELINE_ANTENNA1].values], names[ref[S.BASELINE_ANTENNA2].values]
    t_ok = (t >= t[1]) & (t <= t[-2])
    ref = ref.isel({S.TIME: t_ok, S.BASELINE: (a1 == "W01") | (a2 == "W01"),
                    S.FREQUENCY: slice(4, 12), S.POLARIZATION: [0, 3]})
    lam = _uvdist(ref)[:, :, None] * ref[S.FREQUENCY].values / 299792458.0
    threshold = round(float(np.median(lam)) / 1e3, 2)   # klambda, splits the cells
    inside = lam < threshold * 1e3
    assert inside.any() and not inside.all()

    with dask.config.set(scheduler=_refuse):
        sel = Selection(field=plain[1].attrs[S.ATTR_FIELD_NAME], spw="0:4~11",
                        antenna="W01&&*", uvrange=f"<{threshold}klambda", correlation="RR,LL",
                        timerange=f"{_casa_time(t[1])}~{_casa_time(t[-2], False)}")
        (out,) = select(vla_small, sel)
    assert out.attrs[S.ATTR_PARTITION] == plain[1].attrs[S.ATTR_PARTITION]
    got = out.compute()
    np.testing.assert_array_equal(got[S.TIME].values, ref[S.TIME].values)
    np.testing.assert_array_equal(got[S.FLAG].values, ref[S.FLAG].values | ~inside[..., None])
    np.testing.assert_array_equal(got[S.ROW_PRESENT].values,
                                  ref[S.ROW_PRESENT].values & inside.any(axis=-1))


@pytest.mark.parametrize("uvrange", ["0~85m", "<0.375klambda", ">0.7klambda,<10m", ">0.75klambda"])
def test_uv_cut_of_stored_flags_is_made_where_they_are_read(parts, tmp_path, uvrange):
    """A store's flags with a uv cut are read with the cut made inside the reading task (no
    computed array that a solve would take from a rechunk), and equal the cut made on the
    lazy expression, whatever region a task reads."""
    from radiocal.select.selection import flag_outside_uv
    from radiocal.store import rawchunks
    from radiocal.store.zarr_store import open_store, write_store

    rng = np.random.default_rng(5)
    parts = [ds.assign({S.FLAG: ds[S.FLAG].copy(data=da.from_array(
                 rng.random(ds[S.FLAG].shape) < 0.2, chunks=ds[S.FLAG].data.chunks))})
             .assign_attrs(partition=f"p{i}") for i, ds in enumerate(parts)]
    stored = open_store(write_store(parts, tmp_path / "s.zarr"))
    cut_cells = kept_cells = 0
    for ds, memory in zip(stored, parts):
        with dask.config.set(scheduler="sync"):
            flag = memory[S.FLAG].values
            expected = (memory[S.FLAG] | ~resolve.uv_mask(memory, syntax.parse_uvrange(uvrange)))
            expected = expected.transpose(*S.VIS_DIMS).values
        cut_cells += int((expected & ~flag).sum())
        kept_cells += int((~expected).sum())
        cut = flag_outside_uv(ds, uvrange)[S.FLAG].data
        regions = rawchunks.chunk_files(cut)
        assert isinstance(regions, resolve.OutsideUvFlags)
        with dask.config.set(scheduler="sync"):
            np.testing.assert_array_equal(cut.compute(), expected)
        # a region across stored chunks and part of the band, as a solve's block reads it
        nt, nf = expected.shape[0], expected.shape[2]
        region = (slice(1, nt), slice(1, 5), slice(2, nf - 1), slice(None))
        np.testing.assert_array_equal(regions[region], expected[region])
    assert cut_cells and kept_cells, "the range cuts nothing or everything"
