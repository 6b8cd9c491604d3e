"""Compiled per-pixel active-set QP for FCLS / NNLS on the CPU (numba, parallel over pixels).

Solves, for every row ``b`` of ``B`` (N, K)::

    min_a 1/2 a^T G a - b^T a   s.t.  a >= 0  (and sum(a) = 1 when ``sum_to_one``)

with the same primal active-set method, start points and tolerance as the batched torch solver in
:mod:`hsikit.unmix.abundances` (which runs on CUDA and is the fallback without numba). Per pixel:
solve the equality-constrained problem on the free set (and its sum-to-one multiplier) with the
tabulated solution operator of that free set, :func:`face_operators`), step back to the feasible region when a free abundance would
turn negative, otherwise free the endmember with the most negative multiplier; stop when every
multiplier is ``>= -tol``. The result satisfies the KKT conditions, so it is the exact optimum up to
``tol`` and rounding.

Why compiled: for the K = 3-10 endmembers of real scenes a pixel's whole solve is a few hundred
flops, so a vectorised torch implementation is bound by per-op passes over (N, K) arrays (about
0.4 us per pixel), while this loop keeps a pixel in registers (tens of ns). Pixels run in chunks over
``numba.prange``, with as many threads as torch uses.
"""

from __future__ import annotations

import os

import numpy as np
import torch

# numba's own thread pool: its OpenMP layer shares the OpenMP runtime with torch and then ignores
# numba.set_num_threads (measured: "1 thread" ran on 2). An explicit user choice is kept.
os.environ.setdefault("NUMBA_THREADING_LAYER", "workqueue")

try:
    import numba
except ImportError:  # pragma: no cover - numba is a dependency; the torch solver is the fallback
    numba = None

__all__ = ["available", "qp_rows", "unmix_cols", "face_operators", "free_set_operators"]

#: Pixels per chunk (its E^T Y block, K x CHUNK float64, stays in L2; 4096 measured 5-10 % faster than 1024 at scale).
CHUNK = 4096


def available(K: int) -> bool:
    """Whether the compiled solver takes K endmembers (numba importable and K <= MAX_K)."""
    return numba is not None and 1 <= K <= MAX_K


#: Fewest pixels run in parallel: below this, waking the pool costs what a second thread saves (measured:
#: Samson's 9025 px take 1.25 ms on one thread, 1.57 ms on two; 27 075 px the same on both).
PARALLEL_MIN = 32768
#: Largest K served here (the solver tabulates all 2^K free sets); larger K use the torch solver.
MAX_K = 10


