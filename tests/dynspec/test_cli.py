"""``radiocal dynspec`` and ``radiocal plot`` end to end on a small store."""

import pytest
from click.testing import CliRunner

from radiocal.cli.main import cli
from radiocal.dynspec.dataset import open_dynspec
from radiocal.store import schema as S

store_mod = pytest.importorskip("radiocal.store.zarr_store")


@pytest.fixture(scope="module")
def stores(star, tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    calibrated = store_mod.write_store(star["calibrated"], root / "cal.zarr")
    raw = star["sim"].datasets
    uncalibrated = store_mod.write_store(raw, root / "raw.zarr")
    return root, calibrated, uncalibrated


def _run(args):
    result = CliRunner().invoke(cli, ["--scheduler", "sync", *args], catch_exceptions=False)
    return result


def test_dynspec_and_plot_from_calibrated_store(stores, star):
    root, calibrated, _ = stores
    out = root / "ds.zarr"
    result = _run(["dynspec", calibrated, "--field", "STAR", "--skymodel", star["skymodel"], "-o", str(out),
                   "--timeavg", "2", "--tb-distance-pc", "6.0", "--tb-radius-rsun", "0.4"])
    assert result.exit_code == 0, result.output
    assert "calibrated data (VISIBILITY_CORRECTED)" in result.output and "minus the sky model" in result.output
    ds = open_dynspec(out)
    assert {"I", "V", "RR", "LL", "I_err", "V_err", "V_over_I", "I_lightcurve"} <= set(ds.data_vars)
    assert ds["I"].dims == (S.TIME, S.FREQUENCY) and ds["I"].attrs["units"] == "K"
    assert ds.attrs["field_name"] == "STAR" and len(ds.attrs["phase_center"]) == 2
    assert ds.attrs["timeavg"] == 2
    png = root / "ds.png"
    result = _run(["plot", str(out), "-o", str(png)])
    assert result.exit_code == 0, result.output
    assert png.stat().st_size > 20_000
    import matplotlib.image as mpimg

    image = mpimg.imread(png)
    assert image.shape[0] > 500 and image[..., :3].std() > 0.05      # not a blank canvas
    # Refuses to overwrite without --overwrite.
    result = CliRunner().invoke(cli, ["--scheduler", "sync", "dynspec", calibrated, "--field", "STAR", "-o", str(out)])
    assert result.exit_code != 0 and "already exists" in result.output


def test_dynspec_says_when_it_uses_raw_data(stores):
    root, _, uncalibrated = stores
    result = _run(["dynspec", uncalibrated, "--field", "2", "-o", str(root / "raw_ds.zarr")])
    assert result.exit_code == 0, result.output
    assert "uncalibrated DATA" in result.output
    assert open_dynspec(root / "raw_ds.zarr").attrs["data_column"] == S.VISIBILITY


def test_dynspec_unknown_field_is_one_line(stores, capsys):
    from radiocal.cli.main import main

    root, calibrated, _ = stores
    with pytest.raises(SystemExit) as exit_info:
        main(["--scheduler", "sync", "dynspec", calibrated, "--field", "NOPE", "-o", str(root / "x.zarr")])
    assert exit_info.value.code != 0
    err = capsys.readouterr().err.strip()
    assert err.startswith("radiocal: error:") and "NOPE" in err and "\n" not in err


def test_bad_tb_options(stores, capsys):
    from radiocal.cli.main import main

    root, calibrated, _ = stores
    for args, words in ((["--tb-distance-pc", "five"], "five"),
                        (["--tb-distance-pc", "5.2"], "tb_radius_rsun")):
        with pytest.raises(SystemExit) as exit_info:
            main(["--scheduler", "sync", "dynspec", calibrated, "--field", "STAR", "-o",
                  str(root / "y.zarr"), *args])
        assert exit_info.value.code != 0
        err = capsys.readouterr().err.strip()
        assert words in err and "\n" not in err
    assert not (root / "y.zarr").exists()
