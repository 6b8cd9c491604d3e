"""SpectralEarth patch datasets (pretraining single / multi-temporal pairs, downstream segmentation) and
per-band normalisation statistics that travel with the model.

Samples: ``image`` (202, 128, 128) float32 in stored DN (reflectance x 10000; nodata -32768 kept as is
unless ``reflectance=True``), ``wavelength`` (202,) nm, ``location`` (str), ``timestamp`` (int: index
of the file within its location); pairs add ``image2`` / ``timestamp2``; downstream samples add
``mask`` (128, 128) int64. Normalisation is not the dataset's business: compute statistics once with
:func:`band_statistics` and put a :class:`Normalize` module (mean/std as buffers, so they are saved in
the model's state dict and weights file) in front of the network.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from hsikit.errors import UsageError
from hsikit.io.spectralearth import read_split, scan_archive

MODES = ("single", "pair", "all")


def _read_image(path: Path) -> tuple[np.ndarray, np.ndarray, float | None]:
    from hsikit.io.spectralearth import read_patch

    cube = read_patch(path)
    return np.asarray(cube.values), np.asarray(cube["wavelength"].values, np.float32), cube.rio.nodata


class SpectralEarth(Dataset):
    """A SpectralEarth-style archive ``<root>/enmap/<location>/<k>.tif`` as a map-style dataset.

    Parameters
    ----------
    root
        Archive root.
    mode
        ``"single"``: one sample per location, a random timestamp at each access; ``"pair"``: locations
        with >= 2 timestamps, two different ones per sample (``image``, ``image2``, for multi-temporal /
        contrastive training); ``"all"``: one sample per file.
    task, split, splits
        Downstream mode: read ``<splits>/<task>/<split>.txt`` (``splits`` default ``<root>/splits``) and
        the label of each entry from ``<root>/<product>/<entry>`` with ``task = "enmap_<product>"``.
    classes
        Downstream: raw label values to keep, mapped to 0..n-1 in this order; every other value becomes
        the background index n (the last one, as SpectralEarth does, so a loss can ignore it).
    reflectance
        Return reflectance (DN * 1e-4, nodata -> NaN) instead of DN.
    transforms
        Callable applied to the sample dict.
    seed
        Seed of the timestamp draws.
    """

    def __init__(
        self,
        root: str | os.PathLike,
        *,
        mode: str = "single",
        task: str | None = None,
        split: str = "train",
        splits: str | os.PathLike | None = None,
        classes: Sequence[int] | None = None,
        reflectance: bool = False,
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        seed: int = 0,
    ) -> None:
        if mode not in MODES:
            raise UsageError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        self.root = Path(root)
        self.mode = mode
        self.task = task
        self.reflectance = reflectance
        self.transforms = transforms
        self.generator = torch.Generator().manual_seed(int(seed))
        self.classes = None if classes is None else [int(c) for c in classes]
        self.label_dir: Path | None = None
        if task is not None:
            entries = read_split(splits if splits is not None else self.root / "splits", task, split)
            product = task.split("_", 1)[1] if "_" in task else task
            self.label_dir = self.root / product
            self.items: list[tuple[str, list[Path]]] = [(e.split("/")[0], [self.root / "enmap" / e]) for e in entries]
            return
        archive = scan_archive(self.root)
        if mode == "all":
            self.items = [(loc, [f]) for loc, files in archive.items() for f in files]
        elif mode == "pair":
            self.items = [(loc, files) for loc, files in archive.items() if len(files) >= 2]
            if not self.items:
                raise UsageError("no location has two or more timestamps: 'pair' mode needs multi-temporal data")
        else:
            self.items = list(archive.items())

    def __len__(self) -> int:
        return len(self.items)

    @property
    def multitemporal_fraction(self) -> float:
        """Share of locations with more than one timestamp."""
        return float(np.mean([len(f) > 1 for _, f in self.items]))

    def _image(self, path: Path) -> tuple[torch.Tensor, torch.Tensor]:
        data, wl, nodata = _read_image(path)
        img = torch.from_numpy(data.astype(np.float32))
        if self.reflectance:
            if nodata is not None:
                img = torch.where(torch.from_numpy(data == nodata), float("nan"), img)
            img = img * 1e-4
        return img, torch.from_numpy(wl)

    def _label(self, entry_path: Path) -> torch.Tensor:
        import rasterio

        assert self.label_dir is not None
        rel = entry_path.relative_to(self.root / "enmap")
        with rasterio.open(self.label_dir / rel) as src:
            raw = src.read(1).astype(np.int64)
        if self.classes is None:
            return torch.from_numpy(raw)
        out = np.full(raw.shape, len(self.classes), np.int64)
        for i, c in enumerate(self.classes):
            out[raw == c] = i
        return torch.from_numpy(out)

    def __getitem__(self, index: int) -> dict[str, Any]:
        loc, files = self.items[index]
        if self.mode == "pair" and self.task is None:
            i, j = (int(v) for v in torch.randperm(len(files), generator=self.generator)[:2])
        else:
            i = int(torch.randint(0, len(files), (1,), generator=self.generator)) if len(files) > 1 else 0
            j = None
        image, wl = self._image(files[i])
        sample: dict[str, Any] = {"image": image, "wavelength": wl, "location": loc, "timestamp": i,
                                  "path": str(files[i])}
        if j is not None:
            sample["image2"], _ = self._image(files[j])
            sample["timestamp2"] = j
        if self.label_dir is not None:
            sample["mask"] = self._label(files[i])
        if self.transforms is not None:
            sample = self.transforms(sample)
        return sample


def band_statistics(
    images: Dataset | Iterable[Any], *, nodata: float | None = -32768, max_samples: int | None = None, key: str = "image",
) -> dict[str, np.ndarray]:
    """Per-band mean and standard deviation over a dataset (streamed, float64 sums).

    Parameters
    ----------
    images
        A dataset of sample dicts (``key`` holds a (C, H, W) tensor), or an iterable of (C, H, W) arrays.
    nodata
        Value ignored in the statistics (and NaN always).
    max_samples
        Use at most this many samples (the first ones).

    Returns
    -------
    dict
        ``mean`` and ``std`` (C,) float64 (population std), ``count`` (C,) int64 pixels per band.
    """
    total = sq = count = None
    iterator = (images[i] for i in range(len(images))) if isinstance(images, Dataset) else iter(images)  # type: ignore[arg-type]
    for n, item in enumerate(iterator):
        if max_samples is not None and n >= max_samples:
            break
        x = item[key] if isinstance(item, dict) else item
        x = (x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)).astype(np.float64)
        x = x.reshape(x.shape[0], -1)
        ok = np.isfinite(x)
        if nodata is not None:
            ok &= x != nodata
        v = np.where(ok, x, 0.0)
        if total is None:
            total, sq, count = np.zeros(x.shape[0]), np.zeros(x.shape[0]), np.zeros(x.shape[0], np.int64)
        if x.shape[0] != total.shape[0]:
            raise UsageError(f"band count changes from {total.shape[0]} to {x.shape[0]}")
        total += v.sum(1)
        sq += np.einsum("ij,ij->i", v, v)
        count += ok.sum(1)
    if total is None:
        raise UsageError("no samples to compute statistics from")
    c = np.maximum(count, 1)
    mean = total / c
    var = np.maximum(sq / c - mean**2, 0.0)
    return {"mean": mean, "std": np.sqrt(var), "count": count}


class Normalize(torch.nn.Module):
    """``(x - mean) / std`` per band, with mean and std stored as buffers (saved with the model's weights).

    Works on (C, H, W) and (B, C, H, W) tensors; called on a sample dict it normalises ``keys``. Bands
    with std 0 are only centred.
    """

    def __init__(self, mean: Any, std: Any, keys: Sequence[str] = ("image", "image2")) -> None:
        super().__init__()
        m = torch.as_tensor(np.asarray(mean, np.float32))
        s = torch.as_tensor(np.asarray(std, np.float32))
        if m.shape != s.shape or m.ndim != 1:
            raise UsageError(f"mean and std must be (C,) vectors of one length, got {tuple(m.shape)} and {tuple(s.shape)}")
        self.register_buffer("mean", m)
        self.register_buffer("std", torch.where(s > 0, s, torch.ones_like(s)))
        self.keys = tuple(keys)

    @classmethod
    def from_statistics(cls, stats: dict[str, Any], **kw: Any) -> Normalize:
        return cls(stats["mean"], stats["std"], **kw)

    def _normalize(self, x: torch.Tensor) -> torch.Tensor:
        shape = (-1, 1, 1)
        return (x - self.mean.view(shape).to(x)) / self.std.view(shape).to(x)

    def forward(self, x: Any) -> Any:
        if isinstance(x, dict):
            out = dict(x)
            for k in self.keys:
                if k in out:
                    out[k] = self._normalize(out[k])
            return out
        return self._normalize(x)
