"""HSDT: Hybrid Spectral Denoising Transformer (Lai, Yan & Fu, ICCV 2023), any band count.

Built from the shared blocks of :mod:`hsikit.layers` (S3Conv, GSSA, SM-FFN) with the released
macro-architecture (``../shared/docs/models.md`` section 2.2): a 3-D U-Net whose layers are
*conv -> BatchNorm3d -> Transformer block* (``block(x) = SMFFN(GSSA(x))``), spatial-only down/up
sampling, additive skips and a global residual. Variants (in_ch, C, half-depth, down-sample set):
HSDT-S (1, 8, 5, {1, 3}) 0.13 M, HSDT-M (1, 16, 5, {1, 3}) 0.52 M, HSDT-L (1, 16, 7, {1, 3, 5}) 2.09 M.

Difference from the paper: the guide queries of GSSA come from a learned embedding of each band's
wavelength (:class:`hsikit.layers.gssa.WavelengthEmbedding`, same parameter count) instead of a fixed
31-band table, so the same weights run on 12, 31, 224, ... bands.

:class:`SubspaceHSDT` runs the same network on the k eigen-images of the noise-whitened cube (the
HySime signal subspace) instead of the L bands: FastHyDe's low-rank prior with a learned eigen-image
denoiser. Its cost grows with k (about 10), not with L (up to 224).

Both expose ``denoise(x, wavelengths=None, sigma=None, basis=None)`` on (B, L, H, W) reflectance-like
cubes scaled to about [0, 1]; that is what :mod:`hsikit.denoise.api` calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hsikit.denoise.classical import nlm, noise_sigma
from hsikit.data.noise_estimation import estimate_noise, hysime
from hsikit.errors import UsageError
from hsikit.layers.gssa import GSSA
from hsikit.layers.s3conv import S3Conv
from hsikit.layers.smffn import SMFFN
from hsikit.zoo import register_model

VARIANTS: dict[str, dict[str, Any]] = {
    "s": {"channels": 8, "num_half_layer": 5, "downsample": (1, 3)},
    "m": {"channels": 16, "num_half_layer": 5, "downsample": (1, 3)},
    "l": {"channels": 16, "num_half_layer": 7, "downsample": (1, 3, 5)},
}


class TransformerBlock(nn.Module):
    """HSDT block: ``SMFFN(GSSA(x))`` (no LayerNorm, no residual around the FFN)."""

    def __init__(self, channels: int, guide_bands: int | None = None) -> None:
        super().__init__()
        self.attn = GSSA(channels, guide_bands=guide_bands)
        self.ffn = SMFFN(channels)

    def forward(self, x: torch.Tensor, wavelengths: torch.Tensor | None = None) -> torch.Tensor:
        return self.ffn(self.attn(x, wavelengths))


class _Layer(nn.Module):
    """conv -> BatchNorm3d -> TransformerBlock; ``kind`` is "plain" (S3Conv), "down" or "up" (Conv3d)."""

    def __init__(self, cin: int, cout: int, kind: str, guide_bands: int | None = None) -> None:
        super().__init__()
        self.kind = kind
        if kind == "plain":
            self.conv: nn.Module = S3Conv(cin, cout, 3, bias=False)
        elif kind == "down":
            self.conv = nn.Conv3d(cin, cout, 3, stride=(1, 2, 2), padding=1, bias=False)
        else:
            self.conv = nn.Conv3d(cin, cout, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm3d(cout)
        self.block = TransformerBlock(cout, guide_bands)

    def forward(self, x: torch.Tensor, wavelengths: torch.Tensor | None) -> torch.Tensor:
        if self.kind == "up":
            x = F.interpolate(x, scale_factor=(1, 2, 2), mode="trilinear", align_corners=True)
        return self.block(self.bn(self.conv(x)), wavelengths)


class HSDT(nn.Module):
    """The HSDT network on (B, D, H, W) cubes (D bands, any count); H, W padded to the stride internally.

    Parameters
    ----------
    in_channels
        Feature channels of the input volume (HSDT: 1).
    channels
        C, the width of the first layer (doubled at every down-sampling).
    num_half_layer
        Encoder (= decoder) depth n.
    downsample
        Encoder layer indices that halve H and W.
    guide_bands
        None: GSSA guides from the wavelength embedding (any band count, the default); an int: the
        paper's fixed guide table for exactly that many bands (:class:`hsikit.layers.gssa.BandTable`).
    """

    def __init__(self, in_channels: int = 1, channels: int = 16, num_half_layer: int = 5, downsample: Sequence[int] = (1, 3),
                 guide_bands: int | None = None) -> None:
        super().__init__()
        self.stride = 2 ** len(tuple(downsample))
        g = guide_bands
        self.head = _Layer(in_channels, channels, "plain", g)
        enc, dec = [], []
        c = channels
        widths = []
        for i in range(num_half_layer):
            if i in downsample:
                enc.append(_Layer(c, 2 * c, "down", g))
                c *= 2
            else:
                enc.append(_Layer(c, c, "plain", g))
            widths.append(c)
        for i in reversed(range(num_half_layer)):
            if i in downsample:
                dec.append(_Layer(c, c // 2, "up", g))
                c //= 2
            else:
                dec.append(_Layer(c, c, "plain", g))
        self.encoder = nn.ModuleList(enc)
        self.decoder = nn.ModuleList(dec)
        self.tail = nn.Conv3d(channels, in_channels, 3, padding=1, bias=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """HSIR's ``kn`` init: Kaiming-normal (fan_out) convs, BN (1, 0), Linear N(0, 1e-3²)."""
        for m in self.modules():
            if isinstance(m, nn.Conv3d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
            elif isinstance(m, S3Conv):
                for w in [*m.spatial_weights, m.spectral_weight]:
                    nn.init.kaiming_normal_(w, mode="fan_out")
            elif isinstance(m, nn.BatchNorm3d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0.0, 1e-3)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, wavelengths: torch.Tensor | None = None) -> torch.Tensor:
        """(B, D, H, W) or (B, 1, D, H, W) -> same shape; ``wavelengths`` [nm] (D,) / (B, D) or None."""
        squeeze = x.dim() == 4
        v = x.unsqueeze(1) if squeeze else x
        if v.dim() != 5:
            raise UsageError(f"HSDT takes (B, bands, H, W) or (B, 1, bands, H, W), got {tuple(x.shape)}")
        H, W = v.shape[-2:]
        ph, pw = -H % self.stride, -W % self.stride
        if ph or pw:
            mode = "reflect" if min(H, W) > max(ph, pw) else "replicate"
            v = F.pad(v.flatten(1, 2), (0, pw, 0, ph), mode=mode).unflatten(1, v.shape[1:3])
        head = self.head(v, wavelengths)
        out = head
        skips = []
        for i, layer in enumerate(self.encoder):
            out = layer(out, wavelengths)
            if i < len(self.encoder) - 1:
                skips.append(out)
        out = self.decoder[0](out, wavelengths)
        for layer in self.decoder[1:]:
            out = layer(out + skips.pop(), wavelengths)
        out = self.tail(out + head) + v[:, :1]
        out = out[..., :H, :W]
        return out.squeeze(1) if squeeze else out

    def denoise(self, x: torch.Tensor, wavelengths: torch.Tensor | None = None, sigma: Any = None, basis: Any = None) -> torch.Tensor:
        """Blind denoising of (B, L, H, W) cubes in about [0, 1]; ``sigma`` and ``basis`` are unused."""
        return self(x, wavelengths)


