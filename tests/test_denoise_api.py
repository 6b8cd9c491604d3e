"""``hsikit.denoise`` and ``hsikit denoise`` on a real EnMAP tile: scaling, bad bands, nodata, seams, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hsikit
from hsikit.cli import main
from hsikit.cube import make_cube
from hsikit.data.degrade import parse_noise
from hsikit.errors import InputError, UsageError
from hsikit.metrics import psnr


@pytest.fixture(scope="module")
def noisy_tile(enmap_tile, tmp_path_factory):
    """The real EnMAP tile (reflectance x 10000, bbl=0 bands all nodata) with noniid noise on the good bands,
    written as int16 with scale 1e-4 and nodata -32768; plus the clean physical values."""
    cube = hsikit.open(enmap_tile)
    raw = np.asarray(cube.values, np.float64)
    good = np.asarray(cube["bbl"].values, bool)
    clean = raw * 1e-4
    noisy = clean.copy()
    noisy[good] = parse_noise("noniid:0.01-0.03")(torch.as_tensor(clean[good]), 0).numpy()
    stored = np.where(raw == -32768, -32768, np.clip(np.round(noisy * 1e4), -32767, 32767)).astype(np.int16)
    stored[:, 0, 0] = -32768  # one nodata pixel
    out = make_cube(stored, wavelength=cube["wavelength"].values, fwhm=cube["fwhm"].values, bbl=good, scale=1e-4,
                    crs=cube.rio.crs, transform=cube.rio.transform(), nodata=-32768)
    path = tmp_path_factory.mktemp("denoise") / "noisy_int16.tif"
    hsikit.save(out, path)
    return path, clean, good


def test_denoise_int16_scaled_cube_to_cog(noisy_tile, tmp_path):
    path, clean, good = noisy_tile
    dst = tmp_path / "den.tif"
    res = hsikit.denoise(path, "fasthyde", out=dst, tile=16, overlap=8, progress=False)
    assert res.sigma_estimated and len(res.bands) == good.sum() and res.tiles == 4
    assert np.median(res.sigma) == pytest.approx(0.02, rel=0.25)
    out = hsikit.open(dst)
    src = hsikit.open(path)
    assert out.dtype == np.float32 and out.rio.crs == src.rio.crs and out.rio.transform() == src.rio.transform()
    np.testing.assert_allclose(out["wavelength"].values, src["wavelength"].values)
    np.testing.assert_array_equal(out["bbl"].values, good)
    den = np.asarray(out.values, np.float64)
    assert np.isnan(den[:, 0, 0]).all()  # nodata pixel stays nodata
    assert np.isnan(den[~good]).all()  # bad bands: entirely nodata in, nodata out
    noisy = np.asarray(src.values, np.float64) * 1e-4
    m = np.ones(den.shape[1:], bool)
    m[0, 0] = False
    gain = psnr(den[good][:, m], clean[good][:, m], data_range=1.0) - psnr(noisy[good][:, m], clean[good][:, m], data_range=1.0)
    assert gain > 8


def test_no_seams_and_sigma_value(noisy_tile):
    path, _, good = noisy_tile
    small = hsikit.denoise(path, "fasthyde", tile=8, overlap=8, progress=False)
    whole = hsikit.denoise(path, "fasthyde", tile=32, overlap=8, progress=False)
    np.testing.assert_allclose(small.cube.values, whole.cube.values, atol=1e-6, equal_nan=True)
    given = hsikit.denoise(path, "lrmr", sigma=0.02, progress=False)
    assert not given.sigma_estimated and np.allclose(given.sigma, 0.02)
    assert given.cube.shape == (224, 32, 32)


def test_bands_all_passes_nothing_through(enmap_tile):
    cube = hsikit.open(enmap_tile).isel(band=slice(0, 40))
    res = hsikit.denoise(cube, "fasthyde", bands="all", progress=False)
    assert len(res.bands) == 40
    with pytest.raises(UsageError):
        hsikit.denoise(cube, "fasthyde", bands="some", progress=False)


def test_cli_summary_and_bad_inputs(noisy_tile, tmp_path, capsys, enmap_tile):
    path, _, _ = noisy_tile
    dst = tmp_path / "cli.tif"
    assert main(["denoise", str(path), str(dst), "--model", "lrmr", "--tile", "32"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.count("\n") == 0 and "lrmr" in line and "1 tiles" in line and "sigma median" in line
    assert dst.is_file()

    cube = hsikit.open(enmap_tile)
    few = tmp_path / "few.tif"
    hsikit.save(cube.isel(band=slice(0, 3)), few)
    flat = tmp_path / "flat.tif"
    hsikit.save(cube.isel(band=slice(0, 1)), flat)
    nan = tmp_path / "nan.tif"
    vals = np.asarray(cube.values, np.float32).copy()
    vals[5, 3, 3] = np.nan
    hsikit.save(make_cube(vals[:40], crs=cube.rio.crs, transform=cube.rio.transform()), nan)
    cases = [
        ([str(few)], "at least 5"),
        ([str(flat)], "2-D"),
        ([str(nan)], "NaN"),
        ([str(path), "--model", "bm3d"], "unknown denoising model"),
        ([str(path), "--sigma", "loud"], "--sigma"),
    ]
    for args, msg in cases:
        target = tmp_path / f"never_{len(msg)}.tif"
        assert main(["denoise", args[0], str(target), *args[1:]]) == 2
        err = capsys.readouterr().err.strip()
        assert msg in err and err.count("\n") == 0
        assert not target.exists()


def test_api_errors_without_files():
    with pytest.raises(InputError, match="single-band \(2-D\) image cannot be denoised"):  # a 2-D array is one band
        hsikit.denoise(np.zeros((16, 16), np.float32))
    with pytest.raises(InputError, match="weights"):
        hsikit.denoise(np.random.default_rng(0).random((8, 16, 16)).astype(np.float32), "hsdt-m")


def test_learned_model_by_name_from_weights_folder(noisy_tile, tmp_path, monkeypatch):
    """A zoo model with weights in $HSIKIT_MODELS runs through the same API (untrained here: it is FastHyDe)."""
    import hsikit.denoise.hsdt  # noqa: F401
    from hsikit.zoo import create_model, save_model

    path, clean, good = noisy_tile
    cfg = {"channels": 4, "num_half_layer": 3, "downsample": [1], "k": 6}
    model = create_model("hsdt-s-sub", pretrained=False, **cfg)
    save_model(model, tmp_path / "hsdt-s-sub", name="hsdt-s-sub", config=cfg)
    monkeypatch.setenv("HSIKIT_MODELS", str(tmp_path))
    res = hsikit.denoise(path, "hsdt-s-sub", progress=False)
    assert res.model == "hsdt-s-sub" and 4 <= res.subspace_dim <= 16
    den = res.cube.values[good][:, 1:, 1:]
    ref = hsikit.denoise(path, "fasthyde", progress=False).cube.values[good][:, 1:, 1:]
    assert psnr(den, clean[good][:, 1:, 1:], data_range=1.0) > psnr(ref, clean[good][:, 1:, 1:], data_range=1.0) - 1.5


def test_weights_argument_and_unknown_model_lists_runnable_models(noisy_tile, tmp_path, capsys):
    """``weights=`` / ``--weights`` load a folder for a learned model (no $HSIKIT_MODELS); a classical method
    refuses weights; an unknown name lists the methods that can run and the weightless registered ones apart."""
    import hsikit.denoise.hsdt  # noqa: F401
    from hsikit.zoo import create_model, save_model

    path, clean, good = noisy_tile
    cfg = {"channels": 4, "num_half_layer": 3, "downsample": [1]}
    folder = tmp_path / "my-run"
    save_model(create_model("hsdt-s", pretrained=False, **cfg), folder, name="hsdt-s", config=cfg)
    res = hsikit.denoise(path, "hsdt-s", weights=folder, progress=False)
    assert res.model == "hsdt-s" and np.isfinite(res.cube.values[good][:, 1:, 1:]).all()
    dst = tmp_path / "cli.tif"
    assert main(["denoise", str(path), str(dst), "--model", "hsdt-s", "--weights", str(folder)]) == 0
    np.testing.assert_allclose(hsikit.open(dst).values[good][:, 1:, 1:], res.cube.values[good][:, 1:, 1:], atol=1e-6)
    with pytest.raises(UsageError, match="classical"):
        hsikit.denoise(path, "lrmr", weights=folder, progress=False)
    with pytest.raises(UsageError) as err:
        hsikit.denoise(path, "bm3d", progress=False)
    available, _, weightless = str(err.value).partition("without released weights")
    assert "fasthyde" in available and "hsdt-s-sub" in available and "hsdt-m-sub" in available
    assert "hsdt-l" not in available and "hsdt-l" in weightless
