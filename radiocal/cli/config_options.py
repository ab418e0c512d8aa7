"""CLI options declared once, in a step's config dataclass.

A command option that is also a pipeline step's option takes its name, default and help from the
step's config field, so the CLI and the YAML cannot drift apart::

    @config_option(ConvertConfig, "renumber_scans")
    def convert(..., renumber_scans): ...

Booleans become ``--name/--no-name`` switches; other fields take the field's type.
"""

from __future__ import annotations

import dataclasses

import click


def config_option(config_cls, name: str, **overrides):
    """A click option for field ``name`` of the step config dataclass ``config_cls``."""
    spec = {f.name: f for f in dataclasses.fields(config_cls)}[name]
    flag = "--" + name.replace("_", "-")
    default = spec.default
    kwargs = {"default": default, "show_default": True, "help": spec.metadata.get("help", "")}
    if isinstance(default, bool):
        decls = [f"{flag}/--no-{flag[2:]}", name]
    else:
        decls = [flag, name]
        kwargs["type"] = type(default)
    kwargs.update(overrides)
    return click.option(*decls, **kwargs)
