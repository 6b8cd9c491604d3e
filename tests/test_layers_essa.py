"""ESSA attention: the released computation, reassociation, shapes, gradients, fused kernel equivalence."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import rasterio
import torch

from hsikit.layers.essa import (
    ESSAttention,
    essa_attention,
    essa_attention_quadratic,
    essa_attention_reference,
    essa_feature_maps,
)
from hsikit.layers.kernels.dispatch import kernel_mode


def _released_numpy(x: np.ndarray, w_qkv, b_qkv, w_o, b_o) -> np.ndarray:
    """ESSAttn.forward of Rexzhan/ESSAformer transcribed step by step in numpy (float64)."""
    _, n, c = x.shape
    qkv = x @ w_qkv.T + b_qkv
    q, k, v = qkv[..., :c], qkv[..., c:2 * c], qkv[..., 2 * c:]
    q = q - q.mean(axis=2, keepdims=True)
    k = k - k.mean(axis=2, keepdims=True)
    q2, k2 = q ** 2, k ** 2
    q2s, k2s = q2.sum(axis=2, keepdims=True), k2.sum(axis=2, keepdims=True)
    k2 = k2 / (k2s + 1e-7)
    k2 = k2 / np.maximum(np.linalg.norm(k2, axis=-2, keepdims=True), 1e-12)
    q2 = q2 / (q2s + 1e-7)
    q2 = q2 / np.maximum(np.linalg.norm(q2, axis=-1, keepdims=True), 1e-12)
    t2 = q2 @ (np.swapaxes(k2, -2, -1) @ v) / math.sqrt(n)
    return (v + t2) @ w_o.T + b_o


def _qkv(b, n, c, seed=0, dtype=torch.float64, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    qkv = torch.randn(b, n, 3 * c, generator=g, dtype=dtype) * 1.5 + 0.3
    qkv.requires_grad_(requires_grad)
    return qkv


def test_matches_released_code_numpy():
    torch.manual_seed(0)
    m = ESSAttention(24).double()
    x = torch.randn(2, 37, 24, dtype=torch.float64)
    want = _released_numpy(x.numpy(), *(p.detach().numpy() for p in (m.lnqkv.weight, m.lnqkv.bias, m.ln.weight, m.ln.bias)))
    with kernel_mode("reference"):
        np.testing.assert_allclose(m(x).detach().numpy(), want, rtol=1e-12, atol=1e-12)


def test_reassociation_equals_quadratic_form():
    q, k, v = _qkv(3, 50, 16).split(16, dim=-1)
    torch.testing.assert_close(essa_attention_reference(q, k, v), essa_attention_quadratic(q, k, v), rtol=1e-12, atol=1e-12)


def test_feature_map_normalisations():
    q, k, _ = _qkv(2, 40, 12, seed=1).split(12, dim=-1)
    phi_q, phi_k = essa_feature_maps(q, k)
    assert (phi_q >= 0).all() and (phi_k >= 0).all()
    torch.testing.assert_close(phi_q.norm(dim=-1), torch.ones(2, 40, dtype=torch.float64))   # rows: unit L2
    torch.testing.assert_close(phi_k.norm(dim=-2), torch.ones(2, 12, dtype=torch.float64))   # columns: unit L2


def test_output_depends_on_extent_as_documented():
    # phi_K is normalised over all tokens and T / sqrt(N): the first half of the tokens processed alone differs
    q, k, v = _qkv(1, 64, 8, seed=2).split(8, dim=-1)
    full = essa_attention_reference(q, k, v)[:, :32]
    half = essa_attention_reference(q[:, :32], k[:, :32], v[:, :32])
    assert (full - half).abs().max() > 1e-3


@pytest.mark.parametrize("bands", [12, 31, 103, 224])
def test_shapes_and_gradients(bands):
    torch.manual_seed(bands)
    m = ESSAttention(bands)
    x = torch.randn(2, bands, 5, 7, requires_grad=True)
    with kernel_mode("reference"):
        y = m.forward_image(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


def test_state_dict_names_of_released_code():
    assert set(ESSAttention(8).state_dict()) == {"lnqkv.weight", "lnqkv.bias", "ln.weight", "ln.bias"}


def test_real_enmap_pixels_as_tokens(enmap_tile):
    with rasterio.open(enmap_tile) as src:
        cube = src.read().astype(np.float64)                                 # (224, 32, 32)
    x = torch.from_numpy(cube).reshape(224, -1).T[None] / cube.max()         # (1, 1024, 224)
    torch.manual_seed(0)
    m = ESSAttention(224).double()
    with kernel_mode("reference"), torch.no_grad():
        y = m(x)
        q, k, v = m.lnqkv(x).split(224, dim=-1)
        torch.testing.assert_close(essa_attention_reference(q, k, v), essa_attention_quadratic(q, k, v),
                                   rtol=1e-10, atol=1e-12)
    want = _released_numpy(x.numpy(), *(p.detach().numpy() for p in (m.lnqkv.weight, m.lnqkv.bias, m.ln.weight, m.ln.bias)))
    np.testing.assert_allclose(y.numpy(), want, rtol=1e-10, atol=1e-10)


def test_shape_errors():
    with pytest.raises(ValueError, match="ESSAttention"):
        ESSAttention(8)(torch.zeros(2, 5, 9))
    q = torch.zeros(1, 4, 8)
    with pytest.raises(ValueError, match="share one"):
        essa_attention(q, q, torch.zeros(1, 4, 7))


# --- fused Triton kernel (interpreted on the CPU: TRITON_INTERPRET=1 from conftest) -----------------

from hsikit.layers.kernels.essa_triton import essa_attention_triton  # noqa: E402

# the kernels run interpreted on CPU tensors, or compiled on the GPU with HSIKIT_GPU_TESTS=1
DEV = "cuda" if os.environ.get("HSIKIT_GPU_TESTS") == "1" and torch.cuda.is_available() else "cpu"


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def _fwd_bwd(fn, qkv, c, gy):
    x = qkv.detach().clone().requires_grad_(True)
    y = fn(*x.split(c, dim=-1))
    (g,) = torch.autograd.grad(y, x, gy)
    return y, g


# (B, N, C, token splits): odd N and C, several column blocks (C > 32), several token tiles (N > 64)
CASES = [(2, 37, 12, None), (1, 150, 31, 3), (2, 97, 40, 2), (1, 33, 103, None)]


@pytest.mark.parametrize("b,n,c,splits", CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_equals_reference(b, n, c, splits, dtype):
    qkv = _qkv(b, n, c, seed=n + c, dtype=dtype).to(DEV)
    gy = torch.randn(b, n, c, generator=torch.Generator().manual_seed(1), dtype=dtype).to(DEV)
    y0, g0 = _fwd_bwd(essa_attention_reference, qkv, c, gy)
    y1, g1 = _fwd_bwd(lambda q, k, v: essa_attention_triton(q, k, v, splits=splits), qkv, c, gy)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert y1.dtype == dtype and _rel(y1, y0) < tol
    for part in range(3):  # grad_q, grad_k, grad_v, each against its own scale
        sl = slice(part * c, (part + 1) * c)
        assert g0[..., sl].abs().max() > 0
        assert _rel(g1[..., sl], g0[..., sl]) < tol, part


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_fused_half_against_float64(dtype):
    b, n, c = 2, 45, 24
    qkv = _qkv(b, n, c, seed=3, dtype=torch.float32).to(device=DEV, dtype=dtype)
    gy = torch.randn(b, n, c, generator=torch.Generator().manual_seed(2)).to(device=DEV, dtype=dtype)
    y0, g0 = _fwd_bwd(essa_attention_reference, qkv.double(), c, gy.double())
    y1, g1 = _fwd_bwd(essa_attention_triton, qkv, c, gy)
    assert y1.dtype == dtype and g1.dtype == dtype and _rel(y1, y0) < 1e-2
    for part in range(3):
        sl = slice(part * c, (part + 1) * c)
        assert _rel(g1[..., sl], g0[..., sl]) < 1e-2, part


def test_dispatch_and_module_under_fused_mode(monkeypatch):
    import hsikit.layers.kernels.essa_triton as kern

    calls = []
    monkeypatch.setattr(kern, "essa_attention_triton", lambda *a: calls.append(1) or essa_attention_triton(*a))
    torch.manual_seed(4)
    m = ESSAttention(20).double().to(DEV)
    x = torch.randn(2, 50, 20, dtype=torch.float64).to(DEV)
    grads = {}
    for mode in ("reference", "fused"):
        m.zero_grad()
        with kernel_mode(mode):
            y = m(x)
        y.square().sum().backward()
        grads[mode] = (y.detach(), {k: p.grad.clone() for k, p in m.named_parameters()})
    assert calls == [1]
    assert _rel(grads["fused"][0], grads["reference"][0]) < 1e-12
    for name, g in grads["reference"][1].items():
        assert _rel(grads["fused"][1][name], g) < 1e-12, name
    with kernel_mode("auto"):                       # CPU tensors: the reference, never the kernel
        m.cpu()(x.cpu())
    assert calls == [1]


def test_fused_on_real_enmap_tokens(enmap_tile):
    # 224 real EnMAP bands as channels of 64 pixel tokens (one 8 x 8 window)
    with rasterio.open(enmap_tile) as src:
        cube = src.read(window=((0, 8), (0, 8))).astype(np.float32)
    x = torch.from_numpy(cube).reshape(224, -1).T[None] / cube.max()        # (1, 64, 224)
    torch.manual_seed(5)
    m = ESSAttention(224)
    with torch.no_grad():
        q, k, v = m.lnqkv(x).split(224, dim=-1)
    gy = torch.randn(1, 64, 224)
    qkv = torch.cat([q, k, v], dim=-1)
    y0, g0 = _fwd_bwd(essa_attention_reference, qkv.double(), 224, gy.double())
    y1, g1 = _fwd_bwd(essa_attention_triton, qkv.to(DEV), 224, gy.to(DEV))
    assert _rel(y1, y0) < 1e-5
    for part in range(3):
        sl = slice(part * 224, (part + 1) * 224)
        assert _rel(g1[..., sl], g0[..., sl]) < 1e-5, part
