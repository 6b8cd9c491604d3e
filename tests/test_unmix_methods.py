"""K estimation, RRLbS and the autoencoder: behaviour on synthetic scenes and on real Moffett/Samson."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hsikit.errors import UsageError
from hsikit.metrics import sad
from hsikit.unmix.autoencoder import autoencoder_unmix
from hsikit.unmix.endmembers import vca
from hsikit.unmix.estimate_k import estimate_n_endmembers, hfc, nwhfc
from hsikit.unmix.reference import load_reference_scene
from hsikit.unmix.robust_l21 import rrlbs


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _scene(K: int = 5, L: int = 80, side: int = 40, snr_db: float = 30.0, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    wl = np.linspace(0, 1, L)
    E = np.stack([0.3 + 0.25 * np.sin(2 * np.pi * (f * wl + ph)) for f, ph in zip(rng.uniform(0.5, 2, K), rng.uniform(0, 1, K))], 1)
    A = rng.dirichlet(np.full(K, 0.3), side * side).T
    Y = E @ A
    sigma = np.sqrt((Y**2).mean() / 10 ** (snr_db / 10))
    return E, A, Y + sigma * rng.normal(size=Y.shape)


def test_endmember_count_estimates() -> None:
    E, A, Y = _scene()
    assert estimate_n_endmembers(Y, "hysime") == 5
    assert 4 <= hfc(Y) <= 6
    assert 4 <= nwhfc(Y) <= 6
    with pytest.raises(UsageError, match="unknown endmember-count"):
        estimate_n_endmembers(Y, "guess")
    with pytest.raises(UsageError, match="false-alarm"):
        hfc(Y, far=0.7)


def test_rrlbs_is_monotone_converges_and_resists_outlier_bands() -> None:
    E, A, Y = _scene(K=3, side=30, snr_db=35, seed=1)
    bad = Y.copy()
    bad[[5, 40, 70]] += 3.0 * np.random.default_rng(2).random((3, Y.shape[1]))  # three wrecked channels
    r = rrlbs(bad, 3, shape=(30, 30), max_iter=300, lam=0.1)  # a densely mixed scene: weak sparsity
    obj = np.array(r.objective)
    assert r.converged and np.all(np.diff(obj) <= 1e-9 * obj[0])
    assert r.abundances.min() >= 0 and torch.allclose(r.abundances.sum(0), torch.ones(900, dtype=torch.float64))
    assert 0 <= float(r.guidance.min()) and float(r.guidance.max()) <= 0.9
    good = np.setdiff1d(np.arange(Y.shape[0]), [5, 40, 70])
    est = sad(r.endmembers.numpy()[good], E[good]).mean
    base = sad(vca(bad, 3, seed=0).endmembers.numpy()[good], E[good]).mean
    assert est < 0.5 * base
    with pytest.raises(UsageError, match="h_max"):
        rrlbs(Y, 3, h_max=1.0)


def test_rrlbs_beats_vca_on_moffett(shared_data: Path) -> None:
    scene = load_reference_scene(shared_data, "moffett")
    r = rrlbs(scene.spectra, 3, shape=scene.cube.shape[1:], seed=0)
    ours = sad(r.endmembers.numpy(), scene.endmembers).mean
    assert ours < 0.07 < sad(vca(scene.spectra, 3, seed=0).endmembers.numpy(), scene.endmembers).mean


def test_autoencoder_seeded_simplex_and_learns() -> None:
    E, A, Y = _scene(K=3, L=40, side=16, seed=3)
    cube = np.abs(Y).reshape(40, 16, 16)
    a = autoencoder_unmix(cube, 3, seed=4, epochs=60, init="vca")
    b = autoencoder_unmix(cube, 3, seed=4, epochs=60, init="vca")
    torch.testing.assert_close(a.endmembers, b.endmembers)
    assert a.abundances.shape == (3, 16, 16) and float(a.abundances.min()) >= 0
    torch.testing.assert_close(a.abundances.sum(0), torch.ones(16, 16, dtype=torch.float64), atol=1e-5, rtol=0)
    assert a.loss[-1] < 0.5 * a.loss[0]
    with pytest.raises(UsageError, match="NaN"):
        autoencoder_unmix(np.full((4, 5, 5), np.nan), 2)


@pytest.mark.slow
def test_autoencoder_on_samson(shared_data: Path) -> None:
    scene = load_reference_scene(shared_data, "samson")
    r = autoencoder_unmix(scene.cube, 3, seed=0)
    assert sad(r.endmembers.numpy(), scene.endmembers).mean < 0.0925  # DeepTrans-HSU's VCA number
