"""Fused Triton kernels of the ESSA attention core (``hsikit.layers.essa.essa_attention``).

Twin of :func:`hsikit.layers.essa.essa_attention_reference`: same signature, ``(B, N, C)`` q, k, v ->
``V + phi_Q (phi_K^T V) / sqrt(N)``. Column-normalising phi_K is a diagonal rescaling
(``models.md`` §8.3), so with ``A_k`` the squared, sum-normalised keys,

    phi_K^T V = diag(1 / n) (A_k^T V),      n_c = max(sqrt(sum_j A_k[j, c]^2), 1e-12).

Forward, two passes over the tokens:

1. ``_colstats_kernel`` (one reduction pass): per (batch, token split, column block) it forms
   ``A_k`` from the key tile in registers and accumulates ``S = A_k^T V`` and ``n^2 = sum_j A_k^2``;
   the split partials are summed by torch (deterministic, no atomics).
2. ``M = S / n[:, None] / sqrt(N)`` (a ``(C, C)`` matrix per batch, torch).
3. ``_output_kernel``: per (batch, token tile) it forms ``phi_Q`` from the query tile and writes
   ``V + phi_Q M``.

Backward (``torch.autograd.Function``, recompute: only q, k, v, S and n are kept):

1. ``_colstats_kernel`` again, on (q, grad_y) with the row normalisation: ``gM = phi_Q^T grad_y``.
2. torch, ``(C, C)``-sized: ``gS = gM / n / sqrt(N)``, ``g(n^2)`` from ``gM`` and ``M``.
3. ``_backward_kernel``: per token tile it recomputes ``phi_Q`` and ``A_k`` and writes
   ``grad_q`` (through the row L2 norm, the sum normalisation and the centring),
   ``grad_k`` (from ``V gS^T + 2 A_k g(n^2)``) and ``grad_v = grad_y + A_k gS``.

Accumulation is float32 (float64 for float64 inputs); the matrix products use IEEE fp32 (no TF32).
On CPU tensors this runs only under ``TRITON_INTERPRET=1`` (the tests); the dispatch never picks it
there on its own.
"""

from __future__ import annotations

import math

import torch
import triton
from torch.autograd.function import once_differentiable
import triton.language as tl

from hsikit.layers.essa import NORM_EPS, SUM_EPS


@triton.jit
def _squared_map(t, mask_c, C, SUM_EPS_: tl.constexpr):
    """Centred ``tc`` and ``A = tc^2 / (sum tc^2 + eps)`` of a ``[BLOCK_N, BLOCK_C]`` tile, and the sums."""
    mean = tl.sum(t, axis=1) / C
    tc = tl.where(mask_c[None, :], t - mean[:, None], 0.0)
    t2 = tc * tc
    s = tl.sum(t2, axis=1) + SUM_EPS_
    return tc, t2 / s[:, None], s


@triton.jit
def _colstats_kernel(a_ptr, v_ptr, s_ptr, n2_ptr, N, C, s_ab, s_an, s_vb, s_vn, tokens_per_split,
                     ROWNORM: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr,
                     BLOCK_CV: tl.constexpr, ACC: tl.constexpr, SUM_EPS_: tl.constexpr,
                     NORM_EPS_: tl.constexpr):
    """partial[b, split] = F(a)^T v and sum_j F(a)^2 over one token split; F = A (or row-normalised A)."""
    pid_b = tl.program_id(0)
    pid_s = tl.program_id(1)
    pid_c = tl.program_id(2)
    n_splits = tl.num_programs(1)
    offs_c = tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    offs_cv = pid_c * BLOCK_CV + tl.arange(0, BLOCK_CV)
    mask_cv = offs_cv < C
    acc = tl.zeros([BLOCK_C, BLOCK_CV], ACC)
    n2 = tl.zeros([BLOCK_C], ACC)
    start = pid_s * tokens_per_split
    end = tl.minimum(start + tokens_per_split, N)
    for n0 in range(start, end, BLOCK_N):
        offs_n = n0 + tl.arange(0, BLOCK_N)
        mask_n = offs_n < end
        a = tl.load(a_ptr + pid_b * s_ab + offs_n[:, None] * s_an + offs_c[None, :],
                    mask=mask_n[:, None] & mask_c[None, :], other=0.0).to(ACC)
        _, fa, _ = _squared_map(a, mask_c, C, SUM_EPS_)
        if ROWNORM:
            r = tl.sqrt(tl.sum(fa * fa, axis=1))
            fa = fa / tl.maximum(r, NORM_EPS_)[:, None]
        v = tl.load(v_ptr + pid_b * s_vb + offs_n[:, None] * s_vn + offs_cv[None, :],
                    mask=mask_n[:, None] & mask_cv[None, :], other=0.0).to(ACC)
        acc += tl.dot(tl.trans(fa), v, input_precision="ieee")
        n2 += tl.sum(fa * fa, axis=0)
    base = (pid_b * n_splits + pid_s) * C
    tl.store(s_ptr + (base + offs_c[:, None]) * C + offs_cv[None, :], acc, mask=mask_c[:, None] & mask_cv[None, :])
    if pid_c == 0:
        tl.store(n2_ptr + base + offs_c, n2, mask=mask_c)


