"""Degradation models (hsikit.data.degrade): statistics, recipe rules and reproducibility."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hsikit.data import degrade as d
from hsikit.errors import UsageError


def _flat(c: int = 31, h: int = 64, w: int = 64, b: int | None = None, value: float = 0.5) -> torch.Tensor:
    shape = (c, h, w) if b is None else (b, c, h, w)
    return torch.full(shape, value, dtype=torch.float64)


def _band_std(noise: torch.Tensor) -> np.ndarray:
    return noise.flatten(-2).std(dim=-1).numpy()


def test_gaussian_sigma_per_band_and_seed() -> None:
    x = torch.rand(31, 96, 96, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    y = d.gaussian_noise(x, 0.1, generator=3)
    np.testing.assert_allclose(_band_std(y - x), 0.1, rtol=0.05)
    assert abs(float((y - x).mean())) < 3e-3
    torch.testing.assert_close(y, d.gaussian_noise(x, 0.1, generator=3), rtol=0, atol=0)
    assert not torch.equal(y, d.gaussian_noise(x, 0.1, generator=4))
    per_band = torch.linspace(0.01, 0.3, 31, dtype=torch.float64)
    y2 = d.gaussian_noise(x, per_band, generator=0)
    np.testing.assert_allclose(_band_std(y2 - x), per_band.numpy(), rtol=0.05)


def test_batch_images_get_independent_noise() -> None:
    x = _flat(b=2)
    y = d.gaussian_noise(x, 0.1, generator=0)
    assert not torch.equal(y[0], y[1])
    with pytest.raises(UsageError):
        d.gaussian_noise(x, torch.ones(5), generator=0)
    with pytest.raises(UsageError):
        d.gaussian_noise(torch.zeros(4, 4), 0.1)


def test_noniid_gaussian_sigmas_from_the_set() -> None:
    x = _flat(c=31, h=96, w=96, b=2)
    y, p = d.noniid_gaussian(x, generator=5, return_params=True)
    sigma = p["sigma"].numpy()
    assert sigma.shape == (2, 31)
    allowed = np.array(d.SIGMAS_255) / 255
    assert np.all(np.isclose(sigma[..., None], allowed).any(-1))
    assert len(np.unique(sigma)) == 4  # 62 draws from 4 values: all appear
    np.testing.assert_allclose(_band_std(y - x), sigma, rtol=0.05)
    yu, pu = d.noniid_gaussian(x, (0.1, 0.3), uniform=True, generator=5, return_params=True)
    assert float(pu["sigma"].min()) >= 0.1 and float(pu["sigma"].max()) <= 0.3
    np.testing.assert_allclose(_band_std(yu - x), pu["sigma"].numpy(), rtol=0.05)


def test_blind_gaussian_one_sigma_per_image() -> None:
    x = _flat(c=8, h=96, w=96, b=3)
    y, p = d.blind_gaussian(x, generator=2, return_params=True)
    s = p["sigma"].numpy()
    assert np.all((s >= 10 / 255) & (s <= 70 / 255))
    np.testing.assert_allclose(_band_std(y - x), np.repeat(s[:, None], 8, 1), rtol=0.05)


def test_poisson_gaussian_variance_follows_the_signal() -> None:
    levels = torch.linspace(0.05, 0.9, 12, dtype=torch.float64)
    x = levels[:, None, None].expand(12, 128, 128).clone()
    x[0, 0, 0] = float("nan")
    gain, read = 0.01, 0.005
    y = d.poisson_gaussian(x, gain, read, generator=0)
    assert torch.isnan(y[0, 0, 0])
    r = (y - x)[:, 1:, :]
    np.testing.assert_allclose(_band_std(r), np.sqrt(gain * levels.numpy() + read**2), rtol=0.05)
    np.testing.assert_allclose(r.flatten(1).mean(1).numpy(), 0, atol=0.01)
    torch.testing.assert_close(y, d.poisson_gaussian(x, gain, read, generator=0), equal_nan=True, rtol=0, atol=0)


def test_column_count_rules_match_models_md() -> None:
    # models.md 1.2: 26...77 columns at W = 512 for the test set; numpy randint bounds for training
    assert d.column_count_range(512, "stripe", "test") == (26, 77)
    assert d.column_count_range(512, "deadline", "test") == (26, 77)
    assert d.column_count_range(512, "stripe", "train") == (25, 75)  # randint(25, 76)
    assert d.column_count_range(512, "deadline", "train") == (26, 76)  # randint(26, 77)
    assert d.column_count_range(64, "stripe", "train") == (3, 8)
    assert d.band_count(31, "test") == 10 and d.band_count(31, "train") == 10
    assert d.band_count(224, "test") == 10 and d.band_count(224, "train") == 74 and d.band_count(4, "test") == 4


@pytest.mark.parametrize("protocol", ["test", "train"])
def test_stripes_count_positions_and_offsets(protocol: str) -> None:
    x = _flat(c=40, h=32, w=128)
    y, rec = d.stripes(x, protocol=protocol, generator=9, return_params=True)
    assert len(rec.bands) == d.band_count(40, protocol) == len(set(rec.bands))
    lo, hi = d.column_count_range(128, "stripe", protocol)
    diff = y - x
    touched = set()
    for b, cols, offs in zip(rec.bands, rec.columns, rec.offsets):
        assert lo <= len(cols) <= hi and len(set(cols)) == len(cols)
        assert all(-0.25 <= s <= 0.25 for s in offs)
        expected = torch.zeros(128, dtype=x.dtype)
        expected[cols] = -torch.tensor(offs, dtype=x.dtype)
        torch.testing.assert_close(diff[b], expected[None, :].expand(32, 128))
        touched.add(b)
    others = [b for b in range(40) if b not in touched]
    assert torch.equal(diff[others], torch.zeros_like(diff[others]))
    y2 = d.stripes(x, protocol=protocol, generator=9)
    assert torch.equal(y, y2)


def test_dead_lines_zero_whole_columns() -> None:
    x = _flat(c=20, h=16, w=100, value=0.7)
    y, rec = d.dead_lines(x, 6, generator=1, return_params=True)
    assert len(rec.bands) == 6
    for b, cols in zip(rec.bands, rec.columns):
        assert 5 <= len(cols) <= 15
        assert torch.equal(y[b][:, cols], torch.zeros(16, len(cols), dtype=x.dtype))
        keep = [c for c in range(100) if c not in cols]
        assert torch.equal(y[b][:, keep], x[b][:, keep])
    dead_columns = (y == 0).all(dim=1).sum(dim=1)
    assert sorted(int(v) for v in dead_columns[rec.bands]) == sorted(len(c) for c in rec.columns)


def test_impulse_fraction_and_values() -> None:
    x = _flat(c=31, h=128, w=128, value=0.5)
    y, rec = d.impulse(x, generator=4, return_params=True)
    assert len(rec.bands) == 10
    for b, dens in zip(rec.bands, rec.density):
        assert dens in d.IMPULSE_DENSITIES
        hit = y[b] != 0.5
        frac = float(hit.double().mean())
        assert abs(frac - dens) < 4 * math.sqrt(dens * (1 - dens) / hit.numel())
        values = y[b][hit]
        assert bool(((values == 0) | (values == 1)).all())
        salt = float((values == 1).double().mean())
        assert abs(salt - 0.5) < 4 * math.sqrt(0.25 / values.numel())
    clean = [b for b in range(31) if b not in rec.bands]
    assert torch.equal(y[clean], x[clean])


def test_mixture_uses_disjoint_thirds() -> None:
    x = _flat(c=31, h=32, w=96)
    y, p = d.mixture_noise(x, generator=0, return_params=True)
    stripe, dead, imp = p["corrupted"]
    assert len(stripe.bands) == len(dead.bands) == len(imp.bands) == 10
    assert not set(stripe.bands) & set(dead.bands) and not set(dead.bands) & set(imp.bands)
    assert not set(stripe.bands) & set(imp.bands)
    for b, cols in zip(dead.bands, dead.columns):
        assert 5 <= len(cols) <= 15
        assert bool((y[b][:, cols] == 0).all())
    assert torch.equal(y, d.mixture_noise(x, generator=0))


def test_complex_round_robin() -> None:
    recipe = d.parse_noise("complex")
    x = _flat(c=30, h=32, w=64)
    exact = []
    for i in range(4):
        y = recipe(x, torch.Generator().manual_seed(i))
        exact.append((int((y == 0).sum()), int((y == 1).sum())))
    assert exact[0] == (0, 0)  # Gaussian only
    assert exact[1][0] > 0 and exact[1][1] > 0  # impulse: salt and pepper
    assert exact[2] == (0, 0)  # stripes shift columns, no exact values
    assert exact[3][0] >= 10 * 32 * 3 and exact[3][1] == 0  # dead lines on 10 bands, >= 3 columns each


def test_parse_noise_specs() -> None:
    assert str(d.parse_noise("noniid+stripe")) == "noniid+stripe"
    r = d.parse_noise("gaussian:50/255")
    assert r.steps[0].values == [pytest.approx(50 / 255)]
    assert d.parse_noise("noniid:0.1-0.3").steps[0].range == (0.1, 0.3)
    assert d.parse_noise("gaussian:1e-3-2e-3").steps[0].range == (1e-3, 2e-3)
    s = d.parse_noise("stripe:bands=5,amp=0.1,protocol=train").steps[0]
    assert s.options == {"bands": 5, "amp": 0.1, "protocol": "train"}
    for bad in ["", "foo", "gaussian", "gaussian:x", "stripe:0.1", "stripe:colour=2", "impulse:protocol=eval",
                "noniid:0.3-0.1", "poisson"]:
        with pytest.raises(UsageError):
            d.parse_noise(bad)


def test_gaussian_list_cycles_per_image() -> None:
    x = _flat(c=4, h=96, w=96, b=4)
    y = d.parse_noise("gaussian:0.01,0.1")(x, 0)
    measured = (y - x).flatten(1).std(1).numpy()
    np.testing.assert_allclose(measured, [0.01, 0.1, 0.01, 0.1], rtol=0.05)


def test_recipe_reproducible_from_seed() -> None:
    x = torch.rand(2, 31, 32, 32, generator=torch.Generator().manual_seed(0))
    for spec in ["mixture", "noniid+impulse", "poisson:0.01,0.002", "blind"]:
        a = d.parse_noise(spec)(x, 11)
        b = d.parse_noise(spec)(x, 11)
        c = d.parse_noise(spec)(x, 12)
        assert torch.equal(a, b) and not torch.equal(a, c), spec


def test_blur_decimate_mtf_gain_at_nyquist() -> None:
    r, gnyq = 4, 0.3
    w = 256
    cols = torch.arange(w, dtype=torch.float64)
    wave = torch.cos(2 * math.pi * cols / (2 * r))  # the low-resolution Nyquist frequency
    x = wave.expand(2, 64, w).clone()
    y = d.blur(x, r, gnyq)
    amplitude = float(y[0, 32, 60:-60].abs().max())
    assert amplitude == pytest.approx(gnyq, rel=0.01)
    flat = _flat(c=3, h=40, w=40, b=2)
    low = d.blur_decimate(flat, r, [0.2, 0.3, 0.4])
    assert low.shape == (2, 3, 10, 10)
    torch.testing.assert_close(low, torch.full_like(low, 0.5))
    from hsikit.metrics.mtf import mtf_degrade

    z = torch.rand(5, 33, 29, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(d.blur_decimate(z, 3, 0.25), mtf_degrade(z, 0.25, 3))


def test_wald_protocol_shapes() -> None:
    ms = torch.rand(6, 20, 20, dtype=torch.float64)
    pan = torch.rand(1, 80, 80, dtype=torch.float64)
    ms_low, pan_low, ref = d.wald_protocol(ms, pan, 4)
    assert ms_low.shape == (6, 5, 5) and pan_low.shape == (1, 20, 20) and ref is ms
    with pytest.raises(UsageError):
        d.wald_protocol(ms, pan[:, :60], 4)


def test_simulate_pan_and_bands() -> None:
    wl = np.arange(400.0, 1010.0, 10.0)  # 61 bands
    w = d.band_weights(wl, [450, 900], [1, 1])
    assert w.sum() == pytest.approx(1) and w[wl < 450].sum() == 0 and w[wl > 900].sum() == 0
    x = torch.rand(61, 8, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    pan = d.simulate_pan(x, wl)
    assert pan.shape == (1, 8, 8)
    torch.testing.assert_close(pan[0], torch.einsum("chw,c->hw", x, torch.as_tensor(w)))
    flat = torch.full((61, 4, 4), 0.3, dtype=torch.float64)
    torch.testing.assert_close(d.simulate_pan(flat, wl), torch.full((1, 4, 4), 0.3, dtype=torch.float64))
    from hsikit.data.sensors import sensor_bands

    s2 = sensor_bands("sentinel2")
    ms = d.simulate_bands(flat[None], wl, s2.wavelength, s2.fwhm)
    inside = (s2.wavelength > 420) & (s2.wavelength < 990)
    assert ms.shape == (1, 13, 4, 4)
    torch.testing.assert_close(ms[0, inside], torch.full((int(inside.sum()), 4, 4), 0.3, dtype=torch.float64))
    assert bool(torch.isnan(ms[0, ~inside]).all())


def test_degrade_blur_then_noise() -> None:
    x = _flat(c=5, h=64, w=64)
    y = d.degrade(x, "gaussian:0.05", blur_ratio=2, generator=0)
    assert y.shape == (5, 32, 32)
    np.testing.assert_allclose(_band_std(y - 0.5), 0.05, rtol=0.1)


# ---------------------------------------------------------------------------- cube level and CLI


def _cli(capsys, *args):
    from hsikit.cli import main

    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_cli_degrade_real_enmap_tile(capsys, tmp_path, enmap_tile) -> None:
    import hsikit

    clean = hsikit.to_reflectance(hsikit.open(enmap_tile))
    out = tmp_path / "noisy.tif"
    rc, text, err = _cli(capsys, "degrade", str(enmap_tile), str(out), "--noise", "gaussian:0.01", "--seed", "3")
    assert rc == 0, err
    assert "noise=gaussian:0.01" in text
    noisy = hsikit.open(out)
    assert noisy.rio.crs == clean.rio.crs and noisy.rio.transform() == clean.rio.transform()
    np.testing.assert_allclose(noisy["wavelength"].values, clean["wavelength"].values)
    good = clean["bbl"].values
    diff = noisy.values[good] - clean.values[good]
    assert float(np.std(diff)) == pytest.approx(0.01, rel=0.03)
    np.testing.assert_allclose(np.std(diff, axis=(1, 2)), 0.01, rtol=0.15)
    assert np.isnan(noisy.values[~good]).all()  # the nodata bands 130-135 stay nodata
    again = tmp_path / "again.tif"
    assert _cli(capsys, "degrade", str(enmap_tile), str(again), "--noise", "gaussian:0.01", "--seed", "3")[0] == 0
    np.testing.assert_array_equal(hsikit.open(again).values, noisy.values)
    other = tmp_path / "other.tif"
    assert _cli(capsys, "degrade", str(enmap_tile), str(other), "--noise", "gaussian:0.01", "--seed", "4")[0] == 0
    assert not np.array_equal(hsikit.open(other).values[good], noisy.values[good])


def test_cli_degrade_blur_ratio_grid(capsys, tmp_path, enmap_tile) -> None:
    import hsikit

    out = tmp_path / "lr.nc"
    rc, _, err = _cli(capsys, "degrade", str(enmap_tile), str(out), "--blur-ratio", "4", "--bands", "valid")
    assert rc == 0, err
    low = hsikit.open(out)
    clean = hsikit.to_reflectance(hsikit.select_bands(hsikit.open(enmap_tile), "valid"))
    assert low.shape == (218, 8, 8)
    t, t0 = low.rio.transform(), clean.rio.transform()
    assert (t.a, t.e, t.c, t.f) == (120.0, -120.0, t0.c, t0.f)
    expected = d.blur_decimate(torch.from_numpy(clean.values), 4, 0.3)
    np.testing.assert_allclose(low.values, expected.numpy(), rtol=1e-5, atol=1e-6)


def test_degrade_int16_reflectance_and_nodata(tmp_path) -> None:
    import hsikit
    from affine import Affine

    from hsikit.data.degrade import degrade_cube

    rng = np.random.default_rng(0)
    data = rng.integers(500, 4000, size=(6, 40, 40)).astype(np.int16)
    data[:, :5, :5] = -32768
    cube = hsikit.make_cube(data, wavelength=np.linspace(450, 900, 6), scale=1e-4, nodata=-32768, crs="EPSG:32633",
                            transform=Affine(30, 0, 500000, 0, -30, 5800000))
    src = tmp_path / "int16.tif"
    hsikit.save(cube, src)
    out = degrade_cube(hsikit.open(src), "mixture", seed=1)
    v = out.values
    assert v.dtype == np.float32 and np.isnan(v[:, :5, :5]).all()
    assert np.isfinite(v[:, 5:, :]).all() and -1.0 < np.nanmedian(v) < 1.0  # reflectance, not DN
    assert out.attrs["degradation"] == "noise=mixture; seed=1"
    low = degrade_cube(hsikit.open(src), None, blur_ratio=2)
    assert np.isnan(low.values[:, :2, :2]).all() and np.isfinite(low.values[:, 3:, 3:]).all()
    assert float(np.nanmax(low.values)) < 0.41


def test_cli_degrade_errors(capsys, tmp_path, enmap_tile) -> None:
    rc, _, err = _cli(capsys, "degrade", str(enmap_tile), str(tmp_path / "o.tif"))
    assert rc == 2 and "nothing to do" in err
    rc, _, err = _cli(capsys, "degrade", str(enmap_tile), str(tmp_path / "o.tif"), "--noise", "gauss:1")
    assert rc == 2 and "unknown noise 'gauss'" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.tif").exists()


def test_degrade_sentinel2_time_series(shared_data, tmp_path) -> None:
    import hsikit
    from hsikit.data.degrade import degrade_cube
    from hsikit.io.sentinel2 import read_sentinel2

    series = read_sentinel2(shared_data / "sentinel2_sen2r_barbellino")  # (2, 11, 42, 24) uint16 + SCL
    noisy = degrade_cube(series, "gaussian:0.01", seed=0)
    assert noisy.dims == series.dims and noisy.shape == series.shape
    np.testing.assert_array_equal(noisy["time"].values, series["time"].values)
    clean = hsikit.to_reflectance(series).values
    diff = noisy.values - clean
    ok = np.isfinite(diff)
    assert float(np.std(diff[ok])) == pytest.approx(0.01, rel=0.05)
    assert np.array_equal(np.isnan(noisy.values), np.isnan(clean))  # nodata stays nodata
    low = degrade_cube(series, None, blur_ratio=2)
    assert low.shape == (2, 11, 21, 12) and low.rio.transform().a == 20.0
    out = hsikit.save(noisy, tmp_path / "series.nc")  # (the writer keeps band coords; clear/scl are dropped)
    back = hsikit.open(out)
    assert back.dims == ("time", "band", "y", "x") and back.shape == series.shape


def test_cli_degrade_spectral_response(capsys, tmp_path, enmap_tile) -> None:
    import hsikit
    from hsikit.data.sensors import sensor_bands

    out = tmp_path / "s2.tif"
    rc, _, err = _cli(capsys, "degrade", str(enmap_tile), str(out), "--srf", "sentinel2")
    assert rc == 0, err
    s2 = hsikit.open(out)
    names = list(s2["band_name"].values)
    assert "B10" not in names and len(names) == 12  # B10 (1375 nm) falls in EnMAP's absorption gap
    clean = hsikit.to_reflectance(hsikit.select_bands(hsikit.open(enmap_tile), "valid"))
    bands = sensor_bands("sentinel2")
    keep = [list(bands.names).index(n) for n in names]
    expected = d.simulate_bands(torch.from_numpy(clean.values), clean["wavelength"].values, bands.wavelength[keep],
                                bands.fwhm[keep], max_gap=50.0)
    np.testing.assert_allclose(s2.values, expected.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(s2["wavelength"].values, bands.wavelength[keep])
    pan_path = tmp_path / "pan.tif"
    rc, _, err = _cli(capsys, "degrade", str(enmap_tile), str(pan_path), "--srf", "pan:450-800", "--blur-ratio", "2")
    assert rc == 0, err
    pan = hsikit.open(pan_path)
    assert pan.shape == (1, 16, 16) and pan["wavelength"].values[0] == 625
    w = d.band_weights(clean["wavelength"].values, [450 - 1e-6, 450, 800, 800 + 1e-6], [0, 1, 1, 0])
    full = np.tensordot(w, clean.values, axes=1)
    np.testing.assert_allclose(pan.values[0], d.blur_decimate(torch.from_numpy(full[None]), 2)[0].numpy(), rtol=1e-5)
    rc, _, err = _cli(capsys, "degrade", str(enmap_tile), str(tmp_path / "x.tif"), "--srf", "pan:4")
    assert rc == 2 and "pan:LO-HI" in err


def test_value_scale_max_on_a_uint16_cube(capsys, shared_data, tmp_path) -> None:
    import hsikit

    src = shared_data / "hsi_anomaly_scenes" / "abu-airport-1.mat"  # uint16 0-6604, scale 1
    out = tmp_path / "abu.nc"
    rc, _, err = _cli(capsys, "degrade", str(src), str(out), "--noise", "gaussian:0.1", "--value-scale", "max")
    assert rc == 0, err
    diff = hsikit.open(out).values - hsikit.open(src).values.astype(np.float32)
    assert float(diff.std()) == pytest.approx(0.1 * 6604, rel=0.02)  # 10 % of the peak, in DN
    rc, _, err = _cli(capsys, "degrade", str(src), str(out), "--noise", "gaussian:0.1", "--value-scale", "peak")
    assert rc == 2 and "value_scale" in err
