"""Classical pansharpening methods on synthetic scenes: shapes, constants, zero injection, tiling."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from hsikit.errors import UsageError
from hsikit.pansharpen.classical import METHODS, apply, fit, fuse, halo
from hsikit.data.resample import centre_phase, upsample

MRA = ("mtf-glp", "mtf-glp-fs", "mtf-glp-hpm")


def _smooth_cube(bands: int, h: int, w: int, seed: int = 0, period: float = 12.0) -> torch.Tensor:
    """Positive cube of a few low-frequency sinusoids (period >= ``period`` LR pixels), float64."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(h, dtype=torch.float64)[:, None]
    x = torch.arange(w, dtype=torch.float64)[None, :]
    out = []
    for _ in range(bands):
        a = torch.rand(3, generator=g, dtype=torch.float64)
        ph = 2 * math.pi * torch.rand(2, generator=g, dtype=torch.float64)
        out.append(1 + 0.3 * a[0] * torch.sin(2 * math.pi * x / (period * (1 + a[1])) + ph[0])
                   + 0.3 * a[2] * torch.cos(2 * math.pi * y / (period * (1 + a[1])) + ph[1]))
    return torch.stack(out)


@pytest.mark.parametrize("ratio", [2, 3, 4, 6])
@pytest.mark.parametrize("method", METHODS)
def test_shapes_dtype_any_band_count(method: str, ratio: int) -> None:
    hs = _smooth_cube(7, 10, 12).float()
    g = torch.Generator().manual_seed(1)
    pan = upsample(hs.mean(0, keepdim=True), ratio)[0] + 0.05 * torch.rand(10 * ratio, 12 * ratio, generator=g)
    f = fuse(hs, pan, method=method)  # ratio inferred
    assert f.shape == (7, 10 * ratio, 12 * ratio) and f.dtype == torch.float32
    assert torch.isfinite(f).all()


def test_enmap_band_count_batched_windows() -> None:
    hs = _smooth_cube(224, 8, 8).float()
    pan = upsample(hs[:60].mean(0, keepdim=True), 3)[0]
    fusion = fit(hs, pan, 3, "mtf-glp-hpm")
    batch = apply(fusion, torch.stack([hs, hs.flip(-1)]), torch.stack([pan, pan.flip(-1)]))
    assert batch.shape == (2, 224, 24, 24)
    torch.testing.assert_close(batch[0], apply(fusion, hs, pan))
    torch.testing.assert_close(batch[1], apply(fusion, hs.flip(-1), pan.flip(-1)))


@pytest.mark.parametrize("method", METHODS)
def test_constant_scene_stays_constant(method: str) -> None:
    values = torch.tensor([0.1, 0.25, 0.4, 0.05], dtype=torch.float64)
    hs = values[:, None, None].expand(4, 9, 9).clone()
    pan = torch.full((36, 36), 0.2, dtype=torch.float64)
    f = fuse(hs, pan, 4, method)
    torch.testing.assert_close(f, values[:, None, None].expand(4, 36, 36), atol=1e-12, rtol=0)


@pytest.mark.parametrize("method", MRA)
@pytest.mark.parametrize("ratio", [2, 3, 4])
def test_mra_injects_nothing_from_a_ramp_pan(method: str, ratio: int) -> None:
    """A linear ramp has no detail above the LR band: the pyramid reproduces it, so F = up(M)."""
    hs = _smooth_cube(5, 40, 40)
    yy, xx = torch.meshgrid(torch.arange(40 * ratio, dtype=torch.float64),
                            torch.arange(40 * ratio, dtype=torch.float64), indexing="ij")
    pan = 1.0 + 0.01 * yy + 0.02 * xx
    f = fuse(hs, pan, ratio, method)
    up = upsample(hs, ratio)
    inner = slice(halo(ratio), -halo(ratio))
    assert f[:, inner, inner].numel() >= 5 * 20 * 20
    torch.testing.assert_close(f[:, inner, inner], up[:, inner, inner], atol=1e-9, rtol=0)
    # ... while a PAN with texture does inject
    g = torch.Generator().manual_seed(0)
    textured = pan + 0.05 * torch.rand(pan.shape, generator=g, dtype=torch.float64)
    assert (fuse(hs, textured, ratio, method) - up)[:, inner, inner].abs().max() > 1e-3


@pytest.mark.parametrize("method", ["gsa", "bt-h"])
def test_cs_injection_vanishes_when_pan_is_the_ms_intensity(method: str) -> None:
    """A PAN that is a combination of the (smooth) upsampled bands carries nothing new."""
    ratio = 4
    hs = _smooth_cube(6, 32, 32, period=24.0)
    up = upsample(hs, ratio)
    w = torch.tensor([0.1, 0.3, 0.2, 0.25, 0.1, 0.05], dtype=torch.float64)
    pan = torch.einsum("bhw,b->hw", up, w)
    inner = slice(halo(ratio), -halo(ratio))
    assert up[:, inner, inner].numel() >= 6 * 60 * 60
    smooth = (fuse(hs, pan, ratio, method) - up)[:, inner, inner]
    g = torch.Generator().manual_seed(0)
    detail = 0.05 * torch.randn(pan.shape, generator=g, dtype=torch.float64)
    textured = (fuse(hs, pan + detail, ratio, method) - up)[:, inner, inner]
    # the MTF low-pass takes ~1 % off these long periods, so the LR fit (and BT-H's std matching, made
    # at LR) is slightly off: small, not exactly zero
    assert smooth.abs().max() < 0.04 * hs.min()
    assert smooth.norm() < 0.1 * textured.norm()