@triton.jit
def _output_kernel(q_ptr, v_ptr, m_ptr, y_ptr, N, C, s_qb, s_qn, s_vb, s_vn, s_yb, s_yn,
                   BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_CV: tl.constexpr, ACC: tl.constexpr,
                   SUM_EPS_: tl.constexpr, NORM_EPS_: tl.constexpr):
    """y = v + phi_Q M for one token tile."""
    pid_b = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    offs_c = tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    q = tl.load(q_ptr + pid_b * s_qb + offs_n[:, None] * s_qn + offs_c[None, :],
                mask=mask_n[:, None] & mask_c[None, :], other=0.0).to(ACC)
    _, fq, _ = _squared_map(q, mask_c, C, SUM_EPS_)
    r = tl.sqrt(tl.sum(fq * fq, axis=1))
    fq = fq / tl.maximum(r, NORM_EPS_)[:, None]
    for c0 in range(0, C, BLOCK_CV):
        offs_cv = c0 + tl.arange(0, BLOCK_CV)
        mask_cv = offs_cv < C
        m = tl.load(m_ptr + (pid_b * C + offs_c[:, None]) * C + offs_cv[None, :],
                    mask=mask_c[:, None] & mask_cv[None, :], other=0.0)
        t = tl.dot(fq, m, input_precision="ieee")
        mask = mask_n[:, None] & mask_cv[None, :]
        v = tl.load(v_ptr + pid_b * s_vb + offs_n[:, None] * s_vn + offs_cv[None, :], mask=mask, other=0.0).to(ACC)
        tl.store(y_ptr + pid_b * s_yb + offs_n[:, None] * s_yn + offs_cv[None, :],
                 (v + t).to(y_ptr.dtype.element_ty), mask=mask)


