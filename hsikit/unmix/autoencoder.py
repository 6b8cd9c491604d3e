"""A blind unmixing autoencoder trained on one scene (no pretrained weights, no labels).

The encoder maps the cube ``(L, H, W)`` to abundance maps ``(K, H, W)``: a per-pixel projection
(1x1 convolution, ``L -> width``), a 3x3 convolution for spatial context, a 1x1 convolution to ``K``
channels and a softmax (non-negativity and sum-to-one). The decoder is the linear mixing model
itself, ``x = E a``: its ``(L, K)`` weight matrix *is* the endmember matrix, initialised from RRLbS
(or VCA) and kept positive by storing its logarithm. The loss is the mean spectral angle between each pixel
and its reconstruction (insensitive to illumination scaling, as in CNNAEU) plus ``mse_weight`` times
the mean squared error. Training is full-image Adam; the endmembers and abundances are read off the
trained decoder and encoder.

Everything random (weight init, dropout) comes from ``seed`` through a local generator state, so a
seed reproduces a run on the same device and thread count.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from hsikit.errors import UsageError
from hsikit.unmix.abundances import as_tensor
from hsikit.unmix.endmembers import check_k, vca


@dataclass
class AutoencoderResult:
    """Result of :func:`autoencoder_unmix`.

    Attributes
    ----------
    endmembers
        ``(L, K)`` in data units.
    abundances
        ``(K, H, W)`` on the simplex.
    loss
        Training loss per step.
    seconds
        Training wall time.
    """

    endmembers: torch.Tensor
    abundances: torch.Tensor
    loss: list[float]
    seconds: float


class UnmixingAE(nn.Module):
    """Convolutional encoder + linear-mixing decoder (see the module docstring).

    Parameters
    ----------
    bands, k
        Input bands ``L`` and endmembers ``K``.
    width
        Channels of the hidden layers.
    softmax_scale
        Multiplies the logits before the softmax (higher: sparser abundances).
    dropout
        Dropout on the hidden features during training.
    """

    def __init__(self, bands: int, k: int, *, width: int = 64, softmax_scale: float = 1.0, dropout: float = 0.1) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Conv2d(bands, width, 1),
            nn.BatchNorm2d(width),
            nn.LeakyReLU(0.1),
            nn.Dropout2d(dropout),
            nn.Conv2d(width, width // 2, 3, padding=1, padding_mode="reflect"),
            nn.BatchNorm2d(width // 2),
            nn.LeakyReLU(0.1),
            nn.Conv2d(width // 2, k, 1),
        )
        self.softmax_scale = softmax_scale
        #: log of the endmember matrix (L, K): positive endmembers, and Adam's steps are relative
        #: changes, so a dark endmember (water) moves as carefully as a bright one
        self.log_endmembers = nn.Parameter(torch.zeros(bands, k))

    @property
    def endmembers(self) -> torch.Tensor:
        """``(L, K)`` decoder matrix ``exp(log_endmembers)``."""
        return torch.exp(self.log_endmembers)

    def decoder(self, a: torch.Tensor) -> torch.Tensor:
        """Linear mixing ``(B, K, H, W) -> (B, L, H, W)``."""
        return torch.einsum("lk,bkhw->blhw", self.endmembers, a)

    def abundances(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, L, H, W) -> (B, K, H, W)`` softmax abundances."""
        return torch.softmax(self.softmax_scale * self.encoder(x), dim=1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        a = self.abundances(x)
        return self.decoder(a), a


def _sad_loss(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    cos = (x * y).sum(1) / (torch.linalg.norm(x, dim=1) * torch.linalg.norm(y, dim=1)).clamp_min(1e-12)
    return torch.arccos(cos.clamp(-1 + 1e-7, 1 - 1e-7)).mean()


def autoencoder_unmix(
    cube: Any,
    k: int,
    *,
    seed: int | None = 0,
    epochs: int = 300,
    lr: float = 5e-3,
    lr_endmembers: float = 3e-4,
    width: int = 64,
    softmax_scale: float = 1.0,
    mse_weight: float = 0.0,
    init: Any = "rrlbs",
    device: Any = None,
) -> AutoencoderResult:
    """Train the unmixing autoencoder on one cube and return its endmembers and abundances.

    Parameters
    ----------
    cube
        ``(L, H, W)`` non-negative data (NaN-free; the caller fills nodata).
    k
        Number of endmembers.
    seed
        Seed of the VCA initialisation, the weights and dropout.
    epochs
        Full-image Adam steps.
    lr, lr_endmembers
        Learning rates of the encoder and of the log-endmembers (so ``lr_endmembers`` is about the
        relative change of an endmember value per step).
    width, softmax_scale
        See :class:`UnmixingAE`.
    mse_weight
        Weight of the mean squared reconstruction error next to the spectral-angle loss.
    init
        Initial endmembers: ``"rrlbs"`` (default: :func:`hsikit.unmix.robust_l21.rrlbs` with ``seed``,
        a few seconds on a 100 x 100 scene), ``"vca"`` (VCA with ``seed``) or an ``(L, K)`` array.
    device
        Torch device (default: the cube's, i.e. CPU for numpy input).

    Returns
    -------
    AutoencoderResult
    """
    x = as_tensor(cube, torch.float32, device)
    if x.ndim != 3:
        raise UsageError(f"the autoencoder needs a (bands, y, x) cube, got shape {tuple(x.shape)}")
    if not bool(torch.isfinite(x).all()):
        raise UsageError("the cube contains NaN or infinite values; fill nodata first")
    L, H, W = x.shape
    Y = x.reshape(L, -1)
    check_k(Y, k)
    scale = float(Y.abs().max()) or 1.0
    xs = (x / scale)[None]
    if isinstance(init, str):
        if init == "vca":
            E0 = vca(Y.double(), k, seed=seed).endmembers
        elif init == "rrlbs":
            from hsikit.unmix.robust_l21 import rrlbs

            E0 = rrlbs(Y.double(), k, shape=(H, W), seed=seed).endmembers
        else:
            raise UsageError(f"autoencoder init must be 'rrlbs', 'vca' or an (L, K) array, got {init!r}")
    else:
        E0 = as_tensor(init)
    if tuple(E0.shape) != (L, k):
        raise UsageError(f"init endmembers must be ({L}, {k}), got {tuple(E0.shape)}")
    t0 = time.perf_counter()
    devices = [x.device.index or 0] if x.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0 if seed is None else int(seed))
        model = UnmixingAE(L, k, width=width, softmax_scale=softmax_scale).to(x.device)
        with torch.no_grad():
            e0 = (E0.float().to(x.device) / scale).clamp_min(1e-6)
            model.log_endmembers.copy_(torch.log(e0))
        opt = torch.optim.Adam([
            {"params": model.encoder.parameters(), "lr": lr},
            {"params": [model.log_endmembers], "lr": lr_endmembers},
        ])
        losses: list[float] = []
        model.train()
        for _ in range(epochs):
            opt.zero_grad(set_to_none=True)
            rec, _ = model(xs)
            loss = _sad_loss(rec, xs)
            if mse_weight:
                loss = loss + mse_weight * ((rec - xs) ** 2).mean()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        model.eval()
        with torch.no_grad():
            A = model.abundances(xs)[0].double()
            E = model.endmembers.detach().double() * scale
    return AutoencoderResult(E, A, losses, time.perf_counter() - t0)


