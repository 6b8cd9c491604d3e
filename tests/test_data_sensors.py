"""Sensor band definitions shipped as package data (hsikit.data.sensors)."""

from __future__ import annotations

import numpy as np
import pytest
import rasterio

from hsikit.data.sensors import SensorBands, available_sensors, sensor_bands
from hsikit.errors import UsageError


def test_available_sensors() -> None:
    names = available_sensors()
    assert {"enmap", "sentinel2", "aviris"} <= set(names)
    for name in names:
        bands = sensor_bands(name)
        assert isinstance(bands, SensorBands)
        n = len(bands)
        for arr in (bands.wavelength, bands.fwhm, bands.bbl, bands.names):
            assert arr.shape == (n,)
        assert np.all(bands.fwhm > 0) and np.all((bands.wavelength > 300) & (bands.wavelength < 2600))
        assert bands.source  # the CSV states where the numbers come from


def test_enmap_matches_real_tile(enmap_tile) -> None:
    bands = sensor_bands("EnMAP")
    assert len(bands) == 224
    with rasterio.open(enmap_tile) as src:
        wl = np.array([float(src.tags(i)["wavelength"]) for i in range(1, 225)])
        fw = np.array([float(src.tags(i)["fwhm"]) for i in range(1, 225)])
        bbl = np.array([src.tags(i)["bbl"] == "1" for i in range(1, 225)])
    np.testing.assert_allclose(bands.wavelength, wl, rtol=0, atol=1e-3)
    np.testing.assert_allclose(bands.fwhm, fw, rtol=0, atol=1e-4)
    np.testing.assert_array_equal(bands.bbl, bbl)
    assert list(np.flatnonzero(~bands.bbl)) == list(range(129, 135))


def test_sentinel2_bands() -> None:
    s2 = sensor_bands("s2")
    assert s2.name == "sentinel2"
    assert list(s2.names) == ["B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12"]
    assert np.all(np.diff(s2.wavelength) > 0)
    assert s2.wavelength[8] == pytest.approx(864.7) and s2.fwhm[12] == pytest.approx(175)
    assert not s2.bbl[10] and s2.bbl.sum() == 12


def test_arrays_are_read_only_and_unknown_sensor() -> None:
    with pytest.raises(ValueError):
        sensor_bands("enmap").wavelength[0] = 0.0
    with pytest.raises(UsageError, match="unknown sensor"):
        sensor_bands("landsat-42")


def test_identify_sensor_from_wavelengths(enmap_tile) -> None:
    import hsikit
    from hsikit.data.sensors import identify_sensor, sensor_bands

    cube = hsikit.open(enmap_tile)
    assert identify_sensor(cube["wavelength"].values) == "enmap"
    assert identify_sensor(hsikit.open(enmap_tile, bands="torchgeo202")["wavelength"].values) == "enmap"
    assert identify_sensor(sensor_bands("sentinel2").wavelength) == "sentinel2"
    assert identify_sensor(cube["wavelength"].values[:50]) is None  # a VNIR subset is not "EnMAP"
    assert identify_sensor(cube["wavelength"].values + 5.0) is None
    assert hsikit.describe(cube)["sensor_from_wavelengths"] == "enmap"


def test_describe_stays_callable_after_its_module_is_imported(enmap_tile) -> None:
    """Importing hsikit.describe (as the CLI does) binds the module to ``hsikit.describe``."""
    import importlib

    import hsikit

    importlib.import_module("hsikit.describe")
    assert hsikit.describe(hsikit.open(enmap_tile))["sensor_from_wavelengths"] == "enmap"
