"""CASA calibration tables: read CASA's own, write ours in CASA's layout, apply them as CASA did."""

import os

import numpy as np
import pytest
import xarray as xr

from .conftest import make_partition, random_gains
from radiocal.calibration.config import SolveOptions
from radiocal.calibration.dataset import solve
from radiocal.calibration.jones import ApplyTable, apply
from radiocal.ms import casa_caltables
from radiocal.store import caltables as C

ct = pytest.importorskip("casacore.tables")

REF = os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "data", "vla_small")
CASA = os.path.join(REF, "casa_reference")
needs_reference = pytest.mark.skipif(not os.path.isdir(CASA),
                                     reason="../shared/data/vla_small/casa_reference is absent")


@needs_reference
@pytest.mark.parametrize("name,cal_type,shape", [
    ("bp.B", "B", (1, 10, 32, 2)), ("int.G", "G", (30, 10, 1, 2)),
    ("inf.G", "G", (4, 10, 1, 2)), ("flux.G", "G", (4, 10, 1, 2)),
    ("bpphase.G", "G", (12, 10, 1, 2)), ("amp.G", "G", (4, 10, 1, 2)),
])
def test_read_casa_tables(name, cal_type, shape):
    table = casa_caltables.read_casa_table(os.path.join(CASA, name))
    ds = table[0]
    assert ds.attrs[C.ATTR_CAL_TYPE] == cal_type
    assert ds[C.GAIN].shape == shape
    with ct.table(os.path.join(CASA, name), ack=False) as t:
        cparam = t.getcol("CPARAM")
        ant = t.getcol("ANTENNA1")
        flag = t.getcol("FLAG")
    # every CASA row is where the layout says: slot-major, antenna-minor
    np.testing.assert_array_equal(ds[C.GAIN].values.reshape(-1, *cparam.shape[1:]), cparam)
    np.testing.assert_array_equal(np.tile(np.arange(10), shape[0]), ant)
    np.testing.assert_array_equal(ds[C.SOL_FLAG].values.reshape(flag.shape), flag)
    assert list(ds.attrs[C.ATTR_FIELD_NAMES]) == ["J1331+3030", "J1407+2827", "STAR"]


@needs_reference
@pytest.mark.parametrize("name", ["bp.B", "int.G"])
def test_written_table_opens_like_casas(tmp_path, name):
    table = casa_caltables.read_casa_table(os.path.join(CASA, name))
    out = str(tmp_path / name)
    casa_caltables.write_casa_table(table, out, ms_name="cal.ms")
    with ct.table(os.path.join(CASA, name), ack=False) as a, ct.table(out, ack=False) as b:
        assert a.colnames() == b.colnames()
        desc_a, desc_b = a.getdesc(), b.getdesc()
        for col in a.colnames():
            for key in ("valueType", "ndim", "option", "keywords", "dataManagerType"):
                assert desc_a[col].get(key) == desc_b[col].get(key), (col, key)
            if col != "WEIGHT":      # CASA leaves WEIGHT cells undefined
                np.testing.assert_array_equal(a.getcol(col), b.getcol(col))
        for key in ("ParType", "VisCal", "MSName"):
            assert a.getkeyword(key) == b.getkeyword(key)
        for sub in ("ANTENNA", "FIELD", "SPECTRAL_WINDOW", "HISTORY", "OBSERVATION"):
            with ct.table(os.path.join(CASA, name, sub), ack=False) as sa, \
                    ct.table(os.path.join(out, sub), ack=False) as sb:
                assert sorted(sa.colnames()) == sorted(sb.colnames())
                assert sa.nrows() == sb.nrows()
                for col in ("NAME", "CHAN_FREQ", "POSITION"):
                    if col in sa.colnames() and sa.nrows():
                        np.testing.assert_array_equal(sa.getcol(col), sb.getcol(col))
    back = casa_caltables.read_casa_table(out)
    xr.testing.assert_equal(table[0], back[0])