def free_set_operators(G: torch.Tensor, codes: torch.Tensor, sum_to_one: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Solution operators of the free sets ("faces") P given by bit ``codes`` (bit k = endmember k free).

    On face P the equality-constrained minimiser is affine in b: ``z = W_P b + c_P`` (zero off P), and
    the gradient ``G z - b`` equals ``mu = v_P - c_P . b`` on P. With ``H = (G_PP)^-1`` (zero-padded)
    and ``h = H 1``, ``s = 1^T h``: ``W = H - h h^T / s``, ``c = h / s``, ``v = 1 / s`` (sum-to-one), or
    ``W = H``, ``c = v = 0`` (NNLS). All faces in one batched inverse, on G's device; shared by this
    module's tables and the batched torch solver of :mod:`hsikit.unmix.abundances`.

    Returns ``W`` (F, K, K), ``c`` (F, K), ``v`` (F,) for the F codes.
    """
    K = G.shape[0]
    p = ((codes[:, None] >> torch.arange(K, device=G.device)) & 1).to(G.dtype)  # (F, K) free indicators
    mask = p[:, :, None] * p[:, None, :]
    M = G * mask + torch.diag_embed(1.0 - p)
    try:
        H = torch.linalg.inv(M)
    except RuntimeError:  # a singular free set (duplicate endmembers): least-norm solutions
        H = torch.linalg.pinv(M)
    H = H * mask
    if not sum_to_one:
        return H, torch.zeros_like(p), torch.zeros_like(p[:, 0])
    h = H.sum(2)
    tot = h.sum(1)
    tot = torch.where(tot.abs() > 1e-300, tot, torch.full_like(tot, 1e-300))
    return H - h[:, :, None] * h[:, None, :] / tot[:, None, None], h / tot[:, None], 1.0 / tot


def face_operators(G: np.ndarray, sum_to_one: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`free_set_operators` of every free set, indexed by its code (row 0, no free endmember,
    is all zeros), as float64 numpy tables for the compiled kernels: ``W`` (2^K, K, K), ``c`` (2^K, K),
    ``v`` (2^K,).

    Computed by a compiled Gauss-Jordan per face (a few microseconds for K <= 10), so a call does not
    wake torch's thread pool (measured: ~0.6 ms for the batched torch inverse right after a
    single-threaded loop, against a 0.7 ms solve of Samson's 9025 pixels). A face whose block is
    singular (duplicate endmembers) falls back to the torch path, whose pseudo-inverse gives
    least-norm solutions.
    """
    G = np.ascontiguousarray(G, dtype=np.float64)
    K = G.shape[0]
    if numba is not None:
        W = np.zeros((1 << K, K, K))
        c = np.zeros((1 << K, K))
        v = np.zeros(1 << K)
        if _face_tables(G, bool(sum_to_one), W, c, v):
            return W, c, v
    W, c, v = (t.numpy() for t in free_set_operators(torch.as_tensor(G), torch.arange(1 << K), sum_to_one))
    c[0], v[0] = 0.0, 0.0
    return W, c, v


if numba is not None:

    @numba.njit(cache=True, nogil=True)
    def _face_tables(G, sum_to_one, W, c, v):  # pragma: no cover - compiled
        """Fill the zeroed tables of :func:`face_operators` (every code >= 1); False on a singular face."""
        K = G.shape[0]
        scale = 0.0
        for i in range(K):
            scale = max(scale, abs(G[i, i]))
        idx = np.empty(K, dtype=np.int64)
        A = np.empty((K, 2 * K))
        for code in range(1, 1 << K):
            n = 0
            for i in range(K):
                if (code >> i) & 1:
                    idx[n] = i
                    n += 1
            for r in range(n):  # [G_PP | I], Gauss-Jordan with partial pivoting -> [I | G_PP^-1]
                for t in range(n):
                    A[r, t] = G[idx[r], idx[t]]
                    A[r, n + t] = 1.0 if r == t else 0.0
            for col in range(n):
                piv = col
                for r in range(col + 1, n):
                    if abs(A[r, col]) > abs(A[piv, col]):
                        piv = r
                if not abs(A[piv, col]) > 1e-13 * scale:
                    return False
                if piv != col:
                    for t in range(2 * n):
                        A[col, t], A[piv, t] = A[piv, t], A[col, t]
                inv = 1.0 / A[col, col]
                for t in range(2 * n):
                    A[col, t] *= inv
                for r in range(n):
                    if r != col and A[r, col] != 0.0:
                        f = A[r, col]
                        for t in range(2 * n):
                            A[r, t] -= f * A[col, t]
            for r in range(n):
                for t in range(n):
                    W[code, idx[r], idx[t]] = A[r, n + t]
            if sum_to_one:  # W = H - h h^T / s, c = h / s, v = 1 / s with h = H 1, s = 1^T h
                tot = 0.0
                for r in range(n):
                    h = 0.0
                    for t in range(n):
                        h += A[r, n + t]
                    c[code, idx[r]] = h
                    tot += h
                if abs(tot) < 1e-300:
                    tot = 1e-300
                for r in range(n):
                    for t in range(n):
                        W[code, idx[r], idx[t]] -= c[code, idx[r]] * c[code, idx[t]] / tot
                for r in range(n):
                    c[code, idx[r]] /= tot
                v[code] = 1.0 / tot
        return True

    @numba.njit(cache=True, nogil=True)
    def _solve_pixel(W, c, v, G, b, a, tol, max_iter, z):  # pragma: no cover - compiled
        """Active-set iterations for one pixel from the feasible start ``a`` (free set = a > 0)."""
        K = G.shape[0]
        code = 0
        for i in range(K):
            if a[i] > 0.0:
                code |= 1 << i
        for _ in range(max_iter):
            mu = v[code]
            for i in range(K):  # z = W_P b + c_P, mu = v_P - c_P . b
                s = c[code, i]
                for t in range(K):
                    s += W[code, i, t] * b[t]
                z[i] = s
                mu -= c[code, i] * b[i]
            # infeasible: move from a towards z until the first free variable hits zero, drop it
            alpha = 2.0
            j = -1
            for i in range(K):
                if (code >> i) & 1 and z[i] <= 0.0:
                    d = a[i] - z[i]
                    ratio = a[i] / d if d > 1e-300 else 0.0
                    if ratio < alpha:
                        alpha = ratio
                        j = i
            if j >= 0:
                alpha = min(max(alpha, 0.0), 1.0)
                for i in range(K):
                    if (code >> i) & 1:
                        a[i] += alpha * (z[i] - a[i])
                        if i == j or a[i] <= tol * 1e-3:
                            a[i] = 0.0
                            code &= ~(1 << i)
                continue
            for i in range(K):
                a[i] = z[i]
            # feasible: free the zero variable with the most negative multiplier (G a - b)_i - mu
            best = -tol
            j = -1
            for i in range(K):
                if not (code >> i) & 1:
                    g = -b[i] - mu
                    for t in range(K):
                        g += G[i, t] * a[t]
                    if g < best:
                        best = g
                        j = i
            if j < 0:
                return True
            code |= 1 << j
        return False

    @numba.njit(cache=True, nogil=True)
    def _qp_rows_chunk(W, c, v, G, B, start, tol, max_iter, out, n0, n1):  # pragma: no cover - compiled
        """Rows [n0, n1) of :func:`qp_rows`; returns how many hit max_iter."""
        K = B.shape[1]
        z = np.empty(K)
        unconverged = 0
        for n in range(n0, n1):
            a = out[n]
            for i in range(K):
                a[i] = start[n, i]
            if not _solve_pixel(W, c, v, G, B[n], a, tol, max_iter, z):
                unconverged += 1
        return unconverged

    @numba.njit(cache=True, nogil=True)
    def _gram(E):  # pragma: no cover - compiled
        """E^T E (K, K) of (L, K) endmembers, without waking a BLAS thread pool for a tiny product."""
        L, K = E.shape
        G = np.zeros((K, K))
        for l in range(L):
            for i in range(K):
                e = E[l, i]
                for t in range(K):
                    G[i, t] += e * E[l, t]
        return G

    @numba.njit(cache=True, nogil=True, fastmath={"contract", "reassoc"})
    def _ety_chunk(E, Y, n0, n1, acc):  # pragma: no cover - compiled
        """acc[k, j] = sum_l E[l, k] Y[l, n0 + j] for the chunk's columns (float64 accumulators).

        Eight bands per pass, three endmembers per inner loop: an accumulator is read and written
        once per eight products and a spectrum value loaded once per three endmembers (measured
        1.5-1.8x faster than one endmember per loop when the cube is in cache, 1.2x on Sim1 from
        memory). ``contract``/``reassoc`` let LLVM use FMAs and regroup the sum (no NaN/inf
        assumptions, so a NaN pixel still gives NaN)."""
        L = Y.shape[0]
        K = E.shape[1]
        m = n1 - n0
        acc[:, :m] = 0.0
        band = 0
        while band + 8 <= L:
            r0, r1, r2, r3 = Y[band, n0:n1], Y[band + 1, n0:n1], Y[band + 2, n0:n1], Y[band + 3, n0:n1]
            r4, r5, r6, r7 = Y[band + 4, n0:n1], Y[band + 5, n0:n1], Y[band + 6, n0:n1], Y[band + 7, n0:n1]
            e = E[band : band + 8]
            k = 0
            while k + 3 <= K:
                a0, a1, a2 = acc[k], acc[k + 1], acc[k + 2]
                p0, p1, p2, p3, p4, p5, p6, p7 = e[0, k], e[1, k], e[2, k], e[3, k], e[4, k], e[5, k], e[6, k], e[7, k]
                q0, q1, q2, q3, q4, q5, q6, q7 = (e[0, k + 1], e[1, k + 1], e[2, k + 1], e[3, k + 1],
                                                  e[4, k + 1], e[5, k + 1], e[6, k + 1], e[7, k + 1])
                s0, s1, s2, s3, s4, s5, s6, s7 = (e[0, k + 2], e[1, k + 2], e[2, k + 2], e[3, k + 2],
                                                  e[4, k + 2], e[5, k + 2], e[6, k + 2], e[7, k + 2])
                for j in range(m):
                    y0, y1, y2, y3, y4, y5, y6, y7 = r0[j], r1[j], r2[j], r3[j], r4[j], r5[j], r6[j], r7[j]
                    a0[j] += (p0 * y0 + p1 * y1 + p2 * y2 + p3 * y3) + (p4 * y4 + p5 * y5 + p6 * y6 + p7 * y7)
                    a1[j] += (q0 * y0 + q1 * y1 + q2 * y2 + q3 * y3) + (q4 * y4 + q5 * y5 + q6 * y6 + q7 * y7)
                    a2[j] += (s0 * y0 + s1 * y1 + s2 * y2 + s3 * y3) + (s4 * y4 + s5 * y5 + s6 * y6 + s7 * y7)
                k += 3
            while k < K:
                p0, p1, p2, p3, p4, p5, p6, p7 = e[0, k], e[1, k], e[2, k], e[3, k], e[4, k], e[5, k], e[6, k], e[7, k]
                ak = acc[k]
                for j in range(m):
                    ak[j] += (p0 * r0[j] + p1 * r1[j] + p2 * r2[j] + p3 * r3[j]) + (
                        p4 * r4[j] + p5 * r5[j] + p6 * r6[j] + p7 * r7[j])
                k += 1
            band += 8
        while band < L:
            row = Y[band, n0:n1]
            for k in range(K):
                ek = E[band, k]
                ak = acc[k]
                for j in range(m):
                    ak[j] += ek * row[j]
            band += 1

    @numba.njit(cache=True, nogil=True)
    def _unmix_chunk(W, c, v, G, E, Y, scale, sum_to_one, tol, max_iter, out, n0, n1):  # pragma: no cover
        """Columns [n0, n1) of :func:`unmix_cols`: b = E^T y / scale for the chunk, then the active set."""
        K = E.shape[1]
        m = n1 - n0
        acc = np.empty((K, m))  # E^T Y for the chunk, float64 whatever Y's dtype
        _ety_chunk(E, Y, n0, n1, acc)
        # start: FCLS uniform on the previous pixel's support (neighbours mostly share it, so most
        # pixels need one solve), all endmembers at the chunk's first pixel; NNLS at zero
        z = np.empty(K)
        b = np.empty(K)
        a = np.empty(K)
        unconverged = 0
        prev = (1 << K) - 1
        inv_scale = 1.0 / scale
        for j in range(m):
            size = 0
            for k in range(K):
                b[k] = acc[k, j] * inv_scale
                size += (prev >> k) & 1
            # FCLS fast path, inlined (a call per pixel costs ~10 % at scale): if the previous pixel's
            # face gives a feasible z whose multipliers pass the test, z is this pixel's optimum;
            # this is the active set's first iteration from that start, with the same arithmetic
            done = False
            if sum_to_one:
                mu = v[prev]
                for i in range(K):
                    s = c[prev, i]
                    for t in range(K):
                        s += W[prev, i, t] * b[t]
                    z[i] = s
                    mu -= c[prev, i] * b[i]
                done = True
                for i in range(K):
                    if (prev >> i) & 1 and z[i] <= 0.0:
                        done = False
                if done:
                    for i in range(K):
                        if not (prev >> i) & 1:
                            g = -b[i] - mu
                            for t in range(K):
                                g += G[i, t] * z[t]
                            if g < -tol:
                                done = False
                if done:
                    for i in range(K):
                        a[i] = z[i] if (prev >> i) & 1 else 0.0
            if not done:
                share = 1.0 / size if sum_to_one else 0.0
                for k in range(K):
                    a[k] = share if (prev >> k) & 1 else 0.0
                if not _solve_pixel(W, c, v, G, b, a, tol, max_iter, z):
                    unconverged += 1
            for k in range(K):
                out[k, n0 + j] = a[k]
            if sum_to_one:
                prev = 0
                for k in range(K):
                    if a[k] > 0.0:
                        prev |= 1 << k
                if prev == 0:
                    prev = (1 << K) - 1
        return unconverged

    # drivers over chunks: parallel, and serial (one thread, or too few pixels to pay for the pool)
    @numba.njit(cache=True, parallel=True, nogil=True)
    def _qp_rows_par(W, c, v, G, B, start, tol, max_iter, out, chunk):  # pragma: no cover - compiled
        N = B.shape[0]
        n_chunks = (N + chunk - 1) // chunk
        bad = np.zeros(n_chunks, dtype=np.int64)
        for ch in numba.prange(n_chunks):
            bad[ch] = _qp_rows_chunk(W, c, v, G, B, start, tol, max_iter, out, ch * chunk, min(N, (ch + 1) * chunk))
        return bad.sum()

    @numba.njit(cache=True, nogil=True)
    def _qp_rows_ser(W, c, v, G, B, start, tol, max_iter, out, chunk):  # pragma: no cover - compiled
        N = B.shape[0]
        bad = 0
        for n0 in range(0, N, chunk):
            bad += _qp_rows_chunk(W, c, v, G, B, start, tol, max_iter, out, n0, min(N, n0 + chunk))
        return bad

    @numba.njit(cache=True, parallel=True, nogil=True)
    def _unmix_cols_par(W, c, v, G, E, Y, scale, sum_to_one, tol, max_iter, out, chunk):  # pragma: no cover
        N = Y.shape[1]
        n_chunks = (N + chunk - 1) // chunk
        bad = np.zeros(n_chunks, dtype=np.int64)
        for ch in numba.prange(n_chunks):
            bad[ch] = _unmix_chunk(W, c, v, G, E, Y, scale, sum_to_one, tol, max_iter, out,
                                   ch * chunk, min(N, (ch + 1) * chunk))
        return bad.sum()

    @numba.njit(cache=True, nogil=True)
    def _unmix_cols_ser(W, c, v, G, E, Y, scale, sum_to_one, tol, max_iter, out, chunk):  # pragma: no cover
        N = Y.shape[1]
        bad = 0
        for n0 in range(0, N, chunk):
            bad += _unmix_chunk(W, c, v, G, E, Y, scale, sum_to_one, tol, max_iter, out, n0, min(N, n0 + chunk))
        return bad


def _launch(par, ser, n_items: int, threads: int, *args) -> int:
    """Run the serial kernel for one thread or fewer than PARALLEL_MIN pixels, else the parallel one on
    ``threads`` numba threads (clipped to its pool; the previous setting is restored)."""
    threads = max(1, min(threads, numba.config.NUMBA_NUM_THREADS))
    if threads == 1 or n_items < PARALLEL_MIN:
        return ser(*args)
    old = numba.get_num_threads()
    numba.set_num_threads(threads)
    try:
        return par(*args)
    finally:
        numba.set_num_threads(old)


def unmix_cols(E: np.ndarray, Y: np.ndarray, sum_to_one: bool, tol: float, max_iter: int,
               threads: int) -> tuple[np.ndarray, int]:
    """FCLS (``sum_to_one``) or NNLS of every pixel: ``argmin ||y - E a||`` s.t. ``a >= 0`` (, ``sum a = 1``).

    Parameters
    ----------
    E
        ``(L, K)`` endmembers (used in float64).
    Y
        ``(L, N)`` spectra, float32 or float64, read as they are: ``E^T y`` is accumulated in float64
        chunk by chunk inside the compiled loop, so a float32 cube is never copied to float64.
    sum_to_one, tol, max_iter, threads
        As :func:`qp_rows`; ``tol`` is relative to the mean squared endmember norm.

    Returns
    -------
    (numpy.ndarray, int)
        ``(K, N)`` abundances (float64) and the number of pixels that hit ``max_iter``.
    """
    if numba is None:
        raise RuntimeError("numba is not installed")
    E = np.ascontiguousarray(E, dtype=np.float64)
    if E.shape[1] > MAX_K:
        raise ValueError(f"the compiled QP takes at most {MAX_K} endmembers, got {E.shape[1]}")
    if Y.dtype not in (np.float32, np.float64):
        Y = Y.astype(np.float64)
    Y = np.ascontiguousarray(Y)
    G = _gram(E)
    scale = float(np.diag(G).mean()) or 1.0
    G /= scale
    W, c, v = face_operators(G, sum_to_one)
    out = np.empty((E.shape[1], Y.shape[1]))
    bad = _launch(_unmix_cols_par, _unmix_cols_ser, Y.shape[1], threads,
                  W, c, v, G, E, Y, scale, bool(sum_to_one), float(tol), int(max_iter), out, CHUNK)
    return out, int(bad)



def qp_rows(G: np.ndarray, B: np.ndarray, start: np.ndarray, sum_to_one: bool, tol: float, max_iter: int,
            threads: int) -> tuple[np.ndarray, int]:
    """Solve every row's QP (see the module docstring) on ``threads`` CPU threads.

    Parameters
    ----------
    G
        ``(K, K)`` float64 symmetric positive (semi)definite matrix, pre-scaled so ``tol`` is relative.
    B
        ``(N, K)`` float64 linear terms, one problem per row.
    start
        ``(N, K)`` float64 feasible start points (all zeros for NNLS; on the simplex for FCLS); a
        start's positive entries are its initial free set.
    sum_to_one, tol, max_iter
        Constraint, multiplier tolerance and iteration cap per pixel.
    threads
        numba threads (clipped to what numba was started with).

    Returns
    -------
    (numpy.ndarray, int)
        ``(N, K)`` solutions and the number of pixels that hit ``max_iter``.
    """
    if numba is None:
        raise RuntimeError("numba is not installed")
    if G.shape[0] > MAX_K:
        raise ValueError(f"the compiled QP takes at most {MAX_K} endmembers, got {G.shape[0]}")
    G = np.ascontiguousarray(G, dtype=np.float64)
    B = np.ascontiguousarray(B, dtype=np.float64)
    start = np.ascontiguousarray(start, dtype=np.float64)
    out = np.empty_like(B)
    W, c, v = face_operators(G, sum_to_one)
    bad = _launch(_qp_rows_par, _qp_rows_ser, B.shape[0], threads, W, c, v, G, B, start, float(tol), int(max_iter), out, CHUNK)
    return out, int(bad)
