"""Spectral baselines: SVM with an RBF kernel and a random forest on standardised spectra.

Both are fitted with scikit-learn; prediction runs from the fitted arrays (support vectors, dual
coefficients, Platt parameters; tree node tables) in numpy, so a model file holds plain arrays
(no pickle) and a loaded model predicts exactly what the fitted one did. The numpy prediction
reproduces scikit-learn's decision values (SVM) and ``predict_proba`` (the forest's mean of leaf
class fractions); the tests compare them. SVM probabilities are a temperature-scaled softmax of
the one-vs-rest scores, the temperature fitted on the early-stopping pixels (scikit-learn 1.9
deprecates libsvm's internal Platt scaling).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hsikit.classify.estimator import Estimator, register_kind

CHUNK = 8192


def _flat(X: np.ndarray) -> np.ndarray:
    """(N, C, p, p) -> (N, C) centre spectra."""
    X = np.asarray(X)
    if X.ndim == 4:
        X = X[:, :, X.shape[2] // 2, X.shape[3] // 2]
    return np.ascontiguousarray(X, dtype=np.float32)


# -------------------------------------------------------------------------------------------- SVM


def ovr_from_ovo(dec: np.ndarray, k: int) -> np.ndarray:
    """One-vs-rest scores ``(N, K)`` from libsvm one-vs-one decision values ``(N, K(K-1)/2)``.

    Votes plus the summed pairwise confidences squashed into (-1/3, 1/3), as scikit-learn's
    ``decision_function_shape="ovr"``; the arg-max is the one-vs-one vote winner.
    """
    if k == 2:
        return np.stack([dec[:, 0], -dec[:, 0]], 1)
    votes = np.zeros((dec.shape[0], k))
    conf = np.zeros((dec.shape[0], k))
    p = 0
    for i in range(k):
        for j in range(i + 1, k):
            conf[:, i] += dec[:, p]
            conf[:, j] -= dec[:, p]
            votes[:, i] += dec[:, p] > 0
            votes[:, j] += dec[:, p] <= 0
            p += 1
    return votes + conf / (3 * (np.abs(conf) + 1))


def fit_temperature(scores: np.ndarray, y: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Temperature T > 0 minimising the negative log-likelihood of softmax(T scores) for indices ``y``."""
    from scipy.optimize import minimize_scalar

    if valid is not None:
        scores, y = scores[valid], y[valid]
    if y.size == 0:
        return 1.0

    def nll(log_t: float) -> float:
        z = np.exp(log_t) * scores
        z = z - z.max(1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(1)) - z[np.arange(y.size), y]))

    res = minimize_scalar(nll, bounds=(-5.0, 5.0), method="bounded")
    return float(np.exp(res.x))


