"""The flag graph names the detectors' kernels with the very argument types its tasks use, so
what is compiled ahead (in parallel processes, radiocal.engine.numba) is what runs."""

from __future__ import annotations

import dask
import pytest

from radiocal.engine import numba as jit
from radiocal.flagging import background as bg
from radiocal.flagging import kernels as k
from radiocal.flagging import spectral as sp
from radiocal.flagging.step import flag_datasets
from radiocal.flagging.strategy import parse_strategy
from radiocal.store import schema as S

SHORT = {"flaggers": [{"flagger": "spectral"}]}
LONG = {"flaggers": [{"flagger": "sumthreshold"}, {"flagger": "mad", "robust_iterations": 0}]}


@pytest.mark.parametrize("spec, kernel", [(SHORT, sp._spectral_flags),
                                          (LONG, k._sumthreshold_codes_time)])
def test_the_tasks_call_the_signature_compiled_ahead(small_sim, spec, kernel):
    ds = small_sim.datasets[0].chunk({S.TIME: 2})
    loess_before = set(bg.robust_loess_stack.overloads)
    with jit.collect() as wanted:
        (out,), _ = flag_datasets([ds], parse_strategy(spec))
    signatures = {s for kn, s, _ in wanted if kn is kernel}
    assert len(signatures) == 1
    before = set(kernel.overloads)
    assert signatures <= before   # flag_datasets compiled (or loaded) them before any compute
    with dask.config.set(scheduler="threads"):
        out[S.FLAG].data.compute()
    assert set(kernel.overloads) == before   # the tasks needed no other specialization
    # The shared LOESS callee named first is the one the detector calls (compiled here, if at all).
    shared = {s for kn, s, first in wanted if kn is bg.robust_loess_stack and first}
    assert len(shared) == 1
    assert set(bg.robust_loess_stack.overloads) - loess_before <= shared
