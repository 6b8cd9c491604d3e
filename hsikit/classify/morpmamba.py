"""MorpMamba: spatial-spectral morphological tokens, centre-region gating, cross attention and a
state-space scan (Ahmad et al., "Spatial-Spectral Morphological Mamba for Hyperspectral Image
Classification", Neurocomputing 2025, arXiv 2408.01372).

Two variants (``../shared/docs/models.md`` section 4, docs/classify.md):

``faithful=True``
    Exactly what the authors' notebook computes (section 4.2): 4 x 4 patches of 15 PCs with the
    pixel off-centre at (2, 2); "erosion"/"dilation" = learnable depthwise 5 x 5 *convolutions*
    initialised to ones (erosion negated); the spectral path convolves the (band, row) plane with
    one kernel per column; a shared 1 x 1 conv to 64-d tokens; the centre *row* of the spatial map
    gates row i with its column-i token (a broadcasting artefact, reproduced); cross multi-head
    attention (Q spatial, K/V spectral, 4 heads, no output projection); the notebook's plain linear
    recurrence h_t = W_A h_{t-1} + W_B x_t (+ biases) with 128 states
    (:class:`hsikit.layers.selective_scan.LinearRecurrence`); Dense(128, ReLU, L2 0.01) and the
    classifier. 67,013 parameters for the University of Houston setting (15 PCs, 15 classes).
``faithful=False`` (default)
    The paper's intent: true grey-scale erosion and dilation with learnable structuring functions
    (:mod:`hsikit.layers.morphology`) on an odd patch, spectral morphology along the band axis, the
    real centre pixel as the gate, the same cross attention, and a **selective** state-space scan
    (Mamba S6: input-dependent delta, B, C; :class:`hsikit.layers.selective_scan.MambaBlock`) over
    the tokens with a pre-norm residual, mean-pooled; then the classifier. About 67 k parameters in
    the Houston setting.

Any band count: the spectral front is a PCA (``spectral="pca"``, fitted with the model's
preprocessing and stored in the model file) or a learned linear projection of the standardised
bands (``spectral="linear"``), chosen by the config.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hsikit.classify.estimator import register_kind
from hsikit.classify.neural import TorchEstimator
from hsikit.layers.morphology import Dilation2d, Erosion2d
from hsikit.layers.selective_scan import LinearRecurrence, MambaBlock
from hsikit.zoo import register_model


class CrossAttention(nn.Module):
    """Multi-head attention with queries from one token set and keys/values from another.

    Q, K, V are biased linear maps of width ``dim``; heads are concatenated with **no output
    projection, residual or norm** (as in the notebook); dropout on the result.
    ``forward(q (B, L, dim), kv (B, L, dim)) -> (B, L, dim)``.
    """

    def __init__(self, dim: int = 64, heads: int = 4, dropout: float = 0.1) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.q, self.k, self.v = nn.Linear(dim, dim), nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.drop = nn.Dropout(dropout)

    def forward(self, q: torch.Tensor, kv: torch.Tensor) -> torch.Tensor:
        b, l, d = q.shape
        h = self.heads

        def split(t: torch.Tensor) -> torch.Tensor:
            return t.view(b, -1, h, d // h).transpose(1, 2)

        out = F.scaled_dot_product_attention(split(self.q(q)), split(self.k(kv)), split(self.v(kv)))
        return self.drop(out.transpose(1, 2).reshape(b, l, d))


class _BoxMorph(nn.Module):
    """The notebook's 'erosion' (sign -1) / 'dilation' (+1): a depthwise 5 x 5 conv, ones-initialised."""

    def __init__(self, channels: int, sign: float, kernel: int = 5) -> None:
        super().__init__()
        self.sign = sign
        self.conv = nn.Conv2d(channels, channels, kernel, padding=kernel // 2, groups=channels, bias=False)
        nn.init.ones_(self.conv.weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sign * self.conv(x)


class MorpMamba(nn.Module):
    """``(N, C, p, p)`` patches -> ``(N, n_classes)`` logits (see the module docstring).

    Parameters
    ----------
    in_channels
        Features per pixel entering the network (PCs, or standardised bands with ``spectral="linear"``).
    n_classes
        Output classes.
    patch
        Patch edge p (the notebook: 4; ``faithful=False``: odd, e.g. 5 or 7).
    channels
        Features after the spectral front (15): the learned projection's width with
        ``spectral="linear"``; must equal ``in_channels`` with ``spectral="pca"``.
    dim
        Token width (64). ``heads``: attention heads (4).
    faithful
        Reproduce the notebook (True) or the paper's intent (False).
    spectral
        ``"pca"`` (the input already is ``channels`` PCs) or ``"linear"`` (learned 1 x 1 projection).
    kernel
        Morphology window (5). ``d_state``, ``expand``: Mamba state size and expansion (16, 2).
    state
        Linear-recurrence state size of the faithful variant (128); ``hidden``: dense head width (128).
    """

    def __init__(self, in_channels: int, n_classes: int, patch: int = 5, channels: int = 15, dim: int = 64,
                 heads: int = 4, faithful: bool = False, spectral: str = "pca", kernel: int = 5,
                 d_state: int = 16, expand: int = 2, state: int = 128, hidden: int = 128,
                 dropout: float = 0.1) -> None:
        super().__init__()
        if spectral not in ("pca", "linear"):
            raise ValueError(f"spectral must be 'pca' or 'linear', got {spectral!r}")
        if spectral == "pca" and in_channels != channels:
            raise ValueError(f"spectral='pca' needs in_channels == channels, got {in_channels} and {channels}")
        self.faithful, self.patch = faithful, patch
        self.front = nn.Conv2d(in_channels, channels, 1) if spectral == "linear" else nn.Identity()
        c = channels
        if faithful:
            self.spa_erode, self.spa_dilate = _BoxMorph(c, -1.0, kernel), _BoxMorph(c, 1.0, kernel)
            self.spe_erode, self.spe_dilate = _BoxMorph(patch, -1.0, kernel), _BoxMorph(patch, 1.0, kernel)
        else:
            self.spa_erode, self.spa_dilate = Erosion2d(c, kernel), Dilation2d(c, kernel)
            self.spe_erode, self.spe_dilate = Erosion2d(1, (kernel, 1)), Dilation2d(1, (kernel, 1))
        self.tokens = nn.Conv2d(2 * c, dim, 1)
        self.gate_s, self.gate_p = nn.Linear(dim, dim), nn.Linear(dim, dim)
        self.attn = CrossAttention(dim, heads, dropout)
        if faithful:
            self.ssm = LinearRecurrence(dim, state)
            self.hidden = nn.Linear(state, hidden)
        else:
            self.norm1 = nn.LayerNorm(dim)
            self.ssm = MambaBlock(dim, d_state=d_state, expand=expand)
            self.norm2 = nn.LayerNorm(dim)
            self.hidden = nn.Linear(dim, hidden)
        self.classifier = nn.Linear(hidden, n_classes)

    def _spectral(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Erosion/dilation along the spectrum: (B, C, H, W) -> two (B, C, H, W)."""
        b, c, h, w = x.shape
        if self.faithful:
            t = x.permute(0, 3, 1, 2)  # (B, cols, bands, rows): one 5x5 kernel per column
            return self.spe_erode(t).permute(0, 2, 3, 1), self.spe_dilate(t).permute(0, 2, 3, 1)
        t = x.reshape(b, 1, c, h * w)  # bands on the image's row axis, (k, 1) structuring element
        return self.spe_erode(t).reshape(b, c, h, w), self.spe_dilate(t).reshape(b, c, h, w)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.front(x)
        b, _, h, w = x.shape
        s = self.tokens(torch.cat([self.spa_erode(x), self.spa_dilate(x)], 1))   # (B, dim, H, W)
        pe, pd = self._spectral(x)
        p = self.tokens(torch.cat([pe, pd], 1))
        if self.faithful:
            # centre = third row (index 2) of the map; row i is gated by the row's column-i token
            centre = s[:, :, 2, :].transpose(1, 2)                                  # (B, W, dim)
            gs = torch.sigmoid(self.gate_s(centre)).transpose(1, 2)[:, :, :, None]  # (B, dim, W->rows, 1)
            gp = torch.sigmoid(self.gate_p(centre)).transpose(1, 2)[:, :, :, None]
        else:
            centre = s[:, :, h // 2, w // 2]                                        # (B, dim)
            gs = torch.sigmoid(self.gate_s(centre))[:, :, None, None]
            gp = torch.sigmoid(self.gate_p(centre))[:, :, None, None]
        qs = (s * gs).flatten(2).transpose(1, 2)                                    # (B, H*W, dim), row-major
        kp = (p * gp).flatten(2).transpose(1, 2)
        t = self.attn(qs, kp)
        if self.faithful:
            z = self.ssm(t)                                                         # last state (B, state)
        else:
            t = t + self.ssm(self.norm1(t))
            z = self.norm2(t).mean(1)
        return self.classifier(F.relu(self.hidden(z)))


@register_model("morpmamba", task="classify", description="MorpMamba (selective scan, true morphology)")
def morpmamba(in_channels: int = 15, n_classes: int = 15, **config: Any) -> MorpMamba:
    return MorpMamba(in_channels, n_classes, **config)


@register_kind
class MorpMambaClassifier(TorchEstimator):
    """MorpMamba estimator.

    Config: ``faithful`` (False), ``patch`` (5; the faithful notebook uses 4), ``channels`` (15 PCs),
    ``spectral`` ("pca" or "linear"), ``l2`` (0.01 on the dense layer with ``faithful=True``, as the
    notebook; 0 otherwise) plus the training settings of :class:`~hsikit.classify.neural.TorchEstimator`.
    """

    kind = "morpmamba"
    zoo_name = "morpmamba"

    def __init__(self, n_classes: int, faithful: bool = False, patch: int | None = None, channels: int = 15,
                 spectral: str = "pca", l2: float | None = None, **config: Any) -> None:
        patch = int(patch or (4 if faithful else 5))
        l2 = (0.01 if faithful else 0.0) if l2 is None else float(l2)
        super().__init__(n_classes, faithful=bool(faithful), patch=patch, channels=int(channels),
                         spectral=spectral, l2=l2, **config)
        self.patch = patch
        self.pca = int(channels) if spectral == "pca" else None
        self.symmetric = not faithful and patch % 2 == 1

    def model_config(self, in_channels: int) -> dict[str, Any]:
        c = self.config
        return {"in_channels": in_channels, "n_classes": self.n_classes, "patch": c["patch"],
                "channels": c["channels"], "faithful": c["faithful"], "spectral": c["spectral"]}

    def extra_loss(self) -> torch.Tensor | float:
        if not self.config["l2"] or self.net is None:
            return 0.0
        return self.config["l2"] * self.net.hidden.weight.pow(2).sum()
