"""Fast CPU path of S3Conv: band-chunked channels-last 2-D convs + spectral GEMMs, with recompute.

Same signature and result as :func:`hsikit.layers.s3conv.s3conv_reference`. Why it is faster
than the naive pair of ``conv3d`` calls on a CPU (measured in ``docs/layers_hsdt.md``):

- The spatial (1, k, k) convs act on each band separately, so they run as 2-D convs over
  channels-last frames (oneDNN's fast kernels), with LeakyReLU fused into the conv
  (``mkldnn._convolution_pointwise``) where oneDNN supports the dtype.
- The spectral (k, 1, 1) conv is k GEMMs on channels-last rows (``out[d] += x[d + t - p] W_t^T``),
  accumulated straight into the output (``addmm(out=...)``), so it costs no extra full-size tensor.
- Everything runs over chunks of a few bands (about ``CHUNK_BYTES`` per tensor): the intermediates
  stay small, are reused by the allocator instead of being page-faulted in afresh (a 130 MB
  fresh tensor costs ~100 ms of page faults on the VMs this was tuned on), and stay warm in cache
  between the convs. The only full-size allocation is the output (as for a single conv).
- Backward recomputes a chunk's intermediates from x instead of saving them (the forward saves
  nothing but x and the weights), then runs the conv backward per chunk and the spectral gradient
  as GEMMs; the input gradient is the only full-size allocation.

The output is channels-last (``torch.channels_last_3d``) whatever the input layout; values are
the same. Inputs of any layout are read chunk by chunk (no full-size conversion copy).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

__all__ = ["s3conv_cpu", "CHUNK_BYTES"]

#: Target size of one chunk's intermediate tensor (bytes); chunks hold whole bands.
CHUNK_BYTES = 4 << 20

_CL = torch.channels_last


def _onednn_ok(dtype: torch.dtype) -> bool:
    return (
        dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise")
    )


def _frames(t: torch.Tensor, b: int, lo: int, hi: int) -> torch.Tensor:
    """Bands [lo, hi) of sample b of a (B, C, D, H, W) tensor as (hi-lo, C, H, W) channels-last frames
    (a view when t is channels_last_3d, else a small copy)."""
    return t[b, :, lo:hi].transpose(0, 1).contiguous(memory_format=_CL)


def _rows(f: torch.Tensor) -> torch.Tensor:
    """(n, C, H, W) channels-last frames -> (n*H*W, C) rows (a view)."""
    f = f.contiguous(memory_format=_CL)
    return f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])


def _conv_act(f: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, pad: int, slope: float | None) -> torch.Tensor:
    """act(conv2d(f, w, b)) on channels-last frames; act = LeakyReLU(slope) or identity."""
    if _onednn_ok(f.dtype):
        attr, scalars = ("leaky_relu", [slope]) if slope is not None else ("none", [])
        return torch.ops.mkldnn._convolution_pointwise(f, w, b, [pad, pad], [1, 1], [1, 1], 1, attr, scalars, "")
    y = F.conv2d(f, w, b, padding=pad)
    return F.leaky_relu_(y, slope) if slope is not None else y


def _chunks(num_bands: int, band_bytes: int, pad: int):
    """Yield (d0, d1, lo, hi): output bands [d0, d1) and the input bands [lo, hi) they need."""
    step = max(1, CHUNK_BYTES // max(band_bytes, 1))
    for d0 in range(0, num_bands, step):
        d1 = min(d0 + step, num_bands)
        yield d0, d1, max(d0 - pad, 0), min(d1 + pad, num_bands)


def _tap_range(d0: int, d1: int, offset: int, num_bands: int) -> tuple[int, int]:
    """Output bands d in [d0, d1) whose source band d + offset lies in [0, D)."""
    return max(d0, -offset), min(d1, num_bands - offset)


class _S3ConvCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, slope, spectral_weight, spectral_bias, n_sp, *spatial):
        ws2d = [w[:, :, 0] for w in spatial[:n_sp]]
        bs = list(spatial[n_sp:])
        k = spectral_weight.shape[2]
        p = k // 2
        wt = [spectral_weight[:, :, t, 0, 0] for t in range(k)]  # (C_out, C_in) per tap
        out = _forward(x, ws2d, bs, wt, spectral_bias, slope, p)
        ctx.save_for_backward(x, spectral_weight, *spatial[:n_sp])
        ctx.slope, ctx.n_sp = slope, n_sp
        ctx.has_bias = [b is not None for b in bs]
        ctx.has_spectral_bias = spectral_bias is not None
        ctx.spatial_biases = bs
        return out

    @staticmethod
    def backward(ctx, grad):
        x, spectral_weight, *spatial_w = ctx.saved_tensors
        n_sp = ctx.n_sp
        k = spectral_weight.shape[2]
        p = k // 2
        ws2d = [w[:, :, 0] for w in spatial_w]
        wt = [spectral_weight[:, :, t, 0, 0] for t in range(k)]
        need_x = ctx.needs_input_grad[0]
        gx, gws2d, gbs, gwt, gsb = _backward(grad, x, ws2d, ctx.spatial_biases, wt, ctx.slope, p, need_x)
        g_spec_w = torch.stack(gwt, dim=2)[..., None, None]
        g_spatial = [g[:, :, None] for g in gws2d]
        g_spatial_b = [g if has else None for g, has in zip(gbs, ctx.has_bias)]
        return (gx, None, g_spec_w, gsb if ctx.has_spectral_bias else None, None, *g_spatial, *g_spatial_b)


def _forward(x, ws2d, bs, wt, spectral_bias, slope, p):
    B, _, D, H, W = x.shape
    c_out = wt[0].shape[0]
    buf = torch.empty((B, D, H, W, c_out), dtype=x.dtype, device=x.device)  # channels-last storage
    band_bytes = max(x.shape[1], c_out) * H * W * x.element_size()
    for b in range(B):
        for d0, d1, lo, hi in _chunks(D, band_bytes, p):
            f = _frames(x, b, lo, hi)
            h = f[d0 - lo : d1 - lo]
            for w, bias in zip(ws2d, bs):
                h = _conv_act(h, w, bias, w.shape[-1] // 2, slope)
            o = buf[b, d0:d1].reshape(-1, c_out)
            torch.addmm(_rows(h), _rows(f[d0 - lo : d1 - lo]), wt[p].t(), out=o)
            npix = H * W
            for t in range(len(wt)):
                if t == p:
                    continue
                off = t - p
                a, e = _tap_range(d0, d1, off, D)
                if e > a:
                    src = _rows(f[a + off - lo : e + off - lo])
                    o[(a - d0) * npix : (e - d0) * npix].addmm_(src, wt[t].t())
            if spectral_bias is not None:
                o.add_(spectral_bias)
    return buf.permute(0, 4, 1, 2, 3)


def _backward(grad, x, ws2d, bs, wt, slope, p, need_x):
    B, c_in, D, H, W = x.shape
    c_out = wt[0].shape[0]
    npix = H * W
    gbuf = torch.empty((B, D, H, W, c_in), dtype=x.dtype, device=x.device) if need_x else None
    gws2d = [torch.zeros_like(w) for w in ws2d]
    gbs = [torch.zeros(c_out, dtype=x.dtype) for _ in bs]
    gwt = [torch.zeros_like(w) for w in wt]
    gsb = torch.zeros(c_out, dtype=x.dtype)
    band_bytes = max(c_in, c_out) * H * W * x.element_size()
    for b in range(B):
        for d0, d1, lo, hi in _chunks(D, band_bytes, p):
            f = _frames(x, b, lo, hi)
            g = _frames(grad, b, lo, hi)
            fc, gc = f[d0 - lo : d1 - lo], g[d0 - lo : d1 - lo]
            hs = [fc]
            for w, bias in zip(ws2d, bs):
                hs.append(_conv_act(hs[-1], w, bias, w.shape[-1] // 2, slope))
            ga = gc
            for i in reversed(range(len(ws2d))):
                if slope is not None:
                    ga = torch.ops.aten.leaky_relu_backward(ga, hs[i + 1], slope, True)
                pad = ws2d[i].shape[-1] // 2
                mask = [i > 0 or need_x, True, bs[i] is not None]
                gin, gw, gb = torch.ops.aten.convolution_backward(
                    ga, hs[i], ws2d[i], [c_out] if bs[i] is not None else None,
                    [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, mask,
                )  # fmt: skip
                gws2d[i] += gw
                if gb is not None:
                    gbs[i] += gb
                ga = gin
            grows = _rows(gc)
            gsb += grows.sum(0)
            if need_x:
                o = gbuf[b, d0:d1].reshape(-1, c_in)
                torch.addmm(_rows(ga), grows, wt[p], out=o)
            for t in range(len(wt)):
                off = t - p
                # weight: out[d] += x[d + off] W_t^T  ->  dW_t += g[d]^T x[d + off]
                a, e = _tap_range(d0, d1, off, D)
                if e > a:
                    gwt[t].addmm_(_rows(g[a - lo : e - lo]).t(), _rows(f[a + off - lo : e + off - lo]))
                # input: dx[e] += g[e - off] W_t, for e - off in [0, D)
                if need_x and t != p:
                    a, e = _tap_range(d0, d1, -off, D)
                    if e > a:
                        o[(a - d0) * npix : (e - d0) * npix].addmm_(_rows(g[a - off - lo : e - off - lo]), wt[t])
    gx = gbuf.permute(0, 4, 1, 2, 3) if need_x else None
    return gx, gws2d, gbs, gwt, gsb


def s3conv_cpu(
    x: torch.Tensor,
    spatial_weights: Sequence[torch.Tensor],
    spectral_weight: torch.Tensor,
    spatial_biases: Sequence[torch.Tensor | None] | None = None,
    spectral_bias: torch.Tensor | None = None,
    negative_slope: float | None = 0.01,
) -> torch.Tensor:
    """S3Conv on CPU tensors (see the module docstring); autograd for x, weights and biases.

    Shapes as :func:`hsikit.layers.s3conv.s3conv_reference`: x (B, C_in, D, H, W) ->
    (B, C_out, D, H, W), returned channels-last.
    """
    n_sp = len(spatial_weights)
    biases = list(spatial_biases) if spatial_biases is not None else [None] * n_sp
    return _S3ConvCPU.apply(x, negative_slope, spectral_weight, spectral_bias, n_sp, *spatial_weights, *biases)
