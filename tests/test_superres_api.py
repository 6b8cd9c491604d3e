"""Super-resolution task: the engine on a refined grid, bicubic and the subspace ESSAformer through
``hsikit.super_resolve``, georeference of the output, and the CLI's errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from affine import Affine

import hsikit
from hsikit.cli import main
from hsikit.cube import make_cube
from hsikit.engine.job import refine_meta
from hsikit.engine.run import ArraySink, run_tiled
from hsikit.errors import UsageError
from hsikit.io import open_cube
from hsikit.io.export import RasterMeta
from hsikit.superres.subspace import SubspaceESSAformer, principal_basis
from hsikit.zoo import save_model


def _ramp_cube(bands: int = 6, h: int = 20, w: int = 23) -> object:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    data = np.stack([0.1 + 0.01 * (b + 1) * yy + 0.02 * xx for b in range(bands)])
    return make_cube(data, wavelength=np.linspace(450, 900, bands), crs="EPSG:32633",
                     transform=Affine(30, 0, 300000, 0, -30, 5800000))


def test_run_tiled_scale_writes_the_refined_grid():
    cube = _ramp_cube(3, 13, 17)
    sink = ArraySink(3, 39, 51)
    nearest = lambda b: np.repeat(np.repeat(b, 3, axis=2), 3, axis=3)  # noqa: E731
    stats = run_tiled(cube, nearest, sink, out_bands=3, tile=5, halo=2, progress=False, scale=3)
    assert stats.tiles == 12
    np.testing.assert_array_equal(sink.data, nearest(cube.values[None])[0])


def test_run_tiled_scale_marks_nodata_blocks_and_checks_shapes():
    data = _ramp_cube(2, 8, 8).values.copy()
    data[:, 2, 5] = np.nan
    cube = make_cube(data, nodata=np.nan)
    sink = ArraySink(2, 16, 16)
    run_tiled(cube, lambda b: np.repeat(np.repeat(np.nan_to_num(b), 2, 2), 2, 3), sink, out_bands=2, tile=4, halo=1,
              progress=False, scale=2)
    assert np.isnan(sink.data[:, 4:6, 10:12]).all() and np.isnan(sink.data).sum() == 2 * 4
    with pytest.raises(ValueError, match="expected"):
        run_tiled(cube, lambda b: b, ArraySink(2, 16, 16), out_bands=2, tile=4, halo=1, progress=False, scale=2)


def test_refine_meta_keeps_corner_and_extent():
    meta = RasterMeta(count=2, height=10, width=7, dtype=np.dtype("float32"), crs="EPSG:32633",
                      transform=Affine(30, 0, 300000, 0, -30, 5800000))
    fine = refine_meta(meta, 3)
    assert (fine.height, fine.width) == (30, 21)
    assert fine.transform == Affine(10, 0, 300000, 0, -10, 5800000)
    assert fine.transform * (fine.width, fine.height) == meta.transform * (meta.width, meta.height)
    with pytest.raises(UsageError):
        refine_meta(meta, 1.5)


def test_bicubic_reproduces_ramps_and_tiles_seamlessly():
    cube = _ramp_cube()
    whole = hsikit.super_resolve(cube, 3, "bicubic", progress=False).cube
    tiled = hsikit.super_resolve(cube, 3, "bicubic", tile=4, progress=False).cube
    assert whole.shape == (6, 60, 69)
    np.testing.assert_allclose(tiled.values, whole.values, atol=1e-6)
    # a linear ramp is reproduced exactly away from the edges, on the aligned grid (HR pixel j at LR (j - 1) / 3)
    yy, xx = np.mgrid[0:60, 0:69]
    ly, lx = (yy - 1) / 3.0, (xx - 1) / 3.0
    expect = 0.1 + 0.01 * ly + 0.02 * lx
    np.testing.assert_allclose(whole.values[0, 6:-6, 6:-6], expect[6:-6, 6:-6], atol=1e-5)
    assert whole.rio.transform() == Affine(10, 0, 300000, 0, -10, 5800000)
    np.testing.assert_array_equal(whole["wavelength"].values, cube["wavelength"].values)


def test_bicubic_on_a_real_enmap_tile_writes_a_georeferenced_cog(tmp_path: Path, enmap_tile: Path):
    out = tmp_path / "sr.tif"
    res = hsikit.super_resolve(enmap_tile, 2, "bicubic", out=out, progress=False)
    src, sr = open_cube(enmap_tile), open_cube(out)
    assert sr.shape == (224, 64, 64) and res.tiles == 1
    assert sr.rio.crs == src.rio.crs
    t, f = src.rio.transform(), sr.rio.transform()
    assert (f.a, f.e, f.c, f.f) == (t.a / 2, t.e / 2, t.c, t.f)
    np.testing.assert_allclose(sr["wavelength"].values, src["wavelength"].values)
    np.testing.assert_array_equal(sr["bbl"].values, src["bbl"].values)
    # box-averaging the x2 result gives back the input closely (cubic convolution interpolates)
    lr = hsikit.to_reflectance(src).values
    back = sr.values.reshape(224, 32, 2, 32, 2).mean(axis=(2, 4))
    good = src["bbl"].values.astype(bool)
    rel = np.abs(back[good] - lr[good])[:, 2:-2, 2:-2].mean() / np.abs(lr[good]).mean()
    assert rel < 0.05, rel


def _untrained_weights(tmp_path: Path, window: int = 16) -> Path:
    config = {"k": 4, "scale": 3, "dim": 36, "dropout": 0.0, "window": window}
    return save_model(SubspaceESSAformer(**config), tmp_path / "w", name="essaformer-sub-x3", config=config)


def test_untrained_subspace_model_is_exactly_bicubic(tmp_path: Path):
    cube = _ramp_cube(10, 19, 21)
    cube.values[:] += np.random.default_rng(0).normal(0, 0.01, cube.shape).astype(np.float32)
    w = _untrained_weights(tmp_path)
    learned = hsikit.super_resolve(cube, 3, "essaformer-sub-x3", weights=w, progress=False)
    bicubic = hsikit.super_resolve(cube, 3, "bicubic", progress=False)
    assert learned.subspace_dim == 4 and learned.tiles == 1  # 19 x 21 px in one 24-px core (32-px window)
    tiled = hsikit.super_resolve(cube, 3, "essaformer-sub-x3", weights=w, tile=8, progress=False)
    assert tiled.tiles == 9
    np.testing.assert_allclose(tiled.cube.values, learned.cube.values, atol=1e-5)
    assert learned.model == "essaformer-sub-x3" and bicubic.model == "bicubic"
    auto = hsikit.super_resolve(cube, 3, "auto", weights=w, progress=False)  # auto at x3 = the learned model
    assert auto.model == "essaformer-sub-x3"
    assert hsikit.super_resolve(cube, 2, progress=False).model == "bicubic"  # no learned model at x2
    np.testing.assert_allclose(learned.cube.values, bicubic.cube.values, atol=1e-5)
    with pytest.raises(UsageError, match="by 3, not 2"):
        hsikit.super_resolve(cube, 2, "essaformer-sub-x3", weights=w, progress=False)


def test_subspace_model_takes_fewer_bands_than_its_eigen_images():
    net = SubspaceESSAformer(k=8, scale=3, dim=36).eval()
    with torch.no_grad():  # a trained last conv: the correction must reach the bands
        net.net.conv_last.weight.normal_(0, 0.1)
    lr = torch.rand(2, 5, 16, 16)
    mu, e = principal_basis(lr[0].reshape(5, -1), 8)
    assert e.shape == (5, 5)
    out = net(lr, mu.float(), e.float(), 1.0)
    assert out.shape == (2, 5, 48, 48) and torch.isfinite(out).all()


def test_principal_basis_is_deterministic_and_orthonormal():
    x = np.random.default_rng(1).normal(size=(12, 400))
    mu, e = principal_basis(x, 4)
    mu2, e2 = principal_basis(-(-x), 4)
    torch.testing.assert_close(e, e2)
    torch.testing.assert_close(e.T @ e, torch.eye(4, dtype=torch.float64))
    assert (e.gather(0, e.abs().argmax(0, keepdim=True)) > 0).all()


def _cli(capsys, *args):
    rc = main([str(a) for a in args])
    return rc, capsys.readouterr().err


def test_cli_super_resolve_and_its_errors(capsys, tmp_path: Path, enmap_tile: Path):
    out = tmp_path / "o.tif"
    rc, _ = _cli(capsys, "super-resolve", enmap_tile, out, "--model", "bicubic", "--scale", "3")
    assert rc == 0 and open_cube(out).shape == (224, 96, 96)
    before = out.read_bytes()
    cases = [
        (("--model", "bicubic", "--scale", "1"), "scale must be an integer >= 2"),
        (("--model", "nope"), "unknown super-resolution model 'nope'"),
        (("--model", "bicubic", "--no-overwrite"), "exists"),
    ]
    for task in ("denoise", "super-resolve", "unmix"):  # every raster task refuses a NetCDF path before any work
        rc, err = _cli(capsys, task, enmap_tile, tmp_path / "o.nc")
        assert rc == 2 and f"o.nc: {task} writes a GeoTIFF (COG): use a .tif output" in err, err
        assert not (tmp_path / "o.nc").exists()
    for extra, message in cases:
        rc, err = _cli(capsys, "super-resolve", enmap_tile, out, *extra)
        assert rc == 2 and err.startswith("hsikit: error: ") and message in err and err.count("\n") == 1, err
    assert out.read_bytes() == before
