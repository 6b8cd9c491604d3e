"""hsikit.pansharpen API and CLI on a real EnMAP tile: grids, metadata, nodata, tiling, clear errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
from affine import Affine

import hsikit
from hsikit.cli import main
from hsikit.cube import geotransform, make_cube, to_reflectance
from hsikit.data.degrade import degrade_cube, simulate_pan
from hsikit.errors import MetadataError, UsageError
from hsikit.pansharpen.api import pansharpen

RATIO = 2


@pytest.fixture(scope="module")
def pair(enmap_tile: Path):
    """(LR cube 224 x 16 x 16 at 60 m, PAN 32 x 32 at 30 m simulated over 400-700 nm, original tile)."""
    tile = hsikit.open(enmap_tile)
    lr = degrade_cube(tile, blur_ratio=RATIO)
    good = np.asarray(tile["bbl"].values, bool)
    phys = to_reflectance(tile).values[good]
    pan = simulate_pan(torch.from_numpy(phys), tile["wavelength"].values[good], band=(400, 700)).numpy()
    pan_cube = make_cube(pan, crs=tile.rio.crs, transform=geotransform(tile), name="pan")
    return lr, pan_cube, tile


@pytest.fixture(scope="module")
def pair_files(pair, tmp_path_factory):
    d = tmp_path_factory.mktemp("pansharpen")
    lr, pan, _ = pair
    hsikit.save(lr, d / "hs.tif")
    hsikit.save(pan, d / "pan.tif")
    return d / "hs.tif", d / "pan.tif"


def test_output_on_pan_grid_with_band_metadata_and_nodata(pair_files, tmp_path: Path) -> None:
    hs_path, pan_path = pair_files
    out = tmp_path / "sharp.tif"
    res = pansharpen(hs_path, pan_path, "gsa", out)
    assert res.ratio == RATIO and res.out == out
    with rasterio.open(out) as ds, rasterio.open(pan_path) as pan, rasterio.open(hs_path) as hs:
        assert ds.count == 224 and ds.shape == pan.shape and ds.crs == pan.crs
        assert ds.transform == pan.transform and ds.dtypes[0] == "float32" and np.isnan(ds.nodata)
        assert ds.tags(1)["wavelength"] == hs.tags(1)["wavelength"]
        assert ds.tags(131)["bbl"] == "0"
        values = ds.read()
    # bands 129-134 (0-based) have no data in the tile: still nodata; every other value is finite
    empty = np.isnan(values).all(axis=(1, 2))
    assert np.flatnonzero(empty).tolist() == list(range(129, 135))
    assert np.isfinite(values[~empty]).all()
    back = hsikit.open(out)
    assert np.allclose(back["wavelength"].values, hsikit.open(hs_path)["wavelength"].values)


def test_tiles_give_the_whole_scene_result(pair) -> None:
    lr, pan, _ = pair
    whole = pansharpen(lr, pan, "mtf-glp-hpm").cube.values
    tiled = pansharpen(lr, pan, "mtf-glp-hpm", tile=16)
    assert tiled.tiles == 4
    np.testing.assert_allclose(tiled.cube.values, whole, rtol=1e-5, atol=1e-7, equal_nan=True)


def test_nodata_pixels_stay_nodata(pair) -> None:
    lr, pan, _ = pair
    holed = lr.copy(data=lr.values.copy())
    holed.values[:, 3, 5] = np.nan  # one LR pixel missing in every band
    holed.values[10, 7, 7] = np.nan  # one value of one band
    pan_holed = pan.copy(data=pan.values.copy())
    pan_holed.values[0, 20, 21] = np.nan
    out = pansharpen(holed, pan_holed, "mtf-glp-fs").cube.values
    assert np.isnan(out[:, 6:8, 10:12]).all()
    assert np.isnan(out[10, 14:16, 14:16]).all() and np.isfinite(out[11, 14:16, 14:16]).all()
    assert np.isnan(out[:, 20, 21]).all() and np.isfinite(out[0, 20, 20])
    good = np.isfinite(out[0])
    assert good.sum() == 32 * 32 - 4 - 1


def test_evaluations(pair) -> None:
    lr, pan, _ = pair
    full = pansharpen(lr, pan, "mtf-glp-fs", evaluate="full").scores
    assert set(full) == {"d_lambda_khan", "d_s", "hqnr", "d_s_r", "d_rho"}
    assert 0 <= full["d_lambda_khan"] < 0.05 and full["hqnr"] == pytest.approx((1 - full["d_lambda_khan"]) * (1 - full["d_s"]))
    base = pansharpen(lr, pan, "bicubic", evaluate="full").scores
    assert full["d_s_r"] < base["d_s_r"]  # the PAN's detail is now in the bands
    red = pansharpen(lr, pan, "mtf-glp-fs", evaluate="reduced").scores
    assert set(red) == {"q2n", "ergas", "sam_deg"} and 0.5 < red["q2n"] <= 1


def test_top_level_api_entry() -> None:
    assert callable(hsikit.pansharpen)


def _with_transform(cube, transform, crs=None):
    return make_cube(cube.values.copy(), crs=crs or cube.rio.crs, transform=transform, name="pan")


def test_grid_errors(pair) -> None:
    lr, pan, _ = pair
    t = geotransform(pan)
    with pytest.raises(MetadataError, match="not aligned"):
        pansharpen(lr, _with_transform(pan, Affine(t.a, 0, t.c + 15, 0, t.e, t.f)), "gsa")
    with pytest.raises(MetadataError, match="CRS differ"):
        pansharpen(lr, _with_transform(pan, t, "EPSG:32632"), "gsa")
    with pytest.raises(UsageError, match="ratio 3 given"):
        pansharpen(lr, pan, "gsa", ratio=3)
    with pytest.raises(MetadataError, match="pixel sizes do not fit"):
        pansharpen(lr, _with_transform(pan, Affine(40, 0, t.c, 0, -40, t.f)), "gsa")
    with pytest.raises(MetadataError, match="extents differ"):
        pansharpen(lr, pan.isel(y=slice(0, 30)), "gsa")
    with pytest.raises(MetadataError, match="georeferenced but"):
        pansharpen(lr, make_cube(pan.values), "gsa")
    with pytest.raises(UsageError, match="one band"):
        pansharpen(lr, lr, "gsa")
    with pytest.raises(UsageError, match="unknown pansharpening method"):
        pansharpen(lr, pan, "ihs")


def test_plain_arrays_use_shapes(pair) -> None:
    lr, pan, _ = pair
    res = pansharpen(np.nan_to_num(lr.values[:20]), pan.values[0], "mtf-glp")
    assert res.ratio == 2 and res.cube.shape == (20, 32, 32) and res.cube.rio.crs is None


def test_cli_writes_and_reports(pair_files, tmp_path: Path, capsys) -> None:
    hs_path, pan_path = pair_files
    out = tmp_path / "cli.tif"
    rc = main(["pansharpen", str(hs_path), str(pan_path), str(out), "--method", "mtf-glp", "--evaluate", "full"])
    captured = capsys.readouterr()
    assert rc == 0, captured.err
    assert "pansharpened (mtf-glp, ratio 2)" in captured.out and "hqnr" in captured.out
    assert hsikit.open(out).shape == (224, 32, 32)


def test_cli_bad_inputs_exit_2(pair, pair_files, tmp_path: Path, capsys) -> None:
    lr, pan, _ = pair
    hs_path, pan_path = pair_files
    t = geotransform(pan)
    shifted = tmp_path / "shifted.tif"
    hsikit.save(_with_transform(pan, Affine(t.a, 0, t.c + 15, 0, t.e, t.f)), shifted)
    other_crs = tmp_path / "crs.tif"
    hsikit.save(_with_transform(pan, t, "EPSG:32632"), other_crs)
    cases = [
        ([str(hs_path), str(shifted)], "not aligned"),
        ([str(hs_path), str(other_crs)], "CRS differ"),
        ([str(hs_path), str(pan_path), "--ratio", "4"], "ratio 4 given"),
        ([str(hs_path), str(pan_path), "--method", "pca"], "unknown pansharpening method"),
        ([str(hs_path), str(tmp_path / "missing.tif")], "file not found"),
        ([str(hs_path), str(pan_path), "--evaluate", "both"], "evaluate must be"),
    ]
    for args, message in cases:
        out = tmp_path / "bad.tif"
        rc = main(["pansharpen", args[0], args[1], str(out), *args[2:]])
        err = capsys.readouterr().err
        assert rc == 2 and message in err and len(err.strip().splitlines()) == 1, (args, err)
        assert not out.exists()


def test_ratio_three_on_a_georeferenced_pair(enmap_tile: Path) -> None:
    tile = hsikit.open(enmap_tile).isel(y=slice(0, 30), x=slice(0, 30))
    lr = degrade_cube(tile, blur_ratio=3)
    good = np.asarray(tile["bbl"].values, bool)
    pan = simulate_pan(torch.from_numpy(to_reflectance(tile).values[good]), tile["wavelength"].values[good]).numpy()
    pan_cube = make_cube(pan, crs=tile.rio.crs, transform=geotransform(tile), name="pan")
    res = pansharpen(lr, pan_cube, "mtf-glp-hpm", bands="valid")
    assert res.ratio == 3 and res.cube.shape == (218, 30, 30)
    assert res.cube.rio.transform() == geotransform(tile) and res.cube.rio.crs == tile.rio.crs
    assert np.isfinite(res.cube.values).all()
