"""Abundance solvers: batched FCLS/NNLS against exact per-pixel references, SUnSAL on a library."""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import torch

from hsikit.errors import UsageError
from hsikit.unmix.abundances import fcls, fcls_scipy, nnls, sunsal, ucls
from hsikit.unmix.reference import load_reference_scene


def _exact(E: np.ndarray, y: np.ndarray, sum_to_one: bool) -> np.ndarray:
    """Exact constrained LS by enumerating every support (fine for K <= 6)."""
    K = E.shape[1]
    best, best_val = None, np.inf
    for r in range(1, K + 1):
        for S in itertools.combinations(range(K), r):
            Es = E[:, S]
            if sum_to_one:
                M = np.block([[Es.T @ Es, np.ones((r, 1))], [np.ones((1, r)), np.zeros((1, 1))]])
                z = np.linalg.solve(M, np.r_[Es.T @ y, 1.0])[:r]
            else:
                z = np.linalg.lstsq(Es, y, rcond=None)[0]
            if (z >= -1e-12).all():
                a = np.zeros(K)
                a[list(S)] = np.maximum(z, 0)
                v = float(np.sum((E @ a - y) ** 2))
                if v < best_val:
                    best, best_val = a, v
    assert best is not None
    return best


def _problem(seed: int = 0, L: int = 40, K: int = 5, N: int = 300) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    E = np.abs(rng.normal(size=(L, K))).cumsum(0) / 10  # correlated, smooth-ish spectra
    A = rng.dirichlet(np.full(K, 0.4), N).T
    Y = E @ A + 0.3 * rng.normal(size=(L, N))  # heavy noise: many active constraints
    return E, Y


@pytest.fixture(params=["compiled", "torch"])
def solver(request, monkeypatch) -> str:
    """Run a test on the compiled CPU QP (numba) and on the batched torch solver (the CUDA path)."""
    from hsikit.unmix import qp_cpu

    if request.param == "compiled" and not qp_cpu.available(3):
        pytest.skip("numba not installed")
    if request.param == "torch":
        monkeypatch.setattr(qp_cpu, "available", lambda K: False)
    return request.param


def test_fcls_and_nnls_match_exact_solvers(solver: str) -> None:
    E, Y = _problem()
    a = fcls(E, Y).numpy()
    ref = np.stack([_exact(E, Y[:, n], True) for n in range(Y.shape[1])], 1)
    np.testing.assert_allclose(a, ref, atol=1e-9)
    assert a.min() >= 0 and np.abs(a.sum(0) - 1).max() < 1e-12
    assert (ref == 0).sum() > 100  # the test exercises active constraints
    b = nnls(E, Y).numpy()
    ref_n = np.stack([_exact(E, Y[:, n], False) for n in range(Y.shape[1])], 1)
    np.testing.assert_allclose(b, ref_n, atol=1e-9)
    # float32 spectra (read in place by the compiled solver) give what their float64 copy gives
    Y32 = Y.astype(np.float32)
    np.testing.assert_allclose(fcls(E, Y32).numpy(), fcls(E, Y32.astype(np.float64)).numpy(), atol=1e-12)
    np.testing.assert_allclose(nnls(E, torch.from_numpy(Y32)).numpy(), nnls(E, Y32.astype(np.float64)).numpy(), atol=1e-12)


def test_fcls_agrees_with_per_pixel_scipy_on_samson(shared_data: Path) -> None:
    scene = load_reference_scene(shared_data, "samson")
    Y = scene.spectra[:, ::7]
    a = fcls(scene.endmembers, Y).numpy()
    ref = fcls_scipy(scene.endmembers, Y, delta=1e3)
    assert np.abs(a - ref).max() < 1e-5
    # and the MiSiCNet ground truth is FCLS(Y, E) (README 2.1)
    gt = scene.abundances["fcls"].reshape(3, -1)[:, ::7]
    assert np.abs(a - gt).max() < 1e-4


def test_fcls_float32_chunks_and_tolerance(solver: str) -> None:
    E, Y = _problem(seed=1, N=50)
    import hsikit.unmix.abundances as ab

    old = ab.CHUNK
    ab.CHUNK = 7  # several chunks
    try:
        a = fcls(E, Y).numpy()
    finally:
        ab.CHUNK = old
    np.testing.assert_allclose(a, fcls(E, Y).numpy(), atol=1e-12)
    a32 = fcls(torch.tensor(E, dtype=torch.float32), Y, dtype=torch.float32)
    assert a32.dtype == torch.float32 and float((a32 - torch.tensor(a)).abs().max()) < 1e-3
    with pytest.raises(UsageError, match="tol"):
        fcls(E, Y, tol=0)
    with pytest.raises(UsageError, match="bands"):
        fcls(E[:-1], Y)