@pytest.mark.parametrize("cal_type", ["G", "B", "K", "T"])
def test_our_tables_round_trip_through_casa_format(tmp_path, rng, cal_type):
    nf = 16
    g = random_gains(rng, 3, 5, nf, 2 if cal_type != "T" else 1)
    if cal_type == "T":
        g = np.concatenate([g, g], axis=-1)
    ds = make_partition(g, noise=0.02, seed=2)
    table = solve([ds], cal_type, SolveOptions(solint="inf", refant="ea01"))
    casa_caltables.write_casa_table(table, str(tmp_path / "t.tab"))
    back = casa_caltables.read_casa_table(str(tmp_path / "t.tab"))
    var = C.DELAY if cal_type == "K" else C.GAIN
    np.testing.assert_allclose(back[0][var].values, table[0][var].values,
                               rtol=1e-6, atol=1e-15)
    np.testing.assert_array_equal(back[0][C.SOL_FLAG].values, table[0][C.SOL_FLAG].values)
    assert list(back[0][C.HAND].values) == list(table[0][C.HAND].values)
    if cal_type == "K":
        assert back[0].attrs[C.ATTR_DELAY_REF] == table[0].attrs[C.ATTR_DELAY_REF]
    # a zarr round trip keeps everything
    C.write_table_zarr(table, tmp_path / "t.zarr")
    xr.testing.assert_identical(C.read_table_zarr(tmp_path / "t.zarr")[0], table[0])
    # and plain xarray, without radiocal, sees the same coordinates (antenna table, times)
    spw = next(p for p in (tmp_path / "t.zarr").iterdir() if p.is_dir())
    plain = xr.open_zarr(spw, consolidated=False).load()
    assert sorted(plain.coords) == sorted(table[0].coords)
    for name in table[0].coords:
        np.testing.assert_array_equal(plain[name].values, table[0][name].values)


@pytest.mark.parametrize("cal_type", ["G", "B", "K"])
def test_tables_keep_the_reference_antenna_used(tmp_path, rng, cal_type):
    """CASA keeps the reference antenna of each solution in ANTENNA2; so do we, per cell,
    including the fallback when the preferred antenna has no data in a cell."""
    g = random_gains(rng, 4, 6, 8, 2, constant_time=False)
    ds = make_partition(g, noise=0.02, seed=5)
    # ea03 (index 2) dead in the last two integrations: those cells fall back on ea05
    dead = ((ds["baseline_antenna1"] == 2) | (ds["baseline_antenna2"] == 2)) & (ds["time"] >= ds["time"][2])
    ds = ds.assign(FLAG=ds["FLAG"] | dead)
    table = solve([ds], cal_type, SolveOptions(solint="int", refant="ea03,ea05", minblperant=3))
    expected = [2, 2, 4, 4]
    np.testing.assert_array_equal(table[0][C.SOL_REFANT].values, expected)
    # the reference really is that antenna: zero phase (a delay of zero for K)
    var = C.DELAY if cal_type == "K" else C.GAIN
    for cell, ref in enumerate(expected):
        np.testing.assert_allclose(np.angle(table[0][var].values[cell, ref]) if cal_type != "K"
                                   else table[0][var].values[cell, ref], 0.0, atol=1e-9)
    casa_caltables.write_casa_table(table, str(tmp_path / "t.tab"))
    with ct.table(str(tmp_path / "t.tab"), ack=False) as t:
        np.testing.assert_array_equal(t.getcol("ANTENNA2"), np.repeat(expected, 6))
    back = casa_caltables.read_casa_table(str(tmp_path / "t.tab"))
    np.testing.assert_array_equal(back[0][C.SOL_REFANT].values, expected)