@register_kind
class SVMClassifier(Estimator):
    """RBF-kernel SVM on standardised spectra (one-vs-one), with calibrated probabilities.

    ``C`` and ``gamma`` are chosen on the early-stopping pixels (best average accuracy) from a
    small grid (``C`` in 1..1000, ``gamma`` = (0.1, 1, 10) / (features x variance)) unless given.
    Probabilities: softmax(T s) of the one-vs-rest scores ``s`` (:func:`ovr_from_ovo`), the
    temperature T fitted on the early-stopping pixels (:func:`fit_temperature`); the arg-max, and so
    the class map, is the SVM's own decision.
    """

    kind = "svm"

    def __init__(self, n_classes: int, C: float | None = None, gamma: float | None = None, **config: Any) -> None:
        super().__init__(n_classes, C=C, gamma=gamma, **config)

    def fit(self, X, y, X_stop, y_stop, *, class_weight, seed, epochs=None, device="cpu") -> dict[str, Any]:
        from sklearn.svm import SVC

        X = _flat(X)
        weights = {int(k): float(w) for k, w in enumerate(class_weight) if w > 0}
        base = 1.0 / (X.shape[1] * float(X.var()) or 1.0)
        grid_c = [self.config["C"]] if self.config["C"] else [1.0, 10.0, 100.0, 1000.0]
        grid_g = [self.config["gamma"]] if self.config["gamma"] else [base * f for f in (0.1, 1.0, 10.0)]
        have_stop = X_stop is not None and len(y_stop) > 0
        scores: dict[tuple[float, float], float] = {}
        fitted: dict[tuple[float, float], Any] = {}
        if (len(grid_c) > 1 or len(grid_g) > 1) and have_stop:
            for c in grid_c:
                for g in grid_g:
                    m = SVC(C=c, gamma=g, class_weight=weights, decision_function_shape="ovo").fit(X, y)
                    pred = m.predict(_flat(X_stop))
                    scores[(c, g)] = float(np.mean([np.mean(pred[y_stop == k] == k) for k in np.unique(y_stop)]))
                    fitted[(c, g)] = m
            c, g = max(scores, key=scores.__getitem__)
            m = fitted[(c, g)]
        else:
            c, g = grid_c[0], grid_g[0]
            m = SVC(C=c, gamma=g, class_weight=weights, decision_function_shape="ovo").fit(X, y)
        self._from_sklearn(m)
        self.config.update(C=float(c), gamma=float(g))
        self.temperature = 1.0
        if have_stop:
            self.temperature = fit_temperature(self.scores(X_stop), np.searchsorted(self.labels, y_stop),
                                               valid=np.isin(y_stop, self.labels))
        return {"C": float(c), "gamma": float(g), "support_vectors": int(self.sv.shape[0]),
                "selection_aa": {f"C={key[0]:g},gamma={key[1]:.3g}": v for key, v in scores.items()}}

    def _from_sklearn(self, m: Any) -> None:
        self.sv = np.asarray(m.support_vectors_, np.float64)
        self.dual = np.asarray(m._dual_coef_, np.float64)
        self.intercept = np.asarray(m._intercept_, np.float64)
        self.n_support = np.asarray(m.n_support_, np.int64)
        self.labels = np.asarray(m.classes_, np.int64)
        self.gamma = float(m._gamma)

    def decision_ovo(self, X: np.ndarray) -> np.ndarray:
        """libsvm decision values ``(N, K'(K'-1)/2)`` over the trained classes, pairs (0,1), (0,2), ...;
        positive = the first class of the pair."""
        X = _flat(X).astype(np.float64)
        d2 = (X * X).sum(1)[:, None] + (self.sv * self.sv).sum(1)[None, :] - 2.0 * X @ self.sv.T
        kmat = np.exp(-self.gamma * np.maximum(d2, 0.0))
        start = np.concatenate([[0], np.cumsum(self.n_support)])
        k = self.labels.size
        out = np.empty((X.shape[0], k * (k - 1) // 2))
        p = 0
        for i in range(k):
            for j in range(i + 1, k):
                si, sj = slice(start[i], start[i + 1]), slice(start[j], start[j + 1])
                out[:, p] = kmat[:, si] @ self.dual[j - 1, si] + kmat[:, sj] @ self.dual[i, sj] + self.intercept[p]
                p += 1
        return out

    def scores(self, X: np.ndarray) -> np.ndarray:
        """One-vs-rest scores ``(N, K')`` over the trained classes."""
        return ovr_from_ovo(self.decision_ovo(X), self.labels.size)

    def predict_proba(self, X: np.ndarray, *, device: str = "cpu") -> np.ndarray:
        X = _flat(X)
        out = np.zeros((X.shape[0], self.n_classes), np.float32)
        for s in range(0, X.shape[0], CHUNK):
            z = self.temperature * self.scores(X[s : s + CHUNK])
            z -= z.max(1, keepdims=True)
            e = np.exp(z)
            out[s : s + CHUNK, self.labels] = e / e.sum(1, keepdims=True)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {"sv": self.sv, "dual": self.dual, "intercept": self.intercept, "n_support": self.n_support,
                "labels": self.labels, "gamma": np.array([self.gamma]), "temperature": np.array([self.temperature])}

    def load_arrays(self, a: dict[str, np.ndarray]) -> None:
        self.sv, self.dual, self.intercept = a["sv"], a["dual"], a["intercept"]
        self.n_support, self.labels, self.gamma = a["n_support"], a["labels"], float(a["gamma"][0])
        self.temperature = float(a["temperature"][0])


# ---------------------------------------------------------------------------------- random forest


@register_kind
class RandomForestClassifier(Estimator):
    """Random forest on standardised spectra (balanced class weights, sqrt(features) per split)."""

    kind = "rf"

    def __init__(self, n_classes: int, n_estimators: int = 200, max_features: str = "sqrt",
                 min_samples_leaf: int = 1, **config: Any) -> None:
        super().__init__(n_classes, n_estimators=n_estimators, max_features=max_features,
                         min_samples_leaf=min_samples_leaf, **config)

    def fit(self, X, y, X_stop, y_stop, *, class_weight, seed, epochs=None, device="cpu") -> dict[str, Any]:
        from sklearn.ensemble import RandomForestClassifier as RF

        X = _flat(X)
        weights = {int(k): float(w) for k, w in enumerate(class_weight) if w > 0}
        m = RF(n_estimators=self.config["n_estimators"], max_features=self.config["max_features"],
               min_samples_leaf=self.config["min_samples_leaf"], class_weight=weights, random_state=seed, n_jobs=1)
        m.fit(X, y)
        self._from_sklearn(m)
        return {"trees": len(m.estimators_), "nodes": int(self.left.size)}

    def _from_sklearn(self, m: Any) -> None:
        lefts, rights, feats, thrs, vals, roots = [], [], [], [], [], []
        offset = 0
        classes = np.asarray(m.classes_, np.int64)
        for est in m.estimators_:
            t = est.tree_
            left = t.children_left.astype(np.int64)
            right = t.children_right.astype(np.int64)
            leaf = left < 0
            lefts.append(np.where(leaf, -1, left + offset))
            rights.append(np.where(leaf, -1, right + offset))
            feats.append(np.where(leaf, 0, t.feature).astype(np.int64))
            thrs.append(t.threshold.astype(np.float64))
            v = t.value[:, 0, :].astype(np.float64)
            v = v / np.where(v.sum(1, keepdims=True) == 0, 1, v.sum(1, keepdims=True))
            full = np.zeros((v.shape[0], self.n_classes))
            full[:, classes] = v
            vals.append(full)
            roots.append(offset)
            offset += left.size
        self.left, self.right = np.concatenate(lefts), np.concatenate(rights)
        self.feature, self.threshold = np.concatenate(feats), np.concatenate(thrs)
        self.value, self.roots = np.concatenate(vals).astype(np.float32), np.asarray(roots, np.int64)

    def predict_proba(self, X: np.ndarray, *, device: str = "cpu") -> np.ndarray:
        # scikit-learn compares float32 features with float64 thresholds
        X = _flat(X)
        out = np.zeros((X.shape[0], self.n_classes), np.float32)
        for s in range(0, X.shape[0], CHUNK):
            x = X[s : s + CHUNK].astype(np.float64)
            rows = np.arange(x.shape[0])[:, None]
            node = np.broadcast_to(self.roots[None, :], (x.shape[0], self.roots.size)).copy()
            while True:
                inner = self.left[node] >= 0
                if not inner.any():
                    break
                go_left = x[rows, self.feature[node]] <= self.threshold[node]
                node = np.where(inner, np.where(go_left, self.left[node], self.right[node]), node)
            out[s : s + CHUNK] = self.value[node].mean(1)
        return out

    def arrays(self) -> dict[str, np.ndarray]:
        return {"left": self.left, "right": self.right, "feature": self.feature, "threshold": self.threshold,
                "value": self.value, "roots": self.roots}

    def load_arrays(self, a: dict[str, np.ndarray]) -> None:
        self.left, self.right, self.feature = a["left"], a["right"], a["feature"]
        self.threshold, self.value, self.roots = a["threshold"], a["value"], a["roots"]
