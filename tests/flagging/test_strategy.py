"""Strategy files: parsing, validation and the YAML round trip."""

from __future__ import annotations

import pytest

from radiocal.errors import ConfigError, InputError
from radiocal.flagging.strategy import (
    DEFAULT_STRATEGY,
    FLAGGERS,
    load_strategy,
    parse_strategy,
    strategy_to_yaml,
)


def test_default_strategy_round_trips_through_yaml(tmp_path):
    default = load_strategy("default")
    assert [name for name, _ in default.flaggers] == [f["flagger"] for f in DEFAULT_STRATEGY["flaggers"]]
    path = tmp_path / "copy.yaml"
    path.write_text(strategy_to_yaml(default))
    assert load_strategy(path) == default


def test_every_flagger_is_reachable_from_yaml(tmp_path):
    path = tmp_path / "all.yaml"
    path.write_text("name: all\npropagate_correlations: false\nflaggers:\n"
                    + "".join(f"  - flagger: {name}\n" for name in FLAGGERS))
    strategy = load_strategy(path)
    assert [n for n, _ in strategy.flaggers] == list(FLAGGERS)
    assert strategy.propagate_correlations is False


@pytest.mark.parametrize("text,message", [
    ("- 1\n", "expected a mapping"),
    ("flaggers: []\n", "non-empty list"),
    ("flaggers:\n  - flagger: nope\n", "unknown flagger 'nope'"),
    ("flaggers:\n  - flagger: clip\n    max: 3\n", "unknown option(s) max"),
    ("flaggers:\n  - clip\n", "needs a 'flagger: NAME'"),
    ("colour: red\nflaggers:\n  - flagger: clip\n", "unknown key(s) colour"),
    ("column: DATA\nflaggers:\n  - flagger: clip\n", "column 'DATA'"),
    ("propagate_correlations: maybe\nflaggers:\n  - flagger: clip\n", "true or false"),
    ("flaggers: [\n", "not valid YAML"),
    ("flaggers:\n  - flagger: spectral\n    scans: sometimes\n", "scans must be one of"),
    ("flaggers:\n  - flagger: spectral\n    subtract_model: 1\n", "subtract_model must be"),
    ("flaggers:\n  - flagger: sumthreshold\n    degree: 4\n", "degree must be 0, 1, 2 or 3"),
    ("flaggers:\n  - flagger: mad\n    degree: -1\n", "degree must be 0, 1, 2 or 3"),
    ("long_scan: 0\nflaggers:\n  - flagger: clip\n", "long_scan must be"),
    ("long_scan: yes\nflaggers:\n  - flagger: clip\n", "long_scan must be"),
])
def test_bad_strategy_files_give_one_line_errors(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_strategy(path)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_missing_strategy_file(tmp_path):
    with pytest.raises(InputError, match="no such strategy file"):
        load_strategy(tmp_path / "none.yaml")


def test_antenna_lists_become_tuples():
    strategy = parse_strategy({"flaggers": [{"flagger": "antenna_health", "antennas": ["ea01", 3]}]})
    assert strategy.flaggers[0][1].antennas == ("ea01", 3)


def test_every_shipped_strategy_parses_and_round_trips(tmp_path):
    from radiocal.flagging.strategy import shipped_strategies

    names = shipped_strategies()
    assert {"generic", "ovro_lwa", "atca", "ata", "alma", "mwa"} <= set(names)
    for name in names:
        strategy = load_strategy(name)
        assert strategy.name == name
        path = tmp_path / f"{name}.yaml"
        path.write_text(strategy_to_yaml(strategy))
        assert load_strategy(path) == strategy


@pytest.mark.parametrize("telescope,expected", [
    ("OVRO_MMA", "ovro_lwa"), ("OVRO-LWA", "ovro_lwa"), ("LWA-SV", "ovro_lwa"), ("LWASV", "ovro_lwa"),
    ("ATCA", "atca"),
    ("ata", "ata"), ("ALMA", "alma"), ("MWA", "mwa"), ("VLA", "generic"), ("EVLA", "generic"),
    (None, "generic"),
    ("", "generic"),
])
def test_default_is_the_telescope_s_shipped_strategy(telescope, expected, caplog):
    with caplog.at_level("INFO", logger="radiocal.flagging"):
        assert load_strategy("default", telescope).name == expected
    if telescope is not None:
        assert f"flagging strategy {expected!r}" in caplog.text


def test_scan_length_chooses_the_flaggers():
    from radiocal.flagging.strategy import selected_flaggers

    strategy = load_strategy("generic")
    short = [n for n, _ in selected_flaggers(strategy, strategy.long_scan - 1)]
    long = [n for n, _ in selected_flaggers(strategy, strategy.long_scan)]
    assert "spectral" in short and "sumthreshold" not in short
    assert "sumthreshold" in long and "spectral" not in long
    assert short[:3] == long[:3] == ["clip", "shadow", "antenna_health"]


