"""The cube model: construction, validation, band selection, reflectance."""

from __future__ import annotations

import numpy as np
import pytest
from affine import Affine

from hsikit.cube import TORCHGEO202, make_cube, parse_band_list, select_bands, to_reflectance, validate
from hsikit.errors import CubeValidationError, MetadataError, UsageError


def _cube(n=6, **kw):
    data = np.arange(n * 4 * 5, dtype=np.int16).reshape(n, 4, 5)
    kw.setdefault("wavelength", np.linspace(400, 900, n))
    return make_cube(data, crs="EPSG:32633", transform=Affine(30, 0, 1000, 0, -30, 2000), nodata=-1, **kw)


def test_coords_and_georeference():
    c = _cube(fwhm=5.0, scale=1e-4, sensor="EnMAP", acquisition_time="2022-07-24T10:45:26")
    assert c.dims == ("band", "y", "x")
    assert c["band"].values.tolist() == [1, 2, 3, 4, 5, 6]
    assert c["fwhm"].values.tolist() == [5.0] * 6
    assert c.rio.crs.to_epsg() == 32633 and c.rio.nodata == -1
    assert c.rio.transform() == Affine(30, 0, 1000, 0, -30, 2000)
    assert c["x"].values[0] == 1015 and c["y"].values[0] == 1985  # pixel centres
    assert c.attrs["wavelengths_known"] == 1 and c.attrs["sensor"] == "EnMAP"
    sub = c.isel(x=slice(2, 4))
    assert sub.rio.transform().c == 1060


def test_missing_wavelengths_are_nan_and_flagged():
    c = make_cube(np.zeros((3, 2, 2)))
    assert np.isnan(c["wavelength"]).all() and c.attrs["wavelengths_known"] == 0
    assert list(c["band_name"].values) == ["band_1", "band_2", "band_3"]
    with pytest.raises(CubeValidationError, match="wavelengths are missing"):
        validate(c, require_wavelengths=True)


def test_count_mismatch_and_dims_are_named():
    with pytest.raises(MetadataError, match="wavelength has 5 values but the cube has 6 bands"):
        _cube(wavelength=np.arange(5) + 400.0)
    with pytest.raises(MetadataError, match="3-D array"):
        make_cube(np.zeros((4, 4)))


def test_time_series():
    data = np.zeros((2, 3, 4, 4), np.uint16)
    c = make_cube(data, time=["2017-07-03", "2019-07-23"], wavelength=[490, 560, 665])
    assert c.dims == ("time", "band", "y", "x") and str(c["time"].values[1])[:10] == "2019-07-23"


def test_validate_names_each_problem():
    bad = _cube(wavelength=[400, 500, 450, 600, 700, 800])  # one step back of 50 nm: a detector split, accepted
    validate(bad)
    worse = _cube(wavelength=[400, 500, 450, 600, 550, 800])
    with pytest.raises(CubeValidationError, match="not monotonic"):
        validate(worse)
    far = _cube(wavelength=[400, 500, 900, 600, 700, 800])  # a 300 nm step back is no detector overlap
    with pytest.raises(CubeValidationError, match="band 4: 600.00 nm after 900.00 nm"):
        validate(far)
    data = np.ones((3, 4, 4), np.float32)
    data[1] = -1
    data[2, 0, 0] = np.nan
    c = make_cube(data, wavelength=[1, 2, 3], nodata=-1)
    with pytest.raises(CubeValidationError) as err:
        validate(c, check_data=True)
    assert "1 NaN values" in str(err.value) and "bands 2 are entirely nodata" in str(err.value)
    fixed = make_cube(np.nan_to_num(data), wavelength=[1, 2, 3], nodata=-1, bbl=[1, 0, 1])
    validate(fixed, check_data=True)


def test_band_selection():
    c = _cube(bbl=[1, 1, 0, 1, 0, 1])
    assert select_bands(c, "valid")["band"].values.tolist() == [1, 2, 4, 6]
    assert select_bands(c, "2-3,6")["band"].values.tolist() == [2, 3, 6]
    assert select_bands(c, [6, 1])["band"].values.tolist() == [6, 1]
    with pytest.raises(UsageError, match="unknown band preset"):
        select_bands(c, "vnir-only")
    with pytest.raises(UsageError, match="outside 1-6"):
        select_bands(c, "5-9")
    with pytest.raises(UsageError, match="needs a 224-band"):
        select_bands(c, "torchgeo202")
    assert len(TORCHGEO202) == 202 and parse_band_list("1-3", 3) == [1, 2, 3]


def test_to_reflectance_applies_scale_and_masks_nodata():
    c = _cube(scale=1e-4, offset=0.01)
    r = to_reflectance(c)
    assert r.dtype == np.float32 and np.isnan(r.rio.nodata)
    np.testing.assert_allclose(r.values[0, 0, 1], 1 * 1e-4 + 0.01, rtol=1e-6)
    assert np.isfinite(r.values).all()
    d = c.values.copy()
    d[:, 0, 0] = -1
    r = to_reflectance(c.copy(data=d))
    assert np.isnan(r.values[:, 0, 0]).all() and float(r["scale"][0]) == 1.0
