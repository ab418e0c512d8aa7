"""Compiling kernels ahead in parallel processes (radiocal.engine.numba)."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import numpy as np
import pytest

from radiocal.engine import numba as jit

KERNELS = '''
from radiocal._numba import njit


@njit
def scaled_sum(values, factor):
    total = 0.0
    for v in values:
        total += v * factor
    return total


@njit
def count_true(mask, start):
    n = start
    for m in mask:
        n += m
    return n


@njit
def twice(values, factor):
    return 2.0 * scaled_sum(values, factor)
'''


@pytest.fixture
def kernels(tmp_path, monkeypatch):
    """A fresh module of two cached kernels (its numba cache in ``tmp_path``, empty)."""
    name = f"precompile_kernels_{tmp_path.name.replace('-', '_')}"
    (tmp_path / f"{name}.py").write_text(KERNELS)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    module = importlib.import_module(name)
    yield module
    sys.modules.pop(name, None)


def test_kernels_missing_from_the_cache_compile_in_another_process_and_load_here(kernels):
    with jit.collect() as wanted:
        jit.ahead(kernels.scaled_sum, np.empty(0), 2.0)
        jit.ahead(kernels.count_true, np.empty(0, bool), 0)
        jit.ahead(kernels.scaled_sum, np.empty(3), 1.5)      # the same signature again
    assert len(wanted) == 3
    jit.compile_parallel(wanted)
    stats = [kernels.scaled_sum.stats, kernels.count_true.stats]
    # One compiled here, the other in a process and then loaded from the cache it wrote.
    assert sorted(sum(s.cache_misses.values()) for s in stats) == [0, 1]
    assert sorted(sum(s.cache_hits.values()) for s in stats) == [0, 1]
    assert kernels.scaled_sum(np.arange(3.0), 2.0) == 6.0
    assert kernels.count_true(np.array([True, False, True]), 0) == 2


def test_a_warm_cache_starts_no_process(kernels, monkeypatch):
    with jit.collect() as wanted:
        jit.ahead(kernels.scaled_sum, np.empty(0), 2.0)
        jit.ahead(kernels.count_true, np.empty(0, bool), 0)
    jit.compile_parallel(wanted)

    def no_process(*args, **kwargs):
        raise AssertionError("a process was started for cached kernels")

    monkeypatch.setattr(subprocess, "run", no_process)
    jit.compile_parallel(wanted)
    assert kernels.count_true(np.array([True]), 1) == 2


def test_ahead_outside_collect_notes_nothing(kernels):
    jit.ahead(kernels.scaled_sum, np.empty(0), 2.0)
    with jit.collect() as wanted:
        pass
    assert wanted == []
    assert kernels.scaled_sum.signatures == []


def test_a_callee_named_first_compiles_before_its_callers_and_only_for_them(kernels):
    with jit.collect() as wanted:
        jit.ahead(kernels.scaled_sum, np.empty(0), 2.0, first=True)
        jit.ahead(kernels.twice, np.empty(0), 2.0)
        jit.ahead(kernels.count_true, np.empty(0, bool), 0)
    jit.compile_parallel(wanted)
    # The callee compiled here, first; the caller compiled here or elsewhere, loaded from the cache.
    assert sum(kernels.scaled_sum.stats.cache_misses.values()) == 1
    assert kernels.twice(np.arange(3.0), 1.0) == 6.0


def test_a_callee_named_first_is_left_alone_when_its_callers_are_cached(kernels):
    with jit.collect() as wanted:
        jit.ahead(kernels.count_true, np.empty(0, bool), 0)
    jit.compile_parallel(wanted)
    with jit.collect() as wanted:
        jit.ahead(kernels.scaled_sum, np.empty(0), 2.0, first=True)
        jit.ahead(kernels.count_true, np.empty(0, bool), 0)
    jit.compile_parallel(wanted)
    assert kernels.scaled_sum.signatures == []


def _manifest(tmp_path, monkeypatch, kernels, entries):
    path = tmp_path / "kernels.json"
    path.write_text(json.dumps({"later": entries}))
    monkeypatch.setattr(jit, "manifest_path", lambda: path)


def test_prewarm_compiles_the_steps_kernels_into_the_cache_in_the_background(
        kernels, tmp_path, monkeypatch):
    described = [jit._describe(numba.typeof(a)) for a in (np.empty(0), 2.0)]
    _manifest(tmp_path, monkeypatch, kernels,
              [[kernels.__name__, "scaled_sum", described],
               [kernels.__name__, "no_such_kernel", described]])   # stale: skipped
    jit.prewarm(["earlier"])                 # no kernels listed for it: no process
    assert not jit._BACKGROUND
    jit.prewarm(["earlier", "later"])
    (proc, _), = jit._BACKGROUND
    assert proc.wait(timeout=120) == 0
    jit._end_background()
    assert kernels.scaled_sum(np.arange(3.0), 2.0) == 6.0
    assert sum(kernels.scaled_sum.stats.cache_hits.values()) == 1   # compiled over there
    jit.prewarm(["later"])                   # all cached now
    assert not jit._BACKGROUND


def test_compiling_processes_import_this_radiocal_from_another_checkout(
        kernels, tmp_path, monkeypatch):
    """Run from a directory holding another radiocal (a checkout of another version), the
    compiling processes still import this one (``-m`` puts the working directory first)."""
    decoy = tmp_path / "checkout"
    (decoy / "radiocal").mkdir(parents=True)
    (decoy / "radiocal" / "__init__.py").write_text("raise ImportError('another radiocal')\n")
    monkeypatch.chdir(decoy)
    described = [jit._describe(numba.typeof(a)) for a in (np.empty(0), 2.0)]
    _manifest(tmp_path, monkeypatch, kernels, [[kernels.__name__, "scaled_sum", described]])
    jit.prewarm(["later"])
    (proc, _), = jit._BACKGROUND
    assert proc.wait(timeout=120) == 0
    jit._end_background()
    assert kernels.scaled_sum(np.arange(3.0), 2.0) == 6.0
    assert sum(kernels.scaled_sum.stats.cache_hits.values()) == 1   # compiled over there


def test_the_manifests_entries_name_kernels_and_types():
    listed = json.loads(jit.manifest_path().read_text())
    assert listed
    for step, entries in listed.items():
        for module, name, descriptions in entries:
            kernel = getattr(importlib.import_module(module), name)
            assert hasattr(kernel, "compile"), (step, module, name)
            tuple(jit._rebuild(d) for d in descriptions)


CALLEE = '''
from radiocal._numba import njit


@njit
def offset(x):
    return x + {offset}
'''

CALLER = '''
from radiocal._numba import njit
from cachepkg.callee import offset


@njit
def twice(x):
    return 2.0 * offset(x)
'''


def test_a_cached_caller_is_compiled_again_after_an_edit_of_its_callees_file(tmp_path):
    package = tmp_path / "cachepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "callee.py").write_text(CALLEE.format(offset="1.0"))
    (package / "caller.py").write_text(CALLER)
    root = str(Path(jit.__file__).resolve().parents[2])
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(tmp_path), root]))
    script = ("from cachepkg.caller import twice; "
              "print(twice(1.0), sum(twice.stats.cache_hits.values()))")

    def run():
        done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                              capture_output=True, text=True, check=True)
        value, hits = done.stdout.split()
        return float(value), int(hits)

    assert run() == (4.0, 0)
    assert run() == (4.0, 1)              # unchanged sources: from the cache
    # numba alone keeps the caller's entry (its own file is unchanged) and the old callee in it
    (package / "callee.py").write_text(CALLEE.format(offset="20.0"))
    assert run() == (42.0, 0)
    assert run() == (42.0, 1)


# A callee large enough (numpy's sort and median: more than radiocal._numba._INLINABLE_FUNCTIONS
# functions) that its caller's code calls it rather than holding it
LARGE_CALLEE = '''
import numpy as np
from radiocal._numba import njit


@njit
def spread(x):
    return np.median(x) + np.sort(x)[0]
'''

LARGE_CALLER = '''
from radiocal._numba import njit
from cachepkg.callee import spread


@njit
def twice(x):
    return 2.0 * spread(x)
'''


def test_a_cached_caller_whose_callee_lost_its_cache_entry_compiles_again(tmp_path):
    """The callee compiled again defines another symbol than the one the cached caller calls:
    loading that caller crashed the process (a callee's save that failed, a cache cleaned in
    part). Its entry is a miss now."""
    package = tmp_path / "cachepkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "callee.py").write_text(LARGE_CALLEE)
    (package / "caller.py").write_text(LARGE_CALLER)
    root = str(Path(jit.__file__).resolve().parents[2])
    cache = tmp_path / "cache"
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache),
               PYTHONPATH=os.pathsep.join([str(tmp_path), root]))
    script = ("import numpy as np; from cachepkg.caller import twice; "
              "print(twice(np.arange(5.0)), sum(twice.stats.cache_hits.values()))")

    def run():
        done = subprocess.run([sys.executable, "-c", script], env=env, cwd=tmp_path,
                              capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        value, hits = done.stdout.split()
        return float(value), int(hits)

    assert run() == (4.0, 0)
    assert run() == (4.0, 1)
    lost = list(cache.rglob("callee.spread-*"))
    assert lost
    for path in lost:
        path.unlink()
    assert run() == (4.0, 0)
    assert run() == (4.0, 1)


LONG_AND_SHORT = '''
from radiocal._numba import njit


@njit
def plus_one(x):
    return x + 1.0


@njit
def weighted_sum(values):
    total = 0.0
    for v in values:
{branches}
    return total


@njit
def both(values):
    return plus_one(values[0]) + weighted_sum(values)
'''

REPORT = """
import json
from radiocal import _numba
from linkpkg.kernels import both, weighted_sum
import numpy as np
value = both(np.arange(100.0))
code = weighted_sum.overloads[weighted_sum.signatures[0]].library
module = code._get_module_for_linking()
print(json.dumps({
    "value": value, "hits": sum(both.stats.cache_hits.values()),
    "called": [name for _, name, _ in both.overloads[both.signatures[0]].library._radiocal_calls],
    "functions": sum(1 for fn in module.functions if not fn.is_declaration),
    "instructions": _numba._instructions(code)}))
