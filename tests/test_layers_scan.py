"""Selective scan: chunked == sequential (float64), closed forms, gradients, Mamba block, recurrence."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest
import rasterio
import torch
import torch.nn.functional as F

from hsikit.layers.selective_scan import (
    LinearRecurrence,
    MambaBlock,
    default_chunk_size,
    selective_scan,
    selective_scan_reference,
)


def _inputs(b, l, d, n, seed=0, dtype=torch.float64, delta_scale=2.0, requires_grad=False):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, l, d, generator=g, dtype=dtype)
    delta = torch.rand(b, l, d, generator=g, dtype=dtype) * delta_scale + 1e-3
    A = -(torch.rand(d, n, generator=g, dtype=dtype) * 3 + 0.1)
    B = torch.randn(b, l, n, generator=g, dtype=dtype)
    C = torch.randn(b, l, n, generator=g, dtype=dtype)
    D = torch.randn(d, generator=g, dtype=dtype)
    h0 = torch.randn(b, d, n, generator=g, dtype=dtype)
    ts = (x, delta, A, B, C, D, h0)
    return tuple(t.requires_grad_(requires_grad) for t in ts)


@pytest.mark.parametrize("l,chunk", [(1, None), (5, 1), (7, 3), (16, None), (16, 4), (33, 5), (64, 64), (100, 7),
                                     (129, 16), (50, 200)])
def test_chunked_equals_sequential_float64(l, chunk):
    x, delta, A, B, C, D, h0 = _inputs(2, l, 5, 4, seed=l)
    y0, hl0 = selective_scan_reference(x, delta, A, B, C, D, initial_state=h0, return_state=True)
    y1, hl1 = selective_scan(x, delta, A, B, C, D, chunk_size=chunk, initial_state=h0, return_state=True)
    torch.testing.assert_close(y1, y0, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(hl1, hl0, rtol=1e-12, atol=1e-12)
    # without a skip and from a zero state
    torch.testing.assert_close(selective_scan(x, delta, A, B, C, chunk_size=chunk),
                               selective_scan_reference(x, delta, A, B, C), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("l,chunk", [(13, 4), (32, None)])
def test_chunked_gradients_equal_sequential(l, chunk):
    ins = _inputs(2, l, 3, 4, seed=7, requires_grad=True)
    g0 = torch.autograd.grad(selective_scan_reference(*ins[:6], initial_state=ins[6]).pow(2).sum(), ins)
    g1 = torch.autograd.grad(selective_scan(*ins[:6], chunk_size=chunk, initial_state=ins[6]).pow(2).sum(), ins)
    for a, b in zip(g1, g0):
        assert b.abs().sum() > 0
        torch.testing.assert_close(a, b, rtol=1e-11, atol=1e-11)


def test_closed_form_constant_coefficients():
    # N = 1, B = C = x = 1, constant delta: h_t = dt (1 - a^t) / (1 - a), a = exp(dt A); y = h + D
    l, dt, a_ = 40, 0.3, -1.7
    ones = torch.ones(1, l, 1, dtype=torch.float64)
    y = selective_scan(ones, ones * dt, torch.tensor([[a_]], dtype=torch.float64), ones, ones,
                       torch.tensor([0.5], dtype=torch.float64), chunk_size=6)
    a = math.exp(dt * a_)
    t = np.arange(1, l + 1)
    np.testing.assert_allclose(y[0, :, 0].numpy(), dt * (1 - a ** t) / (1 - a) + 0.5, rtol=1e-13)


def test_fp32_strong_decay_does_not_overflow():
    # |sum delta A| over one chunk is ~ 1000 >> 88: an exp(-cumsum) formulation would overflow
    x, delta, A, B, C, D, _ = _inputs(2, 64, 4, 3, seed=3, dtype=torch.float32, delta_scale=10.0)
    A = A * 10
    y1 = selective_scan(x, delta, A, B, C, D, chunk_size=16)
    y0 = selective_scan_reference(x.double(), delta.double(), A.double(), B.double(), C.double(), D.double())
    assert torch.isfinite(y1).all()
    torch.testing.assert_close(y1.double(), y0, rtol=1e-4, atol=1e-4)


def test_bf16_inputs_scanned_in_fp32():
    ins = [t.to(torch.bfloat16) for t in _inputs(1, 20, 3, 2, seed=5)[:6]]
    y = selective_scan(*ins)
    assert y.dtype == torch.bfloat16
    y0 = selective_scan_reference(*[t.double() for t in ins])
    torch.testing.assert_close(y.double(), y0, rtol=2e-2, atol=2e-2)


def test_real_spectra_as_sequences(enmap_tile):
    # 224-band EnMAP spectra scanned along wavelength (L = 224), 16 pixels x 3 channels
    with rasterio.open(enmap_tile) as src:
        cube = src.read(window=((0, 4), (0, 4))).astype(np.float64)   # (224, 4, 4)
    spectra = torch.from_numpy(cube.reshape(224, 16).T.copy())        # (16, 224)
    spectra = spectra / spectra.abs().max()
    x = spectra[:, :, None].repeat(1, 1, 3) * torch.tensor([1.0, -0.5, 2.0], dtype=torch.float64)
    _, delta, A, B, C, D, _ = _inputs(16, 224, 3, 8, seed=11)
    torch.testing.assert_close(selective_scan(x, delta, A, B, C, D), selective_scan_reference(x, delta, A, B, C, D),
                               rtol=1e-12, atol=1e-12)


def test_default_chunk_size():
    assert [default_chunk_size(n) for n in (1, 16, 17, 224, 1024)] == [1, 4, 5, 15, 32]
    assert default_chunk_size(16, state_size=256 * 128 * 16) == 16          # large state: sequential


def test_shape_errors():
    x, delta, A, B, C, D, h0 = _inputs(2, 5, 3, 4)
    with pytest.raises(ValueError, match="B must be"):
        selective_scan(x, delta, A, B[:, :4], C)
    with pytest.raises(ValueError, match="A must be"):
        selective_scan_reference(x, delta, A.T, B, C)


@pytest.mark.parametrize("bands", [12, 31, 103, 224])
def test_mamba_block_bands_as_tokens_and_as_sequence(bands):
    torch.manual_seed(bands)
    # bands as token size (spectral vectors of 9 pixels) ...
    m = MambaBlock(bands, d_state=8)
    x = torch.randn(2, 9, bands, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    for name, p in m.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name
    assert x.grad.abs().sum() > 0
    # ... and bands as the sequence (one band per step, 16 features per band)
    m2 = MambaBlock(16, d_state=4, chunk_size=8)
    s = torch.randn(3, bands, 16)
    assert m2(s).shape == (3, bands, 16)


def test_mamba_block_is_causal():
    torch.manual_seed(0)
    m = MambaBlock(8, d_state=4, d_conv=4).double()
    x = torch.randn(2, 20, 8, dtype=torch.float64)
    x2 = x.clone()
    x2[:, 12:] += torch.randn(2, 8, 8, dtype=torch.float64)
    y, y2 = m(x), m(x2)
    torch.testing.assert_close(y[:, :12], y2[:, :12], rtol=0, atol=1e-14)
    assert (y[:, 12:] - y2[:, 12:]).abs().max() > 1e-3


def test_mamba_block_init_and_names():
    m = MambaBlock(64, d_state=16, expand=2, dt_min=1e-3, dt_max=0.1)
    assert m.dt_rank == 4 and m.d_inner == 128
    dt = F.softplus(m.dt_proj.bias)
    assert dt.min() >= 1e-4 * 0.999 and dt.max() <= 0.1 * 1.001
    torch.testing.assert_close(-torch.exp(m.A_log[0]), -torch.arange(1, 17, dtype=torch.float32))
    assert {"in_proj.weight", "conv1d.weight", "conv1d.bias", "x_proj.weight", "dt_proj.weight", "dt_proj.bias",
            "A_log", "D", "out_proj.weight"} == set(m.state_dict())


def test_linear_recurrence_closed_form():
    torch.manual_seed(1)
    r = LinearRecurrence(6, 5).double()
    with torch.no_grad():
        r.state_proj.weight.mul_(0.5)
    x = torch.randn(3, 16, 6, dtype=torch.float64)
    # h_L = sum_t W_A^{L-t} (W_B x_t + b_B + b_A)
    WA, WB = r.state_proj.weight, r.input_proj.weight
    c = r.state_proj.bias + r.input_proj.bias
    want = sum(torch.linalg.matrix_power(WA, 16 - t) @ (WB @ x[:, t - 1].T + c[:, None]) for t in range(1, 17)).T
    torch.testing.assert_close(r(x), want, rtol=1e-12, atol=1e-12)
    seq = r(x, return_sequence=True)
    assert seq.shape == (3, 16, 5)
    torch.testing.assert_close(seq[:, -1], want, rtol=1e-12, atol=1e-12)


# --- fused Triton scan (interpreted on the CPU: TRITON_INTERPRET=1 from conftest) -------------------

from hsikit.layers.kernels.dispatch import kernel_mode  # noqa: E402
from hsikit.layers.kernels.scan_triton import selective_scan_triton  # noqa: E402

# the kernels run interpreted on CPU tensors, or compiled on the GPU with HSIKIT_GPU_TESTS=1
DEV = "cuda" if os.environ.get("HSIKIT_GPU_TESTS") == "1" and torch.cuda.is_available() else "cpu"


def _rel(a, b):
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


# (B, L, D, N, chunk, with D and h0): odd sizes, several checkpoint chunks (partial last one),
# several channel blocks (D > 32), a state size that is not a power of two
FUSED_CASES = [(2, 37, 5, 4, 16, True), (1, 21, 40, 16, 8, True), (2, 19, 7, 3, 64, False)]


@pytest.mark.parametrize("b,l,d,n,chunk,full", FUSED_CASES)
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_fused_scan_equals_reference(b, l, d, n, chunk, full, dtype):
    x, delta, A, B, C, D, h0 = (t.detach().to(DEV).requires_grad_(True)
                                for t in _inputs(b, l, d, n, seed=l + d, dtype=dtype))
    ins = (x, delta, A, B, C) + ((D, h0) if full else ())
    extra = {"initial_state": h0} if full else {}
    Dm = D if full else None
    g = torch.Generator().manual_seed(9)
    gy = torch.randn(b, l, d, generator=g, dtype=dtype).to(DEV)
    gh = torch.randn(b, d, n, generator=g, dtype=dtype).to(DEV)
    y0, hl0 = selective_scan_reference(x, delta, A, B, C, Dm, return_state=True, **extra)
    y1, hl1 = selective_scan_triton(x, delta, A, B, C, Dm, return_state=True, chunk=chunk, **extra)
    tol = 1e-12 if dtype == torch.float64 else 1e-5
    assert y1.dtype == dtype and _rel(y1, y0) < tol and _rel(hl1, hl0) < tol
    g0 = torch.autograd.grad((y0 * gy).sum() + (hl0 * gh).sum(), ins)
    g1 = torch.autograd.grad((y1 * gy).sum() + (hl1 * gh).sum(), ins)
    for i, (a, r) in enumerate(zip(g1, g0)):
        assert r.abs().max() > 0 and _rel(a, r) < tol, i


def test_fused_scan_bf16_against_float64():
    ins = [t.to(device=DEV, dtype=torch.bfloat16) for t in _inputs(2, 23, 6, 4, seed=13)[:6]]
    y1 = selective_scan_triton(*ins)
    y0 = selective_scan_reference(*[t.double() for t in ins])
    assert y1.dtype == torch.bfloat16 and _rel(y1, y0) < 1e-2


def test_dispatch_scan_and_mamba_block_under_fused_mode(monkeypatch):
    import hsikit.layers.kernels.scan_triton as kern

    calls = []
    monkeypatch.setattr(kern, "selective_scan_triton", lambda *a, **k: calls.append(1) or selective_scan_triton(*a, **k))
    torch.manual_seed(2)
    m = MambaBlock(12, d_state=4).double().to(DEV)
    x = torch.randn(2, 15, 12, dtype=torch.float64).to(DEV)
    out = {}
    for mode in ("reference", "fused"):
        m.zero_grad()
        with kernel_mode(mode):
            y = m(x)
        y.square().sum().backward()
        out[mode] = (y.detach(), {k: p.grad.clone() for k, p in m.named_parameters()})
    assert calls == [1]
    assert _rel(out["fused"][0], out["reference"][0]) < 1e-12
    for name, gr in out["reference"][1].items():
        assert _rel(out["fused"][1][name], gr) < 1e-12, name
    with kernel_mode("auto"):                       # CPU tensors: the PyTorch scan
        m.cpu()(x.cpu())
    assert calls == [1]
