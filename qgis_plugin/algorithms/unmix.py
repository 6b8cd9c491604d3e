"""``hsikit:unmix``: hsikit.unmix -> abundance GeoTIFF + endmember CSV/PNG."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import HsikitAlgorithm, layer_path, progress_callback, registry_choices

K_METHODS = ["hysime", "hfc", "nwhfc"]


def unmix_methods() -> list[str]:
    from hsikit.unmix.api import methods

    return methods()


class UnmixAlgorithm(HsikitAlgorithm):
    NAME = "unmix"
    DISPLAY = "Unmix a hyperspectral scene"
    HELP = ("Endmember spectra and abundance maps (hsikit.unmix). Blind methods <extractor>-<solver> "
            "(VCA, N-FINDR, ATGP, SiVM with FCLS/NNLS/UCLS), rrlbs, autoencoder; library methods (sunsal, fcls, "
            "nnls, ucls) need a spectral library (.csv or ENVI .sli). Writes one abundance band per endmember plus "
            "the residual RMSE band, and the endmember spectra as CSV and PNG beside it. Number of endmembers 0 = "
            "estimate it.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.methods = registry_choices(unmix_methods)
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Scene")))
        self.addParameter(QgsProcessingParameterEnum("METHOD", self.tr("Method"), options=self.methods, defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "N_ENDMEMBERS", self.tr("Number of endmembers (0 = estimate)"), QgsProcessingParameterNumber.Integer, 3,
            minValue=0))
        self.addParameter(QgsProcessingParameterEnum("K_METHOD", self.tr("Estimator of the number of endmembers"),
                                                     options=K_METHODS, defaultValue=0))
        self.addParameter(QgsProcessingParameterFile("LIBRARY", self.tr("Spectral library (library methods)"),
                                                     optional=True, fileFilter="Spectral libraries (*.csv *.sli)"))
        self.addParameter(QgsProcessingParameterNumber("SEED", self.tr("Random seed"),
                                                       QgsProcessingParameterNumber.Integer, 0))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Abundances")))
        self.addOutput(QgsProcessingOutputFile("ENDMEMBERS_CSV", self.tr("Endmember spectra (CSV)")))
        self.addOutput(QgsProcessingOutputFile("ENDMEMBERS_PNG", self.tr("Endmember plot (PNG)")))
        self.addOutput(QgsProcessingOutputNumber("N_ENDMEMBERS_USED", self.tr("Endmembers")))

    def execute_task(self, parameters, context, feedback):
        import hsikit

        path = layer_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        method = self.enum_value(parameters, "METHOD", context, self.methods)
        k = self.parameterAsInt(parameters, "N_ENDMEMBERS", context) or "auto"
        library = self.parameterAsFile(parameters, "LIBRARY", context) or None
        feedback.pushInfo(f"hsikit.unmix({path!r}, {k!r}, method={method!r}) -> {out}")
        feedback.setProgress(5)
        res = hsikit.unmix(path, k, method=method, library=library, out=out,
                           seed=self.parameterAsInt(parameters, "SEED", context),
                           k_method=self.enum_value(parameters, "K_METHOD", context, K_METHODS),
                           progress=progress_callback(feedback, 10.0, 95.0))  # the abundance windows
        feedback.setProgress(100)
        info = res.info
        feedback.pushInfo(f"{info['n_endmembers']} endmembers ({info['k_source']}), {info['bands']} bands, "
                          f"{info['valid_pixels']} pixels, mean residual RMSE "
                          f"{float(res.residual_rmse.mean(skipna=True)):.4g}, {info['seconds']:.1f} s")
        return {"OUTPUT": str(res.paths["abundances"]), "ENDMEMBERS_CSV": str(res.paths["endmembers_csv"]),
                "ENDMEMBERS_PNG": str(res.paths["endmembers_png"]), "N_ENDMEMBERS_USED": int(info["n_endmembers"])}
