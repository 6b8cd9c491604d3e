"""Model registry: registration, unknown names, save/load round trip."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from hsikit import zoo
from hsikit.errors import InputError, UsageError


@zoo.register_model("test-linear", task="testing", width=3)
def _linear(width: int = 3) -> nn.Module:
    return nn.Linear(width, 2)


def test_unknown_model_lists_known():
    with pytest.raises(UsageError, match="unknown model 'nope' for testing .*test-linear"):
        zoo.get_entry("nope", task="testing")


def test_missing_weights_is_input_error(tmp_path, monkeypatch):
    monkeypatch.setenv("HSIKIT_MODELS", str(tmp_path))
    with pytest.raises(InputError, match="no released weights"):
        zoo.create_model("test-linear")


def test_save_and_load_round_trip(tmp_path, monkeypatch):
    monkeypatch.setenv("HSIKIT_MODELS", str(tmp_path))
    torch.manual_seed(0)
    model = zoo.create_model("test-linear", pretrained=False, width=5)
    zoo.save_model(model, tmp_path / "test-linear", name="test-linear", config={"width": 5}, extra={"mean": [1.0]})
    back = zoo.create_model("test-linear")
    assert back.hsikit_config["width"] == 5 and back.hsikit_extra == {"mean": [1.0]}
    x = torch.randn(4, 5)
    torch.testing.assert_close(back(x), model(x))
    with pytest.raises(UsageError, match="cannot override"):
        zoo.create_model("test-linear", width=3)
