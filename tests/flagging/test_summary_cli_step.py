"""Flag summary, the ``radiocal flag``/``flags`` commands and the ``flag`` pipeline step."""

from __future__ import annotations

import numpy as np
import pytest

from radiocal.flagging.summary import flag_summary, format_summary
from radiocal.store import schema as S
from radiocal.store.zarr_store import open_store, write_store


@pytest.fixture
def store(tmp_path, small_sim):
    path = tmp_path / "s.zarr"
    write_store(small_sim.datasets, path)
    return path


@pytest.mark.parametrize("chunks", [None, {S.TIME: 2, S.FREQUENCY: 3}])
def test_summary_matches_numpy(small_sim, chunks):
    datasets = [ds.copy(deep=True) for ds in small_sim.datasets]
    rng = np.random.default_rng(3)
    for ds in datasets:
        ds[S.FLAG].values[...] = rng.random(ds[S.FLAG].shape) < 0.3
        ds[S.ROW_PRESENT].values[0, 0] = False
    # counted per chunk and summed: several time and frequency chunks must give the same counts
    out = flag_summary([ds.chunk(chunks) if chunks else ds for ds in datasets])
    total_f = total_n = 0
    per_ant = {}
    per_pol = {}
    for ds in datasets:
        present = np.broadcast_to(ds[S.ROW_PRESENT].values[:, :, None, None], ds[S.FLAG].shape)
        flag = ds[S.FLAG].values & present
        total_f += flag.sum()
        total_n += present.sum()
        names = ds[S.ANTENNA_NAME].values
        for b, (p, q) in enumerate(zip(ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values)):
            for a in {p, q}:
                f, n = per_ant.get(names[a], (0, 0))
                per_ant[names[a]] = (f + flag[:, b].sum(), n + present[:, b].sum())
        for i, pol in enumerate(ds[S.POLARIZATION].values):
            f, n = per_pol.get(pol, (0, 0))
            per_pol[pol] = (f + flag[..., i].sum(), n + present[..., i].sum())
    assert out["total"] == (total_f, total_n)
    assert out["antenna"] == {str(k): (int(f), int(n)) for k, (f, n) in per_ant.items()}
    assert out["correlation"] == {str(k): (int(f), int(n)) for k, (f, n) in per_pol.items()}
    assert sum(v[1] for v in out["scan"].values()) == total_n
    text = format_summary(out)
    assert "by antenna:" in text and "by scan:" in text and f"({total_f} of {total_n})" in text


def test_flag_command_flags_and_saves_a_version(store, run_cli):
    before = {ds.attrs[S.ATTR_PARTITION]: ds[S.FLAG].values for ds in open_store(store)}
    result = run_cli("flag", store)
    assert result.exit_code == 0, result.err
    assert "saved previous flags as version 'flag_1'" in result.out
    assert "nonfinite" in result.out and "zero_weight" in result.out
    after = {ds.attrs[S.ATTR_PARTITION]: ds[S.FLAG].values for ds in open_store(store)}
    assert sum(a.sum() for a in after.values()) > sum(b.sum() for b in before.values())

    listing = run_cli("flags", "list", store)
    assert listing.exit_code == 0 and "flag_1" in listing.out
    assert run_cli("flags", "save", store, "mine", "--comment", "after flag").exit_code == 0
    assert run_cli("flags", "restore", store, "flag_1").exit_code == 0
    restored = {ds.attrs[S.ATTR_PARTITION]: ds[S.FLAG].values for ds in open_store(store)}
    for name in before:
        np.testing.assert_array_equal(restored[name], before[name])
    assert run_cli("flags", "delete", store, "mine").exit_code == 0
    assert "mine" not in run_cli("flags", "list", store).out

    summary = run_cli("flags", "summary", store, "--by", "scan,correlation")
    assert summary.exit_code == 0 and "by scan:" in summary.out and "by antenna:" not in summary.out


def test_flag_command_with_selection_changes_only_the_selection(store, run_cli):
    datasets = open_store(store)
    scan = str(datasets[0].attrs[S.ATTR_SCAN])
    before = {ds.attrs[S.ATTR_PARTITION]: ds[S.FLAG].values for ds in datasets}
    result = run_cli("flag", store, "--scan", scan)
    assert result.exit_code == 0, result.err
    for ds in open_store(store):
        changed = (ds[S.FLAG].values != before[ds.attrs[S.ATTR_PARTITION]]).any()
        assert changed == (str(ds.attrs[S.ATTR_SCAN]) == scan)


