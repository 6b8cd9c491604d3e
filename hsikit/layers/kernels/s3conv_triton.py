"""Fused Triton S3Conv (forward and backward), same signature as ``s3conv_reference``.

Reached through :func:`hsikit.layers.s3conv.s3conv` (the dispatch); call it directly only in tests.

Kernels (tensors are NCDHW-contiguous; accumulation in fp32, or fp64 for fp64 tensors):

``_conv_kernel`` -- one program = a tile of ``BLOCK_P`` voxels (flat over B, D, H, W) x a block of
output channels; it computes, in registers::

    out = act(conv_(1,k,k)(in * act'(in_mask)) + b)  [+ conv_(k,1,1)(sin) + b_s]

so the *last* spatial conv, its LeakyReLU, the whole spectral branch and the sum are one pass
(for the one-conv S3Conv the entire block is one pass over x). ``in_mask`` multiplies the input by
the LeakyReLU derivative read from a saved activation, which fuses the activation backward into the
transposed conv of the backward pass.

``_wgrad_kernel`` -- weight gradients ``dW[tap] = sum_voxels g^T in_shifted(tap)`` as ``tl.dot``
reductions over voxel ranges (split-K partials, summed by torch), with the same ``g_mask`` fusion.

Backward recomputes the spatial intermediates from x with ``_conv_kernel`` (the forward saves only
x and the weights), then runs the transposed convs (flipped, channel-transposed weights) with
``_conv_kernel`` and the weight gradients with ``_wgrad_kernel``; the input gradient of the last
step also folds in the spectral branch's transposed conv. Bias gradients are torch sums.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import triton
import triton.language as tl

from hsikit.layers.kernels.dispatch import interpreting

__all__ = ["s3conv_triton"]


@triton.jit
def _conv_kernel(
    IN, IN_MASK, W, BIAS, SIN, WS, SBIAS, OUT,
    C_IN, C_OUT, C_SIN, D, H, W_, n_vox, slope,
    K: tl.constexpr, HAS_IN_MASK: tl.constexpr, HAS_BIAS: tl.constexpr, ACT: tl.constexpr,
    HAS_SPEC: tl.constexpr, HAS_SBIAS: tl.constexpr, ACC: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_CO: tl.constexpr,
):  # fmt: skip
    pid_p = tl.program_id(0)
    pid_co = tl.program_id(1)
    hw = H * W_
    offs = pid_p * BLOCK_P + tl.arange(0, BLOCK_P)  # flat voxel index over (B, D, H, W)
    pmask = offs < n_vox
    bd = offs // hw
    pix = offs % hw
    b = bd // D
    d = bd % D
    yy = pix // W_
    xx = pix % W_
    co = pid_co * BLOCK_CO + tl.arange(0, BLOCK_CO)
    comask = co < C_OUT
    P: tl.constexpr = K // 2
    acc = tl.zeros([BLOCK_P, BLOCK_CO], dtype=ACC)
    for ci in range(C_IN):
        base = ((b * C_IN + ci) * D + d).to(tl.int64) * hw  # per voxel
        for ky in tl.static_range(K):
            for kx in tl.static_range(K):
                iy = yy + (ky - P)
                ix = xx + (kx - P)
                m = pmask & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W_)
                v = tl.load(IN + base + iy * W_ + ix, mask=m, other=0.0).to(ACC)
                if HAS_IN_MASK:
                    mv = tl.load(IN_MASK + base + iy * W_ + ix, mask=m, other=0.0)
                    v = tl.where(mv > 0, v, v * slope)
                wv = tl.load(W + ((co * C_IN + ci) * K + ky) * K + kx, mask=comask, other=0.0).to(ACC)
                acc += v[:, None] * wv[None, :]
    if HAS_BIAS:
        acc += tl.load(BIAS + co, mask=comask, other=0.0).to(ACC)[None, :]
    if ACT:
        acc = tl.where(acc > 0, acc, acc * slope)
    if HAS_SPEC:
        for ci in range(C_SIN):
            for t in tl.static_range(K):
                dd = d + (t - P)
                inside = (dd >= 0) & (dd < D)
                v = tl.load(SIN + ((b * C_SIN + ci) * D + dd).to(tl.int64) * hw + pix, mask=pmask & inside, other=0.0).to(ACC)
                wv = tl.load(WS + (co * C_SIN + ci) * K + t, mask=comask, other=0.0).to(ACC)
                acc += v[:, None] * wv[None, :]
        if HAS_SBIAS:
            acc += tl.load(SBIAS + co, mask=comask, other=0.0).to(ACC)[None, :]
    out_off = ((b[:, None] * C_OUT + co[None, :]) * D + d[:, None]).to(tl.int64) * hw + pix[:, None]
    tl.store(OUT + out_off, acc.to(OUT.dtype.element_ty), mask=pmask[:, None] & comask[None, :])


@triton.jit
def _wgrad_kernel(
    G, G_MASK, IN, PART,
    C_IN, C_OUT, D, H, W_, n_vox, slope, n_items, items_per_split,
    KD: tl.constexpr, KS: tl.constexpr, HAS_G_MASK: tl.constexpr, ACC: tl.constexpr, PRECISION: tl.constexpr,
    BLOCK_P: tl.constexpr, BLOCK_CO: tl.constexpr, BLOCK_CI: tl.constexpr,
):  # fmt: skip
    tap = tl.program_id(0)
    pid_c = tl.program_id(1)
    split = tl.program_id(2)
    n_ci_blocks = tl.cdiv(C_IN, BLOCK_CI)
    co = (pid_c // n_ci_blocks) * BLOCK_CO + tl.arange(0, BLOCK_CO)
    ci = (pid_c % n_ci_blocks) * BLOCK_CI + tl.arange(0, BLOCK_CI)
    comask = co < C_OUT
    cimask = ci < C_IN
    td = tap // (KS * KS) - KD // 2
    ty = (tap // KS) % KS - KS // 2
    tx = tap % KS - KS // 2
    hw = H * W_
    acc = tl.zeros([BLOCK_CO, BLOCK_CI], dtype=ACC)
    start = split * items_per_split
    for item in range(start, tl.minimum(start + items_per_split, n_items)):
        offs = item * BLOCK_P + tl.arange(0, BLOCK_P)  # flat voxel index over (B, D, H, W)
        pmask = offs < n_vox
        bd = offs // hw
        pix = offs % hw
        b = bd // D
        d = bd % D
        g_off = ((b[None, :] * C_OUT + co[:, None]) * D + d[None, :]).to(tl.int64) * hw + pix[None, :]
        gm = comask[:, None] & pmask[None, :]
        g = tl.load(G + g_off, mask=gm, other=0.0).to(ACC)  # (BLOCK_CO, BLOCK_P)
        if HAS_G_MASK:
            mv = tl.load(G_MASK + g_off, mask=gm, other=0.0)
            g = tl.where(mv > 0, g, g * slope)
        yy = pix // W_ + ty
        xx = pix % W_ + tx
        dd = d + td
        m = pmask & (yy >= 0) & (yy < H) & (xx >= 0) & (xx < W_) & (dd >= 0) & (dd < D)
        i_off = ((b[:, None] * C_IN + ci[None, :]) * D + dd[:, None]).to(tl.int64) * hw + (yy * W_ + xx)[:, None]
        v = tl.load(IN + i_off, mask=m[:, None] & cimask[None, :], other=0.0).to(ACC)  # (BLOCK_P, BLOCK_CI)
        acc += tl.dot(g, v, input_precision=PRECISION, out_dtype=ACC)
    p_off = ((split * tl.num_programs(0) + tap) * C_OUT + co[:, None]).to(tl.int64) * C_IN + ci[None, :]
    tl.store(PART + p_off, acc, mask=comask[:, None] & cimask[None, :])


@triton.jit
def _fused2_kernel(
    X, W1, B1, W2, B2, WS, SB, OUT, SCRATCH,
    C_IN, C_MID, D, H, W_, n_tiles, tiles_w, tiles_per_frame, slope,
    K: tl.constexpr, HAS_B1: tl.constexpr, HAS_B2: tl.constexpr, HAS_SB: tl.constexpr, ACT: tl.constexpr,
    ACC: tl.constexpr, TH: tl.constexpr, TW: tl.constexpr, HP: tl.constexpr, BLOCK_C: tl.constexpr,
):  # fmt: skip
    """HSDT's two-conv S3Conv in one pass: per output tile, h = act(conv1(x)) on the tile plus a
    k//2 halo goes to a per-program scratch tile (on-chip/L2: the grid is persistent, so scratch is
    n_programs tiles, not a full tensor), then out = act(conv2(h)) + spectral(x) from it."""
    pid = tl.program_id(0)
    nprog = tl.num_programs(0)
    P: tl.constexpr = K // 2
    HTW: tl.constexpr = TW + 2 * P
    HTH: tl.constexpr = TH + 2 * P
    hidx = tl.arange(0, HP)
    hvalid = hidx < HTH * HTW
    hy = hidx // HTW
    hx = hidx % HTW
    oidx = tl.arange(0, TH * TW)
    oy = oidx // TW
    ox = oidx % TW
    c = tl.arange(0, BLOCK_C)
    cmask = c < C_MID
    hw = H * W_
    scratch = SCRATCH + pid.to(tl.int64) * HP * BLOCK_C
    for tile in range(pid, n_tiles, nprog):
        bd = tile // tiles_per_frame
        t_in = tile % tiles_per_frame
        ty0 = (t_in // tiles_w) * TH
        tx0 = (t_in % tiles_w) * TW
        b = bd // D
        d = bd % D
        # phase 1: h on the halo tile
        gy = ty0 - P + hy
        gx = tx0 - P + hx
        inimg = hvalid & (gy >= 0) & (gy < H) & (gx >= 0) & (gx < W_)
        acc1 = tl.zeros([HP, BLOCK_C], dtype=ACC)
        for ci in range(C_IN):
            base = ((b * C_IN + ci) * D + d).to(tl.int64) * hw
            for ky in tl.static_range(K):
                for kx in tl.static_range(K):
                    iy = gy + (ky - P)
                    ix = gx + (kx - P)
                    m = inimg & (iy >= 0) & (iy < H) & (ix >= 0) & (ix < W_)
                    v = tl.load(X + base + iy * W_ + ix, mask=m, other=0.0).to(ACC)
                    wv = tl.load(W1 + ((c * C_IN + ci) * K + ky) * K + kx, mask=cmask, other=0.0).to(ACC)
                    acc1 += v[:, None] * wv[None, :]
        if HAS_B1:
            acc1 += tl.load(B1 + c, mask=cmask, other=0.0).to(ACC)[None, :]
        if ACT:
            acc1 = tl.where(acc1 > 0, acc1, acc1 * slope)
        acc1 = tl.where(inimg[:, None], acc1, 0.0)  # conv2 zero-pads h outside the image
        tl.debug_barrier()  # the previous tile's readers of the scratch are done
        tl.store(scratch + hidx[:, None] * BLOCK_C + c[None, :], acc1)
        tl.debug_barrier()
        # phase 2: conv2 from the scratch tile, activation, spectral branch, sum
        acc2 = tl.zeros([TH * TW, BLOCK_C], dtype=ACC)
        for cm in range(C_MID):
            for ky in tl.static_range(K):
                for kx in tl.static_range(K):
                    v = tl.load(scratch + ((oy + ky) * HTW + (ox + kx)) * BLOCK_C + cm)
                    wv = tl.load(W2 + ((c * C_MID + cm) * K + ky) * K + kx, mask=cmask, other=0.0).to(ACC)
                    acc2 += v[:, None] * wv[None, :]
        if HAS_B2:
            acc2 += tl.load(B2 + c, mask=cmask, other=0.0).to(ACC)[None, :]
        if ACT:
            acc2 = tl.where(acc2 > 0, acc2, acc2 * slope)
        py = ty0 + oy
        px = tx0 + ox
        pm = (py < H) & (px < W_)
        pix = py * W_ + px
        for ci in range(C_IN):
            for t in tl.static_range(K):
                dd = d + (t - P)
                inside = (dd >= 0) & (dd < D)
                v = tl.load(X + ((b * C_IN + ci) * D + dd).to(tl.int64) * hw + pix, mask=pm & inside, other=0.0).to(ACC)
                wv = tl.load(WS + (c * C_IN + ci) * K + t, mask=cmask, other=0.0).to(ACC)
                acc2 += v[:, None] * wv[None, :]
        if HAS_SB:
            acc2 += tl.load(SB + c, mask=cmask, other=0.0).to(ACC)[None, :]
        out_off = ((b * C_MID + c[None, :]) * D + d).to(tl.int64) * hw + pix[:, None]
        tl.store(OUT + out_off, acc2.to(OUT.dtype.element_ty), mask=pm[:, None] & cmask[None, :])


def _acc_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _block_p(n_vox: int) -> int:
    # The interpreter pays per program: few large tiles; on a GPU 128-voxel tiles.
    return min(triton.next_power_of_2(n_vox), 4096) if interpreting() else 128


def _conv(inp, w, bias, slope, act, in_mask=None, sin=None, ws=None, sbias=None):
    """Launch ``_conv_kernel``; w is (C_out, C_in, k, k), ws (C_out, C_sin, k)."""
    B, c_in, D, H, W = inp.shape
    c_out, k = w.shape[0], w.shape[-1]
    out = torch.empty((B, c_out, D, H, W), dtype=inp.dtype, device=inp.device)
    n_vox = B * D * H * W
    block_p = _block_p(n_vox)
    block_co = min(triton.next_power_of_2(c_out), 64)
    grid = (triton.cdiv(n_vox, block_p), triton.cdiv(c_out, block_co))
    dummy = inp
    _conv_kernel[grid](
        inp, in_mask if in_mask is not None else dummy, w, bias if bias is not None else dummy,
        sin if sin is not None else dummy, ws if ws is not None else dummy, sbias if sbias is not None else dummy, out,
        c_in, c_out, sin.shape[1] if sin is not None else 0, D, H, W, n_vox, float(slope if slope is not None else 0.0),
        K=k, HAS_IN_MASK=in_mask is not None, HAS_BIAS=bias is not None, ACT=act, HAS_SPEC=sin is not None,
        HAS_SBIAS=sbias is not None, ACC=_acc_dtype(inp.dtype), BLOCK_P=block_p, BLOCK_CO=block_co,
    )  # fmt: skip
    return out


def _wgrad(g, inp, kd, ks, slope=None, g_mask=None):
    """sum over voxels of g (B, C_out, ...) x shifted inp (B, C_in, ...) -> (kd*ks*ks, C_out, C_in)."""
    B, c_in, D, H, W = inp.shape
    c_out = g.shape[1]
    n_vox = B * D * H * W
    block_p = _block_p(n_vox)
    n_items = triton.cdiv(n_vox, block_p)
    bco = max(16, min(triton.next_power_of_2(c_out), 64))
    bci = max(16, min(triton.next_power_of_2(c_in), 64))
    n_c = triton.cdiv(c_out, bco) * triton.cdiv(c_in, bci)
    taps = kd * ks * ks
    target = 4 if interpreting() else 4 * torch.cuda.get_device_properties(g.device).multi_processor_count
    n_split = max(1, min(n_items, target // max(1, taps * n_c) or 1))
    per = triton.cdiv(n_items, n_split)
    n_split = triton.cdiv(n_items, per)
    part = torch.empty((n_split, taps, c_out, c_in), dtype=torch.float64 if g.dtype == torch.float64 else torch.float32, device=g.device)
    precision = "ieee"
    _wgrad_kernel[(taps, n_c, n_split)](
        g, g_mask if g_mask is not None else g, inp, part,
        c_in, c_out, D, H, W, n_vox, float(slope if slope is not None else 0.0), n_items, per,
        KD=kd, KS=ks, HAS_G_MASK=g_mask is not None, ACC=_acc_dtype(g.dtype), PRECISION=precision,
        BLOCK_P=block_p, BLOCK_CO=bco, BLOCK_CI=bci,
    )  # fmt: skip
    return part.sum(0).to(g.dtype)


#: Largest channel count the single-pass two-conv kernel takes (its tiles live in registers).
FUSED2_MAX_CHANNELS = 32


def _fused2(x, w1, b1, w2, b2, wsp, sb, slope):
    """HSDT's two-conv S3Conv with ``_fused2_kernel`` (one launch, one pass over x)."""
    B, c_in, D, H, W = x.shape
    c_out, k = w1.shape[0], w1.shape[-1]
    p = k // 2
    if interpreting():
        th, tw = min(triton.next_power_of_2(H), 16), min(triton.next_power_of_2(W), 16)
    else:
        th, tw = 8, 16
    hp = triton.next_power_of_2((th + 2 * p) * (tw + 2 * p))
    block_c = triton.next_power_of_2(c_out)
    tiles_w = triton.cdiv(W, tw)
    tiles_per_frame = triton.cdiv(H, th) * tiles_w
    n_tiles = B * D * tiles_per_frame
    nprog = min(n_tiles, 4 if interpreting() else 4 * torch.cuda.get_device_properties(x.device).multi_processor_count)
    acc = torch.float64 if x.dtype == torch.float64 else torch.float32
    scratch = torch.empty(nprog * hp * block_c, dtype=acc, device=x.device)
    out = torch.empty((B, c_out, D, H, W), dtype=x.dtype, device=x.device)
    dummy = x
    _fused2_kernel[(nprog,)](
        x, w1, b1 if b1 is not None else dummy, w2, b2 if b2 is not None else dummy, wsp,
        sb if sb is not None else dummy, out, scratch,
        c_in, c_out, D, H, W, n_tiles, tiles_w, tiles_per_frame, float(slope if slope is not None else 0.0),
        K=k, HAS_B1=b1 is not None, HAS_B2=b2 is not None, HAS_SB=sb is not None, ACT=slope is not None,
        ACC=_acc_dtype(x.dtype), TH=th, TW=tw, HP=hp, BLOCK_C=block_c,
    )  # fmt: skip
    return out


