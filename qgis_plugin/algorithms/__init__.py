"""One Processing algorithm per hsikit task."""

from .classify import ClassifyAlgorithm
from .denoise import DenoiseAlgorithm
from .evaluate import EvaluateAlgorithm
from .info import InfoAlgorithm
from .pansharpen import PansharpenAlgorithm
from .superres import SuperResolveAlgorithm
from .unmix import UnmixAlgorithm

ALGORITHMS = (InfoAlgorithm, DenoiseAlgorithm, UnmixAlgorithm, ClassifyAlgorithm, PansharpenAlgorithm,
              SuperResolveAlgorithm, EvaluateAlgorithm)

__all__ = ["ALGORITHMS"]
