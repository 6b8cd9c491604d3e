"""Gaussian MTF-matched filters (sensor modulation transfer function) and Wald-protocol degradation.

A sensor's MTF is modelled per band as a Gaussian whose amplitude response at the Nyquist frequency of
the *low-resolution* grid equals the band's gain ``GNyq``. For a scale factor ``r`` that Nyquist frequency
is ``1 / (2 r)`` cycles per high-resolution pixel, and a Gaussian of standard deviation ``sigma`` pixels
has response ``H(f) = exp(-2 pi^2 sigma^2 f^2)``, hence

``sigma = r sqrt(-2 ln GNyq) / pi``   (in high-resolution pixels).

The kernel is that Gaussian sampled on ``size`` x ``size`` taps (41 by default) and normalised to unit
DC gain. Images are extended by edge replication before filtering. :func:`mtf_degrade` then keeps every
``r``-th pixel starting at ``offset`` (default ``r // 2``). These functions are used by D_lambda (Khan),
D_s and QNR, and by the pansharpening reduced-resolution simulation.

References
----------
Aiazzi, B., Alparone, L., Baronti, S., Garzelli, A., Selva, M. (2006). MTF-tailored multiscale fusion
of high-resolution MS and Pan imagery. Photogramm. Eng. Remote Sens. 72(5), 591-596.
Vivone, G. et al. (2015). A critical comparison among pansharpening algorithms. IEEE TGRS 53(5),
2565-2586.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hsikit.errors import UsageError
from hsikit.metrics._backend import as_tensor, band_chunks, integer_scale

#: Default gain at Nyquist for hyperspectral bands (the PRISMA protocol uses 0.3 for every HS band).
GNYQ_HS = 0.3
#: Default gain at Nyquist for a panchromatic band.
GNYQ_PAN = 0.2


def gnyq_vector(gnyq: Any, n: int) -> np.ndarray:
    """Per-band gains at Nyquist ``(n,)`` from a scalar or ``n`` values, each checked to lie in (0, 1)."""
    g = np.asarray(gnyq, dtype=np.float64).reshape(-1)
    if g.size == 1:
        g = np.full(n, g[0])
    elif g.size != n:
        raise UsageError(f"gnyq must be a scalar or have one value per band ({n}); got {g.size} values")
    if np.any(~np.isfinite(g)) or np.any(g <= 0) or np.any(g >= 1):
        raise UsageError(f"gains at Nyquist must lie in (0, 1); got {gnyq!r}")
    return np.array(g)


def mtf_sigma(gnyq: float, ratio: float) -> float:
    """Standard deviation (high-resolution pixels) of the Gaussian with gain ``gnyq`` at the low-res Nyquist.

    Parameters
    ----------
    gnyq
        Amplitude response at Nyquist, in (0, 1).
    ratio
        Scale factor ``r`` (or the pixel-size ratio 1/r, see ``hsikit.metrics._backend.scale_factor``).

    Returns
    -------
    float
        ``r sqrt(-2 ln gnyq) / pi``.
    """
    r = integer_scale(ratio)
    g = float(gnyq_vector(gnyq, 1)[0])
    return r * math.sqrt(-2.0 * math.log(g)) / math.pi


def mtf_kernel(gnyq: float, ratio: float, size: int = 41) -> np.ndarray:
    """The 2-D Gaussian MTF kernel, ``(size, size)`` float64, unit sum.

    Parameters
    ----------
    gnyq
        Gain at Nyquist in (0, 1).
    ratio
        Scale factor (integer >= 1).
    size
        Odd number of taps per side.
    """
    return np.outer(*(2 * [_kernel_1d(gnyq, ratio, size)]))


def _kernel_1d(gnyq: float, ratio: float, size: int) -> np.ndarray:
    if size < 1 or size % 2 == 0:
        raise UsageError(f"MTF kernel size must be odd and positive; got {size}")
    sigma = mtf_sigma(gnyq, ratio)
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    k = np.exp(-0.5 * (x / sigma) ** 2)
    return k / k.sum()


def _filter_t(t: torch.Tensor, gnyq: np.ndarray, ratio: int, size: int) -> torch.Tensor:
    """Filter (band, h, w) tensor band by band with its own Gaussian; returns the same dtype."""
    b, h, w = t.shape
    pad = (size - 1) // 2
    out = torch.empty_like(t)
    k1 = torch.as_tensor(np.stack([_kernel_1d(float(g), ratio, size) for g in gnyq]), dtype=t.dtype, device=t.device)
    for s in band_chunks(b, (h + 2 * pad) * (w + 2 * pad), 1 << 23):
        x = F.pad(t[s].unsqueeze(0), (pad, pad, pad, pad), mode="replicate")  # (1, c, H, W)
        c = x.shape[1]
        x = F.conv2d(x, k1[s].view(c, 1, 1, size), groups=c)
        x = F.conv2d(x, k1[s].view(c, 1, size, 1), groups=c)
        out[s] = x[0]
    return out


def _like_input(t: torch.Tensor, like: Any) -> Any:
    return t if isinstance(like, torch.Tensor) else t.cpu().numpy()


def mtf_filter(cube: Any, gnyq: float | np.ndarray, ratio: float, size: int = 41) -> Any:
    """Low-pass each band with its MTF-matched Gaussian (no decimation).

    Parameters
    ----------
    cube
        ``(band, y, x)`` (or ``(y, x)``) numpy array or torch tensor.
    gnyq
        Gain at Nyquist: a scalar or one value per band.
    ratio
        Scale factor (integer >= 1).
    size
        Taps per side (odd).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Same shape; a tensor (same device) for tensor input, else a numpy array (float32 or float64).
    """
    t = as_tensor(cube, "cube")
    squeeze = t.ndim == 2
    if squeeze:
        t = t.unsqueeze(0)
    if t.ndim != 3:
        raise UsageError(f"cube must be (band, y, x); got shape {tuple(t.shape)}")
    out = _filter_t(t, gnyq_vector(gnyq, t.shape[0]), integer_scale(ratio), size)
    return _like_input(out[0] if squeeze else out, cube)


def mtf_degrade(
    cube: Any, gnyq: float | np.ndarray, ratio: float, offset: int | None = None, size: int = 41
) -> Any:
    """Wald-protocol degradation: MTF filter then keep every ``ratio``-th pixel starting at ``offset``.

    Parameters
    ----------
    cube
        ``(band, y, x)`` (or ``(y, x)``).
    gnyq
        Gain at Nyquist (scalar or per band).
    ratio
        Integer scale factor ``r``.
    offset
        Decimation phase in ``[0, r)``; default ``r // 2`` (the sample nearest the centre of each r x r
        cell).
    size
        Filter taps per side.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        ``(band, ceil((y - offset) / r), ceil((x - offset) / r))``.
    """
    r = integer_scale(ratio)
    o = r // 2 if offset is None else int(offset)
    if not 0 <= o < r:
        raise UsageError(f"offset must lie in [0, {r}); got {offset}")
    t = as_tensor(cube, "cube")
    squeeze = t.ndim == 2
    if squeeze:
        t = t.unsqueeze(0)
    f = _filter_t(t, gnyq_vector(gnyq, t.shape[0]), r, size)[:, o::r, o::r].contiguous()
    return _like_input(f[0] if squeeze else f, cube)
