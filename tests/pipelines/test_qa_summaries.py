"""QA summaries against plain numpy: flagged samples never count, fluxscale read back exactly."""

from __future__ import annotations

import dask
import numpy as np
import pytest
from dask.delayed import Delayed

from radiocal.store import schema as S
from radiocal.qa import summaries as Q


@pytest.fixture(scope="module")
def calibrator():
    from radiocal.simulate import SimConfig, simulate

    sim = simulate(SimConfig(n_antennas=4, spws=((1.3e9, 4e6, 4),), schedule=((0, 3),), seed=2))
    ds = sim.datasets[0].load()
    flag = ds[S.FLAG].values.copy()
    vis = ds[S.VISIBILITY].values.copy()
    flag[1, 2, :, 0] = True
    vis[1, 2, :, 0] = 1e6           # a flagged outlier must not show in any average
    flag[2, 0] = True               # a whole (time, baseline) cell flagged: NaN
    corrected = (vis * 2).astype(np.complex64)
    return ds.assign({S.FLAG: (ds[S.FLAG].dims, flag), S.VISIBILITY: (ds[S.VISIBILITY].dims, vis),
                      S.VISIBILITY_CORRECTED: (ds[S.VISIBILITY].dims, corrected)}).chunk({S.TIME: 1})


def _numpy_means(ds):
    par = Q.parallel_hands(ds)
    assert [str(ds[S.POLARIZATION].values[i]) for i in par] == ["RR", "LL"]
    vis = ds[S.VISIBILITY].values[..., par].astype(np.complex128)
    ok = ~ds[S.FLAG].values[..., par]
    with np.errstate(invalid="ignore"):
        by_time = np.where(ok, vis, 0).sum((2, 3)) / ok.sum((2, 3))
        by_freq = np.where(ok, vis, 0).sum((0, 3)) / ok.sum((0, 3))
    return by_time, by_freq


def test_visibility_summaries_match_numpy(calibrator):
    name = str(calibrator.attrs[S.ATTR_FIELD_NAME])
    (summary,) = Q.visibility_summaries([calibrator], [name])
    by_time, by_freq = _numpy_means(calibrator)
    n_time, n_baseline = by_time.shape
    # a budget above the data: every cell, in (time, baseline) order
    np.testing.assert_allclose(summary.by_time["before"], by_time.ravel(), rtol=1e-6)
    np.testing.assert_allclose(summary.by_frequency["before"], by_freq, rtol=1e-6)
    np.testing.assert_allclose(summary.by_time["after"], 2 * by_time.ravel(), rtol=1e-6)
    np.testing.assert_array_equal(summary.time, np.repeat(calibrator[S.TIME].values, n_baseline))
    assert np.isnan(summary.by_time["before"][2 * n_baseline])       # cell (2, 0) all flagged
    assert np.nanmax(np.abs(summary.by_time["before"])) < 1e3   # the flagged outlier is out
    uvw = calibrator[S.UVW].values
    np.testing.assert_allclose(summary.uvdist, np.hypot(uvw[..., 0], uvw[..., 1]).ravel())
    # the spectrum behind the measured flux: every baseline's time average, summed
    total, count = summary.spectrum["after"]
    np.testing.assert_allclose(total, np.nansum(2 * by_freq.real, axis=0), rtol=1e-6)
    np.testing.assert_array_equal(count, np.isfinite(by_freq).sum(axis=0))


def test_decimated_summaries_are_bounded_samples_of_the_same_means(calibrator):
    """A small budget keeps the same values at the sampled cells, spread over times and
    baselines, and the spectrum still sums every baseline."""
    name = str(calibrator.attrs[S.ATTR_FIELD_NAME])
    (full,) = Q.visibility_summaries([calibrator], [name])
    budget = 5
    (small,) = Q.visibility_summaries([calibrator], [name], budget=budget)
    n_time, n_baseline = calibrator.sizes[S.TIME], calibrator.sizes[S.BASELINE]
    t_idx, b_idx = Q.sample_cells(n_time, n_baseline, budget)
    assert len(small.by_time["before"]) == len(t_idx) <= budget
    assert len(set(b_idx.tolist())) > 1 and len(set(t_idx.tolist())) > 1
    np.testing.assert_allclose(small.by_time["before"],
                               full.by_time["before"][t_idx * n_baseline + b_idx], rtol=1e-12)
    np.testing.assert_array_equal(small.time, calibrator[S.TIME].values[t_idx])
    assert small.by_frequency["after"].size <= max(budget, calibrator.sizes[S.FREQUENCY])
    for got, want in zip(small.spectrum["after"], full.spectrum["after"]):
        np.testing.assert_allclose(got, want, rtol=1e-12)


