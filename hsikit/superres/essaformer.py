"""ESSAformer: efficient transformer for hyperspectral single-image super-resolution.

Zhang et al., "ESSAformer: Efficient Transformer for Hyperspectral Image Super-resolution", ICCV 2023
(arXiv 2307.14010); released code ``Rexzhan/ESSAformer``, ``ESSA.py``. The structure is that of the
released code (``../shared/docs/models.md`` section 3), built on the shared attention layer
:class:`hsikit.layers.essa.ESSAttention` (which holds the qkv and output linear layers).

Structure, for an LR input ``(B, C_in, h, w)`` and embedding size ``d``:

* ``conv_first``: Conv3x3(C_in -> d) on the LR input; ``conv_last``: Conv3x3(d -> C_in) on the HR
  features. No bicubic / global residual in the released network.
* :class:`ConvBlock` (the released ``Convup`` / ``Convdown``, identical structure, separate weights):
  ``t = Dropout2d(ESSA(LayerNorm(tokens(x))))``, ``u = Conv1x1 -> LReLU -> Drop -> Conv3x3 -> LReLU ->
  Drop -> Conv1x1`` on ``cat[t, x]`` (2d -> 2d -> 2d -> d), ``out = u + x``.
* :class:`Upsample` U / :class:`Downsample` Dn: ``n x [Conv3x3(d -> 4d), PixelShuffle(2)]`` /
  ``n x [Conv3x3(d -> d/4), PixelUnshuffle(2)]`` for scale ``2^n``; ``Conv3x3(d -> 9d) +
  PixelShuffle(3)`` / ``Conv3x3(d -> d/9) + PixelUnshuffle(3)`` for scale 3.
* Iterative refining (back-projection style) with ONE Convup ``Bu``, ONE Convdown ``Bd``, ONE U and
  ONE Dn, weights shared across the iterations::

      x0 = conv_first(LR);  x1 = Bu(U(x0));       x2 = Bd(Dn(x1) + x0)
      x3 = Bu(U(x2) + x1);  x4 = Bd(Dn(x3) + x2); x5 = Bu(U(x4) + x3)
      SR = conv_last(x5)

Parameter counts (d = 256, x4): 11,640,832 for C_in = 128 (Chikusei, the released example),
11,193,759 for 31 bands, 11,520,998 for 102 bands; C_in = 128 at x2 / x8: 9,132,992 / 14,148,672.

Deviation (opt-in): ``residual=True`` adds a given base image (e.g. the bicubic upsampling of the LR
input) to the output, ``SR = base + conv_last(x5)``, and zero-initialises ``conv_last`` so that the
untrained network returns exactly ``base``. The default (``residual=False``) is the released network.

Because ESSA normalises the keys over all tokens and divides by ``sqrt(N)``, the output depends on
the spatial extent processed: run inference on windows of the training patch size.
"""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from hsikit.errors import UsageError
from hsikit.layers.essa import ESSAttention

DROPOUT = 0.2
"""Dropout2d probability of the released blocks."""
NEGATIVE_SLOPE = 0.2
"""LeakyReLU slope of the released blocks."""


def _check_scale_dim(scale: int, dim: int) -> int:
    """Validate ``(scale, dim)``; return the number of x2 stages (0 means one x3 stage)."""
    if isinstance(scale, bool) or not isinstance(scale, int) or scale < 2:
        raise UsageError(f"ESSAformer: scale {scale!r} is not supported; supported scales are 2^n (2, 4, 8, ...) and 3")
    if isinstance(dim, bool) or not isinstance(dim, int) or dim < 1:
        raise UsageError(f"ESSAformer: dim must be a positive integer, got {dim!r}")
    if scale & (scale - 1) == 0:
        if dim % 4:
            raise UsageError(f"ESSAformer: dim {dim} must be divisible by 4 for scale {scale} (PixelShuffle(2))")
        return scale.bit_length() - 1
    if scale == 3:
        if dim % 9:
            raise UsageError(f"ESSAformer: dim {dim} must be divisible by 9 for scale 3 (PixelShuffle(3)); "
                             f"e.g. {max(9, dim - dim % 9)}")
        return 0
    raise UsageError(f"ESSAformer: scale {scale} is not supported; supported scales are 2^n (2, 4, 8, ...) and 3")


