"""RRLbS: robust representation (l2,1 over channels) and learning-based sparsity (Zhu et al., 2014).

Blind unmixing of ``X`` ``(L, N)`` into endmembers ``M`` ``(L, K) >= 0`` and abundances ``A`` ``(K, N)``
on the simplex, jointly with a guidance map ``h`` ``(N,)`` in ``[0, h_max]`` that sets each pixel's
sparsity exponent ``p_n = 1 - h_n``:

.. math::

    O(M, A, h) = \\sum_l \\|x^l - m^l A\\|_2
               + \\lambda \\sum_n \\sum_k (a_{kn} + \\epsilon)^{1 - h_n}
               + \\frac{\\gamma}{2} \\sum_n (h_{max} - h_n)^2
               + \\frac{\\beta}{2} \\sum_{n \\sim m} w_{nm} (h_n - h_m)^2

``x^l`` is channel ``l`` across all pixels (a row), so a badly degraded channel adds its residual
*norm*, not its squared norm, and cannot dominate. On the simplex ``sum_k (a_k + eps)^p`` is smallest
for a one-hot ``a``, and it grows with ``h`` the more mixed the pixel is; the ``gamma`` prior asks for
``h`` near ``h_max`` (strong sparsity) and the data decide where a pixel is too mixed to afford it;
the ``beta`` term smooths ``h`` over the 4-neighbour pixel graph with heat-kernel weights on the
spectral angle. The exact algebra of the paper's guidance-map term could not be checked (only its
abstract was reachable); this is hsikit's formulation of the two ideas, documented in ``docs/unmix.md``.

Alternating minimisation, each step a majorise-minimise (MM) step, so ``O`` never increases:

1. ``A``: the l2,1 term is majorised by ``sum_l d_l ||r_l||^2 + const`` with
   ``d_l = 1 / (2 ||r_l||)`` (the current channel residual norms) and the concave ``(a + eps)^p`` by
   its tangent; the surrogate is a weighted FCLS with a linear term, solved exactly for all pixels at
   once by :func:`hsikit.unmix.abundances.batched_qp`.
2. ``M``: the same channel weights cancel row by row, each channel ``m^l`` is an NNLS problem with the
   Gram matrix ``A A^T``, all channels at once.
3. ``h``: for fixed ``A`` the objective is convex in ``h``; pixels are updated in a red-black
   (checkerboard) order with projected Newton steps on ``[0, h_max]``.

Stops when the relative decrease of ``O`` falls below ``tol`` (or after ``max_iter`` iterations).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from hsikit.errors import UsageError
from hsikit.unmix.abundances import as_tensor, batched_qp, fcls
from hsikit.unmix.endmembers import check_k, vca


@dataclass
class RRLbSResult:
    """Result of :func:`rrlbs`.

    Attributes
    ----------
    endmembers
        ``(L, K)``.
    abundances
        ``(K, N)`` on the simplex.
    guidance
        ``(N,)`` learned guidance map ``h`` (sparsity exponent ``1 - h``).
    objective
        Objective value after each iteration (non-increasing).
    converged
        Whether the relative decrease fell below ``tol`` before ``max_iter``.
    """

    endmembers: torch.Tensor
    abundances: torch.Tensor
    guidance: torch.Tensor
    objective: list[float]
    converged: bool

    @property
    def n_iter(self) -> int:
        return len(self.objective) - 1


def _grid_edges(shape: tuple[int, int] | None, mask: torch.Tensor | None, n: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Index pairs (i, j) of 4-neighbour valid pixels, as positions in the list of valid pixels."""
    if shape is None:
        empty = torch.zeros(0, dtype=torch.long, device=device)
        return empty, empty
    H, W = shape
    full = torch.arange(H * W, device=device).reshape(H, W)
    pos = torch.full((H * W,), -1, dtype=torch.long, device=device)
    valid = torch.ones(H * W, dtype=torch.bool, device=device) if mask is None else mask.to(device)
    pos[valid] = torch.arange(int(valid.sum()), device=device)
    if int(valid.sum()) != n:
        raise UsageError(f"the grid {H}x{W} with its mask has {int(valid.sum())} pixels but the data have {n}")
    a = torch.cat([full[:, :-1].reshape(-1), full[:-1, :].reshape(-1)])
    b = torch.cat([full[:, 1:].reshape(-1), full[1:, :].reshape(-1)])
    keep = valid[a] & valid[b]
    return pos[a[keep]], pos[b[keep]]


