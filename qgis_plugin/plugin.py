"""The plugin object: registers the Processing provider (GUI start-up and ``qgis_process``)."""

from __future__ import annotations

from qgis.core import QgsApplication

from .provider import HsikitProvider


class HsikitPlugin:
    """Adds the ``hsikit`` provider to the processing registry and removes it on unload."""

    def __init__(self, iface=None) -> None:
        self.iface = iface
        self.provider: HsikitProvider | None = None

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API)
        """Called by QGIS (also by qgis_process) before the GUI exists."""
        if self.provider is None:
            self.provider = HsikitProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 (QGIS API)
        self.initProcessing()

    def unload(self) -> None:
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
