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
