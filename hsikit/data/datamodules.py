"""Lightning DataModules over the benchmark cubes (:mod:`hsikit.data.datasets.catalog`).

:class:`DenoisingDataModule` yields batches ``{"noisy", "clean", "wavelength", "scene", "window", ...}``:
``clean`` (B, C, p, p) patches in [0, 1], ``noisy`` = the noise recipe applied on the fly, ``wavelength``
(B, C) in nm. One band count per batch (:class:`~hsikit.data.datasets.patches.BandGroupedBatchSampler`).
Train: random crops with dihedral augmentation from the train scenes and fresh noise every draw;
val / test: grid tiles of the fixed val / test scenes with noise fixed per tile (reproducible scores).
The split is the catalog's fixed split by scene, so no test scene is seen in training.

Example
-------
>>> dm = DenoisingDataModule(noise="noniid", patch_size=32, batch_size=8)  # doctest: +SKIP
>>> dm.setup("fit"); batch = next(iter(dm.train_dataloader()))              # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

from hsikit.data.datasets.catalog import GROUPS, load_scenes
from hsikit.data.datasets.patches import (
    BandGroupedBatchSampler,
    GridPatches,
    NoisyPairs,
    RandomPatches,
    collate_patches,
    seed_worker,
)
from hsikit.errors import UsageError


class DenoisingDataModule(L.LightningDataModule):
    """(noisy, clean, wavelength) patch pairs from the real benchmark cubes plus synthetic scenes.

    Parameters
    ----------
    noise
        Noise spec of :func:`hsikit.data.degrade.parse_noise` (``"gaussian:50/255"``, ``"noniid"``,
        ``"complex"``, ``"mixture"``, ...); ``val_noise`` / ``test_noise`` default to it (``complex`` is a
        training transform: its val/test default is ``mixture``).
    root
        Data folder (default :func:`~hsikit.data.datasets.catalog.data_root`).
    groups
        Scene groups to use (cave, anomaly, muufl, aviris, enmap, synthetic; default all).
    patch_size
        Patch edge in pixels (scenes smaller than this are skipped; EnMAP tiles are 32 x 32).
    batch_size, num_workers
        DataLoader settings.
    train_length
        Random patches per training epoch.
    seed
        Seed of crops, augmentation and noise.
    blur_ratio
        Also blur + decimate the noisy input by this factor (super-resolution pairs).
    train_noise_on
        ``"sample"``: the training noise is drawn per sample in the DataLoader (workers, CPU);
        ``"batch"``: it is drawn per batch on the training device after the transfer (Lightning's
        ``on_after_batch_transfer``; fast on a GPU). Val/test noise is always fixed per sample.
    """

    def __init__(
        self,
        noise: str = "noniid",
        *,
        val_noise: str | None = None,
        test_noise: str | None = None,
        root: str | os.PathLike | None = None,
        groups: Sequence[str] | None = None,
        patch_size: int = 32,
        batch_size: int = 8,
        num_workers: int = 0,
        train_length: int = 2000,
        seed: int = 0,
        blur_ratio: int | None = None,
        train_noise_on: str = "sample",
    ) -> None:
        super().__init__()
        if train_noise_on not in ("sample", "batch"):
            raise UsageError(f"train_noise_on must be 'sample' or 'batch', got {train_noise_on!r}")
        self.train_noise_on = train_noise_on
        self._batch_recipe: Any = None
        self._batch_generator: torch.Generator | None = None
        self.noise = noise
        default_eval = "mixture" if noise.strip().lower().startswith("complex") else noise
        self.val_noise = val_noise or default_eval
        self.test_noise = test_noise or default_eval
        self.root = root
        self.groups = tuple(groups) if groups is not None else GROUPS
        self.patch_size = patch_size
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.train_length = train_length
        self.seed = seed
        self.blur_ratio = blur_ratio
        self.train_set: NoisyPairs | None = None
        self.val_set: NoisyPairs | None = None
        self.test_set: NoisyPairs | None = None

    def _scenes(self, split: str) -> list[Any]:
        return load_scenes(split, self.groups, self.root)

    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit") and self.train_set is None:
            patches = RandomPatches(self._scenes("train"), self.patch_size, self.train_length, seed=self.seed)
            per_sample = self.train_noise_on == "sample"
            self.train_set = NoisyPairs(patches, self.noise if per_sample else None, seed=self.seed,
                                        blur_ratio=self.blur_ratio)
        if stage in (None, "fit", "validate") and self.val_set is None:
            self.val_set = NoisyPairs(GridPatches(self._scenes("val"), self.patch_size), self.val_noise,
                                      seed=self.seed + 1, fixed=True, blur_ratio=self.blur_ratio)
        if stage in (None, "test") and self.test_set is None:
            self.test_set = NoisyPairs(GridPatches(self._scenes("test"), self.patch_size), self.test_noise,
                                       seed=self.seed + 2, fixed=True, blur_ratio=self.blur_ratio)

    def _loader(self, ds: NoisyPairs | None, *, shuffle: bool) -> DataLoader:
        assert ds is not None, "call setup() first"
        sampler = BandGroupedBatchSampler(ds.band_counts, self.batch_size, shuffle=shuffle, seed=self.seed)
        return DataLoader(ds, batch_sampler=sampler, num_workers=self.num_workers, collate_fn=collate_patches,
                          worker_init_fn=seed_worker, persistent_workers=False)

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        """With ``train_noise_on="batch"``: add the training noise to the batch on its device."""
        trainer = getattr(self, "trainer", None)
        if self.train_noise_on != "batch" or trainer is None or not trainer.training:
            return batch
        from hsikit.data.degrade import parse_noise

        clean = batch["noisy"]  # the (blurred) clean input; noise-free until here
        if self._batch_recipe is None:
            self._batch_recipe = parse_noise(self.noise)
        if self._batch_generator is None or self._batch_generator.device != clean.device:
            self._batch_generator = torch.Generator(device=clean.device).manual_seed(self.seed)
        batch["noisy"] = self._batch_recipe(clean, self._batch_generator)
        return batch

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)
