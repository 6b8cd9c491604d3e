"""Classification metrics on a textbook confusion matrix and on label maps with an ignore label."""

from __future__ import annotations

import json

import numpy as np
import pytest

from hsikit.metrics import ConfusionMatrix, classification_report, cohen_kappa, confusion_matrix, overall_accuracy

# Congalton, R. G. (1991). A review of assessing the accuracy of classifications of remotely sensed data.
# Remote Sens. Environ. 37, 35-46, Table 1 (also in Congalton & Green, "Assessing the Accuracy of Remotely
# Sensed Data"): classes D (deciduous), C (conifer), BA (barren), SB (shrub); rows there are the
# classified map and columns the reference, so our (rows = reference) matrix is its transpose.
# Published: OA = 321/434 = 74%, KHAT = 0.65; producer's accuracy D 87%, C 79%, BA 74%, SB 64%.
CONGALTON = np.array(
    [
        [65, 4, 22, 24],
        [6, 81, 5, 8],
        [0, 11, 85, 19],
        [4, 7, 3, 90],
    ]
)


def test_kappa_on_congalton_textbook_matrix() -> None:
    cm = ConfusionMatrix(matrix=CONGALTON.T.copy(), classes=np.arange(1, 5))
    assert cm.n == 434
    assert cm.overall_accuracy() == pytest.approx(321 / 434)
    # p_e = (115*75 + 100*103 + 115*115 + 104*141) / 434^2 = 46814 / 188356
    pe = 46814 / 188356
    assert cm.kappa() == pytest.approx((321 / 434 - pe) / (1 - pe), abs=1e-12)
    assert round(cm.kappa(), 2) == 0.65
    np.testing.assert_allclose(np.round(100 * cm.recall()), [87, 79, 74, 64])
    np.testing.assert_allclose(np.round(100 * cm.precision()), [57, 81, 74, 87])


def test_label_maps_rebuild_the_textbook_matrix_and_ignore_label() -> None:
    ref, pred = [], []
    for i in range(4):
        for j in range(4):
            n = CONGALTON[j, i]  # reference i predicted as j
            ref += [i + 1] * n
            pred += [j + 1] * n
    ref = np.array(ref + [0] * 50)  # 50 unlabelled pixels, predicted as anything
    pred = np.array(pred + [3] * 50)
    cm = confusion_matrix(pred, ref)
    np.testing.assert_array_equal(cm.matrix, CONGALTON.T)
    assert cohen_kappa(pred, ref) == pytest.approx(cm.kappa())
    assert overall_accuracy(pred, ref) == pytest.approx(321 / 434)


def test_unclassified_prediction_is_an_error_and_report_is_json() -> None:
    ref = np.array([[1, 1, 2, 2], [0, 0, 2, 1]])
    pred = np.array([[1, 0, 2, 2], [5, 1, 1, 1]])
    rep = classification_report(pred, ref, class_names={1: "roof", 2: "tree"})
    json.dumps(rep, allow_nan=False)
    assert rep["n_pixels"] == 6
    assert rep["oa"] == pytest.approx(4 / 6)
    assert rep["confusion_labels"] == [0, 1, 2]  # 0 = predicted "unlabelled" at a labelled pixel
    names = {c["label"]: c["name"] for c in rep["classes"]}
    assert names[1] == "roof" and names[2] == "tree"
    assert rep["aa"] == pytest.approx((2 / 3 + 2 / 3) / 2)  # classes without reference pixels are not averaged
    assert 0 <= rep["miou"] <= 1