def _flip_t(w: torch.Tensor) -> torch.Tensor:
    """Weights of the transposed conv: channels swapped, taps reversed."""
    dims = tuple(range(2, w.dim()))
    return w.flip(dims).transpose(0, 1).contiguous()


class _S3ConvTriton(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, slope, spectral_weight, spectral_bias, n_sp, *spatial):
        x = x.contiguous()
        ws = [w[:, :, 0].contiguous() for w in spatial[:n_sp]]
        bs = [b.contiguous() if b is not None else None for b in spatial[n_sp:]]
        wsp = spectral_weight[:, :, :, 0, 0].contiguous()
        sb = spectral_bias.contiguous() if spectral_bias is not None else None
        act = slope is not None
        if n_sp == 2 and ws[0].shape[0] <= FUSED2_MAX_CHANNELS:  # HSDT's block: one launch
            out = _fused2(x, ws[0], bs[0], ws[1], bs[1], wsp, sb, slope)
        else:
            h = x
            for i in range(n_sp - 1):
                h = _conv(h, ws[i], bs[i], slope, act)
            out = _conv(h, ws[-1], bs[-1], slope, act, sin=x, ws=wsp, sbias=sb)
        ctx.save_for_backward(x, spectral_weight, *spatial[:n_sp])
        ctx.slope, ctx.n_sp = slope, n_sp
        ctx.spatial_biases, ctx.has_spectral_bias = bs, spectral_bias is not None
        return out

    @staticmethod
    def backward(ctx, grad):
        x, spectral_weight, *spatial_w = ctx.saved_tensors
        slope, n_sp, bs = ctx.slope, ctx.n_sp, ctx.spatial_biases
        act = slope is not None
        g = grad.contiguous()
        ws = [w[:, :, 0].contiguous() for w in spatial_w]
        wsp = spectral_weight[:, :, :, 0, 0].contiguous()
        k = wsp.shape[-1]
        hs = [x]
        for i in range(n_sp):  # recompute h_1 .. h_n (post-activation spatial outputs)
            hs.append(_conv(hs[-1], ws[i], bs[i], slope, act))
        gws, gbs = [None] * n_sp, [None] * n_sp
        gcur = g
        gx = None
        for i in reversed(range(n_sp)):
            gmask = hs[i + 1] if act else None
            gws[i] = _wgrad(gcur, hs[i], 1, k, slope, gmask).reshape(k, k, *ws[i].shape[:2]).permute(2, 3, 0, 1)[:, :, None]
            if bs[i] is not None:
                ga = torch.where(gmask > 0, gcur, gcur * slope) if act else gcur
                gbs[i] = ga.sum(dim=(0, 2, 3, 4))
            if i > 0:
                gcur = _conv(gcur, _flip_t(ws[i]), None, slope, False, in_mask=gmask)
            elif ctx.needs_input_grad[0]:
                gx = _conv(gcur, _flip_t(ws[0]), None, slope, False, in_mask=gmask, sin=g, ws=_flip_t(wsp))
        g_spec = _wgrad(g, x, k, 1).permute(1, 2, 0)[..., None, None]
        g_sb = g.sum(dim=(0, 2, 3, 4)) if ctx.has_spectral_bias else None
        g_spatial_w = [w.contiguous() for w in gws]
        return (gx, None, g_spec.contiguous(), g_sb, None, *g_spatial_w, *gbs)


def s3conv_triton(
    x: torch.Tensor,
    spatial_weights: Sequence[torch.Tensor],
    spectral_weight: torch.Tensor,
    spatial_biases: Sequence[torch.Tensor | None] | None = None,
    spectral_bias: torch.Tensor | None = None,
    negative_slope: float | None = 0.01,
) -> torch.Tensor:
    """S3Conv with the fused Triton kernels; autograd for x, weights and biases.

    Shapes as :func:`hsikit.layers.s3conv.s3conv_reference`; the output is NCDHW-contiguous.
    """
    n_sp = len(spatial_weights)
    biases = list(spatial_biases) if spatial_biases is not None else [None] * n_sp
    return _S3ConvTriton.apply(x, negative_slope, spectral_weight, spectral_bias, n_sp, *spatial_weights, *biases)
