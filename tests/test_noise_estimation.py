"""HySime noise and subspace estimation: exact regression reference, real cubes with known noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hsikit
from hsikit.data.noise_estimation import estimate_noise, estimate_sigma, estimate_subspace, hysime
from hsikit.errors import UsageError


def _sandiego(shared_data) -> np.ndarray:
    cube = hsikit.open(shared_data / "hsi_anomaly_scenes" / "sandiego_plane_100x100.mat")
    x = np.asarray(cube.values, np.float64)
    return x / x.max()


def test_residual_equals_per_band_least_squares():
    rng = np.random.default_rng(1)
    L, N = 12, 400
    y = rng.random((3, N)).T @ rng.random((3, L)) + 0.05 * rng.standard_normal((N, L))
    y = y.T
    est = estimate_noise(y, dof_correction=False)
    for i in range(L):
        others = np.delete(y, i, axis=0)
        beta, *_ = np.linalg.lstsq(others.T, y[i], rcond=None)
        resid = y[i] - beta @ others
        np.testing.assert_allclose(est.noise[i].numpy(), resid, atol=1e-7)
        assert est.cov[i, i].item() == pytest.approx(resid @ resid / N, rel=1e-6)
    off = est.cov - torch.diag_embed(torch.diagonal(est.cov))
    assert off.abs().max() == 0
    corrected = estimate_noise(y).sigma
    np.testing.assert_allclose(corrected.numpy(), est.sigma.numpy() * np.sqrt(N / (N - L + 1)), rtol=1e-12)


def test_batched_masked_and_scaled_agree():
    rng = np.random.default_rng(2)
    y = torch.as_tensor(rng.random((2, 10, 300)))
    batched = estimate_noise(y).sigma
    for b in range(2):
        torch.testing.assert_close(batched[b], estimate_noise(y[b]).sigma)
    mask = torch.ones(2, 300, dtype=torch.bool)
    mask[:, 250:] = False
    masked = estimate_noise(y, mask=mask).sigma
    torch.testing.assert_close(masked, estimate_noise(y[..., :250]).sigma)
    torch.testing.assert_close(estimate_noise(1000 * y).sigma, 1000 * batched)


def test_sigma_on_real_cube_with_known_non_iid_noise(shared_data):
    x = _sandiego(shared_data)
    s0 = estimate_sigma(x).numpy()  # the scene's own noise
    rng = np.random.default_rng(0)
    sig = rng.uniform(0.01, 0.05, x.shape[0])
    y = x + sig[:, None, None] * rng.standard_normal(x.shape)
    s = estimate_sigma(torch.as_tensor(y, dtype=torch.float32)).numpy()
    ratio = s / np.sqrt(sig**2 + s0**2)
    assert abs(np.median(ratio) - 1) < 0.03
    assert np.mean(np.abs(ratio - 1) < 0.1) > 0.9
    # the noise also lowers the subspace dimension HySime can see
    k_clean, basis = estimate_subspace(x)
    k_noisy, _ = estimate_subspace(y)
    assert k_noisy < k_clean
    assert basis.shape == (x.shape[0], k_clean)
    torch.testing.assert_close(basis.T @ basis, torch.eye(k_clean, dtype=torch.float64), atol=1e-10, rtol=0)


def test_enmap_tile_nodata_pixels_and_bands_left_out(enmap_tile):
    cube = hsikit.open(enmap_tile)
    good = cube.isel(band=np.flatnonzero(cube["bbl"].values))
    x = np.asarray(good.values, np.float64) / 10000
    rng = np.random.default_rng(3)
    y = x + 0.02 * rng.standard_normal(x.shape)
    s = estimate_sigma(y).numpy()
    assert np.median(s) == pytest.approx(0.02, rel=0.1)
    holes = y.copy()
    holes[:, :4, :] = np.nan
    s_holes = estimate_sigma(holes).numpy()
    np.testing.assert_allclose(s_holes, estimate_sigma(y[:, 4:, :]).numpy(), rtol=1e-9)


def test_subspace_dimension_of_low_rank_plus_noise():
    rng = np.random.default_rng(4)
    L, N, k = 50, 5000, 5
    e = rng.random((L, k))
    a = rng.dirichlet(np.ones(k), N).T
    y = e @ a + 0.002 * rng.standard_normal((L, N))
    sub = hysime(y)
    assert int(sub.dim) == k
    proj = sub.signal_basis() @ sub.signal_basis().T
    resid = np.linalg.norm(e - proj.numpy() @ e) / np.linalg.norm(e)
    assert resid < 1e-3


def test_poisson_and_errors():
    rng = np.random.default_rng(5)
    # rank-one intensities stay exactly linear after the square-root transform
    lam = 20 + 80 * rng.random((2000, 1)) @ (0.5 + rng.random((1, 60)))
    y = rng.poisson(lam).T.astype(float)
    est = estimate_noise(y, noise_type="poisson")
    # Poisson variance equals the mean: estimated sigma^2 close to the mean count per band
    np.testing.assert_allclose(torch.diagonal(est.cov).numpy(), lam.T.mean(1), rtol=0.1)
    with pytest.raises(UsageError):
        estimate_noise(rng.random((10, 5)))
    with pytest.raises(UsageError):
        estimate_noise(y, noise_type="gamma")
    with pytest.raises(UsageError):
        estimate_sigma(rng.random((4, 4)))


def test_robust_sigma_ignores_sparse_outliers(shared_data):
    x = _sandiego(shared_data)[:60]
    rng = np.random.default_rng(6)
    y = x + 0.02 * rng.standard_normal(x.shape)
    hit = rng.random(y.shape) < 0.03
    hit[:40] = False  # impulses in the last 20 bands only
    y[hit] = rng.choice([0.0, 1.0], int(hit.sum()))
    plain = estimate_sigma(y).numpy()
    robust = estimate_sigma(y, robust=True).numpy()
    assert np.median(plain[40:]) > 3 * 0.02  # the residual power counts the impulses as noise
    assert np.median(robust[:40]) == pytest.approx(0.02, rel=0.1)
    assert np.median(robust[40:]) == pytest.approx(0.02, rel=0.25)