class Upsample(nn.Sequential):
    """U: ``n x [Conv3x3(d -> 4d), PixelShuffle(2)]`` for scale ``2^n``, ``Conv3x3(d -> 9d),
    PixelShuffle(3)`` for scale 3.

    Parameters
    ----------
    scale
        2^n (n >= 1) or 3; anything else raises :class:`~hsikit.errors.UsageError`.
    dim
        Feature channels d (divisible by 4, or by 9 for scale 3).

    Shapes: ``(B, d, h, w) -> (B, d, h * scale, w * scale)``.
    """

    def __init__(self, scale: int, dim: int) -> None:
        stages = _check_scale_dim(scale, dim)
        layers: list[nn.Module] = []
        if stages:
            for _ in range(stages):
                layers += [nn.Conv2d(dim, 4 * dim, 3, 1, 1), nn.PixelShuffle(2)]
        else:
            layers += [nn.Conv2d(dim, 9 * dim, 3, 1, 1), nn.PixelShuffle(3)]
        super().__init__(*layers)
        self.scale = scale


class Downsample(nn.Sequential):
    """Dn: ``n x [Conv3x3(d -> d/4), PixelUnshuffle(2)]`` for scale ``2^n``, ``Conv3x3(d -> d/9),
    PixelUnshuffle(3)`` for scale 3.

    Parameters
    ----------
    scale
        2^n (n >= 1) or 3; anything else raises :class:`~hsikit.errors.UsageError`.
    dim
        Feature channels d (divisible by 4, or by 9 for scale 3).

    Shapes: ``(B, d, H, W) -> (B, d, H / scale, W / scale)`` (H, W multiples of ``scale``).
    """

    def __init__(self, scale: int, dim: int) -> None:
        stages = _check_scale_dim(scale, dim)
        layers: list[nn.Module] = []
        if stages:
            for _ in range(stages):
                layers += [nn.Conv2d(dim, dim // 4, 3, 1, 1), nn.PixelUnshuffle(2)]
        else:
            layers += [nn.Conv2d(dim, dim // 9, 3, 1, 1), nn.PixelUnshuffle(3)]
        super().__init__(*layers)
        self.scale = scale


class ConvBlock(nn.Module):
    """The ``Convup`` / ``Convdown`` block of the released code (one class, both roles).

    ``t = Dropout2d(ESSA(LayerNorm(tokens(x))))`` back on the ``(B, d, h, w)`` grid;
    ``u = Conv1x1(2d -> d)(Drop(LReLU(Conv3x3(2d -> 2d)(Drop(LReLU(Conv1x1(2d -> 2d)(cat[t, x])))))))``;
    ``out = u + x``. LeakyReLU slope 0.2; no separate FFN.

    Parameters
    ----------
    dim
        Feature channels d.
    dropout
        Dropout2d probability (0.2 in the released code); active in train mode only.

    Shapes: ``(B, d, h, w) -> (B, d, h, w)``; the attention tokens are the ``h * w`` pixels.
    """

    def __init__(self, dim: int, dropout: float = DROPOUT) -> None:
        super().__init__()
        self.dim = dim
        self.norm = nn.LayerNorm(dim)
        self.attn = ESSAttention(dim)
        self.drop = nn.Dropout2d(dropout)
        self.body = nn.Sequential(
            nn.Conv2d(2 * dim, 2 * dim, 1, 1, 0),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(2 * dim, 2 * dim, 3, 1, 1),
            nn.LeakyReLU(NEGATIVE_SLOPE, inplace=True),
            nn.Dropout2d(dropout),
            nn.Conv2d(2 * dim, dim, 1, 1, 0),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, d, h, w = x.shape
        tokens = x.flatten(2).transpose(1, 2)
        t = self.attn(self.norm(tokens)).transpose(1, 2).reshape(b, d, h, w)
        t = self.drop(t)
        return self.body(torch.cat((t, x), dim=1)) + x

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


class ESSAformer(nn.Module):
    """ESSAformer super-resolution network (class ``ESSA`` of the released code).

    Parameters
    ----------
    in_channels
        Bands C_in of the LR input (and of the output).
    scale
        Upscaling factor: 2^n (2, 4, 8, ...) or 3.
    dim
        Embedding size d (256 in the paper); divisible by 4 (by 9 for scale 3, e.g. 252).
    dropout
        Dropout2d probability inside the blocks (0.2 as released).
    residual
        hsikit's deviation: ``forward(lr, base)`` returns ``base + conv_last(x5)`` and ``conv_last``
        starts at zero (the untrained network returns ``base``). Default False: the released network.

    Notes
    -----
    Shapes: ``forward(lr)`` takes ``(B, C_in, h, w)`` and returns ``(B, C_in, h * scale, w * scale)``.
    Keep the inference window equal to the training patch size (ESSA depends on the extent).
    :func:`convert_released_state_dict` renames the keys of a state dict of the released ``ESSA`` class
    (module names as in ``ESSA.py``; no released checkpoint is bundled, so none was loaded here).
    """

    def __init__(self, in_channels: int, scale: int = 4, dim: int = 256, dropout: float = DROPOUT,
                 residual: bool = False) -> None:
        super().__init__()
        if isinstance(in_channels, bool) or not isinstance(in_channels, int) or in_channels < 1:
            raise UsageError(f"ESSAformer: in_channels must be a positive integer, got {in_channels!r}")
        _check_scale_dim(scale, dim)
        self.in_channels = in_channels
        self.scale = scale
        self.dim = dim
        self.residual = bool(residual)
        self.conv_first = nn.Conv2d(in_channels, dim, 3, 1, 1)
        self.convup = ConvBlock(dim, dropout)
        self.convdown = ConvBlock(dim, dropout)
        self.upsample = Upsample(scale, dim)
        self.downsample = Downsample(scale, dim)
        self.conv_last = nn.Conv2d(dim, in_channels, 3, 1, 1)
        if self.residual:
            self._zero_last()

    def _zero_last(self) -> None:
        with torch.no_grad():
            self.conv_last.weight.zero_()
            self.conv_last.bias.zero_()

    def reset_parameters(self) -> None:
        """Re-initialise every layer (PyTorch defaults); ``conv_last`` to zero when ``residual``."""
        for m in self.modules():
            if m is not self and hasattr(m, "reset_parameters"):
                m.reset_parameters()
        if self.residual:
            self._zero_last()

    def features(self, lr: torch.Tensor) -> torch.Tensor:
        """The HR feature map ``x5`` ``(B, d, h * scale, w * scale)`` of the iterative refining."""
        bu, bd, up, dn = self.convup, self.convdown, self.upsample, self.downsample
        x0 = self.conv_first(lr)
        x1 = bu(up(x0))
        x2 = bd(dn(x1) + x0)
        x3 = bu(up(x2) + x1)
        x4 = bd(dn(x3) + x2)
        return bu(up(x4) + x3)

    def forward(self, lr: torch.Tensor, base: torch.Tensor | None = None) -> torch.Tensor:
        """Super-resolve ``lr``.

        Parameters
        ----------
        lr
            ``(B, C_in, h, w)`` LR cube.
        base
            ``(B, C_in, h * scale, w * scale)`` image the output is added to; required with
            ``residual=True``, refused otherwise.

        Returns
        -------
        torch.Tensor
            ``(B, C_in, h * scale, w * scale)``.
        """
        if lr.dim() != 4 or lr.shape[1] != self.in_channels:
            raise UsageError(f"ESSAformer(in_channels={self.in_channels}) expects (B, {self.in_channels}, h, w), "
                             f"got {tuple(lr.shape)}")
        b, c, h, w = lr.shape
        out_shape = (b, c, h * self.scale, w * self.scale)
        if self.residual:
            if base is None:
                raise UsageError("ESSAformer(residual=True) needs a base image: forward(lr, base)")
            if tuple(base.shape) != out_shape:
                raise UsageError(f"ESSAformer: base must have shape {out_shape}, got {tuple(base.shape)}")
        elif base is not None:
            raise UsageError("ESSAformer: base is only used with residual=True")
        sr = self.conv_last(self.features(lr))
        return sr if base is None else base + sr

    def extra_repr(self) -> str:
        return f"in_channels={self.in_channels}, scale={self.scale}, dim={self.dim}, residual={self.residual}"


_RELEASED_PREFIXES = (
    ("blockup.convup.convu.", "convup.body."),
    ("blockup.convdown.convd.", "convdown.body."),
    ("blockup.convup.", "convup."),
    ("blockup.convdown.", "convdown."),
    ("blockup.convupsample.", "upsample."),
    ("blockup.convdownsample.", "downsample."),
)


def convert_released_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the keys of a released ``ESSA`` state dict to those of :class:`ESSAformer`.

    ``blockup.convup.convu.*`` -> ``convup.body.*``, ``blockup.convupsample.*`` -> ``upsample.*``,
    etc.; a leading ``module.`` (DataParallel) is dropped; other keys are kept as they are, so
    ``load_state_dict(strict=True)`` reports anything unexpected.
    """
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        new = key.removeprefix("module.")
        for old, repl in _RELEASED_PREFIXES:
            if new.startswith(old):
                new = repl + new[len(old):]
                break
        out[new] = value
    return out
