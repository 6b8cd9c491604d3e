"""Torch device selection shared by every task: ``"auto"``, ``"cpu"``, ``"cuda"``, ``"cuda:N"``."""

from __future__ import annotations

import torch

from hsikit.errors import UsageError


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """The torch device for a ``--device`` value; ``"auto"`` is CUDA when available, else the CPU.

    Raises :class:`UsageError` for an unknown device or a CUDA device on a machine without CUDA.
    """
    if isinstance(device, torch.device):
        dev = device
    elif device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    else:
        try:
            dev = torch.device(device)
        except (RuntimeError, TypeError) as exc:
            raise UsageError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N ({exc})") from None
    if dev.type not in ("cpu", "cuda"):
        raise UsageError(f"device must be auto, cpu or cuda, got {str(device)!r}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {str(device)!r} requested but no CUDA GPU is available")
    return dev
