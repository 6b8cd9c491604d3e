"""No-reference (full-resolution) quality indices for pansharpening / fusion.

Shapes: ``estimate`` is the fused cube ``(band, Y, X)`` at PAN resolution, ``ms`` the original low-resolution
cube ``(band, Y/r, X/r)``, ``pan`` the panchromatic image ``(Y, X)``; ``ratio`` is the scale factor ``r`` (an
integer; the pixel-size ratio ``1/r`` is accepted too).

Indices (lower is better for the distortions, higher for QNR/HQNR):

* :func:`d_lambda` - classic spectral distortion of QNR (band-pair UIQI differences);
* :func:`d_lambda_khan` - Khan's spectral distortion ``1 - Q2n(MTF-degraded estimate, ms)``;
* :func:`d_s` - classic spatial distortion of QNR (band-to-PAN UIQI differences across scales);
* :func:`d_s_r` - ``1 - R^2`` of the least-squares fit of the PAN by the fused bands;
* :func:`d_rho` - mean local decorrelation between fused bands and PAN;
* :func:`qnr`, :func:`hqnr` - the combinations.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from hsikit.errors import UsageError
from hsikit.metrics._backend import CHUNK_ELEMENTS, as_tensor, band_chunks, box_sum, integer_scale, to_numpy
from hsikit.metrics.full_reference import _blocks, _local_q_maps, _q_from_moments, q2n
from hsikit.metrics.mtf import GNYQ_HS, GNYQ_PAN, _filter_t, gnyq_vector


def _cube(x: Any, name: str, device: torch.device | None = None) -> torch.Tensor:
    t = as_tensor(x, name, device=device)
    if t.ndim == 2:
        t = t.unsqueeze(0)
    if t.ndim != 3:
        raise UsageError(f"{name} must be a cube (band, y, x); got shape {tuple(t.shape)}")
    return t


def _image(x: Any, name: str, device: torch.device) -> torch.Tensor:
    t = as_tensor(x, name, device=device)
    if t.ndim == 3 and t.shape[0] == 1:
        t = t[0]
    if t.ndim != 2:
        raise UsageError(f"{name} must be a single image (y, x); got shape {tuple(t.shape)}")
    return t


def _check_scales(est: torch.Tensor, ms: torch.Tensor, r: int) -> None:
    if est.shape[0] != ms.shape[0]:
        raise UsageError(f"estimate has {est.shape[0]} bands but ms has {ms.shape[0]}")
    if est.shape[1] != ms.shape[1] * r or est.shape[2] != ms.shape[2] * r:
        raise UsageError(
            f"estimate is {est.shape[1]}x{est.shape[2]} but ms is {ms.shape[1]}x{ms.shape[2]}: "
            f"expected exactly ratio {r} times larger"
        )


def _degrade(t: torch.Tensor, gnyq: Any, r: int, offset: int | None) -> torch.Tensor:
    o = r // 2 if offset is None else int(offset)
    if not 0 <= o < r:
        raise UsageError(f"offset must lie in [0, {r}); got {offset}")
    return _filter_t(t, gnyq_vector(gnyq, t.shape[0]), r, 41)[:, o::r, o::r]


def _window(block_size: int, stride: int | None, h: int, w: int) -> tuple[int, int]:
    bs = min(int(block_size), h, w)
    st = bs if stride is None else int(stride)
    if bs < 2 or st < 1:
        raise UsageError(f"block_size must be >= 2 and stride >= 1; got {block_size}, {stride}")
    return bs, st


def band_pair_q(cube: Any, block_size: int = 32, stride: int | None = None) -> np.ndarray:
    """Mean UIQI between every pair of bands of one cube, ``(band, band)`` (diagonal = 1).

    With non-overlapping blocks (``stride == block_size``, the default) every block's mean vector and
    band covariance matrix come from one batched matrix product, so all ``B (B - 1) / 2`` pairs cost about
    one ``B x B`` Gram matrix per block; with overlapping windows the pair moments come from integral
    images (cumulative sums), a few operations per pixel and pair.

    Parameters
    ----------
    cube
        ``(band, y, x)``.
    block_size
        Window side (clipped to the image size).
    stride
        Window step; default ``block_size``.
    """
    t = _cube(cube, "cube")
    b, h, w = t.shape
    bs, st = _window(block_size, stride, h, w)
    off = t.to(torch.float64).mean(dim=(1, 2))
    acc = torch.zeros(b, b, dtype=torch.float64, device=t.device)
    count = 0
    if st == bs:
        for y0 in range(0, h - bs + 1, st):
            xs = _blocks((t[:, y0 : y0 + bs, :].to(torch.float64) - off[:, None, None]), bs, st)
            npx = xs.shape[1]
            step = max(1, CHUNK_ELEMENTS // (npx * b + 4 * b * b))
            for a in range(0, xs.shape[0], step):
                x = xs[a : a + step]
                m = x.mean(dim=1)
                xc = x - m[:, None, :]
                c = torch.bmm(xc.transpose(1, 2), xc) / npx  # (n, b, b)
                v = torch.diagonal(c, dim1=1, dim2=2)
                mu = m + off
                q = _q_from_moments(mu[:, :, None], mu[:, None, :], v[:, :, None], v[:, None, :], c)
                acc += q.sum(dim=0)
                count += x.shape[0]
        return to_numpy(acc / count)
    # overlapping windows: integral images per band and per band pair
    x = t.to(torch.float64) - off[:, None, None]
    npx = float(bs * bs)
    mean = box_sum(x, bs, st) / npx  # (b, ny, nx)
    var = (box_sum(x * x, bs, st) / npx - mean * mean).clamp_min(0)
    mu = mean + off[:, None, None]
    iu, ju = torch.triu_indices(b, b, offset=1, device=t.device)
    step = max(1, CHUNK_ELEMENTS // (4 * h * w))
    for a in range(0, iu.numel(), step):
        i = iu[a : a + step]
        j = ju[a : a + step]
        cov = box_sum(x[i] * x[j], bs, st) / npx - mean[i] * mean[j]
        q = _q_from_moments(mu[i], mu[j], var[i], var[j], cov).mean(dim=(1, 2))
        acc[i, j] = q
        acc[j, i] = q
    acc.fill_diagonal_(1.0)
    return to_numpy(acc)


def d_lambda(
    estimate: Any, ms: Any, p: float = 1.0, block_size: int = 32, stride: int | None = None
) -> float:
    """Spectral distortion index of QNR (Alparone et al. 2008).

    ``D_lambda = ( 1 / (B (B - 1)) sum_{l != r} |Q(F_l, F_r) - Q(M_l, M_r)|^p )^(1/p)``, with ``Q`` the
    UIQI averaged over ``block_size`` windows, ``F`` the fused estimate and ``M`` the original MS/HS cube
    (each at its own resolution, same window size). Vectorised over all band pairs (see
    :func:`band_pair_q`), so 200+ bands are fine.

    Parameters
    ----------
    estimate
        Fused cube ``(band, Y, X)``.
    ms
        Original low-resolution cube ``(band, y, x)``.
    p
        Exponent (1 in the paper).
    block_size, stride
        UIQI windows (default 32 x 32 non-overlapping blocks; ``stride=1`` slides them).

    Returns
    -------
    float
        In [0, 2]; 0 when the fused bands keep the inter-band relations of the MS (ideal).

    References
    ----------
    Alparone, L., Aiazzi, B., Baronti, S., Garzelli, A., Nencini, F., Selva, M. (2008). Multispectral and
    panchromatic data fusion assessment without reference. Photogramm. Eng. Remote Sens. 74(2), 193-200.
    """
    f = _cube(estimate, "estimate")
    m = _cube(ms, "ms", f.device)
    if f.shape[0] != m.shape[0]:
        raise UsageError(f"estimate has {f.shape[0]} bands but ms has {m.shape[0]}")
    b = f.shape[0]
    if b < 2:
        raise UsageError("D_lambda needs at least two bands")
    qf = band_pair_q(f, block_size, stride)
    qm = band_pair_q(m, block_size, stride)
    diff = np.abs(qf - qm) ** p
    np.fill_diagonal(diff, 0.0)
    return float((diff.sum() / (b * (b - 1))) ** (1.0 / p))


def d_lambda_khan(
    estimate: Any,
    ms: Any,
    ratio: int,
    gnyq: float | np.ndarray = GNYQ_HS,
    block_size: int = 32,
    offset: int | None = None,
) -> float:
    """Khan's spectral distortion: ``1 - Q2n(degrade(F), M)``.

    The fused cube is low-passed with the per-band MTF-matched Gaussian (:mod:`hsikit.metrics.mtf`) and
    decimated by ``ratio`` at ``offset``; Q2n on ``block_size`` blocks is taken against the original MS.

    Parameters
    ----------
    estimate
        Fused cube ``(band, Y, X)``.
    ms
        Original cube ``(band, Y/r, X/r)``.
    ratio
        Integer scale factor ``r``.
    gnyq
        Gain at Nyquist of the sensor MTF, scalar or one per band.
    block_size
        Q2n block side at MS resolution.
    offset
        Decimation phase (default ``r // 2``).

    Returns
    -------
    float
        In [0, 1]; 0 is ideal.

    References
    ----------
    Khan, M. M., Alparone, L., Chanussot, J. (2009). Pansharpening quality assessment using the
    modulation transfer functions of instruments. IEEE TGRS 47(11), 3880-3891.
    """
    r = integer_scale(ratio)
    f = _cube(estimate, "estimate")
    m = _cube(ms, "ms", f.device)
    _check_scales(f, m, r)
    low = _degrade(f, gnyq, r, offset)
    return 1.0 - q2n(low, m, block_size=block_size)


def _pan_lr(pan: torch.Tensor, pan_lr: Any, r: int, gnyq_pan: float, offset: int | None, shape: tuple[int, int]) -> torch.Tensor:
    if pan_lr is None:
        pl = _degrade(pan.unsqueeze(0), gnyq_pan, r, offset)[0]
    else:
        pl = _image(pan_lr, "pan_lr", pan.device)
    if tuple(pl.shape) != tuple(shape):
        raise UsageError(f"pan_lr has shape {tuple(pl.shape)} but ms is {tuple(shape)}")
    return pl


def _q_with_image(cube: torch.Tensor, img: torch.Tensor, bs: int, st: int) -> torch.Tensor:
    b, h, w = cube.shape
    out = torch.empty(b, dtype=torch.float64, device=cube.device)
    for s in band_chunks(b, h * w, CHUNK_ELEMENTS // 16):
        c = cube[s]
        out[s] = _local_q_maps(c, img.expand_as(c), bs, st).mean(dim=(1, 2))
    return out


def d_s(
    estimate: Any,
    ms: Any,
    pan: Any,
    ratio: int,
    pan_lr: Any = None,
    q: float = 1.0,
    block_size: int = 32,
    stride: int | None = None,
    gnyq_pan: float = GNYQ_PAN,
    offset: int | None = None,
) -> float:
    """Spatial distortion index of QNR (Alparone et al. 2008).

    ``D_s = ( (1/B) sum_b |Q(F_b, P) - Q(M_b, P_LR)|^q )^(1/q)``: the UIQI between each fused band and the
    PAN should equal the UIQI between the MS band and the PAN degraded to the MS grid.

    Parameters
    ----------
    estimate
        Fused cube ``(band, Y, X)``.
    ms
        Original cube ``(band, Y/r, X/r)``.
    pan
        PAN image ``(Y, X)``.
    ratio
        Integer scale factor.
    pan_lr
        PAN at MS resolution ``(Y/r, X/r)``; default: the PAN filtered with the MTF-matched Gaussian of gain
        ``gnyq_pan`` and decimated (torchmetrics instead uses a 7x7 box filter and plain resizing).
    q
        Exponent (1 in the paper).
    block_size, stride
        UIQI windows at each resolution (default 32 x 32 non-overlapping blocks).
    gnyq_pan, offset
        MTF gain and decimation phase used to make ``pan_lr``.

    Returns
    -------
    float
        In [0, 2]; 0 is ideal.

    References
    ----------
    Alparone, L. et al. (2008). Photogramm. Eng. Remote Sens. 74(2), 193-200.
    """
    r = integer_scale(ratio)
    f = _cube(estimate, "estimate")
    m = _cube(ms, "ms", f.device)
    p = _image(pan, "pan", f.device)
    _check_scales(f, m, r)
    if tuple(p.shape) != tuple(f.shape[1:]):
        raise UsageError(f"pan has shape {tuple(p.shape)} but estimate is {tuple(f.shape[1:])}")
    pl = _pan_lr(p, pan_lr, r, gnyq_pan, offset, tuple(m.shape[1:]))
    bs_h, st_h = _window(block_size, stride, *p.shape)
    bs_l, st_l = _window(block_size, stride, *pl.shape)
    qh = _q_with_image(f, p, bs_h, st_h)
    ql = _q_with_image(m, pl, bs_l, st_l)
    return float(((qh - ql).abs() ** q).mean() ** (1.0 / q))


def d_s_r(estimate: Any, pan: Any) -> float:
    """``D_S^R = 1 - R^2`` of the least-squares fit of the PAN by a linear combination of the fused bands.

    The fit has no intercept; ``R^2 = 1 - Var(P - P_hat) / Var(P)`` over all pixels, at PAN resolution.

    Parameters
    ----------
    estimate
        Fused cube ``(band, Y, X)``.
    pan
        PAN ``(Y, X)``.

    Returns
    -------
    float
        In [0, 1] for a sensible fit; 0 when the PAN lies exactly in the span of the fused bands.

    References
    ----------
    Alparone, L., Garzelli, A., Vivone, G. (2018). Spatial consistency for full-scale assessment of
    pansharpening. Proc. IGARSS 2018, 5132-5134.
    """
    f = _cube(estimate, "estimate")
    p = _image(pan, "pan", f.device)
    if tuple(p.shape) != tuple(f.shape[1:]):
        raise UsageError(f"pan has shape {tuple(p.shape)} but estimate is {tuple(f.shape[1:])}")
    b = f.shape[0]
    x = f.reshape(b, -1)
    y = p.reshape(-1).to(torch.float64)
    gram = torch.zeros(b, b, dtype=torch.float64, device=f.device)
    xty = torch.zeros(b, dtype=torch.float64, device=f.device)
    step = max(1, CHUNK_ELEMENTS // (2 * b))
    for a in range(0, y.numel(), step):
        xc = x[:, a : a + step].to(torch.float64)
        gram += xc @ xc.T
        xty += xc @ y[a : a + step]
    coef = torch.linalg.pinv(gram, hermitian=True) @ xty
    resid = torch.empty_like(y)
    for a in range(0, y.numel(), step):
        resid[a : a + step] = y[a : a + step] - coef @ x[:, a : a + step].to(torch.float64)
    vp = float(y.var(unbiased=False))
    if vp == 0:
        raise UsageError("pan is constant: D_S^R is undefined")
    return float(resid.var(unbiased=False)) / vp


def d_rho(estimate: Any, pan: Any, ratio: int) -> float:
    """``D_rho``: mean over bands and window positions of ``1 - rho``, the local correlation of band and PAN.

    ``rho`` is the Pearson correlation of a fused band and the PAN on every ``r`` x ``r`` sliding window
    (valid positions, stride 1). Flat windows: ``rho = 1`` when both are flat, 0 when only one is.

    Parameters
    ----------
    estimate
        Fused cube ``(band, Y, X)``.
    pan
        PAN ``(Y, X)``.
    ratio
        Scale factor ``r`` (the window side; at least 2).

    Returns
    -------
    float
        In [0, 2]; 0 is ideal.

    References
    ----------
    Guarino, G., Ciotola, M., Vivone, G., Poggi, G., Scarpa, G. (2025). Band-wise hyperspectral image
    pansharpening using CNN model propagation (rho-PNN). IEEE TGRS. arXiv:2505.16658.
    """
    r = integer_scale(ratio)
    if r < 2:
        raise UsageError("D_rho needs ratio >= 2 (the window side)")
    f = _cube(estimate, "estimate")
    p = _image(pan, "pan", f.device)
    if tuple(p.shape) != tuple(f.shape[1:]):
        raise UsageError(f"pan has shape {tuple(p.shape)} but estimate is {tuple(f.shape[1:])}")
    b, h, w = f.shape
    pc = p.to(torch.float64) - p.to(torch.float64).mean()
    n = float(r * r)
    mp = box_sum(pc, r) / n
    vp = (box_sum(pc * pc, r) / n - mp * mp).clamp_min(0)
    total = 0.0
    for s in band_chunks(b, h * w, CHUNK_ELEMENTS // 16):
        x = f[s].to(torch.float64)
        x = x - x.mean(dim=(1, 2), keepdim=True)
        mx = box_sum(x, r) / n
        vx = (box_sum(x * x, r) / n - mx * mx).clamp_min(0)
        cxy = box_sum(x * pc, r) / n - mx * mp
        den = torch.sqrt(vx * vp)
        rho = torch.where(den > 0, cxy / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))
        rho = torch.where((vx == 0) & (vp == 0), torch.ones_like(rho), rho).clamp(-1, 1)
        total += float((1 - rho).mean(dim=(1, 2)).sum())
    return total / b


def qnr(
    estimate: Any,
    ms: Any,
    pan: Any,
    ratio: int,
    pan_lr: Any = None,
    alpha: float = 1.0,
    beta: float = 1.0,
    block_size: int = 32,
    stride: int | None = None,
) -> dict[str, float]:
    """Quality with no reference: ``QNR = (1 - D_lambda)^alpha (1 - D_s)^beta``.

    Parameters
    ----------
    estimate, ms, pan, ratio, pan_lr, block_size, stride
        As in :func:`d_lambda` and :func:`d_s`.
    alpha, beta
        Exponents (1 in the paper).

    Returns
    -------
    dict
        ``{"d_lambda": ..., "d_s": ..., "qnr": ...}``; QNR in [0, 1], 1 is ideal.

    References
    ----------
    Alparone, L. et al. (2008). Photogramm. Eng. Remote Sens. 74(2), 193-200.
    """
    dl = d_lambda(estimate, ms, block_size=block_size, stride=stride)
    ds = d_s(estimate, ms, pan, ratio, pan_lr=pan_lr, block_size=block_size, stride=stride)
    return {"d_lambda": dl, "d_s": ds, "qnr": (1 - dl) ** alpha * (1 - ds) ** beta}


def hqnr(
    estimate: Any,
    ms: Any,
    pan: Any,
    ratio: int,
    gnyq: float | np.ndarray = GNYQ_HS,
    pan_lr: Any = None,
    block_size: int = 32,
    stride: int | None = None,
) -> dict[str, float]:
    """Hybrid QNR: ``HQNR = (1 - D_lambda^K)(1 - D_s)`` (Khan's spectral and QNR's spatial distortion).

    Note that the hyperspectral pansharpening toolbox of Ciotola et al. labels
    ``(1 - D_lambda^K)(1 - D_S^R)`` as "QNR"; compute that from :func:`d_lambda_khan` and :func:`d_s_r`.

    Returns
    -------
    dict
        ``{"d_lambda_khan": ..., "d_s": ..., "hqnr": ...}``.

    References
    ----------
    Aiazzi, B., Alparone, L., Baronti, S., Carla, R., Garzelli, A., Santurri, L. (2014). Full-scale
    assessment of pansharpening methods and data products. Proc. SPIE 9244, 924402.
    """
    dk = d_lambda_khan(estimate, ms, ratio, gnyq=gnyq, block_size=block_size)
    ds = d_s(estimate, ms, pan, ratio, pan_lr=pan_lr, block_size=block_size, stride=stride)
    return {"d_lambda_khan": dk, "d_s": ds, "hqnr": (1 - dk) * (1 - ds)}


__all__ = ["band_pair_q", "d_lambda", "d_lambda_khan", "d_rho", "d_s", "d_s_r", "hqnr", "qnr"]
