"""Fast CPU path of S3Conv: band-chunked channels-last 2-D convs + spectral GEMMs, with recompute.

Same signature and result as :func:`hsikit.layers.s3conv.s3conv_reference`. Why it is faster
than the naive pair of ``conv3d`` calls on a CPU (measured in ``docs/layers_hsdt.md``):

- The spatial (1, k, k) convs act on each band separately, so they run as 2-D convs over
  channels-last frames (oneDNN), written in place into reused workspaces or straight into the
  output (``mkldnn._convolution_pointwise_``), LeakyReLU in place.
- The spectral (k, 1, 1) conv is k channel GEMMs (``out[d] += W_t x[d + t - p]``, as in-place 1x1
  oneDNN convs) accumulated straight into the output, so it costs no extra full-size tensor.
- Everything runs over chunks of a few bands (about ``CHUNK_BYTES`` per tensor) with workspaces
  allocated once per call: no per-chunk allocation is page-faulted in afresh (a fresh 130 MB tensor
  costs ~50-130 ms of page faults on the VMs this was tuned on). The only full-size allocation is
  the output, as for a single conv.
- The chunks run on ``torch.get_num_threads()`` worker threads with one intra-op thread each, so
  the many small oneDNN calls pay no OpenMP fork/join (20-40 ms each on an oversubscribed VM).
  The intra-op thread count is set to 1 for the duration of the call and restored afterwards.
- Backward recomputes a chunk's intermediates from x instead of saving them (the forward saves
  nothing but x and the weights), then runs the activation backward, oneDNN weight gradients and
  transposed convs (flipped weights) per chunk and the spectral gradients as GEMMs; the input
  gradient is the only full-size allocation.

The output is channels-last (``torch.channels_last_3d``) whatever the input layout; values are
the same. Inputs of any layout are read chunk by chunk (no full-size conversion copy). Dtypes that
oneDNN does not take (float64) run the same algorithm with ``F.conv2d`` and ``addmm``.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

__all__ = ["s3conv_cpu", "CHUNK_BYTES"]

#: Target size of one chunk's intermediate tensor (bytes); chunks hold whole bands.
CHUNK_BYTES = 4 << 20
#: Worker threads for the chunks (None: torch.get_num_threads()); each runs torch ops on one thread.
CHUNK_WORKERS: int | None = None

_CL = torch.channels_last


def _onednn_ok(dtype: torch.dtype) -> bool:
    return (
        dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise_")
    )


def _frames(t: torch.Tensor, b: int, lo: int, hi: int, work: torch.Tensor | None = None) -> torch.Tensor:
    """Bands [lo, hi) of sample b of a (B, C, D, H, W) tensor as (hi-lo, C, H, W) channels-last frames:
    a view when t is channels_last_3d, else copied into the workspace ``work`` (or a new tensor)."""
    f = t[b, :, lo:hi].transpose(0, 1)
    if f.is_contiguous(memory_format=_CL):
        return f
    if work is None:
        return f.contiguous(memory_format=_CL)
    return work[: hi - lo].copy_(f)


def _rows(f: torch.Tensor) -> torch.Tensor:
    """(n, C, H, W) channels-last frames -> (n*H*W, C) rows (a view)."""
    if not f.is_contiguous(memory_format=_CL):
        raise AssertionError("frames must be channels-last contiguous")
    return f.permute(0, 2, 3, 1).reshape(-1, f.shape[1])


def _workspace(n: int, c: int, h: int, w: int, like: torch.Tensor) -> torch.Tensor:
    """(n, c, h, w) channels-last frames, allocated once per call and reused by every chunk."""
    return torch.empty((n, h, w, c), dtype=like.dtype, device=like.device).permute(0, 3, 1, 2)


def _conv_into(out: torch.Tensor, f: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None, slope: float | None) -> torch.Tensor:
    """out[...] = act(conv2d(f, w, b)) (zero padding k // 2) on channels-last frames, written in place.

    oneDNN's in-place conv (``mkldnn._convolution_pointwise_``, accumulating into a zeroed ``out``) for
    float32/bfloat16, so no tensor is allocated; ``F.conv2d`` otherwise. act = LeakyReLU or identity.
    """
    pad = w.shape[-1] // 2
    if _onednn_ok(f.dtype):
        out.zero_()
        torch.ops.mkldnn._convolution_pointwise_.binary(out, f, w, b, [pad, pad], [1, 1], [1, 1], 1, "add", 1.0, None, [], None)
    else:
        out.copy_(F.conv2d(f, w, b, padding=pad))
    return F.leaky_relu_(out, slope) if slope is not None else out


def _matmul_into(out: torch.Tensor, f: torch.Tensor, w: torch.Tensor) -> None:
    """out += f applied to the channel matrix w (C_o, C_i) per pixel, on channels-last frames, in place
    (a 1x1 oneDNN conv accumulating into ``out`` for float32/bfloat16, ``addmm_`` on rows otherwise)."""
    if _onednn_ok(f.dtype):
        w11 = w[:, :, None, None].contiguous()
        torch.ops.mkldnn._convolution_pointwise_.binary(out, f, w11, None, [0, 0], [1, 1], [1, 1], 1, "add", 1.0, None, [], None)
    else:
        _rows(out).addmm_(_rows(f), w.t())


def _chunks(num_bands: int, band_bytes: int, pad: int):
    """Yield (d0, d1, lo, hi): output bands [d0, d1) and the input bands [lo, hi) they need."""
    step = _step(num_bands, band_bytes)
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


def _step(num_bands: int, band_bytes: int) -> int:
    return max(1, min(num_bands, CHUNK_BYTES // max(band_bytes, 1)))


def _jobs(B: int, D: int, band_bytes: int, p: int) -> list[tuple[int, int, int, int, int]]:
    return [(b, *c) for b in range(B) for c in _chunks(D, band_bytes, p)]


def _run(jobs: list, work, workers: int | None = None) -> list:
    """Run ``work(subset)`` on disjoint, interleaved subsets of the chunk jobs.

    With more than one torch thread the subsets run on that many Python threads with one intra-op
    thread each (torch ops release the GIL): one small oneDNN call per chunk then costs no OpenMP
    fork/join, which on a shared, oversubscribed machine costs more than the call itself.
    """
    n = min(workers or CHUNK_WORKERS or torch.get_num_threads(), len(jobs))
    if n <= 1:
        with torch.no_grad():
            return [work(jobs)]

    def run_subset(subset):
        with torch.no_grad():  # grad mode is per thread; these are raw kernels
            return work(subset)

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with ThreadPoolExecutor(n) as pool:
            return list(pool.map(run_subset, [jobs[k::n] for k in range(n)]))
    finally:
        torch.set_num_threads(old)


def _forward(x, ws2d, bs, wt, spectral_bias, slope, p):
    B, c_in, D, H, W = x.shape
    c_out = wt[0].shape[0]
    n_sp = len(ws2d)
    buf = torch.empty((B, D, H, W, c_out), dtype=x.dtype, device=x.device)  # channels-last storage
    band_bytes = max(c_in, c_out) * H * W * x.element_size()
    step = _step(D, band_bytes)
    x_cl = x.is_contiguous(memory_format=torch.channels_last_3d)

    def work(jobs):
        xwork = None if x_cl else _workspace(step + 2 * p, c_in, H, W, x)
        hwork = [_workspace(step, c_out, H, W, x) for _ in range(min(n_sp - 1, 2))]
        for b, d0, d1, lo, hi in jobs:
            n = d1 - d0
            f = _frames(x, b, lo, hi, xwork)
            o_frames = buf[b, d0:d1].permute(0, 3, 1, 2)  # (n, C_out, H, W) view of the output
            h = f[d0 - lo : d1 - lo]
            for i, (w, bias) in enumerate(zip(ws2d, bs)):
                h = _conv_into(o_frames if i == n_sp - 1 else hwork[i % 2][:n], h, w, bias, slope)
            for t in range(len(wt)):
                off = t - p
                a, e = _tap_range(d0, d1, off, D)
                if e > a:
                    _matmul_into(o_frames[a - d0 : e - d0], f[a + off - lo : e + off - lo], wt[t])
            if spectral_bias is not None:
                buf[b, d0:d1].add_(spectral_bias)

    _run(_jobs(B, D, band_bytes, p), work)
    return buf.permute(0, 4, 1, 2, 3)


def _backward(grad, x, ws2d, bs, wt, slope, p, need_x):
    """Chunked backward: recompute a chunk's h_1 .. h_n from x, then the chain rule per chunk."""
    B, c_in, D, H, W = x.shape
    c_out = wt[0].shape[0]
    n_sp = len(ws2d)
    gbuf = torch.empty((B, D, H, W, c_in), dtype=x.dtype, device=x.device) if need_x else None
    flipped = [w.flip(-1, -2).transpose(0, 1).contiguous() for w in ws2d]  # transposed-conv weights
    wt_t = [w.t().contiguous() for w in wt]
    band_bytes = max(c_in, c_out) * H * W * x.element_size()
    step = _step(D, band_bytes)
    cl3d = torch.channels_last_3d
    x_cl, g_cl = x.is_contiguous(memory_format=cl3d), grad.is_contiguous(memory_format=cl3d)

    def work(jobs):
        gws2d = [torch.zeros_like(w) for w in ws2d]
        gbs = [torch.zeros(c_out, dtype=x.dtype) for _ in bs]
        gwt = [torch.zeros_like(w) for w in wt]
        gsb = torch.zeros(c_out, dtype=x.dtype)
        xwork = None if x_cl else _workspace(step + 2 * p, c_in, H, W, x)
        gwork = None if g_cl else _workspace(step + 2 * p, c_out, H, W, x)
        hwork = [_workspace(step, c_out, H, W, x) for _ in range(n_sp)]  # recomputed h_1 .. h_n
        awork = _workspace(step, c_out, H, W, x)  # gradient at a conv output (after the activation backward)
        cwork = [_workspace(step, c_out, H, W, x) for _ in range(min(n_sp - 1, 2))]  # gradient at a conv input
        for b, d0, d1, lo, hi in jobs:
            n = d1 - d0
            f = _frames(x, b, lo, hi, xwork)
            g = _frames(grad, b, lo, hi, gwork)
            fc, gc = f[d0 - lo : d1 - lo], g[d0 - lo : d1 - lo]
            hs = [fc]
            for i, (w, bias) in enumerate(zip(ws2d, bs)):
                hs.append(_conv_into(hwork[i][:n], hs[-1], w, bias, slope))
            gcur = gc
            for i in reversed(range(n_sp)):
                if slope is not None:
                    ga = torch.ops.aten.leaky_relu_backward.grad_input(gcur, hs[i + 1], slope, True, grad_input=awork[:n])
                else:
                    ga = gcur
                pad = ws2d[i].shape[-1] // 2
                _, gw, gb = torch.ops.aten.convolution_backward(
                    ga, hs[i], ws2d[i], [c_out] if bs[i] is not None else None,
                    [1, 1], [pad, pad], [1, 1], False, [0, 0], 1, [False, True, bs[i] is not None],
                )  # fmt: skip
                gws2d[i] += gw
                if gb is not None:
                    gbs[i] += gb
                if i > 0:
                    gcur = _conv_into(cwork[(n_sp - 1 - i) % 2][:n], ga, flipped[i], None, None)
                elif need_x:
                    _conv_into(gbuf[b, d0:d1].permute(0, 3, 1, 2), ga, flipped[0], None, None)
            gsb += _rows(gc).sum(0)
            gx_frames = gbuf[b, d0:d1].permute(0, 3, 1, 2) if need_x else None
            for t in range(len(wt)):
                off = t - p
                # weight: out[d] += x[d + off] W_t^T  ->  dW_t += g[d]^T x[d + off]
                a, e = _tap_range(d0, d1, off, D)
                if e > a:
                    gwt[t].addmm_(_rows(g[a - lo : e - lo]).t(), _rows(f[a + off - lo : e + off - lo]))
                # input: dx[e] += g[e - off] W_t, for e - off in [0, D)
                if need_x:
                    a, e = _tap_range(d0, d1, -off, D)
                    if e > a:
                        _matmul_into(gx_frames[a - d0 : e - d0], g[a - off - lo : e - off - lo], wt_t[t])
        return gws2d, gbs, gwt, gsb

    parts = _run(_jobs(B, D, band_bytes, p), work)
    total = lambda k: [sum(ts) for ts in zip(*(part[k] for part in parts))]  # noqa: E731
    gws2d, gbs, gwt = total(0), total(1), total(2)
    gsb = sum(part[3] for part in parts)
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
