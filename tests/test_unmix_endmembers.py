"""Endmember extractors: exact recovery on a pure-pixel scene, seeding, real Samson, bad K."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hsikit.errors import UsageError
from hsikit.metrics import sad
from hsikit.unmix.endmembers import EXTRACTORS, extract, nfindr, vca
from hsikit.unmix.reference import load_reference_scene


def _pure_pixel_scene(seed: int = 0, L: int = 50, K: int = 4, N: int = 500) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    E = np.abs(rng.normal(size=(L, K))) + 0.2
    A = rng.dirichlet(np.ones(K), N).T * 0.8 + 0.2 / K  # strictly mixed ...
    pure = rng.choice(N, K, replace=False)
    A[:, pure] = np.eye(K)  # ... except one pure pixel per endmember
    return E, E @ A, pure


@pytest.mark.parametrize("method", sorted(EXTRACTORS))
def test_extractors_find_the_pure_pixels(method: str) -> None:
    E, Y, pure = _pure_pixel_scene()
    ex = extract(Y, 4, method, seed=1)
    assert sorted(ex.indices.tolist()) == sorted(pure.tolist())
    assert sad(ex.endmembers.numpy(), E).mean < 1e-7


def test_seeding_is_reproducible_and_random_init_nfindr() -> None:
    E, Y, pure = _pure_pixel_scene(seed=2)
    Yn = Y + 0.01 * np.random.default_rng(0).normal(size=Y.shape)
    a, b = vca(Yn, 4, seed=5), vca(Yn, 4, seed=5)
    assert a.indices.tolist() == b.indices.tolist()
    r = nfindr(Y, 4, init="random", seed=3)
    assert sorted(r.indices.tolist()) == sorted(pure.tolist())


def test_extractors_on_samson(shared_data: Path) -> None:
    scene = load_reference_scene(shared_data, "samson")
    for method, limit in (("vca", 0.12), ("nfindr", 0.11), ("sivm", 0.11)):
        ex = extract(scene.spectra, 3, method, seed=0)
        assert sad(ex.endmembers.numpy(), scene.endmembers).mean < limit, method


def test_bad_k() -> None:
    Y = np.random.default_rng(0).random((5, 20))
    with pytest.raises(UsageError, match="only 5 bands"):
        vca(Y, 6)
    with pytest.raises(UsageError, match="only 20 valid pixels"):
        vca(np.random.default_rng(0).random((30, 20)), 21)
    with pytest.raises(UsageError, match="unknown endmember extractor"):
        extract(Y, 2, "ppi")
