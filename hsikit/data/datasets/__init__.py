"""torch Datasets in torchgeo's sample-dict convention (``{"image", "mask", "wavelength", ...}``).

- :mod:`~hsikit.data.datasets.catalog`: the real benchmark cubes of ``../shared/data`` (CAVE, anomaly
  scenes, MUUFL, AVIRIS, EnMAP tiles) and synthetic scenes, loaded as normalised arrays, with the fixed
  train/test split by scene (:data:`~hsikit.data.datasets.catalog.TEST_SCENES`).
- :mod:`~hsikit.data.datasets.patches`: random / grid patches from any set of cubes (space-only
  dihedral augmentation), noisy/clean pairs, batching by band count.
- :mod:`~hsikit.data.datasets.spectralearth`: SpectralEarth-style patch archives (single and
  multi-temporal samples, downstream splits) and per-band normalisation statistics.
- :mod:`~hsikit.data.datasets.enmap`: EnMAP tiles / L2A GeoTIFFs as a torchgeo ``RasterDataset``
  (random and grid sampling with torchgeo samplers), with label rasters.
- :mod:`~hsikit.data.datasets.testsets`: fixed test sets as QRNN3D-style ``.mat`` files (write, read).

Names are imported on first use (torchgeo and Lightning are slow to import).
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "SceneEntry": "catalog", "SceneArray": "catalog", "list_scenes": "catalog", "load_scene": "catalog",
    "TEST_SCENES": "catalog", "data_root": "catalog",
    "RandomPatches": "patches", "GridPatches": "patches", "NoisyPairs": "patches", "BandGroupedBatchSampler": "patches",
    "collate_patches": "patches", "collate_padded": "patches", "dihedral": "patches",
    "SpectralEarth": "spectralearth", "band_statistics": "spectralearth", "Normalize": "spectralearth",
    "EnmapImages": "enmap", "EnmapLabels": "enmap", "enmap_tiles_dataset": "enmap",
    "write_test_set": "testsets", "MatPairs": "testsets", "load_scenes": "catalog", "seed_worker": "patches",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"hsikit.data.datasets.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module 'hsikit.data.datasets' has no attribute {name!r}")
