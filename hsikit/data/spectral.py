"""Spectral resampling with Gaussian spectral response functions (SRFs).

A target band ``j`` with centre :math:`\\mu_j` and full width at half maximum :math:`\\mathrm{FWHM}_j`
(both in nm) is modelled by the Gaussian response

.. math::

    g_j(\\lambda) = \\frac{1}{\\sigma_j \\sqrt{2\\pi}} \\exp\\!\\left(-\\frac{(\\lambda-\\mu_j)^2}{2\\sigma_j^2}\\right),
    \\qquad \\sigma_j = \\frac{\\mathrm{FWHM}_j}{2\\sqrt{2\\ln 2}} \\approx 0.4247\\,\\mathrm{FWHM}_j .

The band value of a spectrum :math:`s(\\lambda)` known only at source samples :math:`\\lambda_i` is

.. math::

    y_j = \\frac{\\int_{C} g_j(\\lambda)\\, \\hat s(\\lambda)\\, d\\lambda}{\\int_{C} g_j(\\lambda)\\, d\\lambda}
        = \\sum_i W_{ji}\\, s(\\lambda_i),

where :math:`\\hat s` is the piecewise-linear interpolant of the samples and :math:`C` the part of the
wavelength axis the source covers (the source range, minus any gap wider than ``max_gap``). Each
weight is the exact integral of the Gaussian against the "hat" basis function of sample ``i``,
:math:`W_{ji} \\propto \\int g_j(\\lambda)\\,\\phi_i(\\lambda)\\,d\\lambda`, computed in closed form with the
normal CDF :math:`\\Phi` and PDF :math:`\\varphi`. For source sampling that is fine compared with the
FWHM this equals the Gaussian evaluated at the samples times trapezoid weights
:math:`(\\lambda_{i+1}-\\lambda_{i-1})/2`; unlike point sampling it stays exact for irregular and coarse
sampling (e.g. a 10 nm library resampled to 6.5 nm EnMAP VNIR bands). Consequences, exact up to
rounding: rows sum to 1; a constant spectrum maps to the constant; a linear spectrum maps to its value
at :math:`\\mu_j` when the Gaussian lies inside :math:`C`; as :math:`\\mathrm{FWHM}\\to 0` the weights
become linear interpolation (a zero FWHM gives exactly that).

Coverage of band ``j`` is :math:`\\int_C g_j\\,d\\lambda \\in [0, 1]`. Bands with coverage below
``min_coverage`` (default 0.5: the band centre lies outside the source range or in a gap) are
"missing": their rows are NaN (``on_missing="nan"``) or a :class:`~hsikit.errors.MetadataError` is
raised (``on_missing="raise"``).
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from scipy.special import ndtr

from hsikit.errors import MetadataError, UsageError

#: FWHM / sigma of a Gaussian: 2 sqrt(2 ln 2).
FWHM_PER_SIGMA = 2.0 * np.sqrt(2.0 * np.log(2.0))
_INV_SQRT_2PI = 1.0 / np.sqrt(2.0 * np.pi)


def _vector(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if not np.isfinite(arr).all():
        raise MetadataError(f"{name} has NaN or infinite values")
    return arr


def _mass(za: np.ndarray, zb: np.ndarray) -> np.ndarray:
    """Phi(zb) - Phi(za) for za <= zb, accurate in both tails."""
    upper = za > 0
    return np.where(upper, ndtr(-za) - ndtr(-zb), ndtr(zb) - ndtr(za))


def _pdf(z: np.ndarray) -> np.ndarray:
    return _INV_SQRT_2PI * np.exp(-0.5 * z * z)


def gaussian_srf(
    src_wavelength: Any,
    dst_wavelength: Any,
    dst_fwhm: Any,
    *,
    on_missing: Literal["nan", "raise"] = "nan",
    min_coverage: float = 0.5,
    max_gap: float | None = None,
) -> np.ndarray:
    """Resampling matrix from source samples to Gaussian target bands.

    Parameters
    ----------
    src_wavelength
        Source sample wavelengths in nm, shape (n_src,), at least 2 distinct values; any order
        (columns of the result follow this order), possibly irregularly spaced.
    dst_wavelength
        Target band centres in nm, shape (n_dst,); any order (e.g. EnMAP's overlapping detectors).
    dst_fwhm
        Target full widths at half maximum in nm, shape (n_dst,) or a scalar; >= 0 (0 means linear
        interpolation at the centre).
    on_missing
        What to do with target bands the source does not cover (coverage < ``min_coverage``):
        ``"nan"`` fills their rows with NaN, ``"raise"`` raises :class:`MetadataError` naming them.
    min_coverage
        Smallest fraction of a band's Gaussian that must lie on the covered source axis, in [0, 1].
        The default 0.5 accepts every band whose centre lies inside the covered range.
    max_gap
        Source intervals wider than this (nm) are treated as holes, not interpolated across
        (e.g. 50 for a 10 nm library whose water-vapour bands were removed). None: no holes.

    Returns
    -------
    numpy.ndarray
        Weights ``W`` of shape (n_dst, n_src), float64, non-negative, each covered row summing to 1
        (up to rounding); ``y = W @ s`` resamples a spectrum ``s`` of shape (n_src,).

    Raises
    ------
    MetadataError
        Non-finite or duplicate wavelengths, negative FWHM, or a missing band with ``on_missing="raise"``.
    UsageError
        An invalid option value.
    """
    if on_missing not in ("nan", "raise"):
        raise UsageError(f"on_missing must be 'nan' or 'raise', got {on_missing!r}")
    if not 0.0 <= min_coverage <= 1.0:
        raise UsageError(f"min_coverage must be in [0, 1], got {min_coverage}")
    src = _vector(src_wavelength, "source wavelength")
    mu = _vector(dst_wavelength, "target wavelength")
    fwhm = _vector(dst_fwhm, "target fwhm")
    if fwhm.size == 1:
        fwhm = np.full(mu.size, fwhm[0])
    if fwhm.size != mu.size:
        raise MetadataError(f"{fwhm.size} fwhm values for {mu.size} target bands")
    if np.any(fwhm < 0):
        raise MetadataError("target fwhm has negative values")
    if src.size < 2:
        raise MetadataError(f"resampling needs at least 2 source wavelengths, got {src.size}")
    order = np.argsort(src, kind="stable")
    x = src[order]
    if np.any(np.diff(x) == 0):
        dup = x[:-1][np.diff(x) == 0]
        raise MetadataError(f"source wavelengths repeat ({', '.join(f'{v:g}' for v in dup[:5])} nm)")

    a, b = x[:-1], x[1:]  # segments of the piecewise-linear interpolant, shape (n_seg,)
    h = b - a
    seg_ok = np.ones(h.size, bool) if max_gap is None else h <= max_gap
    sigma = fwhm / FWHM_PER_SIGMA
    n_dst, n_src = mu.size, x.size
    w_sorted = np.zeros((n_dst, n_src))
    coverage = np.zeros(n_dst)

    wide = sigma > 0
    if wide.any():
        m, s = mu[wide, None], sigma[wide, None]
        za, zb = (a - m) / s, (b - m) / s  # (n_wide, n_seg)
        mass = _mass(za, zb)  # integral of g over each segment
        # integral of g(l) * (l - a) / h over the segment: weight of its right node
        right = ((m - a) * mass - s * (_pdf(zb) - _pdf(za))) / h
        right = np.clip(right, 0.0, mass)
        left = mass - right
        mass, left, right = (np.where(seg_ok, v, 0.0) for v in (mass, left, right))
        rows = np.zeros((mass.shape[0], n_src))
        rows[:, :-1] += left
        rows[:, 1:] += right
        w_sorted[wide] = rows
        coverage[wide] = mass.sum(axis=1)
    narrow = ~wide
    if narrow.any():  # zero width: linear interpolation at the centre
        for j in np.flatnonzero(narrow):
            k = int(np.searchsorted(x, mu[j], side="right")) - 1
            if mu[j] == x[-1]:
                k = n_src - 2
            if 0 <= k < n_src - 1 and seg_ok[k]:
                t = (mu[j] - x[k]) / h[k]
                w_sorted[j, k], w_sorted[j, k + 1] = 1.0 - t, t
                coverage[j] = 1.0
            elif 0 <= k < n_src and mu[j] == x[k]:  # on a sample next to a hole
                w_sorted[j, k] = 1.0
                coverage[j] = 1.0

    missing = coverage < min_coverage
    if missing.any() and on_missing == "raise":
        bad = np.flatnonzero(missing)
        listed = ", ".join(f"{j + 1} ({mu[j]:.1f} nm)" for j in bad[:8])
        raise MetadataError(
            f"{bad.size} target band(s) not covered by the source wavelengths "
            f"{x[0]:.1f}-{x[-1]:.1f} nm (coverage < {min_coverage}): {listed}"
        )
    ok = ~missing
    w_sorted[ok] /= w_sorted[ok].sum(axis=1, keepdims=True)
    w_sorted[missing] = np.nan
    w = np.empty_like(w_sorted)
    w[:, order] = w_sorted
    return w


def srf_coverage(src_wavelength: Any, dst_wavelength: Any, dst_fwhm: Any, *, max_gap: float | None = None) -> np.ndarray:
    """Fraction of each target band's Gaussian lying on the covered source axis, shape (n_dst,), in [0, 1].

    Same conventions as :func:`gaussian_srf` (wavelengths and FWHM in nm).
    """
    src = np.sort(_vector(src_wavelength, "source wavelength"))
    mu = _vector(dst_wavelength, "target wavelength")
    sigma = np.broadcast_to(_vector(dst_fwhm, "target fwhm"), mu.shape) / FWHM_PER_SIGMA
    a, b = src[:-1], src[1:]
    ok = np.ones(a.size, bool) if max_gap is None else (b - a) <= max_gap
    out = np.zeros(mu.size)
    for j in range(mu.size):
        if sigma[j] > 0:
            out[j] = _mass((a[ok] - mu[j]) / sigma[j], (b[ok] - mu[j]) / sigma[j]).sum()
        else:
            out[j] = float(np.any((a[ok] <= mu[j]) & (mu[j] <= b[ok])))
    return out


def _is_torch(x: Any) -> bool:
    return type(x).__module__.startswith("torch")


def resample_spectra(
    spectra: Any,
    src_wavelength: Any,
    dst_wavelength: Any,
    dst_fwhm: Any,
    axis: int = -1,
    **srf_options: Any,
) -> Any:
    """Resample spectra to Gaussian target bands (see :func:`gaussian_srf` for the model).

    Parameters
    ----------
    spectra
        numpy array or torch tensor with the spectral axis ``axis`` of length n_src (any other
        axes are kept: a library (n_spectra, n_src), a cube (n_src, y, x) with ``axis=0``, ...).
        Values in any linear unit (reflectance, radiance); NaNs propagate to every output band
        (remove them first).
    src_wavelength
        Source wavelengths in nm, shape (n_src,).
    dst_wavelength, dst_fwhm
        Target band centres and FWHM in nm, shape (n_dst,) (fwhm may be a scalar).
    axis
        The spectral axis of ``spectra``.
    **srf_options
        ``on_missing``, ``min_coverage``, ``max_gap`` of :func:`gaussian_srf`.

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Same type (and for torch, device; autograd flows through) as ``spectra``, with the spectral
        axis replaced by n_dst bands. Float input keeps its dtype; integer input gives float32
        (float64 for 64-bit integers). Bands not covered by the source are NaN.
    """
    w = gaussian_srf(src_wavelength, dst_wavelength, dst_fwhm, **srf_options)
    n_src = w.shape[1]
    if _is_torch(spectra):
        import torch

        if spectra.shape[axis] != n_src:
            raise MetadataError(f"spectra have {spectra.shape[axis]} values along axis {axis}, wavelengths {n_src}")
        dtype = spectra.dtype if spectra.is_floating_point() else torch.float32
        wt = torch.as_tensor(w, dtype=dtype, device=spectra.device)
        moved = torch.movedim(spectra.to(dtype), axis, -1)
        return torch.movedim(moved @ wt.T, -1, axis)
    arr = np.asarray(spectra)
    if arr.shape[axis] != n_src:
        raise MetadataError(f"spectra have {arr.shape[axis]} values along axis {axis}, wavelengths {n_src}")
    dtype = arr.dtype if np.issubdtype(arr.dtype, np.floating) else np.result_type(arr.dtype, np.float32)
    moved = np.moveaxis(arr.astype(dtype, copy=False), axis, -1)
    return np.moveaxis(moved @ w.T.astype(dtype), -1, axis)
