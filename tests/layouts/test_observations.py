"""Solves keep OBSERVATION_IDs apart, as CASA does: in a concatenation of two observations that
share their FIELD rows, a bandpass with ``combine="scan"`` is solved once per observation (each
against its own injected gains), and only ``combine`` with ``obs`` averages across them."""

from __future__ import annotations

import numpy as np
import pytest

from radiocal.calibration.config import SolveOptions
from radiocal.calibration.dataset import solve
from radiocal.store import caltables as C
from radiocal.store import schema as S

from . import variants as V


@pytest.fixture(scope="module")
def concat(tmp_path_factory):
    return V.steady_concat(tmp_path_factory.mktemp("obs"), "two_obs")


def _fluxcal(concat):
    parts = V.fluxcal_parts(concat)
    assert sorted(ds.attrs[S.ATTR_SCAN] for ds in parts) == [1, 3, 4, 6]
    return parts


def _referenced(jones):
    return jones * np.exp(-1j * np.angle(jones[:, :1]))


def test_bandpass_is_solved_per_observation(concat):
    parts = _fluxcal(concat)
    assert {int(o) for ds in parts for o in ds[S.OBSERVATION_ID].values} == {0, 1}
    (table,) = solve(parts, "B", SolveOptions(solint="inf", combine="scan", refant="0"),
                     model=V.STEADY_FLUXCAL)
    assert table[C.SOL_OBS].values.tolist() == [0, 1]
    assert table[C.SOL_SCAN].values.tolist() == [1, 4]
    assert not table[C.SOL_FLAG].values.any()
    for row, truth in enumerate(concat.truth.observations):
        ds = next(p for p in parts if int(p[S.OBSERVATION_ID].values[0]) == row)
        expected = _referenced(truth.jones(ds)[:1].transpose(0, 1, 3, 2))[0]  # (ant, freq, hand)
        got = table[C.GAIN].values[row]
        phase = np.degrees(np.abs(np.angle(got * np.conj(expected))))
        assert phase.max() < 1.0, (row, phase.max())
        np.testing.assert_allclose(np.abs(got), np.abs(expected), rtol=0.02)


def test_combine_obs_averages_across_observations(concat):
    parts = _fluxcal(concat)
    (table,) = solve(parts, "G", SolveOptions(solint="inf", combine="scan,obs", refant="0"),
                     model=V.STEADY_FLUXCAL)
    assert table.sizes[C.SOL_TIME] == 1
    (per_obs,) = solve(parts, "G", SolveOptions(solint="inf", combine="scan", refant="0"),
                       model=V.STEADY_FLUXCAL)
    assert per_obs[C.SOL_OBS].values.tolist() == [0, 1]


def test_solution_intervals_restart_in_each_observation(concat):
    """A duration counts from each observation's first integration (the second starts a
    sidereal day later, 64.1 s past a multiple of 100 s): both days, observed alike, get the
    same cells."""
    parts = _fluxcal(concat)
    (table,) = solve(parts, "G", SolveOptions(solint="100s", combine="scan", refant="0"),
                     model=V.STEADY_FLUXCAL)
    obs, times = table[C.SOL_OBS].values, table[C.SOL_TIME].values
    first, second = times[obs == 0], times[obs == 1]
    assert first.size == second.size == 2
    np.testing.assert_allclose(second - second[0], first - first[0])


def test_casa_table_carries_observation_ids(concat, tmp_path):
    import casacore.tables as ct

    from radiocal.ms.casa_caltables import read_casa_table, write_casa_table

    (table,) = solve(_fluxcal(concat), "B", SolveOptions(solint="inf", combine="scan", refant="0"),
                     model=V.STEADY_FLUXCAL)
    path = tmp_path / "bp.B"
    write_casa_table([table], path)
    with ct.table(str(path), ack=False) as t:
        assert sorted(set(t.getcol("OBSERVATION_ID").tolist())) == [0, 1]
    with ct.table(str(path / "OBSERVATION"), ack=False) as t:
        assert t.nrows() == 2
    (back,) = read_casa_table(path)
    assert back[C.SOL_OBS].values.tolist() == [0, 1]


def test_export_keeps_observation_ids(concat, tmp_path):
    import casacore.tables as ct

    from radiocal.ms.read import read_ms
    from radiocal.ms.write import write_ms

    out = tmp_path / "out.ms"
    write_ms(read_ms(concat.ms), str(out))
    with ct.table(str(concat.ms), ack=False) as a, ct.table(str(out), ack=False) as b:
        assert (np.bincount(a.getcol("OBSERVATION_ID")).tolist()
                == np.bincount(b.getcol("OBSERVATION_ID")).tolist())
    with ct.table(str(out / "OBSERVATION"), ack=False) as t:
        assert t.nrows() == 2