"""


def test_a_long_kernel_callee_is_called_a_short_one_linked_and_the_caller_cached(tmp_path):
    package = tmp_path / "linkpkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    branches = "\n".join(f"        if v > {k}.5:\n            total += {k + 1}.0 * v"
                         for k in range(160))
    (package / "kernels.py").write_text(LONG_AND_SHORT.format(branches=branches))
    root = str(Path(jit.__file__).resolve().parents[2])
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONPATH=os.pathsep.join([str(tmp_path), root]))
    values = np.arange(100.0)
    expected = 1.0 + sum(sum(k + 1.0 for k in range(160) if v > k + 0.5) * v for v in values)

    def run():
        done = subprocess.run([sys.executable, "-c", REPORT], env=env, cwd=tmp_path,
                              capture_output=True, text=True, check=True)
        return json.loads(done.stdout)

    from radiocal import _numba
    cold = run()
    # few functions, many instructions: the length alone makes it a call
    assert cold["functions"] <= _numba._INLINABLE_FUNCTIONS
    assert cold["instructions"] > _numba._INLINABLE_INSTRUCTIONS
    assert cold["called"] == ["weighted_sum"]
    assert cold["value"] == pytest.approx(expected) and cold["hits"] == 0
    warm = run()    # the caller from the cache, its long callee loaded before it
    assert warm["value"] == cold["value"] and warm["hits"] == 1
