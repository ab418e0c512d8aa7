"""The --field/--scan/... options, made from SelectionConfig, build the same Selection on every
command that takes them (convert, export, flag)."""

import dataclasses

import click
import pytest
from click.testing import CliRunner

from radiocal.cli.config_options import config_options
from radiocal.cli.main import cli
from radiocal.errors import SelectionError
from radiocal.select.config import SelectionConfig
from radiocal.select.selection import Selection

ALL = ("field", "scan", "spw", "antenna", "uvrange", "timerange", "correlation", "intent")


def _command(record):
    @click.command()
    @click.argument("store")
    @config_options(SelectionConfig)
    def cmd(store, **options):
        record.append(SelectionConfig(**options).selection() or Selection())
    return cmd


def test_options_build_a_selection():
    record = []
    result = CliRunner().invoke(_command(record), [
        "S.zarr", "--field", "J13*", "--spw", "0:10~20;30~40", "--antenna", "W01&E04",
        "--uvrange", "<2klambda", "--timerange", "10:00:00~10:30:00", "--correlation", "RR,LL",
        "--scan", "1~3,5", "--intent", "*BANDPASS*",
    ])
    assert result.exit_code == 0, result.output
    assert record == [Selection(field="J13*", scan="1~3,5", spw="0:10~20;30~40",
                                antenna="W01&E04", uvrange="<2klambda",
                                timerange="10:00:00~10:30:00", correlation="RR,LL",
                                intent="*BANDPASS*")]


def test_no_options_select_everything():
    record = []
    result = CliRunner().invoke(_command(record), ["S.zarr"])
    assert result.exit_code == 0 and record[0].selects_everything


@pytest.mark.parametrize("command", ["convert", "export", "flag"])
def test_help_lists_every_option_with_text(command):
    result = CliRunner().invoke(cli, [command, "--help"])
    assert tuple(f.name for f in dataclasses.fields(SelectionConfig)) == ALL
    for name in ALL:
        assert f"--{name}" in result.output
    assert "klambda" in result.output and "BANDPASS" in result.output


def test_bad_string_raises_selection_error():
    result = CliRunner().invoke(_command([]), ["S.zarr", "--scan", "1~x"])
    assert isinstance(result.exception, SelectionError) and "'1~x'" in str(result.exception)