def test_gsa_injects_the_pan_detail_with_regression_gains() -> None:
    """Two bands equal to the PAN's LR content: intensity = that band, gain 1, F = the PAN (same mean)."""
    ratio = 2
    g = torch.Generator().manual_seed(3)
    sharp = torch.rand(48, 48, generator=g, dtype=torch.float64)
    from hsikit.data.degrade import blur_decimate

    lr = blur_decimate(sharp[None, None], ratio, 0.3)[0, 0]
    hs = torch.stack([lr, lr])
    f = fuse(hs, sharp, ratio, "gsa", offset=1, phase=1)
    fusion = fit(hs, sharp, ratio, "gsa", offset=1, phase=1)
    torch.testing.assert_close(fusion.params["gain"], torch.ones(2, dtype=torch.float64), atol=1e-9, rtol=0)
    err_fused = (f[0] - sharp)[8:-8, 8:-8].abs().mean()
    err_up = (upsample(lr, ratio, 1) - sharp)[8:-8, 8:-8].abs().mean()
    assert err_fused < 0.2 * err_up


@pytest.mark.parametrize("ratio", [2, 3, 4, 6])
def test_upsample_reproduces_samples_and_ramps(ratio: int) -> None:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 7, 9, generator=g, dtype=torch.float64)
    o = ratio // 2
    torch.testing.assert_close(upsample(x, ratio, o)[:, o::ratio, o::ratio], x)
    yy, xx = torch.meshgrid(torch.arange(12.0, dtype=torch.float64), torch.arange(12.0, dtype=torch.float64), indexing="ij")
    y = upsample((2 * yy - xx)[None], ratio)[0]
    hr = (torch.arange(12 * ratio, dtype=torch.float64) - centre_phase(ratio)) / ratio
    ref = 2 * hr[:, None] - hr[None, :]
    k = 2 * ratio
    torch.testing.assert_close(y[k:-k, k:-k], ref[k:-k, k:-k], atol=1e-12, rtol=0)


def test_upsample_uses_the_align_corners_false_grid_for_centre_phase() -> None:
    """Same sample positions as torch's align_corners=False (bilinear is exact on a ramp, as ours)."""
    x = torch.arange(8, dtype=torch.float64).repeat(8, 1)[None, None]
    ours = upsample(x[0, 0], 4)
    theirs = torch.nn.functional.interpolate(x, scale_factor=4, mode="bilinear", align_corners=False)[0, 0]
    torch.testing.assert_close(ours[:, 8:-8], theirs[:, 8:-8], atol=1e-12, rtol=0)


def test_bad_inputs() -> None:
    hs = torch.ones(3, 8, 8)
    with pytest.raises(UsageError, match="not 2 x the cube"):
        fuse(hs, torch.ones(15, 16), 2)
    with pytest.raises(UsageError, match="not an integer multiple"):
        fuse(hs, torch.ones(20, 20))
    with pytest.raises(UsageError, match="unknown pansharpening method"):
        fuse(hs, torch.ones(16, 16), 2, "ihs")
    with pytest.raises(UsageError, match="NaN"):
        fuse(torch.full((3, 8, 8), float("nan")), torch.ones(16, 16), 2, "gsa")
    with pytest.raises(UsageError, match="gnyq"):
        fuse(hs, torch.ones(16, 16), 2, gnyq=[0.3, 0.3])
    with pytest.raises(UsageError, match="ratio 1"):
        fuse(hs, torch.ones(8, 8))


def test_per_band_gains_group_the_pyramids() -> None:
    hs = _smooth_cube(4, 12, 12)
    g = torch.Generator().manual_seed(2)
    pan = upsample(hs.mean(0, keepdim=True), 2)[0] + 0.05 * torch.rand(24, 24, generator=g, dtype=torch.float64)
    mixed = fuse(hs, pan, 2, "mtf-glp", gnyq=[0.3, 0.2, 0.3, 0.2])
    torch.testing.assert_close(mixed[[0, 2]], fuse(hs[[0, 2]], pan, 2, "mtf-glp", gnyq=0.3))
    torch.testing.assert_close(mixed[[1, 3]], fuse(hs[[1, 3]], pan, 2, "mtf-glp", gnyq=0.2))
    assert not torch.allclose(mixed[1], fuse(hs, pan, 2, "mtf-glp")[1])


@pytest.mark.parametrize("ratio", [2, 3])
def test_mtf_glp_fs_recovers_a_linear_band_of_the_pan_exactly(ratio: int) -> None:
    """Band = 2 (its LR PAN) + 0.1: the full-scale gain is exactly 2 and F = 2 P + 0.1 everywhere."""
    from hsikit.data.degrade import blur_decimate

    g = torch.Generator().manual_seed(5)
    pan = torch.rand(12 * ratio, 12 * ratio, generator=g, dtype=torch.float64)
    lr = blur_decimate(pan[None, None], ratio, 0.3)[0, 0]
    hs = torch.stack([2 * lr + 0.1, lr])
    o = ratio // 2
    fusion = fit(hs, pan, ratio, "mtf-glp-fs", offset=o, phase=o)
    torch.testing.assert_close(fusion.params["gain"], torch.tensor([2.0, 1.0], dtype=torch.float64), atol=1e-12, rtol=0)
    f = apply(fusion, hs, pan)
    torch.testing.assert_close(f[0], 2 * pan + 0.1, atol=1e-12, rtol=0)
    torch.testing.assert_close(f[1], pan, atol=1e-12, rtol=0)
