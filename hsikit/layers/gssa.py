"""GSSA: HSDT's guided spectral self-attention, made band-count agnostic.

Attention runs across bands and is shared by all pixels (``../shared/docs/models.md`` section 2.4).
For x in R^{B x C x D x H x W} (D = bands):

1. pooled band descriptors ``p[b, d] = mean_{h,w} x[b, :, d, h, w]`` (D x C per sample);
2. logits ``L[d, j] = <p_d, p_j>`` (the *self* branch) or ``L[d, j] = <p_d, g_j> + beta_j`` (the
   *guided* branch); no 1/sqrt(C) scaling, one head;
3. ``A = softmax_j(L)``;
4. ``y[:, d] = W_o (sum_j A[d, j] W_v x[:, j]) + x[:, d]`` per pixel (W_v, W_o: C x C, no bias).

In HSDT the guide (g_j, beta_j) is the weight and bias of a ``Linear(C, 31)``: a fixed 31-band table.
Here it comes from a learned *wavelength embedding* (:class:`WavelengthEmbedding`): a fixed Fourier
feature map of each band's normalised wavelength followed by a learned linear map to (g_j, beta_j).
With the default 31 features it has exactly HSDT's ``31*C + 31`` parameters, so the HSDT-S/M/L
parameter counts are unchanged, but any band count (and any band set, e.g. after bad-band removal)
works. Without wavelengths the normalised band position ``j / (D - 1)`` is used.

Cost per layer: pooling O(B C D H W), logits O(B D^2 C), mixing O(B H W D (D + C) C): linear in pixels.
"""

from __future__ import annotations

import math
from typing import Literal

import torch
from torch import nn

from hsikit.errors import UsageError

__all__ = ["GSSA", "BandTable", "WavelengthEmbedding", "band_coordinates"]

Branch = Literal["guided", "self"]


