"""Degradation models: noise recipes, blur + decimation (Wald protocol) and spectral response simulation.

Every function is torch-native and batched: ``x`` is a float tensor of shape ``(C, H, W)`` or
``(B, C, H, W)`` (C bands, H rows, W columns, "columns" = the last axis), the result has the same shape
(blur + decimation: ``H / r, W / r``; PAN: one band). Random draws come from an optional
:class:`torch.Generator` (:func:`as_generator` turns an int seed into one), so every degradation is
reproducible from a seed; each image of a batch gets its own draws. Values are in data units (the
QRNN3D/HSDT recipes assume a cube in [0, 1] and give sigma on the 0-255 scale, i.e. ``50/255``);
nothing is clipped. NaN (nodata) pixels stay NaN except where a dead line or an impulse overwrites
them (callers restore nodata afterwards, see :mod:`hsikit.commands.degrade`).

Noise models (``n ~ N(0, 1)`` iid over every voxel):

========================  ==========================================================================
iid Gaussian              :math:`y = x + \\sigma n`
blind Gaussian            one :math:`\\sigma \\sim U(\\sigma_{lo}, \\sigma_{hi})` per image
non-iid Gaussian          :math:`y_b = x_b + \\sigma_b n`, :math:`\\sigma_b` drawn per band from a set
                          (default {10, 30, 50, 70}/255) or uniformly from a range
Poisson-Gaussian          :math:`y = a\\, P(\\max(x, 0) / a) + \\sigma_r n`, :math:`P` Poisson: mean
                          :math:`\\max(x,0)`, variance :math:`a \\max(x, 0) + \\sigma_r^2`
stripes                   on chosen bands, k chosen columns get :math:`y_{b,:,c} = x_{b,:,c} - s_c`,
                          :math:`s_c \\sim U(-A, A)` (A = 0.25)
dead lines                on chosen bands, k chosen columns set to 0
impulse (salt & pepper)   on chosen bands with density d: each pixel is hit with probability d and set
                          to ``high`` (1) or ``low`` (0) with probability 1/2 each
========================  ==========================================================================

Band and column counts follow ``../shared/docs/models.md`` section 1.2 exactly, per ``protocol``:

* ``"test"`` (the QRNN3D MATLAB test-set generators, ``rng(0)`` files): 10 random bands (min(10, C));
  stripes and dead lines take :math:`k \\sim U_{int}[\\lceil 0.05W \\rceil, \\lceil 0.15W \\rceil]`
  (inclusive) columns without replacement; impulse density per band from {0.1, 0.3, 0.5, 0.7}.
* ``"train"`` (the Python training transforms of QRNN3D/HSDT/HSIR): :math:`\\lfloor C/3 \\rfloor` random
  bands; stripes :math:`k \\sim` randint(:math:`\\lfloor 0.05W \\rfloor, \\lfloor 0.15W \\rfloor`),
  dead lines :math:`k \\sim` randint(:math:`\\lceil 0.05W \\rceil, \\lceil 0.15W \\rceil`) (upper bound
  exclusive).
* ``mixture`` (test set): non-iid Gaussian, then one random band permutation: the first
  :math:`\\lfloor C/3 \\rfloor` bands get stripes, the next dead lines, the next impulse (disjoint sets).
* ``complex`` (training): non-iid Gaussian, then a round-robin over {nothing, impulse, stripes,
  dead lines}, each on :math:`\\lfloor C/3 \\rfloor` random bands (train protocol).

Gaussian first, then the structured noise on the noisy cube (the recipes' order).

Recipes as strings (:func:`parse_noise`, shared by ``hsikit degrade --noise`` and training scripts):
``"gaussian:0.1"``, ``"gaussian:50/255"``, ``"gaussian:10/255,30/255,50/255,70/255"`` (round-robin per
image, HSDT stage 2), ``"gaussian:0.04-0.27"`` / ``"blind"`` (one sigma per image), ``"noniid"``,
``"noniid:0.1-0.3"`` (uniform per band), ``"poisson:0.01,0.005"`` (gain, read sigma), ``"stripe"``,
``"deadline"``, ``"impulse"``, ``"impulse:0.1"``, ``"mixture"``, ``"complex"``; steps chain with ``+``
(``"noniid+stripe"``); options as ``key=value`` (``"stripe:bands=5,amp=0.1,protocol=train"``).

References
----------
Wei, K., Fu, Y., Huang, H. (2020). 3-D quasi-recurrent neural network for hyperspectral image denoising.
IEEE TNNLS 32(1), 363-375 (QRNN3D; the recipes).
Lai, Z., Yan, C., Fu, Y. (2023). Hybrid spectral denoising transformer with guided attention. ICCV (HSDT).
Foi, A. et al. (2008). Practical Poissonian-Gaussian noise modeling and fitting for single-image raw-data.
IEEE TIP 17(10), 1737-1754.
Wald, L., Ranchin, T., Mangolini, M. (1997). Fusion of satellite images of different spatial resolutions:
assessing the quality of resulting images. PE&RS 63(6), 691-699.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hsikit.errors import UsageError

#: Noise levels of the QRNN3D/HSDT recipes on the 0-255 scale.
SIGMAS_255 = (10.0, 30.0, 50.0, 70.0)
#: Impulse (salt-and-pepper) densities drawn per band.
IMPULSE_DENSITIES = (0.1, 0.3, 0.5, 0.7)
#: Stripe offsets are drawn from U(-STRIPE_AMPLITUDE, STRIPE_AMPLITUDE).
STRIPE_AMPLITUDE = 0.25
#: Test-set recipes corrupt this many bands (training: floor(C / 3)).
TEST_BANDS = 10
PROTOCOLS = ("test", "train")

SeedLike = int | torch.Generator | None


# ------------------------------------------------------------------------------------------ helpers


def as_generator(seed: SeedLike, device: torch.device | str = "cpu") -> torch.Generator | None:
    """A :class:`torch.Generator` from an int seed (a generator passes through; None stays None)."""
    if seed is None or isinstance(seed, torch.Generator):
        return seed
    g = torch.Generator(device=device)
    g.manual_seed(int(seed))
    return g


def _batch(x: torch.Tensor, name: str = "x") -> tuple[torch.Tensor, bool]:
    if not isinstance(x, torch.Tensor):
        raise UsageError(f"{name} must be a torch tensor, got {type(x).__name__}")
    if not x.is_floating_point():
        raise UsageError(f"{name} must be a float tensor, got {x.dtype}")
    if x.ndim == 3:
        return x.unsqueeze(0), True
    if x.ndim == 4:
        return x, False
    raise UsageError(f"{name} must be (C, H, W) or (B, C, H, W), got shape {tuple(x.shape)}")


def _dev(x: torch.Tensor, g: torch.Generator | None) -> torch.device:
    return g.device if g is not None else x.device


def _randn(shape: Sequence[int], x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    return torch.randn(tuple(shape), generator=g, device=_dev(x, g), dtype=x.dtype).to(x.device)


def _rand(shape: Sequence[int], x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    return torch.rand(tuple(shape), generator=g, device=_dev(x, g), dtype=x.dtype).to(x.device)


def _randint(low: int, high: int, g: torch.Generator | None, device: torch.device) -> int:
    """One integer in [low, high] (inclusive)."""
    if high <= low:
        return int(low)
    return int(torch.randint(low, high + 1, (1,), generator=g, device=g.device if g is not None else device).item())


def _randperm(n: int, g: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.randperm(n, generator=g, device=g.device if g is not None else device).cpu()


def _choice(values: Sequence[float], n: int, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    idx = torch.randint(0, len(values), (n,), generator=g, device=_dev(x, g)).cpu()
    return torch.as_tensor(values, dtype=x.dtype)[idx].to(x.device)


def _check_protocol(protocol: str) -> str:
    if protocol not in PROTOCOLS:
        raise UsageError(f"protocol must be one of {', '.join(PROTOCOLS)}, got {protocol!r}")
    return protocol


def band_count(n_channels: int, protocol: str = "test") -> int:
    """Bands a structured-noise recipe corrupts: min(10, C) (test) or floor(C / 3) (train)."""
    return min(TEST_BANDS, n_channels) if _check_protocol(protocol) == "test" else n_channels // 3


def column_count_range(width: int, kind: str, protocol: str = "test") -> tuple[int, int]:
    """Inclusive range [lo, hi] of the number of striped / dead columns for image width ``width``.

    ``test``: [ceil(0.05 W), ceil(0.15 W)]; ``train``: stripes [floor(0.05 W), floor(0.15 W) - 1],
    dead lines [ceil(0.05 W), ceil(0.15 W) - 1] (numpy ``randint`` excludes its upper bound).
    """
    if kind not in ("stripe", "deadline"):
        raise UsageError(f"kind must be 'stripe' or 'deadline', got {kind!r}")
    if _check_protocol(protocol) == "test":
        lo, hi = math.ceil(0.05 * width), math.ceil(0.15 * width)
    elif kind == "stripe":
        lo, hi = math.floor(0.05 * width), math.floor(0.15 * width) - 1
    else:
        lo, hi = math.ceil(0.05 * width), math.ceil(0.15 * width) - 1
    hi = min(max(hi, lo), width)
    return min(lo, width), hi


def _pick_bands(n_channels: int, n_bands: int | None, protocol: str, g: torch.Generator | None, device: torch.device) -> torch.Tensor:
    n = band_count(n_channels, protocol) if n_bands is None else int(n_bands)
    if not 0 <= n <= n_channels:
        raise UsageError(f"cannot corrupt {n} bands of a {n_channels}-band image")
    return _randperm(n_channels, g, device)[:n]


# ----------------------------------------------------------------------------------- Gaussian family


def _sigma_tensor(sigma: Any, b: int, c: int, x: torch.Tensor) -> torch.Tensor:
    """Broadcast sigma (scalar, (C,) per band, (B, 1) per image or (B, C)) to shape (B, C, 1, 1)."""
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    try:
        if s.ndim == 1 and s.numel() != c:
            raise RuntimeError
        s = torch.broadcast_to(s, (b, c)) if s.ndim <= 2 else None
    except RuntimeError:
        s = None
    if s is None:
        raise UsageError(f"sigma of shape {tuple(torch.as_tensor(sigma).shape)} fits neither (C,)={c} bands, "
                         f"(B, 1) nor (B, C)=({b}, {c})")
    if torch.any(s < 0):
        raise UsageError("sigma must be >= 0")
    return s.reshape(b, c, 1, 1)


def gaussian_noise(x: torch.Tensor, sigma: Any, *, generator: SeedLike = None) -> torch.Tensor:
    """Additive white Gaussian noise :math:`y = x + \\sigma n`, n ~ N(0, 1) iid over voxels.

    Parameters
    ----------
    x
        (C, H, W) or (B, C, H, W) float tensor.
    sigma
        Standard deviation in data units: a scalar, one per band (C,), one per image (B, 1) or (B, C).
    generator
        Seed or :class:`torch.Generator`.
    """
    g = as_generator(generator)
    xb, squeeze = _batch(x)
    s = _sigma_tensor(sigma, xb.shape[0], xb.shape[1], xb)
    y = xb + s * _randn(xb.shape, xb, g)
    return y[0] if squeeze else y


def blind_gaussian(
    x: torch.Tensor, low: float = SIGMAS_255[0] / 255, high: float = SIGMAS_255[-1] / 255, *,
    generator: SeedLike = None, return_params: bool = False,
) -> Any:
    """Blind Gaussian noise: one :math:`\\sigma \\sim U(low, high)` per image, the same for all bands.

    Default range 10/255-70/255 (the QRNN3D test set: ``rand*60+10``). With ``return_params`` also
    returns ``{"sigma": (B,) tensor}``.
    """
    if not 0 <= low <= high:
        raise UsageError(f"need 0 <= low <= high, got {low}, {high}")
    g = as_generator(generator)
    xb, squeeze = _batch(x)
    sigma = low + (high - low) * _rand((xb.shape[0],), xb, g)
    y = gaussian_noise(xb, sigma[:, None], generator=g)
    y = y[0] if squeeze else y
    return (y, {"sigma": sigma}) if return_params else y


def noniid_sigmas(
    n_images: int, n_channels: int, sigmas: Sequence[float] | tuple[float, float] | None = None, *,
    uniform: bool = False, like: torch.Tensor | None = None, generator: SeedLike = None,
) -> torch.Tensor:
    """Per-band standard deviations, shape (B, C): drawn from the set ``sigmas`` or, with ``uniform``, U(lo, hi).

    Default set {10, 30, 50, 70}/255.
    """
    g = as_generator(generator)
    ref = like if like is not None else torch.zeros(1)
    values = [s / 255 for s in SIGMAS_255] if sigmas is None else [float(v) for v in sigmas]
    if uniform:
        if len(values) != 2 or values[0] > values[1] or values[0] < 0:
            raise UsageError(f"a uniform sigma range needs 0 <= lo <= hi, got {values}")
        return values[0] + (values[1] - values[0]) * _rand((n_images, n_channels), ref, g)
    if not values or min(values) < 0:
        raise UsageError(f"sigmas must be a non-empty list of values >= 0, got {values}")
    return _choice(values, n_images * n_channels, ref, g).reshape(n_images, n_channels)


def noniid_gaussian(
    x: torch.Tensor, sigmas: Sequence[float] | None = None, *, uniform: bool = False,
    generator: SeedLike = None, return_params: bool = False,
) -> Any:
    """Band-varying Gaussian noise :math:`y_b = x_b + \\sigma_b n` with :math:`\\sigma_b` drawn per band.

    Parameters
    ----------
    x
        (C, H, W) or (B, C, H, W).
    sigmas
        The set :math:`\\sigma_b` is drawn from uniformly (default {10, 30, 50, 70}/255), or with
        ``uniform=True`` a ``(lo, hi)`` range for :math:`\\sigma_b \\sim U(lo, hi)`.
    generator
        Seed or generator.
    return_params
        Also return ``{"sigma": (B, C) tensor}``.
    """
    g = as_generator(generator)
    xb, squeeze = _batch(x)
    s = noniid_sigmas(xb.shape[0], xb.shape[1], sigmas, uniform=uniform, like=xb, generator=g)
    y = gaussian_noise(xb, s, generator=g)
    y = y[0] if squeeze else y
    return (y, {"sigma": s}) if return_params else y


def poisson_gaussian(x: torch.Tensor, gain: float, read_sigma: float = 0.0, *, generator: SeedLike = None) -> torch.Tensor:
    """Signal-dependent Poisson-Gaussian noise :math:`y = a\\,P(\\max(x,0)/a) + \\sigma_r n`.

    :math:`P(\\lambda)` is a Poisson count of mean :math:`\\lambda`, so :math:`E[y] = \\max(x, 0)` and
    :math:`\\mathrm{Var}[y] = a \\max(x, 0) + \\sigma_r^2` (Foi et al. 2008). ``gain`` a > 0 is the variance
    per unit signal (data units), ``read_sigma`` the signal-independent part. NaN stays NaN.
    """
    if gain <= 0 or read_sigma < 0:
        raise UsageError(f"need gain > 0 and read_sigma >= 0, got {gain}, {read_sigma}")
    g = as_generator(generator)
    xb, squeeze = _batch(x)
    nan = torch.isnan(xb)
    rate = torch.clamp(torch.nan_to_num(xb, nan=0.0), min=0.0) / gain
    counts = torch.poisson(rate.to(_dev(xb, g)), generator=g).to(xb.device)
    y = gain * counts
    if read_sigma > 0:
        y = y + read_sigma * _randn(xb.shape, xb, g)
    y = torch.where(nan, xb, y)
    return y[0] if squeeze else y


# ---------------------------------------------------------------------------------- structured noise


@dataclass
class CorruptedBands:
    """What a structured degradation did to one image: the bands and, per band, columns / offsets / density."""

    kind: str
    bands: list[int] = field(default_factory=list)
    columns: list[list[int]] = field(default_factory=list)
    offsets: list[list[float]] = field(default_factory=list)
    density: list[float] = field(default_factory=list)


def _stripe_one(y: torch.Tensor, bands: torch.Tensor, g: torch.Generator | None, kind: str, protocol: str,
                amplitude: float, count: tuple[int, int] | None) -> CorruptedBands:
    """In place on one image y (C, H, W)."""
    width = y.shape[-1]
    lo, hi = count if count is not None else column_count_range(width, kind, protocol)
    rec = CorruptedBands(kind)
    for b in bands.tolist():
        k = _randint(lo, hi, g, y.device)
        cols = _randperm(width, g, y.device)[:k]
        rec.bands.append(int(b))
        rec.columns.append(sorted(cols.tolist()))
        if kind == "stripe":
            s = (2 * _rand((k,), y, g) - 1) * amplitude
            y[b][:, cols.to(y.device)] -= s[None, :]
            order = torch.argsort(cols)
            rec.offsets.append(s.cpu()[order].tolist())
        else:
            y[b][:, cols.to(y.device)] = 0
    return rec


def _impulse_one(y: torch.Tensor, bands: torch.Tensor, g: torch.Generator | None, densities: Sequence[float],
                 low: float, high: float) -> CorruptedBands:
    rec = CorruptedBands("impulse")
    h, w = y.shape[-2:]
    for b in bands.tolist():
        d = float(_choice(densities, 1, y, g)[0])
        flip = _rand((h, w), y, g) < d
        salt = _rand((h, w), y, g) < 0.5
        y[b] = torch.where(flip & salt, torch.as_tensor(high, dtype=y.dtype, device=y.device), y[b])
        y[b] = torch.where(flip & ~salt, torch.as_tensor(low, dtype=y.dtype, device=y.device), y[b])
        rec.bands.append(int(b))
        rec.density.append(d)
    return rec


def _structured(x: torch.Tensor, kind: str, n_bands: int | None, protocol: str, generator: SeedLike,
                return_params: bool, **kw: Any) -> Any:
    _check_protocol(protocol)
    g = as_generator(generator)
    xb, squeeze = _batch(x)
    y = xb.clone()
    records = []
    for i in range(y.shape[0]):
        bands = _pick_bands(y.shape[1], n_bands, protocol, g, y.device)
        if kind == "impulse":
            records.append(_impulse_one(y[i], bands, g, kw["densities"], kw["low"], kw["high"]))
        else:
            records.append(_stripe_one(y[i], bands, g, kind, protocol, kw.get("amplitude", 0.0), kw.get("count")))
    y = y[0] if squeeze else y
    if return_params:
        return y, (records[0] if squeeze else records)
    return y


def stripes(
    x: torch.Tensor, n_bands: int | None = None, *, amplitude: float = STRIPE_AMPLITUDE, protocol: str = "test",
    count: tuple[int, int] | None = None, generator: SeedLike = None, return_params: bool = False,
) -> Any:
    """Column stripes: on ``n_bands`` random bands, k random columns get :math:`y_{b,:,c} = x_{b,:,c} - s_c`.

    Parameters
    ----------
    x
        (C, H, W) or (B, C, H, W); columns are the last axis.
    n_bands
        Bands to stripe (default per ``protocol``: min(10, C) or floor(C / 3)).
    amplitude
        A: offsets :math:`s_c \\sim U(-A, A)`, one per column, constant down the column.
    protocol
        ``"test"`` or ``"train"``: the column-count rule of :func:`column_count_range`.
    count
        Override the inclusive column-count range (lo, hi).
    generator
        Seed or generator.
    return_params
        Also return a :class:`CorruptedBands` (a list of them for a batch): bands, sorted columns and
        their offsets.
    """
    return _structured(x, "stripe", n_bands, protocol, generator, return_params, amplitude=float(amplitude), count=count)


def dead_lines(
    x: torch.Tensor, n_bands: int | None = None, *, protocol: str = "test", count: tuple[int, int] | None = None,
    generator: SeedLike = None, return_params: bool = False,
) -> Any:
    """Dead columns: on ``n_bands`` random bands, k random columns set to 0 (see :func:`stripes` for the arguments)."""
    return _structured(x, "deadline", n_bands, protocol, generator, return_params, count=count)


def impulse(
    x: torch.Tensor, n_bands: int | None = None, *, densities: Sequence[float] = IMPULSE_DENSITIES,
    low: float = 0.0, high: float = 1.0, protocol: str = "test", generator: SeedLike = None,
    return_params: bool = False,
) -> Any:
    """Salt-and-pepper noise on ``n_bands`` random bands.

    Per band a density d is drawn from ``densities``; each pixel is hit with probability d and, when hit,
    set to ``high`` or ``low`` with probability 1/2 each (MATLAB ``imnoise(..., 's&p', d)``). Expected
    fraction of changed pixels in the band: d. ``return_params`` adds the bands and their densities.
    """
    if not densities or min(densities) < 0 or max(densities) > 1:
        raise UsageError(f"impulse densities must lie in [0, 1], got {list(densities)}")
    return _structured(x, "impulse", n_bands, protocol, generator, return_params, densities=list(densities),
                       low=float(low), high=float(high))


def mixture_noise(
    x: torch.Tensor, sigmas: Sequence[float] | None = None, *, generator: SeedLike = None, return_params: bool = False,
) -> Any:
    """The QRNN3D/HSDT test-set "mixture": non-iid Gaussian, then stripes, dead lines and impulse on disjoint bands.

    One random permutation of the C bands per image: bands ``perm[:t]`` get stripes, ``perm[t:2t]`` dead
    lines, ``perm[2t:3t]`` impulse, with t = floor(C / 3), test-protocol column counts, offsets U(-0.25,
    0.25) and densities {0.1, 0.3, 0.5, 0.7}.
    """
    g = as_generator(generator)
    xb, squeeze = _batch(x)
    y, params = noniid_gaussian(xb, sigmas, generator=g, return_params=True)
    t = xb.shape[1] // 3
    records = []
    for i in range(y.shape[0]):
        perm = _randperm(xb.shape[1], g, xb.device)
        r1 = _stripe_one(y[i], perm[:t], g, "stripe", "test", STRIPE_AMPLITUDE, None)
        r2 = _stripe_one(y[i], perm[t : 2 * t], g, "deadline", "test", 0.0, None)
        r3 = _impulse_one(y[i], perm[2 * t : 3 * t], g, IMPULSE_DENSITIES, 0.0, 1.0)
        records.append((r1, r2, r3))
    y = y[0] if squeeze else y
    if return_params:
        return y, {"sigma": params["sigma"], "corrupted": records[0] if squeeze else records}
    return y


#: The round-robin of the complex-noise training transform, in order.
COMPLEX_CHOICES = ("none", "impulse", "stripe", "deadline")


def complex_noise(
    x: torch.Tensor, choice: int | Sequence[int] = 0, sigmas: Sequence[float] | None = None, *,
    generator: SeedLike = None,
) -> torch.Tensor:
    """The HSDT/HSIR complex-noise training transform for one step of its round-robin.

    Non-iid Gaussian (sigma per band from {10, 30, 50, 70}/255), then ``COMPLEX_CHOICES[choice % 4]``
    (nothing, impulse, stripes, dead lines) on floor(C / 3) random bands with the train protocol.
    ``choice`` may be one index per image of a batch. :class:`NoiseRecipe` ``"complex"`` keeps the
    round-robin counter.
    """
    g = as_generator(generator)
    xb, squeeze = _batch(x)
    choices = [int(choice)] * xb.shape[0] if isinstance(choice, int) else [int(c) for c in choice]
    if len(choices) != xb.shape[0]:
        raise UsageError(f"{len(choices)} choices for a batch of {xb.shape[0]}")
    y = noniid_gaussian(xb, sigmas, generator=g)
    for i, c in enumerate(choices):
        kind = COMPLEX_CHOICES[c % len(COMPLEX_CHOICES)]
        if kind == "none":
            continue
        bands = _pick_bands(xb.shape[1], None, "train", g, xb.device)
        if kind == "impulse":
            _impulse_one(y[i], bands, g, IMPULSE_DENSITIES, 0.0, 1.0)
        else:
            _stripe_one(y[i], bands, g, kind, "train", STRIPE_AMPLITUDE, None)
    return y[0] if squeeze else y


# ------------------------------------------------------------------------------- spatial degradation


def blur(x: torch.Tensor, ratio: int, gnyq: float | Sequence[float] = 0.3, *, size: int = 41) -> torch.Tensor:
    """Low-pass each band with its Gaussian MTF for scale ``ratio`` (no decimation).

    The Gaussian has standard deviation :math:`\\sigma = r \\sqrt{-2 \\ln G} / \\pi` pixels, so its
    amplitude response at the low-resolution Nyquist frequency 1/(2r) equals the band's gain ``gnyq``
    G (:func:`hsikit.metrics.mtf.mtf_sigma`); edges are replicated.
    """
    from hsikit.metrics.mtf import mtf_filter

    xb, squeeze = _batch(x)
    b, c, h, w = xb.shape
    gn = np.tile(np.broadcast_to(np.asarray(gnyq, float), (c,)), b)
    y = mtf_filter(xb.reshape(b * c, h, w), gn, ratio, size).reshape(b, c, h, w)
    return y[0] if squeeze else y


def blur_decimate(
    x: torch.Tensor, ratio: int, gnyq: float | Sequence[float] = 0.3, *, offset: int | None = None, size: int = 41,
) -> torch.Tensor:
    """Wald-protocol spatial degradation: per-band Gaussian MTF blur, then keep every ``ratio``-th pixel.

    :math:`y = (k_{\\sigma_b} * x_b)[o::r, o::r]` with the MTF Gaussian of :func:`blur` and phase
    ``offset`` o (default r // 2). Output (…, ceil((H - o) / r), ceil((W - o) / r)). Reuses
    :func:`hsikit.metrics.mtf.mtf_degrade`, the filter the pansharpening metrics use.
    """
    from hsikit.metrics.mtf import mtf_degrade

    xb, squeeze = _batch(x)
    b, c, h, w = xb.shape
    gn = np.tile(np.broadcast_to(np.asarray(gnyq, float), (c,)), b)
    y = mtf_degrade(xb.reshape(b * c, h, w), gn, ratio, offset, size)
    y = y.reshape(b, c, *y.shape[-2:])
    return y[0] if squeeze else y


def wald_protocol(
    ms: torch.Tensor, pan: torch.Tensor, ratio: int, *, gnyq_ms: float | Sequence[float] = 0.3,
    gnyq_pan: float = 0.15, size: int = 41,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Reduced-resolution pansharpening pair (Wald protocol): degrade both inputs by ``ratio``.

    Parameters
    ----------
    ms
        Low-resolution hyperspectral/multispectral image (…, C, h, w).
    pan
        PAN image (…, 1, h r, w r).
    ratio
        Resolution ratio r between PAN and MS.
    gnyq_ms, gnyq_pan
        MTF gains at Nyquist of the MS bands and the PAN.

    Returns
    -------
    ms_low, pan_low, reference
        ``blur_decimate(ms)`` (…, C, h / r, w / r), ``blur_decimate(pan)`` (…, 1, h, w) and the original
        ``ms`` as the reference the fused product is scored against.
    """
    if pan.shape[-2] != ms.shape[-2] * ratio or pan.shape[-1] != ms.shape[-1] * ratio:
        raise UsageError(f"PAN {tuple(pan.shape[-2:])} is not {ratio} x the MS size {tuple(ms.shape[-2:])}")
    return (blur_decimate(ms, ratio, gnyq_ms, size=size), blur_decimate(pan, ratio, gnyq_pan, size=size), ms)


# ------------------------------------------------------------------------------ spectral degradation


def band_weights(wavelength: Any, srf_wavelength: Any, srf: Any) -> np.ndarray:
    """Weights of the cube's bands in one broad band with a tabulated spectral response.

    :math:`w_b \\propto R(\\lambda_b)\\,\\Delta\\lambda_b` with the response :math:`R` linearly interpolated at
    the band centres (0 outside its table) and :math:`\\Delta\\lambda_b` the band's share of the
    wavelength axis (half the distance between its neighbours); normalised to sum 1. Shape (C,).
    """
    wl = np.asarray(wavelength, float)
    order = np.argsort(wl)
    s = wl[order]
    edges = np.concatenate([[s[0] - (s[1] - s[0]) / 2 if s.size > 1 else s[0] - 0.5],
                            (s[1:] + s[:-1]) / 2,
                            [s[-1] + (s[-1] - s[-2]) / 2 if s.size > 1 else s[0] + 0.5]])
    width = np.empty_like(wl)
    width[order] = np.diff(edges)
    r = np.interp(wl, np.asarray(srf_wavelength, float), np.asarray(srf, float), left=0.0, right=0.0)
    w = r * width
    if w.sum() <= 0:
        raise UsageError("the spectral response does not overlap the cube's wavelengths")
    return w / w.sum()


def simulate_pan(
    x: torch.Tensor, wavelength: Any, *, srf: tuple[Any, Any] | None = None, band: tuple[float, float] = (450.0, 900.0),
) -> torch.Tensor:
    """A panchromatic image from a cube: :math:`P = \\sum_b w_b x_b` (:func:`band_weights`).

    ``srf`` is a tabulated response ``(wavelength_nm, response)``; without it a flat response over
    ``band`` (nm, default 450-900 nm, roughly a PAN detector). Returns (…, 1, H, W).
    """
    if srf is None:
        lo, hi = band
        srf = ([lo - 1e-6, lo, hi, hi + 1e-6], [0.0, 1.0, 1.0, 0.0])
    xb, squeeze = _batch(x)
    w = torch.as_tensor(band_weights(wavelength, *srf), dtype=xb.dtype, device=xb.device)
    if w.numel() != xb.shape[1]:
        raise UsageError(f"{w.numel()} wavelengths for {xb.shape[1]} bands")
    y = torch.einsum("bchw,c->bhw", xb, w)[:, None]
    return y[0] if squeeze else y


def simulate_bands(
    x: torch.Tensor, wavelength: Any, target_wavelength: Any, target_fwhm: Any, **srf_options: Any,
) -> torch.Tensor:
    """A multispectral (or other hyperspectral) image from a cube through Gaussian target SRFs.

    :math:`y_j = \\sum_b W_{jb} x_b` with :func:`hsikit.data.spectral.gaussian_srf` (exact integrals of
    each target Gaussian against the piecewise-linear spectrum); e.g. EnMAP -> Sentinel-2 with
    ``sensor_bands("sentinel2")``. Bands the source does not cover are NaN. Returns (…, n_target, H, W).
    """
    from hsikit.data.spectral import resample_spectra

    xb, squeeze = _batch(x)
    y = resample_spectra(xb, wavelength, target_wavelength, target_fwhm, axis=1, **srf_options)
    return y[0] if squeeze else y


# ------------------------------------------------------------------------------------------ recipes

_NUM = r"[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?(?:/[0-9]*\.?[0-9]+)?"
_RANGE = re.compile(rf"({_NUM})-({_NUM})")
_KINDS = ("none", "gaussian", "blind", "noniid", "poisson", "stripe", "deadline", "impulse", "mixture", "complex")
_ALIASES = {"clean": "none", "iid": "gaussian", "awgn": "gaussian", "non-iid": "noniid", "stripes": "stripe",
            "deadlines": "deadline", "dead": "deadline", "deadline": "deadline", "saltpepper": "impulse",
            "s&p": "impulse", "complex-train": "complex"}
_KEYS = {
    "none": set(), "gaussian": {"sigma"}, "blind": {"low", "high"}, "noniid": set(), "poisson": {"gain", "read"},
    "stripe": {"bands", "amp", "protocol", "min", "max"}, "deadline": {"bands", "protocol", "min", "max"},
    "impulse": {"bands", "protocol", "low", "high"}, "mixture": set(), "complex": set(),
}


def _number(text: str, spec: str) -> float:
    try:
        if "/" in text:
            a, b = text.split("/")
            return float(a) / float(b)
        return float(text)
    except (ValueError, ZeroDivisionError):
        raise UsageError(f"noise spec {spec!r}: {text!r} is not a number (write 0.1, 50/255 or 1e-3)") from None


@dataclass
class NoiseStep:
    """One step of a :class:`NoiseRecipe`: a kind, positional values, an optional (lo, hi) range and options."""

    kind: str
    values: list[float] = field(default_factory=list)
    range: tuple[float, float] | None = None
    options: dict[str, Any] = field(default_factory=dict)


def _parse_step(text: str, spec: str) -> NoiseStep:
    name, _, args = text.partition(":")
    kind = name.strip().lower()
    kind = _ALIASES.get(kind, kind)
    if kind not in _KINDS:
        raise UsageError(f"noise spec {spec!r}: unknown noise {name!r} (use {', '.join(_KINDS)})")
    step = NoiseStep(kind)
    for arg in filter(None, (a.strip() for a in args.split(","))):
        if "=" in arg:
            key, _, value = arg.partition("=")
            key = key.strip().lower()
            if key not in _KEYS[kind]:
                allowed = ", ".join(sorted(_KEYS[kind])) or "none"
                raise UsageError(f"noise spec {spec!r}: {kind} has no option {key!r} (options: {allowed})")
            value = value.strip()
            if key == "protocol":
                step.options[key] = _check_protocol(value)
            elif key in ("bands", "min", "max"):
                step.options[key] = int(_number(value, spec))
            else:
                step.options[key] = _number(value, spec)
        elif (m := _RANGE.fullmatch(arg)) is not None:
            if step.range is not None or step.values:
                raise UsageError(f"noise spec {spec!r}: give either one range or a list of values")
            step.range = (_number(m.group(1), spec), _number(m.group(2), spec))
        else:
            if step.range is not None:
                raise UsageError(f"noise spec {spec!r}: give either one range or a list of values")
            step.values.append(_number(arg, spec))
    _check_step(step, spec)
    return step


def _check_step(step: NoiseStep, spec: str) -> None:
    k, n = step.kind, len(step.values)
    takes_values = {"gaussian": (0, 99), "blind": (0, 0), "noniid": (0, 99), "poisson": (0, 2), "impulse": (0, 99)}
    lo, hi = takes_values.get(k, (0, 0))
    if not lo <= n <= hi:
        raise UsageError(f"noise spec {spec!r}: {k} takes {'no' if hi == 0 else f'at most {hi}'} values, got {n}")
    if step.range is not None and k not in ("gaussian", "blind", "noniid"):
        raise UsageError(f"noise spec {spec!r}: {k} does not take a range")
    if k == "gaussian" and n == 0 and step.range is None and "sigma" not in step.options:
        raise UsageError(f"noise spec {spec!r}: gaussian needs a sigma (e.g. gaussian:0.1 or gaussian:50/255)")
    if k == "poisson" and n == 0 and "gain" not in step.options:
        raise UsageError(f"noise spec {spec!r}: poisson needs a gain (e.g. poisson:0.01,0.005)")
    if step.range is not None and step.range[0] > step.range[1]:
        raise UsageError(f"noise spec {spec!r}: range {step.range[0]}-{step.range[1]} is reversed")
    if any(v < 0 for v in step.values):
        raise UsageError(f"noise spec {spec!r}: values must be >= 0")


class NoiseRecipe:
    """A chain of noise steps parsed from a spec string (see the module docstring); callable on tensors.

    ``recipe(x, generator)`` applies the steps in order to a (C, H, W) or (B, C, H, W) tensor. The
    recipe holds the round-robin counters of ``gaussian:a,b,c`` (one sigma per image, cycling) and
    ``complex``, so keep one recipe per data stream (each DataLoader worker holds its own copy, as in
    the reference training code). ``str(recipe)`` gives the spec back.
    """

    def __init__(self, spec: str) -> None:
        text = (spec or "").strip()
        if not text:
            raise UsageError("empty noise spec (use e.g. gaussian:0.1, noniid, mixture)")
        self.spec = text
        self.steps = [_parse_step(part, text) for part in text.split("+")]
        self._counters = [0] * len(self.steps)

    def __repr__(self) -> str:
        return f"NoiseRecipe({self.spec!r})"

    def __str__(self) -> str:
        return self.spec

    def reset(self) -> None:
        """Restart the round-robin counters."""
        self._counters = [0] * len(self.steps)

    def __call__(self, x: torch.Tensor, generator: SeedLike = None) -> torch.Tensor:
        g = as_generator(generator)
        y = x
        for i, step in enumerate(self.steps):
            y = self._apply(i, step, y, g)
        return y

    def _next(self, i: int, n: int) -> list[int]:
        start = self._counters[i]
        self._counters[i] += n
        return list(range(start, start + n))

    def _apply(self, i: int, step: NoiseStep, x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
        k, o = step.kind, step.options
        n_img = 1 if x.ndim == 3 else x.shape[0]
        if k == "none":
            return x
        if k == "gaussian":
            if step.range is not None:
                return blind_gaussian(x, *step.range, generator=g)
            values = step.values or [o["sigma"]]
            if len(values) == 1:
                return gaussian_noise(x, values[0], generator=g)
            picks = [values[j % len(values)] for j in self._next(i, n_img)]
            return gaussian_noise(x, picks[0] if x.ndim == 3 else [[p] for p in picks], generator=g)
        if k == "blind":
            lo, hi = step.range or (o.get("low", SIGMAS_255[0] / 255), o.get("high", SIGMAS_255[-1] / 255))
            return blind_gaussian(x, lo, hi, generator=g)
        if k == "noniid":
            if step.range is not None:
                return noniid_gaussian(x, step.range, uniform=True, generator=g)
            return noniid_gaussian(x, step.values or None, generator=g)
        if k == "poisson":
            gain = step.values[0] if step.values else o["gain"]
            read = step.values[1] if len(step.values) > 1 else o.get("read", 0.0)
            return poisson_gaussian(x, gain, read, generator=g)
        if k in ("stripe", "deadline"):
            protocol = o.get("protocol", "test")
            count = None
            if "min" in o or "max" in o:
                width = x.shape[-1]
                lo, hi = column_count_range(width, k, protocol)
                count = (o.get("min", lo), o.get("max", hi))
            if k == "stripe":
                return stripes(x, o.get("bands"), amplitude=o.get("amp", STRIPE_AMPLITUDE), protocol=protocol,
                               count=count, generator=g)
            return dead_lines(x, o.get("bands"), protocol=protocol, count=count, generator=g)
        if k == "impulse":
            return impulse(x, o.get("bands"), densities=step.values or IMPULSE_DENSITIES, low=o.get("low", 0.0),
                           high=o.get("high", 1.0), protocol=o.get("protocol", "test"), generator=g)
        if k == "mixture":
            return mixture_noise(x, generator=g)
        if k == "complex":
            choices = self._next(i, n_img)
            return complex_noise(x, choices[0] if x.ndim == 3 else choices, generator=g)
        raise UsageError(f"unknown noise kind {k!r}")  # pragma: no cover - _parse_step rejects it


def parse_noise(spec: str | NoiseRecipe) -> NoiseRecipe:
    """Parse a noise spec (``"gaussian:0.1"``, ``"noniid:0.1-0.3"``, ``"mixture"``, ``"noniid+stripe"``, ...)."""
    return spec if isinstance(spec, NoiseRecipe) else NoiseRecipe(spec)


def degrade(x: torch.Tensor, noise: str | NoiseRecipe | None = None, *, blur_ratio: int | None = None,
            gnyq: float | Sequence[float] = 0.3, generator: SeedLike = None) -> torch.Tensor:
    """Blur + decimate by ``blur_ratio`` (if given), then apply the noise recipe (if given).

    The order of a sensor: the optics blur and the detector samples, then noise is added to the samples.
    """
    y = x
    if blur_ratio is not None and int(blur_ratio) > 1:
        y = blur_decimate(y, int(blur_ratio), gnyq)
    if noise is not None:
        y = parse_noise(noise)(y, generator)
    return y


# ------------------------------------------------------------------------------------- cube level


def _spectral_response(t: torch.Tensor, bad: torch.Tensor, srf: str, cube: Any) -> tuple[torch.Tensor, torch.Tensor, dict]:
    """Apply ``srf`` (sensor name or ``pan[:lo-hi]``) to (…, C, H, W) values; returns values, nodata mask, band metadata."""
    from hsikit.data.sensors import sensor_bands

    wl = np.asarray(cube["wavelength"].values, float)
    band_axis = t.ndim - 3
    usable = np.asarray(cube["bbl"].values, bool) & ~bad.all(dim=tuple(a for a in range(t.ndim) if a != band_axis)).cpu().numpy()
    if not np.isfinite(wl[usable]).all() or not usable.any():
        raise UsageError("a spectral response needs the cube's wavelengths")
    src = t.index_select(band_axis, torch.as_tensor(np.flatnonzero(usable), device=t.device))
    pixel_bad = bad.index_select(band_axis, torch.as_tensor(np.flatnonzero(usable), device=t.device)).all(dim=band_axis, keepdim=True)
    src = torch.where(torch.isnan(src), 0.0, src)
    key = srf.strip().lower()
    if key.startswith("pan"):
        lo, hi = 450.0, 900.0
        if ":" in key:
            m = _RANGE.fullmatch(key.split(":", 1)[1].strip())
            if m is None:
                raise UsageError(f"srf {srf!r}: write pan or pan:LO-HI (nm)")
            lo, hi = float(m.group(1)), float(m.group(2))
        y = simulate_pan(src, wl[usable], band=(lo, hi))
        meta = {"wavelength": [(lo + hi) / 2], "fwhm": [hi - lo], "bbl": [True], "band_names": [f"PAN {lo:g}-{hi:g} nm"],
                "band_numbers": [1]}
    else:
        target = sensor_bands(srf)
        # do not interpolate across absorption gaps (e.g. EnMAP's missing 1340-1460 nm): no target band there
        gap = max(50.0, 5.0 * float(np.median(np.diff(np.sort(wl[usable])))) if usable.sum() > 1 else 50.0)
        y = simulate_bands(src, wl[usable], target.wavelength, target.fwhm, max_gap=gap)
        covered = ~torch.isnan(y).flatten(0, -3).any(dim=-1).any(dim=-1).reshape(-1, y.shape[-3]).any(dim=0).cpu().numpy()
        keep = np.flatnonzero(covered)
        y = y.index_select(band_axis, torch.as_tensor(keep, device=y.device))
        meta = {"wavelength": target.wavelength[keep], "fwhm": target.fwhm[keep], "bbl": target.bbl[keep],
                "band_names": [str(n) for n in target.names[keep]], "band_numbers": keep + 1}
    return y, pixel_bad.expand_as(y), meta


def degrade_cube(
    cube: Any,
    noise: str | NoiseRecipe | None = None,
    *,
    blur_ratio: int | None = None,
    gnyq: float | Sequence[float] = 0.3,
    seed: SeedLike = 0,
    value_scale: float | str = 1.0,
    srf: str | None = None,
    device: str | torch.device = "cpu",
) -> Any:
    """Degrade a cube of the :mod:`hsikit.cube` model: spectral response, blur + decimation, noise.

    The steps run in sensor order: spectral response (``srf``), then optics + sampling
    (``blur_ratio``), then noise.

    The cube is converted to physical values first (:func:`hsikit.cube.to_reflectance`: int16
    reflectance x 10000 becomes 0-1, nodata becomes NaN), divided by ``value_scale`` (noise and
    impulse parameters refer to that scale; e.g. 10000 for reflectance x 10000 files without a scale
    tag), degraded as a whole (stripes span whole columns, so no tiling) and multiplied back.
    Nodata pixels stay nodata (NaN): for the blur they are filled with the band mean, and a
    low-resolution pixel is nodata when the input sample it is taken at was.

    Parameters
    ----------
    cube
        (band, y, x) or (time, band, y, x) cube; the time axis is treated as a batch.
    noise
        Noise spec or :class:`NoiseRecipe` (None: no noise).
    blur_ratio
        Integer scale factor r of :func:`blur_decimate` (None or 1: no blur). The output grid has
        r times larger pixels with the same origin.
    gnyq
        MTF gain at Nyquist (scalar or per band).
    seed
        Seed or generator of the noise.
    value_scale
        Physical value that maps to 1 in the noise parameters, or ``"max"``: the cube's largest value
        (noise relative to the peak, as on min-max normalised benchmark cubes; output in input units).
    srf
        Simulate other bands first: a sensor name (``"sentinel2"``, ``"enmap"``, ``"aviris"``: Gaussian
        SRFs of its band table, :func:`simulate_bands`; target bands the cube does not cover, or that
        fall in a gap wider than max(50 nm, 5 band spacings), are dropped), ``"pan"`` (flat 450-900 nm response, :func:`simulate_pan`) or ``"pan:LO-HI"`` (nm).
        Needs wavelengths; bad bands and entirely-nodata bands are left out of the response.
    device
        Torch device to compute on.

    Returns
    -------
    xarray.DataArray
        float32 cube with the input's band metadata, CRS and acquisition attrs, nodata NaN, and attr
        ``degradation`` describing what was applied.
    """
    from affine import Affine

    from hsikit.cube import BAND, TIME, geotransform, make_cube, to_reflectance

    phys = to_reflectance(cube)
    values = np.asarray(phys.values, dtype=np.float32)
    if isinstance(value_scale, str):
        if value_scale.strip().lower() != "max":
            raise UsageError(f"value_scale must be a number or 'max', got {value_scale!r}")
        value_scale = float(np.nanmax(values))
    value_scale = float(value_scale)
    if not value_scale > 0:
        raise UsageError(f"value_scale must be > 0, got {value_scale}")
    r = int(blur_ratio or 1)
    if r < 1:
        raise UsageError(f"blur_ratio must be >= 1, got {blur_ratio}")
    t = torch.from_numpy(values).to(device) / value_scale
    bad = torch.isnan(t)
    band_meta = {
        "wavelength": cube["wavelength"].values, "fwhm": cube["fwhm"].values, "bbl": cube["bbl"].values,
        "band_names": [str(v) for v in cube["band_name"].values], "band_numbers": cube[BAND].values,
    }
    if srf is not None:
        t, bad, band_meta = _spectral_response(t, bad, srf, cube)
    if r > 1:
        # fill nodata with the band mean so the blur does not spread NaN, then sample the nodata mask
        spatial = (-2, -1)
        counts = (~bad).sum(dim=spatial, keepdim=True).clamp(min=1)
        means = torch.where(bad, 0.0, t).sum(dim=spatial, keepdim=True) / counts
        t = blur_decimate(torch.where(bad, means.expand_as(t), t), r, gnyq)
        o = r // 2
        bad = bad[..., o::r, o::r]
    if noise is not None:
        t = parse_noise(noise)(torch.where(bad, 0.0, t), as_generator(seed, t.device if isinstance(seed, int) else "cpu"))
    t = torch.where(bad, float("nan"), t) * value_scale
    out_values = t.cpu().numpy().astype(np.float32)
    described = [f"srf={srf}" if srf is not None else "", f"noise={noise}" if noise is not None else "",
                 f"blur_ratio={r} gnyq={gnyq}" if r > 1 else "",
                 f"seed={seed}" if noise is not None and not isinstance(seed, torch.Generator) else ""]
    if r == 1 and srf is None:
        out = phys.copy(data=out_values)
    else:
        transform = geotransform(cube)
        out = make_cube(
            out_values, **band_meta, crs=cube.rio.crs,
            transform=None if transform is None else transform * Affine.scale(r),
            time=cube[TIME].values if TIME in cube.dims else None, name=str(cube.name or "cube"),
        )
        out.attrs.update({k: v for k, v in cube.attrs.items() if k not in ("_FillValue",)})
        out = out.rio.write_nodata(np.nan, encoded=False)
    out.attrs["degradation"] = "; ".join(s for s in described if s)
    return out
