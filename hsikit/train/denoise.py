"""Denoising training: noisy/clean crop streams and the Lightning module of the subspace HSDT.

Data (:class:`CropStream`): a random training scene of :mod:`hsikit.data.datasets.catalog` (real
cubes and synthetic EnMAP scenes, min-max scaled to [0, 1]), a random sorted band subset (between
``min_bands`` and all bands: one model for any sensor), a random crop with a random dihedral
transform, and a random degradation recipe of :mod:`hsikit.data.degrade` (blind Gaussian, non-iid,
complex, mixture). The test split of the catalog is never read; validation uses its val split.

Step (:class:`SubspaceDenoiseModule`): the crop is whitened and projected on its HySime subspace
exactly as at inference (:meth:`hsikit.denoise.hsdt.SubspaceHSDT.project`), ``patches`` random
``patch`` x ``patch`` windows of the prepared eigen-images go through the network, are projected back
to bands and compared (MSE) with the clean crop.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset

from hsikit.data.degrade import parse_noise
from hsikit.train.entry import cosine_adam, dihedral

#: Training degradations (one drawn per crop).
TRAIN_RECIPES = ("gaussian:0.02-0.3", "noniid", "complex", "mixture")
#: Validation degradations (fixed seeds).
VAL_RECIPES = ("gaussian:0.1", "mixture")


class CropStream(IterableDataset):
    """Endless stream of ``{"clean", "noisy", "wavelength"}`` crops (L, h, w) float32 from training scenes.

    Parameters
    ----------
    scenes
        :class:`~hsikit.data.datasets.catalog.SceneArray` list (train split).
    crop
        Crop edge (smaller scenes are used whole).
    min_bands
        Smallest band subset drawn (the whole cube when it has fewer).
    recipes
        Noise specs, one drawn per crop.
    seed
        Seed of the stream (each DataLoader worker offsets it by its id).
    """

    def __init__(self, scenes: Sequence[Any], *, crop: int = 96, min_bands: int = 12,
                 recipes: Sequence[str] = TRAIN_RECIPES, seed: int = 0) -> None:
        self.scenes, self.crop, self.min_bands = list(scenes), int(crop), int(min_bands)
        self.recipes, self.seed = tuple(recipes), int(seed)

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        info = torch.utils.data.get_worker_info()
        seed = self.seed + (info.id if info else 0)
        rng = np.random.default_rng(seed)
        gen = torch.Generator().manual_seed(seed)
        recipes = [parse_noise(r) for r in self.recipes]
        while True:
            scene = self.scenes[rng.integers(len(self.scenes))]
            data, wl = scene.data, scene.wavelength
            C, H, W = data.shape
            n = int(rng.integers(min(C, self.min_bands), C + 1))
            bands = np.sort(rng.choice(C, n, replace=False))
            h, w = min(H, self.crop), min(W, self.crop)
            r0, c0 = int(rng.integers(H - h + 1)), int(rng.integers(W - w + 1))
            x = dihedral(data[bands, r0 : r0 + h, c0 : c0 + w], int(rng.integers(8)))
            clean = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            noisy = recipes[int(rng.integers(len(recipes)))](clean, gen).float()
            yield {"clean": clean, "noisy": noisy, "wavelength": torch.from_numpy(wl[bands].astype(np.float32))}


class FixedCrops(Dataset):
    """Seeded noisy/clean centre crops of the given scenes x recipes (validation or test)."""

    def __init__(self, scenes: Sequence[Any], *, crop: int = 64, recipes: Sequence[str] = VAL_RECIPES, seed: int = 0) -> None:
        self.items: list[dict[str, Any]] = []
        for i, scene in enumerate(scenes):
            C, H, W = scene.data.shape
            h, w = min(H, crop), min(W, crop)
            r0, c0 = (H - h) // 2, (W - w) // 2
            clean = torch.from_numpy(np.ascontiguousarray(scene.data[:, r0 : r0 + h, c0 : c0 + w]))
            for j, spec in enumerate(recipes):
                noisy = parse_noise(spec)(clean, seed + 1000 * i + j).float()
                self.items.append({"clean": clean, "noisy": noisy, "name": f"{scene.id}|{spec}"})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict[str, Any]:
        return self.items[i]


class SubspaceDenoiseModule(L.LightningModule):
    """Trains a :class:`~hsikit.denoise.hsdt.SubspaceHSDT` (``self.model``) on crop streams.

    Parameters
    ----------
    model_config
        Builder arguments of the model (``hsikit.zoo`` entry ``model_name``).
    model_name
        Registered name (kept in the checkpoint so the weights can be exported).
    patch, patches
        Window edge and windows per step.
    lr, lr_min, lr_steps
        Adam learning rate, cosine-annealed to ``lr_min`` over ``lr_steps``.
    freeze_bn
        Keep BatchNorm in eval mode (running statistics, not batch statistics) while training: the
        windows of one step come from one crop, so batch statistics differ from the running ones used at
        inference; frozen, training and inference compute the same function.
    reuse
        Steps that draw their windows from the same projected crop (the projection and the NLM
        prefilter cost about as much as a step on the CPU); the loader's crops in between are skipped.
    loss_norm
        ``"none"``: the MSE of the windows; ``"input"``: each window's MSE divided by its noisy input's
        MSE, so a crop at sigma 0.3 and one at 0.02 weigh the same (the mean relative error; with
        ``"none"`` the loudest crops dominate the gradient).
    sparse
        ``"auto"``: clean each noisy crop of impulse, stripe and dead-line values
        (:func:`hsikit.denoise.sparse.remove_sparse_noise`) before the projection, in training and
        validation, as ``hsikit.denoise(..., sparse="auto")`` does at inference; ``"off"``: do not.
    """

    def __init__(self, model_config: dict[str, Any], model_name: str = "hsdt-s-sub", patch: int = 32,
                 patches: int = 8, lr: float = 5e-4, lr_min: float = 5e-5, lr_steps: int = 20000, reuse: int = 4,
                 freeze_bn: bool = True, loss_norm: str = "none", sparse: str = "off") -> None:
        super().__init__()
        if loss_norm not in ("none", "input"):
            raise ValueError(f"loss_norm must be 'none' or 'input', got {loss_norm!r}")
        if sparse not in ("auto", "off"):
            raise ValueError(f"sparse must be 'auto' or 'off', got {sparse!r}")
        self.save_hyperparameters()
        from hsikit.zoo import create_model

        import hsikit.denoise.hsdt  # noqa: F401  (registers the models)

        self.model = create_model(model_name, pretrained=False, **model_config)
        self.val_scores: list[float] = []
        self.val_base: list[float] = []
        self._crop: tuple[Any, ...] | None = None
        self._uses = 0

    def _input(self, noisy: torch.Tensor) -> torch.Tensor:
        """The noisy crop (L, h, w) as the model sees it (sparse noise removed with ``sparse="auto"``)."""
        if self.hparams.get("sparse", "off") != "auto":
            return noisy
        from hsikit.denoise.sparse import remove_sparse_noise

        return remove_sparse_noise(noisy).cleaned

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        if self.hparams.get("freeze_bn", False):
            for mod in self.model.modules():
                if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
                    mod.eval()

    def training_step(self, batch: dict[str, torch.Tensor], _: int) -> torch.Tensor:
        m = self.model
        p = self.hparams.patch
        if self._crop is None or self._uses >= self.hparams.reuse:
            clean, noisy = batch["clean"][0], batch["noisy"][0]
            with torch.no_grad():
                z, e, s = m.project(self._input(noisy)[None], k=m.k)
                inp, lo, span = m.prepare(z)
            self._crop, self._uses = (clean, noisy, inp, lo, span, e, s), 0
        clean, noisy, inp, lo, span, e, s = self._crop
        self._uses += 1
        H, W = clean.shape[-2:]
        ph, pw = min(p, H - H % 4), min(p, W - W % 4)
        gen = torch.Generator().manual_seed(int(self.global_step) * 7919 + 1)
        rows = torch.randint(0, H - ph + 1, (self.hparams.patches,), generator=gen).tolist()
        cols = torch.randint(0, W - pw + 1, (self.hparams.patches,), generator=gen).tolist()
        x_in = torch.cat([inp[..., r : r + ph, c : c + pw] for r, c in zip(rows, cols)])
        target = torch.stack([clean[:, r : r + ph, c : c + pw] for r, c in zip(rows, cols)])
        n = len(rows)
        out = m.head(x_in, lo.expand(n, -1, -1, -1), span.expand(n, -1, -1, -1))
        pred = m.back_project(out, e.expand(n, -1, -1), s.expand(n, -1))
        err = ((pred.float() - target) ** 2).flatten(1).mean(1)  # (n,) per-window MSE
        mse = err.mean()
        if self.hparams.get("loss_norm", "none") == "input":
            noisy_w = torch.stack([noisy[:, r : r + ph, c : c + pw] for r, c in zip(rows, cols)])
            loss = (err / ((noisy_w.float() - target) ** 2).flatten(1).mean(1).clamp_min(1e-12)).mean()
        else:
            loss = mse
        self.log("train/loss", loss, batch_size=n)
        self.log("train/psnr", -10 * torch.log10(mse.detach().clamp_min(1e-12)), batch_size=n)
        return loss

    def validation_step(self, batch: dict[str, Any], _: int) -> None:
        from hsikit.denoise.classical import fasthyde
        from hsikit.metrics import psnr

        clean, noisy = batch["clean"][0], batch["noisy"][0]
        with torch.no_grad():
            out = self.model(self._input(noisy)[None])[0].clamp(0, 1)
        self.val_scores.append(float(psnr(out.cpu().numpy(), clean.cpu().numpy(), data_range=1.0)))
        if self.current_epoch == 0 and len(self.val_base) < len(self.trainer.val_dataloaders.dataset):
            base = fasthyde(noisy, k=None).clamp(0, 1)
            self.val_base.append(float(psnr(base.cpu().numpy(), clean.cpu().numpy(), data_range=1.0)))

    def on_validation_epoch_end(self) -> None:
        if self.val_scores:
            self.log("val/psnr", float(np.mean(self.val_scores)))
        if self.val_base:
            self.log("val/fasthyde_psnr", float(np.mean(self.val_base)))
        self.val_scores = []

    def configure_optimizers(self) -> Any:
        return cosine_adam(self.model.parameters(), self.hparams.lr, self.hparams.lr_min, self.hparams.lr_steps)


def init_from(module: SubspaceDenoiseModule, folder: str | Any) -> None:
    """Start ``module``'s model from released weights (a zoo folder: ``model.safetensors`` +
    ``config.json``), e.g. to continue a run at a lower learning rate in a new run folder.

    Raises if the folder's model does not have the same architecture as the module's.
    """
    from hsikit.zoo import create_model

    src = create_model(module.hparams["model_name"], weights=folder)
    module.model.load_state_dict(src.state_dict())
