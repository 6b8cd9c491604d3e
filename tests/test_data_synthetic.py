"""Synthetic scene generator (hsikit.data.synthetic)."""

from __future__ import annotations

import numpy as np
import pytest

from hsikit.cube import validate
from hsikit.data.sensors import sensor_bands
from hsikit.data.synthetic import (
    abundance_field,
    add_sensor_noise,
    atmospheric_gain,
    class_mask,
    linear_mixture,
    load_earthlib,
    noise_sigma_model,
    select_endmembers,
    synthetic_scene,
)

pytest.importorskip("earthlib")


@pytest.fixture(scope="module")
def library():
    return load_earthlib()


def test_abundances_on_simplex_and_seeded() -> None:
    a = abundance_field(40, 30, 5, seed=7)
    assert a.shape == (5, 40, 30)
    assert a.min() >= 0
    np.testing.assert_allclose(a.sum(axis=0), 1.0, atol=1e-12)
    np.testing.assert_array_equal(a, abundance_field(40, 30, 5, seed=7))
    assert not np.array_equal(a, abundance_field(40, 30, 5, seed=8))
    # spatial structure: neighbours are far more alike than random pixel pairs
    assert np.abs(np.diff(a, axis=2)).mean() < 0.5 * np.abs(a - a[:, ::-1, ::-1]).mean()
    # concentration controls purity
    pure = abundance_field(40, 30, 5, concentration=20, seed=7).max(axis=0).mean()
    mixed = abundance_field(40, 30, 5, concentration=0.5, seed=7).max(axis=0).mean()
    assert pure > 0.9 and mixed < 0.5


def test_load_earthlib(library) -> None:
    spectra, wl, meta = library
    assert spectra.shape == (7261, 180) and wl.shape == (180,) and len(meta) == 7261
    assert wl[0] == pytest.approx(400) and wl[-1] == pytest.approx(2450)
    assert class_mask(meta, "vegetation").sum() == 2000
    soil, _, soil_meta = load_earthlib(["soil"])
    assert len(soil_meta) == soil.shape[0] == class_mask(meta, "soil").sum()
    np.testing.assert_array_equal(soil, spectra[soil_meta["row"].to_numpy()])


def test_select_endmembers(library) -> None:
    spectra, wl, meta = library
    em = select_endmembers(spectra, meta, wl, seed=3)
    assert em.spectra.shape == (180, 4)
    assert list(em.table["class"]) == ["vegetation", "soil", "impervious", "npv"]
    again = select_endmembers(spectra, meta, wl, seed=3)
    np.testing.assert_array_equal(em.spectra, again.spectra)
    six = select_endmembers(spectra, meta, wl, ("vegetation", "soil", "road"), n_endmembers=6, seed=0)
    assert six.spectra.shape == (180, 6) and len(set(six.table["row"])) == 6


def test_linear_mixture_shapes() -> None:
    e = np.arange(12.0).reshape(4, 3)
    a = abundance_field(5, 6, 3, seed=0)
    y = linear_mixture(e, a)
    assert y.shape == (4, 5, 6)
    np.testing.assert_allclose(y[:, 2, 3], e @ a[:, 2, 3])


@pytest.mark.parametrize("sensor", ["enmap", "sentinel2"])
def test_lstsq_recovers_abundances(library, sensor: str) -> None:
    cube, e, a = synthetic_scene(sensor, 24, 20, 4, 0.0, seed=11, library=library)
    n = len(sensor_bands(sensor))
    assert cube.shape == (n, 24, 20) and e.shape == (n, 4) and a.shape == (4, 24, 20)
    validate(cube, check_data=True)
    x, *_ = np.linalg.lstsq(e, cube.values.reshape(n, -1), rcond=None)
    np.testing.assert_allclose(x, a.reshape(4, -1), atol=1e-6)


