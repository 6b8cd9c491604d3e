"""ESSAformer: released parameter counts, shapes, wiring of the refining loop, gradients, residual option."""

from __future__ import annotations

import pytest
import torch

from hsikit.errors import UsageError
from hsikit.layers.essa import ESSAttention
from hsikit.layers.kernels.dispatch import kernel_mode
from hsikit.superres.essaformer import (
    ConvBlock,
    Downsample,
    ESSAformer,
    Upsample,
    convert_released_state_dict,
)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _expected(cin: int, d: int, scale: int) -> int:
    """Closed-form count of models.md 3.5 (all convs and linears with bias)."""
    def conv3(i: int, o: int) -> int:
        return 9 * i * o + o

    block = 2 * d + (d * 3 * d + 3 * d) + (d * d + d) + (4 * d * d + 2 * d) + conv3(2 * d, 2 * d) + (2 * d * d + d)
    if scale == 3:
        updown = conv3(d, 9 * d) + conv3(d, d // 9)
    else:
        n = scale.bit_length() - 1
        updown = n * (conv3(d, 4 * d) + conv3(d, d // 4))
    return conv3(cin, d) + conv3(d, cin) + 2 * block + updown


@pytest.mark.parametrize(
    ("cin", "scale", "count", "millions"),
    [
        (128, 4, 11_640_832, 11.64),
        (128, 8, 14_148_672, 14.15),
        (128, 2, 9_132_992, 9.13),
        (31, 4, 11_193_759, 11.19),
        (102, 4, 11_520_998, 11.52),
    ],
)
def test_parameter_counts_of_released_configs(cin, scale, count, millions):
    with torch.device("meta"):
        model = ESSAformer(cin, scale=scale, dim=256)
    n = _count(model)
    assert n == count == _expected(cin, 256, scale)
    assert round(n / 1e6, 2) == millions


def test_attention_holds_the_released_linears():
    block = ConvBlock(8)
    assert isinstance(block.attn, ESSAttention)
    assert tuple(block.attn.lnqkv.weight.shape) == (24, 8) and block.attn.lnqkv.bias is not None
    assert tuple(block.attn.ln.weight.shape) == (8, 8) and block.attn.ln.bias is not None


@pytest.mark.parametrize(("scale", "dim"), [(2, 16), (3, 18), (4, 16), (8, 8)])
@pytest.mark.parametrize("cin", [8, 31])
def test_output_shapes(scale, dim, cin):
    model = ESSAformer(cin, scale=scale, dim=dim).eval()
    with torch.no_grad():
        y = model(torch.rand(2, cin, 7, 9))
    assert y.shape == (2, cin, 7 * scale, 9 * scale)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize(("scale", "dim"), [(2, 8), (3, 9), (4, 12)])
def test_up_down_shapes(scale, dim):
    x = torch.rand(1, dim, 5, 6)
    up = Upsample(scale, dim)(x)
    assert up.shape == (1, dim, 5 * scale, 6 * scale)
    assert Downsample(scale, dim)(up).shape == x.shape


def test_convblock_computation():
    torch.manual_seed(0)
    block = ConvBlock(8, dropout=0.0).double()
    x = torch.randn(2, 8, 5, 6, dtype=torch.float64)
    with kernel_mode("reference"):
        got = block(x)
        t = block.attn.forward_image(
            torch.nn.functional.layer_norm(x.permute(0, 2, 3, 1), (8,), block.norm.weight, block.norm.bias)
            .permute(0, 3, 1, 2))
    c1, c3, c1b = block.body[0], block.body[3], block.body[6]
    u = torch.nn.functional.leaky_relu(c1(torch.cat((t, x), dim=1)), 0.2)
    want = c1b(torch.nn.functional.leaky_relu(c3(u), 0.2)) + x
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)


def test_refining_wiring_and_weight_sharing():
    torch.manual_seed(1)
    model = ESSAformer(5, scale=2, dim=8).double().eval()
    lr = torch.rand(1, 5, 4, 6, dtype=torch.float64)
    bu, bd, up, dn = model.convup, model.convdown, model.upsample, model.downsample
    with torch.no_grad():
        x0 = model.conv_first(lr)
        x1 = bu(up(x0))
        x2 = bd(dn(x1) + x0)
        x3 = bu(up(x2) + x1)
        x4 = bd(dn(x3) + x2)
        x5 = bu(up(x4) + x3)
        torch.testing.assert_close(model(lr), model.conv_last(x5), rtol=0, atol=0)
    # one Convup, one Convdown, one U, one Dn
    assert sum(isinstance(m, ConvBlock) for m in model.modules()) == 2
    assert sum(isinstance(m, Upsample) for m in model.modules()) == 1
    assert sum(isinstance(m, Downsample) for m in model.modules()) == 1


def test_gradients_reach_every_parameter():
    torch.manual_seed(2)
    model = ESSAformer(6, scale=2, dim=8).train()
    lr = torch.rand(2, 6, 5, 7)
    model(lr).square().mean().backward()
    for name, p in model.named_parameters():
        assert p.grad is not None, name
        assert torch.isfinite(p.grad).all(), name
        assert p.grad.abs().sum() > 0, name
    assert model.conv_first.weight.grad.abs().sum() > 0


def test_residual_untrained_returns_base():
    torch.manual_seed(3)
    model = ESSAformer(4, scale=2, dim=8, residual=True).train()
    assert torch.count_nonzero(model.conv_last.weight) == 0 and torch.count_nonzero(model.conv_last.bias) == 0
    lr = torch.rand(2, 4, 5, 6)
    base = torch.rand(2, 4, 10, 12)
    assert torch.equal(model(lr, base), base)
    with pytest.raises(UsageError, match="base"):
        model(lr)
    with pytest.raises(UsageError, match="shape"):
        model(lr, base[..., :-1])
    # reset_parameters re-draws the weights and zeroes conv_last again
    with torch.no_grad():
        model.conv_last.weight.fill_(1.0)
    before = model.conv_first.weight.detach().clone()
    model.reset_parameters()
    assert torch.count_nonzero(model.conv_last.weight) == 0
    assert not torch.equal(before, model.conv_first.weight)
    # the conv_last gradient is nonzero, so training moves away from base
    model(lr, base).square().mean().backward()
    assert model.conv_last.weight.grad.abs().sum() > 0


def test_base_refused_without_residual():
    model = ESSAformer(4, scale=2, dim=8)
    with pytest.raises(UsageError, match="residual"):
        model(torch.rand(1, 4, 3, 3), torch.rand(1, 4, 6, 6))
    with pytest.raises(UsageError, match="in_channels=4"):
        model(torch.rand(1, 3, 3, 3))


def test_eval_deterministic_train_stochastic():
    torch.manual_seed(4)
    model = ESSAformer(4, scale=2, dim=16)
    lr = torch.rand(1, 4, 6, 6)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(lr), model(lr))
        model.train()
        assert not torch.equal(model(lr), model(lr))
    still = ESSAformer(4, scale=2, dim=16, dropout=0.0).train()
    with torch.no_grad():
        assert torch.equal(still(lr), still(lr))


@pytest.mark.parametrize("scale", [5, 6, 1, 0, -2, 2.0, True])
def test_bad_scale(scale):
    with pytest.raises(UsageError, match="scale"):
        ESSAformer(4, scale=scale, dim=16)


@pytest.mark.parametrize(("scale", "dim"), [(2, 18), (4, 6), (3, 256), (3, 16), (2, 0)])
def test_bad_dim(scale, dim):
    with pytest.raises(UsageError, match="dim"):
        ESSAformer(4, scale=scale, dim=dim)
    with pytest.raises(UsageError, match="dim"):
        Upsample(scale, dim)


def test_convert_released_state_dict():
    model = ESSAformer(3, scale=4, dim=8)
    released = ["conv_first", "conv_last"]
    for role, seq in (("convup", "convu"), ("convdown", "convd")):
        released += [f"blockup.{role}.norm", f"blockup.{role}.attn.lnqkv", f"blockup.{role}.attn.ln"]
        released += [f"blockup.{role}.{seq}.{i}" for i in (0, 3, 6)]
    released += [f"blockup.conv{kind}sample.{i}" for kind in ("up", "down") for i in (0, 2)]
    keys = {f"{m}.{p}" for m in released for p in ("weight", "bias")}
    ours = model.state_dict()
    assert len(keys) == len(ours)
    state = {"module." + k: torch.zeros(()) for k in keys}
    assert set(convert_released_state_dict(state)) == set(ours)
