"""One name per option: every registered step's options under the same names in the YAML step
config, the library function (``radiocal.open`` for the source step, convert) and the CLI
command, and the packaged flows' commands (``radiocal lwa``, ``phaseref``) under the names of
their steps' options (issue 15).

The library functions are made from the configs, so they must match exactly. The CLI commands
take their options from the same configs (``cli.config_options``); a command may add options
that say where it reads and writes (a pipeline's runner gives those), listed in ``IO_OPTIONS``,
one that shows something instead (``--show-strategy``) in ``SHOW_OPTIONS``; a step's option
whether a pipeline goes on past its failure (``required``) is no command's (``RUN_OPTIONS``),
and the drift not yet closed is listed in ``CLI_DRIFT``: the test fails when a difference
appears or disappears, so the lists stay the truth. A ``--name/--no-name`` switch counts once,
by its ``--name``; a second spelling (``--target`` beside ``--targets``) is an alias.
"""

from __future__ import annotations

import dataclasses
import inspect

import click
import pytest

import radiocal
from radiocal.api import SOURCE_STEP, STEP_FUNCTIONS
from radiocal.cli.main import cli
from radiocal.registry import all_steps

# registered step -> CLI command that does the same work
CLI_COMMANDS = {"convert": "convert", "flag": "flag", "calibrate": "calibrate", "solve": "solve",
                "applycal": "apply", "dynspec": "dynspec", "export": "export", "image": "image"}
# registered steps that no command runs alone, and why
NO_COMMAND = {
    "predict": "run by radiocal dynspec --skymodel (predict + subtract) and by pipelines",
    "subtract": "run by radiocal dynspec --skymodel (predict + subtract) and by pipelines",
    "ateam": "a step of the packaged lwa pipeline (radiocal lwa)",
    "sky_bandpass": "a step of the packaged lwa pipeline (radiocal lwa)",
    "report": "a run's QA over its output directory (radiocal run, phaseref, lwa)",
}

# Options of a command that say where it reads or writes: a pipeline's runner gives those (its
# store, its output directory), so they are no step options. Arguments (STORE, IN.ms, OUTPUT)
# count by name: an argument named like an option matches it (convert's MS, solve's KIND).
IO_OPTIONS = {
    "convert": {"output", "overwrite"},
    "calibrate": {"casa_tables"},
    "solve": {"overwrite"},
    "dynspec": {"overwrite"},
}

# Options of a command that show something instead of running the step (and exit).
SHOW_OPTIONS = {
    "flag": {"show_strategy"},
}

# Options of a step that say whether a pipeline goes on when the step fails: a command that
# only does that step always fails.
RUN_OPTIONS = {
    "image": {"required"},
}

# step -> (YAML-only options, CLI-only options): drift still to close (none now).
CLI_DRIFT: dict = {}


def _yaml_options(step: str) -> set[str]:
    return {f.name for f in dataclasses.fields(all_steps()[step].config_class)}


def _cli_options(command: click.Command) -> tuple[set[str], set[str]]:
    """Every spelling of every parameter (``--bad-antennas`` -> ``bad_antennas``; an argument
    by its name), and one name per option (its first long spelling)."""
    spellings, primary = set(), set()
    for param in command.params:
        if isinstance(param, click.Argument):
            spellings.add(param.name)
        if not isinstance(param, click.Option) or param.name == "help":
            continue
        names = [o.lstrip("-").replace("-", "_") for o in param.opts if o.startswith("--")]
        names = names or [param.name]
        spellings.update(names)
        primary.add(names[0])
    return spellings, primary


