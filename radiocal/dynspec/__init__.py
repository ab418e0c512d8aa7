"""Dynamic spectra: sky-model predict, uvsub, and baseline-averaged Stokes spectra of a target.

``kernels`` (numba) -> ``graph`` (dask) -> ``dataset`` (xarray) -> ``step`` (pipeline steps
``predict``, ``subtract``, ``dynspec``); ``plot`` draws a spectrum. Sky models are read by
:mod:`radiocal.model.skymodel`.
"""
