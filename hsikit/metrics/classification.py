"""Classification accuracy: confusion matrix, OA, AA, per-class recall/precision/F1, kappa, IoU.

Convention: rows of the confusion matrix are the **reference** classes, columns the **predicted** classes
(``C[i, j]`` = pixels of reference class ``classes[i]`` predicted as ``classes[j]``). Pixels whose reference
label equals ``ignore_label`` (default 0 = unlabelled) are not scored. A prediction equal to
``ignore_label`` at a labelled pixel ("unclassified") is an error; it gets its own column/row in the
matrix (with no reference pixels), so it lowers OA and the recall of the true class but has no recall
of its own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hsikit.errors import UsageError


def _labels(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "dims") and hasattr(x, "data"):
        x = x.data
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or not np.all(a == np.round(a)):
            raise UsageError(f"{name} must hold integer class labels; found non-integer values")
        a = a.astype(np.int64)
    elif a.dtype.kind not in "biu":
        raise UsageError(f"{name} must hold integer class labels; got dtype {a.dtype}")
    return a.astype(np.int64, copy=False)


@dataclass(frozen=True)
class ConfusionMatrix:
    """A confusion matrix with its class labels and the derived scores.

    Attributes
    ----------
    matrix
        ``(K, K)`` int64 counts; rows = reference, columns = prediction.
    classes
        ``(K,)`` the class label of each row/column.
    """

    matrix: np.ndarray
    classes: np.ndarray

    @property
    def n(self) -> int:
        """Number of scored pixels."""
        return int(self.matrix.sum())

    @property
    def support(self) -> np.ndarray:
        """Reference pixels per class (row sums)."""
        return self.matrix.sum(axis=1)

    def overall_accuracy(self) -> float:
        """OA = trace(C) / N."""
        return float(np.trace(self.matrix) / self.n) if self.n else float("nan")

    def recall(self) -> np.ndarray:
        """Per-class recall (producer's accuracy) = C_ii / row_i; NaN for classes with no reference pixel."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.matrix) / self.matrix.sum(axis=1)

    def precision(self) -> np.ndarray:
        """Per-class precision (user's accuracy) = C_ii / col_i; NaN for classes never predicted."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.diag(self.matrix) / self.matrix.sum(axis=0)

    def f1(self) -> np.ndarray:
        """Per-class F1 = 2 C_ii / (row_i + col_i)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return 2 * np.diag(self.matrix) / (self.matrix.sum(axis=0) + self.matrix.sum(axis=1))

    def iou(self) -> np.ndarray:
        """Per-class intersection over union = C_ii / (row_i + col_i - C_ii)."""
        d = np.diag(self.matrix)
        with np.errstate(invalid="ignore", divide="ignore"):
            return d / (self.matrix.sum(axis=0) + self.matrix.sum(axis=1) - d)

    def _scored(self) -> np.ndarray:
        return self.support > 0

    def average_accuracy(self) -> float:
        """AA = mean recall over the classes present in the reference."""
        return float(np.mean(self.recall()[self._scored()]))

    def mean_iou(self) -> float:
        """mIoU = mean IoU over the classes present in the reference."""
        return float(np.mean(self.iou()[self._scored()]))

    def kappa(self) -> float:
        """Cohen's kappa = (p_o - p_e) / (1 - p_e), p_e = sum_k row_k col_k / N^2."""
        n = float(self.n)
        po = np.trace(self.matrix) / n
        pe = float(np.sum(self.matrix.sum(axis=0).astype(np.float64) * self.matrix.sum(axis=1))) / (n * n)
        return float((po - pe) / (1 - pe)) if pe != 1 else float("nan")


def confusion_matrix(
    estimate: Any, reference: Any, ignore_label: int | None = 0, classes: Any = None
) -> ConfusionMatrix:
    """Confusion matrix of a predicted label map against reference labels.

    Parameters
    ----------
    estimate
        Predicted labels, any shape (e.g. ``(y, x)``), integers.
    reference
        Reference labels, same shape.
    ignore_label
        Reference label that marks unlabelled pixels (not scored); None scores every pixel.
    classes
        The class labels (rows/columns, in order). Default: the sorted union of the reference labels and
        the predicted labels at scored pixels. Predictions outside ``classes`` raise :class:`UsageError`.

    Returns
    -------
    ConfusionMatrix
        Rows = reference, columns = prediction.

    References
    ----------
    Congalton, R. G. (1991). A review of assessing the accuracy of classifications of remotely sensed
    data. Remote Sens. Environ. 37(1), 35-46.
    """
    pred = _labels(estimate, "estimate")
    ref = _labels(reference, "reference")
    if pred.shape != ref.shape:
        raise UsageError(f"estimate has shape {pred.shape} but reference has shape {ref.shape}")
    keep = np.ones(ref.shape, bool) if ignore_label is None else ref != ignore_label
    p = pred[keep]
    r = ref[keep]
    if r.size == 0:
        raise UsageError("reference has no labelled pixel (all equal ignore_label)")
    cls = np.union1d(np.unique(r), np.unique(p)) if classes is None else np.asarray(classes, dtype=np.int64)
    ri = np.searchsorted(cls, r) if classes is None else _index_of(cls, r, "reference")
    pi = np.searchsorted(cls, p) if classes is None else _index_of(cls, p, "estimate")
    k = cls.size
    mat = np.bincount(ri * k + pi, minlength=k * k).reshape(k, k).astype(np.int64)
    return ConfusionMatrix(matrix=mat, classes=cls)


def _index_of(cls: np.ndarray, values: np.ndarray, name: str) -> np.ndarray:
    order = np.argsort(cls)
    pos = np.searchsorted(cls[order], values)
    pos = np.clip(pos, 0, cls.size - 1)
    idx = order[pos]
    bad = cls[idx] != values
    if bad.any():
        raise UsageError(f"{name} has labels not in classes: {sorted(set(values[bad].tolist()))[:10]}")
    return idx


def overall_accuracy(estimate: Any, reference: Any, ignore_label: int | None = 0) -> float:
    """Overall accuracy OA = correctly classified / scored pixels, in [0, 1] (see :func:`confusion_matrix`)."""
    return confusion_matrix(estimate, reference, ignore_label).overall_accuracy()


def average_accuracy(estimate: Any, reference: Any, ignore_label: int | None = 0) -> float:
    """Average accuracy AA = mean per-class recall over reference classes, in [0, 1]."""
    return confusion_matrix(estimate, reference, ignore_label).average_accuracy()


def cohen_kappa(estimate: Any, reference: Any, ignore_label: int | None = 0) -> float:
    """Cohen's kappa coefficient, in [-1, 1].

    References
    ----------
    Cohen, J. (1960). A coefficient of agreement for nominal scales. Educ. Psychol. Meas. 20(1), 37-46.
    """
    return confusion_matrix(estimate, reference, ignore_label).kappa()


def mean_iou(estimate: Any, reference: Any, ignore_label: int | None = 0) -> float:
    """Mean intersection over union over reference classes, in [0, 1].

    References
    ----------
    Everingham, M. et al. (2010). The PASCAL visual object classes (VOC) challenge. IJCV 88(2), 303-338.
    """
    return confusion_matrix(estimate, reference, ignore_label).mean_iou()


def per_class_scores(estimate: Any, reference: Any, ignore_label: int | None = 0) -> dict[str, np.ndarray]:
    """Per-class ``classes``, ``support``, ``recall``, ``precision``, ``f1`` and ``iou`` arrays."""
    cm = confusion_matrix(estimate, reference, ignore_label)
    return {
        "classes": cm.classes,
        "support": cm.support,
        "recall": cm.recall(),
        "precision": cm.precision(),
        "f1": cm.f1(),
        "iou": cm.iou(),
    }
