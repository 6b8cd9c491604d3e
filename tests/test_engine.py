"""Tiled engine: seam-free tiling, nodata handling, bounded reads, atomic outputs."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
from affine import Affine
from scipy import ndimage

from hsikit.cube import make_cube
from hsikit.engine import Cancelled, plan_tiles, run_tiled
from hsikit.io import open_cube, save_cube
from hsikit.io.export import GeoTiffWriter, RasterMeta


def _scene(bands=5, height=53, width=71, seed=0, nodata=None):
    rng = np.random.default_rng(seed)
    data = rng.normal(size=(bands, height, width)).astype(np.float32)
    return make_cube(data, wavelength=np.linspace(400, 900, bands), crs="EPSG:32633",
                     transform=Affine(30, 0, 500000, 0, -30, 5800000), nodata=nodata)


def _run(cube, fn, path, out_bands=None, progress=False, **kw):
    meta = RasterMeta.from_cube(cube)
    if out_bands:
        meta = meta.with_bands(out_bands)
    with GeoTiffWriter(path, meta, cog=False) as sink:
        stats = run_tiled(cube, fn, sink, out_bands=meta.count, progress=progress, **kw)
    return open_cube(path).values, stats


@pytest.mark.parametrize("tile,halo,batch", [(16, 0, 1), (16, 3, 3), (64, 8, 2), (200, 4, 4), (7, 2, 5)])
def test_pixelwise_is_bit_identical_to_whole(tmp_path, tile, halo, batch):
    cube = _scene()
    fn = lambda b: np.tanh(b * 1.7 + 0.3) - b ** 2  # noqa: E731
    out, stats = _run(cube, fn, tmp_path / "o.tif", tile=tile, halo=halo, batch_size=batch)
    assert np.array_equal(out, fn(cube.values[None])[0])
    assert stats.tiles == len(plan_tiles(53, 71, tile, halo))


@pytest.mark.parametrize("tile,halo", [(16, 1), (20, 2), (9, 1)])
def test_3x3_smoothing_is_seam_free(tmp_path, tile, halo):
    cube = _scene()
    smooth = lambda b: ndimage.uniform_filter(b, size=(1, 1, 3, 3), mode="mirror")  # noqa: E731
    out, _ = _run(cube, smooth, tmp_path / "o.tif", tile=tile, halo=halo)
    whole = smooth(cube.values[None])[0]
    # identical away from the border; with mirror padding (= the engine's reflection) everywhere
    np.testing.assert_array_equal(out[:, 1:-1, 1:-1], whole[:, 1:-1, 1:-1])
    np.testing.assert_array_equal(out, whole)


def test_halo_too_small_shows_seams(tmp_path):
    """Guard that the seam test can fail: a 5x5 filter with halo 1 must differ from whole-scene output."""
    cube = _scene()
    smooth = lambda b: ndimage.uniform_filter(b, size=(1, 1, 5, 5), mode="mirror")  # noqa: E731
    out, _ = _run(cube, smooth, tmp_path / "o.tif", tile=16, halo=1)
    assert not np.allclose(out, smooth(cube.values[None])[0])


def test_nodata_passes_through_and_empty_tiles_are_skipped(tmp_path):
    cube = _scene(nodata=-9999.0)
    data = cube.values.copy()
    data[:, :20, :30] = -9999.0  # a nodata corner covering whole tiles
    data[:, 40, 50] = -9999.0  # one nodata pixel
    data[2, 45, 10] = np.nan  # one NaN value in one band only: the pixel stays valid
    cube = cube.copy(data=data)
    seen = []

    def fn(b):
        seen.append(b.copy())
        return b * 2.0

    out, stats = _run(cube, fn, tmp_path / "o.tif", tile=10, halo=2)
    assert stats.tiles_skipped == 6  # cores (0..20)x(0..30) with 10 px tiles
    assert np.isnan(out[:, :20, :30]).all() and np.isnan(out[:, 40, 50]).all()
    assert all(np.isfinite(b).all() and (b != -9999.0).all() for b in seen)  # the method never sees nodata
    assert np.isfinite(out[:, 45, 10]).all()
    valid = np.isfinite(out)
    np.testing.assert_array_equal(out[valid & np.isfinite(data)], (data * 2)[valid & np.isfinite(data)])


def test_output_band_count_can_differ(tmp_path):
    cube = _scene()
    out, _ = _run(cube, lambda b: b.mean(axis=1, keepdims=True), tmp_path / "o.tif", out_bands=1, tile=32, halo=0)
    np.testing.assert_allclose(out[0], cube.values.mean(axis=0), rtol=1e-6)


def test_wrong_method_shape_is_reported(tmp_path):
    cube = _scene()
    with pytest.raises(ValueError, match="method returned shape"):
        _run(cube, lambda b: b[:, :2], tmp_path / "o.tif", tile=32)


def test_failure_midway_keeps_previous_output(tmp_path):
    cube = _scene()
    target = tmp_path / "out.tif"
    save_cube(cube, target)
    before = target.read_bytes()
    calls = {"n": 0}

    def failing(b):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected failure after two batches")
        return b + 1

    with pytest.raises(RuntimeError, match="injected"):
        _run(cube, failing, target, tile=16, halo=2, batch_size=2)
    assert calls["n"] == 3
    assert target.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.tif"]  # no temporary file left behind


def test_cancel_from_progress_callback(tmp_path):
    cube = _scene()
    target = tmp_path / "out.tif"
    with pytest.raises(Cancelled):
        _run(cube, lambda b: b, target, tile=16, progress=lambda done, total: done < 4)
    assert not target.exists() and os.listdir(tmp_path) == []


def test_lazy_source_reads_windows(tmp_path):
    """A lazily opened file gives the same result as the in-memory cube."""
    cube = _scene(height=70, width=90)
    src = tmp_path / "src.tif"
    save_cube(cube, src)
    lazy = open_cube(src, lazy=True, chunks=32)
    assert lazy.chunks is not None
    out, _ = _run(lazy, lambda b: b * 3, tmp_path / "o.tif", tile=24, halo=4)
    np.testing.assert_array_equal(out, cube.values * 3)


def test_real_enmap_tile_tiled_equals_whole(tmp_path, enmap_tile: Path):
    cube = open_cube(enmap_tile)
    smooth = lambda b: ndimage.uniform_filter(b, size=(1, 1, 3, 3), mode="mirror")  # noqa: E731
    out, _ = _run(cube, smooth, tmp_path / "o.tif", tile=12, halo=1)
    whole = smooth(cube.values[None])[0]
    ok = np.isfinite(out)
    assert ok[:129].all()  # valid bands everywhere
    np.testing.assert_array_equal(out[:129], whole[:129])
