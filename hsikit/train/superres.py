"""Super-resolution training: Wald-protocol LR/HR pairs and the Lightning module of the subspace ESSAformer.

Pairs (:class:`SRPairs`): every scene of :mod:`hsikit.data.datasets.catalog` (min-max scaled to
[0, 1]) is degraded once, whole, by the Wald protocol of :func:`hsikit.data.degrade.blur_decimate`
(per-band Gaussian MTF with gain ``gnyq`` at Nyquist, then every ``r``-th pixel from ``r // 2``; for
odd ``r`` LR pixel ``i`` is centred on HR pixels ``[r i, r i + r)``, the aligned-grid geometry of
``hsikit super-resolve``). A training item is a random sorted band subset of a random scene, an LR
crop with its aligned HR crop, and a random dihedral transform; the principal basis comes from the
LR crop, as inference takes it from the LR scene.

Step (:class:`SubspaceSRModule`): ``windows`` random LR windows of ``patch`` x ``patch`` pixels of the
crop (the model's ``window``; ESSA's key normalisation depends on the extent) go through
:class:`~hsikit.superres.subspace.SubspaceESSAformer`; the loss is the L1 distance to the HR windows
in band space, in units of the crop's value scale (:func:`hsikit.superres.subspace.value_scale`, as at
inference). The test split of the catalog is never read.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from hsikit.data.degrade import blur_decimate
from hsikit.train.entry import cosine_adam, dihedral

#: MTF gain at Nyquist of the training degradation (the pansharpening default for HS sensors).
GNYQ = 0.3
def degrade_scene(hr: np.ndarray, ratio: int, gnyq: float = GNYQ) -> tuple[np.ndarray, np.ndarray]:
    """(LR (L, h, w), aligned HR (L, r h, r w)) of a (L, H, W) scene; the HR is cut to whole LR pixels."""
    lr = blur_decimate(torch.tensor(hr, dtype=torch.float32), ratio, gnyq).numpy()
    h, w = min(lr.shape[1], hr.shape[1] // ratio), min(lr.shape[2], hr.shape[2] // ratio)
    return np.ascontiguousarray(lr[:, :h, :w]), np.ascontiguousarray(hr[:, : h * ratio, : w * ratio])


class SRPairs(IterableDataset):
    """Endless stream of ``{"lr", "hr"}`` crops ((L, h, w) and (L, r h, r w) float32) from scenes.

    Parameters
    ----------
    scenes
        :class:`~hsikit.data.datasets.catalog.SceneArray` list; scenes whose LR is smaller than ``patch`` are skipped.
    ratio
        Scale factor.
    crop
        LR crop edge (smaller scenes are used whole).
    patch
        Smallest LR edge a scene must have.
    min_bands
        Smallest band subset drawn (the whole cube when it has fewer).
    seed
        Seed of the stream.
    """

    def __init__(self, scenes: Sequence[Any], *, ratio: int = 3, crop: int = 48, patch: int = 16,
                 min_bands: int = 12, seed: int = 0) -> None:
        self.pairs = [degrade_scene(s.data, ratio) for s in scenes]
        self.pairs = [(lr, hr) for lr, hr in self.pairs if min(lr.shape[1:]) >= patch]
        if not self.pairs:
            raise ValueError(f"no scene has an LR image of at least {patch} x {patch} pixels")
        self.ratio, self.crop, self.min_bands, self.seed = int(ratio), int(crop), int(min_bands), int(seed)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        rng = np.random.default_rng(self.seed)
        r = self.ratio
        while True:
            lr, hr = self.pairs[rng.integers(len(self.pairs))]
            C, H, W = lr.shape
            n = int(rng.integers(min(C, self.min_bands), C + 1))
            bands = np.sort(rng.choice(C, n, replace=False))
            h, w = min(H, self.crop), min(W, self.crop)
            r0, c0 = int(rng.integers(H - h + 1)), int(rng.integers(W - w + 1))
            mode = int(rng.integers(8))
            x = dihedral(lr[bands, r0 : r0 + h, c0 : c0 + w], mode)
            y = dihedral(hr[bands, r * r0 : r * (r0 + h), r * c0 : r * (c0 + w)], mode)
            yield {"lr": torch.from_numpy(np.ascontiguousarray(x)), "hr": torch.from_numpy(np.ascontiguousarray(y))}


class FixedSRWindows(Dataset):
    """LR/HR windows at fixed positions of each scene (validation): up to ``per_scene`` on a regular grid."""

    def __init__(self, scenes: Sequence[Any], *, ratio: int = 3, patch: int = 16, per_scene: int = 4) -> None:
        self.items: list[dict[str, Any]] = []
        r = int(ratio)
        for scene in scenes:
            lr, hr = degrade_scene(scene.data, r)
            _, H, W = lr.shape
            if min(H, W) < patch:
                continue
            rows = np.linspace(0, H - patch, max(1, int(math.isqrt(per_scene)))).round().astype(int)
            cols = np.linspace(0, W - patch, max(1, int(math.isqrt(per_scene)))).round().astype(int)
            for i in rows:
                for j in cols:
                    self.items.append({
                        "lr": torch.from_numpy(np.ascontiguousarray(lr[:, i : i + patch, j : j + patch])),
                        "hr": torch.from_numpy(np.ascontiguousarray(hr[:, r * i : r * (i + patch), r * j : r * (j + patch)])),
                        "basis_from": torch.from_numpy(lr.reshape(lr.shape[0], -1)),
                        "name": f"{scene.id}@{i},{j}",
                    })

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


class SubspaceSRModule(L.LightningModule):
    """Trains a :class:`~hsikit.superres.subspace.SubspaceESSAformer` (``self.model``) on :class:`SRPairs`.

    Parameters
    ----------
    model_config
        Builder arguments of the model (``hsikit.zoo`` entry ``model_name``).
    model_name
        Registered name (exported weights load under it).
    patch, windows
        LR window edge and windows per step.
    lr, lr_min, lr_steps
        Adam learning rate, cosine-annealed to ``lr_min`` over ``lr_steps``.
    """

    def __init__(self, model_config: dict[str, Any], model_name: str = "essaformer-sub-x3", patch: int = 16,
                 windows: int = 8, lr: float = 5e-4, lr_min: float = 2e-5, lr_steps: int = 10000) -> None:
        super().__init__()
        self.save_hyperparameters()
        import hsikit.superres.subspace  # noqa: F401  (registers the models)
        from hsikit.zoo import create_model

        self.model = create_model(model_name, pretrained=False, **model_config)
        self.val_scores: list[float] = []
        self.val_base: list[float] = []

    @staticmethod
    def _basis(lr_pixels: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor, float]:
        from hsikit.superres.subspace import principal_basis, value_scale

        mu, e = principal_basis(lr_pixels, k)
        return mu.float(), e.float(), value_scale(lr_pixels.numpy())

    def training_step(self, batch: dict[str, torch.Tensor], _: int) -> torch.Tensor:
        lr_crop, hr_crop = batch["lr"][0], batch["hr"][0]
        p, r, n = self.hparams.patch, self.model.scale, self.hparams.windows
        C, H, W = lr_crop.shape
        mu, e, vs = self._basis(lr_crop.reshape(C, -1), self.model.k)
        rows = torch.randint(0, H - p + 1, (n,)).tolist()
        cols = torch.randint(0, W - p + 1, (n,)).tolist()
        lr = torch.stack([lr_crop[:, i : i + p, j : j + p] for i, j in zip(rows, cols)])
        hr = torch.stack([hr_crop[:, r * i : r * (i + p), r * j : r * (j + p)] for i, j in zip(rows, cols)])
        sr = self.model(lr, mu, e, vs)
        loss = (sr - hr).abs().mean() / vs
        self.log("train/l1", loss, prog_bar=False, batch_size=n)
        return loss

    def validation_step(self, batch: dict[str, Any], _: int) -> None:
        from hsikit.data.resample import upsample
        from hsikit.metrics import psnr

        lr, hr = batch["lr"][0], batch["hr"][0]
        mu, e, vs = self._basis(batch["basis_from"][0], self.model.k)
        with torch.no_grad():
            sr = self.model(lr[None], mu, e, vs)[0].clamp(0, 1)
        self.val_scores.append(float(psnr(sr.cpu().numpy(), hr.cpu().numpy(), data_range=1.0)))
        if len(self.val_base) < len(self.trainer.val_dataloaders.dataset):
            base = upsample(lr, self.model.scale).clamp(0, 1)
            self.val_base.append(float(psnr(base.cpu().numpy(), hr.cpu().numpy(), data_range=1.0)))

    def on_validation_epoch_end(self) -> None:
        if self.val_scores:
            self.log("val/psnr", float(np.mean(self.val_scores)))
        if self.val_base:
            self.log("val/bicubic_psnr", float(np.mean(self.val_base)))
        self.val_scores = []

    def configure_optimizers(self) -> Any:
        return cosine_adam(self.model.parameters(), self.hparams.lr, self.hparams.lr_min, self.hparams.lr_steps)
