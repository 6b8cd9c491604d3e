"""SM-FFN: HSDT's self-modulated feed-forward network.

Per voxel, on the channel vector z in R^C (``../shared/docs/models.md`` section 2.5)::

    out = W2 GELU(W1 z + b1) + b2  +  a * sigmoid(g),    [a ; g] = W3 z + b3   (two C-halves)

W1: C -> hidden (2C in HSDT), W2: hidden -> C, W3: C -> 2C; GELU is the exact (erf) one.
There is no residual: in HSDT's Transformer block ``block(x) = SMFFN(GSSA(x))`` the only residual is
the one inside GSSA, and there is no LayerNorm.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from hsikit.errors import UsageError

__all__ = ["SMFFN"]


class SMFFN(nn.Module):
    """Self-modulated FFN over the channel axis of a (B, C, D, H, W) tensor.

    Parameters
    ----------
    channels
        C.
    hidden_features
        Width of the GELU branch (default 2C, as in HSDT).
    bias
        Biases on all three linears (HSDT: True).

    Parameters of the module: ``fc1`` (C -> hidden), ``fc2`` (hidden -> C), ``gate`` (C -> 2C):
    ``6*C^2 + 5*C`` with the defaults.

    Shapes: (B, C, D, H, W) -> (B, C, D, H, W). The output is strided channels-last
    (``torch.channels_last_3d``), the layout the next S3Conv's CPU path prefers.
    """

    def __init__(self, channels: int, hidden_features: int | None = None, bias: bool = True) -> None:
        super().__init__()
        hidden = 2 * channels if hidden_features is None else hidden_features
        self.channels, self.hidden_features = channels, hidden
        self.fc1 = nn.Linear(channels, hidden, bias=bias)
        self.fc2 = nn.Linear(hidden, channels, bias=bias)
        self.gate = nn.Linear(channels, 2 * channels, bias=bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, D, H, W) -> (B, C, D, H, W)."""
        if x.dim() != 5 or x.shape[1] != self.channels:
            raise UsageError(f"SMFFN({self.channels}) expects x of shape (B, {self.channels}, bands, H, W), got {tuple(x.shape)}")
        z = x.movedim(1, -1)  # (B, D, H, W, C)
        a, g = self.gate(z).chunk(2, dim=-1)
        out = self.fc2(F.gelu(self.fc1(z))) + a * torch.sigmoid(g)
        return out.movedim(-1, 1)

    def extra_repr(self) -> str:
        return f"{self.channels}, hidden_features={self.hidden_features}"
