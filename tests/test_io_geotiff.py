"""GeoTIFF reader: real EnMAP tiles, every wavelength spelling, lazy windows, corrupt files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from affine import Affine

from hsikit.errors import InputError
from hsikit.io import open_cube


def test_real_enmap_tile_metadata(enmap_tile: Path):
    c = open_cube(enmap_tile)
    assert c.shape == (224, 32, 32) and c.dtype == np.float32
    assert c.rio.crs.to_epsg() == 32633 and c.rio.transform().a == 30 and c.rio.nodata == -32768
    wl = c["wavelength"].values
    assert wl[0] == pytest.approx(418.24) and wl[-1] == pytest.approx(2445.53)
    assert np.flatnonzero(~c["bbl"].values).tolist() == [129, 130, 131, 132, 133, 134]
    assert (c.values[129:135] == -32768).all()
    assert c["scale"].values[0] == pytest.approx(1e-4)
    assert c.attrs["acquisition_time"] == "2022-07-24T10:45:26"
    with rasterio.open(enmap_tile) as src:  # a known pixel equals the file's value
        assert np.array_equal(c.values[:, 7, 11], src.read()[:, 7, 11])


def test_all_real_tiles_open(shared_data: Path):
    tiles = sorted((shared_data / "enmap_potsdam_tiles" / "images").glob("*.tif"))
    assert len(tiles) == 10
    for t in tiles:
        c = open_cube(t)
        assert c.sizes["band"] == 224 and int((~c["bbl"].values).sum()) == 6


def _write(path: Path, n=4, **band_tags):
    with rasterio.open(path, "w", driver="GTiff", count=n, height=3, width=2, dtype="int16",
                       crs="EPSG:32632", transform=Affine(10, 0, 0, 0, -10, 0)) as dst:
        dst.write(np.arange(n * 6, dtype=np.int16).reshape(n, 3, 2))
        for key, fn in band_tags.items():
            for i in range(n):
                fn(dst, i + 1)
    return path


def test_imagery_domain_in_micrometres(tmp_path):
    p = _write(tmp_path / "a.tif", imagery=lambda d, b: d.update_tags(b, ns="IMAGERY", CENTRAL_WAVELENGTH_UM=str(0.4 + b / 10), FWHM_UM="0.01"))
    c = open_cube(p)
    np.testing.assert_allclose(c["wavelength"].values, [500, 600, 700, 800])
    np.testing.assert_allclose(c["fwhm"].values, 10)


def test_band_items_in_micrometres_and_descriptions(tmp_path):
    p = _write(tmp_path / "b.tif", items=lambda d, b: d.update_tags(b, wavelength=str(1 + b / 10), fwhm="0.005", wavelength_units="Micrometers"))
    c = open_cube(p)
    np.testing.assert_allclose(c["wavelength"].values, [1100, 1200, 1300, 1400])
    np.testing.assert_allclose(c["fwhm"].values, 5)
    q = _write(tmp_path / "c.tif", desc=lambda d, b: d.set_band_description(b, f"band {b} ({400 + b} Nanometers)"))
    assert open_cube(q)["wavelength"].values.tolist() == [401, 402, 403, 404]
    r = _write(tmp_path / "d.tif")
    assert np.isnan(open_cube(r)["wavelength"].values).all()


def test_envi_domain_lists(tmp_path):
    p = _write(tmp_path / "e.tif")
    with rasterio.open(p, "r+") as d:
        d.update_tags(ns="ENVI", wavelength="{0.45, 0.55, 0.65, 0.85}", wavelength_units="Micrometers", bbl="{1, 1, 0, 1}")
    c = open_cube(p)
    np.testing.assert_allclose(c["wavelength"].values, [450, 550, 650, 850])
    assert c["bbl"].values.tolist() == [True, True, False, True]


def test_lazy_reads_only_the_window(enmap_tile: Path):
    eager = open_cube(enmap_tile)
    lazy = open_cube(enmap_tile, lazy=True)
    assert type(lazy.variable._data).__name__ == "LazilyIndexedArray"
    sel = dict(band=[3, 100, 5], y=slice(4, 20, 3), x=[1, 30, 2])
    np.testing.assert_array_equal(lazy.isel(sel).values, eager.isel(sel).values)
    np.testing.assert_array_equal(lazy.isel(band=7, x=9).values, eager.isel(band=7, x=9).values)


def test_corrupt_and_truncated_files(tmp_path, enmap_tile: Path):
    junk = tmp_path / "junk.tif"
    junk.write_bytes(b"not a tiff at all")
    with pytest.raises(InputError, match="junk.tif: not a readable raster"):
        open_cube(junk)
    cut = tmp_path / "cut.tif"
    cut.write_bytes(enmap_tile.read_bytes()[:200_000])
    with pytest.raises(InputError, match="cut.tif"):
        open_cube(cut).values
    with pytest.raises(InputError, match="file not found"):
        open_cube(tmp_path / "missing.tif")