def band_coordinates(
    num_bands: int,
    wavelengths: torch.Tensor | None = None,
    wavelength_range: tuple[float, float] = (400.0, 2500.0),
    *,
    device: torch.device | None = None,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Normalised band coordinates t in about [0, 1], the input of the wavelength embedding.

    Parameters
    ----------
    num_bands
        D.
    wavelengths
        Band centres [nm], (D,) or (B, D); ``None`` uses the band position ``j / (D - 1)``
        (0.5 for a single band).
    wavelength_range
        (lo, hi) [nm] mapped to t = 0 and t = 1: ``t = (wavelength - lo) / (hi - lo)``.

    Returns
    -------
    torch.Tensor
        (D,) or (B, D).
    """
    if wavelengths is None:
        if num_bands == 1:
            return torch.full((1,), 0.5, device=device, dtype=dtype)
        return torch.linspace(0.0, 1.0, num_bands, device=device, dtype=dtype)
    wl = torch.as_tensor(wavelengths, device=device, dtype=dtype)
    if wl.shape[-1] != num_bands or wl.dim() not in (1, 2):
        raise UsageError(f"wavelengths must be (bands,) or (batch, bands) with {num_bands} bands, got {tuple(wl.shape)}")
    if not torch.isfinite(wl).all():
        raise UsageError("wavelengths contain NaN or inf")
    lo, hi = wavelength_range
    return (wl - lo) / (hi - lo)


class WavelengthEmbedding(nn.Module):
    """Guide vectors from band wavelengths: t -> Fourier features -> (g, beta).

    Features of a coordinate t (see :func:`band_coordinates`): ``1``, then pairs
    ``sin(2 pi f_i t), cos(2 pi f_i t)`` with frequencies f_i geometric from 0.5 to
    ``max_frequency`` cycles per unit t, truncated to ``num_features``. A learned
    ``Linear(num_features, channels + 1, bias=False)`` maps them to the guide query g (C) and its
    logit bias beta (1).

    Parameters
    ----------
    channels
        C.
    num_features
        Fourier features (default 31: the parameter count of HSDT's 31-band guide layer).
    wavelength_range
        (lo, hi) [nm] mapped to t in [0, 1] (default 400-2500 nm, VNIR-SWIR).
    max_frequency
        Highest frequency in cycles per ``wavelength_range`` (default 64: a ~33 nm period over
        400-2500 nm, finer than 10 nm-spaced bands need to be told apart at the embedding's resolution).
    """

    def __init__(
        self,
        channels: int,
        num_features: int = 31,
        wavelength_range: tuple[float, float] = (400.0, 2500.0),
        max_frequency: float = 64.0,
    ) -> None:
        super().__init__()
        if num_features < 1:
            raise UsageError(f"num_features must be >= 1, got {num_features}")
        lo, hi = wavelength_range
        if not hi > lo:
            raise UsageError(f"wavelength_range must be (lo, hi) with hi > lo, got {wavelength_range}")
        self.channels, self.num_features = channels, num_features
        self.wavelength_range = (float(lo), float(hi))
        n_pairs = num_features // 2
        freqs = torch.logspace(math.log10(0.5), math.log10(max_frequency), n_pairs) if n_pairs > 1 else torch.full((n_pairs,), 0.5)
        self.register_buffer("frequencies", freqs, persistent=False)
        self.linear = nn.Linear(num_features, channels + 1, bias=False)

    def features(self, t: torch.Tensor) -> torch.Tensor:
        """(..., D) coordinates -> (..., D, num_features) features."""
        ang = 2 * math.pi * t[..., None] * self.frequencies.to(t)
        pairs = torch.stack([torch.sin(ang), torch.cos(ang)], dim=-1).flatten(-2)
        feats = torch.cat([torch.ones_like(t)[..., None], pairs], dim=-1)
        return feats[..., : self.num_features]

    def forward(self, num_bands: int, wavelengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Guides for D bands: g (..., D, C) and beta (..., D); ``...`` is the batch of ``wavelengths``."""
        w = self.linear.weight
        t = band_coordinates(num_bands, wavelengths, self.wavelength_range, device=w.device, dtype=w.dtype)
        out = self.linear(self.features(t))
        return out[..., : self.channels], out[..., self.channels]


class BandTable(nn.Module):
    """HSDT's own guide: a fixed table of (g_j, beta_j) for exactly ``num_bands`` bands.

    The weight and bias of ``Linear(C, num_bands)`` (the released GSSA), ``num_bands * (C + 1)``
    parameters; the same interface as :class:`WavelengthEmbedding` but only for that band count.
    Kept to reproduce the paper (and to measure what the wavelength embedding costs or gains,
    ``scripts/bench/guide_ablation.py``).
    """

    def __init__(self, channels: int, num_bands: int = 31) -> None:
        super().__init__()
        self.channels, self.num_bands = channels, int(num_bands)
        self.linear = nn.Linear(channels, self.num_bands)

    def forward(self, num_bands: int, wavelengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """g (D, C) and beta (D,); ``wavelengths`` are ignored (the table is indexed by band position)."""
        if num_bands != self.num_bands:
            raise UsageError(f"this GSSA has a fixed {self.num_bands}-band guide table and cannot take {num_bands} bands "
                             "(use the wavelength embedding for other band counts)")
        return self.linear.weight, self.linear.bias


class GSSA(nn.Module):
    """Guided spectral self-attention (band-count agnostic HSDT GSSA).

    Parameters
    ----------
    channels
        C (the feature channels of x).
    num_features, wavelength_range, max_frequency
        The guide's :class:`WavelengthEmbedding` (31 features = HSDT's parameter count).
    self_prob
        In training mode each forward picks the self branch with this probability, else the
        guided branch (HSDT: 0.5), drawn from torch's RNG (seed it with ``torch.manual_seed``).
    flex
        In eval mode use the self branch instead of the guided one (HSDT's ``flex=True``).
    guide_bands
        None (default): guides from the :class:`WavelengthEmbedding` (any band count); an int: HSDT's
        fixed :class:`BandTable` for exactly that many bands (same parameter count at 31).

    Parameters of the module: ``value`` and ``proj`` (``nn.Linear(C, C, bias=False)``: W_v, W_o) and
    ``guide`` (the embedding): ``2*C^2 + num_features*(C + 1)`` in total.

    Shapes: ``forward(x, wavelengths=None, branch=None)`` with x (B, C, D, H, W), wavelengths [nm]
    (D,) or (B, D) or None -> (B, C, D, H, W). ``branch`` ("guided" / "self") overrides the rule above.
    """

    def __init__(
        self,
        channels: int,
        num_features: int = 31,
        wavelength_range: tuple[float, float] = (400.0, 2500.0),
        max_frequency: float = 64.0,
        self_prob: float = 0.5,
        flex: bool = False,
        guide_bands: int | None = None,
    ) -> None:
        super().__init__()
        self.channels, self.self_prob, self.flex = channels, float(self_prob), flex
        self.value = nn.Linear(channels, channels, bias=False)
        self.proj = nn.Linear(channels, channels, bias=False)
        self.guide: nn.Module = (WavelengthEmbedding(channels, num_features, wavelength_range, max_frequency)
                                 if guide_bands is None else BandTable(channels, guide_bands))

    def pick_branch(self) -> Branch:
        """The branch a forward without ``branch=`` takes (random in training mode)."""
        if self.training:
            return "self" if float(torch.rand(())) < self.self_prob else "guided"
        return "self" if self.flex else "guided"

    def attention(self, x: torch.Tensor, wavelengths: torch.Tensor | None = None, branch: Branch | None = None) -> torch.Tensor:
        """Band attention A (B, D, D), rows summing to 1, for x (B, C, D, H, W)."""
        if x.dim() != 5 or x.shape[1] != self.channels:
            raise UsageError(f"GSSA({self.channels}) expects x of shape (B, {self.channels}, bands, H, W), got {tuple(x.shape)}")
        branch = branch or self.pick_branch()
        pooled = x.mean(dim=(3, 4)).transpose(1, 2)  # (B, D, C)
        if branch == "self":
            logits = pooled @ pooled.transpose(1, 2)
        elif branch == "guided":
            g, beta = self.guide(x.shape[2], wavelengths)  # (D, C), (D,) or batched
            logits = pooled @ g.transpose(-1, -2) + beta[..., None, :]
        else:
            raise UsageError(f"unknown GSSA branch {branch!r}: use 'guided' or 'self'")
        return torch.softmax(logits, dim=-1)

    def forward(self, x: torch.Tensor, wavelengths: torch.Tensor | None = None, branch: Branch | None = None) -> torch.Tensor:
        """(B, C, D, H, W) -> (B, C, D, H, W): ``x + W_o A (W_v x)`` per pixel."""
        attn = self.attention(x, wavelengths, branch)
        # W_o (A (W_v x)) == A (x (W_o W_v)^T): both projections are bias-free and linear.
        w = self.proj.weight @ self.value.weight
        z = torch.einsum("oc,bcjhw->bojhw", w, x)
        return x + torch.einsum("bdj,bojhw->bodhw", attn, z)

    def extra_repr(self) -> str:
        return f"{self.channels}, self_prob={self.self_prob}, flex={self.flex}"
