"""Flagging: RFI and bad-data flaggers as numba kernels over dask graphs, and strategies.

Layers: ``basic_kernels.py`` / ``robust.py`` / ``background.py`` / ``kernels.py`` (numba on numpy),
``graph.py`` (dask wrappers), ``dataset.py`` (one flagger per function, partition in, partition
out), ``strategy.py`` (YAML strategies and the built-in ``default``), ``summary.py`` (flagged
fractions, like ``flagdata(mode='summary')``) and ``step.py`` (the ``flag`` pipeline step and
in-place flagging of a store). Flag versions live in :mod:`radiocal.store.flag_versions`.

Chunking: the time-frequency detectors need a partition's whole time axis per baseline. A
partition is one scan, so ``graph.py`` rechunks it to one time chunk (splitting baselines instead
to bound memory and keep parallelism) and rechunks the flags back to the dataset's time chunks.
"""
