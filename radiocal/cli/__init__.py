"""The ``radiocal`` command (:mod:`radiocal.cli.main`) and its subcommands."""

import os

# numpy's and scipy's OpenBLAS each start a thread per core at import, which spin waiting for
# work (~0.3 CPU-s of every radiocal process, its probe child's and worker processes' too:
# benchmarks/README, convert's profile). radiocal's loops are numba kernels on the engine's
# threads and its BLAS calls are small (a fluxscale fit), which OpenBLAS runs on one thread
# anyway. Set before numpy loads; a user's own setting is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
