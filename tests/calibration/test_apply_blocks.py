"""Each time block of an applied table carries only the solutions that can reach it: the graph
does not grow with the table, and the Jones terms are bit for bit those of the whole table."""

import pickle

import numpy as np
import pytest

from .conftest import make_partition
from .test_apply import _table
from radiocal.calibration import jones as J
from radiocal.calibration.jones import ApplyTable, table_jones
from radiocal.store import schema as S

# the hand-made tables are complex; a delay table stores their real part
pytestmark = pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
T0, DT = 5e9, 10.0
CASES = [("G", "linear", False), ("G", "nearest", False), ("G", "linear", True),
         ("G", "nearest", True), ("G", "hermite", False), ("K", "linear", False),
         ("K", "nearest", False), ("K", "hermite", False)]


def _calibrator_table(rng, scans, cal_type="G", per_scan=5, nant=4):
    """Per-integration solutions of calibrator scans starting at integrations ``scans``, some
    flagged, some sharing a time (two fields' solutions merged into one table)."""
    index = np.concatenate([s + np.arange(per_scan) for s in scans])
    times = T0 + DT * index
    times[3] = times[2]                                    # a tie
    n = times.size
    if cal_type == "K":
        values = rng.normal(scale=1e-9, size=(n, nant, 1, 2))
    else:
        values = (rng.uniform(0.5, 1.5, (n, nant, 1, 2))
                  * np.exp(1j * rng.uniform(-np.pi, np.pi, (n, nant, 1, 2))))
    flag = rng.random(values.shape) < 0.3
    flag[:, 0] = False
    flag[:, 1] = True                                      # an antenna without solutions
    flag[per_scan:2 * per_scan, 2] = True                  # a scan without them on another
    return _table(values, times=times, fields=np.zeros(n, int), flag=flag, cal_type=cal_type,
                  scans=np.repeat(np.arange(len(scans)), per_scan))


def _target(nt=60, time_chunk=4, nant=4):
    # the data lie between and across the calibrator scans, with block edges on solutions
    return make_partition(np.ones((nt, nant, 3, 2)), t0=T0, dt=DT, time_chunk=time_chunk)


def _whole(table, valid, sol_time, edges, times, interp, propagate, delay):
    """The unsliced path: every block gets the whole table."""
    if interp == "hermite" and not delay:
        return [J._Solutions(nodes=table[0], present=table[1])] * (len(edges) - 1)
    return [J._Solutions(values=table, valid=valid, sol_time=sol_time)] * (len(edges) - 1)


@pytest.mark.parametrize("cal_type,interp,propagate", CASES)
def test_blocks_give_what_the_whole_table_gives(rng, monkeypatch, cal_type, interp, propagate):
    table = _calibrator_table(rng, [0, 12, 13 + 5, 40, 58], cal_type)
    ds = _target()
    term = ApplyTable(table, interp=interp, propagate_flags=propagate)
    sliced = table_jones(ds, term).compute()
    monkeypatch.setattr(J, "_block_solutions", _whole)
    whole = table_jones(ds, term).compute()
    assert np.isnan(whole).any() and np.isfinite(whole).any()
    np.testing.assert_array_equal(sliced, whole)


def _graph_bytes(array):
    return len(pickle.dumps(dict(array.__dask_graph__()), protocol=5))


@pytest.mark.parametrize("cal_type,interp,propagate", CASES)
def test_graph_does_not_grow_with_the_table(rng, cal_type, interp, propagate):
    """Twenty times the calibrator scans, all but one before or after the data: the same
    graph size (the whole table in every block made it grow as blocks x solutions)."""
    ds = _target(nt=40, time_chunk=4).isel({S.TIME: slice(20, 40)})
    near = [10, 30, 45]
    far = [-1000 + 20 * k for k in range(30)] + [100 + 20 * k for k in range(30)]
    sizes = []
    for scans in (near, sorted(near + far)):
        table = _calibrator_table(np.random.default_rng(1), scans, cal_type)
        term = ApplyTable(table, interp=interp, propagate_flags=propagate)
        sizes.append(_graph_bytes(table_jones(ds, term)))
    assert sizes[1] < 1.1 * sizes[0], sizes
