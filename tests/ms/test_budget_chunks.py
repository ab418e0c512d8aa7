"""The chunk budget in reading, joining and storing: a tiny budget changes chunks, never values."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import xarray as xr

from radiocal import budget
from radiocal.store import schema as S
from radiocal.ms.read import read_ms
from radiocal.ms.meta import read_table
from radiocal.store.zarr_store import open_store, write_store
from radiocal.simulate import SimConfig, lwa_files, simulate_ms
from radiocal.simulate.chunks import oversized_chunks

TINY = 64 * 2**10
LARGE = 64 * 2**20


@pytest.mark.parametrize("shape", list(itertools.product((1, 7), (1, 3, 50), (1, 4, 300), (1, 2, 4))))
@pytest.mark.parametrize("nbytes", [8, 100, 4096, TINY])
def test_visibility_chunks_never_exceed_the_budget_and_prefer_whole_integrations(shape, nbytes):
    ntime, nbl, nchan, npol = shape
    t, b, f = budget.visibility_chunks(ntime, nbl, nchan, npol, nbytes)
    cell = npol * budget.VISIBILITY_ITEMSIZE
    assert 1 <= t <= ntime and 1 <= b <= nbl and 1 <= f <= nchan
    assert t * b * f * cell <= max(nbytes, cell)      # one cell's polarizations: the floor
    if nbl * nchan * cell <= nbytes:      # an integration fits: whole ones, as many as fit
        assert (b, f) == (nbl, nchan) and (t == ntime or (t + 1) * nbl * nchan * cell > nbytes)
    elif nchan * cell <= nbytes:          # else whole spectra of as many baselines as fit
        assert t == 1 and f == nchan and (b + 1) * nchan * cell > nbytes


@pytest.fixture(scope="module")
def gappy_ms(tmp_path_factory):
    """12 antennas x 64 channels (135 kB an integration): the first integration lacks the
    baselines of antennas 0-3 (a whole 64 kB chunk of baselines), and one baseline is never there."""
    base = tmp_path_factory.mktemp("budget")
    full = base / "full.ms"
    simulate_ms(full, SimConfig(seed=5, n_antennas=12, spws=((1.3e9, 1e6, 64),),
                                schedule=((0, 3), (1, 2), (2, 3))))
    gappy = base / "gappy.ms"
    with read_table(str(full)) as t:
        first = float(t.getcol("TIME").min())
        keep = t.query(f"NOT (TIME == {first!r} AND ANTENNA1 <= 3) AND NOT (ANTENNA1 == 2 AND ANTENNA2 == 4)")
        keep.copy(str(gappy), deep=True).close()
        keep.close()
    return str(gappy)


def _assert_same(tiny, large):
    assert len(tiny) == len(large)
    for a, b in zip(tiny, large):
        xr.testing.assert_identical(a.compute(), b.compute())


def test_tiny_budget_reads_identical_values_in_chunks_within_it(gappy_ms):
    tiny, large = read_ms(gappy_ms, chunk_bytes=TINY), read_ms(gappy_ms, chunk_bytes=LARGE)
    assert oversized_chunks(tiny, TINY) == []
    vis = tiny[0][S.VISIBILITY]
    per_time = vis[0].size * budget.VISIBILITY_ITEMSIZE
    assert per_time > TINY and len(vis.chunks[1]) > 1   # baselines split: the tiny budget bites
    assert not tiny[0][S.ROW_PRESENT].values[0, :vis.chunks[1][0]].any()   # a whole block absent
    _assert_same(tiny, large)


def test_store_keeps_the_budget_chunks_and_the_values(gappy_ms, tmp_path):
    with budget.chunk_budget(TINY):
        datasets = read_ms(gappy_ms)
    store = write_store(datasets, tmp_path / "tiny.zarr")
    reopened = open_store(store)
    assert oversized_chunks(reopened, TINY) == []
    assert reopened[0][S.VISIBILITY].chunks == datasets[0][S.VISIBILITY].chunks
    _assert_same(reopened, read_ms(gappy_ms, chunk_bytes=LARGE))


def test_joined_sub_bands_are_read_in_chunks_that_line_up(tmp_path):
    """4 sub-bands x 2 integrations of 10 antennas: one integration of the joined band (55
    baselines x 32 channels x 4 correlations, 56 kB) is over a 16 kB budget, so the files are read
    baseline-split the way the joined partition is chunked; values are those of a large budget."""
    config = SimConfig.lwa(n_subbands=4, n_channels=8, n_integrations=2, n_antennas=10)
    lwa_files(tmp_path / "lwa", config)
    nbytes = 16 * 2**10
    tiny, large = read_ms(tmp_path / "lwa", chunk_bytes=nbytes), read_ms(tmp_path / "lwa", chunk_bytes=LARGE)
    assert len(tiny) == 1 and oversized_chunks(tiny, nbytes) == []
    vis = tiny[0][S.VISIBILITY]
    t, b, f = budget.visibility_chunks(*vis.shape, nbytes)
    assert vis.chunks[:3] == tuple(budget.chunk_sizes(n, c) for n, c in zip(vis.shape, (t, b, f)))
    assert b < vis.shape[1] and f == vis.shape[2]
    _assert_same(tiny, large)


def test_cli_chunk_mb_sets_the_store_chunks(gappy_ms, tmp_path, run_cli):
    small, default = tmp_path / "small.zarr", tmp_path / "default.zarr"
    result = run_cli("--scheduler", "threads", "--chunk-mb", "0.0625", "convert", gappy_ms, "-o", small)
    assert result.exit_code == 0, result.err
    assert run_cli("--scheduler", "threads", "convert", gappy_ms, "-o", default).exit_code == 0
    assert oversized_chunks(open_store(small), TINY) == []
    assert open_store(small)[0][S.VISIBILITY].chunks != open_store(default)[0][S.VISIBILITY].chunks
    _assert_same(open_store(small), open_store(default))
    bad = run_cli("--chunk-mb", "0", "convert", gappy_ms, "-o", tmp_path / "zero.zarr")
    assert bad.exit_code != 0 and "chunk-mb" in bad.err and "Traceback" not in bad.err


def test_export_with_a_tiny_budget_writes_the_same_rows(gappy_ms, tmp_path):
    """Export streams baseline-split chunks in small batches: the rows and their order are those
    of a large budget, column for column."""
    from radiocal.ms.write import write_ms

    with budget.chunk_budget(TINY):
        write_ms(read_ms(gappy_ms), tmp_path / "tiny.ms")
    with budget.chunk_budget(LARGE):
        write_ms(read_ms(gappy_ms), tmp_path / "large.ms")
    with read_table(str(tmp_path / "tiny.ms")) as tiny, read_table(str(tmp_path / "large.ms")) as large:
        assert tiny.nrows() == large.nrows() > 0
        for column in ("TIME", "ANTENNA1", "ANTENNA2", "DATA", "FLAG", "WEIGHT", "UVW", "SCAN_NUMBER"):
            np.testing.assert_array_equal(tiny.getcol(column), large.getcol(column), err_msg=column)
