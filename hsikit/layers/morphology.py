"""Learnable grey-scale morphology: depthwise erosion and dilation with a structuring function.

For a feature map ``x`` of shape ``(B, C, H, W)`` and one structuring function ``s_c`` of shape
``(kh, kw)`` per channel (centre ``(kh // 2, kw // 2)``), as in ``scipy.ndimage``:

    dilation:  (x (+) s)(i) = max_p  x(i - p + centre) + s(p)
    erosion:   (x (-) s)(i) = min_p  x(i + p - centre) - s(p)

Pixels outside the map never take part (padding with -inf / +inf), so a flat (all-zero) ``s`` is the
plain max / min filter and the results equal ``scipy.ndimage.grey_dilation`` / ``grey_erosion`` with
``structure=s, mode="constant", cval=-inf / +inf``. Dilation is >= the input where ``s`` at the centre
is >= 0, erosion <= the input.

Two forms, chosen by ``beta``:

- ``beta=None`` (default): the **exact** max / min. Autograd gives a subgradient: the whole gradient
  goes to the winning offset (ties split it between the tied offsets), so ``s`` learns through the
  offsets that win.
- ``beta > 0``: the **soft** form ``(1/beta) log sum_p exp(beta (x(i - p + centre) + s(p)))`` (soft
  erosion likewise with ``-beta``), smooth everywhere, every offset gets gradient; it over-estimates
  the max by at most ``log(kh kw) / beta``. It stacks the ``kh kw`` shifted maps (memory ``kh kw``
  times the input); the exact form keeps a running max (memory of one map).

These are true min/max morphology, the ``faithful=False`` option of MorpMamba (``models.md`` §4.4);
the notebook's "erosion/dilation" are linear box filters (plain depthwise convolutions).
For spectral morphology put the bands on an image axis and use a ``(k, 1)`` kernel.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def _pair(k: int | tuple[int, int]) -> tuple[int, int]:
    return (k, k) if isinstance(k, int) else (int(k[0]), int(k[1]))


def _morph(x: torch.Tensor, structure: torch.Tensor, beta: float | None, dilate: bool) -> torch.Tensor:
    if x.dim() != 4:
        raise ValueError(f"morphology expects (B, C, H, W), got {tuple(x.shape)}")
    if structure.dim() != 3 or structure.shape[0] != x.shape[1]:
        raise ValueError(f"structure must be (C={x.shape[1]}, kh, kw), got {tuple(structure.shape)}")
    if beta is not None and not beta > 0:
        raise ValueError(f"beta must be > 0 or None, got {beta}")
    kh, kw = structure.shape[1:]
    ch, cw = kh // 2, kw // 2
    h, w = x.shape[-2:]
    s = structure.to(x.dtype)
    # dilation reads x(i - p + centre), erosion x(i + p - centre); padding never wins the max / min
    sign = 1.0 if dilate else -1.0
    xs = x * sign                                         # erosion = -dilation of -x with a mirrored index
    if dilate:
        pad = (kw - 1 - cw, cw, kh - 1 - ch, ch)
    else:
        pad = (cw, kw - 1 - cw, ch, kh - 1 - ch)
    xp = F.pad(xs, pad, value=float("-inf"))
    terms = []
    out = None
    for p in range(kh):
        for q in range(kw):
            r0, c0 = (kh - 1 - p, kw - 1 - q) if dilate else (p, q)
            t = xp[..., r0:r0 + h, c0:c0 + w] + s[:, p, q].view(1, -1, 1, 1)
            if beta is None:
                out = t if out is None else torch.maximum(out, t)
            else:
                terms.append(t)
    if beta is not None:
        out = torch.logsumexp(torch.stack(terms, dim=0) * beta, dim=0) / beta
    return out * sign


def dilation2d(x: torch.Tensor, structure: torch.Tensor, beta: float | None = None) -> torch.Tensor:
    """Depthwise grey-scale dilation.

    Parameters
    ----------
    x
        ``(B, C, H, W)``.
    structure
        ``(C, kh, kw)`` structuring function (additive; zeros = flat max filter).
    beta
        None for the exact max, else the temperature of the soft max.

    Returns
    -------
    torch.Tensor
        ``(B, C, H, W)``.
    """
    return _morph(x, structure, beta, dilate=True)


def erosion2d(x: torch.Tensor, structure: torch.Tensor, beta: float | None = None) -> torch.Tensor:
    """Depthwise grey-scale erosion; arguments as :func:`dilation2d` (min instead of max)."""
    return _morph(x, structure, beta, dilate=False)


class _Morph2d(nn.Module):
    _dilate: bool

    def __init__(self, channels: int, kernel_size: int | tuple[int, int] = 3, beta: float | None = None) -> None:
        super().__init__()
        self.channels, self.kernel_size, self.beta = channels, _pair(kernel_size), beta
        self.structure = nn.Parameter(torch.zeros(channels, *self.kernel_size))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _morph(x, self.structure, self.beta, dilate=self._dilate)

    def extra_repr(self) -> str:
        return f"{self.channels}, kernel_size={self.kernel_size}, beta={self.beta}"


class Dilation2d(_Morph2d):
    """Learnable depthwise dilation: ``(B, C, H, W) -> (B, C, H, W)``.

    Parameters
    ----------
    channels
        C; one structuring function per channel (``self.structure``, ``(C, kh, kw)``, zeros at init:
        a flat max filter).
    kernel_size
        Window ``k`` or ``(kh, kw)`` (odd sizes are centred; even ones put the centre at ``k // 2``).
    beta
        None: exact max (subgradients); a float: soft max with that temperature.
    """

    _dilate = True


class Erosion2d(_Morph2d):
    """Learnable depthwise erosion; parameters as :class:`Dilation2d` (a flat min filter at init)."""

    _dilate = False