@pytest.mark.parametrize("public", sorted(STEP_FUNCTIONS))
def test_library_keywords_are_the_yaml_options(public):
    parameters = inspect.signature(getattr(radiocal, public)).parameters
    keywords = {n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert keywords - {"outdir", "engine"} == _yaml_options(STEP_FUNCTIONS[public])


def test_every_step_of_radiocal_has_a_library_function():
    ours = {name for name, spec in all_steps().items() if spec.run.__module__.startswith("radiocal.")}
    assert ours == set(STEP_FUNCTIONS.values()) | {SOURCE_STEP}
    assert not set(STEP_FUNCTIONS.values()) & {SOURCE_STEP}


def test_open_takes_the_source_steps_options():
    """The source step (convert) is radiocal.open: a Measurement Set is its first argument,
    convert's other options are its keywords."""
    parameters = inspect.signature(radiocal.open).parameters
    keywords = {n for n, p in parameters.items() if p.kind is p.KEYWORD_ONLY}
    assert keywords == _yaml_options(SOURCE_STEP) - {"ms"}
    convert = dataclasses.fields(all_steps()[SOURCE_STEP].config_class)
    assert [p.default for n, p in parameters.items() if n in keywords] == [
        f.default for f in convert if f.name != "ms"]


def test_every_registered_step_has_a_command_or_says_why_not():
    ours = {name for name, spec in all_steps().items() if spec.run.__module__.startswith("radiocal.")}
    assert ours == set(CLI_COMMANDS) | set(NO_COMMAND)
    assert not set(CLI_COMMANDS) & set(NO_COMMAND)
    assert all(CLI_COMMANDS[step] in cli.commands for step in CLI_COMMANDS)


@pytest.mark.parametrize("step", sorted(CLI_COMMANDS))
def test_cli_options_against_the_yaml(step):
    command = cli.commands[CLI_COMMANDS[step]]
    spellings, primary = _cli_options(command)
    yaml = _yaml_options(step)
    assert not RUN_OPTIONS.get(step, set()) & spellings
    yaml_only = yaml - spellings - RUN_OPTIONS.get(step, set())
    cli_only = {name for name in primary if name not in yaml}
    # an option spelt both ways (--targets/--target) matches through either spelling
    cli_only -= {name for name in cli_only if any(alias in yaml for alias in _aliases(command, name))}
    extra = IO_OPTIONS.get(step, set()) | SHOW_OPTIONS.get(step, set())
    assert (yaml_only, cli_only - extra) == CLI_DRIFT.get(step, (set(), set()))
    assert extra <= cli_only


@pytest.mark.parametrize("step", sorted(set(CLI_COMMANDS) - set(CLI_DRIFT)))
def test_generated_options_take_the_configs_defaults(step):
    """Where a command's options are the config's, an option left out is the config's default
    (a switch's --no-x is the same field), so the CLI and the YAML cannot differ in a default."""
    defaults = {f.name: f.default for f in dataclasses.fields(all_steps()[step].config_class)}
    for param in cli.commands[CLI_COMMANDS[step]].params:
        if isinstance(param, click.Option) and param.name in defaults and not param.required:
            # a pair (--shift RA DEC) left out is None to click, the empty tuple to the config
            given = () if param.nargs > 1 and param.default is None else param.default
            assert given == defaults[param.name], (step, param.name)
            if param.secondary_opts:   # every spelling of a switch (--propagate too) has its --no-
                assert param.secondary_opts == ["--no-" + o.removeprefix("--") for o in param.opts
                                                if o.startswith("--")]


def _aliases(command, name):
    for param in command.params:
        names = [o.lstrip("-").replace("-", "_") for o in param.opts if o.startswith("--")]
        if names and names[0] == name:
            return names
    return []


# Packaged flows: command -> its options that steer the flow rather than set a step's option
# (what it reads and where it writes, whether a step runs, --set, progress bars)
FLOW_OPTIONS = {
    "lwa": {"inputs", "outdir", "image", "overrides", "progress"},
    "phaseref": {"inputs", "outdir", "image", "overrides", "progress"},
}


def _flow_entries(command, tmp_path):
    """The command's pipeline entries with every step option it offers given a value."""
    from radiocal.cli.lwa_commands import lwa_entries
    from radiocal.cli.pipeline_commands import phaseref_entries

    table = tmp_path / "given.txt"
    table.write_text("W01\n")
    ms = [str(tmp_path / "in.ms")]
    if command == "lwa":
        return lwa_entries(ms, bad_antennas=("W01",), bad_antennas_file=str(table),
                           refant="W02", uvrange=">20lambda", delay_reference=str(table),
                           sources=("CasA",), min_elevation=10.0)
    return phaseref_entries(ms, fluxcal="F", phasecal="P", targets=("T",), bpcal="B",
                            fluxcal_model="15,-0.5,1.4GHz", refant="W02", skymodel=str(table))


@pytest.mark.parametrize("command", sorted(FLOW_OPTIONS))
def test_flow_options_are_the_options_of_its_steps(command, tmp_path):
    """`radiocal lwa` and `radiocal phaseref` run a packaged pipeline (the lwa flow: flag, ateam,
    sky_bandpass, ...): an option that sets a step's option has that option's name, and the
    value it gives passes the step's YAML checks."""
    from radiocal.engine.pipeline import load_pipeline

    names = {p.name for p in cli.commands[command].params if p.name != "help"}
    entries = _flow_entries(command, tmp_path)
    steps = load_pipeline(entries)
    given = {key for entry in entries for key in entry if key != "step"}
    fields = {f.name for step in steps for f in dataclasses.fields(step.config)}
    assert names - FLOW_OPTIONS[command] <= given & fields
