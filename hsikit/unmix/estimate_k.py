"""How many endmembers? Virtual dimensionality (HFC, NWHFC) and the HySime signal subspace.

All take spectra ``Y`` ``(L, N)``. HySime itself lives in :mod:`hsikit.data.noise_estimation` (shared
with denoising); NWHFC whitens with its noise estimate.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from scipy.stats import norm

from hsikit.errors import UsageError
from hsikit.unmix.abundances import as_tensor

METHODS = ("hysime", "hfc", "nwhfc")


def _hfc_count(Y: torch.Tensor, far: float) -> int:
    L, N = Y.shape
    R = Y @ Y.T / N
    m = Y.mean(1, keepdim=True)
    C = R - m @ m.T
    lr = torch.linalg.eigvalsh(R).flip(0)
    lc = torch.linalg.eigvalsh(C).flip(0)
    sigma = torch.sqrt(2.0 * (lr**2 + lc**2) / N)
    tau = float(norm.isf(far)) * sigma
    return int(((lr - lc) > tau).sum())


def hfc(Y: Any, *, far: float = 1e-3) -> int:
    """Harsanyi-Farrand-Chang virtual dimensionality.

    Counts the bands where the eigenvalue of the sample correlation exceeds that of the covariance by
    more than a Neyman-Pearson threshold: under "no signal in this direction" the difference is zero
    mean with variance ``2 (lambda_R^2 + lambda_K^2) / N``; the threshold is that standard deviation
    times the ``1 - far`` normal quantile.

    Parameters
    ----------
    Y
        ``(L, N)`` spectra.
    far
        False-alarm probability (1e-3 ... 1e-5 are usual).

    References
    ----------
    Chang, C.-I., Du, Q. (2004). Estimation of number of spectrally distinct signal sources in
    hyperspectral imagery. IEEE TGRS 42(3), 608-619.
    """
    Y = _check(Y, far)
    return _hfc_count(Y, far)


def nwhfc(Y: Any, *, far: float = 1e-3) -> int:
    """Noise-whitened HFC: divide every band by its noise standard deviation (HySime's regression
    estimate, :func:`hsikit.data.noise_estimation.estimate_noise`) and count as :func:`hfc`."""
    from hsikit.data.noise_estimation import estimate_noise

    Y = _check(Y, far)
    sigma = estimate_noise(Y).sigma.to(Y.dtype)
    sigma = torch.where(sigma > 0, sigma, sigma[sigma > 0].min() if bool((sigma > 0).any()) else torch.ones_like(sigma))
    return _hfc_count(Y / sigma[:, None], far)


def hysime_k(Y: Any) -> int:
    """Dimension of the HySime signal subspace of spectra ``(L, N)``."""
    from hsikit.data.noise_estimation import hysime

    Y = _check(Y, 1e-3)
    return int(hysime(Y).dim)


def estimate_n_endmembers(Y: Any, method: str = "hysime", *, far: float = 1e-3) -> int:
    """Number of endmembers of spectra ``(L, N)`` by ``method`` (``hysime``, ``hfc`` or ``nwhfc``).

    The result is at least 2 (one endmember is not an unmixing problem) and at most ``min(L, N)``.
    """
    if method == "hysime":
        k = hysime_k(Y)
    elif method == "hfc":
        k = hfc(Y, far=far)
    elif method == "nwhfc":
        k = nwhfc(Y, far=far)
    else:
        raise UsageError(f"unknown endmember-count method {method!r} (use one of {', '.join(METHODS)})")
    t = as_tensor(Y)
    return int(min(max(k, 2), t.shape[0], t.shape[1]))


def _check(Y: Any, far: float) -> torch.Tensor:
    t = as_tensor(Y)
    if t.ndim != 2 or t.shape[1] < 2:
        raise UsageError(f"spectra must be (L, N) with N >= 2, got shape {tuple(t.shape)}")
    if not 0 < far < 0.5 or math.isnan(far):
        raise UsageError(f"false-alarm rate must be in (0, 0.5), got {far}")
    return t