@triton.jit
def _backward_kernel(q_ptr, k_ptr, v_ptr, gy_ptr, m_ptr, gs_ptr, gn2_ptr, gq_ptr, gk_ptr, gv_ptr, N, C,
                     s_qb, s_qn, s_kb, s_kn, s_vb, s_vn, s_gb, s_gn,
                     BLOCK_N: tl.constexpr, BLOCK_C: tl.constexpr, BLOCK_CV: tl.constexpr, ACC: tl.constexpr,
                     SUM_EPS_: tl.constexpr, NORM_EPS_: tl.constexpr):
    """grad_q, grad_k, grad_v of one token tile (outputs are contiguous (B, N, C), batch stride N*C)."""
    pid_b = tl.program_id(0)
    pid_n = tl.program_id(1)
    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    mask_n = offs_n < N
    offs_c = tl.arange(0, BLOCK_C)
    mask_c = offs_c < C
    mask_nc = mask_n[:, None] & mask_c[None, :]
    q = tl.load(q_ptr + pid_b * s_qb + offs_n[:, None] * s_qn + offs_c[None, :], mask=mask_nc, other=0.0).to(ACC)
    k = tl.load(k_ptr + pid_b * s_kb + offs_n[:, None] * s_kn + offs_c[None, :], mask=mask_nc, other=0.0).to(ACC)
    tq, aq, sq = _squared_map(q, mask_c, C, SUM_EPS_)
    tk, ak, sk = _squared_map(k, mask_c, C, SUM_EPS_)
    rq = tl.sqrt(tl.sum(aq * aq, axis=1))
    rqc = tl.maximum(rq, NORM_EPS_)
    fq = aq / rqc[:, None]
    gn2 = tl.load(gn2_ptr + pid_b * C + offs_c, mask=mask_c, other=0.0)
    g_fq = tl.zeros([BLOCK_N, BLOCK_C], ACC)
    g_ak = 2.0 * ak * gn2[None, :]
    for c0 in range(0, C, BLOCK_CV):
        offs_cv = c0 + tl.arange(0, BLOCK_CV)
        mask_cv = offs_cv < C
        mask = mask_n[:, None] & mask_cv[None, :]
        mask_cc = mask_c[:, None] & mask_cv[None, :]
        gy = tl.load(gy_ptr + pid_b * s_gb + offs_n[:, None] * s_gn + offs_cv[None, :], mask=mask, other=0.0).to(ACC)
        v = tl.load(v_ptr + pid_b * s_vb + offs_n[:, None] * s_vn + offs_cv[None, :], mask=mask, other=0.0).to(ACC)
        m = tl.load(m_ptr + (pid_b * C + offs_c[:, None]) * C + offs_cv[None, :], mask=mask_cc, other=0.0)
        gs = tl.load(gs_ptr + (pid_b * C + offs_c[:, None]) * C + offs_cv[None, :], mask=mask_cc, other=0.0)
        g_fq += tl.dot(gy, tl.trans(m), input_precision="ieee")
        g_ak += tl.dot(v, tl.trans(gs), input_precision="ieee")
        gv = gy + tl.dot(ak, gs, input_precision="ieee")
        tl.store(gv_ptr + (pid_b * N + offs_n[:, None]) * C + offs_cv[None, :], gv.to(gv_ptr.dtype.element_ty), mask=mask)
    # row L2 normalisation (F.normalize: x / max(|x|, eps))
    dot = tl.sum(g_fq * fq, axis=1)
    g_aq = (g_fq - tl.where(rq > NORM_EPS_, dot, 0.0)[:, None] * fq) / rqc[:, None]
    # A = t^2 / (sum t^2 + eps): dA/dt -> 2 t / s (gA - sum gA A); then the centring
    gtq = 2.0 * tq / sq[:, None] * (g_aq - tl.sum(g_aq * aq, axis=1)[:, None])
    gq = gtq - (tl.sum(gtq, axis=1) / C)[:, None]
    gtk = 2.0 * tk / sk[:, None] * (g_ak - tl.sum(g_ak * ak, axis=1)[:, None])
    gk = gtk - (tl.sum(gtk, axis=1) / C)[:, None]
    out = (pid_b * N + offs_n[:, None]) * C + offs_c[None, :]
    tl.store(gq_ptr + out, gq.to(gq_ptr.dtype.element_ty), mask=mask_nc)
    tl.store(gk_ptr + out, gk.to(gk_ptr.dtype.element_ty), mask=mask_nc)


