"""No-reference indices and the MTF filter: ideal cases give 0, distortions grow with degradation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsikit.metrics import (
    band_pair_q,
    d_lambda,
    d_lambda_khan,
    d_rho,
    d_s,
    d_s_r,
    hqnr,
    mtf_degrade,
    mtf_kernel,
    qnr,
    uiqi,
)


def _scene(bands: int = 4, size: int = 64, ratio: int = 4, seed: int = 0):
    """A smooth synthetic scene: fused = truth, ms = MTF-degraded truth, pan = mean of the bands."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    base = np.stack([np.sin(2 * np.pi * (k + 1) * xx) * np.cos(2 * np.pi * (k + 2) * yy) for k in range(3)])
    mix = rng.random((bands, 3))
    truth = 1.0 + 0.3 * np.einsum("bk,kyx->byx", mix, base) + 0.02 * rng.standard_normal((bands, size, size))
    ms = mtf_degrade(truth, 0.3, ratio)
    pan = truth.mean(axis=0)
    return truth, ms, pan


def test_mtf_kernel_has_the_requested_gain_at_nyquist() -> None:
    for ratio, g in [(4, 0.3), (6, 0.2), (2, 0.5)]:
        k = mtf_kernel(g, ratio)
        assert k.sum() == pytest.approx(1.0)
        row = k.sum(axis=0)  # 1-D kernel
        f = 1 / (2 * ratio)
        response = np.abs(np.sum(row * np.exp(-2j * np.pi * f * (np.arange(row.size) - row.size // 2))))
        assert response == pytest.approx(g, abs=5e-3)  # sampling a narrow Gaussian aliases slightly


def test_mtf_degrade_shape_and_torch_agree() -> None:
    truth, ms, _ = _scene()
    assert ms.shape == (4, 16, 16)
    t = mtf_degrade(torch.from_numpy(truth), 0.3, 4)
    assert isinstance(t, torch.Tensor)
    np.testing.assert_allclose(t.numpy(), ms, atol=1e-12)


def test_band_pair_q_block_and_sliding_paths_agree_with_uiqi() -> None:
    truth, _, _ = _scene(bands=3, size=32)
    for stride in (8, 1):
        q = band_pair_q(truth, block_size=8, stride=stride)
        assert q[0, 0] == pytest.approx(1.0)
        assert q[0, 2] == pytest.approx(uiqi(truth[0:1], truth[2:3], block_size=8, stride=stride), abs=1e-10)
        np.testing.assert_allclose(q, q.T)


def test_d_lambda_zero_for_ideal_and_monotone_under_degradation() -> None:
    rng = np.random.default_rng(5)
    ms = 1 + rng.random((5, 8, 8))
    up = np.repeat(np.repeat(ms, 2, 1), 2, 2)  # nearest upsampling keeps whole-image statistics exactly
    assert d_lambda(up, ms, block_size=32) == pytest.approx(0.0, abs=1e-12)
    values = []
    for sigma in (0.05, 0.2, 0.6):
        noisy = up + sigma * np.random.default_rng(6).standard_normal(up.shape)
        values.append(d_lambda(noisy, ms, block_size=32))
    assert values[0] < values[1] < values[2]


def test_d_lambda_khan_zero_for_ideal_and_monotone() -> None:
    truth, ms, _ = _scene()
    assert d_lambda_khan(truth, ms, 4, block_size=8) == pytest.approx(0.0, abs=1e-12)
    vals = [
        d_lambda_khan(truth + s * np.random.default_rng(1).standard_normal(truth.shape), ms, 4, block_size=8)
        for s in (0.05, 0.2, 0.5)
    ]
    assert 0 < vals[0] < vals[1] < vals[2]


def test_d_s_and_qnr_ideal_and_monotone() -> None:
    rng = np.random.default_rng(7)
    ms = 1 + rng.random((4, 8, 8))
    pan_lr = ms.mean(axis=0) + 0.1 * rng.random((8, 8))
    up = np.repeat(np.repeat(ms, 4, 1), 4, 2)
    pan = np.repeat(np.repeat(pan_lr, 4, 0), 4, 1)
    # nearest upsampling keeps the whole-image moments, so Q(F_b, P) = Q(M_b, P_LR): ideal
    assert d_s(up, ms, pan, 4, pan_lr=pan_lr, block_size=32) == pytest.approx(0.0, abs=1e-12)
    vals = [
        d_s(up + s * np.random.default_rng(8).standard_normal(up.shape), ms, pan, 4, pan_lr=pan_lr, block_size=32)
        for s in (0.05, 0.2, 0.6)
    ]
    assert 0 < vals[0] < vals[1] < vals[2]
    r = qnr(up, ms, pan, 4, pan_lr=pan_lr, block_size=32)
    assert r["qnr"] == pytest.approx(1.0) and r["d_lambda"] == pytest.approx(0.0, abs=1e-12)
    truth, msd, pand = _scene()
    h = hqnr(truth, msd, pand, 4, block_size=8)
    assert h["hqnr"] == pytest.approx((1 - h["d_lambda_khan"]) * (1 - h["d_s"]))
    assert h["d_lambda_khan"] == pytest.approx(0.0, abs=1e-12)


def _blur(cube: np.ndarray, gnyq: float) -> np.ndarray:
    from hsikit.metrics import mtf_filter

    return np.asarray(mtf_filter(cube, gnyq, 4))


def test_d_s_r_and_d_rho_ideal_and_monotone() -> None:
    truth, _, pan = _scene()
    assert d_s_r(truth, pan) == pytest.approx(0.0, abs=1e-12)  # pan is a linear combination
    assert d_rho(np.stack([pan, 2 * pan + 1]), pan, 4) == pytest.approx(0.0, abs=1e-9)
    rng = np.random.default_rng(2)
    dr = [d_s_r(truth + s * rng.standard_normal(truth.shape), pan) for s in (0.01, 0.1, 0.5)]
    assert dr[0] < dr[1] < dr[2]
    rho = [d_rho(_blur(truth, g), pan, 4) for g in (0.6, 0.3, 0.1)]
    assert rho[0] < rho[1] < rho[2]


def test_d_lambda_is_fast_for_many_bands() -> None:
    rng = np.random.default_rng(0)
    ms = rng.random((200, 32, 32))
    fused = np.repeat(np.repeat(ms, 4, 1), 4, 2) + 0.01 * rng.standard_normal((200, 128, 128))
    import time

    t0 = time.perf_counter()
    v = d_lambda(fused, ms)
    assert time.perf_counter() - t0 < 10
    assert 0 <= v < 1
