"""Unmixing metrics: spectral angle distance of endmembers, abundance/endmember RMSE, and matching.

Layouts (the HySUPP / MATLAB convention): endmembers are ``(bands, p)`` (one column per endmember);
abundances are ``(p, ...)`` with the endmember axis first and any pixel layout after it (``(p, y, x)`` like a
cube, or ``(p, N)``). Estimated endmembers come in arbitrary order, so they are matched to the reference
ones by the Hungarian method (:func:`scipy.optimize.linear_sum_assignment`), either on the SAD matrix of the
endmembers or on the RMSE matrix of the abundance maps. A permutation ``perm`` means: estimate
``perm[k]`` is matched to reference ``k`` (so ``estimate[:, perm]`` is aligned with ``reference``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

from hsikit.errors import UsageError


def _np(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "dims") and hasattr(x, "data"):
        x = x.data
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=np.float64)
    if not np.all(np.isfinite(a)):
        raise UsageError(f"{name} contains NaN or infinite values")
    return a


def _endmembers(estimate: Any, reference: Any) -> tuple[np.ndarray, np.ndarray]:
    e = _np(estimate, "estimate")
    r = _np(reference, "reference")
    if e.ndim != 2 or r.ndim != 2:
        raise UsageError(f"endmembers must be (bands, p) matrices; got {e.shape} and {r.shape}")
    if e.shape[0] != r.shape[0]:
        raise UsageError(f"estimate has {e.shape[0]} bands but reference has {r.shape[0]}")
    if e.shape[1] < r.shape[1]:
        raise UsageError(f"estimate has {e.shape[1]} endmembers, fewer than the reference's {r.shape[1]}")
    return e, r


def sad_matrix(estimate: Any, reference: Any) -> np.ndarray:
    """Spectral angle (radians) between every reference and estimated endmember, ``(p_ref, p_est)``.

    Uses the stable ``2 atan2(||u - v||, ||u + v||)`` form on unit vectors; a zero endmember gives pi/2.
    """
    e, r = _endmembers(estimate, reference)
    ne = np.linalg.norm(e, axis=0)
    nr = np.linalg.norm(r, axis=0)
    u = e / np.where(ne > 0, ne, 1.0)
    v = r / np.where(nr > 0, nr, 1.0)
    diff = np.linalg.norm(v[:, :, None] - u[:, None, :], axis=0)
    summ = np.linalg.norm(v[:, :, None] + u[:, None, :], axis=0)
    ang = 2.0 * np.arctan2(diff, summ)
    ang[(nr == 0)[:, None] | (ne == 0)[None, :]] = math.pi / 2
    return ang


def match_endmembers(estimate: Any, reference: Any) -> np.ndarray:
    """Hungarian matching of estimated to reference endmembers minimising the total SAD.

    Parameters
    ----------
    estimate
        ``(bands, p_est)`` with ``p_est >= p_ref``.
    reference
        ``(bands, p_ref)``.

    Returns
    -------
    numpy.ndarray
        ``perm`` (int, ``(p_ref,)``): estimate ``perm[k]`` is matched to reference ``k``.

    References
    ----------
    Kuhn, H. W. (1955). The Hungarian method for the assignment problem. Naval Res. Logist. Q. 2, 83-97.
    """
    cost = sad_matrix(estimate, reference)
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(cost.shape[0], dtype=np.int64)
    perm[rows] = cols
    return perm


def _abundances(estimate: Any, reference: Any) -> tuple[np.ndarray, np.ndarray]:
    e = _np(estimate, "estimate")
    r = _np(reference, "reference")
    if e.shape[1:] != r.shape[1:]:
        raise UsageError(
            f"abundances must be (p, ...) with the same pixel layout; got {e.shape} and {r.shape}"
        )
    if e.shape[0] < r.shape[0]:
        raise UsageError(f"estimate has {e.shape[0]} abundance maps, fewer than the reference's {r.shape[0]}")
    return e.reshape(e.shape[0], -1), r.reshape(r.shape[0], -1)


def match_abundances(estimate: Any, reference: Any) -> np.ndarray:
    """Hungarian matching of estimated to reference abundance maps minimising the total RMSE.

    This is HySUPP's alignment rule (there with the Euclidean distance, which gives the same assignment).

    Parameters
    ----------
    estimate
        ``(p_est, ...)`` abundances.
    reference
        ``(p_ref, ...)`` abundances with the same pixel layout.

    Returns
    -------
    numpy.ndarray
        ``perm`` (``(p_ref,)``): estimate map ``perm[k]`` is matched to reference map ``k``.
    """
    e, r = _abundances(estimate, reference)
    cost = np.sqrt(((r[:, None, :] - e[None, :, :]) ** 2).mean(axis=2))
    rows, cols = linear_sum_assignment(cost)
    perm = np.empty(cost.shape[0], dtype=np.int64)
    perm[rows] = cols
    return perm


@dataclass(frozen=True)
class SADResult:
    """Spectral angle distance of matched endmembers.

    Attributes
    ----------
    per_endmember
        ``(p_ref,)`` radians, in reference order.
    mean
        Mean over endmembers, radians.
    mean_degrees
        The same in degrees.
    permutation
        ``perm``: estimate ``perm[k]`` is matched to reference ``k``.
    """

    per_endmember: np.ndarray
    mean: float
    mean_degrees: float
    permutation: np.ndarray

    @property
    def per_endmember_degrees(self) -> np.ndarray:
        """Per-endmember SAD in degrees."""
        return np.degrees(self.per_endmember)


def sad(estimate: Any, reference: Any, permutation: Any = "auto") -> SADResult:
    """Spectral angle distance between estimated and reference endmembers, after matching.

    ``SAD_k = arccos( <e_perm[k], m_k> / (||e_perm[k]|| ||m_k||) )``, mean over the ``p`` reference
    endmembers.

    Parameters
    ----------
    estimate
        Estimated endmembers ``(bands, p_est)``, ``p_est >= p``.
    reference
        Reference endmembers ``(bands, p)``.
    permutation
        ``"auto"`` (Hungarian on SAD, :func:`match_endmembers`), ``None`` (identity: the columns are
        already aligned) or an explicit ``perm`` (e.g. from :func:`match_abundances`).

    Returns
    -------
    SADResult
        Per-endmember and mean SAD (radians and degrees) and the permutation used.

    References
    ----------
    Keshava, N., Mustard, J. F. (2002). Spectral unmixing. IEEE Signal Process. Mag. 19(1), 44-57.
    """
    ang = sad_matrix(estimate, reference)
    p = ang.shape[0]
    perm = _resolve_perm(permutation, p, ang.shape[1], lambda: match_endmembers(estimate, reference))
    per = ang[np.arange(p), perm]
    mean = float(per.mean())
    return SADResult(per_endmember=per, mean=mean, mean_degrees=math.degrees(mean), permutation=perm)


def _resolve_perm(permutation: Any, p: int, p_est: int, auto: Any) -> np.ndarray:
    if isinstance(permutation, str):
        if permutation != "auto":
            raise UsageError(f"permutation must be 'auto', None or an index array; got {permutation!r}")
        return auto()
    if permutation is None:
        return np.arange(p)
    perm = np.asarray(permutation, dtype=np.int64).reshape(-1)
    if perm.size != p or len(set(perm.tolist())) != p or perm.min() < 0 or perm.max() >= p_est:
        raise UsageError(f"permutation {perm.tolist()} is not a matching of {p} of {p_est} endmembers")
    return perm


@dataclass(frozen=True)
class RMSEResult:
    """RMSE of matched abundances or endmembers.

    Attributes
    ----------
    global_rmse
        ``sqrt(mean over all p * N entries)`` (HySUPP's aRMSE / 100, the DeepTrans-HSU "abund RMSE").
    per_endmember
        ``(p,)`` RMSE of each matched map/column.
    mean_per_endmember
        Mean of ``per_endmember`` (the Zhu-2017 style number; different from ``global_rmse``).
    permutation
        The matching used.
    """

    global_rmse: float
    per_endmember: np.ndarray
    mean_per_endmember: float
    permutation: np.ndarray


def abundance_rmse(estimate: Any, reference: Any, permutation: Any = None) -> RMSEResult:
    """RMSE between estimated and reference abundance maps (data units, i.e. fractions).

    Parameters
    ----------
    estimate
        ``(p_est, ...)`` abundances (e.g. ``(p, y, x)`` or ``(p, N)``).
    reference
        ``(p, ...)`` with the same pixel layout.
    permutation
        ``None`` (identity), ``"auto"`` (Hungarian on abundance RMSE, :func:`match_abundances`) or an
        explicit ``perm``, typically the one from :func:`sad` so both metrics use the same matching.

    Returns
    -------
    RMSEResult
        Global and per-endmember RMSE.

    References
    ----------
    Rasti, B. et al. (2024). Image processing and machine learning for hyperspectral unmixing: an
    overview and the HySUPP Python package. IEEE TGRS 62, 1-31.
    """
    e, r = _abundances(estimate, reference)
    perm = _resolve_perm(permutation, r.shape[0], e.shape[0], lambda: match_abundances(estimate, reference))
    d = e[perm] - r
    per = np.sqrt((d * d).mean(axis=1))
    return RMSEResult(
        global_rmse=float(np.sqrt((d * d).mean())),
        per_endmember=per,
        mean_per_endmember=float(per.mean()),
        permutation=perm,
    )


def endmember_rmse(estimate: Any, reference: Any, permutation: Any = "auto") -> RMSEResult:
    """RMSE between matched endmember spectra, in data units (no normalisation: scale-sensitive).

    Parameters
    ----------
    estimate
        ``(bands, p_est)``.
    reference
        ``(bands, p)``.
    permutation
        ``"auto"`` (Hungarian on SAD), ``None`` (identity) or an explicit ``perm``.

    Returns
    -------
    RMSEResult
        Global RMSE over all bands and endmembers, and per endmember.

    References
    ----------
    Rasti, B. et al. (2024). IEEE TGRS 62 (HySUPP).
    """
    e, r = _endmembers(estimate, reference)
    perm = _resolve_perm(permutation, r.shape[1], e.shape[1], lambda: match_endmembers(estimate, reference))
    d = e[:, perm] - r
    per = np.sqrt((d * d).mean(axis=0))
    return RMSEResult(
        global_rmse=float(np.sqrt((d * d).mean())),
        per_endmember=per,
        mean_per_endmember=float(per.mean()),
        permutation=perm,
    )