def test_compiled_and_torch_solvers_agree_on_warm_starts_duplicates_and_many_endmembers(monkeypatch) -> None:
    from hsikit.unmix import qp_cpu
    from hsikit.unmix.abundances import batched_qp

    if not qp_cpu.available(3):
        pytest.skip("numba not installed")
    E, Y = _problem(seed=4, K=4, N=200)
    Ed = np.concatenate([E, E[:, :1]], 1)  # a duplicated endmember: singular free sets
    E12, Y12 = _problem(seed=5, K=12, N=60)  # more than qp_cpu.MAX_K: the torch solver serves both
    G, B = torch.tensor(E.T @ E), torch.tensor(E.T @ Y)
    start = torch.tensor(np.random.default_rng(0).dirichlet(np.ones(4), 200).T)
    start[0] = 0  # warm starts with an inactive endmember
    start /= start.sum(0)
    runs = {}
    for name in ("compiled", "torch"):
        if name == "torch":
            monkeypatch.setattr(qp_cpu, "available", lambda K: False)
        runs[name] = [
            batched_qp(G, B, sum_to_one=True, start=start).numpy(),
            batched_qp(G, B, sum_to_one=False, start=start).numpy(),
            fcls(Ed, Y).numpy(),
            fcls(E12, Y12).numpy(),
        ]
    exact = [
        np.stack([_exact(E, Y[:, n], True) for n in range(Y.shape[1])], 1),
        np.stack([_exact(E, Y[:, n], False) for n in range(Y.shape[1])], 1),
    ]
    for name, (ws, wn, dup, many) in runs.items():
        np.testing.assert_allclose(ws, exact[0], atol=1e-9, err_msg=name)
        np.testing.assert_allclose(wn, exact[1], atol=1e-9, err_msg=name)
        # with a duplicate the split between the twins is not unique, the fit is
        np.testing.assert_allclose(Ed @ dup, E @ exact[0], atol=1e-7, err_msg=name)
        assert dup.min() >= 0 and np.abs(dup.sum(0) - 1).max() < 1e-9
        assert many.min() >= 0 and np.abs(many.sum(0) - 1).max() < 1e-9
        # KKT of the sum-to-one QP: the gradient is one value mu on the support and >= mu off it
        grad = E12.T @ (E12 @ many - Y12)
        support = many > 1e-12
        mu = np.where(support, grad, 0).sum(0) / support.sum(0)
        scale = np.abs(grad).max()
        assert np.abs(np.where(support, grad - mu, 0)).max() < 1e-8 * scale
        assert np.where(support, 0, grad - mu).min() > -1e-8 * scale


def test_compiled_parallel_drivers_equal_serial(monkeypatch) -> None:
    """The parallel drivers (threads > 1, many pixels) give exactly the serial results: chunks are
    independent and each starts afresh."""
    from hsikit.unmix import qp_cpu

    if not qp_cpu.available(3):
        pytest.skip("numba not installed")
    E, Y = _problem(seed=6, K=4, N=3000)
    G = E.T @ E
    B = np.ascontiguousarray((E.T @ Y).T)
    start = np.full_like(B, 0.25)
    serial = [qp_cpu.unmix_cols(E, Y, True, 1e-10, 60, 1)[0], qp_cpu.qp_rows(G, B, start, True, 1e-10, 60, 1)[0]]
    monkeypatch.setattr(qp_cpu, "PARALLEL_MIN", 1)
    parallel = [qp_cpu.unmix_cols(E, Y, True, 1e-10, 60, 2)[0], qp_cpu.qp_rows(G, B, start, True, 1e-10, 60, 2)[0]]
    for s, p in zip(serial, parallel):
        np.testing.assert_array_equal(s, p)
    np.testing.assert_allclose(serial[0], fcls(E, Y).numpy(), atol=1e-12)


def test_compiled_face_tables_equal_the_batched_inverse() -> None:
    """The compiled Gauss-Jordan face tables equal :func:`free_set_operators` (torch's batched
    inverse) for K = 1..10, FCLS and NNLS; a singular face (duplicate endmembers) falls back to the
    torch pseudo-inverse."""
    import torch

    from hsikit.unmix import qp_cpu

    if not qp_cpu.available(3):
        pytest.skip("numba not installed")
    rng = np.random.default_rng(11)
    for K in (1, 2, 3, 6, 10):
        E = rng.random((40, K)) + 0.1 * np.eye(40, K)
        G = E.T @ E / np.mean(np.sum(E**2, 0))
        for sum_to_one in (True, False):
            got = qp_cpu.face_operators(G, sum_to_one)
            want = [t.numpy() for t in qp_cpu.free_set_operators(torch.as_tensor(G), torch.arange(1 << K), sum_to_one)]
            want[1][0], want[2][0] = 0.0, 0.0
            for g, w in zip(got, want):
                np.testing.assert_allclose(g, w, rtol=1e-9, atol=1e-9 * np.abs(w).max())
    E = rng.random((40, 3))
    E[:, 2] = E[:, 1]
    G = E.T @ E
    W, c, v = qp_cpu.face_operators(G, True)
    full = [t.numpy() for t in qp_cpu.free_set_operators(torch.as_tensor(G), torch.tensor([7]), True)]
    np.testing.assert_allclose(W[7], full[0][0], atol=1e-10)
    assert np.isfinite(W).all() and np.isfinite(c).all()


def test_ucls_exact_and_sunsal_recovers_sparse_library_atoms() -> None:
    rng = np.random.default_rng(3)
    L, M, N = 60, 30, 200
    D = np.abs(rng.normal(size=(L, M))) + 0.1
    X = np.zeros((M, N))
    for n in range(N):
        idx = rng.choice(M, 3, replace=False)
        X[idx, n] = rng.dirichlet(np.ones(3))
    Y = D @ X
    np.testing.assert_allclose(ucls(D[:, :3], D[:, :3] @ X[:3]).numpy(), X[:3], atol=1e-10)
    est = sunsal(D, Y, lam=0.0, sum_to_one=True, tol=1e-7, max_iter=5000).numpy()
    assert np.abs(est - X).max() < 1e-3
    est_l1 = sunsal(D, Y + 0.01 * rng.normal(size=Y.shape), lam=1e-2).numpy()
    assert est_l1.min() >= 0
    assert (est_l1 > 1e-3).sum(0).mean() < 8  # sparse: a handful of atoms per pixel


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_fcls_on_cuda_matches_cpu() -> None:
    E, Y = _problem(seed=5, N=2000)
    cpu = fcls(E, Y)
    gpu = fcls(torch.tensor(E, device="cuda"), torch.tensor(Y, device="cuda"))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu, atol=1e-9, rtol=0)
