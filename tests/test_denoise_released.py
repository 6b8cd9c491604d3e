"""The released denoising weights (models/hsdt-s-sub): loaded by name from the repository, the
default of ``hsikit denoise``, and better than FastHyDe on real test-split EnMAP tiles."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import hsikit
from hsikit.cube import make_cube
from hsikit.data.datasets.catalog import SPLITS, load_scene
from hsikit.data.degrade import parse_noise
from hsikit.denoise.api import DEFAULT_MODEL
from hsikit.metrics import psnr
from hsikit.zoo import models_dir

REPO = Path(__file__).resolve().parents[1]


RELEASED = {"hsdt-s-sub": 134_663, "hsdt-m-sub": 521_783}  # name: parameters


@pytest.mark.parametrize("name", RELEASED)
def test_released_weights_are_in_the_repository(name):
    import hsikit.denoise.hsdt  # noqa: F401
    from hsikit.zoo import create_model

    folder = models_dir() / name
    assert folder.resolve() == (REPO / "models" / name).resolve()
    assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
    assert (folder / "README.md").is_file()  # the model card
    assert sum(p.numel() for p in create_model(name, pretrained=True).parameters()) == RELEASED[name]
    assert DEFAULT_MODEL == "hsdt-s-sub"


@pytest.mark.parametrize("name", RELEASED)
def test_released_models_beat_fasthyde_on_real_test_tiles(shared_data: Path, name: str):
    gains = []
    for i, sid in enumerate(s for s in SPLITS["test"] if s.startswith("enmap/")):  # never seen in training
        scene = load_scene(sid, shared_data)
        clean = np.ascontiguousarray(scene.data)
        noisy = parse_noise("gaussian:0.1")(torch.as_tensor(clean), 10 + i).numpy().astype(np.float32)
        cube = make_cube(noisy, wavelength=scene.wavelength)
        scores = {}
        for model in (name, "fasthyde"):
            out = hsikit.denoise(cube, model, progress=False, device="cpu").cube.values.clip(0, 1)
            scores[model] = psnr(out, clean, data_range=1.0)
        gains.append(scores[name] - scores["fasthyde"])
    assert len(gains) == 2
    assert min(gains) > 0.3 and np.mean(gains) > 0.6, gains
