"""``hsikit:pansharpen``: hsikit.pansharpen of a cube with a PAN image onto the PAN grid."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import HsikitAlgorithm, layer_path, progress_callback, registry_choices, to_json

EVALUATE = ["none", "full", "reduced"]


def pansharpen_methods() -> list[str]:
    """The classical fusion methods, the API's default first."""
    from hsikit.pansharpen.api import DEFAULT_METHOD, METHODS

    return sorted(METHODS, key=lambda n: n != DEFAULT_METHOD)


class PansharpenAlgorithm(HsikitAlgorithm):
    NAME = "pansharpen"
    DISPLAY = "Pansharpen a hyperspectral scene"
    HELP = ("Fuses the cube with a PAN image on a grid `ratio` times finer (same CRS, aligned corners) "
            "(hsikit.pansharpen: GSA, BT-H, MTF-GLP variants, bicubic). Output: float32 COG on the PAN grid with "
            "the cube's wavelengths. Ratio 0 = infer from the grids. Quality: none, full resolution (HQNR) or "
            "reduced resolution (Wald protocol).")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.methods = registry_choices(pansharpen_methods)
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Hyperspectral cube")))
        self.addParameter(QgsProcessingParameterRasterLayer("PAN", self.tr("Panchromatic image")))
        self.addParameter(QgsProcessingParameterEnum("METHOD", self.tr("Method"), options=self.methods, defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber("RATIO", self.tr("Ratio (0 = infer from the grids)"),
                                                       QgsProcessingParameterNumber.Integer, 0, minValue=0))
        self.addParameter(QgsProcessingParameterEnum("EVALUATE", self.tr("Quality scores"), options=EVALUATE,
                                                     defaultValue=0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Pansharpened cube")))
        self.addOutput(QgsProcessingOutputNumber("RATIO_USED", self.tr("Ratio")))
        self.addOutput(QgsProcessingOutputString("SCORES", self.tr("Quality scores (JSON)")))

    def execute_task(self, parameters, context, feedback):
        import hsikit

        hs = layer_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        pan = layer_path(self.parameterAsRasterLayer(parameters, "PAN", context), "PAN")
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        method = self.enum_value(parameters, "METHOD", context, self.methods)
        evaluate = self.enum_value(parameters, "EVALUATE", context, EVALUATE)
        feedback.pushInfo(f"hsikit.pansharpen({hs!r}, {pan!r}, method={method!r}) -> {out}")
        res = hsikit.pansharpen(hs, pan, method, out=out, ratio=self.parameterAsInt(parameters, "RATIO", context) or None,
                                evaluate=None if evaluate == "none" else evaluate, progress=progress_callback(feedback))
        scores = to_json(res.scores) if res.scores is not None else ""
        if scores:
            feedback.pushInfo(scores)
        return {"OUTPUT": str(res.out), "RATIO_USED": res.ratio, "SCORES": scores}
