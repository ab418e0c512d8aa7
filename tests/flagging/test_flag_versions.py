"""Flag versions in a store: save, list, restore (replace/or/and), delete, and their errors."""

from __future__ import annotations

import numpy as np
import pytest

from radiocal.errors import ConfigError, InputError, OutputExistsError
from radiocal.store import flag_versions as fv
from radiocal.store import schema as S
from radiocal.store.zarr_store import open_store, update_store, write_store


@pytest.fixture
def store(tmp_path, small_sim):
    path = tmp_path / "s.zarr"
    write_store(small_sim.datasets[:2], path)
    return path


def _flags(store):
    return {ds.attrs[S.ATTR_PARTITION]: ds[S.FLAG].values for ds in open_store(store)}


def _set_flags(store, fn):
    """Replace each partition's FLAG by ``fn(partition name, current flags)``."""
    datasets = open_store(store)
    updated = [ds.assign({S.FLAG: (ds[S.FLAG].dims,
                                   fn(ds.attrs[S.ATTR_PARTITION], ds[S.FLAG].values))})
               for ds in datasets]
    for ds in updated:
        ds[S.FLAG].encoding = {}
    update_store([ds.load() for ds in updated], store, [S.FLAG])


def test_save_list_restore_delete_roundtrip(store):
    original = _flags(store)
    fv.save_flag_version(store, "orig", "as converted")
    assert [v["name"] for v in fv.list_flag_versions(store)] == ["orig"]
    assert fv.list_flag_versions(store)[0]["comment"] == "as converted"

    _set_flags(store, lambda name, f: np.ones_like(f))
    fv.save_flag_version(store, "all")
    assert [v["name"] for v in fv.list_flag_versions(store)] == ["orig", "all"]
    fv.restore_flag_version(store, "orig")
    for name, flag in _flags(store).items():
        np.testing.assert_array_equal(flag, original[name])

    fv.delete_flag_version(store, "all")
    assert [v["name"] for v in fv.list_flag_versions(store)] == ["orig"]
    with pytest.raises(InputError, match="no flag version 'all'"):
        fv.restore_flag_version(store, "all")


def test_restore_merge_modes(store):
    rng = np.random.default_rng(0)
    _set_flags(store, lambda name, f: rng.random(f.shape) < 0.5)
    first = _flags(store)
    fv.save_flag_version(store, "a")
    _set_flags(store, lambda name, f: rng.random(f.shape) < 0.5)
    second = _flags(store)
    fv.restore_flag_version(store, "a", merge="or")
    for name, flag in _flags(store).items():
        np.testing.assert_array_equal(flag, first[name] | second[name])
    _set_flags(store, lambda name, f: second[name])
    fv.restore_flag_version(store, "a", merge="and")
    for name, flag in _flags(store).items():
        np.testing.assert_array_equal(flag, first[name] & second[name])
    with pytest.raises(ConfigError, match="merge must be one of"):
        fv.restore_flag_version(store, "a", merge="xor")


def test_save_refuses_existing_and_bad_names(store):
    fv.save_flag_version(store, "v1")
    with pytest.raises(OutputExistsError, match="already exists"):
        fv.save_flag_version(store, "v1")
    fv.save_flag_version(store, "v1", "again", overwrite=True)
    assert fv.list_flag_versions(store)[0]["comment"] == "again"
    for bad in ("", "a/b", ".hidden", "x y"):
        with pytest.raises(ConfigError, match="bad flag version name"):
            fv.save_flag_version(store, bad)
    with pytest.raises(InputError, match="no flag version"):
        fv.delete_flag_version(store, "nope")
    assert fv.next_version_name(store, "flag") == "flag_1"
    fv.save_flag_version(store, "flag_4")
    assert fv.next_version_name(store, "flag") == "flag_5"


def test_versions_need_a_store(tmp_path):
    with pytest.raises(InputError, match="no such store"):
        fv.list_flag_versions(tmp_path / "missing.zarr")
