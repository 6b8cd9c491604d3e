"""Fixed denoising test sets as files, in the QRNN3D layout: one ``.mat`` per scene with ``gt`` and
``input`` (H x W x C, float64, MATLAB order) and, for Gaussian recipes, ``sigma``.

The reference protocol generates noise once and scores on the stored files (``../shared/docs/models.md``
1.1). :func:`write_test_set` does that for any scenes and recipe (scene ``i`` seeded with ``seed + i``),
and :class:`MatPairs` reads such files back, including ones made by the original MATLAB generators.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import Dataset

from hsikit.data.datasets.catalog import SceneArray
from hsikit.errors import InputError, UsageError


def _file_name(scene_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "__", scene_id) + ".mat"


def write_test_set(
    scenes: Sequence[SceneArray], noise: Any, out_dir: str | os.PathLike, *, seed: int = 0,
    crop: int | None = None, overwrite: bool = True,
) -> list[Path]:
    """Write one ``.mat`` per scene: ``gt`` (clean), ``input`` (noisy), both H x W x C, plus ``sigma``.

    Parameters
    ----------
    scenes
        Loaded scenes (:func:`hsikit.data.datasets.catalog.load_scenes`), values in [0, 1].
    noise
        Noise spec or :class:`~hsikit.data.degrade.NoiseRecipe`; one recipe is used for all scenes,
        in order (round-robin recipes continue across scenes).
    out_dir
        Existing folder; files are named after the scene id (``cave/balloons`` -> ``cave__balloons.mat``)
        and written atomically.
    seed
        Scene ``i`` is degraded with a generator seeded ``seed + i``.
    crop
        Centre-crop every scene to ``crop`` x ``crop`` pixels first (QRNN3D: 512), if larger.

    Returns
    -------
    list of Path
        The files written.
    """
    from scipy.io import savemat

    from hsikit.data.degrade import parse_noise
    from hsikit.io.atomic import atomic_output

    folder = Path(out_dir)
    if not folder.is_dir():
        raise InputError("output folder does not exist", folder)
    recipe = parse_noise(noise)
    sigma = next((s.values[0] for s in recipe.steps if s.kind == "gaussian" and len(s.values) == 1), None)
    out = []
    for i, s in enumerate(scenes):
        data = np.asarray(s.data, np.float64)
        if crop is not None:
            h, w = data.shape[1:]
            y0, x0 = max((h - crop) // 2, 0), max((w - crop) // 2, 0)
            data = data[:, y0 : y0 + crop, x0 : x0 + crop]
        clean = torch.from_numpy(np.ascontiguousarray(data))
        noisy = recipe(clean, torch.Generator().manual_seed(seed + i)).numpy()
        record = {"gt": np.moveaxis(data, 0, -1), "input": np.moveaxis(noisy, 0, -1),
                  "wavelength": np.asarray(s.wavelength, np.float64), "noise": str(recipe), "scene": s.id}
        if sigma is not None:
            record["sigma"] = float(sigma)
        path = folder / _file_name(s.id)
        with atomic_output(path, overwrite=overwrite) as tmp:
            savemat(tmp, record, do_compression=True)
        out.append(path)
    return out


class MatPairs(Dataset):
    """A folder of ``.mat`` test files with ``gt`` and ``input`` (H x W x C) as noisy/clean samples.

    Samples: ``noisy``, ``clean`` (C, H, W) float32, ``wavelength`` (C,) (NaN when the file has none),
    ``scene`` (the file stem), ``sigma`` (float, NaN when absent). Files are sorted by name.
    """

    def __init__(self, folder: str | os.PathLike, *, gt_key: str = "gt", input_key: str = "input") -> None:
        self.folder = Path(folder)
        self.files = sorted(self.folder.glob("*.mat"))
        if not self.files:
            raise InputError("no .mat test files", self.folder)
        self.gt_key, self.input_key = gt_key, input_key

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, index: int) -> dict[str, Any]:
        from hsikit.io.matlab import matlab_variables, read_matlab_array

        path = self.files[index]
        gt = np.asarray(read_matlab_array(path, self.gt_key), np.float32)
        noisy = np.asarray(read_matlab_array(path, self.input_key), np.float32)
        if gt.shape != noisy.shape or gt.ndim != 3:
            raise UsageError(f"{self.gt_key} {gt.shape} and {self.input_key} {noisy.shape} must be equal H x W x C arrays")
        names = matlab_variables(path)
        c = gt.shape[-1]
        wl = np.asarray(read_matlab_array(path, "wavelength"), np.float32).reshape(-1) if "wavelength" in names else np.full(c, np.nan, np.float32)
        sigma = float(np.asarray(read_matlab_array(path, "sigma")).reshape(-1)[0]) if "sigma" in names else float("nan")
        return {"noisy": torch.from_numpy(np.ascontiguousarray(np.moveaxis(noisy, -1, 0))),
                "clean": torch.from_numpy(np.ascontiguousarray(np.moveaxis(gt, -1, 0))),
                "wavelength": torch.from_numpy(wl), "scene": path.stem, "sigma": sigma}
