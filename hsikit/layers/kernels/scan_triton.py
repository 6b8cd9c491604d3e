"""Fused Triton selective scan (twin of :func:`hsikit.layers.selective_scan.selective_scan_reference`).

Same signature and result: ``x, delta (B, L, D)``, ``A (D, N)``, ``B, C (B, L, N)``, ``D (D,)``,
optional ``initial_state (B, D, N)``, ``y (B, L, D)`` and optionally the last state.

Forward: one program per (batch, block of channels) keeps its ``[BLOCK_D, N]`` state in registers and
walks the sequence once, reading ``x, delta, B, C`` and writing ``y`` (nothing of size ``L x D x N``
touches memory). It also writes the state every ``CHUNK`` steps (checkpoints, ``(B, L/CHUNK + 1, D, N)``).

Backward (recompute): the same programs walk the chunks in reverse; for each chunk they recompute the
states from its checkpoint into a small per-program scratch (``CHUNK + 1`` states), then run the
adjoint recurrence ``g_h <- g_h * exp(delta_t A)`` backwards through the chunk, writing ``grad_x``,
``grad_delta`` and per-channel-block partials of ``grad_B``, ``grad_C`` (summed by torch), and
accumulating ``grad_A``, ``grad_D`` and the gradient of the initial state in registers.

Accumulation in float32 (float64 for float64 inputs). On CPU tensors it runs only under
``TRITON_INTERPRET=1`` (the tests).
"""

from __future__ import annotations

import torch
import triton
from torch.autograd.function import once_differentiable
import triton.language as tl


@triton.jit
def _scan_fwd_kernel(x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, h0_ptr, y_ptr, hchk_ptr, hlast_ptr,
                     L, DM, NS, n_chk,
                     HAS_D: tl.constexpr, HAS_H0: tl.constexpr, CHUNK: tl.constexpr,
                     BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr, ACC: tl.constexpr):
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_s = tl.arange(0, BLOCK_S)
    mask_d = offs_d < DM
    mask_s = offs_s < NS
    mask_ds = mask_d[:, None] & mask_s[None, :]
    ds_off = offs_d[:, None] * NS + offs_s[None, :]
    A = tl.load(a_ptr + ds_off, mask=mask_ds, other=0.0).to(ACC)
    if HAS_D:
        Dv = tl.load(d_ptr + offs_d, mask=mask_d, other=0.0).to(ACC)
    if HAS_H0:
        h = tl.load(h0_ptr + pid_b * DM * NS + ds_off, mask=mask_ds, other=0.0).to(ACC)
    else:
        h = tl.zeros([BLOCK_D, BLOCK_S], ACC)
    tl.store(hchk_ptr + pid_b * (n_chk + 1) * DM * NS + ds_off, h, mask=mask_ds)
    for t in range(0, L):
        row = pid_b * L + t
        x = tl.load(x_ptr + row * DM + offs_d, mask=mask_d, other=0.0).to(ACC)
        dt = tl.load(dt_ptr + row * DM + offs_d, mask=mask_d, other=0.0).to(ACC)
        bt = tl.load(b_ptr + row * NS + offs_s, mask=mask_s, other=0.0).to(ACC)
        ct = tl.load(c_ptr + row * NS + offs_s, mask=mask_s, other=0.0).to(ACC)
        h = tl.exp(dt[:, None] * A) * h + (dt * x)[:, None] * bt[None, :]
        y = tl.sum(h * ct[None, :], axis=1)
        if HAS_D:
            y += Dv * x
        tl.store(y_ptr + row * DM + offs_d, y.to(y_ptr.dtype.element_ty), mask=mask_d)
        k = (t + 1) // CHUNK
        tl.store(hchk_ptr + (pid_b * (n_chk + 1) + k) * DM * NS + ds_off, h,
                 mask=mask_ds & ((t + 1) % CHUNK == 0) & (k <= n_chk))
    tl.store(hlast_ptr + pid_b * DM * NS + ds_off, h, mask=mask_ds)


