"""Shared numba settings for every kernel.

``cache=True`` keeps compiled kernels between runs (important for short CLI runs and for workers);
``nogil=True`` lets dask's threads run kernels concurrently. No ``fastmath``: kernels test for NaN.
"""

JIT = dict(nogil=True, cache=True)
