"""ESSA: the SCC-kernel linear attention of ESSAformer (Zhang et al., ICCV 2023).

The computation is the one of the released code (``Rexzhan/ESSAformer``, ``ESSA.py``, class
``ESSAttn``), step by step (``../shared/docs/models.md`` §3.2). Tokens are pixels: ``x`` is
``(B, N, C)`` with ``N = H * W`` of the current feature map and ``C`` the embedding size; one head.

1. ``[Q K V] = x W_qkv + b_qkv`` (Linear C -> 3C).
2. Centre Q and K over channels, per token: ``Q~ = Q - mean_c Q``.
3. Squared, sum-normalised maps: ``A_q = Q~^2 / (sum_c Q~^2 + 1e-7)``, ``A_k`` likewise.
4. ``phi_Q`` = L2-normalise each **row** of ``A_q`` (over channels); ``phi_K`` = L2-normalise each
   **column** of ``A_k`` (over the N tokens, a global reduction), both with ``max(norm, 1e-12)``.
5. ``T = phi_Q (phi_K^T V) / sqrt(N)`` (reassociated: O(N C^2) time, O(C^2) extra memory).
6. ``out = (V + T) W_o + b_o`` (Linear C -> C).

Because phi_K is normalised over all tokens and T is divided by sqrt(N), the output depends on the
spatial extent processed: run inference on windows of the training patch size.

Steps 2-5 plus the ``V +`` term are :func:`essa_attention` (fused Triton kernel on CUDA through
:mod:`hsikit.layers.kernels.dispatch`, :func:`essa_attention_reference` elsewhere); the two
linear layers stay in PyTorch (cuBLAS / MKL GEMMs).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from hsikit.layers.kernels.dispatch import use_fused

SUM_EPS = 1e-7
"""Added to ``sum_c Q~^2`` before the sum normalisation (step 3), as in the released code."""
NORM_EPS = 1e-12
"""Floor of the L2 norms of step 4 (the ``F.normalize`` default)."""


def _squared_maps(t: torch.Tensor) -> torch.Tensor:
    """Steps 2-3: ``(t - mean_c t)^2 / (sum_c (t - mean_c t)^2 + 1e-7)``, over the last axis."""
    t = t - t.mean(dim=-1, keepdim=True)
    t2 = t * t
    return t2 / (t2.sum(dim=-1, keepdim=True) + SUM_EPS)


def essa_feature_maps(q: torch.Tensor, k: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The two feature maps ``phi_Q`` (row-normalised) and ``phi_K`` (column-normalised).

    Parameters
    ----------
    q, k
        ``(B, N, C)`` queries and keys.

    Returns
    -------
    phi_q, phi_k
        ``(B, N, C)`` each, non-negative.
    """
    phi_q = F.normalize(_squared_maps(q), dim=-1, eps=NORM_EPS)
    phi_k = F.normalize(_squared_maps(k), dim=-2, eps=NORM_EPS)
    return phi_q, phi_k


def essa_attention_reference(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """PyTorch reference of the attention core: ``V + phi_Q (phi_K^T V) / sqrt(N)``.

    Parameters
    ----------
    q, k, v
        ``(B, N, C)`` queries, keys and values (any float dtype; computed in that dtype).

    Returns
    -------
    torch.Tensor
        ``(B, N, C)``, the input of the output projection.
    """
    n = q.shape[-2]
    phi_q, phi_k = essa_feature_maps(q, k)
    return v + phi_q @ (phi_k.transpose(-2, -1) @ v) / math.sqrt(n)


def essa_attention_quadratic(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """The same value through the explicit ``(N, N)`` matrix ``(phi_Q phi_K^T) V``: O(N^2 C).

    Only an oracle for the reassociation and a baseline for the benchmark; never use it in a model.
    """
    n = q.shape[-2]
    phi_q, phi_k = essa_feature_maps(q, k)
    return v + (phi_q @ phi_k.transpose(-2, -1)) @ v / math.sqrt(n)


def essa_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """ESSA attention core (steps 2-5 and the ``V +`` term), dispatched.

    The fused Triton kernel (:func:`hsikit.layers.kernels.essa_triton.essa_attention_triton`) runs
    when :func:`~hsikit.layers.kernels.dispatch.use_fused` says so (CUDA tensors and Triton, or mode
    ``fused``); otherwise :func:`essa_attention_reference`. Same signature, shapes and autograd.

    Parameters
    ----------
    q, k, v
        ``(B, N, C)``; the last axis must have stride 1 for the fused path (views of one
        ``(B, N, 3C)`` projection, as :class:`ESSAttention` passes them, are fine).

    Returns
    -------
    torch.Tensor
        ``(B, N, C)``.
    """
    if q.shape != k.shape or q.shape != v.shape or q.dim() != 3:
        raise ValueError(f"essa_attention: q, k, v must share one (B, N, C) shape, got {tuple(q.shape)}, "
                         f"{tuple(k.shape)}, {tuple(v.shape)}")
    if use_fused(q, k, v):
        from hsikit.layers.kernels.essa_triton import essa_attention_triton

        return essa_attention_triton(q, k, v)
    return essa_attention_reference(q, k, v)


class ESSAttention(nn.Module):
    """ESSA attention layer on pixel tokens (``ESSAttn`` of the released ESSAformer code).

    Parameters
    ----------
    dim
        Embedding size C (256 in ESSAformer). Any size works; no head split.

    Notes
    -----
    Sub-module names follow the released code (``lnqkv``: Linear C -> 3C with bias; ``ln``: Linear
    C -> C with bias) so its checkpoints load with ``load_state_dict``. No LayerNorm, dropout or
    residual here: the ESSAformer Convup/Convdown block adds those (§3.3).

    Shapes: ``forward(x)`` takes ``(B, N, C)`` and returns ``(B, N, C)``; :meth:`forward_image` takes
    a feature map ``(B, C, H, W)`` and returns ``(B, C, H, W)`` (tokens = the H*W pixels).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.lnqkv = nn.Linear(dim, 3 * dim)
        self.ln = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 3 or x.shape[-1] != self.dim:
            raise ValueError(f"ESSAttention(dim={self.dim}) expects (B, N, {self.dim}) tokens, got {tuple(x.shape)}")
        q, k, v = self.lnqkv(x).split(self.dim, dim=-1)
        return self.ln(essa_attention(q, k, v))

    def forward_image(self, x: torch.Tensor) -> torch.Tensor:
        b, c, h, w = x.shape
        t = self.forward(x.flatten(2).transpose(1, 2))
        return t.transpose(1, 2).reshape(b, c, h, w)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"
