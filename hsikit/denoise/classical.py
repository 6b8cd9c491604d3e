"""Training-free denoisers, batched in torch (CPU or GPU).

* :func:`fasthyde` — FastHyDe-style subspace denoising (Zhuang & Bioucas-Dias, IEEE JSTARS 2018):
  whiten by the per-band noise, project on the HySime signal subspace, denoise each eigen-image
  (here with a torch non-local-means filter, :func:`nlm`, instead of BM3D, which is not available),
  project back and re-colour. Correct for non-iid noise: whitening uses ``Rn^(-1/2)`` and the
  re-colouring ``Rn^(1/2)`` (matrix square roots of the noise covariance).
* :func:`lrmr` — patch-wise low-rank + sparse decomposition (LRMR, Zhang et al., IEEE TGRS 2014),
  ``min ||M - L - S||_F^2 / 2 + lam ||S||_1  s.t. rank(L) <= r`` on every (pixels x bands) patch of the
  noise-whitened cube, solved by alternating a rank-r projection (warm-started subspace iteration)
  with soft thresholding. The sparse part absorbs stripes, dead lines and impulse noise.

All functions take cubes ``(..., L, H, W)`` (float, any unit) and return the same shape and dtype.
Per-band noise ``sigma`` is in the cube's unit: ``None`` estimates it with HySime
(:mod:`hsikit.data.noise_estimation`), a float means iid noise, a tensor (L,) or (..., L) non-iid.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from hsikit.data.noise_estimation import estimate_noise, hysime
from hsikit.errors import UsageError

#: Smallest per-band sigma used for whitening, relative to the median band sigma.
SIGMA_FLOOR = 1e-3
#: Largest subspace dimension FastHyDe keeps when it picks k itself.
MAX_SUBSPACE = 32


def _cube(y: Any) -> torch.Tensor:
    t = y if isinstance(y, torch.Tensor) else torch.as_tensor(np.asarray(y))
    if t.ndim < 3:
        raise UsageError(f"a cube must be (..., bands, y, x), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    return t


def noise_sigma(y: torch.Tensor, sigma: Any = None, *, robust: bool = True) -> torch.Tensor:
    """Per-band noise sigma (..., L) (float64) for a cube (..., L, H, W): HySime when ``sigma`` is None.

    The result is floored at :data:`SIGMA_FLOOR` times the median so that whitening stays finite.
    """
    lead, L = y.shape[:-3], y.shape[-3]
    if sigma is None:
        spectra = y.reshape(*lead, L, -1).to(torch.float64)
        s = estimate_noise(spectra, robust=robust).sigma
    else:
        s = torch.as_tensor(sigma, dtype=torch.float64, device=y.device)
        if s.ndim == 0:
            s = s.expand(*lead, L)
        elif s.shape[-1] != L:
            raise UsageError(f"sigma has {s.shape[-1]} values for {L} bands")
        # contiguous: torch 2.14's median along a stride-0 (expanded) dim returns NaN
        s = s.expand(*lead, L).contiguous()
    if bool((s < 0).any()) or not bool(torch.isfinite(s).all()):
        raise UsageError("sigma must be finite and non-negative")
    floor = SIGMA_FLOOR * s.median(dim=-1, keepdim=True).values.clamp_min(torch.finfo(torch.float64).tiny)
    return torch.maximum(s, floor)


def _pad(x: torch.Tensor, p: int) -> torch.Tensor:
    if p == 0:
        return x
    mode = "reflect" if min(x.shape[-2:]) > p else "replicate"
    return F.pad(x, (p, p, p, p), mode=mode)


def nlm(z: Any, sigma: Any = 1.0, *, patch: int = 5, search: int = 11, h: float = 0.4) -> torch.Tensor:
    """Non-local means of images ``z`` (..., H, W) with Gaussian noise ``sigma`` (scalar or (...)).

    Weights ``exp(-max(d² - 2σ², 0) / (hσ)²)`` with d² the mean squared difference of ``patch`` x
    ``patch`` neighbourhoods, over a ``search`` x ``search`` window (Buades, Coll & Morel, IPOL 2011).
    """
    if patch % 2 == 0 or search % 2 == 0:
        raise UsageError("patch and search sizes must be odd")
    t = z if isinstance(z, torch.Tensor) else torch.as_tensor(np.asarray(z))
    if t.ndim < 2:
        raise UsageError(f"nlm needs images (..., H, W), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        t = t.to(torch.float32)
    shape = t.shape
    H, W = shape[-2:]
    x = t.reshape(-1, 1, H, W)
    s = torch.as_tensor(sigma, dtype=x.dtype, device=x.device).expand(shape[:-2]).reshape(-1, 1, 1, 1)
    two_s2 = 2 * s * s
    inv_h2 = 1.0 / (h * s).clamp_min(torch.finfo(x.dtype).tiny) ** 2
    r, f = search // 2, patch // 2
    xp = _pad(x, r)
    num = torch.zeros_like(x)
    den = torch.zeros_like(x)
    for dy in range(-r, r + 1):
        for dx in range(-r, r + 1):
            shifted = xp[..., r + dy : r + dy + H, r + dx : r + dx + W]
            d2 = F.avg_pool2d(_pad((x - shifted) ** 2, f), patch, stride=1)
            w = torch.exp(-(d2 - two_s2).clamp_min(0) * inv_h2)
            num += w * shifted
            den += w
    return (num / den).reshape(shape)


def fasthyde(
    y: Any,
    sigma: Any = None,
    *,
    basis: Any = None,
    k: int | None = None,
    patch: int = 5,
    search: int = 11,
    h: float = 0.4,
) -> torch.Tensor:
    """FastHyDe-style denoising of cubes ``y`` (..., L, H, W), correct for non-iid noise.

    Parameters
    ----------
    y
        Noisy cube(s), any unit.
    sigma
        Per-band noise sigma (see module doc); None: HySime (robust) per cube.
    basis
        Optional (L, k) orthonormal basis of the signal subspace *of the whitened cube*
        (e.g. estimated once for a whole scene so that tiles agree); None: HySime per cube.
    k
        Subspace dimension (default: HySime's, at most :data:`MAX_SUBSPACE`).
    patch, search, h
        :func:`nlm` parameters for the eigen-images (whose noise is unit after whitening).

    Returns
    -------
    torch.Tensor
        Denoised cube(s), same shape and dtype as ``y``.
    """
    t = _cube(y)
    s = noise_sigma(t, sigma)
    yw = t.to(torch.float64) / s[..., :, None, None]
    lead, L, H, W = yw.shape[:-3], yw.shape[-3], yw.shape[-2], yw.shape[-1]
    flat = yw.reshape(-1, L, H * W)
    if basis is not None:
        e = torch.as_tensor(basis, dtype=torch.float64, device=t.device)
        if e.ndim != 2 or e.shape[0] != L:
            raise UsageError(f"basis must be ({L}, k), got {tuple(e.shape)}")
        e = e[:, :k] if k else e
        bases = [e] * flat.shape[0]
    else:
        bases = []
        for item in flat:
            sub = hysime(item, estimate_noise(item))
            kk = k if k else int(min(max(int(sub.dim), 1), MAX_SUBSPACE))
            bases.append(sub.basis[:, :kk])
    out = torch.empty_like(flat)
    for i, (item, e) in enumerate(zip(flat, bases)):
        z = (e.T.contiguous() @ item).reshape(-1, H, W).to(t.dtype if t.dtype != torch.float16 else torch.float32)
        zd = nlm(z, 1.0, patch=patch, search=search, h=h).to(torch.float64)
        out[i] = e @ zd.reshape(-1, H * W)
    out = out.reshape(*lead, L, H, W) * s[..., :, None, None]
    return out.to(t.dtype)


def _patches(x: torch.Tensor, size: int, stride: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """(n, L, H, W) -> (n * P, size², L) patch matrices; returns the padded size too."""
    n, L, H, W = x.shape
    ph = (-(H - size) % stride) if H > size else size - H
    pw = (-(W - size) % stride) if W > size else size - W
    xp = F.pad(x, (0, pw, 0, ph), mode="replicate") if (ph or pw) else x
    cols = F.unfold(xp, size, stride=stride)  # (n, L*size², P)
    P = cols.shape[-1]
    m = cols.reshape(n, L, size * size, P).permute(0, 3, 2, 1).reshape(n * P, size * size, L).contiguous()
    return m, (xp.shape[-2], xp.shape[-1])


def _fold(m: torch.Tensor, n: int, L: int, padded: tuple[int, int], size: int, stride: int, H: int, W: int) -> torch.Tensor:
    P = m.shape[0] // n
    cols = m.reshape(n, P, size * size, L).permute(0, 3, 2, 1).reshape(n, L * size * size, P)
    acc = F.fold(cols, padded, size, stride=stride)
    ones = F.fold(torch.ones_like(cols[:, : size * size]), padded, size, stride=stride)
    return (acc / ones)[..., :H, :W]


def _rank_r(m: torch.Tensor, v: torch.Tensor, iters: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Rank-r approximation of batched m (b, n, L) by subspace iteration from v (b, L, r)."""
    for _ in range(iters):
        q = torch.linalg.qr(m @ v)[0].contiguous()
        v = torch.linalg.qr(m.transpose(-1, -2) @ q)[0].contiguous()
    q = torch.linalg.qr(m @ v)[0].contiguous()
    return q @ (q.transpose(-1, -2) @ m), v


def lrmr(
    y: Any,
    sigma: Any = None,
    *,
    rank: int = 3,
    patch: int = 20,
    stride: int = 8,
    lam: float = 2.0,
    iters: int = 12,
) -> torch.Tensor:
    """Low-rank matrix recovery of cubes ``y`` (..., L, H, W) with mixed noise (Gaussian + sparse).

    Parameters
    ----------
    y
        Noisy cube(s), any unit.
    sigma
        Per-band Gaussian noise sigma; None: robust HySime (median absolute residual) per cube.
    rank
        Rank of the clean (pixels x bands) matrix of one patch.
    patch, stride
        Patch edge and step in pixels; overlapping estimates are averaged.
    lam
        Soft threshold of the sparse part in units of the per-band sigma (whitened units).
    iters
        Alternating iterations (each: one warm-started subspace-iteration step, one shrinkage).

    Returns
    -------
    torch.Tensor
        The low-rank part, same shape and dtype as ``y``.
    """
    t = _cube(y)
    work = torch.float64 if t.dtype == torch.float64 else torch.float32
    s = noise_sigma(t, sigma).to(work)
    lead, L, H, W = t.shape[:-3], t.shape[-3], t.shape[-2], t.shape[-1]
    x = (t.to(work) / s[..., :, None, None]).reshape(-1, L, H, W)
    low = lrmr_whitened(x, rank=rank, patch=patch, stride=stride, lam=lam, iters=iters)
    return (low.reshape(*lead, L, H, W) * s[..., :, None, None]).to(t.dtype)


def lrmr_whitened(x: torch.Tensor, *, rank: int = 3, patch: int = 20, stride: int = 8, lam: float = 2.0,
                  iters: int = 12) -> torch.Tensor:
    """The LRMR low-rank part of noise-whitened cubes ``x`` (n, L, H, W) (unit noise), same shape.

    The core of :func:`lrmr` (see it for the parameters); also the outlier reference of
    :func:`hsikit.denoise.sparse.remove_sparse_noise`.
    """
    n, L, H, W = x.shape
    if rank < 1 or rank > L:
        raise UsageError(f"rank must be in 1..{L}, got {rank}")
    size = min(patch, H, W)
    step = min(stride, size)
    m, padded = _patches(x, size, step)
    gen = torch.Generator(device="cpu").manual_seed(0)
    v = torch.linalg.qr(torch.randn(L, rank, generator=gen, dtype=x.dtype).to(x.device))[0]
    v = v.expand(m.shape[0], L, rank).contiguous()
    sparse = torch.zeros_like(m)
    work = torch.empty_like(m)
    low = m
    for _ in range(iters):
        low, v = _rank_r(torch.sub(m, sparse, out=work), v, 1)
        # soft threshold of r = m - low: r - clamp(r, -lam, lam), in place
        torch.sub(m, low, out=sparse)
        sparse.sub_(torch.clamp(sparse, -lam, lam, out=work))
    return _fold(low, n, L, padded, size, step, H, W)