def _blocks(c: int, interpreting: bool) -> tuple[int, int, int, int]:
    """(BLOCK_C, BLOCK_CV, BLOCK_N forward, BLOCK_N backward) for C channels."""
    bc = max(16, triton.next_power_of_2(c))
    if interpreting:  # numpy: few, large tiles are fastest; still several column blocks from C > 32
        return bc, min(bc, 32), 64, 64
    bcv = min(bc, 64)
    return bc, bcv, max(16, min(64, 8192 // bc)), max(16, min(64, 4096 // bc))


def _num_warps(bc: int) -> int:
    return 4 if bc <= 64 else 8


def _colstats(a: torch.Tensor, v: torch.Tensor, rownorm: bool, splits: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    from hsikit.layers.kernels.dispatch import interpreting

    b, n, c = a.shape
    acc_t = torch.float64 if a.dtype == torch.float64 else torch.float32
    bc, bcv, bn, _ = _blocks(c, interpreting())
    ncb = triton.cdiv(c, bcv)
    if splits is None:
        if interpreting():
            splits = 1
        else:
            sms = torch.cuda.get_device_properties(a.device).multi_processor_count
            splits = max(1, triton.cdiv(4 * sms, b * ncb))
    splits = max(1, min(splits, triton.cdiv(n, bn)))
    per = triton.cdiv(triton.cdiv(n, splits), bn) * bn
    splits = triton.cdiv(n, per)
    s_part = torch.empty(b, splits, c, c, device=a.device, dtype=acc_t)
    n2_part = torch.empty(b, splits, c, device=a.device, dtype=acc_t)
    _colstats_kernel[(b, splits, ncb)](
        a, v, s_part, n2_part, n, c, a.stride(0), a.stride(1), v.stride(0), v.stride(1), per,
        ROWNORM=rownorm, BLOCK_N=bn, BLOCK_C=bc, BLOCK_CV=bcv,
        ACC=tl.float64 if acc_t == torch.float64 else tl.float32, SUM_EPS_=SUM_EPS, NORM_EPS_=NORM_EPS,
        num_warps=_num_warps(bc))
    return s_part.sum(1), n2_part.sum(1)


def _lastdim_contiguous(t: torch.Tensor) -> torch.Tensor:
    return t if t.stride(-1) == 1 else t.contiguous()


class _ESSAFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, q, k, v, splits):
        from hsikit.layers.kernels.dispatch import interpreting

        q, k, v = (_lastdim_contiguous(t) for t in (q, k, v))
        b, n, c = q.shape
        s, n2 = _colstats(k, v, rownorm=False, splits=splits)
        nrm = n2.sqrt().clamp_min(NORM_EPS)
        m = (s / nrm[:, :, None] / math.sqrt(n)).contiguous()
        y = torch.empty(b, n, c, device=q.device, dtype=q.dtype)
        bc, bcv, bn, _ = _blocks(c, interpreting())
        _output_kernel[(b, triton.cdiv(n, bn))](
            q, v, m, y, n, c, q.stride(0), q.stride(1), v.stride(0), v.stride(1), y.stride(0), y.stride(1),
            BLOCK_N=bn, BLOCK_C=bc, BLOCK_CV=bcv, ACC=tl.float64 if m.dtype == torch.float64 else tl.float32,
            SUM_EPS_=SUM_EPS, NORM_EPS_=NORM_EPS, num_warps=_num_warps(bc))
        ctx.save_for_backward(q, k, v, m, n2, nrm)
        ctx.splits = splits
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, gy):
        from hsikit.layers.kernels.dispatch import interpreting

        q, k, v, m, n2, nrm = ctx.saved_tensors
        b, n, c = q.shape
        gy = gy.contiguous()
        gm, _ = _colstats(q, gy, rownorm=True, splits=ctx.splits)           # phi_Q^T gy
        gs = (gm / nrm[:, :, None] / math.sqrt(n)).contiguous()
        g_nrm = -(gm * m).sum(-1) / nrm                                      # M = S / (n sqrt(N))
        root = n2.sqrt()
        gn2 = torch.where(root > NORM_EPS, g_nrm / (2 * root.clamp_min(NORM_EPS)), torch.zeros_like(root)).contiguous()
        gq, gk, gv = (torch.empty(b, n, c, device=q.device, dtype=q.dtype) for _ in range(3))
        bc, bcv, _, bn = _blocks(c, interpreting())
        _backward_kernel[(b, triton.cdiv(n, bn))](
            q, k, v, gy, m, gs, gn2, gq, gk, gv, n, c, q.stride(0), q.stride(1), k.stride(0), k.stride(1),
            v.stride(0), v.stride(1), gy.stride(0), gy.stride(1),
            BLOCK_N=bn, BLOCK_C=bc, BLOCK_CV=bcv, ACC=tl.float64 if m.dtype == torch.float64 else tl.float32,
            SUM_EPS_=SUM_EPS, NORM_EPS_=NORM_EPS, num_warps=_num_warps(bc))
        return gq, gk, gv, None


def essa_attention_triton(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, *, splits: int | None = None) -> torch.Tensor:
    """Fused ESSA attention core ``V + phi_Q (phi_K^T V) / sqrt(N)``, with autograd.

    Parameters
    ----------
    q, k, v
        ``(B, N, C)`` (CUDA tensors, or CPU tensors under ``TRITON_INTERPRET=1``); float16, bfloat16,
        float32 or float64. Views with unit stride on the last axis are used without a copy.
    splits
        Token splits of the reduction pass (default: enough programs for the device; 1 interpreted).

    Returns
    -------
    torch.Tensor
        ``(B, N, C)`` in the input dtype.
    """
    if q.shape != k.shape or q.shape != v.shape or q.dim() != 3:
        raise ValueError(f"essa_attention_triton: q, k, v must share one (B, N, C) shape, got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if not (q.dtype == k.dtype == v.dtype):
        raise ValueError(f"essa_attention_triton: q, k, v dtypes differ ({q.dtype}, {k.dtype}, {v.dtype})")
    return _ESSAFunction.apply(q, k, v, splits)
