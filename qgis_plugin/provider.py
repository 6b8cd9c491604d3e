"""The ``hsikit`` Processing provider: one algorithm per task."""

from __future__ import annotations

from qgis.core import QgsProcessingProvider

from .algorithms import ALGORITHMS


class HsikitProvider(QgsProcessingProvider):
    """Lists the hsikit algorithms (ids ``hsikit:info``, ``hsikit:denoise``, ...)."""

    def id(self) -> str:
        return "hsikit"

    def name(self) -> str:
        return "hsikit"

    def longName(self) -> str:  # noqa: N802 (QGIS API)
        try:
            from hsikit import __version__
        except ImportError:  # hsikit missing: the algorithms then say so when run
            return "hsikit (hyperspectral toolkit; package not importable)"
        return f"hsikit {__version__} (hyperspectral toolkit)"

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802 (QGIS API)
        """hsikit writes (Cloud-Optimized) GeoTIFF."""
        return ["tif"]

    def loadAlgorithms(self) -> None:  # noqa: N802 (QGIS API)
        for cls in ALGORITHMS:
            self.addAlgorithm(cls())
