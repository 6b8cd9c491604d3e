"""hsikit.unmix and `hsikit unmix`: xarray results, georeferenced outputs, nodata, libraries, bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

import hsikit
from hsikit.cli import main
from hsikit.errors import MetadataError, UsageError
from hsikit.io.envi import read_spectral_library
from hsikit.metrics import sad

TILE = ("enmap_potsdam_tiles", "images", "enmap_potsdam_tile_64_0.tif")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture()
def tile(shared_data: Path) -> Path:
    return shared_data.joinpath(*TILE)


def _csv_library(path: Path, wavelength: np.ndarray, spectra: np.ndarray, names: list[str]) -> Path:
    rows = ["wavelength_nm," + ",".join(names)]
    rows += [f"{w}," + ",".join(f"{v:.6g}" for v in spectra[i]) for i, w in enumerate(wavelength)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_unmix_moffett_returns_xarray_and_matches_gt(shared_data: Path) -> None:
    import hsikit.unmix.api  # noqa: F401  (the package is bound over the lazy API name: it must stay callable)

    ab, em = hsikit.unmix(shared_data / "moffett" / "moffett.mat", 3, method="vca-fcls", seed=0)
    assert ab.dims == ("endmember", "y", "x") and ab.shape == (3, 50, 50)
    assert em.dims == ("band", "endmember") and em.shape == (184, 3) and "wavelength" in em.coords
    np.testing.assert_allclose(ab.sum("endmember").values, 1.0, atol=1e-5)
    from scipy.io import loadmat

    gt = loadmat(shared_data / "moffett" / "moffett.mat")["GT"].T
    assert sad(em.values, gt).mean < 0.2


def test_unmix_writes_named_georeferenced_bands_csv_png_and_nodata(tile: Path, tmp_path: Path) -> None:
    cube = hsikit.open(tile)
    data = cube.values.copy()
    nd = cube.rio.nodata
    data[:, :3, :5] = nd  # a nodata corner
    cube = cube.copy(data=data)
    out = tmp_path / "fractions.tif"
    r = hsikit.unmix(cube, 3, method="nfindr-fcls", out=out, endmember_names=["soil", "veg", "urban"])
    assert np.isnan(r.abundances.values[:, :3, :5]).all() and np.isfinite(r.abundances.values[:, 3:, :]).all()
    with rasterio.open(out) as ds:
        assert ds.count == 4 and ds.descriptions == ("soil", "veg", "urban", "residual_rmse")
        assert ds.crs == cube.rio.crs and ds.transform == cube.rio.transform()
        arr = ds.read()
    assert np.isnan(arr[:, :3, :5]).all()
    np.testing.assert_allclose(arr[:3, 3:], r.abundances.values[:, 3:], atol=1e-6)
    np.testing.assert_allclose(arr[3, 3:], r.residual_rmse.values[3:], rtol=1e-5)
    lib = read_spectral_library(r.paths["endmembers_csv"])  # the CSV reads back as a library
    assert list(lib["spectrum_name"].values) == ["soil", "veg", "urban"]
    np.testing.assert_allclose(lib["wavelength"].values, r.endmembers["wavelength"].values, atol=1e-3)
    np.testing.assert_allclose(lib.values.T, r.endmembers.values, rtol=1e-6)
    from PIL import Image

    with Image.open(r.paths["endmembers_png"]) as im:
        assert im.format == "PNG" and im.size[0] > 300


def test_unmix_library_methods_and_wavelength_errors(tile: Path, shared_data: Path, tmp_path: Path) -> None:
    cube = hsikit.open(tile)
    full = read_spectral_library(shared_data / "earthlib_spectral_library" / "optimized.sli")
    r = hsikit.unmix(cube, method="sunsal", library=full, lam=1e-4)
    assert r.abundances.sizes["endmember"] == 313 and float(r.abundances.min()) >= 0
    assert r.info["k_source"] == "library" and float(r.residual_rmse.mean()) < 0.06
    lib = full.isel(spectrum=slice(0, 40))
    wl = lib["wavelength"].values
    path = _csv_library(tmp_path / "lib.csv", wl, lib.values.T, [f"s{i}" for i in range(40)])
    f = hsikit.unmix(tile, method="fcls", library=path)
    np.testing.assert_allclose(f.abundances.sum("endmember").values, 1.0, atol=1e-5)
    far = _csv_library(tmp_path / "far.csv", wl + 5000.0, lib.values.T, [f"s{i}" for i in range(40)])
    with pytest.raises(MetadataError, match="do not overlap"):
        hsikit.unmix(tile, method="sunsal", library=far)
    with pytest.raises(MetadataError, match="no wavelengths"):
        hsikit.unmix(shared_data / "moffett" / "moffett.mat", method="sunsal", library=path)
    with pytest.raises(UsageError, match="needs a spectral library"):
        hsikit.unmix(tile, method="sunsal")


def test_unmix_auto_k_rrlbs_guidance(shared_data: Path) -> None:
    r = hsikit.unmix(shared_data / "moffett" / "moffett.mat", "auto", method="vca-fcls", k_method="hfc")
    assert r.info["k_source"] == "hfc" and 2 <= r.info["n_endmembers"] <= 15
    g = hsikit.unmix(shared_data / "moffett" / "moffett.mat", 3, method="rrlbs")
    assert g.guidance is not None and g.guidance.shape == (50, 50) and g.info["converged"]


def test_cli_unmix_and_one_line_errors(tile: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "f.tif"
    assert main(["unmix", str(tile), str(out), "--endmembers", "3", "--method", "sivm-fcls", "--seed", "2"]) == 0
    assert "wrote" in capsys.readouterr().out and out.exists() and (tmp_path / "f_endmembers.png").exists()
    cases = [
        (["--endmembers", "300"], f"{tile.name}: 300 endmembers requested but the scene has only 218 bands"),
        (["--endmembers", "x"], "integer or 'auto'"),
        (["--method", "magic", "--endmembers", "3"], "unknown unmixing method"),
        (["--method", "vca-fcls", "--lam", "1"], "--lam applies"),
    ]
    for extra, message in cases:
        assert main(["unmix", str(tile), str(tmp_path / "g.tif"), *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_cli_k_larger_than_pixels(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cube = hsikit.make_cube(np.random.default_rng(0).random((30, 2, 3)), wavelength=np.linspace(400, 900, 30))
    src = tmp_path / "tiny.tif"
    hsikit.save(cube, src)
    assert main(["unmix", str(src), str(tmp_path / "o.tif"), "--endmembers", "7"]) == 2
    assert "tiny.tif: 7 endmembers requested but the scene has only 6 valid pixels" in capsys.readouterr().err


def test_cli_library_errors_exit_2(tile: Path, shared_data: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wl = np.linspace(3000.0, 5000.0, 20)
    far = _csv_library(tmp_path / "far.csv", wl, np.random.default_rng(0).random((20, 2)), ["a", "b"])
    assert main(["unmix", str(tile), str(tmp_path / "o.tif"), "--method", "sunsal", "--library", str(far)]) == 2
    err = capsys.readouterr().err
    assert "do not overlap the scene's" in err and err.count("\n") == 1
    near = _csv_library(tmp_path / "near.csv", np.linspace(400, 2500, 20), np.random.default_rng(0).random((20, 2)), ["a", "b"])
    moffett = shared_data / "moffett" / "moffett.mat"
    assert main(["unmix", str(moffett), str(tmp_path / "m.tif"), "--method", "fcls", "--library", str(near)]) == 2
    err = capsys.readouterr().err
    assert "has no wavelengths" in err and err.count("\n") == 1


def test_unmix_streams_windows_from_a_sample_and_reads_the_output_lazily(tile: Path, tmp_path: Path, monkeypatch) -> None:
    """Endmembers from a regular grid when the scene exceeds SAMPLE_PIXELS, abundances window by window
    (several windows here), the same numbers with and without ``out``, and equal to one whole-scene FCLS
    with those endmembers; the returned maps read the written file lazily."""
    import torch

    from hsikit.unmix import api
    from hsikit.unmix.abundances import fcls

    monkeypatch.setattr(api, "SAMPLE_PIXELS", 150)
    monkeypatch.setattr(api, "TILE", 12)
    cube = hsikit.open(tile)  # 32 x 32 pixels
    mem = hsikit.unmix(cube, 3, method="vca-fcls", seed=1, progress=False)
    assert mem.info["sample_step"] == 3 and mem.info["sample_pixels"] == 121 and mem.info["windows"] == 9
    assert mem.info["valid_pixels"] == 32 * 32
    good = np.flatnonzero(cube["bbl"].values)
    phys = np.asarray(cube.isel(band=good).values, np.float64) * np.asarray(cube["scale"].values)[good, None, None]
    for (r, c), j in zip(mem.info["endmember_pixels_yx"], range(3)):
        assert r % 3 == 1 and c % 3 == 1  # on the grid (offset step // 2)
        np.testing.assert_allclose(mem.endmembers.values[:, j], phys[:, r, c], rtol=1e-6)
    whole = fcls(torch.as_tensor(mem.endmembers.values), phys.reshape(good.size, -1)).numpy().reshape(3, 32, 32)
    np.testing.assert_allclose(mem.abundances.values, whole, atol=1e-6)
    out = tmp_path / "streamed.tif"
    disk = hsikit.unmix(cube, 3, method="vca-fcls", seed=1, out=out, progress=False)
    assert not disk.abundances.variable._in_memory  # file-backed until read
    np.testing.assert_allclose(disk.endmembers.values, mem.endmembers.values)
    np.testing.assert_allclose(disk.abundances.values, mem.abundances.values, atol=1e-7)
    np.testing.assert_allclose(disk.residual_rmse.values, mem.residual_rmse.values, rtol=1e-6)
    np.testing.assert_array_equal(disk.abundances["x"].values, cube["x"].values)
    assert list(disk.abundances["endmember"].values) == ["endmember_1", "endmember_2", "endmember_3"]
