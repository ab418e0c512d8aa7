"""The library façade: what ``import radiocal`` offers a script.

::

    import radiocal
    with radiocal.Engine() as eng:
        datasets = radiocal.open("obs.ms")        # lazy canonical datasets, one per partition
        ...                                       # nothing computes until written or asked

Names resolve lazily (importing ``radiocal`` stays cheap and never starts dask). A domain package
exposes a function here by adding one line to ``_LAZY``: the public name, then the module and
attribute that implement it, e.g. ``"flag": ("radiocal.flagging.dataset", "flag_datasets")``.
Such a function must take and return a list of lazy datasets, like the pipeline steps.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path

from radiocal.errors import InputError

_LAZY = {
    "Engine": ("radiocal.engine.cluster", "Engine"),
}

__all__ = ["open", *_LAZY]


def open(path, **read_options):  # noqa: A001 - radiocal.open reads like the builtin on purpose
    """Open a Measurement Set, a radiocal store or a run's output directory, lazily.

    Parameters
    ----------
    path : str, os.PathLike or list of them
        A Measurement Set, several (joined as :func:`radiocal.io.ms.read_ms` does), a directory
        of ``*.ms``, a ``.zarr`` store written by radiocal, or an output directory of
        ``radiocal run`` (its ``store.zarr`` is opened).
    **read_options
        Passed to :func:`radiocal.io.ms.read_ms` for Measurement Sets (``selection``,
        ``chunk_bytes``).

    Returns
    -------
    list of xarray.Dataset
        Canonical partitions (``VISIBILITY (time, baseline, frequency, polarization)`` ...),
        dask-backed: nothing has been computed.
    """
    from radiocal.io import store

    if isinstance(path, (list, tuple)):
        from radiocal.io.ms import read_ms

        return read_ms(list(path), **read_options)
    path = Path(os.fspath(path)).expanduser()
    if not path.exists():
        raise InputError(f"{path}: no such file or directory")
    if not store.is_store(path) and store.is_store(path / "store.zarr"):
        path = path / "store.zarr"
    if store.is_store(path):
        from radiocal.engine.checkpoint import incomplete_steps

        interrupted = incomplete_steps(path)
        if interrupted:
            raise InputError(f"{path}: step {interrupted[0]} was interrupted; "
                             "run the same radiocal run again to finish it")
        return store.open_store(path)
    from radiocal.io.ms import read_ms

    return read_ms(path, **read_options)


def __getattr__(name: str):
    try:
        module, attribute = _LAZY[name]
    except KeyError:
        raise AttributeError(f"module 'radiocal' has no attribute {name!r}") from None
    return getattr(importlib.import_module(module), attribute)


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
