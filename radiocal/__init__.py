"""radiocal: Measurement Sets to calibrated data and dynamic spectra on dask."""

__version__ = "0.1.0"


def __getattr__(name: str):
    # The library façade (radiocal.open, radiocal.Engine, ...) lives in radiocal.api and is
    # resolved on first use, so `import radiocal` (and the CLI's start-up) stays cheap.
    if not name.startswith("_") and name != "api":
        import importlib

        api = importlib.import_module("radiocal.api")
        if name in api.__all__:
            return getattr(api, name)
    raise AttributeError(f"module 'radiocal' has no attribute {name!r}")