def test_flag_command_bad_antennas_as_the_step(store, run_cli, tmp_path):
    """--bad-antennas / --bad-antennas-file are the flag step's options (FlagConfig)."""
    datasets = open_store(store)
    names = datasets[0][S.ANTENNA_NAME].values
    listing = tmp_path / "bad.txt"
    listing.write_text(f"# dead\n{names[2]}\n")
    result = run_cli("flag", store, "--bad-antennas", str(names[1]), "--bad-antennas-file",
                     listing, "--no-propagate")
    assert result.exit_code == 0, result.err
    for ds in open_store(store):
        a1, a2 = ds[S.BASELINE_ANTENNA1].values, ds[S.BASELINE_ANTENNA2].values
        bad = np.isin(a1, [1, 2]) | np.isin(a2, [1, 2])
        present = ds[S.ROW_PRESENT].values[:, bad]
        assert ds[S.FLAG].values[:, bad][present].all()
    missing = run_cli("flag", store, "--bad-antennas-file", tmp_path / "none.txt")
    assert missing.exit_code != 0 and missing.err.count("\n") == 1 and "none.txt" in missing.err


def test_cli_errors_are_one_line(store, run_cli, tmp_path):
    bad = run_cli("flags", "restore", store, "nope")
    assert bad.exit_code != 0 and bad.err.count("\n") == 1 and "no flag version 'nope'" in bad.err
    strategy = tmp_path / "s.yaml"
    strategy.write_text("flaggers:\n  - flagger: sumthreshold\n    treshold: 5\n")
    bad = run_cli("flag", store, "--strategy", strategy)
    assert bad.exit_code != 0 and "unknown option(s) treshold" in bad.err
    assert run_cli("flags", "summary", store, "--by", "colour").exit_code != 0
    shown = run_cli("flag", store, "--show-strategy")
    assert shown.exit_code == 0 and "flagger: sumthreshold" in shown.out


def test_flag_step_saves_incoming_flags(store, small_sim, tmp_path):
    from radiocal.engine.context import StepContext
    from radiocal.registry import get_step, make_config
    from radiocal.store.flag_versions import list_flag_versions, open_flag_version

    spec = get_step("flag")
    config = make_config(spec, {"strategy": "default"})
    context = StepContext(outdir=tmp_path, store=store, step_name="flag", index=2)
    datasets = open_store(store)
    out = spec.run(datasets, config, context)
    versions = list_flag_versions(store)
    assert [v["name"] for v in versions] == ["before_flag_1"]
    saved = open_flag_version(store, "before_flag_1")
    for ds in datasets:
        np.testing.assert_array_equal(saved[ds.attrs[S.ATTR_PARTITION]].values, ds[S.FLAG].values)
    assert sum(int(ds[S.FLAG].sum()) for ds in out) > sum(int(ds[S.FLAG].sum()) for ds in datasets)


def test_flag_step_selection_and_version_name_as_the_command(store, tmp_path):
    """The step takes the command's selection and version name (FlagConfig): flags change only
    in the selected scan, and the incoming flags are saved under the name given."""
    from radiocal.engine.context import StepContext
    from radiocal.registry import get_step, make_config
    from radiocal.store.flag_versions import list_flag_versions

    datasets = open_store(store)
    scan = str(datasets[0].attrs[S.ATTR_SCAN])
    spec = get_step("flag")
    config = make_config(spec, {"scan": scan, "version_name": "mine"})
    out = spec.run(datasets, config, StepContext(outdir=tmp_path, store=store, step_name="flag"))
    assert [v["name"] for v in list_flag_versions(store)] == ["mine"]
    for old, new in zip(datasets, out):
        changed = (new[S.FLAG].values != old[S.FLAG].values).any()
        assert changed == (str(old.attrs[S.ATTR_SCAN]) == scan)


def test_flag_command_without_saving_a_version(store, run_cli):
    from radiocal.store.flag_versions import list_flag_versions

    result = run_cli("flag", store, "--no-save-version")
    assert result.exit_code == 0, result.err
    assert "saved previous flags" not in result.out and list_flag_versions(store) == []


@pytest.mark.parametrize("command", [("flag",), ("flags", "summary")])
def test_flag_commands_run_on_the_engine(store, run_cli, monkeypatch, command):
    # --scheduler (and --workers, --chunk-mb) reach the flagger: an unreachable scheduler is the
    # engine's one-line error, where flagging on dask's default pool would ignore it and succeed.
    from radiocal.engine.cluster import Engine

    monkeypatch.setattr(Engine, "connect_timeout", "1s")
    before = sorted(p.name for p in store.rglob("*"))
    result = run_cli("--scheduler", "tcp://127.0.0.1:9", *command, store)
    assert result.exit_code != 0
    assert "cannot reach scheduler" in result.err and "Traceback" not in result.err
    assert sorted(p.name for p in store.rglob("*")) == before
