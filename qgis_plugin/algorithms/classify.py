"""``hsikit:classify``: fit a classifier on a label raster and write the scene's class map."""

from __future__ import annotations

from qgis.core import (
    QgsProcessingOutputFile,
    QgsProcessingOutputNumber,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from .base import DEVICES, HsikitAlgorithm, layer_path, progress_callback, registry_choices, to_json


def classifier_kinds() -> list[str]:
    """Registered classifiers, the API's default (rf) first."""
    import inspect

    from hsikit.classify.api import classify
    from hsikit.classify.estimator import kinds

    default = inspect.signature(classify).parameters["model"].default
    return sorted(kinds(), key=lambda n: n != default)


class ClassifyAlgorithm(HsikitAlgorithm):
    NAME = "classify"
    DISPLAY = "Classify a hyperspectral scene from a label raster"
    HELP = ("Fits a classifier (hsikit.classify: rf, svm, cnn3d, morpmamba) on the labelled pixels of the "
            "scene (label raster on the scene's grid, 0 = unlabelled), scores it on spatially disjoint held-out "
            "blocks and writes the class map (paletted GeoTIFF with a .qml legend beside it) and a JSON report.")

    def initAlgorithm(self, config=None):  # noqa: N802 (QGIS API)
        self.models = registry_choices(classifier_kinds)
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", self.tr("Scene")))
        self.addParameter(QgsProcessingParameterRasterLayer("LABELS", self.tr("Label raster (0 = unlabelled)")))
        self.addParameter(QgsProcessingParameterEnum("MODEL", self.tr("Classifier"), options=self.models, defaultValue=0))
        self.addParameter(QgsProcessingParameterNumber("VAL_FRACTION", self.tr("Held-out fraction of the blocks"),
                                                       QgsProcessingParameterNumber.Double, 0.3, minValue=0.0,
                                                       maxValue=0.9))
        self.addParameter(QgsProcessingParameterNumber("SEED", self.tr("Random seed"),
                                                       QgsProcessingParameterNumber.Integer, 0))
        self.addParameter(QgsProcessingParameterEnum("DEVICE", self.tr("Device"), options=DEVICES, defaultValue=1))
        self.addParameter(QgsProcessingParameterRasterDestination("OUTPUT", self.tr("Class map")))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "PROBABILITIES", self.tr("Class probabilities"), optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            "MODEL_FILE", self.tr("Save the fitted model"), "hsikit model (*.safetensors)", optional=True,
            createByDefault=False))
        self.addOutput(QgsProcessingOutputFile("REPORT", self.tr("Report (JSON)")))
        self.addOutput(QgsProcessingOutputNumber("OA", self.tr("Held-out overall accuracy")))
        self.addOutput(QgsProcessingOutputNumber("KAPPA", self.tr("Held-out kappa")))

    def execute_task(self, parameters, context, feedback):
        import hsikit

        scene = layer_path(self.parameterAsRasterLayer(parameters, "INPUT", context), "INPUT")
        labels = layer_path(self.parameterAsRasterLayer(parameters, "LABELS", context), "LABELS")
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        prob = self.parameterAsOutputLayer(parameters, "PROBABILITIES", context) or None
        model_file = self.parameterAsFileOutput(parameters, "MODEL_FILE", context) or None
        model = self.enum_value(parameters, "MODEL", context, self.models)
        feedback.pushInfo(f"hsikit.classify({scene!r}, {labels!r}, model={model!r}) -> {out}")
        report = hsikit.classify(
            scene, labels, out, model=model, save_model=model_file, probabilities=prob,
            val_fraction=self.parameterAsDouble(parameters, "VAL_FRACTION", context),
            device=self.enum_value(parameters, "DEVICE", context, DEVICES),
            seed=self.parameterAsInt(parameters, "SEED", context), progress=progress_callback(feedback))
        scores = report.get("scores") or {}
        feedback.pushInfo(to_json({k: scores.get(k) for k in ("pixels", "oa", "aa", "kappa")}))
        result = {"OUTPUT": report["prediction"]["outputs"]["map"], "REPORT": report["report_file"],
                  "OA": scores.get("oa"), "KAPPA": scores.get("kappa")}
        if prob:
            result["PROBABILITIES"] = prob
        if model_file:
            result["MODEL_FILE"] = model_file
        return result
