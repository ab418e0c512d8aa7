"""The library façade: what ``import radiocal`` offers a script.

::

    import radiocal
    with radiocal.Engine() as eng:
        datasets = radiocal.open("obs.ms")        # lazy canonical datasets, one per partition
        datasets = radiocal.flag(datasets, strategy="default")
        ...                                       # nothing computes until written or asked

Every pipeline step in :data:`STEP_FUNCTIONS` is also a function here, ``radiocal.<name>(datasets,
*, outdir=".", engine=None, **options)``, made from the step's registration: its keywords are
the step's config fields (the names, defaults and checks of the pipeline YAML), and calling it
runs the registered step, so there is one implementation. Transforms return lazy datasets; sinks
(``dynamic_spectrum``, ``export``, ``solve``, ``image``, ``report``) write their product under
``outdir`` and return their input. The source step, ``convert``, is :func:`open`: its keywords
are convert's options, and it reads a Measurement Set by running that step.
``to_store`` and ``plot`` wrap the functions the runner and ``radiocal plot`` call.

Names resolve lazily (importing ``radiocal`` stays cheap and never starts dask or imports a
step's domain package before it is used).
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
from pathlib import Path

from radiocal.errors import ConfigError, InputError

_LAZY = {
    "Engine": ("radiocal.engine.cluster", "Engine"),
}
# public function -> registered step
STEP_FUNCTIONS = {
    "flag": "flag", "solve": "solve", "apply": "applycal", "calibrate": "calibrate",
    "predict": "predict", "subtract": "subtract", "export": "export",
    # not radiocal.dynspec: that is the package radiocal/dynspec/, which Python binds to the name
    # as soon as it is imported, hiding a function of the same name
    "dynamic_spectrum": "dynspec",
    "ateam": "ateam", "sky_bandpass": "sky_bandpass", "image": "image", "report": "report",
}
# the source step, convert, is radiocal.open: its options are convert's (but ``ms``, the path)
SOURCE_STEP = "convert"

__all__ = ["open", "to_store", "plot", *_LAZY, *STEP_FUNCTIONS]


def _open(path, /, **options):
    """Open a Measurement Set, a radiocal store or a run's output directory, lazily.

    Parameters
    ----------
    path : str, os.PathLike or list of them
        A Measurement Set, several (joined as :func:`radiocal.ms.read.read_ms` does), a directory
        of ``*.ms``, a ``.zarr`` store written by radiocal, or an output directory of
        ``radiocal run`` (its ``store.zarr`` is opened).
    **options
        For Measurement Sets, the options of the ``convert`` step, which reads them (its CASA
        selection ``field``, ``spw``, ..., and ``chunk_mb``, ``renumber_scans``,
        ``join_subbands``, ``phase_centre``: the names and checks of the pipeline YAML). A
        store holds what was converted, and takes none.

    Returns
    -------
    list of xarray.Dataset
        Canonical partitions (``VISIBILITY (time, baseline, frequency, polarization)`` ...),
        dask-backed: nothing has been computed.
    """
    from radiocal.store import zarr_store

    if isinstance(path, (list, tuple)):
        return _convert(list(path), options)
    path = Path(os.fspath(path)).expanduser()
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if not zarr_store.is_store(path) and zarr_store.is_store(path / "store.zarr"):
        path = path / "store.zarr"
    if not zarr_store.is_store(path):
        return _convert([path], options)
    if options:
        raise ConfigError(f"{path} is a radiocal store: {', '.join(sorted(options))} are options "
                          "of reading a Measurement Set (the convert step's)")
    from radiocal.engine.checkpoint import incomplete_steps

    interrupted = incomplete_steps(path)
    if interrupted:
        raise InputError(f"{path}: step {interrupted[0]} was interrupted; "
                         "run the same radiocal run again to finish it")
    return zarr_store.open_store(path)


def _convert(paths, options) -> list:
    """Measurement Sets read by the registered ``convert`` step, as a pipeline starts."""
    from radiocal.engine.context import StepContext
    from radiocal.registry import get_step, make_config

    if "ms" in options:
        raise ConfigError("radiocal.open: the Measurement Set(s) are its first argument, not ms=")
    spec = get_step(SOURCE_STEP)
    config = make_config(spec, {**options, "ms": tuple(os.fspath(p) for p in paths)})
    return spec.run([], config, StepContext.for_library("."))


def _open_function():
    """``radiocal.open`` with the convert step's options in its signature (made on first use:
    reading the step's config imports dask)."""
    from radiocal.registry import get_step

    fields = [f for f in dataclasses.fields(get_step(SOURCE_STEP).config_class) if f.name != "ms"]
    keyword = inspect.Parameter.KEYWORD_ONLY

    def open(path, /, **options):  # noqa: A001 - radiocal.open reads like the builtin on purpose
        return _open(path, **options)

    open.__doc__ = _open.__doc__
    open.__signature__ = inspect.Signature(
        [inspect.Parameter("path", inspect.Parameter.POSITIONAL_ONLY)]
        + [inspect.Parameter(f.name, keyword, default=_default(f)) for f in fields])
    open.__module__ = "radiocal"
    return open


