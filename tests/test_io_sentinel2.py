"""Sentinel-2 readers (hsikit.io.sentinel2) on the real files in ../shared/data and on a tiny fake SAFE."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from affine import Affine

import hsikit
from hsikit.errors import InputError, MetadataError
from hsikit.io import sentinel2 as s2


# ------------------------------------------------------------------------------------- real files


def test_sen2r_two_dates_boa_with_scl(shared_data: Path) -> None:
    folder = shared_data / "sentinel2_sen2r_barbellino"
    cube = s2.read_sentinel2(folder)
    assert cube.dims == ("time", "band", "y", "x") and cube.shape == (2, 11, 42, 24)
    assert [str(t)[:10] for t in cube["time"].values] == ["2017-07-03", "2019-07-23"]
    assert list(cube["band_name"].values) == list(s2.STACK_BANDS["BOA"])
    assert cube.dtype == np.uint16 and cube.rio.nodata == 65535 and cube.rio.crs.to_epsg() == 32632
    assert cube.rio.transform() == Affine(10, 0, 580560, 0, -10, 5102120)
    # the 20 m SCL is replicated onto the 10 m grid: every 2x2 block is one SCL pixel
    with rasterio.open(folder / "S2A2A_20170703_022_Barbellino_SCL_10.tif") as src:
        scl20 = src.read(1)
    np.testing.assert_array_equal(cube["scl"].values[0], np.kron(scl20, np.ones((2, 2), np.uint8)))
    clear = cube["clear"].values
    np.testing.assert_array_equal(clear[0], np.isin(cube["scl"].values[0], s2.CLEAR_CLASSES))
    assert 0.5 < clear[0].mean() < 1 and clear[1].mean() > 0.9
    with rasterio.open(folder / "S2A2A_20190723_022_Barbellino_BOA_10.tif") as src:
        np.testing.assert_array_equal(cube.values[1], src.read())
    refl = hsikit.to_reflectance(cube.isel(time=0)).values
    assert 0.0 <= np.nanmin(refl) and np.nanmax(refl) < 1.0  # 2017: baseline < 04.00, no offset
    np.testing.assert_allclose(cube["wavelength"].values[[1, 7]], [492.7, 832.8])
    toa = s2.read_sentinel2(folder, level="L1C")
    assert toa.shape == (2, 12, 42, 24) and "B10" in list(toa["band_name"].values)
    assert bool(toa["clear"].values.all())  # no SCL for L1C


def test_dolomites_plus_1000_offset(shared_data: Path) -> None:
    folder = shared_data / "sentinel2_imagery_dolomites"
    cube = s2.read_sentinel2(folder, time="2022-06-15", add_offset=-1000)
    assert cube.shape == (1, 4, 934, 1059) and list(cube["band_name"].values) == ["B02", "B03", "B04", "B08"]
    assert cube.attrs["add_offset_source"] == "parameter"
    refl = hsikit.to_reflectance(cube.isel(time=0)).values
    med = np.nanmedian(refl, axis=(1, 2))
    # with the -1000 DN offset removed: dark blue/green/red and bright NIR of alpine vegetation
    assert 0.03 < med[0] < 0.12 and med[2] < med[1] < med[0] and 0.15 < med[3] < 0.4
    assert np.nanpercentile(refl, 0.1) > -0.03 and np.nanmax(refl) < 0.7
    np.testing.assert_allclose(np.nanmin(refl[0]), (1338 - 1000) / 1e4, rtol=1e-5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        raw = s2.read_sentinel2(folder, time="2022-06-15")
    assert any("add_offset=-1000" in str(w.message) for w in caught)
    assert np.nanmedian(hsikit.to_reflectance(raw.isel(time=0)).values[0]) > 0.15  # why the offset matters
    with pytest.raises(MetadataError, match="time="):
        s2.read_sentinel2(folder)


def test_eolearn_frames_sorted_by_time(shared_data: Path) -> None:
    cube = s2.read_eolearn_patch(shared_data / "sentinel2_eolearn_testpatch")
    assert cube.shape == (5, 13, 101, 100)
    assert [str(t)[:10] for t in cube["time"].values] == ["2015-07-11", "2015-07-31", "2015-08-20", "2015-08-30", "2015-09-09"]
    assert cube.attrs["frame_order"] == "4,1,0,3,2"  # the README's frame -> date table
    raw = np.load(shared_data / "sentinel2_eolearn_testpatch" / "data" / "REFERENCE_SCENES.npy")
    np.testing.assert_array_equal(cube.values[0], np.moveaxis(raw[4], -1, 0))
    assert list(cube["band_name"].values) == list(s2.S2_BANDS) and cube.rio.crs.to_epsg() == 32633
    np.testing.assert_allclose(cube["clear"].values.mean(axis=(1, 2)), [1, 0, 0, 1, 1])  # CLM: 2 cloudy dates


def test_bigearthnet_patch_to_10m(shared_data: Path) -> None:
    folder = shared_data / "bigearthnet_s2_patches" / "benv1"
    path = sorted(folder.glob("*.npz"))[0]
    cube = s2.read_bigearthnet_patch(path)
    assert cube.shape == (1, 12, 120, 120) and cube.dtype == np.uint16
    z = np.load(path)
    np.testing.assert_array_equal(cube.values[0, 1], z["B02"])
    np.testing.assert_array_equal(cube.values[0, 4, ::2, ::2], z["B05"])
    np.testing.assert_array_equal(cube.values[0, 0, 5::6, 5::6], z["B01"])
    assert str(cube["time"].values[0])[:10] == path.stem.split("_")[2][:4] + "-" + path.stem.split("_")[2][4:6] + "-" + path.stem.split("_")[2][6:8]
    refl = hsikit.to_reflectance(cube.isel(time=0)).values
    assert 0 < np.median(refl[1]) < 0.2
    smooth = s2.read_bigearthnet_patch(path, order=1)
    assert smooth.shape == cube.shape and not np.array_equal(smooth.values[0, 4], cube.values[0, 4])


# ------------------------------------------------------------------------------------ fake SAFE


MTD = """<?xml version="1.0" encoding="UTF-8"?>
<n1:Level-2A_User_Product xmlns:n1="https://psd-14.sentinel2.eo.esa.int/PSD/User_Product_Level-2A.xsd">
 <n1:General_Info><Product_Info><PRODUCT_START_TIME>2023-05-04T10:15:59.024Z</PRODUCT_START_TIME>
  <PROCESSING_BASELINE>05.09</PROCESSING_BASELINE></Product_Info>
  <Product_Image_Characteristics>
   <QUANTIFICATION_VALUES_LIST><BOA_QUANTIFICATION_VALUE unit="none">10000</BOA_QUANTIFICATION_VALUE></QUANTIFICATION_VALUES_LIST>
   <BOA_ADD_OFFSET_VALUES_LIST>{offsets}</BOA_ADD_OFFSET_VALUES_LIST>
   <Spectral_Information_List>{spectral}</Spectral_Information_List>
  </Product_Image_Characteristics></n1:General_Info>