@triton.jit
def _scan_bwd_kernel(x_ptr, dt_ptr, a_ptr, b_ptr, c_ptr, d_ptr, gy_ptr, ghl_ptr, hchk_ptr, scr_ptr,
                     gx_ptr, gdt_ptr, ga_ptr, gb_ptr, gc_ptr, gd_ptr, gh0_ptr,
                     L, DM, NS, n_chk, n_dblk,
                     HAS_D: tl.constexpr, HAS_GHL: tl.constexpr, CHUNK: tl.constexpr,
                     BLOCK_D: tl.constexpr, BLOCK_S: tl.constexpr, ACC: tl.constexpr):
    pid_b = tl.program_id(0)
    pid_d = tl.program_id(1)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_s = tl.arange(0, BLOCK_S)
    mask_d = offs_d < DM
    mask_s = offs_s < NS
    mask_ds = mask_d[:, None] & mask_s[None, :]
    ds_off = offs_d[:, None] * NS + offs_s[None, :]
    loc = tl.arange(0, BLOCK_D)[:, None] * BLOCK_S + offs_s[None, :]           # scratch layout
    scr = scr_ptr + (pid_b * n_dblk + pid_d) * (CHUNK + 1) * BLOCK_D * BLOCK_S
    A = tl.load(a_ptr + ds_off, mask=mask_ds, other=0.0).to(ACC)
    if HAS_D:
        Dv = tl.load(d_ptr + offs_d, mask=mask_d, other=0.0).to(ACC)
    if HAS_GHL:
        gh = tl.load(ghl_ptr + pid_b * DM * NS + ds_off, mask=mask_ds, other=0.0).to(ACC)
    else:
        gh = tl.zeros([BLOCK_D, BLOCK_S], ACC)
    gA = tl.zeros([BLOCK_D, BLOCK_S], ACC)
    gD = tl.zeros([BLOCK_D], ACC)
    n_chunks = tl.cdiv(L, CHUNK)
    for cc in range(0, n_chunks):
        c = n_chunks - 1 - cc
        t0 = c * CHUNK
        t1 = tl.minimum(t0 + CHUNK, L)
        # recompute the chunk's states from its checkpoint: slot i holds the state before step t0 + i
        h = tl.load(hchk_ptr + (pid_b * (n_chk + 1) + c) * DM * NS + ds_off, mask=mask_ds, other=0.0)
        tl.store(scr + loc, h)
        for t in range(t0, t1):
            row = pid_b * L + t
            x = tl.load(x_ptr + row * DM + offs_d, mask=mask_d, other=0.0).to(ACC)
            dt = tl.load(dt_ptr + row * DM + offs_d, mask=mask_d, other=0.0).to(ACC)
            bt = tl.load(b_ptr + row * NS + offs_s, mask=mask_s, other=0.0).to(ACC)
            h = tl.exp(dt[:, None] * A) * h + (dt * x)[:, None] * bt[None, :]
            tl.store(scr + (t - t0 + 1) * BLOCK_D * BLOCK_S + loc, h)
        tl.debug_barrier()
        for tt in range(0, t1 - t0):
            t = t1 - 1 - tt
            row = pid_b * L + t
            x = tl.load(x_ptr + row * DM + offs_d, mask=mask_d, other=0.0).to(ACC)
            dt = tl.load(dt_ptr + row * DM + offs_d, mask=mask_d, other=0.0).to(ACC)
            bt = tl.load(b_ptr + row * NS + offs_s, mask=mask_s, other=0.0).to(ACC)
            ct = tl.load(c_ptr + row * NS + offs_s, mask=mask_s, other=0.0).to(ACC)
            gy = tl.load(gy_ptr + row * DM + offs_d, mask=mask_d, other=0.0).to(ACC)
            h_prev = tl.load(scr + (t - t0) * BLOCK_D * BLOCK_S + loc)
            h_t = tl.load(scr + (t - t0 + 1) * BLOCK_D * BLOCK_S + loc)
            gh += gy[:, None] * ct[None, :]
            part = (pid_b * n_dblk + pid_d) * L + t
            tl.store(gc_ptr + part * NS + offs_s, tl.sum(gy[:, None] * h_t, axis=0), mask=mask_s)
            a = tl.exp(dt[:, None] * A)
            ga_a = gh * h_prev * a                                            # dL/da * a
            ghb = tl.sum(gh * bt[None, :], axis=1)                            # sum_n gh B
            gdt = tl.sum(ga_a * A, axis=1) + ghb * x
            gx = ghb * dt
            if HAS_D:
                gx += Dv * gy
                gD += gy * x
            tl.store(gb_ptr + part * NS + offs_s, tl.sum(gh * (dt * x)[:, None], axis=0), mask=mask_s)
            gA += ga_a * dt[:, None]
            gh = gh * a
            tl.store(gx_ptr + row * DM + offs_d, gx.to(gx_ptr.dtype.element_ty), mask=mask_d)
            tl.store(gdt_ptr + row * DM + offs_d, gdt.to(gdt_ptr.dtype.element_ty), mask=mask_d)
        tl.debug_barrier()
    tl.store(gh0_ptr + pid_b * DM * NS + ds_off, gh, mask=mask_ds)
    tl.store(ga_ptr + pid_b * DM * NS + ds_off, gA, mask=mask_ds)
    if HAS_D:
        tl.store(gd_ptr + pid_b * DM + offs_d, gD, mask=mask_d)


def _acc(dtype: torch.dtype) -> tuple[torch.dtype, tl.dtype]:
    return (torch.float64, tl.float64) if dtype == torch.float64 else (torch.float32, tl.float32)


