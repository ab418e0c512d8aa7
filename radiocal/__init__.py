"""radiocal: Measurement Sets to calibrated data and dynamic spectra on dask."""

__version__ = "0.1.0"
