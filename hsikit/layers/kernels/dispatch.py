"""Choose between a fused Triton kernel and its PyTorch reference.

Mode, from :func:`set_kernel_mode`, the :func:`kernel_mode` context manager or the environment
variable ``HSIKIT_KERNELS`` (read once at import):

- ``auto`` (default): fused when every tensor is on CUDA and Triton imports; reference otherwise.
- ``reference``: always the PyTorch reference.
- ``fused``: always the Triton kernel. On the CPU this needs ``TRITON_INTERPRET=1`` set before
  Triton kernels are defined (the tests do this); without it a clear error is raised.
"""

from __future__ import annotations

import contextlib
import functools
import os
from collections.abc import Iterator

import torch

from hsikit.errors import UsageError

MODES = ("auto", "reference", "fused")
_state = {"mode": os.environ.get("HSIKIT_KERNELS", "auto").lower()}
if _state["mode"] not in MODES:
    raise UsageError(f"HSIKIT_KERNELS={_state['mode']!r}: use one of {', '.join(MODES)}")


def get_kernel_mode() -> str:
    """The current dispatch mode (auto, reference or fused)."""
    return _state["mode"]


def set_kernel_mode(mode: str) -> None:
    """Set the dispatch mode for the whole process."""
    mode = mode.lower()
    if mode not in MODES:
        raise UsageError(f"unknown kernel mode {mode!r}: use one of {', '.join(MODES)}")
    _state["mode"] = mode


@contextlib.contextmanager
def kernel_mode(mode: str) -> Iterator[None]:
    """Temporarily force a dispatch mode: ``with kernel_mode("reference"): ...``."""
    old = _state["mode"]
    set_kernel_mode(mode)
    try:
        yield
    finally:
        _state["mode"] = old


def interpreting() -> bool:
    """True when Triton runs in interpreter mode (``TRITON_INTERPRET=1``), i.e. on CPU tensors."""
    return os.environ.get("TRITON_INTERPRET", "0") == "1"


@functools.lru_cache(maxsize=1)
def triton_available() -> bool:
    """Whether Triton can be imported."""
    try:
        import triton  # noqa: F401
    except Exception:
        return False
    return True


def use_fused(*tensors: torch.Tensor) -> bool:
    """Whether an op on ``tensors`` should take its fused Triton path under the current mode."""
    mode = _state["mode"]
    if mode == "reference":
        return False
    on_cuda = all(t.is_cuda for t in tensors)
    if mode == "fused":
        if not triton_available():
            raise UsageError("kernel mode 'fused' needs Triton, which is not installed")
        if not on_cuda and not interpreting():
            raise UsageError("kernel mode 'fused' on CPU tensors needs TRITON_INTERPRET=1 (set before Triton kernels are defined)")
        return True
    return on_cuda and triton_available()
