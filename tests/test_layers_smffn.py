"""SM-FFN: definition, shapes, gradients; the blocks reach HSDT's published parameter counts."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from hsikit.layers.gssa import GSSA
from hsikit.layers.s3conv import S3Conv
from hsikit.layers.smffn import SMFFN


def test_matches_definition_per_voxel():
    m = SMFFN(3).double()
    x = torch.randn(2, 3, 4, 2, 5, dtype=torch.float64)
    z = x[1, :, 2, 1, 3]  # one voxel's channel vector
    a, g = (m.gate.weight @ z + m.gate.bias).chunk(2)
    h = m.fc1.weight @ z + m.fc1.bias
    gelu = 0.5 * h * (1 + torch.erf(h / 2**0.5))
    expected = m.fc2.weight @ gelu + m.fc2.bias + a * torch.sigmoid(g)
    torch.testing.assert_close(m(x)[1, :, 2, 1, 3], expected, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("bands", [12, 31, 103, 224])
def test_shapes_and_gradients(bands):
    m = SMFFN(4)
    x = torch.randn(1, 4, bands, 3, 5, requires_grad=True)
    y = m(x)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert x.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in m.parameters())


def test_parameter_count_and_hidden():
    for c in (8, 16):
        assert sum(p.numel() for p in SMFFN(c).parameters()) == 6 * c * c + 5 * c
    assert SMFFN(4, hidden_features=6).fc1.out_features == 6


def _hsdt_params(channels: int, depth: int, down: set[int]) -> int:
    """Parameters of HSDT (in_ch=1) built from the blocks, following models.md section 2.2."""

    def block(c):  # TransformerBlock = SMFFN(GSSA(x))
        return [GSSA(c), SMFFN(c)]

    def plain(i, o):
        return [S3Conv(i, o), nn.BatchNorm3d(o), *block(o)]

    def full(i, o):
        return [nn.Conv3d(i, o, 3, padding=1, bias=False), nn.BatchNorm3d(o), *block(o)]

    mods = plain(1, channels)
    c = channels
    for i in range(depth):
        mods += full(c, 2 * c) if i in down else plain(c, c)
        c = 2 * c if i in down else c
    for i in reversed(range(depth)):
        mods += full(c, c // 2) if i in down else plain(c, c)
        c = c // 2 if i in down else c
    mods.append(nn.Conv3d(channels, 1, 3, padding=1, bias=True))
    return sum(p.numel() for m in mods for p in m.parameters())


def test_blocks_reach_published_hsdt_parameter_counts():
    # models.md 2.1: HSDT-S / M / L = 134,350 / 521,158 / 2,094,786 (paper: 0.13 M / 0.52 M / 2.09 M).
    assert _hsdt_params(8, 5, {1, 3}) == 134_350
    assert _hsdt_params(16, 5, {1, 3}) == 521_158
    assert _hsdt_params(16, 7, {1, 3, 5}) == 2_094_786


def test_transformer_block_on_real_bands(enmap_tile):
    from hsikit.io import open_cube

    cube = open_cube(enmap_tile)
    x = torch.from_numpy(cube.values.astype("float32") / 10000.0)[None, None, :, :16, :16]
    wl = torch.from_numpy(cube.coords["wavelength"].values.astype("float32"))
    conv, attn, ffn = S3Conv(1, 4), GSSA(4).eval(), SMFFN(4)
    y = ffn(attn(conv(x), wl))
    assert y.shape == (1, 4, 224, 16, 16) and torch.isfinite(y).all()
    assert F.mse_loss(y, torch.zeros_like(y)) > 0