def test_scene_reproducible_and_noise(library) -> None:
    c1, e1, a1 = synthetic_scene("enmap", 16, 16, 3, 0.01, seed=5, library=library)
    c2, e2, a2 = synthetic_scene("enmap", 16, 16, 3, 0.01, seed=5, library=library)
    np.testing.assert_array_equal(c1.values, c2.values)
    c0, e0, a0 = synthetic_scene("enmap", 16, 16, 3, 0.0, seed=5, library=library)
    np.testing.assert_array_equal(a0, a1)  # noise does not change endmembers or abundances
    np.testing.assert_array_equal(e0, e1)
    assert np.std(c1.values - c0.values) == pytest.approx(0.01, rel=0.05)
    assert c1.attrs["sensor"].startswith("enmap (simulated")
    cs, _, _ = synthetic_scene("enmap", 16, 16, 3, 3e-4, seed=5, noise_model="sensor", library=library)
    assert np.isfinite(cs.values).all()


def test_sensor_noise_model() -> None:
    wl = sensor_bands("enmap").wavelength
    g = atmospheric_gain(wl)
    assert g.shape == (224,) and np.all((g > 0) & (g <= 1))
    snr = 0.3 / noise_sigma_model(np.full(224, 0.3), wl)
    vis, swir2, water = snr[np.argmin(abs(wl - 550))], snr[np.argmin(abs(wl - 2200))], snr[np.argmin(abs(wl - 1939))]
    assert vis > 250 and 60 < swir2 < vis and water < 0.5 * swir2
    clean = np.full((224, 50, 50), 0.3)
    noisy = add_sensor_noise(clean, wl, seed=0)
    measured = 0.3 / (noisy - clean).std(axis=(1, 2))
    np.testing.assert_allclose(measured, snr, rtol=0.1)


def test_bilinear_mixture_hand_computed() -> None:
    from hsikit.data.synthetic import bilinear_mixture

    e = np.array([[0.2, 0.5], [0.4, 0.1], [0.6, 0.3]])
    a = np.array([[0.25], [0.75]])
    y = bilinear_mixture(e, a, gamma=0.5)
    expected = e @ a[:, 0] + 0.5 * 0.25 * 0.75 * e[:, 0] * e[:, 1]
    np.testing.assert_allclose(y[:, 0], expected)
    ab = abundance_field(6, 5, 3, seed=1)
    e3 = np.random.default_rng(0).uniform(0.05, 0.9, (7, 3))
    np.testing.assert_allclose(bilinear_mixture(e3, ab, 0.0), linear_mixture(e3, ab))


@pytest.mark.parametrize("sensor", ["enmap", "sentinel2"])
def test_usgs_library_scene_unmixes_exactly(shared_data, sensor: str) -> None:
    from hsikit.data.synthetic import load_usgs_library

    spectra, wl, meta = load_usgs_library(shared_data / "usgs_library_cuprite" / "USGS_1995_Library.mat")
    assert spectra.shape == (498, 224) and wl.shape == (224,)
    assert wl[0] == pytest.approx(383.15, abs=0.01) and wl[-1] == pytest.approx(2508.2, abs=0.1)
    assert meta["NAME"].iloc[0] == "Acmite NMNH133746" and meta["LEVEL_2"].iloc[0] == "acmite"
    cube, e, a = synthetic_scene(sensor, 20, 18, 5, 0.0, seed=2, library=(spectra, wl, meta), classes=("mineral",))
    n = len(sensor_bands(sensor))
    assert cube.shape == (n, 20, 18) and e.shape == (n, 5) and cube.attrs["mixing"] == "linear"
    assert cube.attrs["endmembers"].count("mineral:") == 5
    x, *_ = np.linalg.lstsq(e, cube.values.reshape(n, -1), rcond=None)
    np.testing.assert_allclose(x, a.reshape(5, -1), atol=1e-6)
    bil, e2, a2 = synthetic_scene(sensor, 20, 18, 5, 0.0, seed=2, library=(spectra, wl, meta), classes=("mineral",),
                                  mixing="bilinear")
    np.testing.assert_array_equal(e2, e)
    assert float(np.abs(bil.values - cube.values).max()) > 1e-3  # interactions change the spectra