class SubspaceHSDT(nn.Module):
    """HSDT on the k eigen-images of the noise-whitened cube (FastHyDe's pipeline, learned denoiser).

    For a cube y (L, H, W) with per-band noise sigma: ``y_w = y / sigma``; E (L, k) the HySime basis
    of y_w; eigen-images ``z = Eᵀ y_w`` (unit noise); each eigen-image is mapped to [0, 1] by its own
    min-max (so its noise is 1 / range, different per eigen-image) and the stack (k "bands") goes
    through :class:`HSDT`, whose residual is a correction in noise-sigma units; the result is mapped back
    and re-coloured: ``sigma * (E z_hat)``.

    With ``prefilter`` the network gets two channels: the non-local-means estimate of each eigen-image
    (:func:`hsikit.denoise.classical.nlm`, i.e. FastHyDe's estimate) and the noisy eigen-image; the
    global residual adds the first, and the tail starts at zero, so the untrained model *is* FastHyDe
    and training learns a correction of it.

    Parameters
    ----------
    k
        Eigen-images used in training and the default at inference.
    min_k, max_k
        Range HySime's dimension is clamped to at inference when no ``k`` is given.
    prefilter
        Feed the NLM estimate as channel 0 (see above).
    nlm_search
        Search window of the prefilter.
    **hsdt
        :class:`HSDT` arguments (``in_channels`` is set from ``prefilter``).
    """

    def __init__(self, k: int = 10, min_k: int = 4, max_k: int = 16, prefilter: bool = True, nlm_search: int = 11, **hsdt: Any) -> None:
        super().__init__()
        self.k, self.min_k, self.max_k = int(k), int(min_k), int(max_k)
        self.prefilter, self.nlm_search = bool(prefilter), int(nlm_search)
        hsdt["in_channels"] = 2 if prefilter else 1
        self.net = HSDT(**hsdt)
        if prefilter:
            nn.init.zeros_(self.net.tail.weight)
            nn.init.zeros_(self.net.tail.bias)

    def project(self, x: torch.Tensor, sigma: Any = None, basis: Any = None, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(B, L, H, W) -> whitened eigen-images (B, k, H, W), bases (B, L, k), sigma (B, L); float64."""
        B, L, H, W = x.shape
        s = noise_sigma(x, sigma)
        s = s.expand(B, L) if s.dim() == 1 else s
        flat = (x.to(torch.float64) / s[..., None, None]).reshape(B, L, H * W)
        if basis is not None:
            e = torch.as_tensor(basis, dtype=torch.float64, device=x.device)
            e = (e if e.dim() == 3 else e.expand(B, *e.shape))[..., : (k or e.shape[-1])]
        else:
            subs = [hysime(item, estimate_noise(item)) for item in flat]
            kk = k
            if kk is None:
                kk = max(self.min_k, min(self.max_k, max(int(sub.dim) for sub in subs)))
            e = torch.stack([sub.basis[:, : min(kk, L)] for sub in subs])
        z = e.transpose(-1, -2).contiguous() @ flat  # contiguous: see classical.fasthyde
        return z.reshape(B, -1, H, W), e, s

    def prepare(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Eigen-images (B, k, H, W) -> network input (B, C_in, k, H, W) float32, offsets and spans (B, k, 1, 1)."""
        lo = z.amin(dim=(-2, -1), keepdim=True)
        span = (z.amax(dim=(-2, -1), keepdim=True) - lo).clamp_min(1e-6)
        chans = [((z - lo) / span).float()]
        if self.prefilter:
            with torch.no_grad():
                chans.insert(0, ((nlm(z.float(), 1.0, search=self.nlm_search).to(z.dtype) - lo) / span).float())
        return torch.stack(chans, dim=1), lo, span

    def head(self, inp: torch.Tensor, lo: torch.Tensor, span: torch.Tensor) -> torch.Tensor:
        """Network on prepared input (B, C_in, k, h, w) -> denoised eigen-images (B, k, h, w), float64.

        The network's residual (its output minus input channel 0) is read in units of the eigen-images'
        noise sigma (1 after whitening), not of their min-max span: the correction has the same scale on
        every eigen-image however large its signal range (the first can span 1000 sigma, the last 10).
        """
        base = inp[:, 0].to(torch.float64) * span + lo
        residual = (self.net(inp)[:, 0] - inp[:, 0]).to(torch.float64)
        return base + residual

    @staticmethod
    def back_project(z: torch.Tensor, e: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        """Eigen-images (B, k, H, W) -> cube (B, L, H, W): ``sigma * (E z)``."""
        B, _, H, W = z.shape
        return (e @ z.reshape(B, -1, H * W)).reshape(B, -1, H, W) * s[..., None, None]

    def forward(self, x: torch.Tensor, sigma: Any = None, basis: Any = None, k: int | None = None) -> torch.Tensor:
        """(B, L, H, W) noisy -> (B, L, H, W) denoised."""
        if x.dim() != 4:
            raise UsageError(f"SubspaceHSDT takes (B, bands, H, W), got {tuple(x.shape)}")
        z, e, s = self.project(x, sigma, basis, k)
        inp, lo, span = self.prepare(z)
        return self.back_project(self.head(inp, lo, span), e, s).to(x.dtype)

    def denoise(self, x: torch.Tensor, wavelengths: torch.Tensor | None = None, sigma: Any = None, basis: Any = None) -> torch.Tensor:
        """Denoise (B, L, H, W); ``basis`` (L, k) of the whitened scene keeps tiles consistent."""
        return self(x, sigma, basis)


@register_model("hsdt-s", task="denoise", description="HSDT-S (0.13 M), any band count", **VARIANTS["s"])
def hsdt_s(**config: Any) -> HSDT:
    return HSDT(**config)


@register_model("hsdt-m", task="denoise", description="HSDT-M (0.52 M), any band count", **VARIANTS["m"])
def hsdt_m(**config: Any) -> HSDT:
    return HSDT(**config)


@register_model("hsdt-l", task="denoise", description="HSDT-L (2.09 M), any band count", **VARIANTS["l"])
def hsdt_l(**config: Any) -> HSDT:
    return HSDT(**config)


@register_model("hsdt-s-sub", task="denoise", description="HSDT-S on the HySime eigen-images (any band count)", k=8, **VARIANTS["s"])
def hsdt_s_sub(**config: Any) -> SubspaceHSDT:
    return SubspaceHSDT(**config)


@register_model("hsdt-m-sub", task="denoise", description="HSDT-M on the HySime eigen-images (any band count)", k=8, **VARIANTS["m"])
def hsdt_m_sub(**config: Any) -> SubspaceHSDT:
    return SubspaceHSDT(**config)
