"""EnMAP L2A products: hsikit.io.enmap on the generated fixture product (tests/data/enmap)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import zipfile
from pathlib import Path

import dask.array as da
import numpy as np
import pytest
import rasterio

from hsikit.cube import TORCHGEO202, to_reflectance
from hsikit.errors import InputError, MetadataError, UsageError
from hsikit.io import open_cube
from hsikit.io.enmap import parse_metadata, read_enmap

DATA = Path(__file__).parent / "data" / "enmap"


def _generator():
    spec = importlib.util.spec_from_file_location("enmap_fixture_data", DATA / "data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()
FOLDER = DATA / GEN.PRODUCT
ZIP = DATA / f"{GEN.PRODUCT}.ZIP"
XML = FOLDER / GEN.name("METADATA.XML")
IMAGE = FOLDER / GEN.name("SPECTRAL_IMAGE.TIF")


@pytest.fixture(scope="module")
def cube():
    return read_enmap(FOLDER)


@pytest.fixture()
def product_copy(tmp_path: Path) -> Path:
    """A writable copy of the product folder."""
    return Path(shutil.copytree(FOLDER, tmp_path / GEN.PRODUCT))


def test_fixture_is_small_and_complete() -> None:
    files = [p for p in DATA.rglob("*") if p.is_file() and p.suffix != ".py"]
    assert sum(p.stat().st_size for p in files) < 1_000_000
    with zipfile.ZipFile(ZIP) as archive:
        assert sorted(archive.namelist()) == sorted(f"{GEN.PRODUCT}/{p.name}" for p in FOLDER.iterdir())


def test_values_and_georeference(cube) -> None:
    assert cube.dims == ("band", "y", "x") and cube.shape == (224, 24, 20) and cube.dtype == np.int16
    np.testing.assert_array_equal(cube.values, GEN.make_image())
    assert cube.rio.nodata == -32768
    assert cube.rio.crs.to_epsg() == 32633
    assert tuple(cube.rio.transform())[:6] == (30.0, 0.0, 364095.0, 0.0, -30.0, 5809965.0)
    assert (cube.values[:, 0, 0] == -32768).all()


def test_band_metadata_from_xml(cube) -> None:
    np.testing.assert_array_equal(cube["wavelength"].values, GEN.WAVELENGTH)
    np.testing.assert_array_equal(cube["fwhm"].values, GEN.FWHM)
    np.testing.assert_allclose(cube["scale"].values, 1e-4)
    np.testing.assert_array_equal(cube["offset"].values, 0.0)
    assert np.flatnonzero(~cube["bbl"].values).tolist() == [129, 130, 131, 132, 133, 134]
    assert (cube["detector"].values[:91] == "VNIR").all() and (cube["detector"].values[91:] == "SWIR").all()
    assert cube.attrs["sensor"] == "EnMAP"
    assert cube.attrs["acquisition_time"] == "2022-07-24T10:45:26.405000Z"
    assert cube.attrs["wavelength_units"] == "nm"


def test_fixture_wavelengths_are_the_real_ones(enmap_tile: Path) -> None:
    with rasterio.open(enmap_tile) as src:
        real_wl = [float(src.tags(i)["wavelength"]) for i in range(1, src.count + 1)]
        real_fwhm = [float(src.tags(i)["fwhm"]) for i in range(1, src.count + 1)]
        real_bbl = [src.tags(i)["bbl"] == "1" for i in range(1, src.count + 1)]
    meta = parse_metadata(XML.read_bytes())
    np.testing.assert_array_equal(meta.wavelength, real_wl)
    np.testing.assert_array_equal(meta.fwhm, real_fwhm)
    np.testing.assert_array_equal(~meta.nodata_band, real_bbl)


def test_reflectance(cube) -> None:
    refl = to_reflectance(cube)
    assert np.isnan(refl.values[:, 0, 0]).all() and np.isnan(refl.values[130]).all()
    expected = GEN.make_image()[:129, 20, 15] * 1e-4
    np.testing.assert_allclose(refl.values[:129, 20, 15], expected, rtol=1e-6)


@pytest.mark.parametrize("path", [ZIP, XML, IMAGE, DATA])
def test_all_entry_points_give_the_same_cube(cube, path: Path) -> None:
    other = read_enmap(path)
    np.testing.assert_array_equal(other.values, cube.values)
    for coord in ("wavelength", "fwhm", "bbl", "scale", "offset", "detector", "x", "y"):
        np.testing.assert_array_equal(other[coord].values, cube[coord].values)
    assert other.rio.crs == cube.rio.crs and other.rio.nodata == cube.rio.nodata
    assert other.attrs["acquisition_time"] == cube.attrs["acquisition_time"]


def test_open_cube_dispatch() -> None:
    assert open_cube(ZIP).sizes["band"] == 224
    assert open_cube(FOLDER, bands="valid").sizes["band"] == 218


@pytest.mark.parametrize(("bands", "n"), [("all", 224), ("valid", 218), ("torchgeo202", 202), ("1-10,200", 11)])
def test_band_presets(bands: str, n: int) -> None:
    sub = read_enmap(FOLDER, bands=bands)
    assert sub.sizes["band"] == n
    if bands == "torchgeo202":
        assert sub["band"].values.tolist() == list(TORCHGEO202)
    if bands == "valid":
        assert sub["bbl"].values.all()


@pytest.mark.parametrize(("overlap", "n", "dropped"), [("wavelength", 224, 0), ("vnir", 215, 9), ("swir", 212, 12)])
def test_overlap_policies(overlap: str, n: int, dropped: int) -> None:
    sub = read_enmap(ZIP, overlap=overlap)
    assert sub.sizes["band"] == n == 224 - dropped
    wl = sub["wavelength"].values
    if overlap != "wavelength":
        assert np.all(np.diff(wl) > 0)  # overlap removed: monotonic again
    if overlap == "vnir":
        assert (sub["detector"].values == "VNIR").sum() == 91
        assert wl[sub["detector"].values == "SWIR"].min() > 993.083
    if overlap == "swir":
        assert (sub["detector"].values == "SWIR").sum() == 133
        assert wl[sub["detector"].values == "VNIR"].max() < 902.257


def test_overlap_combines_with_preset() -> None:
    assert read_enmap(FOLDER, bands="valid", overlap="swir").sizes["band"] == 206
    assert read_enmap(FOLDER, bands="torchgeo202", overlap="vnir").sizes["band"] == 193


def test_lazy_read(cube) -> None:
    lazy = read_enmap(ZIP, chunks=8)
    assert isinstance(lazy.data, da.Array)
    np.testing.assert_array_equal(lazy.isel(y=slice(10, 20), x=slice(4, 9)).values,
                                  cube.values[:, 10:20, 4:9])


def test_envi_format_product(tmp_path: Path, cube) -> None:
    folder = tmp_path / GEN.PRODUCT
    folder.mkdir()
    shutil.copy(XML, folder)
    with rasterio.open(IMAGE) as src:
        profile = {k: src.profile[k] for k in ("width", "height", "count", "dtype", "crs", "transform", "nodata")}
        with rasterio.open(folder / GEN.name("SPECTRAL_IMAGE.BSQ"), "w", driver="ENVI", **profile) as dst:
            dst.write(src.read())
    header = folder / GEN.name("SPECTRAL_IMAGE.hdr")
    header.rename(folder / GEN.name("SPECTRAL_IMAGE.HDR"))
    for aux in folder.glob("*.aux.xml"):
        aux.unlink()
    other = read_enmap(folder)
    np.testing.assert_array_equal(other.values, cube.values)
    assert other.rio.crs.to_epsg() == 32633 and other.sizes["band"] == 224


def test_namespaced_xml(product_copy: Path) -> None:
    xml = product_copy / XML.name
    xml.write_text(xml.read_text().replace("<level_X>", '<level_X xmlns="http://www.dlr.de/enmap">', 1))
    other = read_enmap(xml, bands="valid")
    assert other.sizes["band"] == 218


# ---------------------------------------------------------------------------- errors

def test_missing_xml(product_copy: Path) -> None:
    (product_copy / XML.name).unlink()
    with pytest.raises(MetadataError, match="METADATA.XML"):
        read_enmap(product_copy / IMAGE.name)
    with pytest.raises(MetadataError, match="METADATA.XML"):
        read_enmap(product_copy)


def test_unparsable_xml(product_copy: Path) -> None:
    xml = product_copy / XML.name
    xml.write_text(xml.read_text()[:5000])
    with pytest.raises(MetadataError, match="not valid XML") as err:
        read_enmap(product_copy)
    assert XML.name in str(err.value)


def test_xml_without_bands(product_copy: Path) -> None:
    xml = product_copy / XML.name
    xml.write_text('<?xml version="1.0"?><level_X><specific/></level_X>')
    with pytest.raises(MetadataError, match="bandCharacterisation"):
        read_enmap(xml)


def test_band_count_mismatch(product_copy: Path) -> None:
    xml = product_copy / XML.name
    text = xml.read_text()
    text = re.sub(r'\s*<bandID number="224">\s*<wavelengthCenterOfBand>.*?</bandID>', "", text, count=1, flags=re.S)
    xml.write_text(text)
    with pytest.raises(MetadataError, match="223 bands but the spectral image has 224"):
        read_enmap(product_copy)


def test_no_spectral_image(product_copy: Path) -> None:
    (product_copy / IMAGE.name).unlink()
    with pytest.raises(InputError, match="no spectral image"):
        read_enmap(product_copy)


def test_no_spectral_image_in_zip(tmp_path: Path) -> None:
    path = tmp_path / f"{GEN.PRODUCT}.ZIP"
    with zipfile.ZipFile(path, "w") as archive:
        archive.write(XML, f"{GEN.PRODUCT}/{XML.name}")
    with pytest.raises(InputError, match="no spectral image"):
        read_enmap(path)


def test_two_products_in_one_folder(tmp_path: Path) -> None:
    for suffix in ("A", "B"):
        shutil.copytree(FOLDER, tmp_path / suffix)
    with pytest.raises(InputError, match="2 EnMAP products"):
        read_enmap(tmp_path)


def test_bad_options_and_paths(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="overlap"):
        read_enmap(FOLDER, overlap="both")
    with pytest.raises(UsageError, match="preset"):
        read_enmap(FOLDER, bands="nonsense")
    with pytest.raises(InputError, match="file not found"):
        read_enmap(tmp_path / "missing.ZIP")
    corrupt = tmp_path / "broken.ZIP"
    corrupt.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(InputError, match="ZIP"):
        read_enmap(corrupt)
