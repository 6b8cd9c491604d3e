"""GSSA: attention properties, band-count agnosticism, wavelength guides, gradients."""

from __future__ import annotations

import pytest
import torch

from hsikit.errors import UsageError
from hsikit.layers.gssa import GSSA, WavelengthEmbedding, band_coordinates


def _x(b=2, c=4, d=9, h=5, w=6, seed=0):
    return torch.randn(b, c, d, h, w, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


@pytest.mark.parametrize("bands", [12, 31, 103, 224])
@pytest.mark.parametrize("branch", ["guided", "self"])
def test_shapes_and_gradients(bands, branch):
    m = GSSA(4)
    x = torch.randn(2, 4, bands, 3, 4, requires_grad=True)
    wl = torch.linspace(420, 2450, bands)
    y = m(x, wl, branch=branch)
    assert y.shape == x.shape
    y.square().mean().backward()
    assert x.grad.abs().sum() > 0
    assert m.value.weight.grad.abs().sum() > 0 and m.proj.weight.grad.abs().sum() > 0
    guide_grad = m.guide.linear.weight.grad
    assert (guide_grad is not None and guide_grad.abs().sum() > 0) == (branch == "guided")


def test_matches_unfolded_definition():
    # y_d = W_o (sum_j A_dj W_v x_j) + x_d, with the two projections applied separately.
    m = GSSA(4).double()
    x = _x()
    for branch in ("guided", "self"):
        a = m.attention(x, branch=branch)
        v = torch.einsum("oc,bcjhw->bojhw", m.value.weight, x)
        mixed = torch.einsum("bdj,bcjhw->bcdhw", a, v)
        ref = torch.einsum("oc,bcdhw->bodhw", m.proj.weight, mixed) + x
        torch.testing.assert_close(m(x, branch=branch), ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(a.sum(-1), torch.ones(2, 9, dtype=x.dtype))


def test_self_branch_logits_and_permutation_equivariance():
    m = GSSA(4).double()
    x = _x()
    p = x.mean(dim=(3, 4)).transpose(1, 2)
    torch.testing.assert_close(m.attention(x, branch="self"), torch.softmax(p @ p.transpose(1, 2), -1))
    perm = torch.randperm(9, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(m(x[:, :, perm], branch="self"), m(x, branch="self")[:, :, perm])


def test_zero_guide_gives_band_mean():
    # G = 0 and beta = 0 -> A = 1/D, so y_d = W_o W_v mean_j(x_j) + x_d (models.md 2.8 golden test).
    m = GSSA(4).double()
    torch.nn.init.zeros_(m.guide.linear.weight)
    x = _x()
    mean = x.mean(dim=2, keepdim=True)
    expected = torch.einsum("oc,bcdhw->bodhw", m.proj.weight @ m.value.weight, mean) + x
    torch.testing.assert_close(m(x, branch="guided"), expected)


def test_guide_depends_on_wavelength_not_band_index():
    m = GSSA(4).double()
    x = _x(d=5)
    wl = torch.tensor([450.0, 550.0, 650.0, 850.0, 1650.0], dtype=torch.float64)
    # The same bands in a different order (with their wavelengths) give the same per-band output.
    perm = torch.tensor([3, 0, 4, 1, 2])
    torch.testing.assert_close(m(x[:, :, perm], wl[perm], branch="guided"), m(x, wl, branch="guided")[:, :, perm])
    # Different wavelengths -> different attention; batched wavelengths (B, D) work.
    a1 = m.attention(x, wl, branch="guided")
    a2 = m.attention(x, wl + 200, branch="guided")
    assert (a1 - a2).abs().max() > 1e-6
    ab = m.attention(x, torch.stack([wl, wl + 200]), branch="guided")
    torch.testing.assert_close(ab, torch.stack([a1[0], a2[1]]))


def test_band_position_fallback_and_parameter_count():
    t = band_coordinates(5)
    torch.testing.assert_close(t, torch.tensor([0.0, 0.25, 0.5, 0.75, 1.0]))
    torch.testing.assert_close(band_coordinates(2, torch.tensor([400.0, 2500.0])), torch.tensor([0.0, 1.0]))
    for c in (8, 16, 64):
        m = GSSA(c)
        assert sum(p.numel() for p in m.parameters()) == 2 * c * c + 31 * c + 31  # HSDT's GSSA count
    e = WavelengthEmbedding(4)
    assert e.features(torch.rand(3, 7)).shape == (3, 7, 31)


def test_training_branch_switch_uses_torch_rng():
    m = GSSA(4).double().train()
    torch.manual_seed(0)
    picks1 = [m.pick_branch() for _ in range(64)]
    torch.manual_seed(0)
    picks2 = [m.pick_branch() for _ in range(64)]
    assert picks1 == picks2 and {"self", "guided"} == set(picks1)
    m.eval()
    assert m.pick_branch() == "guided"
    assert GSSA(4, flex=True).eval().pick_branch() == "self"


def test_errors():
    m = GSSA(4)
    with pytest.raises(UsageError, match="expects x"):
        m(torch.randn(1, 3, 5, 2, 2))
    with pytest.raises(UsageError, match="wavelengths"):
        m(torch.randn(1, 4, 5, 2, 2), torch.linspace(400, 900, 6), branch="guided")


def test_real_enmap_tile_with_its_wavelengths(enmap_tile):
    from hsikit.io import open_cube

    cube = open_cube(enmap_tile)
    x = torch.from_numpy(cube.values.astype("float32") / 10000.0)[None, None].repeat(1, 4, 1, 1, 1)
    wl = torch.from_numpy(cube.coords["wavelength"].values.astype("float32"))
    m = GSSA(4).eval()
    a = m.attention(x, wl)
    assert a.shape == (1, 224, 224) and torch.isfinite(a).all()
    y = m(x, wl)
    assert y.shape == x.shape and torch.isfinite(y).all()
    # The fallback (band position) is a different guide for EnMAP's irregular VNIR/SWIR sampling.
    assert (m.attention(x) - a).abs().max() > 1e-6


def test_band_table_is_hsdts_fixed_guide():
    """guide_bands=31: the released GSSA's Linear(C, 31) table, same parameter count, 31 bands only."""
    from hsikit.layers.gssa import BandTable

    c = 8
    m = GSSA(c, guide_bands=31).double()
    assert isinstance(m.guide, BandTable)
    assert sum(p.numel() for p in m.parameters()) == sum(p.numel() for p in GSSA(c).parameters())
    x = _x(c=c, d=31)
    with torch.no_grad():
        m.guide.linear.weight.normal_()
        m.guide.linear.bias.normal_()
    # logits <p_d, g_j> + beta_j with g_j, beta_j row j of the table, whatever the wavelengths
    pooled = x.mean(dim=(3, 4)).transpose(1, 2)
    expect = torch.softmax(pooled @ m.guide.linear.weight.T + m.guide.linear.bias, dim=-1)
    torch.testing.assert_close(m.attention(x, branch="guided"), expect)
    torch.testing.assert_close(m.attention(x, torch.linspace(400, 700, 31), branch="guided"), expect)
    with pytest.raises(UsageError, match="31-band guide table"):
        m(_x(c=c, d=12), branch="guided")
