"""Sparse-noise removal: find impulse, stripe and dead-line values and replace them before denoising.

Subspace denoisers (FastHyDe, ``hsdt-s-sub``) assume Gaussian noise: an impulse or a dead column in one
band leaks into every eigen-image, and the noise and subspace estimates absorb it. This step detects
such values and replaces them by a low-rank prediction, so that what the denoiser sees is (nearly)
Gaussian again. It changes nothing on a cube without sparse noise.

For a cube ``y`` (L, H, W) with per-band noise sigma:

1. whiten, ``x = y / sigma``, and take the LRMR low-rank part ``P`` (patch-wise rank-r + soft-thresholded
   sparse part, :func:`hsikit.denoise.classical.lrmr_whitened`) as the prediction of every value;
   each band's residual ``x - P`` is scaled by max(1, 1.4826 x its median absolute value), so that a
   prediction poorer than the noise (very clean scenes) does not look like sparse noise;
2. flag the values beyond ``threshold`` that are also ``ISOLATION`` times the residual of their 4
   nearest bands (sparse noise hits one band at a time, a real scene's prediction error does not);
3. gate the flags by structure (:func:`sparse_mask`, every test relative): a *band* whose flagged
   fraction is high against the chance rate and the bands' median (impulse) has its flagged values
   replaced; a *column* or *row* of one band whose median residual is an outlier among the band's
   lines, or whose flagged fraction is high for its band (stripe, dead line), is replaced whole;
4. replaced values become ``sigma * P``; all others are kept exactly.

Gaussian-only cubes pass unchanged: on the test split's Gaussian and non-iid cubes no value is
replaced and the denoised outputs are bit-identical. On the QRNN3D mixture noise the step lifts
FastHyDe from 25.39 to 30.20 dB and hsdt-s-sub from 26.52 to 30.81 dB (docs/benchmarks.md). On very
clean scenes it still replaces a few tenths of a percent of values, hence off by default in
:func:`hsikit.denoise.api.denoise`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from hsikit.denoise.classical import _cube, lrmr_whitened, noise_sigma

#: Residual (in noise-sigma units) above which a value is flagged.
THRESHOLD = 2.0
#: Standard errors over the chance rate at which a band, column or row counts as corrupted.
GATE_Z = 8.0
#: A flagged residual must be this many times the median of its 4 nearest bands' (at the same place).
ISOLATION = 3.0
#: A fraction is tested against this multiple of the typical fraction when that exceeds the chance rate.
RATE_RATIO = 1.5
#: Residual (sigma units) whose excess count marks a band as impulse-corrupted.
BAND_THRESHOLD = 4.0
#: Standard errors from 0 at which a column's (row's) median residual counts as a stripe offset.
OFFSET_Z = 6.0
#: Standard error of the median of n unit-variance Gaussian values, times sqrt(n): sqrt(pi / 2).
MEDIAN_SE = math.sqrt(math.pi / 2.0)
#: Rank and patch geometry of the low-rank prediction (LRMR's defaults, a lower shrinkage).
RANK, PATCH, STRIDE, SHRINK = 3, 20, 8, 1.5
#: Low-rank/sparse iterations of the prediction (LRMR's own default is 12). Measured on the test split
#: (96 px crops) and the README's sample scene: 4 gives the same detections (mixture: hsdt-s-sub 30.81 ->
#: 30.93 dB, FastHyDe 30.20 -> 30.34 dB; Gaussian unchanged; sample scene 0.49 -> 0.50 % replaced,
#: 72.88 dB both) in 0.63x the time of the step on the sample scene.
ITERS = 4


@dataclass
class SparseNoise:
    """What :func:`remove_sparse_noise` found: ``mask`` (..., L, H, W) True where a value was replaced."""

    cleaned: torch.Tensor
    mask: torch.Tensor

    @property
    def fraction(self) -> float:
        """Fraction of values replaced."""
        return float(self.mask.float().mean()) if self.mask.numel() else 0.0


def _excess(frac: torch.Tensor, n: int, rate: torch.Tensor, z: float) -> torch.Tensor:
    """True where a flagged fraction over ``n`` values is ``z`` standard errors above ``rate`` (broadcast)."""
    return frac > rate + z * torch.sqrt(rate * (1.0 - rate) / max(n, 1))


def _rate(chance: float, typical: torch.Tensor) -> torch.Tensor:
    """The rate a fraction is tested against: the chance rate, or ``RATE_RATIO`` x the typical one if higher."""
    return torch.clamp(RATE_RATIO * typical, min=chance, max=0.5)


def _isolated(v: torch.Tensor) -> torch.Tensor:
    """True where ``|v|`` (n, L, ...) is ``ISOLATION`` x the median ``|v|`` of the 4 nearest bands.

    Sparse noise hits one band at a time; a prediction error of a real scene (a missed material, an
    edge) shows in the neighbouring bands too.
    """
    a = v.abs()
    L = a.shape[1]
    if L < 3:
        return torch.ones_like(a, dtype=torch.bool)
    pad = torch.cat([a[:, 1:3].flip(1), a, a[:, -3:-1].flip(1)], dim=1)  # mirror two bands per side
    near = torch.stack([pad[:, k : k + L] for k in (0, 1, 3, 4)], dim=0).median(dim=0).values
    return a > ISOLATION * near


def _offset(r: torch.Tensor, dim: int, z: float) -> torch.Tensor:
    """Lines (along ``dim``) of unit-noise residuals ``r`` whose median stands out of the band's lines.

    A line's median is tested against the median of all lines' medians, with the larger of its
    standard error under noise and the lines' own spread (1.4826 x their median absolute deviation):
    real scenes leave line-wise prediction errors (edges, fields), a stripe or a dead line is an
    outlier among them.
    """
    n = r.shape[dim]
    med = r.median(dim=dim).values  # (..., lines)
    centre = med.median(dim=-1, keepdim=True).values
    dev = (med - centre).abs()
    spread = torch.clamp(1.4826 * dev.median(dim=-1, keepdim=True).values, min=MEDIAN_SE / math.sqrt(max(n, 1)))
    return (dev > z * spread) & _isolated(med - centre)


def sparse_mask(x: torch.Tensor, pred: torch.Tensor, *, threshold: float = THRESHOLD, z: float = GATE_Z,
                z_offset: float = OFFSET_Z, band_threshold: float = BAND_THRESHOLD) -> torch.Tensor:
    """Corrupted values of whitened cubes ``x`` (n, L, H, W) given their prediction ``pred``: bool, same shape.

    Every test is relative, so that the prediction's own errors on real scenes (heavy-tailed, along
    edges) do not pass for sparse noise: a band is impulse-corrupted when its flagged fraction is
    high against the chance rate *and* against the bands' median; a column (row) when its flagged
    fraction is high against its band's, or when its median residual stands out of the band's other
    columns (rows) (stripes and dead lines shift a whole column, often by less than ``threshold``
    sigma per value).
    """
    _, _, H, W = x.shape
    r = x - pred
    # each band's residuals are measured against max(noise, their median absolute size x 1.4826)
    spread = 1.4826 * r.abs().flatten(-2).median(dim=-1).values
    r = r / spread.clamp_min(1.0)[..., None, None]
    flags = (r.abs() > threshold) & _isolated(r)
    p0 = math.erfc(threshold / math.sqrt(2.0))
    pb = math.erfc(band_threshold / math.sqrt(2.0))
    # 1. columns / rows whose residuals share an offset (stripes, dead lines)
    lines = _offset(r, -2, z_offset)[..., None, :] | _offset(r, -1, z_offset)[..., :, None]
    # 2. impulse-like bands, from the values outside those lines: too many beyond threshold, or beyond
    #    band_threshold (far outliers are so rare in Gaussian noise that a few are significant)
    f = flags.to(x.dtype)
    rest = (~lines).to(x.dtype)
    n_rest = rest.sum(dim=(-2, -1)).clamp_min(1)
    frac = (f * rest).sum(dim=(-2, -1)) / n_rest  # (n, L)
    far = (((r.abs() > band_threshold) & flags).to(x.dtype) * rest).sum(dim=(-2, -1)) / n_rest
    band = (_excess(frac, H * W, _rate(p0, frac.median(dim=-1, keepdim=True).values), z)
            | _excess(far, H * W, _rate(pb, far.median(dim=-1, keepdim=True).values), z))
    # 3. columns / rows with too many flagged values for their band, in bands without impulses
    free = ~band[..., None]
    base = _rate(p0, frac)[..., None]
    col = _excess(f.mean(dim=-2), H, base, z) & free  # (n, L, W)
    row = _excess(f.mean(dim=-1), W, base, z) & free  # (n, L, H)
    return (flags & band[..., None, None]) | lines | col[..., None, :] | row[..., :, None]


def remove_sparse_noise(
    y: Any,
    sigma: Any = None,
    *,
    threshold: float = THRESHOLD,
    z: float = GATE_Z,
    rank: int = RANK,
    patch: int = PATCH,
    stride: int = STRIDE,
    iters: int = ITERS,
) -> SparseNoise:
    """Replace impulse, stripe and dead-line values of cubes ``y`` (..., L, H, W) by a low-rank prediction.

    Parameters
    ----------
    y
        Noisy cube(s), any unit.
    sigma
        Per-band Gaussian noise sigma (see :func:`hsikit.denoise.classical.noise_sigma`); None: robust
        HySime per cube.
    threshold
        Residual in sigma units above which a value is flagged.
    z
        Gate of the band / column / row tests (standard errors over the chance rate).
    rank, patch, stride, iters
        Low-rank prediction (:func:`hsikit.denoise.classical.lrmr_whitened`).

    Returns
    -------
    SparseNoise
        The cleaned cube(s) (same shape and dtype as ``y``) and the mask of replaced values.
    """
    t = _cube(y)
    work = torch.float64 if t.dtype == torch.float64 else torch.float32
    s = noise_sigma(t, sigma).to(work)
    lead, L, H, W = t.shape[:-3], t.shape[-3], t.shape[-2], t.shape[-1]
    x = (t.to(work) / s[..., :, None, None]).reshape(-1, L, H, W)
    pred = lrmr_whitened(x, rank=min(rank, L), patch=patch, stride=stride, lam=SHRINK, iters=iters)
    mask = sparse_mask(x, pred, threshold=threshold, z=z).reshape(*lead, L, H, W)
    pred = (pred.reshape(*lead, L, H, W) * s[..., :, None, None]).to(t.dtype)
    return SparseNoise(cleaned=torch.where(mask, pred, t), mask=mask)
