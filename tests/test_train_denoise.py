"""Denoising training: crop stream, a resumable two-launch run, export into a zoo weights folder."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from hsikit.data.datasets.catalog import SPLITS, load_scene
from hsikit.train.denoise import CropStream, FixedCrops, SubspaceDenoiseModule
from hsikit.train.entry import fit, last_checkpoint
from hsikit.zoo import create_model, save_model

TRAIN = ("enmap/tile_64_0", "anomaly/hydice-urban")
VAL = ("enmap/tile_64_32",)


@pytest.fixture(scope="module")
def scenes(shared_data):
    return [load_scene(s, shared_data) for s in TRAIN], [load_scene(s, shared_data) for s in VAL]


def test_crop_stream_band_subsets_and_noise(scenes):
    train, _ = scenes
    assert not {s.id for s in train} & set(SPLITS["test"])
    it = iter(CropStream(train, crop=24, min_bands=12, seed=1))
    counts = set()
    for _ in range(6):
        item = next(it)
        c, h, w = item["clean"].shape
        counts.add(c)
        assert 12 <= c and h <= 24 and w <= 24 and item["wavelength"].shape == (c,)
        assert torch.all(torch.diff(item["wavelength"]) != 0)
        assert not torch.equal(item["clean"], item["noisy"])
        assert float(item["clean"].min()) >= 0 and float(item["clean"].max()) <= 1
    assert len(counts) > 1  # random band counts


def test_fit_resume_and_export(scenes, tmp_path):
    train, val = scenes
    cfg = {"channels": 4, "num_half_layer": 3, "downsample": (1,), "k": 4}
    torch.manual_seed(0)

    def launch(steps: int):
        module = SubspaceDenoiseModule(cfg, patch=16, patches=2, reuse=2)
        loader = DataLoader(CropStream(train, crop=32, seed=0), batch_size=1)
        vals = DataLoader(FixedCrops(val, crop=16, recipes=("gaussian:0.1",)), batch_size=1)
        return fit(module, loader, vals, tmp_path / "run", max_steps=steps, val_every=2, config={"test": True},
                   accelerator="cpu")

    first = launch(2)
    assert first.global_step == 2 and last_checkpoint(tmp_path / "run") is not None
    assert (tmp_path / "run" / "checkpoints" / "best.ckpt").is_file()
    second = launch(3)  # resumes from last.ckpt: one more step
    assert second.global_step == 3
    module = second.lightning_module
    folder = save_model(module.model, tmp_path / "w", name="hsdt-s-sub", config=dict(module.hparams["model_config"]))
    loaded = create_model("hsdt-s-sub", weights=folder)
    x = torch.as_tensor(np.asarray(val[0].data[:20, :16, :16]))[None]
    with torch.no_grad():
        a = module.model.eval()(x, sigma=0.05)
        b = loaded(x, sigma=0.05)
    torch.testing.assert_close(a, b)


def test_relative_loss_weighs_noise_levels_alike(scenes, tmp_path):
    """loss_norm="input": a window's MSE is divided by its noisy input's MSE, so the loss is the
    relative error whatever the noise level."""
    train, val = scenes
    cfg = {"channels": 4, "num_half_layer": 3, "downsample": (1,), "k": 4}
    with pytest.raises(ValueError, match="loss_norm"):
        SubspaceDenoiseModule(cfg, loss_norm="psnr")
    module = SubspaceDenoiseModule(cfg, patch=16, patches=2, reuse=2, loss_norm="input")
    loader = DataLoader(CropStream(train, crop=32, seed=0), batch_size=1)
    vals = DataLoader(FixedCrops(val, crop=16, recipes=("gaussian:0.1",)), batch_size=1)
    trainer = fit(module, loader, vals, tmp_path / "run", max_steps=2, val_every=2, config={}, accelerator="cpu")
    loss = float(trainer.callback_metrics["train/loss"])
    # the untrained model is FastHyDe, which removes most of the noise: relative error well below 1
    assert 0 < loss < 1


def test_init_from_released_weights(tmp_path):
    from hsikit.train.denoise import init_from

    cfg = {"channels": 4, "num_half_layer": 3, "downsample": (1,), "k": 4}
    torch.manual_seed(1)
    src = create_model("hsdt-s-sub", pretrained=False, **cfg)
    folder = save_model(src, tmp_path / "w", name="hsdt-s-sub", config=cfg)
    module = SubspaceDenoiseModule(cfg)
    assert any(not torch.equal(a, b) for a, b in zip(module.model.state_dict().values(), src.state_dict().values()))
    init_from(module, folder)
    for a, b in zip(module.model.state_dict().values(), src.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    with pytest.raises(Exception):  # another architecture does not load
        init_from(SubspaceDenoiseModule({**cfg, "channels": 8}), folder)



def test_sparse_front_end_in_training_matches_inference(scenes):
    """sparse="auto": the module cleans noisy crops as ``hsikit.denoise(..., sparse="auto")`` does."""
    from hsikit.data.degrade import mixture_noise
    from hsikit.denoise.sparse import remove_sparse_noise

    train, _ = scenes
    cfg = {"channels": 4, "num_half_layer": 3, "downsample": (1,), "k": 4}
    with pytest.raises(ValueError, match="sparse"):
        SubspaceDenoiseModule(cfg, sparse="yes")
    clean = torch.from_numpy(np.ascontiguousarray(train[0].data[:, :32, :32]).copy())
    noisy = mixture_noise(clean, generator=0)
    on, off = SubspaceDenoiseModule(cfg, sparse="auto"), SubspaceDenoiseModule(cfg)
    assert off._input(noisy) is noisy
    cleaned = on._input(noisy)
    assert not torch.equal(cleaned, noisy)
    torch.testing.assert_close(cleaned, remove_sparse_noise(noisy).cleaned, rtol=0, atol=0)