</n1:Level-2A_User_Product>"""


def _jp2(path: Path, data: np.ndarray, res: int) -> None:
    tmp = path.with_suffix(".tif")
    with rasterio.open(tmp, "w", driver="GTiff", count=1, height=data.shape[0], width=data.shape[1], dtype="uint16",
                       crs="EPSG:32632", transform=Affine(res, 0, 600000, 0, -res, 5100000), nodata=0) as dst:
        dst.write(data, 1)
    rasterio.shutil.copy(tmp, path, driver="JP2OpenJPEG", QUALITY="100", REVERSIBLE="YES")
    tmp.unlink()


@pytest.fixture(scope="module")
def fake_safe(tmp_path_factory) -> tuple[Path, dict[str, np.ndarray]]:
    """A 60 x 60 m L2A SAFE of baseline 05.09 (BOA_ADD_OFFSET -1000): B02/B04/B08 10 m, B05/B11/SCL 20 m, B01 60 m."""
    root = tmp_path_factory.mktemp("safe")
    name = "S2B_MSIL2A_20230504T101559_N0509_R065_T32TPS_20230504T130000.SAFE"
    safe = root / name
    img = safe / "GRANULE" / "L2A_T32TPS_A032123_20230504T101559" / "IMG_DATA"
    rng = np.random.default_rng(0)
    arrays: dict[str, np.ndarray] = {}
    for band, res in [("B02", 10), ("B04", 10), ("B08", 10), ("B05", 20), ("B11", 20), ("B01", 60), ("B02", 20)]:
        n = 60 // res
        arr = rng.integers(1100, 5000, (n, n)).astype(np.uint16)
        (img / f"R{res}m").mkdir(parents=True, exist_ok=True)
        _jp2(img / f"R{res}m" / f"T32TPS_20230504T101559_{band}_{res}m.jp2", arr, res)
        arrays.setdefault(band, arr)
    scl = np.array([[4, 4, 9], [8, 5, 6], [3, 0, 4]], np.uint16)
    _jp2(img / "R20m" / "T32TPS_20230504T101559_SCL_20m.jp2", scl, 20)
    arrays["SCL"] = scl
    offsets = "".join(f'<BOA_ADD_OFFSET band_id="{i}">-1000</BOA_ADD_OFFSET>' for i in range(13))
    spectral = "".join(f'<Spectral_Information bandId="{i}" physicalBand="{b.replace("B0", "B")}"/>' for i, b in enumerate(s2.S2_BANDS))
    (safe / "MTD_MSIL2A.xml").write_text(MTD.format(offsets=offsets, spectral=spectral))
    return safe, arrays


def test_fake_safe_offset_from_metadata(fake_safe) -> None:
    safe, arrays = fake_safe
    meta = s2.parse_product_metadata(safe / "MTD_MSIL2A.xml")
    assert meta["baseline"] == "05.09" and meta["quantification"] == 10000
    assert meta["add_offset"]["B8A"] == -1000 and len(meta["add_offset"]) == 13
    cube = s2.read_sentinel2(safe)
    assert cube.shape == (1, 6, 6, 6)
    assert list(cube["band_name"].values) == ["B01", "B02", "B04", "B05", "B08", "B11"]
    assert str(cube["time"].values[0]).startswith("2023-05-04T10:15:59")
    assert cube.attrs["add_offset_source"] == "MTD_MSIL2A.xml"
    np.testing.assert_array_equal(cube.sel(band=2).values[0], arrays["B02"])  # the 10 m file, not R20m
    np.testing.assert_array_equal(cube.sel(band=5).values[0], np.kron(arrays["B05"], np.ones((2, 2), np.uint16)))
    np.testing.assert_array_equal(cube.sel(band=1).values[0], np.kron(arrays["B01"], np.ones((6, 6), np.uint16)))
    refl = hsikit.to_reflectance(cube.isel(time=0)).values
    np.testing.assert_allclose(refl[1], (arrays["B02"].astype(float) - 1000) / 1e4, rtol=1e-6)
    expected_clear = np.kron(np.isin(arrays["SCL"], s2.CLEAR_CLASSES), np.ones((2, 2), bool))
    np.testing.assert_array_equal(cube["clear"].values[0], expected_clear)
    override = s2.read_sentinel2(safe, add_offset=0, bands=["b2", "B8"], resolution=20, resampling="average")
    assert override.shape == (1, 2, 3, 3) and override.attrs["add_offset_source"] == "parameter"
    np.testing.assert_allclose(override.values[0, 0], arrays["B02"].reshape(3, 2, 3, 2).mean(axis=(1, 3)), atol=0.51)


def test_series_from_safe_and_stac_items(fake_safe, tmp_path) -> None:
    safe, arrays = fake_safe
    # a second date as loose COG-like GeoTIFFs described by a local STAC item with the offset already removed
    assets = {}
    for key, band in [("blue", "B02"), ("red", "B04"), ("nir", "B08"), ("rededge1", "B05"), ("swir16", "B11"),
                      ("coastal", "B01")]:
        src = sorted(safe.glob(f"GRANULE/*/IMG_DATA/R*/*_{band}_*.jp2"))[0]  # the finest (R10m < R20m)
        dst = tmp_path / f"{band}.tif"
        rasterio.shutil.copy(src, dst, driver="GTiff")
        assets[key] = {"href": dst.name}
    item = {"type": "Feature", "id": "S2B_32TPS_20230514_0_L2A",
            "properties": {"datetime": "2023-05-14T10:16:00Z", "s2:processing_baseline": "05.09",
                           "earthsearch:boa_offset_applied": True}, "assets": assets}
    stac = tmp_path / "items.json"
    stac.write_text(json.dumps({"type": "FeatureCollection", "features": [item]}))
    cube = s2.read_sentinel2([stac, safe])
    assert cube.shape == (2, 6, 6, 6)
    assert [str(t)[:10] for t in cube["time"].values] == ["2023-05-04", "2023-05-14"]
    # offsets differ (-1000 for the SAFE, 0 for the item): the item's DN are shifted to the SAFE's offset
    refl = hsikit.to_reflectance(cube.isel(time=1)).values
    np.testing.assert_allclose(refl[1], arrays["B02"] / 1e4, rtol=1e-6)
    assert "earthsearch:boa_offset_applied" in cube.attrs["add_offset_source"]
    assert bool(cube["clear"].values[1].all())


def test_errors(tmp_path) -> None:
    with pytest.raises(InputError, match="file not found"):
        s2.read_sentinel2(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no Sentinel-2"):
        s2.read_sentinel2(tmp_path / "empty")
    p = tmp_path / "stack_20200101.tif"
    with rasterio.open(p, "w", driver="GTiff", count=3, height=4, width=4, dtype="uint16", crs="EPSG:32632",
                       transform=Affine(10, 0, 0, 0, -10, 0)) as dst:
        dst.write(np.ones((3, 4, 4), np.uint16))
    with pytest.raises(MetadataError, match="band_names"):
        s2.read_sentinel2(p)
    cube = s2.read_sentinel2(p, band_names=["B04", "B03", "B02"])
    assert list(cube["band_name"].values) == ["B02", "B03", "B04"]
    assert s2.band_key("b8a") == "B8A" and s2.band_key("B2") == "B02"
    assert s2.offset_for_baseline("04.00") == -1000 and s2.offset_for_baseline("03.01") == 0


def test_zipped_safe_reads_like_the_folder(fake_safe, tmp_path) -> None:
    import zipfile

    safe, _ = fake_safe
    z = tmp_path / f"{safe.name[:-5]}.zip"
    with zipfile.ZipFile(z, "w") as zf:
        for f in sorted(safe.rglob("*")):
            if f.is_file():
                zf.write(f, f.relative_to(safe.parent).as_posix())
    from_zip = s2.read_sentinel2(z)
    from_dir = s2.read_sentinel2(safe)
    np.testing.assert_array_equal(from_zip.values, from_dir.values)
    np.testing.assert_array_equal(from_zip["clear"].values, from_dir["clear"].values)
    assert from_zip.attrs["add_offset_source"] == "MTD_MSIL2A.xml"
    assert str(from_zip["time"].values[0]) == str(from_dir["time"].values[0])
    folder = tmp_path / "zips"
    folder.mkdir()
    z.rename(folder / z.name)
    assert s2.read_sentinel2(folder).shape == from_dir.shape
    bad = tmp_path / "broken.zip"
    bad.write_bytes(b"not a zip")
    with pytest.raises(InputError, match="ZIP"):
        s2.read_sentinel2(bad)


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_series_masks_survive_netcdf_and_zarr(shared_data, tmp_path, suffix):
    import hsikit

    cube = hsikit.open(shared_data / "sentinel2_sen2r_barbellino", format="sentinel2")
    out = hsikit.save(cube, tmp_path / f"s2{suffix}")
    back = hsikit.open(out)
    assert back.dims == cube.dims and back.sizes == cube.sizes
    np.testing.assert_array_equal(back.values, cube.values)
    np.testing.assert_array_equal(back["clear"].values, cube["clear"].values)
    np.testing.assert_array_equal(back["scl"].values, cube["scl"].values)
    assert back["clear"].dtype == bool
    np.testing.assert_array_equal(back["time"].values, cube["time"].values)


def test_open_dispatches_sentinel2_sources(shared_data):
    import hsikit
    from hsikit.io import detect_format

    assert detect_format(shared_data / "sentinel2_eolearn_testpatch") == "eolearn"
    patch = next((shared_data / "bigearthnet_s2_patches" / "benv1").glob("*.npz"))
    assert detect_format(patch) == "bigearthnet"
    cube = hsikit.open(shared_data / "sentinel2_eolearn_testpatch")
    assert cube.dims == ("time", "band", "y", "x") and cube.sizes["band"] == 13


def test_open_recognises_a_folder_of_dated_stacks(shared_data, tmp_path):
    import shutil

    import hsikit
    from hsikit.io import detect_format

    assert detect_format(shared_data / "sentinel2_sen2r_barbellino") == "sentinel2"
    cube = hsikit.open(shared_data / "sentinel2_sen2r_barbellino")
    assert cube.dims == ("time", "band", "y", "x") and cube.sizes["time"] == 2
    other = tmp_path / "mixed"
    other.mkdir()
    shutil.copy(shared_data / "enmap_potsdam_tiles" / "images" / "enmap_potsdam_tile_64_0.tif", other / "tile.tif")
    with pytest.raises(InputError, match="neither"):
        detect_format(other)  # a folder of ordinary rasters is not a Sentinel-2 series
