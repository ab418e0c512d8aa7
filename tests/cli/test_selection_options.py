"""The shared --field/--scan/... options build the same Selection on every command."""

import click
from click.testing import CliRunner

from radiocal.cli.selection_options import (
    SELECTION_OPTION_NAMES,
    add_selection_options,
    selection_from_options,
    selection_options,
)
from radiocal.errors import SelectionError
from radiocal.select.selection import Selection

ALL = ("field", "scan", "spw", "antenna", "uvrange", "timerange", "correlation", "intent")


def _command(record):
    @click.command()
    @click.argument("store")
    @selection_options
    def cmd(store, **options):
        record.append(selection_from_options(**options, unrelated=store))
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


def test_help_lists_every_option_with_text():
    result = CliRunner().invoke(_command([]), ["--help"])
    assert SELECTION_OPTION_NAMES == ALL
    for name in ALL:
        assert f"--{name}" in result.output
    assert "klambda" in result.output and "BANDPASS" in result.output


def test_bad_string_raises_selection_error():
    result = CliRunner().invoke(_command([]), ["S.zarr", "--scan", "1~x"])
    assert isinstance(result.exception, SelectionError) and "'1~x'" in str(result.exception)


def test_add_selection_options_to_built_command():
    record = []

    def run(**options):
        record.append(selection_from_options(**options))

    cmd = add_selection_options(click.Command("x", callback=run))
    result = CliRunner().invoke(cmd, ["--correlation", "XX"])
    assert result.exit_code == 0, result.output
    assert record == [Selection(correlation="XX")]

