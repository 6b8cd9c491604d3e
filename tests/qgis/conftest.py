"""Headless QGIS for the plugin tests: one QgsApplication, Processing and the hsikit provider.

These tests run only in the QGIS venv (scripts/test_qgis.sh); where PyQGIS is not importable (the
project venv) the folder is not collected at all. Real data comes through ``shared_data`` /
``enmap_tile`` from tests/conftest.py.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

try:
    import qgis.core  # noqa: F401
except ImportError:
    collect_ignore_glob = ["test_*.py"]

QGIS_PLUGINS = "/usr/share/qgis/python/plugins"  # Debian's copy of the `processing` plugin
ENMAP = Path("enmap_potsdam_tiles")


@pytest.fixture(scope="session")
def qgis_app():
    """QgsApplication (no GUI) with Processing initialised and the plugin's provider registered."""
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    if QGIS_PLUGINS not in sys.path:
        sys.path.append(QGIS_PLUGINS)
    from processing.core.Processing import Processing

    Processing.initialize()
    from qgis_plugin import classFactory

    plugin = classFactory(None)  # what QGIS does; initProcessing registers the provider
    plugin.initProcessing()
    yield app
    plugin.unload()


@pytest.fixture(scope="session")
def tile_pair(shared_data: Path) -> tuple[Path, Path]:
    """A real EnMAP tile (224 x 32 x 32) and its label raster."""
    name = "enmap_potsdam_tile_64_0.tif"
    return shared_data / ENMAP / "images" / name, shared_data / ENMAP / "labels" / name


@pytest.fixture
def run(qgis_app):
    """``processing.run`` with a fresh feedback; returns (results, feedback)."""
    import processing
    from qgis.core import QgsProcessingFeedback

    class Recorder(QgsProcessingFeedback):
        def __init__(self, cancel_after: int | None = None) -> None:
            super().__init__()
            self.progress: list[float] = []
            self.infos: list[str] = []
            self.cancel_after = cancel_after
            self.progressChanged.connect(self._on_progress)

        def _on_progress(self, value: float) -> None:
            self.progress.append(value)
            if self.cancel_after is not None and len(self.progress) >= self.cancel_after:
                self.cancel()

        def pushInfo(self, info: str) -> None:  # noqa: N802 (QGIS API)
            self.infos.append(info)
            super().pushInfo(info)

    def _run(alg: str, params: dict, cancel_after: int | None = None):
        feedback = Recorder(cancel_after)
        return processing.run(alg, params, feedback=feedback), feedback

    return _run
