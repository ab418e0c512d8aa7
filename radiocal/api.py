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
(``dynamic_spectrum``, ``export``, ``solve``) write their product under ``outdir`` and return
their input.
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

from radiocal.errors import InputError

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
}

__all__ = ["open", "to_store", "plot", *_LAZY, *STEP_FUNCTIONS]


def open(path, **read_options):  # noqa: A001 - radiocal.open reads like the builtin on purpose
    """Open a Measurement Set, a radiocal store or a run's output directory, lazily.

    Parameters
    ----------
    path : str, os.PathLike or list of them
        A Measurement Set, several (joined as :func:`radiocal.ms.read.read_ms` does), a directory
        of ``*.ms``, a ``.zarr`` store written by radiocal, or an output directory of
        ``radiocal run`` (its ``store.zarr`` is opened).
    **read_options
        Passed to :func:`radiocal.ms.read.read_ms` for Measurement Sets (``selection``,
        ``chunk_bytes``).

    Returns
    -------
    list of xarray.Dataset
        Canonical partitions (``VISIBILITY (time, baseline, frequency, polarization)`` ...),
        dask-backed: nothing has been computed.
    """
    from radiocal.store import zarr_store

    if isinstance(path, (list, tuple)):
        from radiocal.ms.read import read_ms

        return read_ms(list(path), **read_options)
    path = Path(os.fspath(path)).expanduser()
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if not zarr_store.is_store(path) and zarr_store.is_store(path / "store.zarr"):
        path = path / "store.zarr"
    if zarr_store.is_store(path):
        from radiocal.engine.checkpoint import incomplete_steps

        interrupted = incomplete_steps(path)
        if interrupted:
            raise InputError(f"{path}: step {interrupted[0]} was interrupted; "
                             "run the same radiocal run again to finish it")
        return zarr_store.open_store(path)
    from radiocal.ms.read import read_ms

    return read_ms(path, **read_options)


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
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'radiocal' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), attribute)


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(STEP_FUNCTIONS))
