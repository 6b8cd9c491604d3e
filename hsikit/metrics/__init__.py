"""Metrics you can trust: full-reference, no-reference, classification and unmixing scores.

All image metrics take cubes ``(band, y, x)`` as numpy arrays, torch tensors (CPU or CUDA) or xarray
cubes, and return Python floats, numpy arrays or small result objects. Definitions, units and the
conventions chosen are in ``docs/metrics.md``.
"""

from hsikit.metrics.classification import (
    ConfusionMatrix,
    average_accuracy,
    cohen_kappa,
    confusion_matrix,
    mean_iou,
    overall_accuracy,
    per_class_scores,
)
from hsikit.metrics.full_reference import (
    SAMResult,
    cc,
    ergas,
    psnr,
    psnr_cube,
    q2n,
    rase,
    rmse,
    sam,
    sre,
    ssim,
    uiqi,
)
from hsikit.metrics.mtf import mtf_degrade, mtf_filter, mtf_kernel, mtf_sigma
from hsikit.metrics.no_reference import band_pair_q, d_lambda, d_lambda_khan, d_rho, d_s, d_s_r, hqnr, qnr
from hsikit.metrics.report import classification_report, full_reference_report, unmixing_report
from hsikit.metrics.unmixing import (
    RMSEResult,
    SADResult,
    abundance_rmse,
    endmember_rmse,
    match_abundances,
    match_endmembers,
    sad,
    sad_matrix,
)

__all__ = [
    "ConfusionMatrix",
    "RMSEResult",
    "SADResult",
    "SAMResult",
    "abundance_rmse",
    "average_accuracy",
    "band_pair_q",
    "cc",
    "classification_report",
    "cohen_kappa",
    "confusion_matrix",
    "d_lambda",
    "d_lambda_khan",
    "d_rho",
    "d_s",
    "d_s_r",
    "endmember_rmse",
    "ergas",
    "full_reference_report",
    "hqnr",
    "match_abundances",
    "match_endmembers",
    "mean_iou",
    "mtf_degrade",
    "mtf_filter",
    "mtf_kernel",
    "mtf_sigma",
    "overall_accuracy",
    "per_class_scores",
    "psnr",
    "psnr_cube",
    "q2n",
    "qnr",
    "rase",
    "rmse",
    "sad",
    "sad_matrix",
    "sam",
    "sre",
    "ssim",
    "uiqi",
    "unmixing_report",
]
