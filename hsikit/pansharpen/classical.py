"""Classical pansharpening: interpolation baseline, component substitution and multiresolution analysis.

Notation: ``M`` the low-resolution cube ``(B, h, w)``, ``P`` the PAN ``(H, W) = (h r, w r)``,
``M~ = up(M)`` the cube upsampled to the PAN grid (:func:`hsikit.data.resample.upsample`,
cubic convolution), ``LP_g`` the Gaussian MTF-matched low-pass with gain ``g`` at the LR Nyquist
frequency (:func:`hsikit.data.degrade.blur`), ``down`` the decimation by ``r`` at ``offset``.
``mean``/``std``/``cov`` are over all pixels of the scene.

=================  ===================================================================================
``bicubic`` (EXP)  ``F = M~`` (the baseline every method must beat)
``gsa``            Gram-Schmidt adaptive (CS). Weights ``alpha`` from the least-squares fit of the
                   degraded PAN ``P_L = down(LP_g(P))`` by ``[M_b - mean(M_b), 1]`` at LR;
                   intensity ``I = sum_b alpha_b (M~_b - mean(M_b)) + alpha_0``, centred; injection
                   gains ``g_b = cov(I, M_b) / var(I)``; ``F_b = M~_b + g_b ((P - mean(P)) - I)``.
``bt-h``           Brovey with haze correction (CS). Haze ``h_b = min(M_b)``; ``alpha`` from the fit of
                   ``P_L`` by ``M_b`` (no constant); ``I = sum_b alpha_b (M~_b - h_b)``;
                   ``P' = (P - mean(LP(P))) std(I) / std(LP(P)) + mean(I)`` (histogram matching);
                   ``F_b = max(M~_b - h_b, 0) clip(P' / I, 0, 10) + h_b`` (the clip, absent in the
                   toolbox, keeps pixels where ``I`` nears 0 finite).
``mtf-glp``        Generalized Laplacian pyramid with MTF-matched filter, additive injection (MRA).
                   PAN matched to each band: ``P_b = (P - mean(P)) s_b + mean(M_b)``,
                   ``s_b = std(M_b) / std(LP_{g_b}(P))``; its LR version
                   ``P_b^L = up(down(LP_{g_b}(P_b)))``; ``F_b = M~_b + (P_b - P_b^L)``.
``mtf-glp-fs``     The same pyramid on the raw PAN with regression gains estimated at full scale (the
                   toolbox's GLP): ``g_b = cov(M~_b, P) / cov(P^L, P)``, ``F_b = M~_b + g_b (P - P^L)``,
                   ``P^L = up(down(LP_{g_b}(P)))``. Robust where the PAN barely correlates with a band
                   (SWIR bands under a VNIR PAN), where the unit gain of ``mtf-glp`` over-injects.
``mtf-glp-hpm``    The same pyramid with multiplicative injection (high-pass modulation):
                   ``F_b = M~_b clip(P_b / (P_b^L + eps), 0, 10)``. Like the toolbox, no haze term
                   (the histogram matching of ``P_b`` to band ``b`` sets its offset).
=================  ===================================================================================

Because the low-pass has unit DC gain and the interpolator reproduces constants, ``P_b - P_b^L =
s_b (P - up(down(LP_{g_b}(P))))``: one pyramid per distinct gain serves all bands (224 EnMAP bands
with one GNyq cost one PAN filtering).

Every method is split in two: :func:`fit` computes the scene statistics (weights, gains, means,
standard deviations: from the LR cube and the whole PAN), :func:`apply` fuses any window with them.
Tiles therefore use the same parameters as the whole scene (no seams); ``fuse = apply(fit(...))``.
Statistics are taken on the LR cube (the toolbox takes them on the upsampled cube; interpolation
changes them by well under 1 %). Differences from the toolbox of Ciotola et al. (2024): the MTF
filters are sampled Gaussians (:mod:`hsikit.metrics.mtf`) rather than Kaiser-windowed frequency-sampled
ones, GSA's degraded PAN uses the MTF-matched Gaussian instead of the starlet low-pass, the upsampler is
cubic convolution instead of the 23-tap polynomial, and the PAN pyramid is decimated and re-interpolated
with one consistent phase.

References
----------
Aiazzi, B., Baronti, S., Selva, M. (2007). Improving component substitution pansharpening through
multivariate regression of MS+Pan data. IEEE TGRS 45(10), 3230-3239 (GSA).
Lolli, S., Alparone, L., Garzelli, A., Vivone, G. (2017). Haze correction for contrast-based multispectral
pansharpening. IEEE GRSL 14(12), 2255-2259 (BT-H).
Aiazzi, B., Alparone, L., Baronti, S., Garzelli, A., Selva, M. (2006). MTF-tailored multiscale fusion
of high-resolution MS and Pan imagery. PE&RS 72(5), 591-596 (MTF-GLP).
Vivone, G., Restaino, R., Chanussot, J. (2018). Full scale regression-based injection coefficients for
panchromatic sharpening. IEEE TIP 27(7), 3418-3431 (MTF-GLP-FS).
Vivone, G., Restaino, R., Dalla Mura, M., Licciardi, G., Chanussot, J. (2014). Contrast and error-based
fusion schemes for multispectral image pansharpening. IEEE GRSL 11(5), 930-934 (MTF-GLP-HPM).
Ciotola, M., Guarino, G., Vivone, G., Poggi, G., Chanussot, J., Plaza, A., Scarpa, G. (2024).
Hyperspectral pansharpening: critical review, tools and future perspectives. arXiv:2407.01355.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from hsikit.data.degrade import blur, blur_decimate
from hsikit.errors import UsageError
from hsikit.metrics.mtf import GNYQ_HS, gnyq_vector
from hsikit.data.resample import centre_phase, upsample

#: Method names, in the order of the benchmark tables.
METHODS = ("bicubic", "gsa", "bt-h", "mtf-glp", "mtf-glp-fs", "mtf-glp-hpm")
#: Upper bound of the HPM modulation ratio (as in the toolbox).
HPM_CLIP = 10.0
#: Bands upsampled at a time when the full-scale statistics are computed.
FIT_CHUNK = 16


@dataclass
class Fusion:
    """Scene-wide parameters of one method (from :func:`fit`), applied to windows by :func:`apply`.

    ``offset`` is the decimation phase of the PAN pyramid, ``phase`` the HR position of LR sample 0
    used to upsample the cube (:mod:`hsikit.data.resample`); ``params`` holds float64 tensors.
    """

    method: str
    ratio: int
    gnyq: np.ndarray
    offset: int
    phase: float
    params: dict[str, torch.Tensor] = field(default_factory=dict)


def _method(name: str) -> str:
    key = str(name).lower().replace("_", "-")
    key = {"exp": "bicubic", "bth": "bt-h", "glp": "mtf-glp", "hpm": "mtf-glp-hpm"}.get(key, key)
    if key not in METHODS:
        raise UsageError(f"unknown pansharpening method {name!r}; use one of {', '.join(METHODS)}")
    return key


def _as_batch(hs: torch.Tensor, pan: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(N, B, h, w) and (N, 1, H, W) views; flag whether the input had no batch axis."""
    if hs.ndim == 3:
        hs, squeeze = hs.unsqueeze(0), True
    elif hs.ndim == 4:
        squeeze = False
    else:
        raise UsageError(f"the cube must be (band, y, x) or (batch, band, y, x); got shape {tuple(hs.shape)}")
    if pan.ndim == 2:
        pan = pan[None, None]
    elif pan.ndim == 3:
        pan = pan[:, None] if not squeeze or pan.shape[0] != 1 else pan[None]
    if pan.ndim != 4 or pan.shape[1] != 1 or pan.shape[0] != hs.shape[0]:
        raise UsageError(f"PAN shape {tuple(pan.shape)} does not match the cube {tuple(hs.shape)}")
    return hs, pan, squeeze


