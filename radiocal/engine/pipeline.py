"""Pipeline files: a YAML list of ``{step: NAME, key: value, ...}`` validated against step configs.

Validation is strict and every problem is one line naming the step and the key: an unknown step,
an unknown key, a value of the wrong type or outside the field's ``choices``. ``--set`` overrides
(``NAME.key=value``, or ``N.key=value`` for the N-th step, 1-based) apply after the file.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from pathlib import Path

import yaml

from radiocal.registry import StepSpec, all_steps, construct_config, get_step, known_options
from radiocal.errors import ConfigError

PACKAGED = Path(__file__).resolve().parent.parent / "pipelines"


@dataclass(frozen=True)
class PipelineStep:
    """One validated entry of a pipeline: the registered step, its config and its position."""

    spec: StepSpec
    config: object
    index: int

    @property
    def label(self) -> str:
        return f"{self.spec.name!r} (step {self.index + 1})"


def packaged_pipeline(name: str) -> Path:
    """The pipeline file shipped as ``radiocal/pipelines/<name>.yaml`` (whatever the cwd holds)."""
    path = PACKAGED / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"no packaged pipeline {name!r}")
    return path


def resolve_pipeline_path(name: str | Path) -> Path:
    """A pipeline file path, or the name of one shipped in ``radiocal/pipelines/``."""
    path = Path(name).expanduser()
    if path.is_file():
        return path
    packaged = PACKAGED / f"{Path(name).stem}.yaml"
    if path.suffix in ("", ".yaml") and packaged.is_file():   # a directory of that name is no pipeline
        return packaged
    raise ConfigError(f"pipeline file {str(name)!r} not found")


def load_pipeline(source, overrides=(), inputs=()) -> list[PipelineStep]:
    """Parse and validate a pipeline.

    Parameters
    ----------
    source : str, Path or list
        A YAML file path (or the name of a packaged pipeline), or an already-parsed list of
        ``{step: NAME, ...}`` mappings.
    overrides : sequence of str
        ``NAME.key=value`` or ``N.key=value`` items; values are parsed as YAML scalars/lists.
    inputs : sequence of str
        Input paths for the first step (its field marked ``input=True``), overriding the file.
    """
    if isinstance(source, (str, Path)):
        path = resolve_pipeline_path(source)
        try:
            entries = yaml.safe_load(path.read_text())
        except yaml.YAMLError as err:
            mark = getattr(err, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark else ""
            raise ConfigError(f"pipeline {path}{where}: not valid YAML") from None
        except UnicodeDecodeError:
            raise ConfigError(f"pipeline {path}: not a text file (not UTF-8)") from None
        origin = str(path)
    else:
        entries, origin = source, "pipeline"
    if isinstance(entries, dict) and "steps" in entries and len(entries) == 1:
        entries = entries["steps"]
    if not isinstance(entries, list) or not entries:
        raise ConfigError(f"{origin}: expected a non-empty list of {{step: NAME, ...}} entries")

    raw: list[tuple[StepSpec, dict]] = []
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or "step" not in entry:
            raise ConfigError(f"{origin}: entry {number} is not a mapping with a 'step' key")
        values = dict(entry)
        spec = get_step(str(values.pop("step")))
        names = {f.name for f in dataclasses.fields(spec.config_class)}
        # Also accept the nested form {step: NAME, config: {...}}.
        if set(values) == {"config"} and "config" not in names and isinstance(values["config"], dict):
            values = dict(values["config"])
        raw.append((spec, values))

    _apply_overrides(raw, overrides)
    if inputs:
        spec, values = raw[0]
        field = _input_field(spec)
        if field is None:
            raise ConfigError(f"step {spec.name!r} takes no input paths, but inputs were given")
        values[field] = list(inputs)

    steps = []
    for index, (spec, values) in enumerate(raw):
        config = build_config(spec, values, label=f"{spec.name!r} (step {index + 1})")
        steps.append(PipelineStep(spec, config, index))
    _check_order(steps)
    return steps


def _input_field(spec: StepSpec) -> str | None:
    for f in dataclasses.fields(spec.config_class):
        if f.metadata.get("input"):
            return f.name
    return None


def _apply_overrides(raw: list[tuple[StepSpec, dict]], overrides) -> None:
    for item in overrides:
        target, sep, text = item.partition("=")
        step_name, dot, key = target.strip().partition(".")
        if not sep or not dot or not step_name or not key:
            raise ConfigError(f"--set {item!r}: expected STEP.KEY=VALUE")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError:
            value = text
        if step_name.isdigit():
            position = int(step_name)
            if not 1 <= position <= len(raw):
                raise ConfigError(f"--set {item!r}: the pipeline has {len(raw)} steps")
            matched = [raw[position - 1]]
        else:
            matched = [entry for entry in raw if entry[0].name == step_name]
            if not matched:
                raise ConfigError(f"--set {item!r}: no step {step_name!r} in the pipeline")
        for _, values in matched:
            values[key] = value


def _check_order(steps: list[PipelineStep]) -> None:
    if steps[0].spec.kind != "source":
        sources = ", ".join(n for n, s in all_steps().items() if s.kind == "source") or "none"
        raise ConfigError(f"pipeline must start with a source step ({sources}), "
                          f"not {steps[0].spec.name!r}")
    for step in steps[1:]:
        if step.spec.kind == "source":
            raise ConfigError(f"step {step.label}: a source step can only come first")


def build_config(spec: StepSpec, values: dict, label: str | None = None):
    """Check and convert ``values`` against the step's dataclass fields, then build the config."""
    label = label or repr(spec.name)
    values = known_options(spec, values, label)
    hints = typing.get_type_hints(spec.config_class)
    fields = {f.name: f for f in dataclasses.fields(spec.config_class)}
    converted = {}
    for key, value in values.items():
        try:
            value = _coerce(value, hints.get(key, typing.Any))
        except (TypeError, ValueError) as err:
            raise ConfigError(f"step {label}: option {key!r} {err}") from None
        choices = fields[key].metadata.get("choices")
        if choices is not None and value not in choices:
            raise ConfigError(f"step {label}: option {key!r} must be one of "
                              f"{', '.join(map(str, choices))}, got {value!r}")
        converted[key] = value
    return construct_config(spec, converted)


