"""The spectral baselines predict from their own arrays exactly what scikit-learn predicts."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier as SkRF
from sklearn.svm import SVC

from hsikit.classify.baselines import RandomForestClassifier, SVMClassifier, fit_temperature, ovr_from_ovo


def _data(k, n=240, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    X = rng.normal(size=(n, 6)).astype(np.float32)
    X[:, 0] += 1.5 * y
    return X, y, rng.normal(size=(300, 6)).astype(np.float32)


@pytest.mark.parametrize("k", [2, 4])
def test_svm_decision_values_match_sklearn(k):
    X, y, Xt = _data(k)
    sk = SVC(C=3.0, gamma=0.2, decision_function_shape="ovo").fit(X, y)
    est = SVMClassifier(k)
    est._from_sklearn(sk)
    dec = sk.decision_function(Xt)
    if k == 2:
        np.testing.assert_allclose(est.decision_ovo(Xt)[:, 0], -dec, atol=1e-9)
    else:
        np.testing.assert_allclose(est.decision_ovo(Xt), dec, atol=1e-9)
        sk.decision_function_shape = "ovr"
        np.testing.assert_allclose(est.scores(Xt), sk.decision_function(Xt), atol=1e-9)
    assert (est.scores(Xt).argmax(1) == sk.predict(Xt)).mean() > 0.98  # ovo vote ties aside


def test_svm_fit_probabilities_keep_the_svm_decision():
    X, y, Xt = _data(3)
    est = SVMClassifier(3)
    info = est.fit(X[:180], y[:180], X[180:], y[180:], class_weight=np.ones(3), seed=0)
    assert len(info["selection_aa"]) == 12 and info["C"] in (1.0, 10.0, 100.0, 1000.0)
    p = est.predict_proba(Xt[:, :, None, None])
    np.testing.assert_allclose(p.sum(1), 1.0, rtol=1e-5)
    np.testing.assert_array_equal(p.argmax(1), est.scores(Xt).argmax(1))
    clone = SVMClassifier(3, **{k: v for k, v in est.config.items()})
    clone.load_arrays(est.arrays())
    np.testing.assert_array_equal(clone.predict_proba(Xt), p)


def test_ovr_from_ovo_votes():
    # three classes, pairs (0,1), (0,2), (1,2): class 0 beats both, 1 beats 2
    s = ovr_from_ovo(np.array([[1.0, 2.0, 0.5]]), 3)
    assert s.argmax() == 0
    np.testing.assert_allclose(s[0, :].round(), [2, 1, 0])


def test_fit_temperature_recovers_scale():
    rng = np.random.default_rng(1)
    s = rng.normal(size=(4000, 3))
    p = np.exp(2.0 * s)
    p /= p.sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=row) for row in p])
    assert abs(fit_temperature(s, y) - 2.0) < 0.2


def test_random_forest_matches_sklearn():
    X, y, Xt = _data(4)
    sk = SkRF(n_estimators=15, random_state=0).fit(X, y)
    est = RandomForestClassifier(5)
    est._from_sklearn(sk)
    p = est.predict_proba(Xt)
    np.testing.assert_allclose(p[:, :4], sk.predict_proba(Xt), atol=1e-6)
    assert np.all(p[:, 4] == 0)
