"""The CASA-style selection options every command shares: one definition, one help text.

Usage::

    @click.command()
    @selection_options
    def convert(inputs, output, **options):
        selection = selection_from_options(**options)

The help text comes from :class:`radiocal.select.selection.Selection`'s field metadata, so the
dataclass stays the single source of truth.
"""

from __future__ import annotations

import dataclasses

import click

from radiocal.select.selection import Selection

SELECTION_OPTION_NAMES = tuple(f.name for f in dataclasses.fields(Selection) if f.init)


def selection_options(command):
    """Click decorator adding ``--field --scan --spw --antenna --uvrange --timerange
    --correlation --intent`` (each a CASA selection string, default: everything)."""
    for spec in reversed([f for f in dataclasses.fields(Selection) if f.init]):
        command = click.option(
            f"--{spec.name}", spec.name, type=str, default=None, metavar="SEL",
            help=f"Select {spec.metadata['help']}.",
        )(command)
    return command


def add_selection_options(command: click.Command) -> click.Command:
    """Add the selection options to an already built click command (same options as
    :func:`selection_options`)."""
    for spec in (f for f in dataclasses.fields(Selection) if f.init):
        command.params.append(click.Option(
            [f"--{spec.name}", spec.name], type=str, default=None, metavar="SEL",
            help=f"Select {spec.metadata['help']}.",
        ))
    return command


def selection_from_options(**options) -> Selection:
    """A :class:`Selection` from a command's keyword arguments; other keywords are ignored.
    A malformed string raises :class:`radiocal.errors.SelectionError` (one line)."""
    return Selection(**{name: options.get(name) for name in SELECTION_OPTION_NAMES})
