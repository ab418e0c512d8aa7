"""WSClean on a simulated MS: sources where and as bright as they are, -shift, columns, failures."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest

from radiocal.errors import InputError
from radiocal.imaging import ImagerError, ImagerNotFoundError, ImagingOptions, run_wsclean
from radiocal.imaging.fits import read_fits, sky_to_pixel
from radiocal.astro import format_dec, format_ra
from radiocal.imaging.wsclean import wsclean_version
from tests.imaging.conftest import CAL_FLUX, peak


def _options(sky, **changes) -> ImagingOptions:
    values = dict(size=sky["size"], scale=sky["scale"], niter=200, weight="natural",
                  field="TGT", threads=1)
    values.update(changes)
    return ImagingOptions(**values)


def _tree_digest(path) -> str:
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            digest.update(name.encode())
            digest.update(Path(root, name).read_bytes())
    return digest.hexdigest()


def test_point_source_position_and_flux(wsclean, point_ms, sky, tmp_path):
    before = _tree_digest(point_ms)
    result = run_wsclean(point_ms, tmp_path / "img" / "tgt", _options(sky))
    assert result.column == "CORRECTED_DATA"
    assert result.images == [tmp_path / "img" / "tgt-image.fits"]
    assert {p.name for p in result.files} >= {"tgt-image.fits", "tgt-dirty.fits",
                                             "tgt-residual.fits", "tgt-psf.fits"}
    assert result.log.exists() and "WSClean" in result.log.read_text()

    header, data = read_fits(result.images[0])
    x, y, value = peak(data[0, 0])
    # l > 0 is east, where RA increases: to the left of the centre (CDELT1 < 0)
    centre = sky["size"] // 2
    assert header["CDELT1"] < 0
    assert abs(x - (centre - sky["offset"][0])) <= 1 and abs(y - (centre + sky["offset"][1])) <= 1
    ex, ey = sky_to_pixel(header, sky["ra"], sky["dec"])
    assert abs(x - ex) <= 1 and abs(y - ey) <= 1
    assert value == pytest.approx(sky["flux"], rel=0.1)
    # nothing else of note: the residual is noise
    _, residual = read_fits(tmp_path / "img" / "tgt-residual.fits")
    assert np.abs(residual).max() < 0.1 * sky["flux"]
    assert _tree_digest(point_ms) == before, "the input MS changed"


def test_shift_puts_the_source_at_the_centre(wsclean, point_ms, sky, tmp_path):
    shift = (format_ra(sky["ra"]), format_dec(sky["dec"]))
    result = run_wsclean(point_ms, tmp_path / "shifted", _options(sky, shift=shift))
    assert "-shift" in result.command
    header, data = read_fits(result.images[0])
    x, y, value = peak(data[0, 0])
    centre = sky["size"] // 2
    assert abs(x - centre) <= 1 and abs(y - centre) <= 1
    assert value == pytest.approx(sky["flux"], rel=0.1)
    # WSClean 3 keeps the tangent point at the phase centre: the header still maps it exactly
    ex, ey = sky_to_pixel(header, sky["ra"], sky["dec"])
    assert abs(ex - centre) < 0.01 and abs(ey - centre) < 0.01


def test_field_and_column_selection(wsclean, point_ms, data_only_ms, sky, tmp_path):
    # Field CAL: its source is at its own phase centre
    result = run_wsclean(point_ms, tmp_path / "cal", _options(sky, field="CAL", niter=0))
    x, y, value = peak(read_fits(result.images[0])[1][0, 0])
    assert (abs(x - sky["size"] // 2), abs(y - sky["size"] // 2)) <= (1, 1)
    assert value == pytest.approx(CAL_FLUX, rel=0.1)
    # DATA of the target holds only noise: no source where CORRECTED_DATA has one
    result = run_wsclean(point_ms, tmp_path / "data", _options(sky, column="DATA", niter=0))
    assert result.column == "DATA" and "DATA" in result.command
    assert read_fits(result.images[0])[1].max() < 0.2 * sky["flux"]
    # Without CORRECTED_DATA the default falls back to DATA; asking for it is an error
    result = run_wsclean(data_only_ms, tmp_path / "raw", _options(sky, niter=0))
    assert result.column == "DATA"
    with pytest.raises(InputError, match="has no CORRECTED_DATA column"):
        run_wsclean(data_only_ms, tmp_path / "raw2", _options(sky, column="CORRECTED_DATA"))


def test_channels_out_and_polarizations(wsclean, point_ms, sky, tmp_path):
    from radiocal.errors import ConfigError

    cube = dict(niter=50, channels_out=2, join_channels=True, polarizations="I,V")
    if wsclean_version(wsclean) <= (3, 1, 0):
        # WSClean 3.1 stops with a CFITSIO error in this mode: refused up front, with the remedy
        with pytest.raises(ConfigError, match="join_polarizations"):
            run_wsclean(point_ms, tmp_path / "refused", _options(sky, **cube))
    result = run_wsclean(point_ms, tmp_path / "cube", _options(sky, **cube, join_polarizations=True))
    assert "-join-polarizations" in result.command
    names = {p.name for p in result.images}
    assert names == {f"cube-{c}-{p}-image.fits" for c in ("0000", "0001", "MFS") for p in "IV"}
    assert "-MFS-" in result.images[0].name
    by_name = {p.name: read_fits(p)[1][0, 0] for p in result.images}
    for channel in ("0000", "0001", "MFS"):
        stokes_i = by_name[f"cube-{channel}-I-image.fits"]
        stokes_v = by_name[f"cube-{channel}-V-image.fits"]
        assert peak(stokes_i)[2] == pytest.approx(sky["flux"], rel=0.15)
        assert np.abs(stokes_v).max() < 0.1 * sky["flux"]   # unpolarised source


def test_wsclean_failure_is_one_line_from_its_log(wsclean, point_ms, sky, tmp_path):
    with pytest.raises(ImagerError) as err:
        run_wsclean(point_ms, tmp_path / "bad", _options(sky, extra_args=("-no-such-option",)))
    message = str(err.value)
    assert "\n" not in message
    assert message.startswith("wsclean failed (exit ")
    assert "no-such-option" in message and "bad-wsclean.log" in message


def test_absent_wsclean(point_ms, sky, tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("RADIOCAL_WSCLEAN", raising=False)
    with pytest.raises(ImagerNotFoundError, match="^wsclean not found: install the Debian/Ubuntu "
                                                  "package 'wsclean' or set RADIOCAL_WSCLEAN$"):
        run_wsclean(point_ms, tmp_path / "none", _options(sky))
    monkeypatch.setenv("RADIOCAL_WSCLEAN", str(tmp_path / "nowhere" / "wsclean"))
    with pytest.raises(ImagerNotFoundError, match="RADIOCAL_WSCLEAN=.*nowhere/wsclean is not an"):
        run_wsclean(point_ms, tmp_path / "none", _options(sky))
    assert not list(tmp_path.glob("none*"))


def test_existing_output_and_inputs_are_protected(wsclean, point_ms, sky, tmp_path):
    from radiocal.errors import ConfigError, OutputExistsError

    options = _options(sky, niter=0, size=64)
    first = run_wsclean(point_ms, tmp_path / "again", options)
    stamp = first.images[0].stat().st_mtime_ns
    with pytest.raises(OutputExistsError, match="--overwrite"):
        run_wsclean(point_ms, tmp_path / "again", options)
    assert first.images[0].stat().st_mtime_ns == stamp
    second = run_wsclean(point_ms, tmp_path / "again", options, overwrite=True)
    assert second.images == first.images
    with pytest.raises(ConfigError, match="inside the input"):
        run_wsclean(point_ms, Path(point_ms) / "img", options)


def test_simulator_background_source_lands_at_its_l_m(wsclean, sky, tmp_path):
    from radiocal.store import schema as S
    from radiocal.ms.write import write_ms
    from radiocal.simulate import FieldSpec, PointSource, SimConfig, simulate
    from tests.imaging.conftest import DEC0, RA0

    config = SimConfig(n_antennas=10, spws=((1.30e9, 4.0e6, 4),), schedule=((0, 8),),
                       integration_time=300.0, noise=0.01, model_column=True,
                       fields=(FieldSpec("TGT", RA0, DEC0, "target", flux=0.0),),
                       background=(PointSource(sky["l"], sky["m"], sky["flux"]),))
    datasets = [ds.assign({S.VISIBILITY_CORRECTED: ds[S.VISIBILITY_MODEL]})
                for ds in simulate(config).datasets]
    write_ms(datasets, tmp_path / "sim.ms")
    result = run_wsclean(tmp_path / "sim.ms", tmp_path / "sim", _options(sky, field=""))
    header, data = read_fits(result.images[0])
    x, y, _ = peak(data[0, 0])
    ex, ey = sky_to_pixel(header, sky["ra"], sky["dec"])
    assert abs(x - ex) <= 1 and abs(y - ey) <= 1
