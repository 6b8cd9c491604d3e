"""Unmixing metrics: SAD/RMSE by hand, Hungarian matching, and the published DeepTrans-HSU numbers."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio

from hsikit.metrics import abundance_rmse, endmember_rmse, match_abundances, match_endmembers, sad, unmixing_report


def test_sad_by_hand_and_matching_recovers_permutation() -> None:
    ref = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])  # (bands=3, p=3)
    est = ref[:, [2, 0, 1]] * np.array([2.0, 3.0, 0.5])  # permuted and rescaled
    r = sad(est, ref)
    np.testing.assert_array_equal(r.permutation, [1, 2, 0])
    assert r.mean == pytest.approx(0.0, abs=1e-15)
    tilted = ref.copy()
    tilted[:, 0] = [1.0, 1.0, 0.0]  # 45 degrees away from [1, 0, 0]
    r2 = sad(tilted, ref, permutation=None)
    assert r2.per_endmember[0] == pytest.approx(math.pi / 4)
    assert r2.mean_degrees == pytest.approx(15.0)


def test_abundance_rmse_global_vs_per_endmember_and_matching() -> None:
    ref = np.zeros((2, 2, 2))
    ref[0] = [[1, 0], [1, 0]]
    ref[1] = 1 - ref[0]
    est = ref[::-1].copy()
    est[0, 0, 0] += 0.4  # estimate 0 is reference 1, with one error of 0.4
    perm = match_abundances(est, ref)
    np.testing.assert_array_equal(perm, [1, 0])
    r = abundance_rmse(est, ref, permutation=perm)
    assert r.global_rmse == pytest.approx(math.sqrt(0.16 / 8))
    np.testing.assert_allclose(r.per_endmember, [0.0, math.sqrt(0.16 / 4)])
    assert r.mean_per_endmember == pytest.approx(math.sqrt(0.16 / 4) / 2)
    e = endmember_rmse(np.eye(3)[:, [1, 0]], np.eye(3)[:, :2])
    assert e.global_rmse == 0.0 and list(e.permutation) == [1, 0]


# README section 3, from the Results/ files of DeepTrans-HSU (Ghosh et al., TGRS 2022)
SAMSON_SAD = {"E_VCA": 0.0925, "E_NMF": 0.5610, "E_SiVM": 0.0854, "E_uDAS": 0.0948, "E_Coll": 0.0796,
              "E_CYCU": 0.1581, "E_Tra": 0.0510}
APEX_SAD = {"E_VCA": 0.4052, "E_NMF": 0.6721, "E_SiVM": 0.1994, "E_uDAS": 0.2267, "E_Coll": 0.3744,
            "E_CYCU": 0.3228, "E_Tra": 0.0867}
SAMSON_RMSE = {"a_FCLSU": 0.1387, "a_NMF": 0.1866, "a_uDAS": 0.1867, "a_UnDIP": 0.1763, "a_Collab": 0.1159,
               "a_CYCU": 0.2222, "a_Tra": 0.0783}
APEX_RMSE = {"a_FCLSU": 0.1543, "a_NMF": 0.2692, "a_uDAS": 0.2210, "a_UnDIP": 0.2809, "a_Collab": 0.1997,
             "a_CYCU": 0.2046, "a_Tra": 0.1264}


@pytest.mark.parametrize(
    ("folder", "name", "sads", "rmses"),
    [("samson", "Samson", SAMSON_SAD, SAMSON_RMSE), ("apex_gt_only", "Apex", APEX_SAD, APEX_RMSE)],
)
def test_reproduces_deeptrans_hsu_reference_numbers(
    shared_data: Path, folder: str, name: str, sads: dict[str, float], rmses: dict[str, float]
) -> None:
    # Layouts: endmember files hold (bands, p) matrices (E_GT and one per method); abundance files hold
    # (rows, cols, p) cubes (a_GT and one per method), so the endmember axis is moved first.
    em = sio.loadmat(shared_data / folder / f"DeepTransHSU_Endmembers_{name}.mat")
    ab = sio.loadmat(shared_data / folder / f"DeepTransHSU_Abundance_{name}.mat")
    for key, published in sads.items():
        r = sad(em[key], em["E_GT"])  # Hungarian on SAD
        assert r.mean == pytest.approx(published, abs=5e-4), key
    ref_a = np.moveaxis(ab["a_GT"], -1, 0)
    for key, published in rmses.items():
        r = abundance_rmse(np.moveaxis(ab[key], -1, 0), ref_a, permutation="auto")
        assert r.global_rmse == pytest.approx(published, abs=5e-4), key
    # the published files are already in GT order: both matchings are the identity
    p = em["E_GT"].shape[1]
    np.testing.assert_array_equal(match_endmembers(em["E_Tra"], em["E_GT"]), np.arange(p))
    rep = unmixing_report(np.moveaxis(ab["a_Tra"], -1, 0), em["E_Tra"], ref_a, em["E_GT"])
    json.dumps(rep, allow_nan=False)
    assert rep["sad_mean_rad"] == pytest.approx(sads["E_Tra"], abs=5e-4)
    assert rep["abundance_rmse"] == pytest.approx(rmses["a_Tra"], abs=5e-4)
