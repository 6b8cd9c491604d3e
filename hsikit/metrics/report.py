"""JSON-friendly metric reports (the future ``hsikit evaluate`` command builds on these).

Every value is a Python float/int/str/list/None; non-finite floats become the strings "inf", "-inf" or
"nan" so that ``json.dumps`` of a report is strict JSON.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from hsikit.errors import UsageError
from hsikit.metrics import classification as _cls
from hsikit.metrics import full_reference as _fr
from hsikit.metrics import unmixing as _um

FULL_REFERENCE_METRICS = ("psnr", "psnr_cube", "ssim", "sam", "ergas", "rmse", "cc", "uiqi", "q2n", "rase", "sre")


def _f(x: Any) -> Any:
    """Python scalar / list with non-finite floats as strings."""
    if isinstance(x, np.ndarray):
        return [_f(v) for v in x.tolist()]
    if isinstance(x, (list, tuple)):
        return [_f(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        v = float(x)
        return v if math.isfinite(v) else ("nan" if math.isnan(v) else ("inf" if v > 0 else "-inf"))
    return x


def full_reference_report(
    est: Any,
    ref: Any,
    metrics: Sequence[str] = ("psnr", "ssim", "sam", "ergas"),
    data_range: float | None = None,
    ratio: float | None = None,
    mask: Any = None,
) -> dict[str, Any]:
    """Compute several full-reference metrics of ``est`` against ``ref`` (cubes ``(band, y, x)``).

    Parameters
    ----------
    est, ref
        Estimate and reference cubes.
    metrics
        Names from ``FULL_REFERENCE_METRICS``.
    data_range
        Needed by psnr, psnr_cube and ssim.
    ratio
        Needed by ergas (1 for same-resolution tasks).
    mask
        Optional ``(y, x)`` bool mask (not used by uiqi and q2n, which work on windows).

    Returns
    -------
    dict
        One key per metric plus ``"units"`` and ``"conventions"``; SAM adds ``sam_degrees``,
        ``sam_pixels`` and ``sam_excluded_zero_pixels``.
    """
    unknown = [m for m in metrics if m not in FULL_REFERENCE_METRICS]
    if unknown:
        raise UsageError(f"unknown metrics {unknown}; choose from {list(FULL_REFERENCE_METRICS)}")
    needs_range = [m for m in metrics if m in ("psnr", "psnr_cube", "ssim")]
    if needs_range and data_range is None:
        raise UsageError(f"data_range is required for {needs_range} (e.g. 1.0 for [0, 1] reflectance)")
    if "ergas" in metrics and ratio is None:
        raise UsageError("ratio is required for ergas (4 or 0.25 for 4x fusion, 1 for same resolution)")
    if mask is not None and any(m in ("uiqi", "q2n") for m in metrics):
        raise UsageError("uiqi and q2n are window metrics and do not take a mask")
    out: dict[str, Any] = {}
    units: dict[str, str] = {}
    for m in metrics:
        if m == "psnr":
            out[m], units[m] = _fr.psnr(est, ref, data_range, mask), "dB (mean of per-band PSNR)"
        elif m == "psnr_cube":
            out[m], units[m] = _fr.psnr_cube(est, ref, data_range, mask), "dB (one MSE over the cube)"
        elif m == "ssim":
            out[m], units[m] = _fr.ssim(est, ref, data_range, mask), "1 (mean of per-band SSIM)"
        elif m == "sam":
            r = _fr.sam(est, ref, mask)
            out["sam"], units["sam"] = r.radians, "rad"
            out["sam_degrees"], units["sam_degrees"] = r.degrees, "deg"
            out["sam_pixels"] = r.n_pixels
            out["sam_excluded_zero_pixels"] = r.n_excluded
        elif m == "ergas":
            out[m], units[m] = _fr.ergas(est, ref, ratio, mask), "1 (100 x h/l convention)"
        elif m == "rmse":
            out[m], units[m] = _fr.rmse(est, ref, mask), "data units"
        elif m == "cc":
            out[m], units[m] = _fr.cc(est, ref, mask), "1"
        elif m == "uiqi":
            out[m], units[m] = _fr.uiqi(est, ref), "1 (8x8 sliding windows)"
        elif m == "q2n":
            out[m], units[m] = _fr.q2n(est, ref), "1 (32x32 blocks)"
        elif m == "rase":
            out[m], units[m] = _fr.rase(est, ref, mask), "%"
        elif m == "sre":
            out[m], units[m] = _fr.sre(est, ref, mask), "dB"
    conventions = {"data_range": data_range, "ratio": ratio, "masked": mask is not None}
    return {k: _f(v) for k, v in out.items()} | {"units": units, "conventions": _f_dict(conventions)}


def _f_dict(d: dict[str, Any]) -> dict[str, Any]:
    return {k: _f(v) for k, v in d.items()}


def classification_report(
    pred: Any, labels: Any, ignore_label: int | None = 0, class_names: Sequence[str] | dict[int, str] | None = None
) -> dict[str, Any]:
    """OA, AA, kappa, mIoU, per-class scores and the confusion matrix of a label map.

    Parameters
    ----------
    pred
        Predicted labels (any shape, integers).
    labels
        Reference labels, same shape; ``ignore_label`` marks unlabelled pixels.
    ignore_label
        Label excluded from scoring (default 0); None scores all pixels.
    class_names
        Names by class label (a dict) or in sorted-label order (a sequence over the reference classes).

    Returns
    -------
    dict
        ``oa``, ``aa``, ``kappa``, ``miou`` (fractions in [0, 1]), ``n_pixels``, ``classes`` (list of
        dicts with ``label``, ``name``, ``support``, ``recall``, ``precision``, ``f1``, ``iou``) and
        ``confusion_matrix`` (rows = reference, columns = prediction) with ``confusion_labels``.
    """
    cm = _cls.confusion_matrix(pred, labels, ignore_label)
    if class_names is None:
        names: dict[int, str] = {}
    elif isinstance(class_names, dict):
        names = {int(k): str(v) for k, v in class_names.items()}
    else:
        ref_classes = [int(c) for c, s in zip(cm.classes, cm.support) if s > 0]
        if len(class_names) != len(ref_classes):
            raise UsageError(
                f"class_names has {len(class_names)} names but the reference has {len(ref_classes)} classes"
            )
        names = dict(zip(ref_classes, map(str, class_names)))
    rec, prec, f1, iou = cm.recall(), cm.precision(), cm.f1(), cm.iou()
    per = [
        {
            "label": int(c),
            "name": names.get(int(c), str(int(c))),
            "support": int(cm.support[i]),
            "recall": _f(rec[i]),
            "precision": _f(prec[i]),
            "f1": _f(f1[i]),
            "iou": _f(iou[i]),
        }
        for i, c in enumerate(cm.classes)
    ]
    return {
        "oa": _f(cm.overall_accuracy()),
        "aa": _f(cm.average_accuracy()),
        "kappa": _f(cm.kappa()),
        "miou": _f(cm.mean_iou()),
        "n_pixels": cm.n,
        "ignore_label": ignore_label,
        "classes": per,
        "confusion_labels": [int(c) for c in cm.classes],
        "confusion_matrix": cm.matrix.tolist(),
    }


def unmixing_report(
    abundances: Any,
    endmembers: Any,
    ref_abundances: Any,
    ref_endmembers: Any,
    match: str = "sad",
    endmember_names: Sequence[str] | None = None,
) -> dict[str, Any]:
    """SAD, abundance RMSE, endmember RMSE and SRE of an unmixing result with one shared matching.

    Parameters
    ----------
    abundances
        Estimated ``(p_est, ...)`` abundances, or None.
    endmembers
        Estimated ``(bands, p_est)`` endmembers, or None.
    ref_abundances
        Reference ``(p, ...)``, or None.
    ref_endmembers
        Reference ``(bands, p)``, or None.
    match
        ``"sad"`` (Hungarian on endmember SAD), ``"abundance"`` (Hungarian on abundance RMSE) or
        ``"none"`` (identity).
    endmember_names
        Names of the reference endmembers (e.g. ["soil", "tree", "water"]).

    Returns
    -------
    dict
        ``matching`` (list of ``{"reference": k, "name": ..., "estimate": perm[k]}``), ``permutation``,
        ``match_criterion``, and when computable ``sad_mean_rad``, ``sad_mean_deg``, ``sad_per_endmember_rad``,
        ``abundance_rmse`` (global), ``abundance_rmse_per_endmember``, ``abundance_rmse_mean_per_endmember``,
        ``abundance_sre_db``, ``endmember_rmse``.
    """
    have_e = endmembers is not None and ref_endmembers is not None
    have_a = abundances is not None and ref_abundances is not None
    if not (have_e or have_a):
        raise UsageError("give estimated and reference endmembers and/or abundances")
    if match == "sad":
        if not have_e:
            raise UsageError("match='sad' needs endmembers; use match='abundance'")
        perm = _um.match_endmembers(endmembers, ref_endmembers)
    elif match == "abundance":
        if not have_a:
            raise UsageError("match='abundance' needs abundances; use match='sad'")
        perm = _um.match_abundances(abundances, ref_abundances)
    elif match == "none":
        p = np.shape(ref_endmembers)[1] if have_e else np.shape(ref_abundances)[0]
        perm = np.arange(p)
    else:
        raise UsageError(f"match must be 'sad', 'abundance' or 'none'; got {match!r}")
    names = list(endmember_names) if endmember_names is not None else [str(k) for k in range(len(perm))]
    if len(names) != len(perm):
        raise UsageError(f"endmember_names has {len(names)} names for {len(perm)} endmembers")
    out: dict[str, Any] = {
        "match_criterion": match,
        "permutation": [int(i) for i in perm],
        "matching": [{"reference": k, "name": names[k], "estimate": int(perm[k])} for k in range(len(perm))],
    }
    if have_e:
        s = _um.sad(endmembers, ref_endmembers, permutation=perm)
        out["sad_mean_rad"] = _f(s.mean)
        out["sad_mean_deg"] = _f(s.mean_degrees)
        out["sad_per_endmember_rad"] = _f(s.per_endmember)
        out["endmember_rmse"] = _f(_um.endmember_rmse(endmembers, ref_endmembers, permutation=perm).global_rmse)
    if have_a:
        r = _um.abundance_rmse(abundances, ref_abundances, permutation=perm)
        out["abundance_rmse"] = _f(r.global_rmse)
        out["abundance_rmse_per_endmember"] = _f(r.per_endmember)
        out["abundance_rmse_mean_per_endmember"] = _f(r.mean_per_endmember)
        est = np.asarray(_um._np(abundances, "abundances")).reshape(np.shape(abundances)[0], -1)[perm]
        ref = _um._np(ref_abundances, "ref_abundances").reshape(len(perm), -1)
        err = float(((est - ref) ** 2).sum())
        out["abundance_sre_db"] = _f(math.inf if err == 0 else 10 * math.log10(float((ref**2).sum()) / err))
    return out
