"""``hsikit:denoise``: hsikit.denoise into a georeferenced COG (wavelengths kept)."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import DEVICES, HsikitAlgorithm, layer_path, progress_callback, registry_choices

BANDS = ["valid", "all"]
SPARSE = ["off", "auto"]


def denoise_models() -> list[str]:
    """Classical methods plus the learned denoisers whose released weights are installed."""
    from hsikit.denoise.api import CLASSICAL, DEFAULT_MODEL
    import hsikit.denoise.hsdt  # noqa: F401  (registers the learned models)
    from hsikit.zoo import list_models, weights_path

    names = [*CLASSICAL, *(n for n in list_models("denoise") if weights_path(n).exists())]
    return sorted(names, key=lambda n: n != DEFAULT_MODEL)  # the default first


class DenoiseAlgorithm(HsikitAlgorithm):
    NAME = "denoise"
    DISPLAY = "Denoise a hyperspectral scene"
    HELP = ("Denoises the scene tile by tile (hsikit.denoise) into a float32 Cloud-Optimized GeoTIFF in "
            "physical units, keeping the georeference, wavelengths, FWHM and bad-band list. hsdt-s-sub "
            "(default): the released learned model, best on the test split; fasthyde: subspace + "
            "non-local means (as good on very clean scenes, faster); lrmr: low-rank + sparse (stripes, "
            "dead lines, impulse noise). Noise sigma empty = estimated per band (robust HySime). Sparse "
            "noise auto: find impulse, stripe and dead-line values and replace them before the model runs "
            "(for scenes with such defects; costs about a third of an LRMR pass).")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.models = registry_choices(denoise_models)
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Scene")))
        self.addParameter(QgsProcessingParameterEnum("MODEL", self.tr("Model"), options=self.models, defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "SIGMA", self.tr("Noise sigma (physical units; empty = estimate per band)"),
            QgsProcessingParameterNumber.Double, optional=True, minValue=0.0))
        self.addParameter(QgsProcessingParameterEnum("BANDS", self.tr("Bands to denoise"), options=BANDS, defaultValue=0))
        self.addParameter(QgsProcessingParameterEnum(
            "SPARSE", self.tr("Sparse noise (impulse, stripes, dead lines)"), options=SPARSE, defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber("TILE", self.tr("Tile edge [pixels]"),
                                                       QgsProcessingParameterNumber.Integer, 256, minValue=8))
        self.addParameter(QgsProcessingParameterNumber("OVERLAP", self.tr("Tile halo [pixels]"),
                                                       QgsProcessingParameterNumber.Integer, 16, minValue=0))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", self.tr("Device"), options=DEVICES, defaultValue=0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Denoised scene")))
        self.addOutput(QgsProcessingOutputNumber("TILES", self.tr("Tiles processed")))
        self.addOutput(QgsProcessingOutputNumber("SECONDS", self.tr("Seconds")))

    def execute_task(self, parameters, context, feedback):
        import hsikit

        path = layer_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        sigma = "auto" if parameters.get("SIGMA") in (None, "") else self.parameterAsDouble(parameters, "SIGMA", context)
        model = self.enum_value(parameters, "MODEL", context, self.models)
        feedback.pushInfo(f"hsikit.denoise({path!r}, model={model!r}, sigma={sigma!r}) -> {out}")
        res = hsikit.denoise(
            path, model, sigma=sigma, out=out, tile=self.parameterAsInt(parameters, "TILE", context),
            overlap=self.parameterAsInt(parameters, "OVERLAP", context),
            bands=self.enum_value(parameters, "BANDS", context, BANDS),
            sparse=self.enum_value(parameters, "SPARSE", context, SPARSE),
            device=self.enum_value(parameters, "DEVICE", context, DEVICES), progress=progress_callback(feedback))
        feedback.pushInfo(f"{res.tiles} tiles ({res.tiles_skipped} all-nodata) in {res.seconds:.1f} s; "
                          f"{len(res.bands)} bands denoised, sigma {'estimated' if res.sigma_estimated else 'given'}")
        return {"OUTPUT": str(res.out), "TILES": res.tiles, "SECONDS": res.seconds}
