"""MorpMamba (faithful notebook variant and selective-scan variant), the 3-D CNN and the trainer."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hsikit.classify.api import fit_classifier, predict_scene
from hsikit.classify.estimator import kinds
from hsikit.classify.modelfile import FittedClassifier
from hsikit.classify.morpmamba import MorpMamba
from hsikit.classify.neural import augment
from hsikit.layers.selective_scan import LinearRecurrence, MambaBlock
from hsikit.zoo import create_model, list_models

TILE = "enmap_potsdam_tile_96_0.tif"


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _params(m):
    return sum(p.numel() for p in m.parameters())


def test_parameter_counts_houston_setting():
    # University of Houston 2013: 15 whitened PCs, 15 classes, 4x4 patches (models.md 4.2: 67,013)
    faithful = MorpMamba(15, 15, patch=4, faithful=True)
    assert _params(faithful) == 67_013
    assert isinstance(faithful.ssm, LinearRecurrence)
    ours = MorpMamba(15, 15, patch=5)
    assert isinstance(ours.ssm, MambaBlock)
    assert abs(_params(ours) - 67_013) / 67_013 < 0.01
    assert kinds() == ["cnn3d", "morpmamba", "rf", "svm"]
    assert {"morpmamba", "cnn3d"} <= set(list_models("classify"))


def _dw_same(x, k):
    """Keras depthwise 'same' correlation, NHWC x (B,H,W,C), kernel (5,5,C)."""
    b, h, w, c = x.shape
    xp = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)))
    out = np.zeros_like(x)
    for u in range(5):
        for v in range(5):
            out += xp[:, u : u + h, v : v + w, :] * k[u, v, :]
    return out


def _notebook_reference(m, x_nchw):
    """models.md 4.2 written out in NHWC numpy from the torch weights."""
    g = {k: v.detach().double().numpy() for k, v in m.state_dict().items()}
    x = np.transpose(x_nchw.double().numpy(), (0, 2, 3, 1))  # (B,4,4,15)
    kk = lambda name: np.transpose(g[name][:, 0], (1, 2, 0))  # (C,1,5,5) -> (5,5,C)
    es, ds = -_dw_same(x, kk("spa_erode.conv.weight")), _dw_same(x, kk("spa_dilate.conv.weight"))
    xt = np.transpose(x, (0, 3, 1, 2))  # [B, bands, rows, cols]: bands = height, rows = width, cols = channels
    ep = np.transpose(-_dw_same(xt, kk("spe_erode.conv.weight")), (0, 2, 3, 1))
    dp = np.transpose(_dw_same(xt, kk("spe_dilate.conv.weight")), (0, 2, 3, 1))
    wc, bc = g["tokens.weight"][:, :, 0, 0], g["tokens.bias"]
    S = np.concatenate([es, ds], -1) @ wc.T + bc
    P = np.concatenate([ep, dp], -1) @ wc.T + bc
    centre = S[:, 2, :, :]  # (B, 4, 64)
    sig = lambda z: 1 / (1 + np.exp(-z))
    gs = sig(centre @ g["gate_s.weight"].T + g["gate_s.bias"])
    gp = sig(centre @ g["gate_p.weight"].T + g["gate_p.bias"])
    S2 = (S * gs[:, :, None, :]).reshape(-1, 16, 64)
    P2 = (P * gp[:, :, None, :]).reshape(-1, 16, 64)
    lin = lambda z, n: z @ g[f"{n}.weight"].T + g[f"{n}.bias"]
    q, k, v = lin(S2, "attn.q"), lin(P2, "attn.k"), lin(P2, "attn.v")
    heads = []
    for hd in range(4):
        sl = slice(16 * hd, 16 * hd + 16)
        a = q[..., sl] @ np.swapaxes(k[..., sl], 1, 2) / 4.0
        a = np.exp(a - a.max(-1, keepdims=True))
        heads.append((a / a.sum(-1, keepdims=True)) @ v[..., sl])
    t = np.concatenate(heads, -1)
    h = np.zeros((x.shape[0], 128))
    for step in range(16):
        h = lin(h, "ssm.state_proj") + lin(t[:, step], "ssm.input_proj")
    return lin(np.maximum(lin(h, "hidden"), 0), "classifier")


def test_faithful_variant_matches_the_notebook_computation():
    torch.manual_seed(0)
    m = MorpMamba(15, 15, patch=4, faithful=True).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn_like(p) * 0.2)  # random weights expose any transposed axis
    x = torch.randn(3, 15, 4, 4)
    with torch.no_grad():
        got = m(x).double().numpy()
    np.testing.assert_allclose(got, _notebook_reference(m, x), rtol=1e-4, atol=1e-4)


def test_selective_variant_any_band_count_and_centre_pixel():
    torch.manual_seed(0)
    m = MorpMamba(218, 6, patch=5, spectral="linear").eval()
    x = torch.randn(4, 218, 5, 5)
    with torch.no_grad():
        y = m(x)
        x2 = x.clone()
        x2[:, :, 2, 2] += 3.0  # the centre pixel drives the gate
        y2 = m(x2)
    assert y.shape == (4, 6) and not torch.allclose(y, y2)
    with pytest.raises(ValueError, match="in_channels == channels"):
        MorpMamba(218, 6, spectral="pca")


def test_augment_keeps_centre_pixel():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(64, 3, 5, 5)
    y = augment(x, gen)
    torch.testing.assert_close(y[:, :, 2, 2], x[:, :, 2, 2])
    assert not torch.equal(x, y)
    torch.testing.assert_close(torch.sort(y.flatten(1))[0], torch.sort(x.flatten(1))[0])


@pytest.fixture(scope="module")
def tile(shared_data):
    d = shared_data / "enmap_potsdam_tiles"
    return d / "images" / TILE, d / "labels" / TILE


@pytest.mark.parametrize("model,options", [
    ("morpmamba", {"max_epochs": 2, "batch_size": 256}),
    ("morpmamba", {"max_epochs": 1, "faithful": True, "batch_size": 256}),
    ("cnn3d", {"max_epochs": 2, "batch_size": 256}),
])
def test_neural_fit_save_load_predict(tile, tmp_path, model, options):
    f = fit_classifier(*tile, model=model, seed=0, options=options)
    fit = f.summary["fit"]
    assert fit["epochs_run"] == options["max_epochs"] and f.summary["heldout"]["pixels"] > 100
    assert f.summary["features"] == (15 if model == "morpmamba" else 30)
    loaded = FittedClassifier.load(f.save(tmp_path / "m.safetensors"))
    x = np.random.default_rng(0).normal(size=(7, f.prep.out_channels, f.patch, f.patch)).astype(np.float32)
    np.testing.assert_allclose(loaded.estimator.predict_proba(x), f.estimator.predict_proba(x), atol=1e-6)
    if model == "cnn3d":
        info = predict_scene(loaded, tile[0], tmp_path / "map.tif", progress=False)
        import rasterio

        with rasterio.open(tmp_path / "map.tif") as src:
            cls = src.read(1)
        assert set(np.unique(cls)) <= set(int(c) for c in f.codes)


def test_early_stopping_stops_without_improvement(tile):
    f = fit_classifier(*tile, model="cnn3d", seed=0, options={"max_epochs": 10, "lr": 0.0, "patience": 2, "weight_decay": 0.0})
    fit = f.summary["fit"]
    # with lr = 0 the stop-set accuracy never improves after epoch 1: stop after 1 + patience epochs
    assert fit["best_epoch"] == 1 and fit["epochs_run"] == 3


def test_zoo_builds_morpmamba():
    m = create_model("morpmamba", pretrained=False, in_channels=15, n_classes=15, patch=4, faithful=True)
    assert _params(m) == 67_013
