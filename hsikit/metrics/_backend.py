"""Array backend for the metrics: accept numpy, torch (CPU or CUDA) or xarray; compute in torch.

Every metric goes through :func:`as_tensor` so that a numpy array, a torch tensor on any device or an
``xarray.DataArray`` cube give the same number. Inputs keep their device; float64 inputs are computed in
float64, everything else in float32 with float64 accumulations (sums of squares, dot products and the final
means are always float64). Results come back as Python floats or numpy arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from hsikit.errors import UsageError

#: Elements per working chunk (float64 temporaries of this size are about 256 MiB).
CHUNK_ELEMENTS = 1 << 25


def as_tensor(x: Any, name: str = "array", *, device: torch.device | None = None) -> torch.Tensor:
    """Return ``x`` as a floating-point torch tensor without copying when possible.

    Parameters
    ----------
    x
        numpy array, torch tensor (any device), ``xarray.DataArray`` or nested sequence.
    name
        Name used in error messages (``"estimate"``, ``"reference"``, ...).
    device
        Move the result to this device (used to put a numpy mask beside a CUDA cube).

    Returns
    -------
    torch.Tensor
        float64 if the input is float64, float32 otherwise (integers, bool, float16 are promoted).
    """
    if hasattr(x, "dims") and hasattr(x, "data"):  # xarray.DataArray
        x = x.data
    if hasattr(x, "compute") and not isinstance(x, (np.ndarray, torch.Tensor)):  # dask
        x = x.compute()
    if isinstance(x, torch.Tensor):
        t = x.detach()
    else:
        try:
            arr = np.asarray(x)
        except Exception as exc:  # pragma: no cover - exotic inputs
            raise UsageError(f"{name} cannot be converted to an array: {exc}") from exc
        if arr.dtype.kind not in "biuf":
            raise UsageError(f"{name} has unsupported dtype {arr.dtype}; expected numbers")
        if arr.dtype.kind == "u" and arr.dtype.itemsize > 1:
            arr = arr.astype(np.float64 if arr.dtype.itemsize > 2 else np.float32)
        t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.dtype != torch.float64 and t.dtype != torch.float32:
        t = t.to(torch.float64 if t.dtype in (torch.int64, torch.int32) else torch.float32)
    if device is not None:
        t = t.to(device)
    return t


def as_mask(mask: Any, shape: tuple[int, ...], device: torch.device) -> torch.Tensor | None:
    """Validate a (y, x) boolean mask (True = pixel is scored) and return it as a bool tensor."""
    if mask is None:
        return None
    if hasattr(mask, "dims") and hasattr(mask, "data"):
        mask = mask.data
    m = mask.detach() if isinstance(mask, torch.Tensor) else torch.from_numpy(np.asarray(mask))
    m = m.to(device=device).bool()
    if tuple(m.shape) != tuple(shape):
        raise UsageError(f"mask has shape {tuple(m.shape)} but the images have spatial shape {tuple(shape)}")
    if not bool(m.any()):
        raise UsageError("mask selects no pixel")
    return m


def check_pair(estimate: Any, reference: Any, *, ndim: int | None = 3) -> tuple[torch.Tensor, torch.Tensor]:
    """Convert ``estimate`` and ``reference`` to tensors of the same shape, dtype and device.

    Parameters
    ----------
    estimate, reference
        Arrays of identical shape; with ``ndim=3`` they must be cubes ``(band, y, x)``; a 2-D image
        ``(y, x)`` is accepted as a one-band cube.
    """
    ref = as_tensor(reference, "reference")
    est = as_tensor(estimate, "estimate", device=ref.device)
    if ndim == 3:
        if ref.ndim == 2:
            ref = ref.unsqueeze(0)
        if est.ndim == 2:
            est = est.unsqueeze(0)
        if ref.ndim != 3:
            raise UsageError(f"reference must be a cube (band, y, x); got shape {tuple(ref.shape)}")
    if tuple(est.shape) != tuple(ref.shape):
        raise UsageError(
            f"estimate has shape {tuple(est.shape)} but reference has shape {tuple(ref.shape)}"
        )
    dtype = torch.float64 if torch.float64 in (est.dtype, ref.dtype) else torch.float32
    return est.to(dtype), ref.to(dtype)


def positive_scalar(value: Any, name: str) -> float:
    """Return ``value`` as a positive finite float or raise :class:`UsageError`."""
    if value is None:
        raise UsageError(f"{name} must be given explicitly (it changes the value of the metric)")
    try:
        v = float(value)
    except (TypeError, ValueError) as exc:
        raise UsageError(f"{name} must be a number; got {value!r}") from exc
    if not math.isfinite(v) or v <= 0:
        raise UsageError(f"{name} must be positive and finite; got {value!r}")
    return v


def scale_factor(ratio: Any) -> float:
    """Resolution scale factor ``s = low-res pixel size / high-res pixel size`` (>= 1).

    ``ratio`` may be given in either of the two conventions in use, and they cannot be confused because
    a pixel-size ratio high/low is never above 1 and a scale factor low/high is never below 1:

    * ``ratio <= 1``: Wald's pixel-size ratio h/l (0.25 for 4x pansharpening) -> ``s = 1 / ratio``;
    * ``ratio >= 1``: the scale factor l/h used by most APIs (4) -> ``s = ratio``.
    """
    r = positive_scalar(ratio, "ratio")
    return 1.0 / r if r < 1.0 else r


def integer_scale(ratio: Any) -> int:
    """:func:`scale_factor` that must be an integer (for decimation); raises :class:`UsageError`."""
    s = scale_factor(ratio)
    n = int(round(s))
    if abs(s - n) > 1e-9 or n < 1:
        raise UsageError(f"ratio must correspond to an integer scale factor; got {ratio!r} (scale {s:g})")
    return n


def band_chunks(n_bands: int, pixels_per_band: int, elements: int = CHUNK_ELEMENTS) -> Iterator[slice]:
    """Slices over bands such that one chunk holds about ``elements`` values."""
    step = max(1, elements // max(1, pixels_per_band))
    for start in range(0, n_bands, step):
        yield slice(start, min(n_bands, start + step))


def flat_pixels(t: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """(band, y, x) -> (band, n) keeping only the masked pixels (all when ``mask`` is None)."""
    if mask is None:
        return t.reshape(t.shape[0], -1)
    return t[:, mask]


def to_numpy(t: torch.Tensor) -> np.ndarray:
    """A float64 numpy copy of ``t`` (from any device)."""
    return t.detach().to("cpu", torch.float64).numpy()


def box_sum(t: torch.Tensor, size: int, stride: int = 1) -> torch.Tensor:
    """Sums over all ``size`` x ``size`` windows (valid positions, given stride) of the last two axes.

    Uses an integral image in float64, so the cost does not depend on ``size``.
    """
    h, w = t.shape[-2:]
    if size > h or size > w:
        raise UsageError(f"window size {size} exceeds the image size {h}x{w}")
    c = t.to(torch.float64).cumsum(-1).cumsum(-2)
    c = torch.nn.functional.pad(c, (1, 0, 1, 0))
    ys = torch.arange(0, h - size + 1, stride, device=t.device)
    xs = torch.arange(0, w - size + 1, stride, device=t.device)
    a = c[..., ys[:, None] + size, xs[None, :] + size]
    b = c[..., ys[:, None], xs[None, :] + size]
    cc = c[..., ys[:, None] + size, xs[None, :]]
    d = c[..., ys[:, None], xs[None, :]]
    return a - b - cc + d


class per_band_threads:
    """Context manager: run torch CPU ops single-threaded inside per-band loops, then restore.

    The per-band loops issue many small operations (one image band each); waking the intra-op thread
    pool for every one of them costs more than it gains (measured 8 ms vs 0.1-0.4 ms per 1-Mpixel op in a
    sandboxed 2-core VM). Not thread-safe with respect to other code changing the thread count.
    """

    def __init__(self, device: torch.device) -> None:
        self.active = device.type == "cpu"
        self.saved = 0

    def __enter__(self) -> "per_band_threads":
        if self.active:
            self.saved = torch.get_num_threads()
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.active:
            torch.set_num_threads(self.saved)