def _colour(shape: tuple[int, int] | None, mask: torch.Tensor | None, n: int, device: Any) -> torch.Tensor:
    """Checkerboard colour (0/1) of each valid pixel (all 0 without a grid)."""
    if shape is None:
        return torch.zeros(n, dtype=torch.long, device=device)
    H, W = shape
    c = ((torch.arange(H, device=device)[:, None] + torch.arange(W, device=device)[None, :]) % 2).reshape(-1)
    return c if mask is None else c[mask.to(device)]


class _Problem:
    """Objective pieces shared by the steps."""

    def __init__(self, X: torch.Tensor, lam: float, gamma: float, beta: float, h_max: float, eps: float,
                 edges: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.X, self.lam, self.gamma, self.beta, self.h_max, self.eps = X, lam, gamma, beta, h_max, eps
        self.ei, self.ej = edges
        if self.ei.numel():
            xi, xj = X[:, self.ei], X[:, self.ej]
            cos = (xi * xj).sum(0) / (torch.linalg.norm(xi, dim=0) * torch.linalg.norm(xj, dim=0)).clamp_min(1e-300)
            ang = torch.arccos(cos.clamp(-1, 1))
            sigma = float(ang.median()) or 1.0
            self.w = torch.exp(-((ang / sigma) ** 2))
        else:
            self.w = torch.zeros(0, dtype=X.dtype, device=X.device)
        self.row_floor = 1e-12 * float(torch.linalg.norm(X)) + 1e-300

    def row_norms(self, M: torch.Tensor, A: torch.Tensor) -> torch.Tensor:
        return torch.linalg.norm(self.X - M @ A, dim=1)

    def value(self, M: torch.Tensor, A: torch.Tensor, h: torch.Tensor) -> float:
        data = float(self.row_norms(M, A).sum())
        sparse = float(((A + self.eps) ** (1 - h)[None, :]).sum())
        prior = 0.5 * float(((self.h_max - h) ** 2).sum())
        smooth = 0.5 * float((self.w * (h[self.ei] - h[self.ej]) ** 2).sum()) if self.w.numel() else 0.0
        return data + self.lam * sparse + self.gamma * prior + self.beta * smooth


def _update_h(prob: _Problem, A: torch.Tensor, h: torch.Tensor, colour: torch.Tensor, newton: int = 8) -> torch.Tensor:
    """Red-black projected Newton on the convex h-subproblem (neighbours of the other colour fixed)."""
    la = torch.log(A + prob.eps)  # (K, N), <= log(1 + eps)
    n = h.numel()
    deg = torch.zeros(n, dtype=h.dtype, device=h.device)
    if prob.w.numel():
        deg.index_add_(0, prob.ei, prob.w)
        deg.index_add_(0, prob.ej, prob.w)
    h = h.clone()
    for c in (0, 1):
        sel = colour == c
        if not bool(sel.any()):
            continue
        # weighted sum of the neighbours' h (the other colour, fixed during this half-sweep)
        nb = torch.zeros(n, dtype=h.dtype, device=h.device)
        if prob.w.numel():
            nb.index_add_(0, prob.ei, prob.w * h[prob.ej])
            nb.index_add_(0, prob.ej, prob.w * h[prob.ei])
        hs, las, degs, nbs = h[sel], la[:, sel], deg[sel], nb[sel]
        for _ in range(newton):
            t = torch.exp((1 - hs)[None, :] * las)  # (a + eps)^(1 - h)
            g = -prob.lam * (t * las).sum(0) + prob.gamma * (hs - prob.h_max) + prob.beta * (degs * hs - nbs)
            H2 = prob.lam * (t * las * las).sum(0) + prob.gamma + prob.beta * degs
            hs = (hs - g / H2).clamp(0.0, prob.h_max)
        h[sel] = hs
    return h


def rrlbs(
    X: Any,
    k: int,
    *,
    shape: tuple[int, int] | None = None,
    mask: Any = None,
    lam: float = 3.0,
    gamma: float = 16.0,
    beta: float = 1.0,
    h_max: float = 0.9,
    eps: float = 1e-3,
    max_iter: int = 200,
    tol: float = 1e-5,
    seed: int | None = 0,
    init: tuple[Any, Any] | None = None,
    normalize: bool = True,
) -> RRLbSResult:
    """Blind unmixing by RRLbS (see the module docstring for the objective and the algorithm).

    Parameters
    ----------
    X
        ``(L, N)`` non-negative spectra.
    k
        Number of endmembers.
    shape
        ``(H, W)`` image grid of the pixels (row-major); enables the smoothness term of the guidance map.
    mask
        ``(H*W,)`` bool, which grid pixels are the ``N`` columns of ``X`` (default: all).
    lam
        Sparsity weight, relative: the effective ``lambda`` is ``lam`` times the initial l2,1 data term
        per pixel (so ``lam`` does not depend on the data unit or size).
    gamma, beta
        Weights of the guidance prior and of its smoothness, relative to ``lambda``.
    h_max
        Largest guidance value (smallest exponent ``p = 1 - h_max``), ``0 <= h_max < 1``.
    eps
        Offset inside the ``l_p`` term (keeps its derivative finite at zero abundance).
    max_iter, tol
        Iteration cap and relative-decrease convergence test.
    seed
        Seed of the VCA initialisation.
    init
        Optional ``(M0 (L, K), A0 (K, N))`` instead of VCA + FCLS (of the normalised data when
        ``normalize``).
    normalize
        Fit the model to unit-norm pixels ``x_n / ||x_n||`` (HySUPP's optional pre-processing), so
        dark pixels (water, shade) weigh as much as bright ones and illumination changes do not act
        as extra endmembers. The returned endmembers are then rescaled to data units by a
        non-negative fit of the pixel norms ``||x_n|| ~ sum_k s_k a_kn``, and the returned abundances
        are those of the normalised problem (on the simplex).

    Returns
    -------
    RRLbSResult

    References
    ----------
    Zhu, F., Wang, Y., Fan, B., Meng, G., Pan, C. (2014). Effective spectral unmixing via robust
    representation and learning-based sparsity. arXiv:1409.0685.
    """
    X = as_tensor(X)
    if X.ndim != 2:
        raise UsageError(f"spectra must be (L, N), got shape {tuple(X.shape)}")
    check_k(X, k)
    if not 0 <= h_max < 1:
        raise UsageError(f"h_max must be in [0, 1), got {h_max}")
    if lam < 0 or gamma < 0 or beta < 0 or eps <= 0:
        raise UsageError("lam, gamma and beta must be >= 0 and eps > 0")
    L, N = X.shape
    norms = torch.linalg.norm(X, dim=0)
    if normalize:
        X = X / norms.clamp_min(1e-12 * float(norms.max()) + 1e-300)[None, :]
    m = None if mask is None else torch.as_tensor(np.asarray(mask), dtype=torch.bool).reshape(-1)
    edges = _grid_edges(shape, m, N, X.device)
    colour = _colour(shape, m, N, X.device)
    if init is None:
        M = vca(X, k, seed=seed).endmembers.clamp_min(0)
        A = fcls(M, X)
    else:
        M = as_tensor(init[0], device=X.device).clamp_min(0)
        A = as_tensor(init[1], device=X.device)
        if M.shape != (L, k) or A.shape != (k, N):
            raise UsageError(f"init must be ((L, K), (K, N)) = (({L}, {k}), ({k}, {N})); got {tuple(M.shape)}, {tuple(A.shape)}")
    data0 = float(torch.linalg.norm(X - M @ A, dim=1).sum())
    lam_eff = lam * max(data0, 1e-12) / N
    prob = _Problem(X, lam_eff, gamma * lam_eff, beta * lam_eff, h_max, eps, edges)
    h = torch.full((N,), h_max / 2, dtype=X.dtype, device=X.device)
    h = _update_h(prob, A, h, colour)
    history = [prob.value(M, A, h)]
    converged = False
    for _ in range(max_iter):
        # A-step: weighted FCLS with the tangent of the l_p term as a linear cost
        d = 0.5 / prob.row_norms(M, A).clamp_min(prob.row_floor)
        G = M.T @ (d[:, None] * M)
        c = lam_eff * (1 - h)[None, :] * (A + eps) ** (-h)[None, :]
        A = batched_qp(G, M.T @ (d[:, None] * X) - 0.5 * c, sum_to_one=True, start=A)
        # M-step: per-channel NNLS (the channel weights cancel row by row)
        AAt = A @ A.T
        AAt = AAt + 1e-12 * float(torch.diagonal(AAt).mean()) * torch.eye(k, dtype=X.dtype, device=X.device)
        M = batched_qp(AAt, A @ X.T, sum_to_one=False, start=M.T).T.contiguous()
        # h-step
        h = _update_h(prob, A, h, colour)
        history.append(prob.value(M, A, h))
        if abs(history[-2] - history[-1]) <= tol * abs(history[-2]):
            converged = True
            break
    if normalize:
        # endmember scales in data units: ||x_n|| ~ sum_k s_k a_kn, s >= 0 (one small NNLS)
        G = A @ A.T + 1e-12 * float(torch.diagonal(A @ A.T).mean()) * torch.eye(k, dtype=X.dtype, device=X.device)
        s = batched_qp(G, (A @ norms)[:, None], sum_to_one=False)[:, 0]
        M = M * torch.where(s > 0, s, norms.mean())[None, :]
    return RRLbSResult(M, A, h, history, converged)
