"""Gaussian SRF resampling (hsikit.data.spectral)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsikit.data.sensors import sensor_bands
from hsikit.data.spectral import gaussian_srf, resample_spectra, srf_coverage
from hsikit.errors import MetadataError

# earthlib's sampling: 10 nm steps with the water-vapour regions removed (irregular)
LIB_WL = np.r_[np.arange(400, 1351, 10), np.arange(1460, 1791, 10), np.arange(1960, 2451, 10)].astype(float)
FINE_WL = np.arange(350.0, 2600.0, 1.0)


@pytest.mark.parametrize("src", [LIB_WL, FINE_WL], ids=["earthlib", "1nm"])
@pytest.mark.parametrize("sensor", ["enmap", "sentinel2", "aviris"])
def test_rows_sum_to_one(src: np.ndarray, sensor: str) -> None:
    bands = sensor_bands(sensor)
    w = gaussian_srf(src, bands.wavelength, bands.fwhm)
    assert w.shape == (len(bands), src.size)
    covered = ~np.isnan(w).any(axis=1)
    assert covered.sum() >= len(bands) - 8  # AVIRIS reaches beyond earthlib's 400-2450 nm
    np.testing.assert_allclose(w[covered].sum(axis=1), 1.0, atol=1e-12)
    assert np.all(w[covered] >= 0)


def test_constant_spectrum_stays_constant() -> None:
    bands = sensor_bands("enmap")
    out = resample_spectra(np.full(LIB_WL.size, 0.37), LIB_WL, bands.wavelength, bands.fwhm)
    np.testing.assert_allclose(out, 0.37, atol=1e-12)


@pytest.mark.parametrize("src", [LIB_WL, FINE_WL], ids=["earthlib", "1nm"])
def test_linear_spectrum_gives_value_at_centre(src: np.ndarray) -> None:
    centres = np.linspace(600, 2200, 41)
    fwhm = np.linspace(5, 40, 41)
    out = resample_spectra(0.1 + 2e-4 * src, src, centres, fwhm)
    np.testing.assert_allclose(out, 0.1 + 2e-4 * centres, atol=1e-10)


def test_narrow_gaussian_picks_the_sample() -> None:
    spectrum = np.random.default_rng(0).random(LIB_WL.size)
    idx = [0, 17, 95, 96, 150, LIB_WL.size - 1]
    for fwhm in (1e-6, 0.0):
        out = resample_spectra(spectrum, LIB_WL, LIB_WL[idx], fwhm)
        np.testing.assert_allclose(out, spectrum[idx], atol=1e-6)


def test_irregular_and_unsorted_source() -> None:
    rng = np.random.default_rng(1)
    src = np.sort(rng.uniform(400, 2500, 300))
    perm = rng.permutation(src.size)
    spectrum = np.sin(src / 150.0)
    centres, fwhm = np.array([700.0, 1500.0, 2100.0]), np.array([10.0, 20.0, 30.0])
    a = resample_spectra(spectrum, src, centres, fwhm)
    b = resample_spectra(spectrum[perm], src[perm], centres, fwhm)
    np.testing.assert_allclose(a, b, atol=1e-12)


def test_missing_bands_nan_or_raise() -> None:
    w = gaussian_srf(LIB_WL, [300.0, 500.0, 2600.0], [10.0, 10.0, 10.0])
    assert np.isnan(w[0]).all() and np.isnan(w[2]).all() and not np.isnan(w[1]).any()
    with pytest.raises(MetadataError, match="not covered"):
        gaussian_srf(LIB_WL, [300.0, 500.0], 10.0, on_missing="raise")
    # with max_gap the removed water-vapour regions count as holes
    w = gaussian_srf(LIB_WL, [1400.0, 1880.0, 1600.0], 10.0, max_gap=50)
    assert np.isnan(w[:2]).all() and not np.isnan(w[2]).any()
    cov = srf_coverage(LIB_WL, [1400.0, 1600.0, 2450.0], 10.0, max_gap=50)
    np.testing.assert_allclose(cov, [0.0, 1.0, 0.5], atol=1e-9)


def test_bad_inputs() -> None:
    with pytest.raises(MetadataError, match="repeat"):
        gaussian_srf([400.0, 400.0, 410.0], [405.0], [5.0])
    with pytest.raises(MetadataError, match="negative"):
        gaussian_srf(LIB_WL, [405.0], [-5.0])
    with pytest.raises(MetadataError, match="along axis"):
        resample_spectra(np.zeros(5), LIB_WL, [500.0], 10.0)


def test_axis_and_torch_match_numpy() -> None:
    bands = sensor_bands("enmap")
    rng = np.random.default_rng(2)
    cube = rng.random((LIB_WL.size, 4, 5))
    out = resample_spectra(cube, LIB_WL, bands.wavelength, bands.fwhm, axis=0)
    assert out.shape == (224, 4, 5)
    ref = resample_spectra(cube.reshape(LIB_WL.size, -1).T, LIB_WL, bands.wavelength, bands.fwhm)
    np.testing.assert_allclose(out.reshape(224, -1).T, ref, atol=1e-12)
    t = torch.tensor(cube, requires_grad=True)
    out_t = resample_spectra(t, LIB_WL, bands.wavelength, bands.fwhm, axis=0)
    assert isinstance(out_t, torch.Tensor) and out_t.dtype == torch.float64
    np.testing.assert_allclose(out_t.detach().numpy(), out, atol=1e-12)
    out_t.sum().backward()
    assert t.grad is not None
    t32 = torch.tensor(cube, dtype=torch.float32)
    out32 = resample_spectra(t32, LIB_WL, bands.wavelength, bands.fwhm, axis=0)
    assert out32.dtype == torch.float32
    np.testing.assert_allclose(out32.numpy(), out, atol=1e-5)
    assert resample_spectra(cube.astype(np.float32), LIB_WL, bands.wavelength, bands.fwhm, axis=0).dtype == np.float32
