"""A small 3-D CNN on spatial-spectral patches (the classic HSI patch baseline).

Input ``(N, C, p, p)`` (C whitened principal components, p x p patch) is treated as a one-channel
volume ``(N, 1, C, p, p)``: three Conv3d + BatchNorm + ReLU stages with spectral kernels 7, 5, 3
and *valid* 3 x 3 spatial kernels (a 7 x 7 patch shrinks to 5, 3, 1), a spectral max-pool, global
average pooling and a linear classifier, in the spirit of Hamida et al. (IEEE TGRS 2018) and
HybridSN's 3-D stem (Roy et al., IEEE GRSL 2020). About 2 M multiply-adds per 7 x 7 x 30 patch.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from hsikit.classify.estimator import register_kind
from hsikit.classify.neural import TorchEstimator
from hsikit.zoo import register_model


class CNN3D(nn.Module):
    """``(N, C, p, p) -> (N, n_classes)`` logits.

    Parameters
    ----------
    in_channels
        C, spectral features per pixel (any number >= 1).
    n_classes
        Output classes.
    width
        Channels of the first stage (doubled at each of the next two).
    dropout
        Dropout before the classifier.
    """

    def __init__(self, in_channels: int, n_classes: int, width: int = 8, dropout: float = 0.3) -> None:
        super().__init__()
        w = width

        def stage(cin: int, cout: int, k: int) -> nn.Sequential:
            k = min(k, in_channels) | 1  # odd spectral kernel no longer than the spectrum
            # spectral 'same' padding, spatial 'valid' while the patch is larger than 1 pixel
            return nn.Sequential(nn.Conv3d(cin, cout, (k, 3, 3), padding=(k // 2, 0, 0), bias=False),
                                 nn.BatchNorm3d(cout), nn.ReLU(inplace=True))

        self.features = nn.Sequential(
            stage(1, w, 7), stage(w, 2 * w, 5), nn.MaxPool3d((2, 1, 1), ceil_mode=True), stage(2 * w, 4 * w, 3),
            nn.AdaptiveAvgPool3d(1), nn.Flatten(),
        )
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(4 * w, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.unsqueeze(1)
        need = 7  # three valid 3x3 convs: pad smaller patches (replicate) so the map stays >= 1 px
        if x.shape[-1] < need:
            p = (need - x.shape[-1] + 1) // 2
            x = torch.nn.functional.pad(x, (p, p, p, p, 0, 0), mode="replicate")
        return self.head(self.features(x))


@register_model("cnn3d", task="classify", description="small 3-D CNN on PCA patches (baseline)")
def cnn3d(in_channels: int = 30, n_classes: int = 6, width: int = 8, dropout: float = 0.3) -> CNN3D:
    return CNN3D(in_channels, n_classes, width, dropout)


@register_kind
class CNN3DClassifier(TorchEstimator):
    """3-D CNN estimator: ``patch`` x ``patch`` patches of ``pca`` whitened components (7, 30)."""

    kind = "cnn3d"
    zoo_name = "cnn3d"

    def __init__(self, n_classes: int, patch: int = 7, pca: int = 30, width: int = 8, **config: Any) -> None:
        super().__init__(n_classes, patch=patch, pca=pca, width=width, **config)
        self.patch, self.pca = int(patch), int(pca)

    def model_config(self, in_channels: int) -> dict[str, Any]:
        return {"in_channels": in_channels, "n_classes": self.n_classes, "width": self.config["width"]}