def test_measured_flux_fits_a_power_law(calibrator):
    name = str(calibrator.attrs[S.ATTR_FIELD_NAME])
    (summary,) = Q.visibility_summaries([calibrator], [name])
    nu = summary.frequency
    spectrum = 3.0 * (nu / nu.mean()) ** -0.7
    n_baseline = calibrator.sizes[S.BASELINE]
    counts = np.full(nu.size, n_baseline - 1)          # a fully flagged baseline
    summary.spectrum["after"] = (spectrum * counts, counts)
    found = Q.measured_flux([summary], name)
    assert found["s0"] == pytest.approx(3.0, rel=1e-9)
    assert found["alpha"] == pytest.approx(-0.7, rel=1e-9)
    assert Q.measured_flux([summary], "elsewhere") is None


def test_summaries_hold_no_plane_per_time_block(calibrator):
    """Chunked along baselines and channels too, the report's reductions give the same means,
    and what reaches a partition's combine is rows and spectra, never a baseline x channel
    plane per time block (which grew with the integrations: a 352-antenna report held 4.9 GB)."""
    name = str(calibrator.attrs[S.ATTR_FIELD_NAME])
    (whole,) = Q.visibility_summaries([calibrator], [name])
    chunked = calibrator.chunk({S.TIME: 1, S.BASELINE: 2, S.FREQUENCY: 2})
    (split,) = Q.visibility_summaries([chunked], [name])
    for which in ("by_time", "by_frequency"):
        for label in ("before", "after"):
            np.testing.assert_array_equal(getattr(split, which)[label],
                                          getattr(whole, which)[label])
    np.testing.assert_allclose(split.spectrum["after"][0], whole.spectrum["after"][0], rtol=1e-12)
    np.testing.assert_array_equal(split.spectrum["after"][1], whole.spectrum["after"][1])

    _, (combine,) = Q.lazy_partition_summaries([chunked], [name], budget=2)
    graph = dict(combine.__dask_graph__())
    regions = [key for key in graph if str(key).startswith("_finish_region")]
    assert len(regions) == len(chunked.chunks[S.BASELINE]) * len(chunked.chunks[S.FREQUENCY])
    n_freq_block = 2
    for region in dask.compute(*[Delayed(key, graph) for key in regions]):
        # all but the flag counts ((baselines, pol, 2) per block)
        held = {"at": region["at"]}
        held.update(((group, name), value) for group in ("cells", "rows", "spectrum")
                    for name, value in region[group].items())
        for key, value in held.items():
            assert np.ndim(value) <= 1 or value.shape[0] <= 1, key   # sampled rows only
            assert np.size(value) <= max(2, n_freq_block), key


def test_a_partition_of_one_region_is_a_task_per_block_and_one_more(calibrator):
    """Its region's finish and its combine are one task; a one-block partition is one task in
    all; the summaries are those of the general path, bit for bit."""
    name = str(calibrator.attrs[S.ATTR_FIELD_NAME])
    n_time = calibrator.sizes[S.TIME]
    (by_block,) = Q.visibility_summaries([calibrator], [name])
    one = calibrator.chunk({S.TIME: -1})
    (whole,) = Q.visibility_summaries([one], [name])
    for which in ("by_time", "by_frequency"):
        for label in ("before", "after"):
            np.testing.assert_array_equal(getattr(by_block, which)[label],
                                          getattr(whole, which)[label])
    def own(ds):      # the summaries' tasks, not the reads of this in-memory dataset's blocks
        (task,) = Q.lazy_partition_summaries([ds], [name])[1]
        return sorted(str(key).split("-")[0] for key in dict(task.__dask_graph__())
                      if str(key).startswith(("_reduce_block", "_finish", "_combine")))

    assert own(calibrator) == ["_finish_partition"] + ["_reduce_block"] * n_time
    assert own(one) == ["_finish_partition"]
