"""S3Conv: the reference against an independent formulation, shapes, gradients, dispatch."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from hsikit.errors import UsageError
from hsikit.layers.kernels import dispatch
from hsikit.layers.s3conv import S3Conv, s3conv, s3conv_reference


def _rand(*shape: int, dtype=torch.float64, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randn(*shape, generator=g, dtype=dtype)


def test_linear_single_spatial_equals_cross_kernel_conv():
    # One spatial conv, no activation: S3Conv is one 3x3x3 conv whose kernel is the spatial kernel
    # on the centre band plane plus the spectral kernel on the centre pixel (an independent check).
    x = _rand(2, 3, 7, 6, 5)
    ws, wp = _rand(4, 3, 1, 3, 3, seed=1), _rand(4, 3, 3, 1, 1, seed=2)
    full = torch.zeros(4, 3, 3, 3, 3, dtype=x.dtype)
    full[:, :, 1] += ws[:, :, 0]
    full[:, :, :, 1, 1] += wp[:, :, :, 0, 0]
    ref = s3conv_reference(x, [ws], wp, negative_slope=None)
    torch.testing.assert_close(ref, F.conv3d(x, full, padding=1), rtol=1e-12, atol=1e-12)


def test_hand_computed_voxel():
    # y at one voxel from the definition: spatial = lrelu(w2 * lrelu(w1 * x)), spectral = 3 taps.
    x = _rand(1, 1, 3, 3, 3)
    w1, w2, wp = _rand(1, 1, 1, 3, 3, seed=3), _rand(1, 1, 1, 3, 3, seed=4), _rand(1, 1, 3, 1, 1, seed=5)
    xp = F.pad(x[0, 0], (1, 1, 1, 1))  # (3, 5, 5), zero padded in space
    lrelu = lambda v: v if v > 0 else 0.01 * v  # noqa: E731
    h = torch.zeros(3, 3, 3, dtype=x.dtype)
    for d in range(3):
        for i in range(3):
            for j in range(3):
                h[d, i, j] = lrelu(float((xp[d, i : i + 3, j : j + 3] * w1[0, 0, 0]).sum()))
    hp = F.pad(h, (1, 1, 1, 1))
    d, i, j = 1, 1, 2
    spatial = lrelu(float((hp[d, i : i + 3, j : j + 3] * w2[0, 0, 0]).sum()))
    spectral = float(sum(wp[0, 0, t, 0, 0] * x[0, 0, d + t - 1, i, j] for t in range(3)))
    y = s3conv_reference(x, [w1, w2], wp)
    assert y[0, 0, d, i, j].item() == pytest.approx(spatial + spectral, rel=1e-12)


@pytest.mark.parametrize("bands", [12, 31, 103, 224])
def test_shapes_and_gradients(bands):
    m = S3Conv(2, 4)
    x = torch.randn(1, 2, bands, 5, 6, requires_grad=True)
    y = m(x)
    assert y.shape == (1, 4, bands, 5, 6)
    y.square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for p in m.parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0


@pytest.mark.parametrize("num_spatial,bias", [(1, False), (2, False), (2, True), (3, True)])
def test_parameter_count(num_spatial, bias):
    cin, cout = 3, 5
    m = S3Conv(cin, cout, num_spatial=num_spatial, bias=bias)
    expected = cin * cout * 9 + (num_spatial - 1) * cout * cout * 9 + cin * cout * 3
    expected += (num_spatial + 1) * cout if bias else 0
    assert sum(p.numel() for p in m.parameters()) == expected


def test_module_matches_reference_under_every_cpu_mode():
    m = S3Conv(3, 4, bias=True).double()
    x = _rand(2, 3, 9, 7, 5)
    ref = s3conv_reference(x, m.spatial_weights, m.spectral_weight, m.spatial_biases, m.spectral_bias)
    for mode in ("reference", "auto"):
        with dispatch.kernel_mode(mode):
            torch.testing.assert_close(m(x), ref, rtol=1e-12, atol=1e-12)


def test_bad_shapes_are_usage_errors():
    x = torch.randn(1, 2, 4, 5, 5)
    with pytest.raises(UsageError, match="spatial weight 0"):
        s3conv(x, [torch.randn(3, 5, 1, 3, 3)], torch.randn(3, 2, 3, 1, 1))
    with pytest.raises(UsageError, match=r"\(B, C, bands, H, W\)"):
        s3conv(x[0], [torch.randn(3, 2, 1, 3, 3)], torch.randn(3, 2, 3, 1, 1))
    with pytest.raises(UsageError, match="odd"):
        S3Conv(2, 3, kernel_size=4)


def test_real_enmap_tile(enmap_tile):
    from hsikit.io import open_cube

    cube = open_cube(enmap_tile)
    x = torch.from_numpy(cube.values.astype("float64") / 10000.0)[None, None]  # (1, 1, 224, 32, 32)
    m = S3Conv(1, 4).double()
    y = m(x)
    assert y.shape == (1, 4, 224, 32, 32) and torch.isfinite(y).all()
    torch.testing.assert_close(y, s3conv_reference(x, m.spatial_weights, m.spectral_weight), rtol=1e-12, atol=1e-12)


# --- the fast CPU path (hsikit.layers.kernels.s3conv_cpu) -------------------------------------


def _case(dtype, b, cin, cout, d, h, w, num_spatial, bias, seed=0):
    g = torch.Generator().manual_seed(seed)
    r = lambda *s: torch.randn(*s, generator=g, dtype=dtype, requires_grad=True)  # noqa: E731
    x = r(b, cin, d, h, w)
    ws = [r(cout, cin if i == 0 else cout, 1, 3, 3) for i in range(num_spatial)]
    bs = [r(cout) for _ in range(num_spatial)] if bias else None
    wp, bp = r(cout, cin, 3, 1, 1), (r(cout) if bias else None)
    params = [x, *ws, wp] + ([*bs, bp] if bias else [])
    grad = torch.randn(b, cout, d, h, w, generator=g, dtype=dtype)
    return x, ws, bs, wp, bp, params, grad


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max()).item()


@pytest.mark.parametrize("dtype,tol", [(torch.float64, 1e-12), (torch.float32, 1e-5)])
@pytest.mark.parametrize(
    "shape,num_spatial,bias,slope",
    [
        ((2, 3, 4, 7, 5, 6), 2, False, 0.01),  # HSDT's S3Conv
        ((1, 2, 2, 1, 3, 3), 2, True, 0.01),  # one band
        ((1, 4, 3, 5, 1, 7), 1, True, None),  # linear single-conv pair, H = 1
        ((2, 3, 2, 6, 4, 5), 1, False, 0.01),  # the plain pair with its activation (no recompute)
        ((2, 1, 5, 13, 9, 4), 3, True, 0.2),  # deeper spatial stack, odd sizes
    ],
)
@pytest.mark.parametrize("chunk_bytes", [1, 1 << 22])  # one band per chunk / whole cube in one chunk
def test_cpu_path_equals_reference_forward_and_backward(monkeypatch, dtype, tol, shape, num_spatial, bias, slope, chunk_bytes):
    from hsikit.layers.kernels import s3conv_cpu

    monkeypatch.setattr(s3conv_cpu, "CHUNK_BYTES", chunk_bytes)
    x, ws, bs, wp, bp, params, grad = _case(dtype, *shape, num_spatial, bias)
    ref = s3conv_reference(x, ws, wp, bs, bp, slope)
    out = s3conv_cpu.s3conv_cpu(x, ws, wp, bs, bp, slope)
    assert out.is_contiguous(memory_format=torch.channels_last_3d)
    assert _rel(out, ref) < tol
    for a, b in zip(torch.autograd.grad(out, params, grad), torch.autograd.grad(ref, params, grad)):
        assert _rel(a, b) < tol


@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_cpu_path_any_input_layout(layout):
    from hsikit.layers.kernels.s3conv_cpu import s3conv_cpu

    x, ws, _, wp, _, _, grad = _case(torch.float64, 2, 3, 4, 6, 5, 7, 2, False)
    if layout == "channels_last":
        x = x.detach().contiguous(memory_format=torch.channels_last_3d).requires_grad_()
    elif layout == "strided":
        x = torch.randn(2, 3, 12, 5, 14, dtype=torch.float64)[:, :, ::2, :, ::2].requires_grad_()
    ref = s3conv_reference(x, ws, wp)
    threads = torch.get_num_threads()
    out = s3conv_cpu(x, ws, wp)
    assert torch.get_num_threads() == threads  # the worker threads restore the intra-op setting
    assert _rel(out, ref) < 1e-12
    (gx,) = torch.autograd.grad(out, [x], grad)
    (gr,) = torch.autograd.grad(ref, [x], grad)
    assert _rel(gx, gr) < 1e-12


def test_cpu_path_gradcheck():
    from hsikit.layers.kernels.s3conv_cpu import s3conv_cpu

    x, ws, bs, wp, bp, params, _ = _case(torch.float64, 1, 1, 1, 2, 2, 3, 2, True)
    assert torch.autograd.gradcheck(lambda *p: s3conv_cpu(p[0], p[1:3], p[3], p[4:6], p[6]), params)


# --- the fused Triton kernel (interpreted on the CPU: TRITON_INTERPRET=1 from conftest) --------

import os  # noqa: E402

DEVICE = "cuda" if os.environ.get("HSIKIT_GPU_TESTS") == "1" and torch.cuda.is_available() else "cpu"


_F64, _F32 = (torch.float64, 1e-12), (torch.float32, 1e-5)


@pytest.mark.parametrize(
    "dtype,tol,shape,num_spatial,bias,slope",
    [
        (*_F64, (1, 3, 4, 2, 5, 6), 2, False, 0.01),  # HSDT's S3Conv (single-pass kernel), odd sizes
        (*_F32, (2, 3, 4, 1, 5, 6), 2, False, 0.01),
        (*_F64, (1, 1, 3, 3, 3, 5), 2, True, 0.01),  # head conv 1 -> C, with biases
        (*_F64, (1, 2, 3, 1, 4, 3), 1, True, None),  # one band, linear one-conv pair
        (*_F32, (1, 2, 3, 5, 4, 3), 1, True, 0.01),
        (*_F64, (1, 3, 2, 7, 3, 3), 3, True, 0.2),  # 7 bands, three spatial convs (chained kernels)
        (*_F32, (1, 3, 2, 7, 3, 3), 3, True, 0.2),
    ],
)
def test_triton_equals_reference_forward_and_backward(dtype, tol, shape, num_spatial, bias, slope):
    from hsikit.layers.s3conv import s3conv

    x, ws, bs, wp, bp, params, grad = _case(dtype, *shape, num_spatial, bias, seed=3)
    if DEVICE != "cpu":
        params = [p.detach().to(DEVICE).requires_grad_() for p in params]
        n = num_spatial
        x, ws, wp = params[0], params[1 : 1 + n], params[1 + n]
        bs, bp = (params[2 + n : 2 + 2 * n], params[2 + 2 * n]) if bias else (None, None)
        grad = grad.to(DEVICE)
    with dispatch.kernel_mode("fused"):
        out = s3conv(x, ws, wp, bs, bp, slope)
        got = torch.autograd.grad(out, params, grad)
    ref = s3conv_reference(x, ws, wp, bs, bp, slope)
    want = torch.autograd.grad(ref, params, grad)
    assert _rel(out, ref) < tol
    for a, b in zip(got, want):
        assert _rel(a, b) < tol


def test_triton_module_path_and_auto_rule():
    m = S3Conv(2, 3).double()
    x = _rand(1, 2, 2, 4, 5, seed=7)
    with dispatch.kernel_mode("fused"):
        y = m(x) if DEVICE == "cpu" else m.to(DEVICE)(x.to(DEVICE)).cpu()
    torch.testing.assert_close(y, s3conv_reference(x, [w.cpu() for w in m.spatial_weights], m.spectral_weight.cpu()), rtol=1e-12, atol=1e-12)
    with dispatch.kernel_mode("auto"):
        assert not dispatch.use_fused(x)  # CPU tensors take the CPU path under auto
