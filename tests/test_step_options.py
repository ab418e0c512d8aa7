"""One name per option: every step's options under the same names in the YAML step config, the
library function and the CLI command (issue 15).

The library functions are made from the configs, so they must match exactly. ``radiocal solve``
takes its options from ``SolveConfig`` and ``radiocal flag`` its step options from
``FlagConfig`` (``cli.config_options``); the other CLI commands are still written by hand: their differences from the YAML today are listed in
``CLI_DRIFT``, and the test fails when a difference appears or disappears, so the list stays the
truth.
"""

from __future__ import annotations

import dataclasses
import inspect

import click
import pytest

import radiocal
from radiocal.api import STEP_FUNCTIONS
from radiocal.cli.main import cli
from radiocal.registry import all_steps

# registered step -> CLI command that does the same work
CLI_COMMANDS = {"convert": "convert", "flag": "flag", "calibrate": "calibrate", "solve": "solve",
                "applycal": "apply", "dynspec": "dynspec", "export": "export", "image": "image"}

# step -> (YAML-only options, CLI-only options): today's drift, to be closed by generating the
# CLI from the configs (issue 15). Arguments (STORE, IN.ms, OUTPUT) are where a command reads
# and writes; a pipeline gets those from the runner, so they are not counted as CLI-only (an
# argument named like an option, solve's KIND, matches it).
CLI_DRIFT = {
    "convert": ({"chunk_mb", "ms"}, {"output", "overwrite"}),
    "flag": ({"save_version"},
             {"antenna", "correlation", "field", "intent", "scan", "show_strategy", "spw",
              "timerange", "uvrange", "version_name"}),
    "calibrate": (set(), {"casa_tables"}),
    "solve": (set(), {"overwrite"}),
    "applycal": (set(), {"field"}),
    "dynspec": ({"exclude_baselines", "max_gap_rows", "tb_distance_pc", "tb_radius_rsun"},
                {"exclude_baseline", "overwrite", "tb"}),
    "export": ({"path"}, {"antenna", "correlation", "field", "intent", "scan", "spw", "timerange",
                          "uvrange"}),
    "image": ({"executable", "extra_args", "fields", "join_polarizations", "ms", "polarizations",
               "required"},
              {"extra", "field", "join_pols", "maxuv_l", "multiscale", "pol", "threshold",
               "wsclean"}),
}


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


def test_every_transform_and_sink_of_radiocal_has_a_library_function():
    # ateam, sky_bandpass (the LWA sequence) and report (a run's QA) are not yet library calls
    ours = {name for name, spec in all_steps().items() if spec.run.__module__.startswith("radiocal.")}
    missing = ours - set(STEP_FUNCTIONS.values()) - {"convert"}
    assert missing == {"ateam", "sky_bandpass", "report", "image"}


@pytest.mark.parametrize("step", sorted(CLI_COMMANDS))
def test_cli_options_against_the_yaml(step):
    spellings, primary = _cli_options(cli.commands[CLI_COMMANDS[step]])
    yaml = _yaml_options(step)
    yaml_only = yaml - spellings
    cli_only = {name for name in primary if name not in yaml}
    # an option spelt both ways (--targets/--target) matches through either spelling
    cli_only -= {name for name in cli_only
                 if any(alias in yaml for alias in _aliases(cli.commands[CLI_COMMANDS[step]], name))}
    assert (yaml_only, cli_only) == CLI_DRIFT[step]


def _aliases(command, name):
    for param in command.params:
        names = [o.lstrip("-").replace("-", "_") for o in param.opts if o.startswith("--")]
        if names and names[0] == name:
            return names
    return []
