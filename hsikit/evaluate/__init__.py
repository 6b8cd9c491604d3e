"""Evaluation of outputs against references (rasters, class maps, unmixing results); see :mod:`.api`."""

from hsikit.evaluate.api import evaluate_classmap, evaluate_raster, evaluate_unmixing

__all__ = ["evaluate_classmap", "evaluate_raster", "evaluate_unmixing"]
