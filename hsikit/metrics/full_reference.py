"""Full-reference image-quality metrics: an estimate compared with a reference cube.

Both cubes are ``(band, y, x)`` (a 2-D image is a one-band cube), numpy or torch on any device. ``mask``
is an optional boolean ``(y, x)`` array, True where a pixel is scored. Band-averaged metrics take
``reduction="mean"`` (a float) or ``reduction="none"`` (a numpy array with one value per band).

Conventions (see ``docs/metrics.md``): PSNR and SSIM need an explicit ``data_range``; SAM excludes
zero-norm pixels and counts them; ERGAS takes the resolution ratio in either convention (see
:func:`hsikit.metrics._backend.scale_factor`); RASE is the un-windowed definition of Ranchin & Wald.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal

import numpy as np
import torch
import torch.nn.functional as F
from scipy import ndimage

from hsikit.errors import UsageError
from hsikit.metrics._backend import (
    CHUNK_ELEMENTS,
    as_mask,
    band_chunks,
    box_sum,
    check_pair,
    flat_pixels,
    per_band_threads,
    positive_scalar,
    scale_factor,
    to_numpy,
)

Reduction = Literal["mean", "none"]


def _reduce(per_band: np.ndarray, reduction: Reduction) -> float | np.ndarray:
    if reduction == "mean":
        return float(np.mean(per_band))
    if reduction == "none":
        return per_band
    raise UsageError(f"reduction must be 'mean' or 'none'; got {reduction!r}")


def _prepare(estimate: Any, reference: Any, mask: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    est, ref = check_pair(estimate, reference)
    m = as_mask(mask, tuple(ref.shape[1:]), ref.device)
    return est, ref, m


def _npix(t: torch.Tensor, mask: torch.Tensor | None) -> int:
    return int(mask.sum()) if mask is not None else t.shape[1] * t.shape[2]


def _sum64(t: torch.Tensor) -> torch.Tensor:
    """Sum of a float32/float64 tensor with float64 accumulation (row partials, no float64 copy)."""
    t = t.reshape(-1, t.shape[-1]) if t.ndim > 1 else t.reshape(1, -1)
    return t.sum(dim=1, dtype=torch.float64).sum()


def _sq_err_per_band(est: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, int]:
    with per_band_threads(est.device):
        return _sq_err_per_band_impl(est, ref, mask)


def _sum_per_band(t: torch.Tensor, mask: torch.Tensor | None, power: int = 1) -> torch.Tensor:
    with per_band_threads(t.device):
        return _sum_per_band_impl(t, mask, power)


def _ssim_cpu(*args: Any) -> torch.Tensor:
    with per_band_threads(torch.device("cpu")):
        return _ssim_cpu_impl(*args)


def _sq_err_per_band_impl(est: torch.Tensor, ref: torch.Tensor, mask: torch.Tensor | None) -> tuple[torch.Tensor, int]:
    """Per-band sum of squared errors (float64, shape (band,)) and the number of pixels.

    Works band by band in one preallocated buffer: large temporaries are slow to allocate (page faults).
    """
    b = est.shape[0]
    n = _npix(est, mask)
    out = torch.empty(b, dtype=torch.float64, device=est.device)
    buf = torch.empty(est.shape[1:] if mask is None else (n,), dtype=est.dtype, device=est.device)
    for i in range(b):
        if mask is None:
            torch.sub(est[i], ref[i], out=buf)
        else:
            torch.sub(est[i][mask], ref[i][mask], out=buf)
        buf.mul_(buf)
        out[i] = _sum64(buf)
    return out, n


def _sum_per_band_impl(t: torch.Tensor, mask: torch.Tensor | None, power: int = 1) -> torch.Tensor:
    b = t.shape[0]
    out = torch.empty(b, dtype=torch.float64, device=t.device)
    buf = torch.empty(t.shape[1:] if mask is None else (_npix(t, mask),), dtype=t.dtype, device=t.device) if power != 1 else None
    for i in range(b):
        x = t[i] if mask is None else t[i][mask]
        if buf is not None:
            torch.mul(x, x, out=buf)
            x = buf
        out[i] = _sum64(x)
    return out


# --------------------------------------------------------------------------------------------- PSNR
def psnr(
    estimate: Any,
    reference: Any,
    data_range: float | np.ndarray,
    mask: Any = None,
    reduction: Reduction = "mean",
) -> float | np.ndarray:
    """Mean over bands of the per-band peak signal-to-noise ratio ("MPSNR").

    ``PSNR_b = 10 log10(R_b^2 / MSE_b)`` with ``MSE_b`` the mean squared error of band ``b``.

    Parameters
    ----------
    estimate, reference
        Cubes ``(band, y, x)``.
    data_range
        Peak value ``R`` (e.g. 1.0 for reflectance in [0, 1], 10000 for reflectance x 1e4, 2**k - 1 for
        k-bit data): a scalar, or one value per band ``(band,)``. Required: a range inferred from the data
        makes the number depend on the image.
    mask
        Optional ``(y, x)`` bool array; only True pixels are scored.
    reduction
        ``"mean"`` (float, dB) or ``"none"`` (``(band,)`` array, dB).

    Returns
    -------
    float or numpy.ndarray
        dB. A band with zero error has PSNR ``inf`` (so does the mean).

    References
    ----------
    Huynh-Thu, Q., Ghanbari, M. (2008). Scope of validity of PSNR in image/video quality assessment.
    Electronics Letters 44(13), 800-801.
    """
    est, ref, m = _prepare(estimate, reference, mask)
    rng = np.broadcast_to(np.asarray(data_range if data_range is not None else np.nan, dtype=np.float64), (est.shape[0],))
    if not np.all(np.isfinite(rng)) or np.any(rng <= 0):
        raise UsageError(f"data_range must be given and positive; got {data_range!r}")
    sse, n = _sq_err_per_band(est, ref, m)
    mse = to_numpy(sse) / n
    with np.errstate(divide="ignore"):
        per_band = 10.0 * np.log10(rng**2 / mse)
    return _reduce(per_band, reduction)


def psnr_cube(estimate: Any, reference: Any, data_range: float, mask: Any = None) -> float:
    """PSNR of the whole cube: ``10 log10(R^2 / MSE)`` with one MSE over all bands and pixels.

    This is what :func:`skimage.metrics.peak_signal_noise_ratio` returns for a cube. It is *not* the
    band-averaged :func:`psnr` (the mean of logs differs from the log of the mean).

    Parameters
    ----------
    estimate, reference
        Cubes ``(band, y, x)``.
    data_range
        Peak value ``R`` (scalar, required).
    mask
        Optional ``(y, x)`` bool array.

    Returns
    -------
    float
        dB.

    References
    ----------
    Huynh-Thu, Q., Ghanbari, M. (2008). Electronics Letters 44(13), 800-801.
    """
    r = positive_scalar(data_range, "data_range")
    est, ref, m = _prepare(estimate, reference, mask)
    sse, n = _sq_err_per_band(est, ref, m)
    mse = float(sse.sum()) / (n * est.shape[0])
    return math.inf if mse == 0 else 10.0 * math.log10(r * r / mse)


# --------------------------------------------------------------------------------------------- RMSE
def rmse(estimate: Any, reference: Any, mask: Any = None) -> float:
    """Root-mean-square error over all bands and (masked) pixels, in data units.

    ``RMSE = sqrt( mean_{b, n} (xhat_{b,n} - x_{b,n})^2 )``.

    Parameters
    ----------
    estimate, reference
        Cubes ``(band, y, x)``.
    mask
        Optional ``(y, x)`` bool array.

    Returns
    -------
    float
        Same units as the data.

    References
    ----------
    Wald, L. (2002). Data Fusion: Definitions and Architectures. Presses de l'Ecole des Mines, Paris.
    """
    est, ref, m = _prepare(estimate, reference, mask)
    sse, n = _sq_err_per_band(est, ref, m)
    return math.sqrt(float(sse.sum()) / (n * est.shape[0]))


def sre(estimate: Any, reference: Any, mask: Any = None) -> float:
    """Signal-to-reconstruction error: ``20 log10(||X||_F / ||X - Xhat||_F)``, in dB.

    Parameters
    ----------
    estimate, reference
        Arrays of the same shape; cubes ``(band, y, x)`` or abundances ``(endmember, y, x)``.
    mask
        Optional ``(y, x)`` bool array.

    Returns
    -------
    float
        dB; ``inf`` for a perfect estimate.

    References
    ----------
    Iordache, M.-D., Bioucas-Dias, J. M., Plaza, A. (2012). Total variation spatial regularization for
    sparse hyperspectral unmixing. IEEE TGRS 50(11), 4484-4502.
    """
    est, ref, m = _prepare(estimate, reference, mask)
    sse, _ = _sq_err_per_band(est, ref, m)
    signal = float(_sum_per_band(ref, m, power=2).sum())
    err = float(sse.sum())
    if err == 0:
        return math.inf
    if signal == 0:
        raise UsageError("reference is all zeros: SRE is undefined")
    return 10.0 * math.log10(signal / err)


def ergas(estimate: Any, reference: Any, ratio: float, mask: Any = None) -> float:
    """Erreur Relative Globale Adimensionnelle de Synthese (Wald 2000).

    ``ERGAS = 100 (h / l) sqrt( (1/B) sum_b (RMSE_b / mu_b)^2 )`` with ``h / l`` the ratio of the pixel
    size of the high-resolution image (the estimate) to that of the low-resolution input, and ``mu_b``
    the mean of reference band ``b``.

    Parameters
    ----------
    estimate, reference
        Cubes ``(band, y, x)``.
    ratio
        Resolution ratio, in either convention: the pixel-size ratio ``h / l <= 1`` of Wald's paper
        (0.25 for a 4x fusion) or the scale factor ``l / h >= 1`` that most software takes (4). Both give
        the factor ``100 * h / l = 100 / scale`` (25 for 4x); the two conventions cannot be confused
        because a pixel-size ratio is never above 1. Use 1 for same-resolution tasks (denoising).
        Required.
    mask
        Optional ``(y, x)`` bool array.

    Returns
    -------
    float
        Dimensionless (the 100 makes it a percentage-like number); 0 is perfect.

    References
    ----------
    Wald, L. (2000). Quality of high resolution synthesised images: is there a simple criterion?
    Proc. Fusion of Earth Data, Sophia Antipolis, 99-103.
    """
    s = scale_factor(ratio)
    est, ref, m = _prepare(estimate, reference, mask)
    sse, n = _sq_err_per_band(est, ref, m)
    mu = _sum_per_band(ref, m) / n
    if bool((mu == 0).any()):
        bad = [int(i) for i in torch.nonzero(mu == 0).flatten()[:5]]
        raise UsageError(f"reference bands {bad} have zero mean: ERGAS is undefined (relative error)")
    rel = (sse / n) / (mu * mu)
    return float(100.0 / s * torch.sqrt(rel.mean()))


def rase(estimate: Any, reference: Any, mask: Any = None) -> float:
    """Relative average spectral error (Ranchin & Wald 2000), in percent.

    ``RASE = (100 / mu) sqrt( (1/B) sum_b RMSE_b^2 )`` with ``mu`` the mean of the reference over all
    bands and pixels. Unlike ``torchmetrics.RelativeAverageSpectralError`` there is no sliding window and
    no extra window-area factor.

    Parameters
    ----------
    estimate, reference
        Cubes ``(band, y, x)``.
    mask
        Optional ``(y, x)`` bool array.

    Returns
    -------
    float
        Percent; 0 is perfect.

    References
    ----------
    Ranchin, T., Wald, L. (2000). Fusion of high spatial and spectral resolution images: the ARSIS
    concept and its implementation. Photogramm. Eng. Remote Sens. 66(1), 49-61.
    """
    est, ref, m = _prepare(estimate, reference, mask)
    sse, n = _sq_err_per_band(est, ref, m)
    mu = float(_sum_per_band(ref, m).sum()) / (n * est.shape[0])
    if mu == 0:
        raise UsageError("reference has zero mean: RASE is undefined")
    return 100.0 / mu * math.sqrt(float(sse.sum()) / (n * est.shape[0]))


def cc(
    estimate: Any, reference: Any, mask: Any = None, reduction: Reduction = "mean"
) -> float | np.ndarray:
    """Cross-correlation: mean over bands of the Pearson correlation of estimate and reference bands.

    ``CC_b = sum_n (xhat - mean xhat)(x - mean x) / sqrt( sum_n (xhat - mean xhat)^2 sum_n (x - mean x)^2 )``.

    Parameters
    ----------
    estimate, reference
        Cubes ``(band, y, x)``.
    mask
        Optional ``(y, x)`` bool array.
    reduction
        ``"mean"`` or ``"none"`` (per band).

    Returns
    -------
    float or numpy.ndarray
        In [-1, 1], 1 is perfect. A band where either image is constant gives NaN (undefined).

    References
    ----------
    Loncan, L. et al. (2015). Hyperspectral pansharpening: a review. IEEE GRSM 3(3), 27-46.
    """
    est, ref, m = _prepare(estimate, reference, mask)
    b = est.shape[0]
    n = _npix(est, m)
    out = torch.empty(b, dtype=torch.float64, device=est.device)
    shape = est.shape[1:] if m is None else (n,)
    bx, by, tmp = (torch.empty(shape, dtype=est.dtype, device=est.device) for _ in range(3))
    with per_band_threads(est.device):
        _cc_loop(est, ref, m, n, out, bx, by, tmp)
    return _reduce(to_numpy(out), reduction)


def _cc_loop(
    est: torch.Tensor, ref: torch.Tensor, m: torch.Tensor | None, n: int, out: torch.Tensor,
    bx: torch.Tensor, by: torch.Tensor, tmp: torch.Tensor,
) -> None:
    for i in range(est.shape[0]):
        x = est[i] if m is None else est[i][m]
        y = ref[i] if m is None else ref[i][m]
        torch.sub(x, float(_sum64(x)) / n, out=bx)
        torch.sub(y, float(_sum64(y)) / n, out=by)
        sxy = _sum64(torch.mul(bx, by, out=tmp))
        sxx = _sum64(torch.mul(bx, bx, out=tmp))
        syy = _sum64(torch.mul(by, by, out=tmp))
        out[i] = sxy / torch.sqrt(sxx * syy)


# ---------------------------------------------------------------------------------------------- SAM
@dataclass(frozen=True)
class SAMResult:
    """Spectral angle statistics.

    Attributes
    ----------
    radians, degrees
        Mean angle over the scored pixels.
    n_pixels
        Pixels that entered the mean.
    n_excluded
        Pixels inside the mask excluded because the estimate or the reference spectrum has zero norm
        (the angle is undefined there).
    angle_map
        ``(y, x)`` angles in radians (NaN where excluded or outside the mask) when requested, else None.
    """

    radians: float
    degrees: float
    n_pixels: int
    n_excluded: int
    angle_map: np.ndarray | None = field(default=None, repr=False)

    def __float__(self) -> float:
        return self.radians


def sam(estimate: Any, reference: Any, mask: Any = None, return_map: bool = False) -> SAMResult:
    """Spectral angle mapper: mean over pixels of the angle between estimated and reference spectra.

    ``SAM_n = angle(xhat_n, x_n) = arccos(<xhat_n, x_n> / (||xhat_n|| ||x_n||))``, evaluated in the
    numerically stable form ``2 atan2(||u - v||, ||u + v||)`` with ``u, v`` the unit spectra (arccos loses
    about 1e-8 rad near 0). Pixels where either spectrum has zero norm are excluded and counted.

    Parameters
    ----------
    estimate, reference
        Cubes ``(band, y, x)``.
    mask
        Optional ``(y, x)`` bool array.
    return_map
        Also return the per-pixel angle map.

    Returns
    -------
    SAMResult
        ``.radians`` / ``.degrees`` mean angle, ``.n_pixels`` scored, ``.n_excluded`` zero-norm pixels.
        If every pixel is excluded the means are NaN.

    References
    ----------
    Kruse, F. A. et al. (1993). The spectral image processing system (SIPS) - interactive visualization
    and analysis of imaging spectrometer data. Remote Sens. Environ. 44(2-3), 145-163.
    """
    est, ref, m = _prepare(estimate, reference, mask)
    with per_band_threads(est.device):
        return _sam_impl(est, ref, m, return_map)


def _sam_impl(est: torch.Tensor, ref: torch.Tensor, m: torch.Tensor | None, return_map: bool) -> SAMResult:
    b, h, w = est.shape
    e2 = est.reshape(b, h * w)
    r2 = ref.reshape(b, h * w)
    mflat = m.reshape(-1) if m is not None else None
    total = torch.zeros((), dtype=torch.float64, device=est.device)
    n_ok = 0
    n_bad = 0
    amap = torch.full((h * w,), float("nan"), dtype=torch.float64, device=est.device) if return_map else None
    step = max(1, min(h * w, (1 << 21) // b))
    xb = torch.empty((b, step), dtype=torch.float64, device=est.device)
    yb = torch.empty_like(xb)
    for start in range(0, h * w, step):
        stop = min(h * w, start + step)
        x = xb[:, : stop - start]
        y = yb[:, : stop - start]
        x.copy_(e2[:, start:stop])
        y.copy_(r2[:, start:stop])
        nx = torch.linalg.vecdot(x, x, dim=0).sqrt_()
        ny = torch.linalg.vecdot(y, y, dim=0).sqrt_()
        ok = (nx > 0) & (ny > 0)
        if mflat is not None:
            inside = mflat[start:stop]
            n_bad += int((inside & ~ok).sum())
            ok = ok & inside
        else:
            n_bad += int((~ok).sum())
        # unit vectors u, v; ||u - v||^2 computed from the difference (no cancellation), ||u + v||^2 = 4 - that
        x.mul_(torch.where(nx > 0, nx, 1.0).reciprocal_())
        y.mul_(torch.where(ny > 0, ny, 1.0).reciprocal_())
        x.sub_(y)
        dd = torch.linalg.vecdot(x, x, dim=0)
        ang = 2.0 * torch.atan2(dd.sqrt(), (4.0 - dd).clamp_min(0).sqrt())
        total += ang[ok].sum()
        n_ok += int(ok.sum())
        if amap is not None:
            amap[start:stop] = torch.where(ok, ang, torch.full_like(ang, float("nan")))
    mean = float(total) / n_ok if n_ok else float("nan")
    return SAMResult(
        radians=mean,
        degrees=math.degrees(mean),
        n_pixels=n_ok,
        n_excluded=n_bad,
        angle_map=to_numpy(amap).reshape(h, w) if amap is not None else None,
    )


# --------------------------------------------------------------------------------------------- SSIM
@lru_cache(maxsize=8)
def _gauss1d(sigma: float, truncate: float) -> np.ndarray:
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    g = np.exp(-0.5 * (x / sigma) ** 2)
    return g / g.sum()


def _sep_filter_valid(t: torch.Tensor, g: torch.Tensor) -> torch.Tensor:
    """Separable 'valid' filtering of (n, h, w) with the 1-D kernel g along both axes."""
    k = g.numel()
    x = t.unsqueeze(1)
    x = F.conv2d(x, g.view(1, 1, 1, k))
    x = F.conv2d(x, g.view(1, 1, k, 1))
    return x.squeeze(1)


def ssim(
    estimate: Any,
    reference: Any,
    data_range: float,
    mask: Any = None,
    reduction: Reduction = "mean",
    *,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
) -> float | np.ndarray:
    """Mean over bands of the 2-D structural similarity index ("MSSIM").

    Per band, local means, variances and covariance come from a Gaussian window (sigma 1.5, 11 x 11 taps,
    population covariance), ``C1 = (k1 R)^2``, ``C2 = (k2 R)^2``, and

    ``SSIM = (2 mu_x mu_y + C1)(2 s_xy + C2) / ((mu_x^2 + mu_y^2 + C1)(s_x^2 + s_y^2 + C2))``

    averaged over the positions where the window fits inside the image (a border of 5 pixels is left
    out). This is exactly ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=R)`` per band.

    Parameters
    ----------
    estimate, reference
        Cubes ``(band, y, x)``; each side must be at least 11 pixels.
    data_range
        ``R``: the dynamic range of the data (same for all bands). Required.
    mask
        Optional ``(y, x)`` bool array: the SSIM map is averaged over the window centres where it is True.
    reduction
        ``"mean"`` or ``"none"`` (per band).
    sigma, k1, k2
        Gaussian window width (pixels) and the stabilising constants of Wang et al.

    Returns
    -------
    float or numpy.ndarray
        Dimensionless, at most 1 (1 is perfect).

    References
    ----------
    Wang, Z., Bovik, A. C., Sheikh, H. R., Simoncelli, E. P. (2004). Image quality assessment: from
    error visibility to structural similarity. IEEE TIP 13(4), 600-612.
    """
    r = positive_scalar(data_range, "data_range")
    est, ref, m = _prepare(estimate, reference, mask)
    b, h, w = est.shape
    g_np = _gauss1d(float(sigma), 3.5)
    k = g_np.size
    pad = (k - 1) // 2
    if h < k or w < k:
        raise UsageError(f"SSIM needs images of at least {k}x{k} pixels; got {h}x{w}")
    dtype = est.dtype
    g = torch.as_tensor(g_np, dtype=dtype, device=est.device)
    c1 = (k1 * r) ** 2
    c2 = (k2 * r) ** 2
    mc = m[pad : h - pad, pad : w - pad] if m is not None else None
    # shift each band by the reference band mean so that E[x^2] - E[x]^2 does not cancel in float32
    shift = _sum_per_band(ref, None) / (h * w)
    if est.device.type == "cpu":
        out = _ssim_cpu(est, ref, shift, g_np, c1, c2, mc)
    else:
        out = _ssim_torch(est, ref, shift.to(dtype), g, c1, c2, mc)
    return _reduce(to_numpy(out), reduction)


def _ssim_cpu_impl(
    est: torch.Tensor, ref: torch.Tensor, shift: torch.Tensor, g: np.ndarray, c1: float, c2: float,
    mc: torch.Tensor | None,
) -> torch.Tensor:
    """SSIM per band on CPU: scipy's 1-D correlations (C loops) into reused buffers, torch in place."""
    b, h, w = est.shape
    pad = (g.size - 1) // 2
    dt = est.dtype
    maps = torch.empty((5, h, w), dtype=dt)
    filt = torch.empty((5, h, w), dtype=dt)
    tmp = torch.empty((5, h, w), dtype=dt)
    num = torch.empty((h, w), dtype=dt)
    mn, fn, tn = maps.numpy(), filt.numpy(), tmp.numpy()
    gk = g.astype(np.float64)
    out = torch.empty(b, dtype=torch.float64)
    crop = (slice(pad, h - pad), slice(pad, w - pad))
    for i in range(b):
        off = float(shift[i])
        x, y = maps[0], maps[1]
        torch.sub(est[i], off, out=x)
        torch.sub(ref[i], off, out=y)
        torch.mul(x, x, out=maps[2])
        torch.mul(y, y, out=maps[3])
        torch.mul(x, y, out=maps[4])
        ndimage.correlate1d(mn, gk, axis=2, output=tn, mode="reflect")
        ndimage.correlate1d(tn, gk, axis=1, output=fn, mode="reflect")
        mx, my, vx, vy, vxy = filt.unbind(0)  # contiguous full maps; only the crop is averaged
        vx.addcmul_(mx, mx, value=-1)
        vy.addcmul_(my, my, value=-1)
        vxy.addcmul_(mx, my, value=-1)
        mx.add_(off)
        my.add_(off)
        torch.mul(mx, my, out=num).mul_(2).add_(c1)
        num.mul_(vxy.mul_(2).add_(c2))
        mx.mul_(mx).addcmul_(my, my).add_(c1)
        mx.mul_(vx.add_(vy).add_(c2))
        num.div_(mx)
        valid = num[crop]
        out[i] = (valid.sum(dim=1, dtype=torch.float64).sum() / valid.numel()) if mc is None else valid[mc].to(torch.float64).mean()
    return out