def check_shapes(hs_shape: Sequence[int], pan_shape: Sequence[int], ratio: int | None) -> int:
    """The ratio of a cube ``(..., h, w)`` and a PAN ``(..., H, W)``; raises when they do not fit.

    With ``ratio`` None it is inferred (``H / h``, which must equal ``W / w`` and be an integer >= 2).
    """
    h, w = int(hs_shape[-2]), int(hs_shape[-1])
    ph, pw = int(pan_shape[-2]), int(pan_shape[-1])
    if ratio is None:
        if h == 0 or w == 0 or ph % h or pw % w or ph // h != pw // w:
            raise UsageError(f"PAN {ph}x{pw} is not an integer multiple of the cube {h}x{w} in both axes")
        ratio = ph // h
    r = int(ratio)
    if r != ratio or r < 1:
        raise UsageError(f"ratio must be a positive integer; got {ratio}")
    if (ph, pw) != (h * r, w * r):
        raise UsageError(f"PAN {ph}x{pw} is not {r} x the cube {h}x{w} (expected {h * r}x{w * r})")
    if r < 2:
        raise UsageError("ratio 1: PAN and cube are on the same grid, there is nothing to sharpen")
    return r


def _lstsq(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Minimum-norm least squares ``argmin ||x a - y||`` for x (N, k), y (N,), float64."""
    gram = x.T @ x
    return torch.linalg.pinv(gram, hermitian=True) @ (x.T @ y)


def _safe_div(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(b > 0, a / torch.where(b > 0, b, torch.ones_like(b)), torch.zeros_like(a))


def _pan_lowpass(pan: torch.Tensor, fusion: Fusion, g: float) -> torch.Tensor:
    """``up(down(LP_g(P)))`` for (N, 1, H, W)."""
    low = blur_decimate(pan, fusion.ratio, g, offset=fusion.offset)
    return upsample(low, fusion.ratio, phase=fusion.offset)


def fit(
    hs: Any,
    pan: Any,
    ratio: int | None = None,
    method: str = "mtf-glp",
    *,
    gnyq: float | Sequence[float] = GNYQ_HS,
    offset: int | None = None,
    phase: float | None = None,
) -> Fusion:
    """Scene statistics of ``method`` for the pair (``hs`` LR cube, ``pan``).

    Parameters
    ----------
    hs
        Low-resolution cube ``(B, h, w)`` (numpy or torch, any device; no NaN: fill nodata first).
    pan
        PAN ``(H, W)`` with ``H = h r``, ``W = w r``.
    ratio
        Scale factor ``r``; None infers it from the shapes.
    method
        One of :data:`METHODS`.
    gnyq
        MTF gain at the LR Nyquist frequency of the cube's bands (scalar or per band) for the MTF-matched
        filters of the PAN.
    offset
        Decimation phase of the PAN pyramid, in ``[0, r)`` (default ``r // 2``, as
        :func:`hsikit.data.degrade.blur_decimate`).
    phase
        HR position of LR sample 0 when the cube is upsampled; default ``(r - 1) / 2`` (aligned grids).
        For a Wald-protocol pair made by decimation at ``offset``, pass ``phase=offset``.

    Returns
    -------
    Fusion
    """
    m_name = _method(method)
    m = torch.as_tensor(hs)
    p = torch.as_tensor(pan, device=m.device)
    if not m.is_floating_point():
        m = m.float()
    p = p.to(m.dtype)
    if m.ndim != 3:
        raise UsageError(f"the cube must be (band, y, x); got shape {tuple(m.shape)}")
    if p.ndim == 3 and p.shape[0] == 1:
        p = p[0]
    if p.ndim != 2:
        raise UsageError(f"the PAN must be one image (y, x); got shape {tuple(p.shape)}")
    r = check_shapes(m.shape, p.shape, ratio)
    o = r // 2 if offset is None else int(offset)
    if not 0 <= o < r:
        raise UsageError(f"offset must lie in [0, {r}); got {offset}")
    ph = centre_phase(r) if phase is None else float(phase)
    if not -r < ph < r:
        raise UsageError(f"phase must lie in (-{r}, {r}); got {phase}")
    if not (torch.isfinite(m).all() and torch.isfinite(p).all()):
        raise UsageError("the cube or the PAN holds NaN/inf: fill nodata before fusing")
    b = m.shape[0]
    fusion = Fusion(m_name, r, gnyq_vector(gnyq, b), o, ph)
    if m_name == "bicubic":
        return fusion
    m64 = m.to(torch.float64).reshape(b, -1)
    p64 = p.to(torch.float64)
    mean_m = m64.mean(dim=1)
    prm = fusion.params
    prm["mean_pan"] = p64.mean()
    if m_name in ("gsa", "bt-h"):
        g_mean = float(np.mean(fusion.gnyq))
        p_lr = blur_decimate(p64[None, None], r, g_mean, offset=o)[0, 0].reshape(-1)
        if m_name == "gsa":
            x = torch.cat([(m64 - mean_m[:, None]).T, torch.ones(m64.shape[1], 1, dtype=torch.float64, device=m.device)], 1)
            alpha = _lstsq(x, p_lr - p_lr.mean())
            intensity = x @ alpha
            ic = intensity - intensity.mean()
            prm.update(alpha=alpha, mean_hs=mean_m, mean_int=intensity.mean(),
                       gain=_safe_div((m64 - mean_m[:, None]) @ ic / ic.numel(), (ic @ ic / ic.numel()).expand(b)))
        else:
            haze = m64.min(dim=1).values
            alpha = _lstsq(m64.T, p_lr)
            intensity = (m64 - haze[:, None]).T @ alpha
            lp = blur(p64[None, None], r, g_mean)[0, 0]
            prm.update(alpha=alpha, haze=haze, mean_int=intensity.mean(), std_int=intensity.std(unbiased=False),
                       mean_lp=lp.mean(), std_lp=lp.std(unbiased=False))
        return fusion
    if m_name == "mtf-glp-fs":
        # cov(X, P) = mean(X (P - mean P)): the centred PAN makes centring X unnecessary
        pc = (p64 - p64.mean()).reshape(-1)
        pc_m = pc.to(m.dtype)
        n = pc.numel()
        gain = torch.empty(b, dtype=torch.float64, device=m.device)
        for g in np.unique(fusion.gnyq):
            idx = np.flatnonzero(fusion.gnyq == g)
            p_low = _pan_lowpass(p64[None, None], fusion, float(g))[0, 0]
            den = p_low.reshape(-1) @ pc / n
            for a in range(0, idx.size, FIT_CHUNK):
                sel = torch.as_tensor(idx[a : a + FIT_CHUNK], device=m.device)
                up = upsample(m[sel], r, ph).reshape(sel.numel(), -1)
                num = (up @ pc_m).to(torch.float64) / n
                gain[sel] = _safe_div(num, den.expand_as(num)) if den > 0 else torch.zeros_like(num)
        prm["gain"] = gain
        return fusion
    # MRA: per-band histogram matching of the PAN, s_b = std(M_b) / std(LP_{g_b}(P))
    std_lp = torch.empty(b, dtype=torch.float64, device=m.device)
    for g in np.unique(fusion.gnyq):
        sel = torch.as_tensor(fusion.gnyq == g, device=m.device)
        std_lp[sel] = blur(p64[None, None], r, float(g))[0, 0].std(unbiased=False)
    prm.update(mean_hs=mean_m, scale=_safe_div(m64.std(dim=1, unbiased=False), std_lp))
    return fusion


def apply(fusion: Fusion, hs: Any, pan: Any) -> torch.Tensor:
    """Fuse a window (or the whole scene) with the parameters of :func:`fit`.

    Parameters
    ----------
    fusion
        From :func:`fit` on the whole scene.
    hs
        LR cube ``(B, h, w)`` or a batch ``(N, B, h, w)`` of windows.
    pan
        PAN ``(H, W)`` or ``(N, H, W)`` / ``(N, 1, H, W)``, ``H = h r``.

    Returns
    -------
    torch.Tensor
        ``(B, H, W)`` (or ``(N, B, H, W)``), the cube's dtype and device.
    """
    m = torch.as_tensor(hs)
    if not m.is_floating_point():
        m = m.float()
    p = torch.as_tensor(pan, device=m.device).to(m.dtype)
    m, p, squeeze = _as_batch(m, p)
    r = fusion.ratio
    check_shapes(m.shape, p.shape, r)
    if m.shape[1] != fusion.gnyq.size:
        raise UsageError(f"the cube has {m.shape[1]} bands but the fit had {fusion.gnyq.size}")
    prm = {k: v.to(device=m.device, dtype=m.dtype) for k, v in fusion.params.items()}
    up = upsample(m, r, fusion.phase)
    meth = fusion.method
    if meth == "bicubic":
        out = up
    elif meth == "gsa":
        a = prm["alpha"]
        intensity = torch.einsum("nbhw,b->nhw", up - prm["mean_hs"][:, None, None], a[:-1])[:, None] + a[-1] - prm["mean_int"]
        out = up + prm["gain"][:, None, None] * ((p - prm["mean_pan"]) - intensity)
    elif meth == "bt-h":
        haze = prm["haze"][:, None, None]
        intensity = torch.einsum("nbhw,b->nhw", up - haze, prm["alpha"])[:, None]
        p_eq = (p - prm["mean_lp"]) * _safe_div(prm["std_int"], prm["std_lp"]) + prm["mean_int"]
        eps = torch.finfo(m.dtype).eps
        den = torch.where(intensity.abs() > eps, intensity, torch.full_like(intensity, eps))
        out = (up - haze).clamp_min(0) * (p_eq / den).clamp(0, HPM_CLIP) + haze
    else:
        out = torch.empty_like(up)
        scale, mean_hs = prm.get("scale"), prm.get("mean_hs")
        eps = torch.finfo(m.dtype).eps
        for g in np.unique(fusion.gnyq):
            sel = torch.as_tensor(np.flatnonzero(fusion.gnyq == g), device=m.device)
            p_low = _pan_lowpass(p, fusion, float(g))
            s = scale[sel][:, None, None] if scale is not None else None
            if meth == "mtf-glp":
                out[:, sel] = up[:, sel] + s * (p - p_low)
            elif meth == "mtf-glp-fs":
                out[:, sel] = up[:, sel] + prm["gain"][sel][:, None, None] * (p - p_low)
            else:
                p_b = (p - prm["mean_pan"]) * s + mean_hs[sel][:, None, None]
                p_bl = (p_low - prm["mean_pan"]) * s + mean_hs[sel][:, None, None]
                out[:, sel] = up[:, sel] * (p_b / (p_bl + eps)).clamp(0, HPM_CLIP)
    return out[0] if squeeze else out


def fuse(
    hs: Any,
    pan: Any,
    ratio: int | None = None,
    method: str = "mtf-glp",
    *,
    gnyq: float | Sequence[float] = GNYQ_HS,
    offset: int | None = None,
    phase: float | None = None,
) -> torch.Tensor:
    """Pansharpen a whole in-memory pair: ``apply(fit(...), hs, pan)``; see :func:`fit` for parameters.

    Returns
    -------
    torch.Tensor
        ``(B, H, W)`` on the PAN grid (the cube's dtype, float32 for integer input; the cube's device).
    """
    fusion = fit(hs, pan, ratio, method, gnyq=gnyq, offset=offset, phase=phase)
    return apply(fusion, hs, pan)


def halo(ratio: int, kernel_size: int = 41) -> int:
    """Context (HR pixels, a multiple of ``ratio``) that makes tiled fusion equal whole-scene fusion.

    The PAN low-pass reaches ``kernel_size // 2`` pixels, the cubic interpolation 2 LR samples plus
    one for the decimation phase.
    """
    r = int(ratio)
    need = kernel_size // 2 + 3 * r
    return r * -(-need // r)


__all__ = ["METHODS", "Fusion", "apply", "check_shapes", "fit", "fuse", "halo"]
