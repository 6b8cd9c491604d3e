"""Selective state-space scan (Mamba S6) and the blocks built on it.

Notation (Gu & Dao, "Mamba", 2023, Alg. 2; ``../shared/docs/models.md`` §4.4). For every batch ``b``,
channel ``d`` and state ``n`` the scan runs the input-dependent linear recurrence

    h_t = exp(delta_t A) * h_{t-1} + delta_t B_t x_t        (zero-order hold for A, Euler for B)
    y_t = sum_n C_t[n] h_t[n] + D x_t

with ``A = -exp(A_log)`` diagonal and negative (so ``exp(delta A)`` is in (0, 1]), and ``delta``, ``B``,
``C`` produced from the input by the caller (:class:`MambaBlock` does it). Layout is batch first and
sequence major, like the token tensors of the other blocks:

- ``x``, ``delta``: ``(B, L, D)``; ``A``: ``(D, N)``; ``B``, ``C``: ``(B, L, N)``; ``D``: ``(D,)``;
- state ``h``: ``(B, D, N)``; output ``y``: ``(B, L, D)``.

Two implementations of the same function:

- :func:`selective_scan_reference`: the exact sequential loop over L (the oracle).
- :func:`selective_scan`: a chunked two-level scan (or the fused Triton kernel on CUDA). The
  sequence is cut into chunks of ``T`` steps; (1) all chunks run their local recurrence from a zero
  state **in parallel** (T steps of ``(B, L/T, D, N)`` ops) to get their end states; (2) the
  whole-chunk decays ``exp(sum_t delta_t A)`` (sums in log space) carry the state across chunks
  (L/T steps of ``(B, D, N)`` ops); (3) all chunks rerun the exact recurrence from their true start
  states (T steps again) and read ``y`` out through C. ``2T + L/T`` Python steps instead of L,
  every factor is a decay ``<= 1`` so nothing can overflow (an ``exp(-cumsum(delta A))``
  formulation overflows fp32 once ``|sum delta A| > 88``). Autograd runs through it as is.
  It pays off when the per-step state ``B*D*N`` is small (the loop is Python-overhead bound);
  for large states the sequential loop, whose state stays in cache, is as fast or faster, so
  :func:`default_chunk_size` picks ``T = L`` (sequential) there.

Half-precision inputs are scanned in float32 and the output is cast back.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hsikit.layers.kernels.dispatch import use_fused


CHUNK_STATE_LIMIT = 1 << 15
"""Per-step state size ``B*D*N`` above which :func:`default_chunk_size` scans sequentially."""


def _check(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
           D: torch.Tensor | None, initial_state: torch.Tensor | None) -> tuple[int, int, int, int]:
    if x.dim() != 3:
        raise ValueError(f"selective scan: x must be (B, L, D), got {tuple(x.shape)}")
    b, l, d = x.shape
    if A.dim() != 2 or A.shape[0] != d:
        raise ValueError(f"selective scan: A must be (D={d}, N), got {tuple(A.shape)}")
    n = A.shape[1]
    if delta.shape != x.shape:
        raise ValueError(f"selective scan: delta must be {tuple(x.shape)}, got {tuple(delta.shape)}")
    for name, t in (("B", B), ("C", C)):
        if t.shape != (b, l, n):
            raise ValueError(f"selective scan: {name} must be {(b, l, n)}, got {tuple(t.shape)}")
    if D is not None and D.shape != (d,):
        raise ValueError(f"selective scan: D must be ({d},), got {tuple(D.shape)}")
    if initial_state is not None and initial_state.shape != (b, d, n):
        raise ValueError(f"selective scan: initial_state must be {(b, d, n)}, got {tuple(initial_state.shape)}")
    return b, l, d, n


def _compute_dtype(x: torch.Tensor) -> torch.dtype:
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def selective_scan_reference(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor,
                             C: torch.Tensor, D: torch.Tensor | None = None, *,
                             initial_state: torch.Tensor | None = None, return_state: bool = False):
    """Exact sequential selective scan (one step per token).

    Parameters
    ----------
    x, delta
        ``(B, L, D)`` inputs and positive step sizes (already ``softplus``-ed).
    A
        ``(D, N)`` state matrix diagonal (negative for a stable scan).
    B, C
        ``(B, L, N)`` input and output projections of the state.
    D
        ``(D,)`` skip weights, or None for no skip.
    initial_state
        ``(B, D, N)`` state before the first step (zeros by default).
    return_state
        Also return the state after the last step.

    Returns
    -------
    y : torch.Tensor
        ``(B, L, D)``, in ``x.dtype``.
    h : torch.Tensor
        ``(B, D, N)`` last state (only with ``return_state``).
    """
    b, l, d, n = _check(x, delta, A, B, C, D, initial_state)
    ct = _compute_dtype(x)
    xs, ds, As, Bs, Cs = (t.to(ct) for t in (x, delta, A, B, C))
    h = xs.new_zeros(b, d, n) if initial_state is None else initial_state.to(ct)
    ys = []
    for t in range(l):
        dt = ds[:, t, :, None]                                              # (B, D, 1)
        h = torch.exp(dt * As) * h + dt * Bs[:, t, None, :] * xs[:, t, :, None]
        ys.append((h * Cs[:, t, None, :]).sum(-1))
    y = torch.stack(ys, dim=1) if ys else xs.new_zeros(b, 0, d)
    if D is not None:
        y = y + xs * D.to(ct)
    y = y.to(x.dtype)
    return (y, h) if return_state else y


def default_chunk_size(length: int, state_size: int = 0) -> int:
    """Chunk T of :func:`selective_scan` for a sequence of ``length`` steps and ``state_size = B*D*N``.

    ``ceil(sqrt(L))`` (measured on a 2-core CPU: T = 16-32 is best for L = 224-1024); above
    ``CHUNK_STATE_LIMIT`` state elements per step the work, not the Python overhead, dominates and
    ``L`` (the sequential loop, faster there) is returned.
    """
    if state_size > CHUNK_STATE_LIMIT:
        return max(1, length)
    return max(1, math.ceil(math.sqrt(length)))


def selective_scan(x: torch.Tensor, delta: torch.Tensor, A: torch.Tensor, B: torch.Tensor, C: torch.Tensor,
                   D: torch.Tensor | None = None, *, chunk_size: int | None = None,
                   initial_state: torch.Tensor | None = None, return_state: bool = False):
    """Selective scan, dispatched; same arguments and result as :func:`selective_scan_reference`.

    The fused Triton kernel (:func:`hsikit.layers.kernels.scan_triton.selective_scan_triton`) runs when
    :func:`~hsikit.layers.kernels.dispatch.use_fused` says so (CUDA and Triton, or mode ``fused``);
    otherwise the chunked PyTorch scan described in the module docstring.

    Parameters
    ----------
    chunk_size
        Steps per chunk T of the PyTorch scan (default :func:`default_chunk_size`); ``T >= L`` is
        the sequential loop. The fused kernel ignores it.

    Other parameters and the return value are those of :func:`selective_scan_reference`.
    Memory of the PyTorch scan: the per-step decays and inputs, ``2 (B, L, D, N)`` in all (autograd
    keeps them anyway); the fused kernel keeps the state in registers.
    """
    b, l, d, n = _check(x, delta, A, B, C, D, initial_state)
    if l > 0 and use_fused(x, delta, A, B, C):
        from hsikit.layers.kernels.scan_triton import selective_scan_triton

        return selective_scan_triton(x, delta, A, B, C, D, initial_state=initial_state, return_state=return_state)
    ct = _compute_dtype(x)
    xs, ds, As, Bs, Cs = (t.to(ct) for t in (x, delta, A, B, C))
    h0 = xs.new_zeros(b, d, n) if initial_state is None else initial_state.to(ct)
    if l == 0:
        y = xs.new_zeros(b, 0, d).to(x.dtype)
        return (y, h0) if return_state else y
    if chunk_size is not None and chunk_size < 1:
        raise ValueError(f"selective scan: chunk_size must be >= 1, got {chunk_size}")
    T = min(chunk_size or default_chunk_size(l, b * d * n), l)
    if T == l:  # one chunk: the plain sequential loop
        return selective_scan_reference(x, delta, A, B, C, D, initial_state=initial_state, return_state=return_state)
    nc = -(-l // T)
    pad = nc * T - l
    if pad:  # delta = 0 -> decay 1 and input 0: padded steps leave the state unchanged
        xs, ds = F.pad(xs, (0, 0, 0, pad)), F.pad(ds, (0, 0, 0, pad))
        Bs, Cs = F.pad(Bs, (0, 0, 0, pad)), F.pad(Cs, (0, 0, 0, pad))
    dsc = ds.view(b, nc, T, d)
    dx = (ds * xs).view(b, nc, T, d, 1)
    Bc, Cc = Bs.view(b, nc, T, 1, n), Cs.view(b, nc, T, 1, n)

    decays = [torch.exp(dsc[:, :, t, :, None] * As) for t in range(T)]     # (B, nc, D, N) each
    inputs = [dx[:, :, t] * Bc[:, :, t] for t in range(T)]
    # (1) local recurrences of all chunks at once, from a zero state: the chunk-end states
    hl = torch.zeros_like(inputs[0])
    for t in range(T):
        hl = decays[t] * hl + inputs[t]
    # (2) carry the state across chunks with the whole-chunk decays exp(sum_t delta_t A)
    chunk_decay = torch.exp(dsc.sum(2)[..., None] * As)                      # (B, nc, D, N)
    starts = [h0]
    for c in range(nc - 1):
        starts.append(chunk_decay[:, c] * starts[-1] + hl[:, c])
    h = torch.stack(starts, dim=1)
    # (3) the exact recurrence in all chunks at once, from the true chunk-start states
    ys = []
    for t in range(T):
        h = decays[t] * h + inputs[t]
        ys.append((h * Cc[:, :, t]).sum(-1))                                # (B, nc, D)
    y = torch.stack(ys, dim=2)                                               # (B, nc, T, D)
    h_last = h[:, -1]
    y = y.reshape(b, nc * T, d)[:, :l]
    if D is not None:
        y = y + xs[:, :l] * D.to(ct)
    y = y.to(x.dtype)
    return (y, h_last) if return_state else y


class MambaBlock(nn.Module):
    """Mamba mixer: in-proj, causal depthwise conv, SiLU, selective scan, SiLU gate, out-proj.

    ``forward(x)``: ``(B, L, d_model) -> (B, L, d_model)``. No norm and no residual inside: wrap it as
    ``x + block(norm(x))`` (as Mamba's ``Block`` does). Sub-module names follow ``mamba_ssm``'s
    ``Mamba`` (``in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj``).

    Parameters
    ----------
    d_model
        Token size (e.g. 64 for MorpMamba tokens, or the band count for spectral tokens).
    d_state
        State size N per channel (16).
    d_conv
        Width of the causal depthwise conv over the sequence (4).
    expand
        ``d_inner = expand * d_model`` channels are scanned (2).
    dt_rank
        Rank of the delta projection; ``"auto"`` = ``ceil(d_model / 16)``.
    dt_min, dt_max, dt_init_floor
        ``softplus(dt_proj.bias)`` starts log-uniform in ``[dt_min, dt_max]``, floored.
    bias
        Bias of in_proj and out_proj.
    conv_bias
        Bias of the depthwise conv.
    chunk_size
        Chunk of :func:`selective_scan` (None: ``ceil(sqrt(L))``).
    """

    def __init__(self, d_model: int, d_state: int = 16, d_conv: int = 4, expand: int = 2,
                 dt_rank: int | str = "auto", dt_min: float = 1e-3, dt_max: float = 0.1,
                 dt_init_floor: float = 1e-4, bias: bool = False, conv_bias: bool = True,
                 chunk_size: int | None = None) -> None:
        super().__init__()
        self.d_model, self.d_state, self.d_conv = d_model, d_state, d_conv
        self.d_inner = int(expand * d_model)
        self.dt_rank = math.ceil(d_model / 16) if dt_rank == "auto" else int(dt_rank)
        self.chunk_size = chunk_size
        self.in_proj = nn.Linear(d_model, 2 * self.d_inner, bias=bias)
        self.conv1d = nn.Conv1d(self.d_inner, self.d_inner, d_conv, groups=self.d_inner,
                                padding=d_conv - 1, bias=conv_bias)
        self.x_proj = nn.Linear(self.d_inner, self.dt_rank + 2 * d_state, bias=False)
        self.dt_proj = nn.Linear(self.dt_rank, self.d_inner, bias=True)
        self.out_proj = nn.Linear(self.d_inner, d_model, bias=bias)
        # S4D-real init of A = -[1..N] and the delta bias (Mamba's defaults)
        a = torch.arange(1, d_state + 1, dtype=torch.float32).repeat(self.d_inner, 1)
        self.A_log = nn.Parameter(torch.log(a))
        self.D = nn.Parameter(torch.ones(self.d_inner))
        std = self.dt_rank ** -0.5
        nn.init.uniform_(self.dt_proj.weight, -std, std)
        dt = torch.exp(torch.rand(self.d_inner) * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
        dt = dt.clamp(min=dt_init_floor)
        with torch.no_grad():
            self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))       # softplus^-1(dt)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.d_model:
            raise ValueError(f"MambaBlock(d_model={self.d_model}) expects (B, L, {self.d_model}), got {tuple(x.shape)}")
        l = x.shape[1]
        xi, z = self.in_proj(x).chunk(2, dim=-1)                             # (B, L, d_inner) each
        xi = F.silu(self.conv1d(xi.transpose(1, 2))[..., :l].transpose(1, 2))
        dt, Bm, Cm = self.x_proj(xi).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = F.softplus(self.dt_proj(dt))
        y = selective_scan(xi, delta, -torch.exp(self.A_log.float()), Bm, Cm, self.D.float(),
                           chunk_size=self.chunk_size)
        return self.out_proj(y * F.silu(z))

    def extra_repr(self) -> str:
        return (f"d_model={self.d_model}, d_inner={self.d_inner}, d_state={self.d_state}, "
                f"d_conv={self.d_conv}, dt_rank={self.dt_rank}")


class LinearRecurrence(nn.Module):
    """The plain (non-selective) recurrence of the MorpMamba notebook (``models.md`` §4.2 step 4).

    ``h_0 = 0; h_t = W_A h_{t-1} + b_A + W_B x_t + b_B``: no discretisation, no input-dependent
    parameters, no output matrix, no nonlinearity. ``forward(x)``: ``(B, L, d_in)`` -> the last state
    ``(B, d_state)``, or every state ``(B, L, d_state)`` with ``return_sequence=True``.

    Parameters
    ----------
    d_in
        Token size (64 in the notebook).
    d_state
        State size (128 in the notebook).
    """

    def __init__(self, d_in: int, d_state: int) -> None:
        super().__init__()
        self.state_proj = nn.Linear(d_state, d_state)                        # W_A, b_A
        self.input_proj = nn.Linear(d_in, d_state)                           # W_B, b_B

    def forward(self, x: torch.Tensor, return_sequence: bool = False) -> torch.Tensor:
        u = self.input_proj(x)                                               # (B, L, d_state), all steps at once
        h = u.new_zeros(u.shape[0], u.shape[-1])
        hs = []
        for t in range(u.shape[1]):
            h = self.state_proj(h) + u[:, t]
            hs.append(h)
        return torch.stack(hs, dim=1) if return_sequence else h
