"""radiocal: Measurement Sets to calibrated data and dynamic spectra on dask.

The library's names (``radiocal.open``, ``radiocal.flag``, ``radiocal.Engine``, ...) are those of
:mod:`radiocal.api`, handed on here; api resolves the heavy ones on first use, so
``import radiocal`` (and the CLI's start-up) stays cheap.
"""

from radiocal.api import __all__, __dir__, __getattr__, plot, to_store  # noqa: F401

__version__ = "0.1.0"
