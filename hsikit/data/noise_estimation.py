"""HySime: noise estimation by multiple regression and signal-subspace identification.

Bioucas-Dias & Nascimento, "Hyperspectral subspace identification", IEEE TGRS 46(8), 2008.

Batched torch implementation: every function takes spectra as ``(..., L, N)`` (L bands, N pixels,
any leading batch dims) on any device; statistics are computed in float64.

Steps (``../shared/docs/unmix_pansharp_metrics.md`` section 4.4):

1. Noise: each band is regressed on all the other bands; the residual is the noise estimate. With
   ``P = (Y Yᵀ + εI)⁻¹`` the least-squares residual of band i on the others is ``(P Y)_i / P_ii``
   (the rank-one downdate of the inverse, done for every band at once). The noise correlation is the
   diagonal of the residual correlation (additive noise, uncorrelated between bands).
2. Signal correlation ``R_x = (Y - W)(Y - W)ᵀ / N``, eigen-decomposed.
3. ``R_n`` is regularised by a tiny multiple of ``trace(R_x) / L``.
4. For each eigenvector e: ``cost = -eᵀ R_y e + 2 eᵀ R_n e``; the subspace is the eigenvectors of
   negative cost, sorted by cost.

No mean is removed (as in the reference). Spectra are in any unit; sigma comes back in the same unit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch

from hsikit.errors import UsageError

NoiseType = Literal["additive", "poisson"]

#: Relative ridge added to Y Yᵀ before the inversion (times its mean diagonal).
RIDGE = 1e-9
#: Relative regulariser of R_n in the subspace step (times trace(R_x) / L), as in the reference.
RN_REG = 1e-6


@dataclass
class NoiseEstimate:
    """HySime noise estimate.

    Attributes
    ----------
    noise
        (..., L, N) residuals (the noise estimate per band and pixel; zero at masked pixels).
    cov
        (..., L, L) noise correlation (diagonal for additive noise).
    sigma
        (..., L) noise standard deviation per band, ``sqrt(diag(cov))``.
    """

    noise: torch.Tensor
    cov: torch.Tensor

    @property
    def sigma(self) -> torch.Tensor:
        return torch.diagonal(self.cov, dim1=-2, dim2=-1).clamp_min(0).sqrt()


@dataclass
class Subspace:
    """HySime signal subspace.

    Attributes
    ----------
    dim
        (...) int64 subspace dimension k (count of eigenvectors with negative cost).
    basis
        (..., L, L) all eigenvectors of R_x as columns, sorted by increasing cost: the first ``dim``
        span the signal subspace.
    cost
        (..., L) the cost of each column of ``basis`` (negative = kept).
    """

    dim: torch.Tensor
    basis: torch.Tensor
    cost: torch.Tensor

    def signal_basis(self) -> torch.Tensor:
        """(L, k) basis of an unbatched estimate."""
        if self.dim.ndim:
            raise UsageError("signal_basis() needs an unbatched subspace estimate; index the batch first")
        return self.basis[:, : int(self.dim)]


def _as_tensor(y: Any) -> torch.Tensor:
    t = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    if t.ndim < 2:
        raise UsageError(f"spectra must be (..., bands, pixels), got shape {tuple(t.shape)}")
    return t.to(torch.float64)


def _mask(mask: Any, y: torch.Tensor) -> torch.Tensor | None:
    if mask is None:
        return None
    m = mask if isinstance(mask, torch.Tensor) else torch.as_tensor(np.asarray(mask))
    m = m.to(device=y.device, dtype=torch.bool)
    if m.shape != y.shape[:-2] + y.shape[-1:]:
        raise UsageError(f"mask shape {tuple(m.shape)} does not match spectra {tuple(y.shape)} (expected (..., N))")
    return m


def _count(y: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    if m is None:
        return torch.full(y.shape[:-2], y.shape[-1], dtype=y.dtype, device=y.device)
    return m.sum(-1).to(y.dtype)


def _additive(y: torch.Tensor, m: torch.Tensor | None, dof_correction: bool) -> NoiseEstimate:
    L = y.shape[-2]
    if m is not None:
        y = y * m.unsqueeze(-2)
    gram = y @ y.transpose(-1, -2)
    ridge = RIDGE * torch.diagonal(gram, dim1=-2, dim2=-1).mean(-1).clamp_min(torch.finfo(y.dtype).tiny)
    eye = torch.eye(L, dtype=y.dtype, device=y.device)
    p = torch.linalg.inv(gram + ridge[..., None, None] * eye)
    w = (p @ y) / torch.diagonal(p, dim1=-2, dim2=-1).unsqueeze(-1)
    n = _count(y, m)
    var = (w * w).sum(-1) / n.unsqueeze(-1)
    if dof_correction:
        # residual of a regression on L-1 other bands keeps (N - L + 1) of N degrees of freedom
        var = var * (n / (n - L + 1).clamp_min(1)).unsqueeze(-1)
    return NoiseEstimate(noise=w, cov=torch.diag_embed(var))


def _robust_cov(w: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
    """Diagonal noise correlation from the median absolute residual (1.4826 MAD, zero-median residuals)."""
    a = w.abs()
    if m is not None:
        a = torch.where(m.unsqueeze(-2), a, torch.full((), float("nan"), dtype=a.dtype, device=a.device))
        med = torch.nanmedian(a, dim=-1).values
    else:
        med = torch.median(a, dim=-1).values
    return torch.diag_embed((1.482602218505602 * med) ** 2)


#: Winsorising passes of the robust estimate, and the clip in robust sigmas.
ROBUST_PASSES = 3
ROBUST_CLIP = 3.0


def _robust_additive(y: torch.Tensor, m: torch.Tensor | None, dof_correction: bool) -> NoiseEstimate:
    """Regression noise estimate that sparse outliers do not drive.

    Pass k regresses the current cube, takes sigma from the median absolute residual, and replaces each
    value whose residual exceeds ``ROBUST_CLIP`` sigma by its prediction plus the clipped residual
    (winsorising), so impulses, stripes and dead lines stop leaking into the regressions of the other
    bands. The noise estimate is the original cube minus the last pass's prediction.
    """
    L = y.shape[-2]
    n = _count(y, m)
    fix = (n / (n - L + 1).clamp_min(1))[..., None, None] if dof_correction else 1.0
    cur = y
    for _ in range(ROBUST_PASSES):
        est = _additive(cur, m, False)
        cov = _robust_cov(est.noise, m) * fix
        clip = ROBUST_CLIP * torch.diagonal(cov, dim1=-2, dim2=-1).sqrt().unsqueeze(-1)
        pred = cur - est.noise
        cur = pred + torch.maximum(torch.minimum(est.noise, clip), -clip)
    w = y - pred
    if m is not None:
        w = w * m.unsqueeze(-2)
    return NoiseEstimate(noise=w, cov=cov)


def estimate_noise(
    y: Any, *, noise_type: NoiseType = "additive", mask: Any = None, dof_correction: bool = True, robust: bool = False
) -> NoiseEstimate:
    """Estimate the noise of every band by multiple regression on the other bands.

    Parameters
    ----------
    y
        (..., L, N) spectra (numpy or torch, any device), L bands by N pixels.
    noise_type
        ``"additive"`` (signal-independent) or ``"poisson"`` (signal-dependent: the regression runs on
        ``sqrt(max(y, 0))`` and the residual is mapped back, as in the reference).
    mask
        Optional (..., N) bool, True for pixels to use (e.g. not nodata); masked pixels get zero noise.
    dof_correction
        Scale the residual variance by N / (N - L + 1), the degrees of freedom of the regression
        (unbiased for small tiles; the 2008 reference omits it: pass False to match it exactly).
    robust
        Take sigma from the median absolute residual (times 1.4826) instead of the residual power, and
        winsorise outlying values between regression passes (:func:`_robust_additive`), so that sparse
        outliers (impulse noise, stripes, dead lines) do not inflate it (additive only).

    Returns
    -------
    NoiseEstimate
        float64 residuals (..., L, N), diagonal correlation (..., L, L) and ``sigma`` (..., L).
    """
    t = _as_tensor(y)
    m = _mask(mask, t)
    if bool((_count(t, m) <= t.shape[-2]).any()):
        raise UsageError(f"HySime needs more pixels than bands ({t.shape[-1]} pixels, {t.shape[-2]} bands)")
    if noise_type == "additive":
        if not robust:
            return _additive(t, m, dof_correction)
        return _robust_additive(t, m, dof_correction)
    if noise_type == "poisson":
        sq = t.clamp_min(0).sqrt()
        est = _additive(sq, m, dof_correction)
        x = (sq - est.noise) ** 2
        w = x.sqrt() * est.noise * 2
        if m is not None:
            w = w * m.unsqueeze(-2)
        n = _count(t, m)
        cov = (w @ w.transpose(-1, -2)) / n[..., None, None]
        return NoiseEstimate(noise=w, cov=cov)
    raise UsageError(f"noise_type must be 'additive' or 'poisson', got {noise_type!r}")


def hysime(y: Any, noise: NoiseEstimate | None = None, *, mask: Any = None) -> Subspace:
    """Identify the signal subspace of spectra ``y`` (..., L, N) given its noise estimate.

    Parameters
    ----------
    y
        (..., L, N) spectra.
    noise
        The :func:`estimate_noise` result for ``y`` (computed when None).
    mask
        Optional (..., N) bool of pixels to use (as in :func:`estimate_noise`).

    Returns
    -------
    Subspace
        Dimension k (...), eigenvectors sorted by cost (..., L, L) and the costs (..., L).
    """
    t = _as_tensor(y)
    m = _mask(mask, t)
    if noise is None:
        noise = estimate_noise(t, mask=m)
    w = noise.noise.to(device=t.device, dtype=torch.float64)
    L = t.shape[-2]
    n = _count(t, m)[..., None, None]
    ym = t if m is None else t * m.unsqueeze(-2)
    x = ym - w
    rx = (x @ x.transpose(-1, -2)) / n
    ry = (ym @ ym.transpose(-1, -2)) / n
    rx = 0.5 * (rx + rx.transpose(-1, -2))
    eye = torch.eye(L, dtype=t.dtype, device=t.device)
    rn = noise.cov.to(device=t.device, dtype=torch.float64)
    rn = rn + RN_REG * (torch.diagonal(rx, dim1=-2, dim2=-1).sum(-1) / L)[..., None, None] * eye
    _, vecs = torch.linalg.eigh(rx)
    py = (vecs * (ry @ vecs)).sum(-2)
    pn = (vecs * (rn @ vecs)).sum(-2)
    cost = -py + 2 * pn
    order = torch.argsort(cost, dim=-1)
    cost = torch.gather(cost, -1, order)
    basis = torch.gather(vecs, -1, order.unsqueeze(-2).expand_as(vecs))
    return Subspace(dim=(cost < 0).sum(-1), basis=basis, cost=cost)


def _cube_spectra(cube: Any, nodata: float | None) -> tuple[torch.Tensor, torch.Tensor | None]:
    """(..., L, H, W) cube (numpy/torch/xarray) -> (..., L, H*W) float64 spectra and a pixel mask."""
    values = getattr(cube, "values", cube) if not isinstance(cube, torch.Tensor) else cube
    t = values if isinstance(values, torch.Tensor) else torch.as_tensor(np.asarray(values))
    if t.ndim < 3:
        raise UsageError(f"a cube must be (..., bands, y, x), got shape {tuple(t.shape)}")
    t = t.to(torch.float64)
    spectra = t.reshape(*t.shape[:-2], t.shape[-2] * t.shape[-1])
    bad = torch.isnan(spectra)
    if nodata is not None and not np.isnan(nodata):
        bad |= spectra == nodata
    if not bool(bad.any()):
        return spectra, None
    valid = ~bad.any(-2)
    return torch.where(bad, torch.zeros((), dtype=spectra.dtype, device=spectra.device), spectra), valid


def estimate_sigma(
    cube: Any, *, nodata: float | None = None, noise_type: NoiseType = "additive", robust: bool = False
) -> torch.Tensor:
    """Per-band noise standard deviation of a cube (..., L, H, W), in the cube's unit.

    Pixels with NaN or ``nodata`` in any band are left out; ``robust`` as in :func:`estimate_noise`.
    Returns float64 (..., L) on the cube's device.
    """
    spectra, valid = _cube_spectra(cube, nodata)
    return estimate_noise(spectra, noise_type=noise_type, mask=valid, robust=robust).sigma


def estimate_subspace(cube: Any, *, nodata: float | None = None, noise_type: NoiseType = "additive") -> tuple[int, torch.Tensor]:
    """Signal-subspace dimension and basis of one cube (L, H, W) (e.g. the number of endmembers).

    Returns
    -------
    k, basis
        The HySime dimension and the (L, k) float64 orthonormal basis.
    """
    spectra, valid = _cube_spectra(cube, nodata)
    if spectra.ndim != 2:
        raise UsageError(f"estimate_subspace takes one cube (bands, y, x), got shape {tuple(spectra.shape)}")
    noise = estimate_noise(spectra, noise_type=noise_type, mask=valid)
    sub = hysime(spectra, noise, mask=valid)
    return int(sub.dim), sub.signal_basis()