def to_store(datasets, path, overwrite: bool = False) -> str:
    """Compute ``datasets`` into a new radiocal store at ``path`` (as ``radiocal run`` writes
    after its source step); :func:`open` reads it back lazily. Returns the store's path."""
    from radiocal.store.zarr_store import write_store

    return write_store(list(datasets), path, overwrite=overwrite)


def plot(spectrum, output, products=None):
    """Draw a dynamic spectrum (a dataset, or the zarr ``dynspec`` wrote) to ``output`` (.png,
    .pdf), as ``radiocal plot`` does; ``products`` picks the panels (default I, V, V/I)."""
    from radiocal.dynspec.dataset import open_dynspec
    from radiocal.dynspec.plot import plot_dynamic_spectrum

    if not hasattr(spectrum, "data_vars"):
        spectrum = open_dynspec(spectrum)
    return plot_dynamic_spectrum(spectrum, output, products=products)


def _step_function(public: str, step: str):
    """``radiocal.<public>``: the registered step ``step`` as a function of datasets."""
    from radiocal.registry import get_step, make_config

    spec = get_step(step)

    def call(datasets, /, *, outdir=".", engine=None, **options):
        from radiocal.engine.context import StepContext

        config = make_config(spec, options)
        context = StepContext.for_library(outdir, engine=engine)
        context.step_name = step
        return spec.run(list(datasets), config, context)

    fields = dataclasses.fields(spec.config_class)
    keyword = inspect.Parameter.KEYWORD_ONLY
    call.__signature__ = inspect.Signature(
        [inspect.Parameter("datasets", inspect.Parameter.POSITIONAL_ONLY),
         inspect.Parameter("outdir", keyword, default="."),
         inspect.Parameter("engine", keyword, default=None)]
        + [inspect.Parameter(f.name, keyword, default=_default(f)) for f in fields])
    options = "\n".join(f"    {f.name} : default {_default(f)!r}\n        {f.metadata.get('help', '')}"
                        for f in fields)
    call.__doc__ = (f"{spec.doc}\n\nThe pipeline step {step!r} ({spec.kind}) as a function.\n\n"
                    f"Parameters\n----------\n    datasets : list of xarray.Dataset\n"
                    f"    outdir : where products go (default: the working directory)\n"
                    f"    engine : radiocal.Engine, optional\n{options}\n")
    call.__name__ = call.__qualname__ = public
    call.__module__ = "radiocal"
    return call


def _default(field):
    """A config field's default as a signature shows it (required fields have none)."""
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    return inspect.Parameter.empty


def __getattr__(name: str):
    # radiocal/__init__.py hands this on: a name made once is kept here, where both look
    if name in globals():
        return globals()[name]
    if name in STEP_FUNCTIONS:
        function = globals()[name] = _step_function(name, STEP_FUNCTIONS[name])
        return function
    if name == "open":
        function = globals()[name] = _open_function()
        return function
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'radiocal' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), attribute)


def __dir__():
    return sorted(set(globals()) | {"open"} | set(_LAZY) | set(STEP_FUNCTIONS))
