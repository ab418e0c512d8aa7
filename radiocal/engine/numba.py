"""Shared numba settings for every kernel.

``cache=True`` keeps compiled kernels between runs (important for short CLI runs and for workers);
``nogil=True`` lets dask's threads run kernels concurrently. No ``fastmath``: kernels test for NaN.

LLVM optimisation level: 1 unless ``NUMBA_OPT`` is set. Numba optimises each kernel's whole
linked call tree again at every level of it, and the flagging kernels' trees are deep: at the
default level 3 a first ``radiocal flag`` of the demo spent 115 CPU-s, at level 1 71 CPU-s
(spectral_block alone 57 -> 41 s), while the kernels ran as fast (spectral_block on
2 x 2000 x 192 x 4 samples 5.07 / 4.96 s; ``flag`` of a 7 M-visibility store 6.0-6.2 CPU-s at
both levels; level 0 ran 30x slower). Set before any kernel compiles: every kernel module imports
this one first, and numba's code generator reads the level when it first compiles.
"""

import os

import numba.core.config

JIT = dict(nogil=True, cache=True)

if "NUMBA_OPT" not in os.environ:
    os.environ["NUMBA_OPT"] = "1"
    numba.core.config.reload_config()
