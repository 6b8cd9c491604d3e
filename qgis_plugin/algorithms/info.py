"""``hsikit:info``: describe a scene (hsikit.describe), like ``hsikit info``."""

from __future__ import annotations

from pathlib import Path

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingOutputString,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import HsikitAlgorithm, layer_path, to_json


class InfoAlgorithm(HsikitAlgorithm):
    NAME = "info"
    DISPLAY = "Describe a hyperspectral scene"
    HELP = ("Sensor, shape, dtype, CRS, resolution, bounds, wavelengths, bad bands and nodata of a scene, as "
            "`hsikit info` prints them. Optionally writes the description as JSON.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Scene")))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_JSON", self.tr("Description (JSON)"), "JSON files (*.json)", optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("BANDS", self.tr("Bands")))
        self.addOutput(QgsProcessingOutputNumber("WIDTH", self.tr("Width [pixels]")))
        self.addOutput(QgsProcessingOutputNumber("HEIGHT", self.tr("Height [pixels]")))
        self.addOutput(QgsProcessingOutputString("CRS", self.tr("CRS")))
        self.addOutput(QgsProcessingOutputString("DESCRIPTION", self.tr("Description (text)")))

    def execute_task(self, parameters, context, feedback):
        from hsikit.describe import describe_path, format_description

        path = layer_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        desc = describe_path(path)
        text = format_description(desc)
        feedback.pushInfo(text)
        result = {"BANDS": desc["bands"], "WIDTH": desc["width"], "HEIGHT": desc["height"],
                  "CRS": desc.get("crs") or "", "DESCRIPTION": text}
        out = self.parameterAsFileOutput(parameters, "OUTPUT_JSON", context)
        if out:
            Path(out).write_text(to_json(desc))
            result["OUTPUT_JSON"] = out
        return result
