"""Evaluation protocols of pansharpening: reduced resolution (Wald) and full resolution (no reference).

Reduced resolution (Wald et al. 1997; the synthesis property): degrade the cube and the PAN by the
ratio ``r`` with their MTF-matched Gaussians and decimate (:func:`hsikit.data.degrade.wald_protocol`),
fuse the degraded pair back to the original grid, and score the result against the original cube:
Q2n on ``block_size`` blocks, ERGAS with the ratio, SAM in degrees (:mod:`hsikit.metrics`). The
cube is upsampled with the decimation phase (``phase = offset``), so even ratios are not shifted by
half a pixel.

Full resolution (no reference): fuse the original pair and measure consistency:
``D_lambda^K = 1 - Q2n(down(LP(F)), M)`` (Khan), ``D_s`` (QNR's band-to-PAN UIQI differences),
``HQNR = (1 - D_lambda^K)(1 - D_s)``, ``D_S^R = 1 - R^2`` of the PAN fitted by the fused bands and
``D_rho`` (local decorrelation in ``r`` x ``r`` windows).

Scores use the float data as given (no rounding to integers; reflectance in [0, 1] is fine). An
optional ``border`` of HR pixels is dropped before the reduced-resolution scores (the toolbox drops
about 10; 0 here by default because the test scenes are small).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import torch

from hsikit.data.degrade import blur_decimate, simulate_pan, wald_protocol
from hsikit.errors import UsageError
from hsikit.metrics import d_rho, d_s_r, ergas, hqnr, q2n, sam
from hsikit.metrics.mtf import GNYQ_HS, GNYQ_PAN
from hsikit.pansharpen.classical import METHODS, check_shapes, fuse


def _sync(t: torch.Tensor) -> None:
    if t.is_cuda:
        torch.cuda.synchronize(t.device)


def _tensor(x: Any, name: str) -> torch.Tensor:
    t = torch.as_tensor(x)
    if not t.is_floating_point():
        t = t.float()
    if not torch.isfinite(t).all():
        raise UsageError(f"{name} holds NaN/inf: fill or drop nodata (e.g. bands='valid') before scoring")
    return t


def _score_reduced(ms_lr: torch.Tensor, pan: torch.Tensor, ref: torch.Tensor, r: int, methods: Sequence[str],
                   gnyq: Any, block_size: int, border: int) -> dict[str, dict[str, float]]:
    o = r // 2
    crop = (slice(None), slice(border, ref.shape[-2] - border), slice(border, ref.shape[-1] - border))
    out: dict[str, dict[str, float]] = {}
    for name in methods:
        _sync(ref)
        t0 = time.perf_counter()
        f = fuse(ms_lr, pan, r, name, gnyq=gnyq, offset=o, phase=o)
        _sync(f)
        dt = time.perf_counter() - t0
        fe, re = f[crop], ref[crop]
        out[name] = {"q2n": q2n(fe, re, block_size=block_size), "ergas": ergas(fe, re, r),
                     "sam_deg": sam(fe, re).degrees, "seconds": dt}
    return out


def reduced_resolution(
    hs: Any,
    pan: Any,
    ratio: int | None = None,
    methods: Sequence[str] = METHODS,
    *,
    gnyq: float | Sequence[float] = GNYQ_HS,
    gnyq_pan: float = GNYQ_PAN,
    block_size: int = 32,
    border: int = 0,
) -> dict[str, dict[str, float]]:
    """Wald-protocol scores of each method on a real pair (cube + PAN at ``r`` times finer pixels).

    Both are degraded by ``r`` (MTF-matched Gaussians, decimation at ``r // 2``), fused, and the result
    is scored against the original cube.

    Parameters
    ----------
    hs
        Cube ``(B, h, w)`` at its own resolution (the reference); ``h``, ``w`` multiples of ``r``.
    pan
        PAN ``(h r, w r)``.
    ratio
        Scale factor ``r`` (None: from the shapes).
    methods
        Names from :data:`hsikit.pansharpen.classical.METHODS`.
    gnyq, gnyq_pan
        MTF gains at Nyquist of the cube's bands and of the PAN.
    block_size
        Q2n block side (clipped to the image).
    border
        HR pixels dropped on each side before scoring.

    Returns
    -------
    dict
        ``{method: {"q2n", "ergas", "sam_deg", "seconds"}}`` (seconds: fusion only).
    """
    m = _tensor(hs, "hs")
    p = _tensor(pan, "pan").to(m.device, m.dtype)
    if p.ndim == 3 and p.shape[0] == 1:
        p = p[0]
    r = check_shapes(m.shape, p.shape, ratio)
    if m.shape[-2] % r or m.shape[-1] % r:
        raise UsageError(f"the cube {m.shape[-2]}x{m.shape[-1]} is not a multiple of the ratio {r}")
    ms_lr, pan_lr, ref = wald_protocol(m, p[None], r, gnyq_ms=gnyq, gnyq_pan=gnyq_pan)
    return _score_reduced(ms_lr, pan_lr[0], ref, r, methods, gnyq, block_size, border)


def simulated_pair(cube: Any, wavelength: Any, ratio: int, *, gnyq: float | Sequence[float] = GNYQ_HS,
                   pan_band: tuple[float, float] = (400.0, 700.0)) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """A reduced-resolution pair from a cube alone: ``(M = down(LP(X)), P = sum_b w_b X_b, X)``.

    The PAN is simulated on the cube's own grid with a flat response over ``pan_band`` nm
    (:func:`hsikit.data.degrade.simulate_pan`); the cube is degraded by ``ratio`` (Wald) and is the
    reference. ``X`` is cropped to a multiple of ``ratio``.
    """
    x = _tensor(cube, "cube")
    r = int(ratio)
    if r < 2 or r != ratio:
        raise UsageError(f"ratio must be an integer >= 2; got {ratio}")
    h, w = (x.shape[-2] // r) * r, (x.shape[-1] // r) * r
    if h == 0 or w == 0:
        raise UsageError(f"the cube {x.shape[-2]}x{x.shape[-1]} is smaller than the ratio {r}")
    x = x[..., :h, :w].contiguous()
    pan = simulate_pan(x, wavelength, band=pan_band)[0]
    return blur_decimate(x, r, gnyq), pan, x


def reduced_resolution_simulated(
    cube: Any,
    wavelength: Any,
    ratio: int,
    methods: Sequence[str] = METHODS,
    *,
    gnyq: float | Sequence[float] = GNYQ_HS,
    pan_band: tuple[float, float] = (400.0, 700.0),
    block_size: int = 32,
    border: int = 0,
) -> dict[str, dict[str, float]]:
    """Wald-protocol scores for a cube without a PAN (EnMAP, PRISMA without its PAN, ...).

    :func:`simulated_pair` makes the pair; the fused cube is scored against the cube. Parameters and
    result as :func:`reduced_resolution`.
    """
    ms_lr, pan, ref = simulated_pair(cube, wavelength, ratio, gnyq=gnyq, pan_band=pan_band)
    return _score_reduced(ms_lr, pan, ref, int(ratio), methods, gnyq, block_size, border)


def full_resolution_scores(fused: Any, hs: Any, pan: Any, ratio: int, *, gnyq: float | Sequence[float] = GNYQ_HS,
                           block_size: int = 32) -> dict[str, float]:
    """No-reference scores of one fused cube: D_lambda (Khan), D_s, HQNR, D_S^R, D_rho.

    Parameters
    ----------
    fused
        ``(B, H, W)`` on the PAN grid.
    hs
        The original cube ``(B, H / r, W / r)``.
    pan
        The PAN ``(H, W)``.
    ratio
        Scale factor.
    gnyq
        MTF gains of the cube's bands (for Khan's degradation).
    block_size
        Q and Q2n block side (clipped to the image).
    """
    q = hqnr(fused, hs, pan, ratio, gnyq=gnyq, block_size=block_size)
    return {"d_lambda_khan": q["d_lambda_khan"], "d_s": q["d_s"], "hqnr": q["hqnr"],
            "d_s_r": d_s_r(fused, pan), "d_rho": d_rho(fused, pan, ratio)}


def full_resolution(
    hs: Any,
    pan: Any,
    ratio: int | None = None,
    methods: Sequence[str] = METHODS,
    *,
    gnyq: float | Sequence[float] = GNYQ_HS,
    block_size: int = 32,
) -> dict[str, dict[str, float]]:
    """Full-resolution (no-reference) scores of each method on the original pair.

    Returns
    -------
    dict
        ``{method: {"d_lambda_khan", "d_s", "hqnr", "d_s_r", "d_rho", "seconds"}}``.
    """
    m = _tensor(hs, "hs")
    p = _tensor(pan, "pan").to(m.device, m.dtype)
    if p.ndim == 3 and p.shape[0] == 1:
        p = p[0]
    r = check_shapes(m.shape, p.shape, ratio)
    out: dict[str, dict[str, float]] = {}
    for name in methods:
        _sync(m)
        t0 = time.perf_counter()
        f = fuse(m, p, r, name, gnyq=gnyq)
        _sync(f)
        dt = time.perf_counter() - t0
        out[name] = {**full_resolution_scores(f, m, p, r, gnyq=gnyq, block_size=block_size), "seconds": dt}
    return out




def registration_shift(hs: Any, pan: Any, ratio: int, max_shift: int = 4) -> tuple[int, int]:
    """Integer PAN shift ``(dy, dx)`` (PAN pixels) that best registers the PAN to the cube.

    The PAN rolled by ``(dy, dx)`` and averaged over ``r`` x ``r`` blocks is correlated with the mean
    of the cube's bands (a 2 ``max_shift`` LR-pixel border is left out); the shift with the highest
    Pearson correlation is returned. Apply it as ``torch.roll(pan, (dy, dx), (0, 1))``. A real pair
    whose best shift is not (0, 0) is misregistered, and every detail-injecting method is penalised
    by it (see docs/pansharpen.md, Landsat-7).
    """
    m = _tensor(hs, "hs").to(torch.float64)
    p = _tensor(pan, "pan").to(m.device, torch.float64)
    if p.ndim == 3 and p.shape[0] == 1:
        p = p[0]
    r = check_shapes(m.shape, p.shape, ratio)
    h, w = m.shape[-2:]
    cut = 2 * max_shift
    if h <= 2 * cut or w <= 2 * cut:
        raise UsageError(f"the cube ({h}x{w}) is too small for shifts up to {max_shift}")
    inten = m.mean(0)[cut:-cut, cut:-cut].reshape(-1)
    inten = inten - inten.mean()
    best, arg = -2.0, (0, 0)
    for dy in range(-max_shift, max_shift + 1):
        for dx in range(-max_shift, max_shift + 1):
            blocks = torch.roll(p, (dy, dx), (0, 1)).reshape(h, r, w, r).mean(dim=(1, 3))
            b = blocks[cut:-cut, cut:-cut].reshape(-1)
            b = b - b.mean()
            c = float((inten @ b) / (inten.norm() * b.norm()).clamp_min(1e-300))
            if c > best:
                best, arg = c, (dy, dx)
    return arg


__all__ = [
    "full_resolution", "full_resolution_scores", "reduced_resolution", "reduced_resolution_simulated",
    "registration_shift", "simulated_pair",
]
