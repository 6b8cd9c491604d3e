"""The one fit/predict interface every classifier follows, and the registry of classifier kinds.

An estimator sees features only: ``X`` is ``(N, C, p, p)`` float32 (C features per pixel after
:class:`~hsikit.classify.features.SpectralPrep`, ``p = estimator.patch``; spectral models have
``p = 1``), ``y`` are class *indices* 0..K-1. It returns probabilities ``(N, K)``. Its state is a
JSON-able config plus named numpy arrays, which :mod:`hsikit.classify.modelfile` writes into one
safetensors file.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np

from hsikit.errors import UsageError

_KINDS: dict[str, type[Estimator]] = {}


def register_kind(cls: type[Estimator]) -> type[Estimator]:
    """Class decorator: make an estimator available by its ``kind`` name."""
    _KINDS[cls.kind] = cls
    return cls


def estimator_class(kind: str) -> type[Estimator]:
    """The estimator class registered as ``kind`` (svm, rf, cnn3d, morpmamba)."""
    _load_all()
    if kind not in _KINDS:
        raise UsageError(f"unknown classifier {kind!r} (use one of {', '.join(sorted(_KINDS))})")
    return _KINDS[kind]


def kinds() -> list[str]:
    """Registered classifier names."""
    _load_all()
    return sorted(_KINDS)


def _load_all() -> None:
    import importlib

    for mod in ("baselines", "cnn3d", "morpmamba"):
        try:
            importlib.import_module(f"hsikit.classify.{mod}")
        except ModuleNotFoundError as exc:  # a model whose building blocks are not there yet
            if not (exc.name or "").startswith("hsikit."):
                raise


class Estimator(ABC):
    """Base class: ``fit`` on features, ``predict_proba``, and a serialisable state."""

    kind: ClassVar[str]
    #: spatial patch edge the estimator needs (1 = single spectra)
    patch: int = 1
    #: PCA components the spectral front should produce (None: standardised bands)
    pca: int | None = None

    def __init__(self, n_classes: int, **config: Any) -> None:
        self.n_classes = int(n_classes)
        self.config = dict(config)

    @abstractmethod
    def fit(self, X: np.ndarray, y: np.ndarray, X_stop: np.ndarray | None, y_stop: np.ndarray | None, *,
            class_weight: np.ndarray, seed: int, epochs: int | None, device: str) -> dict[str, Any]:
        """Fit on ``X (N, C, p, p)``, ``y (N,)`` class indices; ``X_stop``/``y_stop`` (spatially separate
        pixels) drive early stopping or model selection. Returns a summary (history, chosen settings)."""

    @abstractmethod
    def predict_proba(self, X: np.ndarray, *, device: str = "cpu") -> np.ndarray:
        """``(N, C, p, p)`` features -> ``(N, K)`` float32 class probabilities."""

    @abstractmethod
    def arrays(self) -> dict[str, np.ndarray]:
        """The fitted state as named arrays (prefix-free names)."""

    @abstractmethod
    def load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        """Restore the fitted state written by :meth:`arrays`."""

    def state_config(self) -> dict[str, Any]:
        """JSON-able configuration needed to rebuild the estimator before :meth:`load_arrays`."""
        return {"n_classes": self.n_classes, **self.config}
