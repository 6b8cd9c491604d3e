"""hsikit QGIS plugin: a Processing provider whose algorithms call the hsikit task APIs.

QGIS imports this package and calls :func:`classFactory`. Headless use (scripts, tests,
``qgis_process``) needs only :class:`~.provider.HsikitProvider` added to the processing registry.
"""


def classFactory(iface):  # noqa: N802 (the name QGIS looks for)
    """Entry point QGIS calls with its ``QgisInterface``; returns the plugin object."""
    from .plugin import HsikitPlugin

    return HsikitPlugin(iface)
