"""Shared glue of the hsikit algorithms: names, error conversion, progress, layer paths.

No task logic lives here: each algorithm reads its parameters, calls one hsikit task function and
returns the paths and numbers it produced.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProviderRegistry,
    QgsRasterLayer,
)
from qgis.PyQt.QtCore import QCoreApplication

#: device choices offered by the algorithms that run torch ("auto" = CUDA when available)
DEVICES = ["auto", "cpu", "cuda"]

NOT_IMPORTABLE = ("the hsikit Python package is not importable by QGIS's Python ({error}); install hsikit "
                  "and torch into the Python QGIS runs (see docs/qgis.md)")


def registry_choices(fn: Callable[[], list[str]]) -> list[str]:
    """Names from an hsikit registry, or [] when hsikit is not importable (the run then says why)."""
    try:
        return list(fn())
    except ImportError:
        return []


def layer_path(layer: QgsRasterLayer | None, name: str) -> str:
    """The file behind a raster layer parameter (GDAL provider URI -> path)."""
    if layer is None:
        raise QgsProcessingException(f"{name}: no raster layer given")
    parts = QgsProviderRegistry.instance().decodeUri(layer.providerType(), layer.source())
    return parts.get("path") or layer.source()


def progress_callback(feedback: QgsProcessingFeedback, start: float = 0.0, end: float = 100.0
                      ) -> Callable[[int, int], bool]:
    """An hsikit progress callback ``(done, total) -> keep going`` that drives ``feedback``.

    Tiles done are mapped onto ``start``..``end`` percent; returning False (the user pressed Cancel)
    makes the hsikit engine stop and leave no output behind.
    """

    def callback(done: int, total: int) -> bool:
        feedback.setProgress(start + (end - start) * done / max(total, 1))
        return not feedback.isCanceled()

    return callback


def to_json(obj: Any) -> str:
    """JSON text of an hsikit report (numpy scalars and paths become numbers and strings)."""

    def default(o: Any) -> Any:
        if hasattr(o, "tolist"):
            return o.tolist()
        return str(o)

    return json.dumps(obj, indent=2, default=default)


class HsikitAlgorithm(QgsProcessingAlgorithm):
    """Base class: subclasses set ``NAME``, ``DISPLAY``, ``HELP`` and implement :meth:`execute_task`.

    :meth:`processAlgorithm` turns :class:`hsikit.errors.HsikitError` into a
    ``QgsProcessingException`` with the same one-line message, and a cancel into one that says so.
    """

    NAME = ""
    DISPLAY = ""
    HELP = ""

    def name(self) -> str:
        return self.NAME

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr(self.DISPLAY)

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr(self.HELP)

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("hsikit", text)

    def createInstance(self) -> "HsikitAlgorithm":  # noqa: N802 (QGIS API)
        return type(self)()

    def execute_task(self, parameters: dict[str, Any], context: QgsProcessingContext,
            feedback: QgsProcessingFeedback) -> dict[str, Any]:
        raise NotImplementedError

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API)
        try:
            from hsikit.engine.run import Cancelled
            from hsikit.errors import HsikitError
        except ImportError as error:
            raise QgsProcessingException(NOT_IMPORTABLE.format(error=error)) from error
        try:
            return self.execute_task(parameters, context, feedback)
        except HsikitError as error:
            raise QgsProcessingException(str(error)) from error
        except Cancelled as error:
            raise QgsProcessingException(f"{self.NAME}: cancelled; no output was written") from error

    def enum_value(self, parameters: dict[str, Any], key: str, context: QgsProcessingContext,
                   options: list[str]) -> str:
        """The option name chosen for an enum parameter (QGIS passes its index)."""
        if not options:
            raise QgsProcessingException(NOT_IMPORTABLE.format(error="no choices for " + key))
        return options[self.parameterAsEnum(parameters, key, context)]
