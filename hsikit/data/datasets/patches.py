"""Patch datasets from any set of cubes: random crops with space-only dihedral augmentation, grid tiles,
noisy/clean pairs with a degradation recipe applied on the fly, and batching by band count.

Samples follow torchgeo's dict convention: ``image`` (C, p, p) float32, ``wavelength`` (C,) float32 nm
(NaN unknown), ``scene`` (str), ``window`` (y0, x0, k: the crop origin in the scene and the dihedral
mode); :class:`NoisyPairs` adds ``noisy`` and ``clean`` (= ``image``).

Scenes with different band counts cannot share a batch tensor: :class:`BandGroupedBatchSampler` makes
every batch from samples with one band count (each model call sees one C, as band-agnostic 3-D
denoisers need), :func:`collate_padded` instead pads to the largest C with a ``band_mask``.

Randomness: a dataset owns a :class:`torch.Generator` seeded from ``seed``; :func:`seed_worker` (pass it
as ``worker_init_fn``) reseeds each DataLoader worker's copy from torch's per-worker seed, which
changes every epoch. Grid datasets and ``NoisyPairs(fixed=True)`` are deterministic per index (fixed
test inputs, like the QRNN3D ``rng(0)`` test files).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler, default_collate, get_worker_info

from hsikit.data.datasets.catalog import SceneArray
from hsikit.errors import UsageError


def dihedral(x: torch.Tensor, k: int) -> torch.Tensor:
    """One of the 8 symmetries of the square on the last two (spatial) axes: rot90 ``k % 4`` times, then
    a left-right flip if ``k >= 4``. The band axis is never touched."""
    y = torch.rot90(x, k % 4, dims=(-2, -1))
    return torch.flip(y, dims=(-1,)) if k % 8 >= 4 else y


def _as_scenes(scenes: Sequence[SceneArray | tuple[Any, Any]]) -> list[SceneArray]:
    out = []
    for i, s in enumerate(scenes):
        if isinstance(s, SceneArray):
            out.append(s)
        else:
            data, wl = s
            data = np.asarray(data, np.float32)
            out.append(SceneArray(f"cube{i}", data, np.asarray(wl if wl is not None else np.full(data.shape[0], np.nan), np.float32),
                                  "train", "", ""))
    if not out:
        raise UsageError("no scenes given")
    return out


class _PatchBase(Dataset):
    scenes: list[SceneArray]
    patch_size: int

    def _sample(self, s: SceneArray, y0: int, x0: int, k: int, index: int) -> dict[str, Any]:
        p = self.patch_size
        patch = torch.from_numpy(np.array(s.data[:, y0 : y0 + p, x0 : x0 + p]))
        return {"image": dihedral(patch, k).contiguous(), "wavelength": torch.from_numpy(np.array(s.wavelength)),
                "scene": s.id, "window": torch.tensor([y0, x0, k]), "index": index}

    @property
    def band_counts(self) -> list[int]:
        """Band count of every sample (for :class:`BandGroupedBatchSampler`)."""
        raise NotImplementedError


class RandomPatches(_PatchBase):
    """``length`` random ``patch_size`` crops from a set of scenes, with random dihedral augmentation.

    Sample ``i`` comes from scene ``scene_of[i]``, drawn once (from ``seed``) with probability proportional
    to the scene's number of crop positions raised to ``area_power`` (1: by area; 0: uniform over
    scenes; the default 0.5 keeps small scenes such as the 32 x 32 EnMAP tiles in play). The crop origin
    and the dihedral mode (``augment``; 8 modes, spatial only) are drawn at each access from the dataset's
    generator. Scenes smaller than ``patch_size`` are skipped.

    Parameters
    ----------
    scenes
        :class:`~hsikit.data.datasets.catalog.SceneArray` list, or ``(data (C, H, W), wavelength)`` pairs.
    patch_size
        Crop edge p in pixels.
    length
        Samples per epoch.
    augment
        Draw one of the 8 dihedral transforms per sample.
    seed
        Seed of the scene assignment and of the generator.
    area_power
        Exponent of the scene weights.
    """

    def __init__(self, scenes: Sequence[SceneArray | tuple[Any, Any]], patch_size: int = 32, length: int = 1000, *,
                 augment: bool = True, seed: int = 0, area_power: float = 0.5) -> None:
        all_scenes = _as_scenes(scenes)
        self.patch_size = int(patch_size)
        self.scenes = [s for s in all_scenes if min(s.data.shape[1:]) >= self.patch_size]
        self.skipped = [s.id for s in all_scenes if s not in self.scenes]
        if not self.scenes:
            raise UsageError(f"every scene is smaller than the patch size {patch_size}")
        self.length = int(length)
        self.augment = augment
        positions = np.array([(s.data.shape[1] - self.patch_size + 1) * (s.data.shape[2] - self.patch_size + 1)
                              for s in self.scenes], float)
        w = positions**area_power
        rng = np.random.default_rng(seed)
        self.scene_of = rng.choice(len(self.scenes), size=self.length, p=w / w.sum())
        self.generator = torch.Generator().manual_seed(int(seed))

    def __len__(self) -> int:
        return self.length

    @property
    def band_counts(self) -> list[int]:
        return [self.scenes[j].bands for j in self.scene_of]

    def __getitem__(self, index: int) -> dict[str, Any]:
        if not 0 <= index < self.length:
            raise IndexError(index)
        s = self.scenes[int(self.scene_of[index])]
        p, g = self.patch_size, self.generator
        y0 = int(torch.randint(0, s.data.shape[1] - p + 1, (1,), generator=g))
        x0 = int(torch.randint(0, s.data.shape[2] - p + 1, (1,), generator=g))
        k = int(torch.randint(0, 8, (1,), generator=g)) if self.augment else 0
        return self._sample(s, y0, x0, k, index)


class GridPatches(_PatchBase):
    """All ``patch_size`` tiles of each scene on a grid of ``stride`` (default: non-overlapping), the last
    row/column aligned to the scene edge so every pixel is covered; deterministic, no augmentation."""

    def __init__(self, scenes: Sequence[SceneArray | tuple[Any, Any]], patch_size: int = 32, stride: int | None = None) -> None:
        all_scenes = _as_scenes(scenes)
        self.patch_size = int(patch_size)
        self.stride = int(stride or patch_size)
        self.scenes = [s for s in all_scenes if min(s.data.shape[1:]) >= self.patch_size]
        self.skipped = [s.id for s in all_scenes if s not in self.scenes]
        if not self.scenes:
            raise UsageError(f"every scene is smaller than the patch size {patch_size}")
        self.windows: list[tuple[int, int, int]] = []
        for j, s in enumerate(self.scenes):
            h, w = s.data.shape[1:]
            ys = _starts(h, self.patch_size, self.stride)
            xs = _starts(w, self.patch_size, self.stride)
            self.windows.extend((j, y, x) for y in ys for x in xs)

    def __len__(self) -> int:
        return len(self.windows)

    @property
    def band_counts(self) -> list[int]:
        return [self.scenes[j].bands for j, _, _ in self.windows]

    def __getitem__(self, index: int) -> dict[str, Any]:
        j, y0, x0 = self.windows[index]
        return self._sample(self.scenes[j], y0, x0, 0, index)


def _starts(n: int, p: int, stride: int) -> list[int]:
    starts = list(range(0, n - p + 1, stride))
    if starts[-1] != n - p:
        starts.append(n - p)
    return starts


class NoisyPairs(Dataset):
    """Wrap a patch dataset: add ``noisy`` = recipe(``image``) and ``clean`` = ``image`` to each sample.

    Parameters
    ----------
    dataset
        A patch dataset (:class:`RandomPatches`, :class:`GridPatches`, ...).
    noise
        Noise spec or :class:`~hsikit.data.degrade.NoiseRecipe` (see :func:`hsikit.data.degrade.parse_noise`).
    seed
        Seed of the noise generator.
    fixed
        Deterministic noise per index (generator seeded with ``seed * 1_000_003 + index``) for fixed
        validation/test inputs; otherwise a running generator (reseeded per worker by :func:`seed_worker`).
    blur_ratio
        Also blur + decimate the noisy input (super-resolution pairs; ``noisy`` is then smaller).
    """

    def __init__(self, dataset: Dataset, noise: Any, *, seed: int = 0, fixed: bool = False, blur_ratio: int | None = None) -> None:
        from hsikit.data.degrade import parse_noise

        self.dataset = dataset
        self.recipe = parse_noise(noise) if noise is not None else None
        self.seed = int(seed)
        self.fixed = fixed
        self.blur_ratio = blur_ratio
        self.generator = torch.Generator().manual_seed(self.seed)

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    @property
    def band_counts(self) -> list[int]:
        return self.dataset.band_counts  # type: ignore[attr-defined]

    def __getitem__(self, index: int) -> dict[str, Any]:
        from hsikit.data.degrade import degrade

        sample = dict(self.dataset[index])
        clean = sample["image"]
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(index)) if self.fixed else self.generator
        sample["clean"] = clean
        sample["noisy"] = degrade(clean, self.recipe, blur_ratio=self.blur_ratio, generator=g).to(clean.dtype)
        return sample


def seed_worker(worker_id: int) -> None:
    """``worker_init_fn``: reseed every generator of this worker's dataset copy from torch's worker seed."""
    info = get_worker_info()
    if info is None:
        return
    ds: Any = info.dataset
    seen = 0
    while ds is not None and seen < 8:
        g = getattr(ds, "generator", None)
        if isinstance(g, torch.Generator):
            g.manual_seed((info.seed + 7919 * seen) % (2**63))
        ds = getattr(ds, "dataset", None)
        seen += 1


class BandGroupedBatchSampler(Sampler[list[int]]):
    """Batches of indices that all have the same band count.

    Indices are grouped by ``band_counts``, shuffled within the group (``shuffle``), cut into batches of
    ``batch_size`` (the last, smaller batch of a group kept unless ``drop_last``), and the batches of all
    groups are shuffled together. A new order every epoch (the generator advances).
    """

    def __init__(self, band_counts: Sequence[int], batch_size: int, *, shuffle: bool = True, drop_last: bool = False,
                 seed: int = 0) -> None:
        if batch_size < 1:
            raise UsageError(f"batch_size must be >= 1, got {batch_size}")
        self.groups: dict[int, list[int]] = {}
        for i, c in enumerate(band_counts):
            self.groups.setdefault(int(c), []).append(i)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.drop_last = drop_last
        self.generator = torch.Generator().manual_seed(int(seed))

    def _batches(self) -> list[list[int]]:
        out = []
        for idx in self.groups.values():
            order = [idx[int(j)] for j in torch.randperm(len(idx), generator=self.generator)] if self.shuffle else list(idx)
            for s in range(0, len(order), self.batch_size):
                b = order[s : s + self.batch_size]
                if len(b) == self.batch_size or not self.drop_last:
                    out.append(b)
        if self.shuffle:
            out = [out[int(j)] for j in torch.randperm(len(out), generator=self.generator)]
        return out

    def __iter__(self) -> Iterator[list[int]]:
        yield from self._batches()

    def __len__(self) -> int:
        n = 0
        for idx in self.groups.values():
            n += len(idx) // self.batch_size if self.drop_last else -(-len(idx) // self.batch_size)
        return n


def collate_patches(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples of one band count (torch ``default_collate``; strings become lists)."""
    counts = {int(s["image"].shape[0]) for s in samples}
    if len(counts) > 1:
        raise UsageError(f"a batch mixes band counts {sorted(counts)}: use BandGroupedBatchSampler or collate_padded")
    return default_collate(samples)


def collate_padded(samples: list[dict[str, Any]]) -> dict[str, Any]:
    """Stack samples of any band counts, zero-padding the band axis to the largest C.

    Adds ``band_mask`` (B, C_max) bool (True = real band); padded wavelengths are NaN.
    """
    cmax = max(int(s["image"].shape[0]) for s in samples)
    out: list[dict[str, Any]] = []
    for s in samples:
        c = int(s["image"].shape[0])
        t = dict(s)
        for key in ("image", "clean", "noisy"):
            if key in t:
                v = t[key]
                t[key] = torch.cat([v, v.new_zeros((cmax - c, *v.shape[1:]))]) if c < cmax else v
        wl = t["wavelength"]
        t["wavelength"] = torch.cat([wl, torch.full((cmax - c,), float("nan"), dtype=wl.dtype)]) if c < cmax else wl
        t["band_mask"] = torch.arange(cmax) < c
        out.append(t)
    return default_collate(out)
