"""Abundance estimation for the linear mixing model ``Y = E A + N``, batched over all pixels.

Layouts: spectra ``Y`` are ``(L, N)`` (one column per pixel), endmembers ``E`` are ``(L, K)``, abundances
``A`` are ``(K, N)``. Inputs may be numpy arrays or torch tensors (CPU or CUDA); results are torch tensors
on the input's device, float64 unless ``dtype`` says otherwise.

* :func:`ucls`: unconstrained least squares.
* :func:`nnls` and :func:`fcls`: non-negative (and sum-to-one) least squares by one primal active-set
  method run on every pixel at once; each iteration is one batched ``(K+1) x (K+1)`` solve, pixels that
  have converged drop out. The result is the exact optimum (up to ``tol``), not an approximation such as
  the weighted sum-to-one row used by per-pixel codes.
* :func:`fcls_scipy`: the per-pixel reference the toolkits use (scipy NNLS with a weighted sum-to-one row);
  kept for the benchmark and the tests.
* :func:`sunsal`: sparse regression on a library (ADMM, l1 + positivity, optional sum-to-one).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from hsikit.errors import UsageError
from hsikit.unmix import qp_cpu

#: Pixels per active-set batch (bounds memory at about CHUNK * K^2 values).
CHUNK = 1 << 16
#: Up to this many endmembers, free sets are found through a 2^K lookup table instead of a sort.
LUT_BITS = 16


def as_tensor(x: Any, dtype: torch.dtype = torch.float64, device: Any = None) -> torch.Tensor:
    """numpy / torch / xarray -> torch tensor of ``dtype`` (on ``device`` or the input's device)."""
    if hasattr(x, "dims") and hasattr(x, "data"):
        x = x.data
    t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    return t.to(dtype=dtype, device=device if device is not None else t.device)


def _check(E: torch.Tensor | np.ndarray, Y: torch.Tensor | np.ndarray) -> None:
    if E.ndim != 2 or Y.ndim != 2:
        raise UsageError(f"endmembers must be (L, K) and spectra (L, N); got {tuple(E.shape)} and {tuple(Y.shape)}")
    if E.shape[0] != Y.shape[0]:
        raise UsageError(f"endmembers have {E.shape[0]} bands but the spectra have {Y.shape[0]}")
    if not bool(np.isfinite(E).all() if isinstance(E, np.ndarray) else torch.isfinite(E).all()):
        raise UsageError("endmembers contain NaN or infinite values")


def ucls(E: Any, Y: Any, *, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Unconstrained least squares ``argmin_A ||Y - E A||_F``.

    Parameters
    ----------
    E
        ``(L, K)`` endmembers.
    Y
        ``(L, N)`` spectra.

    Returns
    -------
    torch.Tensor
        ``(K, N)`` abundances (may be negative, need not sum to one).
    """
    Y = as_tensor(Y, dtype)
    E = as_tensor(E, dtype, Y.device)
    _check(E, Y)
    return torch.linalg.lstsq(E, Y).solution


class _SubsetSolver:
    """Equality-constrained least squares on each pixel's free set, grouped by free set.

    For a free set ``P`` the solution of ``min_z 1/2 z^T G z - b^T z`` with ``z_i = 0`` off ``P`` (and
    ``sum z = 1``) is affine in ``b``: ``z = W_P b + c_P`` and the multiplier of the sum constraint is
    ``mu = u_P . b - v_P`` (with ``H = G_PP^-1``: ``W = H - H 1 1^T H / (1^T H 1)``, ``c = H 1 / (1^T H 1)``,
    ``u = H 1 / (1^T H 1)``, ``v = 1 / (1^T H 1)``). The matrices are computed once per free set and
    cached; each iteration then costs one small matrix product per distinct free set (the combinatorial
    idea of Van Benthem & Keenan, 2004), instead of one factorisation per pixel.
    """

    def __init__(self, G: torch.Tensor, sum_to_one: bool) -> None:
        self.G, self.sum_to_one = G, sum_to_one
        K = G.shape[0]
        self.K = K
        self.bits = (2 ** torch.arange(K, device=G.device)).to(torch.int64)
        self.slot: dict[int, int] = {}
        self.lut: torch.Tensor | None = None
        z = G.new_zeros
        self.W, self.c, self.u, self.v = z((0, K, K)), z((0, K)), z((0, K)), z((0,))

    def _add(self, codes: list[int]) -> None:
        """Factor the free sets ``codes`` (bit k set = endmember k free), all in one batched inverse."""
        ct = torch.tensor(codes, dtype=torch.int64, device=self.G.device)
        W, c, v = qp_cpu.free_set_operators(self.G, ct, self.sum_to_one)
        base = self.W.shape[0]
        self.slot.update({code: base + i for i, code in enumerate(codes)})
        self.W = torch.cat([self.W, W])
        self.c = torch.cat([self.c, c])
        self.u = torch.cat([self.u, c])
        self.v = torch.cat([self.v, v])

    def __call__(self, b: torch.Tensor, passive: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``b``, ``passive`` ``(n, K)`` -> ``z`` ``(n, K)`` (zero off the free set) and ``mu`` ``(n,)``."""
        codes = (passive.to(torch.int64) * self.bits).sum(1)
        if self.K <= LUT_BITS:  # free sets index a lookup table: no sort
            if self.lut is None:
                self.lut = torch.full((1 << self.K,), -1, dtype=torch.long, device=b.device)
            present = torch.bincount(codes, minlength=1 << self.K).nonzero().squeeze(1)
            ul = present.tolist()
            new = [c for c in ul if c not in self.slot]
            if new:
                self._add(new)
                self.lut[torch.tensor(new, device=b.device)] = torch.tensor([self.slot[c] for c in new], device=b.device)
            idx = None if len(ul) == 1 else self.lut[codes]
            k0 = self.slot[ul[0]]
        else:
            uniq, inv = torch.unique(codes, return_inverse=True)
            ul = uniq.tolist()
            new = [c for c in ul if c not in self.slot]
            if new:
                self._add(new)
            slots = torch.tensor([self.slot[c] for c in ul], dtype=torch.long, device=b.device)
            idx = None if len(ul) == 1 else slots[inv]
            k0 = self.slot[ul[0]]
        if idx is None:
            z = b @ self.W[k0].T + self.c[k0]
            mu = b @ self.u[k0] - self.v[k0] if self.sum_to_one else b.new_zeros(b.shape[0])
            return z, mu
        z = torch.bmm(self.W[idx], b.unsqueeze(-1)).squeeze(-1) + self.c[idx]
        mu = (self.u[idx] * b).sum(1) - self.v[idx] if self.sum_to_one else b.new_zeros(b.shape[0])
        return z, mu


def _active_set(G: torch.Tensor, B: torch.Tensor, sum_to_one: bool, tol: float, max_iter: int,
                start: torch.Tensor | None = None) -> tuple[torch.Tensor, int]:
    """Primal active-set QP for every pixel at once: ``min 1/2 a^T G a - b^T a, a >= 0 (, sum a = 1)``.

    ``G`` ``(K, K)`` and ``B`` ``(n, K)`` are pre-scaled so that ``tol`` is relative; ``start`` ``(n, K)``
    is an optional feasible warm start (its positive entries form the initial free set). Returns
    ``A (n, K)`` and the number of pixels that hit ``max_iter``.
    """
    n, K = B.shape
    if start is not None:
        a = start.clone()
        P = a > 0
    elif sum_to_one:
        a = torch.full((n, K), 1.0 / K, dtype=G.dtype, device=G.device)
        P = torch.ones((n, K), dtype=torch.bool, device=G.device)
    else:
        a = torch.zeros((n, K), dtype=G.dtype, device=G.device)
        P = torch.zeros((n, K), dtype=torch.bool, device=G.device)
    live = torch.arange(n, device=G.device)
    inf = torch.tensor(math.inf, dtype=G.dtype, device=G.device)
    solve = _SubsetSolver(G, sum_to_one)
    for _ in range(max_iter):
        if live.numel() == 0:
            break
        full = live.numel() == n
        Pi, ai, bi = (P, a, B) if full else (P[live], a[live], B[live])
        z, mu = solve(bi, Pi)
        bad = Pi & (z <= 0)
        step = bad.any(1)
        # infeasible: move from a towards z until the first passive variable hits zero, drop it
        ratio = torch.where(bad, ai / (ai - z).clamp_min(torch.finfo(G.dtype).tiny), inf)
        alpha = ratio.min(1).values.clamp(0.0, 1.0)
        moved = ai + alpha[:, None] * (z - ai)
        hit = torch.zeros_like(Pi)
        hit[torch.arange(Pi.shape[0], device=G.device), ratio.argmin(1)] = True
        drop = Pi & ((moved <= tol * 1e-3) | (hit & bad))
        new_a = torch.where(step[:, None], torch.where(drop, torch.zeros_like(moved), moved), z)
        new_P = torch.where(step[:, None], Pi & ~drop, Pi)
        # feasible: check the multipliers of the zero variables, free the most negative one
        lam = new_a @ G - bi + mu[:, None]
        lam = torch.where(new_P, inf, lam)
        lam_min, j = lam.min(1)
        add = ~step & (lam_min < -tol)
        new_P[add, j[add]] = True
        done = ~step & ~add
        if full:
            a, P = new_a, new_P
        else:
            a[live] = new_a
            P[live] = new_P
        live = live[~done]
    return a, int(live.numel())


def batched_qp(G: torch.Tensor, B: torch.Tensor, *, sum_to_one: bool, tol: float = 1e-10, max_iter: int | None = None,
               start: torch.Tensor | None = None) -> torch.Tensor:
    """``argmin_a 1/2 a^T G a - b^T a`` s.t. ``a >= 0`` (and ``sum(a) = 1``) for every column ``b`` of ``B``.

    The engine behind :func:`fcls` and :func:`nnls`, for callers that build their own quadratic (a
    weighted data term, a linear penalty folded into ``B``).

    Parameters
    ----------
    G
        ``(K, K)`` symmetric positive definite matrix shared by all problems.
    B
        ``(K, N)`` linear terms, one problem per column.
    sum_to_one
        Add the constraint ``sum(a) = 1``.
    tol, max_iter
        As in :func:`fcls` (``tol`` relative to the mean diagonal of ``G``).
    start
        Optional ``(K, N)`` feasible warm start (e.g. the previous iterate of an alternating method);
        its positive entries are the initial free sets.

    Returns
    -------
    torch.Tensor
        ``(K, N)`` solutions.
    """
    return _qp_rows(G, B.T, sum_to_one, tol, max_iter, None if start is None else start.T).T.contiguous()


def _iterations(tol: float, max_iter: int | None, K: int) -> int:
    """Validate ``tol`` and return the active-set iteration cap (default ``10 K + 20``)."""
    if tol <= 0:
        raise UsageError(f"tol must be positive, got {tol}")
    return max_iter if max_iter is not None else 10 * K + 20


def _qp_rows(G: torch.Tensor, Bt: torch.Tensor, sum_to_one: bool, tol: float, max_iter: int | None,
             start: torch.Tensor | None) -> torch.Tensor:
    """:func:`batched_qp` with one problem per *row*: ``Bt`` and ``start`` ``(N, K)``, returns ``(N, K)``."""
    K = G.shape[0]
    iters = _iterations(tol, max_iter, K)
    scale = float(torch.diagonal(G).mean()) or 1.0
    Gs = G / scale
    Bs = (Bt / scale).contiguous()
    st = None
    if start is not None:
        st = start.to(dtype=G.dtype, device=G.device).clamp_min(0)
        if sum_to_one:
            total = st.sum(1, keepdim=True)
            st = torch.where(total > 0, st / total.clamp_min(torch.finfo(G.dtype).tiny), torch.full_like(st, 1.0 / K))
    if Bs.device.type == "cpu" and qp_cpu.available(K):
        if st is None:
            st = torch.full_like(Bs, 1.0 / K) if sum_to_one else torch.zeros_like(Bs)
        out, _ = qp_cpu.qp_rows(Gs.double().numpy(), Bs.double().numpy(), st.double().numpy(), sum_to_one, tol, iters,
                                torch.get_num_threads())
        return torch.from_numpy(out).to(Bs.dtype)
    if Bs.shape[0] <= CHUNK:
        return _active_set(Gs, Bs, sum_to_one, tol, iters, st)[0]
    out = torch.empty_like(Bs)
    for s in range(0, Bs.shape[0], CHUNK):
        out[s : s + CHUNK], _ = _active_set(Gs, Bs[s : s + CHUNK], sum_to_one, tol, iters,
                                            None if st is None else st[s : s + CHUNK])
    return out


def _constrained(E: Any, Y: Any, sum_to_one: bool, tol: float, max_iter: int | None, dtype: torch.dtype) -> torch.Tensor:
    Yn = Y.data if hasattr(Y, "dims") and hasattr(Y, "data") else Y
    on_cpu = not (isinstance(Yn, torch.Tensor) and Yn.device.type != "cpu")
    if on_cpu and dtype == torch.float64:
        # the compiled CPU solver reads float32 or float64 spectra in place (no float64 copy of the cube)
        # (the checks in numpy: a call on a scene takes under a millisecond, and torch's reductions
        # cost tens of microseconds cold)
        Ya = Yn.numpy() if isinstance(Yn, torch.Tensor) else np.asarray(Yn)
        Ea = as_tensor(E, torch.float64).cpu().numpy()
        _check(Ea, Ya)
        if qp_cpu.available(Ea.shape[1]):
            iters = _iterations(tol, max_iter, Ea.shape[1])
            out, _ = qp_cpu.unmix_cols(Ea, Ya, sum_to_one, tol, iters, torch.get_num_threads())
            return torch.from_numpy(out)
    Y = as_tensor(Y, dtype)
    E = as_tensor(E, dtype, Y.device)
    _check(E, Y)
    return _qp_rows(E.T @ E, (E.T @ Y).T, sum_to_one, tol, max_iter, None).T.contiguous()


def fcls(E: Any, Y: Any, *, tol: float = 1e-10, max_iter: int | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Fully constrained least squares: ``argmin ||y - E a||_2`` s.t. ``a >= 0``, ``sum(a) = 1``, per pixel.

    All pixels are solved at once by a primal active-set method (Lawson-Hanson style, with the
    sum-to-one row in the KKT system): start from the uniform abundance with every endmember free;
    each iteration solves the equality-constrained least squares on each pixel's free set (one
    batched ``(K+1) x (K+1)`` solve), steps back to the feasible region when a free abundance would be
    negative, and otherwise frees the endmember with the most negative Lagrange multiplier. A pixel
    stops when all multipliers are ``>= -tol``; the result then satisfies the KKT conditions exactly.
    Pixels sharing a free set share its (cached) solution operator, so an iteration costs a few
    small matrix products for the whole image.

    Parameters
    ----------
    E
        ``(L, K)`` endmembers.
    Y
        ``(L, N)`` spectra (numpy or torch; CUDA tensors stay on the GPU).
    tol
        Optimality tolerance on the multipliers, relative to the mean squared endmember norm.
    max_iter
        Active-set iterations (default ``10 K + 20``; the method usually needs fewer than ``2 K``).
    dtype
        Compute dtype (float64 by default; float32 is faster on GPUs but less exact).

    Returns
    -------
    torch.Tensor
        ``(K, N)`` abundances, non-negative, summing to one.

    References
    ----------
    Heinz, D. C., Chang, C.-I. (2001). Fully constrained least squares linear spectral mixture analysis.
    IEEE TGRS 39(3), 529-545. Lawson, C. L., Hanson, R. J. (1974). Solving Least Squares Problems, ch. 23.
    Van Benthem, M. H., Keenan, M. R. (2004). Fast algorithm for the solution of large-scale
    non-negativity-constrained least squares problems. J. Chemometrics 18, 441-450.
    """
    return _constrained(E, Y, True, tol, max_iter, dtype)


def nnls(E: Any, Y: Any, *, tol: float = 1e-10, max_iter: int | None = None, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Non-negative least squares ``argmin ||y - E a||_2`` s.t. ``a >= 0``, every pixel at once.

    The same batched active-set method as :func:`fcls` without the sum-to-one row (Lawson-Hanson,
    starting from ``a = 0``). Parameters and return as :func:`fcls`; abundances need not sum to one.
    """
    return _constrained(E, Y, False, tol, max_iter, dtype)


def fcls_scipy(E: Any, Y: Any, *, delta: float = 1e3, tol: float | None = None) -> np.ndarray:
    """Per-pixel FCLS as in pysptools/HySUPP-style codes: scipy NNLS with a sum-to-one row ``delta * 1``.

    Slow (a Python loop over pixels); the reference for :func:`fcls` in tests and benchmarks. The data
    and endmembers are scaled by their mean squared norm as in :func:`fcls` so ``delta`` is relative.

    Parameters
    ----------
    E
        ``(L, K)`` endmembers.
    Y
        ``(L, N)`` spectra.
    delta
        Weight of the sum-to-one row (larger: closer to the exact constraint).
    tol
        Passed to :func:`scipy.optimize.nnls` as ``atol`` (None: scipy's default).

    Returns
    -------
    numpy.ndarray
        ``(K, N)`` abundances.
    """
    from scipy.optimize import nnls as _scipy_nnls

    E = np.asarray(as_tensor(E).cpu(), np.float64)
    Y = np.asarray(as_tensor(Y).cpu(), np.float64)
    s = math.sqrt(float((E * E).sum(0).mean())) or 1.0
    Ea = np.vstack([E / s, np.full((1, E.shape[1]), delta)])
    out = np.empty((E.shape[1], Y.shape[1]))
    rhs = np.empty(Ea.shape[0])
    kw = {} if tol is None else {"atol": tol}
    for n in range(Y.shape[1]):
        rhs[:-1] = Y[:, n] / s
        rhs[-1] = delta
        out[:, n] = _scipy_nnls(Ea, rhs, **kw)[0]
    return out


def sunsal(
    D: Any,
    Y: Any,
    *,
    lam: float = 1e-3,
    positivity: bool = True,
    sum_to_one: bool = False,
    mu: float = 0.01,
    max_iter: int = 1000,
    tol: float = 1e-4,
    dtype: torch.dtype = torch.float64,
) -> torch.Tensor:
    """SUnSAL: sparse unmixing on a library by ADMM, all pixels at once.

    Solves ``min_X 1/2 ||Y - D X||_F^2 + lam ||X||_1`` s.t. ``X >= 0`` (``positivity``) and
    ``1^T X = 1`` (``sum_to_one``) with the split ``X = Z``: an X-step ``(D^T D + mu I)^-1`` (projected
    on the sum-to-one plane when asked), a Z-step soft threshold + positivity, and the scaled dual
    update. ``mu`` is adapted (x10 / /10) to keep primal and dual residuals balanced; stops when both are
    below ``tol * sqrt(M N)``.

    Parameters
    ----------
    D
        ``(L, M)`` library (any number of atoms M).
    Y
        ``(L, N)`` spectra.
    lam
        Weight of the l1 term (in squared data units; 0 gives constrained least squares).
    positivity, sum_to_one
        Constraints (ANC, ASC).
    mu
        Initial ADMM penalty.
    max_iter, tol
        Iteration cap and residual tolerance.

    Returns
    -------
    torch.Tensor
        ``(M, N)`` fractional abundances of the library atoms.

    References
    ----------
    Bioucas-Dias, J. M., Figueiredo, M. A. T. (2010). Alternating direction algorithms for constrained
    sparse regression: application to hyperspectral unmixing. WHISPERS 2010.
    Iordache, M.-D., Bioucas-Dias, J. M., Plaza, A. (2011). Sparse unmixing of hyperspectral data. IEEE TGRS 49(6).
    """
    Y = as_tensor(Y, dtype)
    D = as_tensor(D, dtype, Y.device)
    _check(D, Y)
    if lam < 0 or mu <= 0:
        raise UsageError(f"lam must be >= 0 and mu > 0; got lam={lam}, mu={mu}")
    M = D.shape[1]
    N = Y.shape[1]
    # normalise the library scale so that mu has the same meaning for any data unit
    scale = float(torch.linalg.matrix_norm(D, ord=2)) or 1.0
    Dn, Yn = D / scale, Y / scale
    DtD = Dn.T @ Dn
    DtY = Dn.T @ Yn
    eye = torch.eye(M, dtype=dtype, device=Y.device)
    ones = torch.ones((M, 1), dtype=dtype, device=Y.device)
    lam_n = lam / scale**2

    def inverse(m: float) -> tuple[torch.Tensor, torch.Tensor]:
        W = torch.linalg.inv(DtD + m * eye)
        return W, (W @ ones) / (ones.T @ W @ ones)

    W, Wc = inverse(mu)
    X = W @ DtY
    Z = X.clamp_min(0) if positivity else X.clone()
    U = torch.zeros_like(X)
    thresh = math.sqrt(M * N) * tol
    for it in range(max_iter):
        X = W @ (DtY + mu * (Z + U))
        if sum_to_one:
            X = X - Wc @ (X.sum(0, keepdim=True) - 1.0)
        Z_old = Z
        V = X - U
        Z = torch.sign(V) * (V.abs() - lam_n / mu).clamp_min(0)
        if positivity:
            Z = Z.clamp_min(0)
        U = U - (X - Z)
        r = float(torch.linalg.norm(X - Z))
        s = mu * float(torch.linalg.norm(Z - Z_old))
        if r < thresh and s < thresh:
            break
        if it % 10 == 9 and (r > 10 * s or s > 10 * r):
            factor = 2.0 if r > 10 * s else 0.5
            mu *= factor
            U = U / factor
            W, Wc = inverse(mu)
    return Z
