"""ms.probe: inputs probed in a child process; a probe started ahead is never left behind."""

from __future__ import annotations

import os

from radiocal.ms import probe


def test_a_probe_nobody_waits_for_is_ended(vla_small_ms):
    # A command that fails after start_probe but before it reads its inputs never takes the
    # child's verdict; the child is ended and reaped at exit, not left running or a zombie.
    probe._probed.discard(os.path.realpath(vla_small_ms))   # an earlier test's probe counts
    probe.start_probe([vla_small_ms])
    started = list(probe._started.values())
    assert len(started) == 1 and started[0].returncode is None
    probe._end_started()
    assert started[0].returncode is not None
    assert probe._started == {}


def test_a_probe_started_ahead_gives_its_verdict(vla_small_ms):
    probe._probed.discard(os.path.realpath(vla_small_ms))
    probe.start_probe([vla_small_ms])
    probe.probe_measurement_sets([vla_small_ms])    # a sound MS: no error
    assert probe._started == {}


def test_copies_of_a_subtable_are_probed_once_and_a_damaged_copy_is_still_found(vla_small_ms, tmp_path):
    """The child skips subtables whose bytes it has probed already (the ANTENNA of thousands of
    OVRO-LWA files); a truncated copy differs in its bytes and is probed and named."""
    import shutil
    import subprocess

    import pytest

    from radiocal.errors import InputError

    good = str(tmp_path / "good.ms")
    bad = str(tmp_path / "bad.ms")
    shutil.copytree(vla_small_ms, good)
    shutil.copytree(vla_small_ms, bad)
    argv, env = probe._command([vla_small_ms, good])
    said = subprocess.run(argv, capture_output=True, text=True, env=env, check=True).stdout
    opened = [line.split("\t")[1] for line in said.splitlines() if line.endswith("\t(open)")]
    assert os.path.join(good, "ANTENNA") not in opened and good in opened
    column = os.path.join(bad, "ANTENNA", "table.f0")
    with open(column, "r+b") as f:
        f.truncate(os.path.getsize(column) // 2)
    probe._probed.discard(os.path.realpath(vla_small_ms))   # probed in the same child as bad.ms
    with pytest.raises(InputError, match="bad.ms"):
        probe.probe_measurement_sets([vla_small_ms, bad])
