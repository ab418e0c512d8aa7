"""CLI options declared once, in a step's config dataclass.

A command option that is also a pipeline step's option takes its name, default and help from the
step's config field, so the CLI and the YAML cannot drift apart::

    @config_option(ConvertConfig, "renumber_scans")
    def convert(..., renumber_scans): ...

    @config_options(SolveConfig, skip=("kind",), output={"decls": ("-o",), "required": True})
    def solve(..., **options): ...          # every other field of SolveConfig, as --name

Booleans (also ``bool | None``, unset by default) become ``--name/--no-name`` switches, tuples repeatable options, ``choices`` metadata a
``click.Choice``; other fields take the field's type.
"""

from __future__ import annotations

import dataclasses

import click


def config_option(config_cls, name: str, decls=(), note: str = "", **overrides):
    """A click option for field ``name`` of the step config dataclass ``config_cls``; ``decls``
    adds spellings (``("-o",)``), ``note`` what the command adds to the field's help (in
    parentheses: what it does when the option is left out), ``overrides`` replace click
    keywords."""
    spec = {f.name: f for f in dataclasses.fields(config_cls)}[name]
    flag = "--" + name.replace("_", "-")
    default = spec.default
    kwargs = {"default": default, "show_default": default not in ("", None),
              "help": spec.metadata.get("help", "") + (f" ({note})" if note else "")}
    if isinstance(default, bool) or spec.type in (bool | None, "bool | None"):
        spellings = [f"{flag}/--no-{flag[2:]}"]   # None (unset): the step's own default
    else:
        spellings = [flag]
        if isinstance(default, tuple):
            kwargs.update(multiple=True, type=str, show_default=False)
        else:
            kwargs["type"] = type(default)
        if "choices" in spec.metadata:
            kwargs["type"] = click.Choice(spec.metadata["choices"])
    kwargs.update(overrides)
    # a short spelling (-o) reads first, other long ones (--target) after the field's own
    short = [d for d in decls if not d.startswith("--")]
    return click.option(*short, *spellings, *(d for d in decls if d.startswith("--")), name, **kwargs)


def config_options(config_cls, skip=(), **overrides):
    """Every field of ``config_cls`` but ``skip`` as options (:func:`config_option`), in the
    dataclass's order; ``overrides[field]`` is a dict of that option's :func:`config_option`
    keywords."""
    def decorate(command):
        for spec in reversed(dataclasses.fields(config_cls)):
            if spec.name not in skip:
                command = config_option(config_cls, spec.name, **overrides.get(spec.name, {}))(command)
        return command

    return decorate