def test_solve_step_writes_the_reference_antenna_used_to_its_casa_table(tmp_path, rng):
    """End to end through the library face (radiocal.solve, the solve step): the CASA table it
    writes beside the zarr one carries, per solution, the reference antenna actually used."""
    import radiocal

    g = random_gains(rng, 4, 6, 8, 2, constant_time=False)
    ds = make_partition(g, noise=0.02, seed=5)
    dead = ((ds["baseline_antenna1"] == 2) | (ds["baseline_antenna2"] == 2)) & (ds["time"] >= ds["time"][2])
    ds = ds.assign(FLAG=ds["FLAG"] | dead)
    radiocal.solve([ds], kind="gain", output="g", solint="int", refant="ea03,ea05",
                   minblperant=3, outdir=tmp_path)
    zarr = C.read_table_zarr(tmp_path / C.CALTABLES_GROUP / "g.zarr")
    np.testing.assert_array_equal(zarr[0][C.SOL_REFANT].values, [2, 2, 4, 4])
    with ct.table(str(tmp_path / C.CALTABLES_GROUP / "g.G"), ack=False) as t:
        np.testing.assert_array_equal(t.getcol("ANTENNA2"), np.repeat([2, 2, 4, 4], 6))


@needs_reference
def test_apply_casa_tables_matches_casa_corrected_data():
    """bp.B + int.G (own phases) + flux.G for calibrators; the phase calibrator's inf.G and
    flux.G (gainfield) for the target; linear in time; compared with CASA's cal.ms.

    cal.ms went through ``uvsub`` afterwards (CORRECTED_DATA -= MODEL_DATA), so the model is
    added back before comparing.
    """
    ms = pytest.importorskip("radiocal.ms.read")
    datasets = ms.read_ms(os.path.join(REF, "vla_small.ms"))
    bp = casa_caltables.read_casa_table(os.path.join(CASA, "bp.B"))
    intg = casa_caltables.read_casa_table(os.path.join(CASA, "int.G"))
    inf = casa_caltables.read_casa_table(os.path.join(CASA, "inf.G"))
    flux = casa_caltables.read_casa_table(os.path.join(CASA, "flux.G"))

    def chain(ds):
        if ds.attrs["field_name"] == "STAR":
            return [ApplyTable(bp), ApplyTable(inf, gainfield="J1407+2827"),
                    ApplyTable(flux, gainfield="J1407+2827")]
        return [ApplyTable(bp), ApplyTable(intg, propagate_flags=True), ApplyTable(flux)]

    out = apply(datasets, chain)
    with ct.table(os.path.join(CASA, "cal.ms"), ack=False) as t:
        cols = {c: t.getcol(c) for c in ("TIME", "FIELD_ID", "ANTENNA1", "ANTENNA2", "FLAG")}
        casa = t.getcol("CORRECTED_DATA") + t.getcol("MODEL_DATA")
    compared = 0
    for ds in out:
        a1 = ds["baseline_antenna1"].values
        a2 = ds["baseline_antenna2"].values
        times = ds["time"].values
        rows = np.flatnonzero((cols["FIELD_ID"] == ds.attrs["field_id"])
                              & np.isin(cols["TIME"], times))
        ti = np.searchsorted(times, cols["TIME"][rows])
        lookup = {(int(x), int(y)): i for i, (x, y) in enumerate(zip(a1, a2))}
        bi = np.array([lookup[(int(x), int(y))] for x, y in
                       zip(cols["ANTENNA1"][rows], cols["ANTENNA2"][rows])])
        ours = ds["VISIBILITY_CORRECTED"].values[ti, bi]
        our_flag = ds["FLAG"].values[ti, bi]
        np.testing.assert_array_equal(our_flag, cols["FLAG"][rows])
        good = ~our_flag
        theirs = casa[rows]
        typical = np.median(np.abs(theirs[..., [0, -1]][good[..., [0, -1]]]))
        scale = np.maximum(np.abs(theirs), typical)
        rel = np.abs(ours - theirs)[good] / scale[good]
        assert rel.max() < 1e-5, (ds.attrs["partition"], rel.max())
        compared += good.sum()
    # all but the dead antenna's baselines (9 of 45) and a few flagged integrations
    assert compared > 0.75 * casa.size
