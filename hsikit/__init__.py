"""hsikit: a hyperspectral remote-sensing toolkit.

The Python API mirrors the CLI: ``hsikit.open(path)`` returns the cube model (an
:class:`xarray.DataArray`, see :mod:`hsikit.cube`), ``hsikit.save(cube, path)`` writes COG,
NetCDF or Zarr. Heavy modules are imported on first use, so ``import hsikit`` stays cheap.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

_API = {
    "open": ("hsikit.io", "open_cube"),
    "save": ("hsikit.io", "save_cube"),
    "make_cube": ("hsikit.cube", "make_cube"),
    "select_bands": ("hsikit.cube", "select_bands"),
    "to_reflectance": ("hsikit.cube", "to_reflectance"),
    "validate": ("hsikit.cube", "validate"),
    "describe": ("hsikit.describe", "describe_cube"),
    "denoise": ("hsikit.denoise.api", "denoise"),
    "degrade": ("hsikit.data.degrade", "degrade_cube"),
    "evaluate_raster": ("hsikit.evaluate.api", "evaluate_raster"),
    "evaluate_classmap": ("hsikit.evaluate.api", "evaluate_classmap"),
    "evaluate_unmixing": ("hsikit.evaluate.api", "evaluate_unmixing"),
    "classify": ("hsikit.classify.api", "classify"),
    "fit_classifier": ("hsikit.classify.api", "fit_classifier"),
    "unmix": ("hsikit.unmix.api", "unmix"),
    "pansharpen": ("hsikit.pansharpen.api", "pansharpen"),
    "super_resolve": ("hsikit.superres.api", "super_resolve"),
}

__all__ = ["__version__", *_API]


def __getattr__(name: str) -> Any:
    if name in _API:
        import importlib

        module, attr = _API[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'hsikit' has no attribute {name!r}")
