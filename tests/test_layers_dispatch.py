"""Kernel dispatch: modes, environment, the CPU rule."""

from __future__ import annotations

import pytest
import torch

from hsikit.errors import UsageError
from hsikit.layers.kernels import dispatch


def test_auto_picks_reference_on_cpu():
    x = torch.ones(2)
    with dispatch.kernel_mode("auto"):
        assert dispatch.use_fused(x) is False


def test_modes_force_and_restore():
    x = torch.ones(2)
    before = dispatch.get_kernel_mode()
    with dispatch.kernel_mode("reference"):
        assert dispatch.use_fused(x) is False
    with dispatch.kernel_mode("fused"):  # the test session interprets Triton on the CPU
        assert dispatch.interpreting()
        assert dispatch.use_fused(x) is True
    assert dispatch.get_kernel_mode() == before


def test_fused_on_cpu_without_interpreter_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with dispatch.kernel_mode("fused"), pytest.raises(UsageError, match="TRITON_INTERPRET"):
        dispatch.use_fused(torch.ones(1))


def test_unknown_mode():
    with pytest.raises(UsageError, match="unknown kernel mode"):
        dispatch.set_kernel_mode("fast")
