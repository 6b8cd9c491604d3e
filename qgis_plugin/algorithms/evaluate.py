"""``hsikit:evaluate``: full-reference metrics of a raster, or accuracy of a class map."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)

from .base import HsikitAlgorithm, layer_path, to_json

MODES = ["raster", "classmap"]


class EvaluateAlgorithm(HsikitAlgorithm):
    NAME = "evaluate"
    DISPLAY = "Evaluate a result against a reference"
    HELP = ("raster: full-reference metrics (hsikit.evaluate_raster: PSNR, SSIM, SAM, ERGAS, ... over the bands "
            "valid in both) of a cube against a reference cube on the same grid. classmap: OA, AA, kappa, mIoU and "
            "per-class scores (hsikit.evaluate_classmap) of a class map against a label raster on its grid.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.addParameter(QgsProcessingParameterEnum("MODE", self.tr("What to evaluate"), options=MODES, defaultValue=0))
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Result (cube or class map)")))
        self.addParameter(QgsProcessingParameterRasterLayer("REFERENCE", self.tr("Reference (cube or label raster)")))
        self.addParameter(QgsProcessingParameterString(
            "METRICS", self.tr("Metrics (raster mode; comma-separated, empty = psnr,ssim,sam,ergas)"), optional=True))
        self.addParameter(QgsProcessingParameterNumber("IGNORE_LABEL", self.tr("Unlabelled code (classmap mode)"),
                                                       QgsProcessingParameterNumber.Integer, 0))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_JSON", self.tr("Report (JSON)"), "JSON files (*.json)", optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputString("REPORT", self.tr("Report (JSON text)")))

    def execute_task(self, parameters, context, feedback):
        import hsikit

        est = layer_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        ref = layer_path(self.parameterAsRasterLayer(parameters, "REFERENCE", context), "REFERENCE")
        if self.enum_value(parameters, "MODE", context, MODES) == "raster":
            report = hsikit.evaluate_raster(est, ref, metrics=self.parameterAsString(parameters, "METRICS", context) or None)
        else:
            report = hsikit.evaluate_classmap(est, ref, ignore_label=self.parameterAsInt(parameters, "IGNORE_LABEL", context))
        text = to_json(report)
        feedback.pushInfo(text)
        result = {"REPORT": text}
        out = self.parameterAsFileOutput(parameters, "OUTPUT_JSON", context)
        if out:
            Path(out).write_text(text)
            result["OUTPUT_JSON"] = out
        return result
