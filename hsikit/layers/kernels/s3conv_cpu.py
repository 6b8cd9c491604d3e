"""Fast CPU path of S3Conv: band-chunked channels-last 2-D convs with fused epilogues.

Same signature and result as :func:`hsikit.layers.s3conv.s3conv_reference`. Why it is faster than
the naive pair of ``conv3d`` calls (measured in ``docs/benchmarks.md``, with how close it comes to
the full 3x3x3 conv it replaces):

- Channels-last storage, (B, D, H, W, C) in memory. A chunk of bands of one sample is then a
  contiguous block, which is at the same time a batch of channels-last frames (n, C, H, W) for the
  spatial (1, k, k) convs and a channels-last image (1, C, n, H*W) for the spectral (k, 1, 1) conv:
  every conv is one oneDNN 2-D conv on a view, and no layout copies are made.
- Epilogues are fused into the convs (``mkldnn._convolution_pointwise_``): LeakyReLU into each
  spatial conv, and the spectral conv accumulates straight into the output, so the block costs
  no separate activation, add or tap pass.
- The chunks (about ``CHUNK_BYTES`` per tensor) run on ``torch.get_num_threads()`` worker threads
  with one intra-op thread each, so the many small oneDNN calls pay no OpenMP fork/join (20-40 ms
  each on an oversubscribed VM), and the threads scale almost perfectly. The intra-op thread count
  is set to 1 for the duration of the call and restored afterwards.
- The forward keeps nothing but x and the weights; the backward recomputes a chunk's activations
  and then runs one ``convolution_backward`` per conv (input and weight gradients together), the
  spectral weight gradient as one conv backward over the chunk image, and the spectral input
  gradient as a forward conv of the output gradient with flipped, transposed taps accumulated
  into the spatial one. The input gradient is the only full-size allocation.
- Spectral halos: the spectral conv of output bands [d0, d1) needs input bands [d0 - p, d1 + p);
  at the scene's first and last bands those are zero rows in a small per-chunk workspace, inside
  they are a view of the input.

The output is channels-last (``torch.channels_last_3d``) whatever the input layout; values are
the same. Inputs of any layout are read chunk by chunk (no full-size conversion copy). Dtypes that
oneDNN does not take (float64) run the same algorithm with ``F.conv2d``.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import torch
import torch.nn.functional as F

__all__ = ["s3conv_cpu", "CHUNK_BYTES"]

#: Target size of one chunk's tensor (bytes); chunks hold whole bands.
CHUNK_BYTES = 4 << 20
#: Worker threads for the chunks (None: torch.get_num_threads()); each runs torch ops on one thread.
CHUNK_WORKERS: int | None = None


def _onednn_ok(dtype: torch.dtype) -> bool:
    return (
        dtype in (torch.float32, torch.bfloat16)
        and torch.backends.mkldnn.is_available()
        and hasattr(torch.ops.mkldnn, "_convolution_pointwise_")
    )


def _bands(t: torch.Tensor, b: int) -> torch.Tensor:
    """Sample b of a (B, C, D, H, W) tensor as (D, H, W, C) (a view; contiguous for channels-last)."""
    return t[b].permute(1, 2, 3, 0)


def _frames(rows: torch.Tensor) -> torch.Tensor:
    """(n, H, W, C) contiguous rows -> (n, C, H, W) channels-last frames (a view)."""
    return rows.permute(0, 3, 1, 2)


def _image(rows: torch.Tensor) -> torch.Tensor:
    """(n, H, W, C) contiguous rows -> (1, C, n, H*W) channels-last image (a view): bands are rows."""
    n, h, w, c = rows.shape
    return rows.reshape(1, n, h * w, c).permute(0, 3, 1, 2)


def _conv_into(out, f, w, b, padding, slope, accumulate=False):
    """out = act(conv2d(f, w, b)), or out += conv2d(f, w, b) (``accumulate``), in place.

    f and out are channels-last (N, C, H, W). The accumulating form is one oneDNN call with the add
    fused (the output is read once, no temporary); the other is :func:`_conv` and a copy.
    act = LeakyReLU(slope) or identity (None); ``accumulate`` takes no activation.
    """
    if not accumulate:
        return out.copy_(_conv(f, w, b, padding, slope))
    if slope is not None:
        raise ValueError("an accumulating conv takes no activation")
    if _onednn_ok(f.dtype):
        torch.ops.mkldnn._convolution_pointwise_.binary(
            out, f, w, b, list(padding), [1, 1], [1, 1], 1, "add", 1.0, None, [], None
        )
        return out
    return out.add_(F.conv2d(f, w, b, padding=tuple(padding)))


def _conv(f, w, b, padding, slope):
    """act(conv2d(f, w, b)) as a new channels-last tensor (oneDNN with the activation fused)."""
    if _onednn_ok(f.dtype):
        attr, scalars = ("leaky_relu", [slope]) if slope is not None else ("none", [])
        return torch.ops.mkldnn._convolution_pointwise(f, w, b, list(padding), [1, 1], [1, 1], 1, attr, scalars, None)
    y = F.conv2d(f, w, b, padding=tuple(padding))
    return F.leaky_relu_(y, slope) if slope is not None else y


class _Rows:
    """Reads band rows of one (B, C, D, H, W) tensor chunk by chunk, with zero halo rows.

    ``get(b, lo, hi)`` returns bands [lo, hi) of sample b as contiguous (hi - lo, H, W, C) rows,
    bands outside [0, D) being zero: a view of the tensor when it is channels-last and the range
    lies inside, else a copy into a workspace allocated once per worker.
    """

    def __init__(self, t: torch.Tensor, max_rows: int) -> None:
        self.t, self.max_rows = t, max_rows
        self.view_ok = t.is_contiguous(memory_format=torch.channels_last_3d)
        self.work: torch.Tensor | None = None

    def get(self, b: int, lo: int, hi: int) -> torch.Tensor:
        src = _bands(self.t, b)
        D = src.shape[0]
        if self.view_ok and lo >= 0 and hi <= D:
            return src[lo:hi]
        if self.work is None:
            _, C, _, H, W = self.t.shape
            self.work = torch.empty((self.max_rows, H, W, C), dtype=self.t.dtype)
        rows = self.work[: hi - lo]
        a, e = max(lo, 0), min(hi, D)
        rows[a - lo : e - lo].copy_(src[a:e])
        rows[: a - lo].zero_()
        rows[e - lo :].zero_()
        return rows


def _step(num_bands: int, band_bytes: int) -> int:
    return max(1, min(num_bands, CHUNK_BYTES // max(band_bytes, 1)))


def _jobs(B: int, D: int, step: int) -> list[tuple[int, int, int]]:
    """(sample, d0, d1) for every chunk of ``step`` bands."""
    return [(b, d0, min(d0 + step, D)) for b in range(B) for d0 in range(0, D, step)]


def _run(jobs: list, work) -> list:
    """Run ``work(subset)`` on disjoint, interleaved subsets of the chunk jobs.

    With more than one torch thread the subsets run on that many Python threads with one intra-op
    thread each (torch ops release the GIL): one small oneDNN call per chunk then costs no OpenMP
    fork/join, which on a shared, oversubscribed machine costs more than the call itself.
    """
    n = min(CHUNK_WORKERS or torch.get_num_threads(), len(jobs))
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


def _cl_empty(B: int, C: int, D: int, H: int, W: int, like: torch.Tensor) -> torch.Tensor:
    """An uninitialised (B, C, D, H, W) channels-last tensor."""
    return torch.empty((B, D, H, W, C), dtype=like.dtype).permute(0, 4, 1, 2, 3)


def _forward(x, ws2d, bs, w_spec, b_spec, slope):
    """S3Conv of x (B, C_in, D, H, W) -> (B, C_out, D, H, W) channels-last, chunk by chunk."""
    B, c_in, D, H, W = x.shape
    c_out = w_spec.shape[0]
    p = w_spec.shape[2] // 2
    sp = ws2d[0].shape[-1] // 2
    out = _cl_empty(B, c_out, D, H, W, x)
    step = _step(D, max(c_in, c_out) * H * W * x.element_size())

    def work(jobs):
        xr = _Rows(x, step + 2 * p)
        for b, d0, d1 in jobs:
            xp = xr.get(b, d0 - p, d1 + p)  # input rows with the spectral halo
            o = _bands(out, b)[d0:d1]
            h = _frames(xp[p : p + d1 - d0])
            for w, bias in zip(ws2d[:-1], bs[:-1]):
                h = _conv(h, w, bias, (sp, sp), slope)
            _conv_into(_frames(o), h, ws2d[-1], bs[-1], (sp, sp), slope)
            _conv_into(_image(o), _image(xp), w_spec, b_spec, (0, 0), None, accumulate=True)

    _run(_jobs(B, D, step), work)
    return out


def _backward(grad, x, ws2d, bs, w_spec, slope, need_x, need_spec_bias):
    """Gradients (x, spatial weights, spatial biases, spectral weight, spectral bias).

    Per chunk: recompute the spatial activations h_1 .. h_n from x (cheaper here than keeping
    full-size copies, whose first touch alone costs a conv's time in page faults), then one
    ``convolution_backward`` per conv (input and weight gradients together)."""
    B, c_in, D, H, W = x.shape
    c_out = w_spec.shape[0]
    k = w_spec.shape[2]
    p, sp = k // 2, ws2d[0].shape[-1] // 2
    n_sp = len(ws2d)
    gx = _cl_empty(B, c_in, D, H, W, x) if need_x else None
    # the spectral input gradient is a forward conv of the output gradient with flipped, transposed taps
    w_spec_t = w_spec.flip(2).transpose(0, 1).contiguous()
    step = _step(D, max(c_in, c_out) * H * W * x.element_size())

    def work(jobs):
        gws = [torch.zeros_like(w) for w in ws2d]
        gbs = [torch.zeros(c_out, dtype=x.dtype) if bias is not None else None for bias in bs]
        g_spec = torch.zeros_like(w_spec)
        gb_spec = torch.zeros(c_out, dtype=x.dtype)
        xr, gr = _Rows(x, step + 2 * p), _Rows(grad, step + 2 * p)
        for b, d0, d1 in jobs:
            n = d1 - d0
            xp, gp = xr.get(b, d0 - p, d1 + p), gr.get(b, d0 - p, d1 + p)
            gc = gp[p : p + n]
            # spectral branch: weight gradient over the halo'd input, bias gradient
            _, gw, _ = torch.ops.aten.convolution_backward(
                _image(gc), _image(xp), w_spec, None, [1, 1], [0, 0], [1, 1], False, [0, 0], 1, [False, True, False]
            )
            g_spec += gw
            if need_spec_bias:  # a pass over the gradient, skipped without a spectral bias (HSDT has none)
                gb_spec += gc.reshape(-1, c_out).sum(0)
            # spatial branch, last conv first
            acts = [_frames(xp[p : p + n])]  # recompute the chunk's activations
            for w, bias in zip(ws2d, bs):
                acts.append(_conv(acts[-1], w, bias, (sp, sp), slope))
            gcur = _frames(gc)
            for i in reversed(range(n_sp)):
                h_out = acts[i + 1]
                ga = torch.ops.aten.leaky_relu_backward(gcur, h_out, slope, True) if slope is not None else gcur
                want_in = i > 0 or need_x
                gin, gw, gb = torch.ops.aten.convolution_backward(
                    ga, acts[i], ws2d[i], [c_out] if bs[i] is not None else None,
                    [1, 1], [sp, sp], [1, 1], False, [0, 0], 1, [want_in, True, bs[i] is not None],
                )  # fmt: skip
                gws[i] += gw
                if gb is not None:
                    gbs[i] += gb
                gcur = gin
            if need_x:
                g = _bands(gx, b)[d0:d1]
                _frames(g).copy_(gcur)
                _conv_into(_image(g), _image(gp), w_spec_t, None, (0, 0), None, accumulate=True)
        return gws, gbs, g_spec, gb_spec

    parts = _run(_jobs(B, D, step), work)
    gws = [sum(part[0][i] for part in parts) for i in range(n_sp)]
    gbs = [None if bs[i] is None else sum(part[1][i] for part in parts) for i in range(n_sp)]
    g_spec = sum(part[2] for part in parts)
    gb_spec = sum(part[3] for part in parts)
    return gx, gws, gbs, g_spec, gb_spec


class _S3ConvCPU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, slope, spectral_weight, spectral_bias, n_sp, *spatial):
        ws2d = [w[:, :, 0] for w in spatial[:n_sp]]
        bs = list(spatial[n_sp:])
        w_spec = spectral_weight[..., 0]  # (C_out, C_in, k, 1)
        out = _forward(x, ws2d, bs, w_spec, spectral_bias, slope)
        ctx.save_for_backward(x, spectral_weight, *spatial[:n_sp])
        ctx.slope, ctx.n_sp, ctx.spatial_biases = slope, n_sp, bs
        ctx.has_spectral_bias = spectral_bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        x, spectral_weight, *spatial_w = ctx.saved_tensors
        ws2d = [w[:, :, 0] for w in spatial_w]
        gx, gws, gbs, g_spec, gb_spec = _backward(
            grad, x, ws2d, ctx.spatial_biases, spectral_weight[..., 0], ctx.slope, ctx.needs_input_grad[0],
            ctx.has_spectral_bias,
        )
        return (
            gx, None, g_spec[..., None], gb_spec if ctx.has_spectral_bias else None, None,
            *[g[:, :, None] for g in gws], *gbs,
        )  # fmt: skip


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
    (B, C_out, D, H, W), returned channels-last. The forward keeps nothing but x and the weights.
    """
    n_sp = len(spatial_weights)
    biases = list(spatial_biases) if spatial_biases is not None else [None] * n_sp
    return _S3ConvCPU.apply(x, negative_slope, spectral_weight, spectral_bias, n_sp, *spatial_weights, *biases)
