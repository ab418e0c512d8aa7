"""The step registry: name -> step, each a frozen dataclass config plus a lazy transform.

A step module declares::

    @dataclass(frozen=True)
    class ClipConfig:
        max_amplitude: float = field(default=1e6, metadata={"help": "flag |V| above this (Jy)"})

    @register_step("clip", ClipConfig)
    def clip(datasets, config, context):
        return [flag_clip(ds, config.max_amplitude) for ds in datasets]

``run(datasets, config, context) -> datasets`` must stay lazy (return dask-backed datasets); the
pipeline runner decides when to compute and checkpoint. ``context`` is a
:class:`radiocal.engine.context.StepContext` (output directory, store path, logger).

A step has a ``kind``: ``"transform"`` (default; lazy datasets -> datasets, the runner writes the
variables it changed to the store), ``"source"`` (ignores its input and returns the datasets a
pipeline starts from, e.g. ``convert``; the runner writes them as a new store) or ``"sink"``
(writes a product such as an exported MS itself, may compute, returns its input unchanged).

Config fields may carry metadata: ``help`` (shown by ``radiocal config``), ``choices`` (allowed
values) and ``input=True`` (the field names input paths: their identity enters the resume hash and
they are never written to).

Steps living outside radiocal register themselves on import; list their modules, comma-separated,
in the environment variable ``RADIOCAL_STEP_MODULES`` so that ``radiocal run`` imports them.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Callable

from radiocal.errors import ConfigError


STEP_KINDS = ("source", "transform", "sink")


@dataclass(frozen=True)
class StepSpec:
    name: str
    config_class: type
    run: Callable
    doc: str
    kind: str = "transform"
    # Called with this step's context as the step before this one starts (or as this one
    # starts, when a run begins with it): begins in the background what the step can have
    # ready before its turn (the report's drawing processes and the figures of finished products).
    prepare: Callable[..., None] | None = None


_REGISTRY: dict[str, StepSpec] = {}


def register_step(name: str, config_class: type, kind: str = "transform",
                  prepare: Callable[..., None] | None = None):
    """Register ``run`` under ``name``; ``config_class`` must be a frozen dataclass.

    ``kind`` is ``"transform"`` (default), ``"source"`` or ``"sink"`` (see the module docstring).
    ``prepare(context)`` (returns at once; ``context`` is this step's, as ``run`` will get it)
    is called as the step before this one starts (or as this one starts, when a run begins with
    it), to begin in the background what the step needs before its turn.
    """
    if kind not in STEP_KINDS:
        raise ValueError(f"step {name!r}: kind must be one of {STEP_KINDS}, got {kind!r}")
    if not (dataclasses.is_dataclass(config_class) and config_class.__dataclass_params__.frozen):
        raise TypeError(f"step {name!r}: config {config_class.__name__} must be a frozen dataclass")

    def decorate(run: Callable) -> Callable:
        if name in _REGISTRY and _REGISTRY[name].run is not run:
            raise ValueError(f"step {name!r} registered twice")
        _REGISTRY[name] = StepSpec(name, config_class, run, (run.__doc__ or "").strip(), kind,
                                   prepare)
        return run

    return decorate


def get_step(name: str) -> StepSpec:
    # Only the step modules up to the one registering ``name``: `radiocal convert` needs none of
    # flagging's, calibration's or the report's imports.
    _load_builtin_steps(until=name)
    try:
        return _REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY)) or "none"
        failed = "".join(f"; {m} failed to import: {e}" for m, e in _FAILED.items())
        raise ConfigError(f"unknown step {name!r} (known steps: {known}{failed})") from None


def all_steps() -> dict[str, StepSpec]:
    _load_builtin_steps()
    return dict(sorted(_REGISTRY.items()))


def current_names(spec: StepSpec, values: dict) -> dict:
    """``values`` with the options a step has renamed under their new names, and a warning
    naming both; a config lists them as ``RENAMED = {old: new}`` (a class attribute, no field),
    so that pipeline files written before keep working."""
    renamed = getattr(spec.config_class, "RENAMED", {})
    values = dict(values)
    for old in sorted(set(values) & set(renamed)):
        new = renamed[old]
        if new in values:
            raise ConfigError(f"step {spec.name!r}: {old} and {new} are one option; give {new}")
        logging.getLogger("radiocal.engine").warning(
            "step %r: option %r is now called %r; the old name will stop working in a later "
            "release", spec.name, old, new)
        values[new] = values.pop(old)
    return values


def known_options(spec: StepSpec, values: dict, label: str | None = None) -> dict:
    """``values`` under the step's current option names (:func:`current_names`), or a one-line
    error naming the unknown ones and the valid ones; ``label`` names the step in it (default:
    its name)."""
    values = current_names(spec, values)
    names = {f.name for f in dataclasses.fields(spec.config_class)}
    unknown = sorted(set(values) - names)
    if unknown:
        listed = ", ".join(map(repr, unknown))
        raise ConfigError(
            f"step {label or repr(spec.name)}: unknown option{'s' if len(unknown) > 1 else ''} "
            f"{listed} (valid: {', '.join(sorted(names))})")
    return values


def construct_config(spec: StepSpec, values: dict):
    """The step's config from ``values`` already checked by :func:`known_options`; the
    dataclass's own checks become one-line errors naming the step."""
    try:
        return spec.config_class(**values)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"step {spec.name!r}: {err}") from None


def make_config(spec: StepSpec, values: dict):
    """Build a step's config from a mapping, rejecting unknown keys with a one-line error."""
    return construct_config(spec, known_options(spec, values))


# Domain packages whose step modules register themselves on import. A package that does not have a
# step module yet is skipped, so domains can land one at a time.
_STEP_MODULES = (
    "radiocal.ms.step",
    "radiocal.flagging.step",
    "radiocal.calibration.step",
    "radiocal.calibration.skycal",
    "radiocal.dynspec.step",
    "radiocal.qa.step",
    "radiocal.imaging.step",
)


_FAILED: dict[str, str] = {}


def _load_builtin_steps(until: str | None = None) -> None:
    import importlib
    import importlib.util
    import os

    for module in _STEP_MODULES:
        if until in _REGISTRY:
            break
        if module in _FAILED or importlib.util.find_spec(module) is None:
            continue
        try:
            importlib.import_module(module)
        except Exception as err:  # one broken domain must not take every other step down
            _FAILED[module] = f"{type(err).__name__}: {err}"
            logging.getLogger("radiocal.engine").warning("steps of %s unavailable (%s)",
                                                         module, _FAILED[module])
    for module in filter(None, (m.strip() for m in os.environ.get("RADIOCAL_STEP_MODULES", "").split(","))):
        try:
            importlib.import_module(module)
        except ImportError as err:
            raise ConfigError(f"RADIOCAL_STEP_MODULES: cannot import {module!r}: {err}") from None