def _blocks(b: int, d: int, n: int, device: torch.device) -> tuple[int, int, int]:
    """(BLOCK_D, BLOCK_S, num_warps): the whole state of up to 32 channels per program, fewer
    channels per program on a GPU when the batch is small (the walk over L is latency bound, so
    programs, not lanes, are what is short)."""
    bs = triton.next_power_of_2(n)
    bd = min(triton.next_power_of_2(d), max(1, 2048 // bs), 32)
    if device.type == "cuda":
        sms = torch.cuda.get_device_properties(device).multi_processor_count
        while bd > 4 and b * triton.cdiv(d, bd) < 2 * sms:
            bd //= 2
    return bd, bs, 1 if bd * bs <= 128 else (2 if bd * bs <= 256 else 4)


class _ScanFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, delta, A, B, C, D, h0, chunk):
        x, delta, A, B, C = (t.contiguous() for t in (x, delta, A, B, C))
        D = None if D is None else D.contiguous()
        h0 = None if h0 is None else h0.contiguous()
        b, l, d = x.shape
        n = A.shape[1]
        acc_t, acc_tl = _acc(x.dtype)
        bd, bs, warps = _blocks(b, d, n, x.device)
        n_chk = triton.cdiv(l, chunk)
        y = torch.empty_like(x)
        hchk = torch.empty(b, n_chk + 1, d, n, device=x.device, dtype=acc_t)
        hlast = torch.empty(b, d, n, device=x.device, dtype=acc_t)
        dummy = x.new_empty(1, dtype=acc_t)
        _scan_fwd_kernel[(b, triton.cdiv(d, bd))](
            x, delta, A, B, C, D if D is not None else dummy, h0 if h0 is not None else dummy, y, hchk, hlast,
            l, d, n, n_chk, HAS_D=D is not None, HAS_H0=h0 is not None, CHUNK=chunk,
            BLOCK_D=bd, BLOCK_S=bs, ACC=acc_tl, num_warps=warps)
        ctx.save_for_backward(x, delta, A, B, C, D, hchk)
        ctx.has_h0, ctx.chunk = h0 is not None, chunk
        return y, hlast

    @staticmethod
    @once_differentiable
    def backward(ctx, gy, ghl):
        x, delta, A, B, C, D, hchk = ctx.saved_tensors
        b, l, d = x.shape
        n = A.shape[1]
        acc_t, acc_tl = _acc(x.dtype)
        bd, bs, warps = _blocks(b, d, n, x.device)
        chunk = ctx.chunk
        n_chk = hchk.shape[1] - 1
        n_dblk = triton.cdiv(d, bd)
        gy = gy.contiguous()
        gx, gdt = torch.empty_like(x), torch.empty_like(delta)
        ga = torch.empty(b, d, n, device=x.device, dtype=acc_t)
        gb = torch.empty(b, n_dblk, l, n, device=x.device, dtype=acc_t)
        gc = torch.empty(b, n_dblk, l, n, device=x.device, dtype=acc_t)
        gd = torch.empty(b, d, device=x.device, dtype=acc_t)
        gh0 = torch.empty(b, d, n, device=x.device, dtype=acc_t)
        scr = torch.empty(b, n_dblk, chunk + 1, bd, bs, device=x.device, dtype=acc_t)
        dummy = x.new_empty(1, dtype=acc_t)
        _scan_bwd_kernel[(b, n_dblk)](
            x, delta, A, B, C, D if D is not None else dummy, gy,
            ghl.contiguous() if ghl is not None else dummy, hchk, scr,
            gx, gdt, ga, gb, gc, gd, gh0, l, d, n, n_chk, n_dblk,
            HAS_D=D is not None, HAS_GHL=ghl is not None, CHUNK=chunk, BLOCK_D=bd, BLOCK_S=bs, ACC=acc_tl,
            num_warps=warps)
        gD = gd.sum(0).to(D.dtype) if D is not None else None
        return (gx, gdt, ga.sum(0).to(A.dtype), gb.sum(1).to(B.dtype), gc.sum(1).to(C.dtype), gD,
                gh0 if ctx.has_h0 else None, None)


def selective_scan_triton(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                          D: torch.Tensor | None = None, *, initial_state: torch.Tensor | None = None,
                          return_state: bool = False, chunk: int = 64):
    """Fused selective scan with autograd; arguments and result as
    :func:`hsikit.layers.selective_scan.selective_scan_reference` (all tensors on one CUDA device, or
    on the CPU under ``TRITON_INTERPRET=1``). ``chunk``: steps between state checkpoints (the
    backward recomputes one chunk at a time; memory ``(B, L/chunk + 1, D, N)``)."""
    if chunk < 1:
        raise ValueError(f"selective_scan_triton: chunk must be >= 1, got {chunk}")
    y, h = _ScanFunction.apply(x, delta, A, B, C, D, initial_state, chunk)
    return (y, h) if return_state else y
