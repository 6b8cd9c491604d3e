"""Scene jobs: input grid -> output raster through the engine, atomically."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

import hsikit
from hsikit.engine.job import output_meta, run_scene


def test_scene_job_keeps_grid_and_band_metadata(enmap_tile, tmp_path):
    cube = hsikit.open(enmap_tile)
    out = tmp_path / "double.tif"
    meta = output_meta(cube)
    stats = run_scene(cube, lambda b: b * 2.0, out, meta, tile=16, halo=2, progress=False)
    assert stats.tiles == 4
    back = hsikit.open(out)
    np.testing.assert_array_equal(back["wavelength"].values, cube["wavelength"].values)
    assert back.rio.crs == cube.rio.crs and back.rio.transform() == cube.rio.transform()
    src = cube.values.astype(np.float32)
    valid = src[0] != -32768
    np.testing.assert_array_equal(back.values[10][valid], 2 * src[10][valid])


def test_scene_job_new_bands_named(enmap_tile, tmp_path):
    cube = hsikit.open(enmap_tile)
    meta = output_meta(cube, out_bands=2, names=["a", "b"])
    out = tmp_path / "two.tif"
    run_scene(cube, lambda b: b[:, :2], out, meta, tile=32, halo=0, progress=False)
    with rasterio.open(out) as ds:
        assert ds.count == 2 and ds.descriptions == ("a", "b")


def test_scene_job_failure_keeps_previous_output(enmap_tile, tmp_path):
    cube = hsikit.open(enmap_tile)
    out = tmp_path / "keep.tif"
    meta = output_meta(cube, out_bands=1, names=["x"])
    run_scene(cube, lambda b: b[:, :1], out, meta, tile=16, halo=0, progress=False)
    before = out.read_bytes()
    calls = {"n": 0}

    def boom(b):
        calls["n"] += 1
        if calls["n"] > 1:
            raise RuntimeError("injected")
        return b[:, :1] * 0

    with pytest.raises(RuntimeError):
        run_scene(cube, boom, out, meta, tile=16, halo=0, batch_size=1, progress=False)
    assert out.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["keep.tif"]


def test_check_cog_output_refuses_other_formats(tmp_path):
    from hsikit.engine.job import check_cog_output
    from hsikit.errors import OutputError

    assert check_cog_output(tmp_path / "a.tif") == tmp_path / "a.tif"
    for name in ("a.nc", "a.zarr"):
        with pytest.raises(OutputError, match=f"{name}: denoise writes a GeoTIFF"):
            check_cog_output(tmp_path / name, task="denoise")
    (tmp_path / "b.tif").write_bytes(b"x")
    with pytest.raises(OutputError, match="exists"):
        check_cog_output(tmp_path / "b.tif", overwrite=False)
