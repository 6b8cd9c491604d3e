"""Learnable grey-scale morphology: scipy equality, bounds, soft form, subgradients, band counts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import rasterio
import scipy.ndimage as ndi
import torch

from hsikit.layers.morphology import Dilation2d, Erosion2d, dilation2d, erosion2d


def _scipy(x: np.ndarray, s: np.ndarray, dilate: bool) -> np.ndarray:
    f = ndi.grey_dilation if dilate else ndi.grey_erosion
    cval = -np.inf if dilate else np.inf
    return np.stack([[f(x[b, c], structure=s[c], mode="constant", cval=cval) for c in range(x.shape[1])]
                     for b in range(x.shape[0])])


@pytest.mark.parametrize("k", [(3, 3), (5, 5), (4, 2), (1, 5), (7, 1)])
def test_equals_scipy_nonflat(k):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 3, 9, 8))
    s = rng.standard_normal((3, *k))
    d = dilation2d(torch.tensor(x), torch.tensor(s)).numpy()
    e = erosion2d(torch.tensor(x), torch.tensor(s)).numpy()
    np.testing.assert_array_equal(d, _scipy(x, s, True))
    np.testing.assert_array_equal(e, _scipy(x, s, False))


def test_real_enmap_flat_filters(enmap_tile):
    with rasterio.open(enmap_tile) as src:
        cube = src.read().astype(np.float32)                    # (224, 32, 32)
    x = torch.from_numpy(cube)[None]
    dil, ero = Dilation2d(224, 5), Erosion2d(224, 5)
    with torch.no_grad():
        d, e = dil(x), ero(x)
    flat = np.zeros((224, 5, 5), np.float32)
    np.testing.assert_array_equal(d.numpy(), _scipy(cube[None], flat, True))
    np.testing.assert_array_equal(e.numpy(), _scipy(cube[None], flat, False))
    assert torch.all(d >= x) and torch.all(e <= x) and torch.any(d > x) and torch.any(e < x)
    # a flat 5x5 dilation is the 5x5 max filter
    np.testing.assert_array_equal(d[0, 100].numpy(), ndi.maximum_filter(cube[100], size=5, mode="constant", cval=-np.inf))


def test_impulse_response_hand_computed():
    x = torch.zeros(1, 1, 5, 5, dtype=torch.float64)
    x[0, 0, 2, 2] = 1.0
    s = torch.tensor([[[0.0, 0.5, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, -0.25]]], dtype=torch.float64)
    d = dilation2d(x, s)[0, 0]
    # out(i) = max_p x(i - p + 1) + s(p): the impulse reaches i = (2,2) + p - 1
    assert d[1, 2] == 1.5 and d[3, 3] == 0.75 and d[2, 2] == 1.0
    assert d[0, 0] == 0.5                                       # only zeros of x within reach: max s = 0.5


def test_erosion_is_dual_of_dilation_with_mirrored_structure():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 4, 11, 7, generator=g, dtype=torch.float64)
    s = torch.randn(4, 3, 5, generator=g, dtype=torch.float64)
    torch.testing.assert_close(erosion2d(x, s), -dilation2d(-x, s.flip(-1, -2)), rtol=0, atol=0)


@pytest.mark.parametrize("beta", [2.0, 20.0, 200.0])
def test_soft_form_bounds(beta):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(1, 2, 10, 10, generator=g, dtype=torch.float64)
    s = torch.randn(2, 3, 3, generator=g, dtype=torch.float64)
    hard, soft = dilation2d(x, s), dilation2d(x, s, beta=beta)
    assert torch.all(soft >= hard - 1e-12) and torch.all(soft <= hard + math.log(9) / beta + 1e-12)
    hard_e, soft_e = erosion2d(x, s), erosion2d(x, s, beta=beta)
    assert torch.all(soft_e <= hard_e + 1e-12) and torch.all(soft_e >= hard_e - math.log(9) / beta - 1e-12)


@pytest.mark.parametrize("bands", [12, 31, 103, 224])
@pytest.mark.parametrize("beta", [None, 5.0])
def test_shapes_and_gradients(bands, beta):
    g = torch.Generator().manual_seed(bands)
    x = torch.randn(2, bands, 6, 5, generator=g, requires_grad=True)
    dil, ero = Dilation2d(bands, 3, beta=beta), Erosion2d(bands, (5, 1), beta=beta)
    with torch.no_grad():
        dil.structure.normal_(0, 0.1, generator=g)
        ero.structure.normal_(0, 0.1, generator=g)
    out = dil(x) + ero(x)
    assert out.shape == x.shape
    out.sum().backward()
    for t in (x.grad, dil.structure.grad, ero.structure.grad):
        assert torch.isfinite(t).all() and t.abs().sum() > 0
    if beta is None:
        # exact max/min: each output pixel sends its unit gradient to exactly one input pixel and offset
        assert x.grad.sum().item() == pytest.approx(2 * 2 * bands * 30)
        torch.testing.assert_close(dil.structure.grad.sum((1, 2)), torch.full((bands,), 60.0))
        torch.testing.assert_close(ero.structure.grad.sum((1, 2)), torch.full((bands,), -60.0))


def test_bad_arguments():
    with pytest.raises(ValueError, match="structure"):
        dilation2d(torch.zeros(1, 3, 4, 4), torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="beta"):
        dilation2d(torch.zeros(1, 3, 4, 4), torch.zeros(3, 3, 3), beta=0.0)
