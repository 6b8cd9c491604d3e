"""Endmember extraction from the pixels themselves (pure-pixel methods), batched over all pixels.

Every extractor takes spectra ``Y`` ``(L, N)`` and the number of endmembers ``K`` and returns an
:class:`Extraction`: the endmembers ``(L, K)`` (columns of ``Y``) and their pixel indices. The random
parts (VCA's directions, N-FINDR's initial set, SiVM's first reference pixel) come from ``seed``, so a
seed gives the same result on every run. Each step scores every pixel with one matrix product.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from hsikit.errors import UsageError
from hsikit.unmix.abundances import as_tensor


@dataclass(frozen=True)
class Extraction:
    """Extracted endmembers.

    Attributes
    ----------
    endmembers
        ``(L, K)`` float64 tensor, one spectrum per column.
    indices
        ``(K,)`` pixel indices (columns of ``Y``) the endmembers were taken from.
    """

    endmembers: torch.Tensor
    indices: torch.Tensor


def check_k(Y: Any, k: int) -> None:
    """Raise :class:`UsageError` unless ``1 <= k <= min(L, N)`` for spectra ``(L, N)`` (or their shape)."""
    L, N = tuple(Y) if isinstance(Y, tuple) else tuple(Y.shape)
    if not isinstance(k, int) or k < 1:
        raise UsageError(f"the number of endmembers must be a positive integer, got {k!r}")
    if k > L:
        raise UsageError(f"{k} endmembers requested but the scene has only {L} bands")
    if k > N:
        raise UsageError(f"{k} endmembers requested but the scene has only {N} valid pixels")


def _prep(Y: Any, k: int) -> torch.Tensor:
    Y = as_tensor(Y)
    if Y.ndim != 2:
        raise UsageError(f"spectra must be (L, N), got shape {tuple(Y.shape)}")
    check_k(Y, k)
    return Y


def _generator(seed: int | None, device: torch.device) -> torch.Generator:
    g = torch.Generator(device=device)
    g.manual_seed(0 if seed is None else int(seed))
    return g


def _top_subspace(C: torch.Tensor, d: int) -> torch.Tensor:
    """Leading ``d`` eigenvectors (columns) of a symmetric matrix."""
    _, vecs = torch.linalg.eigh(C)
    return vecs[:, -d:].flip(-1)


def vca(Y: Any, k: int, *, seed: int | None = 0, snr: float | None = None) -> Extraction:
    """Vertex component analysis.

    Projects the data on a ``k``-dimensional subspace (projective projection at high SNR, a
    ``(k-1)``-dimensional affine projection plus a constant coordinate at low SNR; the threshold
    ``15 + 10 log10 k`` dB as in the paper), then ``k`` times draws a random direction orthogonal to
    the endmembers found so far and takes the pixel with the largest absolute projection.

    Parameters
    ----------
    Y
        ``(L, N)`` spectra.
    k
        Number of endmembers.
    seed
        Seed of the random directions.
    snr
        Signal-to-noise ratio in dB (estimated from the data when None).

    References
    ----------
    Nascimento, J. M. P., Bioucas-Dias, J. M. (2005). Vertex component analysis: a fast algorithm to
    unmix hyperspectral data. IEEE TGRS 43(4), 898-910.
    """
    Y = _prep(Y, k)
    L, N = Y.shape
    mean = Y.mean(1, keepdim=True)
    Yo = Y - mean
    Ud = _top_subspace(Yo @ Yo.T / N, k)
    xp = Ud.T @ Yo
    if snr is None:
        p_y = float((Y * Y).sum() / N)
        p_x = float((xp * xp).sum() / N + (mean * mean).sum())
        denom = p_y - p_x
        snr = 10 * torch.log10(torch.tensor(max(p_x - k / L * p_y, 1e-30) / max(denom, 1e-30))).item()
    threshold = 15 + 10 * torch.log10(torch.tensor(float(k))).item()
    if snr < threshold:
        d = k - 1
        x = xp[:d]
        c = float(torch.linalg.norm(x, dim=0).max()) if d > 0 else 1.0
        proj = torch.cat([x, torch.full((1, N), c, dtype=Y.dtype, device=Y.device)], 0)
    else:
        Ud = _top_subspace(Y @ Y.T / N, k)
        x = Ud.T @ Y
        u = x.mean(1, keepdim=True)
        denom = (u * x).sum(0, keepdim=True)
        proj = x / torch.where(denom.abs() > 0, denom, torch.ones_like(denom))
    g = _generator(seed, torch.device("cpu"))
    A = torch.zeros((k, k), dtype=Y.dtype, device=Y.device)
    A[-1, 0] = 1.0
    idx = torch.zeros(k, dtype=torch.long, device=Y.device)
    for i in range(k):
        w = torch.randn(k, 1, generator=g, dtype=Y.dtype).to(Y.device)
        f = w - A @ (torch.linalg.pinv(A) @ w)
        f = f / torch.linalg.norm(f).clamp_min(1e-300)
        v = (f.T @ proj).abs().squeeze(0)
        idx[i] = torch.argmax(v)
        A[:, i] = proj[:, idx[i]]
    return Extraction(Y[:, idx].clone(), idx)


def atgp(Y: Any, k: int, *, seed: int | None = None) -> Extraction:
    """Automatic target generation process: the largest-norm pixel, then repeatedly the pixel with the
    largest energy in the orthogonal complement of the endmembers found so far (deterministic;
    ``seed`` is accepted for a uniform signature and ignored).

    References
    ----------
    Ren, H., Chang, C.-I. (2003). Automatic spectral target recognition in hyperspectral imagery.
    IEEE TAES 39(4), 1232-1249.
    """
    Y = _prep(Y, k)
    idx = [int(torch.argmax((Y * Y).sum(0)))]
    R = Y.clone()
    for _ in range(1, k):
        Q, _ = torch.linalg.qr(Y[:, idx])
        R = Y - Q @ (Q.T @ Y)
        energy = (R * R).sum(0)
        energy[idx] = -1.0
        idx.append(int(torch.argmax(energy)))
    t = torch.tensor(idx, device=Y.device)
    return Extraction(Y[:, t].clone(), t)


def sivm(Y: Any, k: int, *, seed: int | None = 0) -> Extraction:
    """Simplex volume maximisation, greedy: each new endmember is the pixel farthest from the affine
    hull of those already chosen, which multiplies the simplex volume the most (volume = previous
    volume x that distance / dimension).

    The first endmember is the pixel farthest from a random pixel (from ``seed``); the second the
    pixel farthest from the first.

    References
    ----------
    Thurau, C., Kersting, K., Bauckhage, C. (2010). Yes we can: simplex volume maximization for
    descriptive web-scale matrix factorization. CIKM 2010. (HySUPP's SiVM extractor.)
    """
    Y = _prep(Y, k)
    N = Y.shape[1]
    g = _generator(seed, torch.device("cpu"))
    start = int(torch.randint(N, (1,), generator=g))
    d = ((Y - Y[:, start : start + 1]) ** 2).sum(0)
    idx = [int(torch.argmax(d))]
    for _ in range(1, k):
        base = Y[:, idx[0] : idx[0] + 1]
        R = Y - base
        if len(idx) > 1:
            Q, _ = torch.linalg.qr(Y[:, idx[1:]] - base)
            R = R - Q @ (Q.T @ R)
        dist = (R * R).sum(0)
        dist[idx] = -1.0
        idx.append(int(torch.argmax(dist)))
    t = torch.tensor(idx, device=Y.device)
    return Extraction(Y[:, t].clone(), t)


def nfindr(Y: Any, k: int, *, seed: int | None = 0, init: str = "atgp", max_sweeps: int | None = None) -> Extraction:
    """N-FINDR: the ``k`` pixels spanning the simplex of largest volume in the ``(k-1)``-dimensional
    principal subspace.

    Sweeps over the vertex slots; for slot ``j`` the volume obtained by putting *every* pixel there is
    computed at once from the current vertex matrix ``V = [1; Z_S]`` as ``det(V) * (V^-1 [1; z])_j``
    (Cramer), and the best pixel replaces the vertex when it enlarges the simplex. Stops after a sweep
    without change (at most ``3 k`` sweeps, as pysptools).

    Parameters
    ----------
    init
        ``"atgp"`` (the ATGP endmembers) or ``"random"`` (distinct random pixels from ``seed``).

    References
    ----------
    Winter, M. E. (1999). N-FINDR: an algorithm for fast autonomous spectral end-member determination
    in hyperspectral data. Proc. SPIE 3753, 266-275.
    """
    Y = _prep(Y, k)
    L, N = Y.shape
    Yo = Y - Y.mean(1, keepdim=True)
    if k > 1:
        Z = _top_subspace(Yo @ Yo.T / N, k - 1).T @ Yo
    else:
        Z = Yo[:0]
    Zt = torch.cat([torch.ones((1, N), dtype=Y.dtype, device=Y.device), Z], 0)  # (k, N)
    if init == "atgp":
        idx = atgp(Y, k).indices.clone()
    elif init == "random":
        g = _generator(seed, torch.device("cpu"))
        idx = torch.randperm(N, generator=g)[:k].to(Y.device)
    else:
        raise UsageError(f"N-FINDR init must be 'atgp' or 'random', got {init!r}")
    sweeps = 3 * k if max_sweeps is None else max_sweeps
    for _ in range(sweeps):
        changed = False
        for j in range(k):
            V = Zt[:, idx]
            vol = torch.linalg.det(V).abs()
            try:
                coef = torch.linalg.solve(V, Zt)[j]
            except RuntimeError:  # degenerate start (collinear vertices): use a pseudo-inverse
                coef = (torch.linalg.pinv(V) @ Zt)[j]
            score = coef.abs() * vol if vol > 0 else coef.abs()
            best = int(torch.argmax(score))
            if best != int(idx[j]) and (vol == 0 or float(score[best]) > float(vol) * (1 + 1e-9)):
                idx[j] = best
                changed = True
        if not changed:
            break
    return Extraction(Y[:, idx].clone(), idx)


EXTRACTORS = {"vca": vca, "nfindr": nfindr, "atgp": atgp, "sivm": sivm}


def extract(Y: Any, k: int, method: str = "vca", *, seed: int | None = 0) -> Extraction:
    """Run the extractor ``method`` (one of :data:`EXTRACTORS`) on spectra ``(L, N)``."""
    fn = EXTRACTORS.get(method)
    if fn is None:
        raise UsageError(f"unknown endmember extractor {method!r} (use one of {', '.join(EXTRACTORS)})")
    return fn(Y, k, seed=seed)
