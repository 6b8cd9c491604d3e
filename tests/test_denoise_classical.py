"""Classical denoisers on real cubes with known noise: FastHyDe (non-iid whitening), LRMR, NLM."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import hsikit
from hsikit.data.degrade import parse_noise
from hsikit.denoise.classical import fasthyde, lrmr, nlm, noise_sigma
from hsikit.errors import UsageError
from hsikit.metrics import psnr


@pytest.fixture(scope="module")
def clean(shared_data) -> torch.Tensor:
    """Real AVIRIS San Diego crop, 189 bands x 48 x 48, min-max scaled to [0, 1]."""
    cube = hsikit.open(shared_data / "hsi_anomaly_scenes" / "sandiego_plane_100x100.mat")
    x = np.asarray(cube.values, np.float32)[:, 20:68, 30:78]
    return torch.as_tensor((x - x.min()) / (x.max() - x.min()))


def _psnr(est: torch.Tensor, ref: torch.Tensor) -> float:
    return float(psnr(est.clamp(0, 1).numpy(), ref.numpy(), data_range=1.0))


def test_nlm_flat_image_and_noise_reduction(clean):
    flat = torch.full((20, 20), 0.3)
    torch.testing.assert_close(nlm(flat, 0.1), flat)
    band = clean[40]
    noisy = band + 0.1 * torch.randn(band.shape, generator=torch.Generator().manual_seed(0))
    den = nlm(noisy, 0.1)
    assert torch.mean((den - band) ** 2) < 0.3 * torch.mean((noisy - band) ** 2)
    with pytest.raises(UsageError):
        nlm(noisy, 0.1, patch=4)


def test_fasthyde_noniid_gain_and_per_band_equivariance(clean):
    noisy = parse_noise("noniid")(clean, 0)
    den = fasthyde(noisy)
    assert den.shape == noisy.shape and den.dtype == noisy.dtype
    assert _psnr(den, clean) > _psnr(noisy, clean) + 12
    # correct whitening: rescaling band b by d_b (and its sigma) rescales the result by d_b exactly.
    # (An implementation that re-colours with an elementwise square root of a non-diagonal product,
    # as the popular port does, breaks this.)
    d = torch.linspace(0.5, 3.0, clean.shape[0])[:, None, None]
    s = noise_sigma(noisy)
    a = fasthyde(noisy, s, k=8)
    b = fasthyde(noisy * d, s * d[:, 0, 0].double(), k=8)
    torch.testing.assert_close(b, a * d, rtol=1e-4, atol=1e-5)


def test_fasthyde_batched_and_given_basis(clean):
    noisy = parse_noise("gaussian:0.1")(clean, 1)
    pair = torch.stack([noisy, noisy.flip(-1)])
    out = fasthyde(pair, 0.1)
    torch.testing.assert_close(out[0], fasthyde(noisy, 0.1), rtol=1e-5, atol=1e-6)
    for seed in range(12):  # several random bases: the projection must never produce NaN
        g = torch.Generator().manual_seed(seed)
        basis = torch.linalg.qr(torch.randn(clean.shape[0], 5, dtype=torch.float64, generator=g))[0]
        proj = fasthyde(noisy, 0.1, basis=basis)
        assert torch.isfinite(proj).all()
    # everything outside the given subspace is removed
    rest = proj.reshape(clean.shape[0], -1).double() / 0.1
    torch.testing.assert_close(basis @ (basis.T @ rest), rest, rtol=1e-4, atol=1e-4)
    with pytest.raises(UsageError):
        fasthyde(noisy, [0.1] * 3)


def test_lrmr_removes_dead_lines_and_impulse(clean):
    noisy = parse_noise("mixture")(clean, 2)
    den = lrmr(noisy)
    assert torch.isfinite(den).all()
    assert _psnr(den, clean) > _psnr(noisy, clean) + 8
    # dead columns (set to 0) come back close to the clean values
    dead = (noisy == 0).all(dim=1)  # (bands, columns)
    assert dead.any()
    err_noisy = (noisy - clean).abs().permute(0, 2, 1)[dead].mean()
    err_den = (den - clean).abs().permute(0, 2, 1)[dead].mean()
    assert err_den < 0.25 * err_noisy
    with pytest.raises(UsageError):
        lrmr(noisy, rank=0)


def test_scalar_sigma_is_exact_every_time():
    """A scalar sigma expands to every band; torch's median on the stride-0 view gave NaN (45% of calls)."""
    from hsikit.denoise.classical import noise_sigma

    t = torch.rand(189, 8, 8)
    for _ in range(50):
        s = noise_sigma(t, 0.1)
        assert torch.all(s == 0.1)
    s2 = noise_sigma(torch.rand(2, 5, 8, 8), [0.1, 0.2, 0.3, 0.4, 0.5])
    assert s2.shape == (2, 5) and torch.isfinite(s2).all()
