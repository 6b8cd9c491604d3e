"""ESSAformer on a scene's principal eigen-images: learned super-resolution for any band count.

ESSAformer (:mod:`hsikit.superres.essaformer`) maps a fixed number of bands. Scenes come with 31
(CAVE) to 224 (EnMAP) bands, so :class:`SubspaceESSAformer` runs it on the ``k`` principal
eigen-images of the scene instead, and refines only the signal subspace:

1. ``base = bicubic(lr)``: every band upsampled by cubic convolution (:func:`hsikit.data.resample.upsample`,
   aligned grids), the result of the ``bicubic`` method;
2. ``z = E^T (lr - mu) / s``: the LR scene on its ``k`` principal components ``E`` (L, k), from a pixel
   sample of the scene (:func:`principal_basis`), in units of the scene's value scale ``s``;
3. ``z_hr = ESSAformer(z, base = E^T (base - mu) / s)``: the network predicts a correction of the
   upsampled eigen-images (its last conv starts at zero, so the untrained model is exactly bicubic);
4. ``sr = base + s E (z_hr - E^T (base - mu) / s)``: the correction goes back to bands; the part of
   each spectrum outside the subspace stays bicubic.

The cost follows ``k``, not the band count. Shapes: lr ``(B, L, h, w)`` -> ``(B, L, r h, r w)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from hsikit.data.resample import upsample
from hsikit.errors import UsageError
from hsikit.superres.essaformer import ESSAformer
from hsikit.zoo import register_model

#: Width of the released subspace model (divisible by 9 for x3 and by 4 for 2^n scales).
DIM = 36
#: Quantile of |values| taken as a scene's value scale (the model's input unit, in training and inference).
VALUE_QUANTILE = 0.999


def value_scale(x: Any) -> float:
    """A scene's value scale: the :data:`VALUE_QUANTILE` quantile of ``|x|`` (1 when that is 0)."""
    v = float(np.quantile(np.abs(np.asarray(x, np.float64)), VALUE_QUANTILE))
    return v if v > 0 else 1.0


def principal_basis(sample: Any, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean ``(L,)`` and the ``k`` leading principal directions ``(L, k)`` of a ``(L, N)`` pixel sample.

    Directions are the leading eigenvectors of the centred sample's scatter matrix (float64; the left
    singular vectors of the centred sample), each with the sign that makes its largest entry positive,
    so the same scene always gives the same basis.
    """
    x = torch.as_tensor(sample, dtype=torch.float64)
    if x.dim() != 2:
        raise UsageError(f"the sample must be (bands, pixels), got shape {tuple(x.shape)}")
    L, n = x.shape
    k = int(min(k, L, max(n - 1, 1)))
    mu = x.mean(dim=1)
    xc = x - mu[:, None]
    _, vecs = torch.linalg.eigh(xc @ xc.T)  # the (L, L) scatter: L^2 N, not the SVD's L N min(L, N)
    e = vecs[:, -k:].flip(1)
    sign = torch.sign(e.gather(0, e.abs().argmax(dim=0, keepdim=True)))
    return mu, e * torch.where(sign == 0, torch.ones_like(sign), sign)


class SubspaceESSAformer(nn.Module):
    """ESSAformer on ``k`` eigen-images, residual to bicubic (see the module docstring).

    Parameters
    ----------
    k
        Eigen-images the network refines (fewer when the scene has fewer bands).
    scale
        Upsampling factor (2, 3, 4, 8).
    dim
        ESSAformer width.
    dropout
        Dropout2d probability of the ESSAformer blocks (training only).
    window
        LR window edge the model was trained on (ESSA normalises its keys over the window it sees);
        :func:`hsikit.superres.api.super_resolve` sizes its tiles from it.
    """

    def __init__(self, k: int = 8, scale: int = 3, dim: int = DIM, dropout: float = 0.0, window: int = 16) -> None:
        super().__init__()
        self.k, self.scale, self.window = int(k), int(scale), int(window)
        self.net = ESSAformer(self.k, scale=self.scale, dim=int(dim), dropout=float(dropout), residual=True)

    def _fit_k(self, z: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Pad eigen-images (B, k', h, w) with zeros up to the network's k (a scene with fewer bands)."""
        kk = z.shape[1]
        if kk > self.k:
            raise UsageError(f"{kk} eigen-images for a network of {self.k}")
        if kk < self.k:
            z = torch.cat([z, z.new_zeros(z.shape[0], self.k - kk, *z.shape[2:])], dim=1)
        return z, kk

    def forward(self, lr: torch.Tensor, mean: torch.Tensor, basis: torch.Tensor, value_scale: float,
                base: torch.Tensor | None = None) -> torch.Tensor:
        """Super-resolve ``lr`` (B, L, h, w) -> (B, L, scale h, scale w).

        ``mean`` (L,) and ``basis`` (L, k) come from :func:`principal_basis` on the scene; ``value_scale``
        is the scene's value scale (physical units); ``base``, if given, is ``upsample(lr, scale)``
        already computed by the caller.
        """
        if lr.dim() != 4:
            raise UsageError(f"expected lr of shape (B, bands, h, w), got {tuple(lr.shape)}")
        if basis.shape[0] != lr.shape[1] or mean.shape[0] != lr.shape[1]:
            raise UsageError(f"basis {tuple(basis.shape)} / mean {tuple(mean.shape)} do not fit {lr.shape[1]} bands")
        e = basis.to(lr)
        mu = mean.to(lr)[None, :, None, None]
        base = upsample(lr, self.scale) if base is None else base
        z = torch.einsum("lk,blhw->bkhw", e, lr - mu) / value_scale
        zb = torch.einsum("lk,blhw->bkhw", e, base - mu) / value_scale
        z, kk = self._fit_k(z)
        zb_full, _ = self._fit_k(zb)
        zr = self.net(z, base=zb_full)[:, :kk]
        return base + value_scale * torch.einsum("lk,bkhw->blhw", e, zr - zb)


@register_model("essaformer-sub-x3", task="superres", description="ESSAformer on 8 eigen-images, x3, any band count",
                k=8, scale=3, dim=DIM)
def essaformer_sub_x3(**config: Any) -> SubspaceESSAformer:
    return SubspaceESSAformer(**config)
