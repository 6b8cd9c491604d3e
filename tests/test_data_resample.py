"""Cubic-convolution upsampling: the dense-matrix path (narrow tiles) equals the polyphase conv path."""

from __future__ import annotations

import pytest
import torch

from hsikit.data import resample


@pytest.mark.parametrize("ratio,phase", [(2, None), (3, None), (4, 2.0), (3, -0.5)])
def test_dense_matrix_path_equals_the_conv_path(monkeypatch, ratio, phase):
    x = torch.rand(2, 3, 17, 23, dtype=torch.float64)
    dense = resample.upsample(x, ratio, phase)
    monkeypatch.setattr(resample, "DENSE_MAX", 0)
    conv = resample.upsample(x, ratio, phase)
    assert dense.shape == conv.shape == (2, 3, 17 * ratio, 23 * ratio)
    torch.testing.assert_close(dense, conv, rtol=0, atol=1e-13)


def test_constant_and_ramp_are_reproduced():
    f64 = dict(dtype=torch.float64)
    yy, xx = torch.meshgrid(torch.arange(12.0, **f64), torch.arange(15.0, **f64), indexing="ij")
    up = resample.upsample((0.5 + 0.1 * yy + 0.2 * xx)[None], 3)[0]
    # HR pixel j of aligned grids sits at LR coordinate (j - 1) / 3
    hy, hx = torch.meshgrid((torch.arange(36.0, **f64) - 1) / 3, (torch.arange(45.0, **f64) - 1) / 3, indexing="ij")
    torch.testing.assert_close(up[6:-6, 6:-6], (0.5 + 0.1 * hy + 0.2 * hx)[6:-6, 6:-6])
    torch.testing.assert_close(resample.upsample(torch.full((1, 5, 7), 2.5), 4), torch.full((1, 20, 28), 2.5))
