"""``hsikit:super_resolve``: hsikit.super_resolve onto a grid ``scale`` times finer (wavelengths kept)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import DEVICES, HsikitAlgorithm, layer_path, progress_callback, registry_choices


def superres_models() -> list[str]:
    """``auto`` (the API's default) first, then the classical methods and the learned models whose released
    weights are installed."""
    from hsikit.superres.api import CLASSICAL, DEFAULT_MODEL
    import hsikit.superres.subspace  # noqa: F401  (registers the learned models)
    from hsikit.zoo import released_models

    return [DEFAULT_MODEL, *CLASSICAL, *released_models("superres")]


class SuperResolveAlgorithm(HsikitAlgorithm):
    NAME = "super_resolve"
    DISPLAY = "Super-resolve a hyperspectral scene"
    HELP = ("Super-resolves the scene tile by tile (hsikit.super_resolve) onto a grid `scale` times finer (same "
            "CRS and upper-left corner, pixels `scale` times smaller) into a float32 Cloud-Optimized GeoTIFF in "
            "physical units with NaN nodata, keeping the wavelengths, FWHM and bad-band list. auto (default): the "
            "released learned model for the scale, else bicubic. essaformer-sub-x3: ESSAformer on the scene's "
            "eigen-images, x3 only; it refines the bands with bbl=1 and leaves the others bicubic. bicubic: cubic "
            "convolution, any integer scale "
            ">= 2. A learned model runs only at the scale it was trained for.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.models = registry_choices(superres_models)
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Scene")))
        self.addParameter(QgsProcessingParameterEnum("MODEL", self.tr("Model"), options=self.models, defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber("SCALE", self.tr("Scale (integer factor)"),
                                                       QgsProcessingParameterNumber.Integer, 3, minValue=2))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", self.tr("Device"), options=DEVICES, defaultValue=0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Super-resolved scene")))
        self.addOutput(QgsProcessingOutputNumber("TILES", self.tr("Tiles processed")))
        self.addOutput(QgsProcessingOutputNumber("SECONDS", self.tr("Seconds")))

    def execute_task(self, parameters, context, feedback):
        import hsikit

        path = layer_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        model = self.enum_value(parameters, "MODEL", context, self.models)
        scale = self.parameterAsInt(parameters, "SCALE", context)
        feedback.pushInfo(f"hsikit.super_resolve({path!r}, scale={scale}, model={model!r}) -> {out}")
        res = hsikit.super_resolve(path, scale, model, out=out,
                                   device=self.enum_value(parameters, "DEVICE", context, DEVICES),
                                   progress=progress_callback(feedback))
        return {"OUTPUT": str(res.out), "TILES": res.tiles, "SECONDS": res.seconds}