def _ssim_torch(
    est: torch.Tensor, ref: torch.Tensor, shift: torch.Tensor, g: torch.Tensor, c1: float, c2: float,
    mc: torch.Tensor | None,
) -> torch.Tensor:
    """SSIM per band with torch convolutions (GPU path)."""
    b, h, w = est.shape
    out = torch.empty(b, dtype=torch.float64, device=est.device)
    for s in band_chunks(b, h * w, CHUNK_ELEMENTS // 8):
        off = shift[s].view(-1, 1, 1)
        x = est[s] - off
        y = ref[s] - off
        n = x.shape[0]
        f = _sep_filter_valid(torch.cat([x, y, x * x, y * y, x * y], dim=0), g)
        mx, my, mxx, myy, mxy = f[:n], f[n : 2 * n], f[2 * n : 3 * n], f[3 * n : 4 * n], f[4 * n :]
        vx = mxx - mx * mx
        vy = myy - my * my
        vxy = mxy - mx * my
        mx = mx + off
        my = my + off
        smap = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        if mc is None:
            out[s] = smap.to(torch.float64).mean(dim=(1, 2))
        else:
            out[s] = smap[:, mc].to(torch.float64).mean(dim=1)
    return _reduce(to_numpy(out), reduction)


# --------------------------------------------------------------------------------------------- UIQI
def _q_from_moments(
    mx: torch.Tensor, my: torch.Tensor, vx: torch.Tensor, vy: torch.Tensor, cxy: torch.Tensor
) -> torch.Tensor:
    """Universal image quality index from local moments, with Wang & Bovik's rules for flat windows.

    ``Q = 4 cxy mx my / ((vx + vy)(mx^2 + my^2))``; where ``vx + vy = 0`` only the luminance term
    ``2 mx my / (mx^2 + my^2)`` is used, where ``mx^2 + my^2 = 0`` only ``2 cxy / (vx + vy)``, and where both
    vanish Q = 1.
    """
    d1 = vx + vy
    d2 = mx * mx + my * my
    one = torch.ones_like(d1)
    q = torch.where((d1 > 0) & (d2 > 0), 4 * cxy * mx * my / torch.where(d1 * d2 > 0, d1 * d2, one), one)
    q = torch.where((d1 == 0) & (d2 > 0), 2 * mx * my / torch.where(d2 > 0, d2, one), q)
    q = torch.where((d1 > 0) & (d2 == 0), 2 * cxy / torch.where(d1 > 0, d1, one), q)
    return q


def _local_q_maps(
    x: torch.Tensor, y: torch.Tensor, block_size: int, stride: int
) -> torch.Tensor:
    """Q maps (n, ny, nx) between the bands of x and y (n, h, w) on block_size windows."""
    off = y.to(torch.float64).mean(dim=(1, 2), keepdim=True)
    x = x.to(torch.float64) - off
    y = y.to(torch.float64) - off
    npx = float(block_size * block_size)
    sx = box_sum(x, block_size, stride) / npx
    sy = box_sum(y, block_size, stride) / npx
    vx = (box_sum(x * x, block_size, stride) / npx - sx * sx).clamp_min(0)
    vy = (box_sum(y * y, block_size, stride) / npx - sy * sy).clamp_min(0)
    cxy = box_sum(x * y, block_size, stride) / npx - sx * sy
    return _q_from_moments(sx + off, sy + off, vx, vy, cxy)


def uiqi(
    estimate: Any,
    reference: Any,
    block_size: int = 8,
    stride: int = 1,
    reduction: Reduction = "mean",
) -> float | np.ndarray:
    """Universal image quality index (Wang & Bovik's Q) per band on sliding windows, mean over bands.

    ``Q = 4 s_xy mu_x mu_y / ((s_x^2 + s_y^2)(mu_x^2 + mu_y^2))`` on each ``block_size`` x ``block_size``
    window (uniform weights), averaged over windows; windows with zero variance or zero mean follow the
    rules of the authors' reference code (see ``_q_from_moments``).

    Parameters
    ----------
    estimate, reference
        Cubes ``(band, y, x)``.
    block_size
        Window side in pixels (8 in Wang & Bovik; pansharpening protocols use 32).
    stride
        Window step (1 = sliding; ``block_size`` = non-overlapping blocks).
    reduction
        ``"mean"`` or ``"none"`` (per band).

    Returns
    -------
    float or numpy.ndarray
        Dimensionless in [-1, 1]; 1 is perfect.

    References
    ----------
    Wang, Z., Bovik, A. C. (2002). A universal image quality index. IEEE Signal Process. Lett. 9(3),
    81-84.
    """
    est, ref = check_pair(estimate, reference)
    b, h, w = est.shape
    bs = int(block_size)
    if bs < 1 or int(stride) < 1:
        raise UsageError("block_size and stride must be positive integers")
    out = torch.empty(b, dtype=torch.float64, device=est.device)
    for s in band_chunks(b, h * w, CHUNK_ELEMENTS // 16):
        out[s] = _local_q_maps(est[s], ref[s], bs, int(stride)).mean(dim=(1, 2))
    return _reduce(to_numpy(out), reduction)


# ---------------------------------------------------------------------------------------------- Q2n
@lru_cache(maxsize=16)
def cayley_dickson_signs(dim: int) -> np.ndarray:
    """Multiplication table signs of the 2^n-dimensional Cayley-Dickson algebra.

    With basis ``e_0 = 1, e_1, ..., e_{dim-1}`` every product of basis elements is
    ``e_i e_j = S[i, j] e_{i XOR j}``; this returns ``S`` (int8, (dim, dim)). The doubling rule is
    ``(a, b)(c, d) = (a c - conj(d) b, d a + b conj(c))`` with ``conj((a, b)) = (conj(a), -b)``
    (dim 2: complex numbers, 4: quaternions, 8: octonions, 16: sedenions, ...).
    """
    if dim < 1 or dim & (dim - 1):
        raise UsageError(f"Cayley-Dickson dimension must be a power of two; got {dim}")
    s = np.ones((1, 1), dtype=np.int8)
    m = 1
    while m < dim:
        conj = np.where(np.arange(m) == 0, 1, -1).astype(np.int8)  # conj(e_j) = conj[j] e_j
        t = np.empty((2 * m, 2 * m), dtype=np.int8)
        t[:m, :m] = s  # (e_i,0)(e_j,0) = (e_i e_j, 0)
        t[:m, m:] = s.T  # (e_i,0)(0,e_j) = (0, e_j e_i)
        t[m:, :m] = s * conj[None, :]  # (0,e_i)(e_j,0) = (0, e_i conj(e_j))
        t[m:, m:] = -(s.T * conj[None, :])  # (0,e_i)(0,e_j) = (-conj(e_j) e_i, 0)
        s = t
        m *= 2
    return s


def _blocks(t: torch.Tensor, block_size: int, stride: int) -> torch.Tensor:
    """(band, h, w) -> (n_blocks, block*block, band) windows of the last two axes (valid positions)."""
    b, h, w = t.shape
    u = t.unfold(1, block_size, stride).unfold(2, block_size, stride)  # (b, ny, nx, bs, bs)
    return u.permute(1, 2, 3, 4, 0).reshape(-1, block_size * block_size, b)


def _q2n_blocks(est: torch.Tensor, ref: torch.Tensor, block_size: int, stride: int) -> torch.Tensor:
    """Hypercomplex Q of every block; returns (n_blocks,) float64."""
    b = est.shape[0]
    d = 1 << max(0, math.ceil(math.log2(b)))
    signs = cayley_dickson_signs(d).astype(np.float64)
    conj = np.where(np.arange(d) == 0, 1.0, -1.0)
    i_idx = np.arange(d)[:, None]
    k_idx = np.arange(d)[None, :]
    j_idx = i_idx ^ k_idx  # j such that e_i e_j ~ e_k
    weight = signs[i_idx, j_idx] * conj[j_idx]  # x * conj(y): component k = sum_i W[i,k] C[i, i^k]
    # only the real bands carry data; padded components are zero
    keep = (i_idx < b) & (j_idx < b)
    ii, kk = np.nonzero(keep)
    jj = j_idx[ii, kk]
    ww = torch.as_tensor(weight[ii, kk], device=est.device)
    ii_t = torch.as_tensor(ii, device=est.device)
    jj_t = torch.as_tensor(jj, device=est.device)
    kk_t = torch.as_tensor(kk, device=est.device)
    _, h, w = est.shape
    results = []
    for y0 in range(0, h - block_size + 1, stride):
        xs = _blocks(ref[:, y0 : y0 + block_size, :].to(torch.float64), block_size, stride)
        ys = _blocks(est[:, y0 : y0 + block_size, :].to(torch.float64), block_size, stride)
        npx = xs.shape[1]
        step = max(1, CHUNK_ELEMENTS // max(1, npx * b + b * b))
        for a in range(0, xs.shape[0], step):
            x = xs[a : a + step]
            y = ys[a : a + step]
            mx = x.mean(dim=1)
            my = y.mean(dim=1)
            xc = x - mx[:, None, :]
            yc = y - my[:, None, :]
            vx = (xc * xc).sum(dim=(1, 2)) / npx
            vy = (yc * yc).sum(dim=(1, 2)) / npx
            cmat = torch.bmm(xc.transpose(1, 2), yc) / npx  # (n, b, b): E[x_i y_j]
            comp = torch.zeros(x.shape[0], d, dtype=torch.float64, device=est.device)
            comp.index_add_(1, kk_t, cmat[:, ii_t, jj_t] * ww)
            cxy = torch.linalg.vector_norm(comp, dim=1)
            nmx = torch.linalg.vector_norm(mx, dim=1)
            nmy = torch.linalg.vector_norm(my, dim=1)
            results.append(_q_from_moments(nmx, nmy, vx, vy, cxy))
    out = torch.cat(results)
    return out


def q2n(
    estimate: Any,
    reference: Any,
    block_size: int = 32,
    stride: int | None = None,
) -> float:
    """Q2n: the universal image quality index of hypercomplex (2^n-component) pixels.

    Each pixel's spectrum is a hypercomplex number ``z`` (bands zero-padded to the next power of two;
    Q4 for 4 bands). On each ``block_size`` x ``block_size`` block,

    ``Q2n = 4 |s_{z zhat}| |mean z| |mean zhat| / ((s_z^2 + s_zhat^2)(|mean z|^2 + |mean zhat|^2))``

    with ``s_{z zhat} = E[(z - mean z) conj(zhat - mean zhat)]`` (Cayley-Dickson product),
    ``s_z^2 = E|z - mean z|^2``, and ``|.|`` the Euclidean modulus; the index is the mean over blocks.
    The data are used as floats: there is no rounding to integers and no per-block band normalisation.

    Parameters
    ----------
    estimate, reference
        Cubes ``(band, y, x)``, any band count.
    block_size
        Block side (32 in the pansharpening literature); clipped to the image size.
    stride
        Step between blocks; default ``block_size`` (non-overlapping). Rows/columns that do not fill a
        last block are left out.

    Returns
    -------
    float
        Dimensionless in [0, 1]; 1 for identical cubes.

    References
    ----------
    Alparone, L., Baronti, S., Garzelli, A., Nencini, F. (2004). A global quality measurement of
    pan-sharpened multispectral imagery. IEEE GRSL 1(4), 313-317.
    Garzelli, A., Nencini, F. (2009). Hypercomplex quality assessment of multi/hyperspectral images.
    IEEE GRSL 6(4), 662-665.
    """
    est, ref = check_pair(estimate, reference)
    _, h, w = est.shape
    bs = min(int(block_size), h, w)
    st = bs if stride is None else int(stride)
    if bs < 2 or st < 1:
        raise UsageError(f"block_size must be >= 2 and stride >= 1; got {block_size}, {stride}")
    return float(_q2n_blocks(est, ref, bs, st).mean())