def _coerce(value, hint):
    """Convert a YAML value to the annotated type; raise TypeError/ValueError with a reason."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if hint is typing.Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg)
            except (TypeError, ValueError) as err:
                errors.append(str(err))
        raise TypeError(errors[0] if len(errors) == 1 else f"has the wrong type ({value!r})")
    if origin is typing.Literal:
        if value not in args:
            raise ValueError(f"must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin in (tuple, list) or hint in (tuple, list):
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            value = [value]  # a single item where a list is expected
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"must be a list, got {value!r}")
        item = args[0] if args and (origin is list or (len(args) == 2 and args[1] is Ellipsis)) else None
        if item is not None:
            value = [_coerce(v, item) for v in value]
        elif args:
            if len(args) != len(value):
                raise ValueError(f"must have {len(args)} items, got {len(value)}")
            value = [_coerce(v, a) for v, a in zip(value, args)]
        return tuple(value) if (origin is tuple or hint is tuple) else list(value)
    if hint is bool:
        if not isinstance(value, bool):
            raise TypeError(f"must be true or false, got {value!r}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"must be an integer, got {value!r}")
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise TypeError(f"must be a number, got {value!r}")
        return float(value)
    if hint is str:
        if not isinstance(value, str):
            raise TypeError(f"must be a string, got {value!r}")
        return value
    if hint is dict or origin is dict:
        if not isinstance(value, dict):
            raise TypeError(f"must be a mapping, got {value!r}")
        return value
    return value


# -- `radiocal config`: defaults as YAML a user can copy --------------------------------------


def _plain(value):
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, Path):
        return str(value)
    return value


def _flow(value) -> str:
    """One value as single-line YAML (``64``, ``''``, ``[a.ms, b.ms]``)."""
    text = yaml.safe_dump(_plain(value), default_flow_style=True, width=10**6).strip()
    return text[:-3].strip() if text.endswith("...") else text


def defaults_yaml(names=None) -> str:
    """Every (or the named) registered step's defaults as a commented YAML pipeline fragment."""
    steps = all_steps()
    if names:
        steps = {n: get_step(n) for n in names}
    blocks = []
    for name, spec in steps.items():
        summary = spec.doc.splitlines()[0] if spec.doc else ""
        lines = [f"# {name}: {summary}".rstrip(": ") + (f"  [{spec.kind}]" if spec.kind != "transform" else ""),
                 f"- step: {name}"]
        for f in dataclasses.fields(spec.config_class):
            if f.default is not dataclasses.MISSING:
                value, required = f.default, False
            elif f.default_factory is not dataclasses.MISSING:
                value, required = f.default_factory(), False
            else:
                value, required = None, True
            help_text = f.metadata.get("help", "")
            if f.metadata.get("choices"):
                help_text += f" (one of: {', '.join(map(str, f.metadata['choices']))})"
            if required:
                help_text += " (required)"
            if help_text:
                lines.append(f"  # {help_text.strip()}")
            lines.append(f"  {f.name}: {_flow(value)}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"
