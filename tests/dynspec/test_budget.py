"""Predict, subtract and average within the chunk budget: a tiny budget changes chunks only."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from radiocal import budget
from radiocal.dynspec import dataset as D
from radiocal.dynspec import graph
from radiocal.dynspec.config import DynspecConfig
from radiocal.errors import ConfigError
from radiocal.model.dataset import predict_model
from radiocal.store import schema as S
from radiocal.simulate.chunks import oversized_chunks

# 8 antennas (28 baselines) x 16 channels x 4 correlations: 14 kB an integration
TINY = 4 * 2**10


def _chunked(datasets, nbytes):
    """As a store of that budget holds them."""
    out = []
    for ds in datasets:
        t, b, f = budget.visibility_chunks(*ds[S.VISIBILITY].shape, nbytes)
        out.append(ds.chunk({S.TIME: t, S.BASELINE: b, S.FREQUENCY: f, S.POLARIZATION: -1}))
    return out


def test_tiny_budget_spectrum_equals_the_large_budget_one_and_no_chunk_exceeds_it(star):
    target = [ds for ds in star["calibrated"] if ds.attrs[S.ATTR_FIELD_NAME] == "STAR"]
    config = DynspecConfig(field="STAR", skymodel=star["skymodel"], timeavg=2, freqavg=3)
    with budget.chunk_budget(TINY):
        inputs = _chunked(target, TINY)
        assert len(inputs[0][S.VISIBILITY].chunks[1]) > 1     # baselines split
        tiny = D.dynamic_spectrum(inputs, config)
    assert oversized_chunks(tiny, TINY) == []
    large = D.dynamic_spectrum(_chunked(target, 64 * 2**20), config)
    assert oversized_chunks(large, TINY) != []                 # the check can fail
    # Partial sums of baseline chunks add up in another order: float64 rounding only
    xr.testing.assert_allclose(tiny.compute(), large.compute(), rtol=1e-12, atol=0)


def test_model_is_predicted_per_chunk(star):
    ds = _chunked([d for d in star["calibrated"] if d.attrs[S.ATTR_FIELD_NAME] == "STAR"], TINY)[0]
    from radiocal.model.skymodel import read_skymodel

    with budget.chunk_budget(TINY):
        model = predict_model(ds, read_skymodel(star["skymodel"]))[S.VISIBILITY_MODEL]
        residual = D.subtract_model(predict_model(ds, read_skymodel(star["skymodel"])))
    assert model.chunks == ds[S.VISIBILITY].chunks
    assert oversized_chunks([model, residual], TINY) == []


def test_an_averaging_block_over_the_budget_stops_before_anything_runs():
    shape, chunks = (10, 3, 64, 4), ((10,), (3,), (64,), (4,))
    with budget.chunk_budget(1024), pytest.raises(ConfigError, match="raise --chunk-mb .* or lower timeavg"):
        graph.average_chunks(shape, chunks, timeavg=2, freqavg=32)
    with budget.chunk_budget(1024):
        t, b, f = graph.average_chunks(shape, chunks, timeavg=2, freqavg=2)
    assert t % 2 == 0 and f % 2 == 0 and t * b * f * 4 * 8 <= 1024


@pytest.mark.slow
def test_convert_and_dynspec_bit_identical_on_threads_and_a_two_worker_cluster(tmp_path):
    """The same budget gives the same chunks, and so the same sums, wherever they run."""
    from radiocal.engine.cluster import Engine
    from radiocal.ms.read import read_ms
    from radiocal.store.zarr_store import open_store, write_store
    from radiocal.simulate import SimConfig, simulate_ms

    config = SimConfig.vla_small_like(n_antennas=8, spws=((1.30e9, 2.0e6, 16),),
                                      schedule=((1, 2), (2, 6), (1, 2), (2, 6)), seed=4)
    sim = simulate_ms(tmp_path / "in.ms", config)
    skymodel = tmp_path / "sky.txt"
    skymodel.write_text(sim.truth.sky.skymodel_text(2))
    spec_config = DynspecConfig(field="STAR", skymodel=str(skymodel), timeavg=2, freqavg=2)
    results = {}
    for label, options in (("threads", dict(scheduler="threads")),
                           ("cluster", dict(workers=2, threads_per_worker=1))):
        with Engine(chunk_bytes=TINY, **options):
            store = write_store(read_ms(tmp_path / "in.ms"), tmp_path / f"{label}.zarr")
            stored = open_store(store)
            assert len(stored[0][S.VISIBILITY].chunks[1]) > 1
            results[label] = ([ds.compute() for ds in stored],
                              D.dynamic_spectrum(stored, spec_config).compute())
    for a, b in zip(results["threads"][0], results["cluster"][0]):
        xr.testing.assert_identical(a, b)
    xr.testing.assert_identical(results["threads"][1], results["cluster"][1])
    assert np.isfinite(results["threads"][1]["I"].values).any()
