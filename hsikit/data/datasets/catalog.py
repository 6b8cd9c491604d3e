"""The real benchmark cubes (read in place from the shared data folder) plus synthetic scenes, with a fixed split.

Each scene is an entry ``<group>/<name>``; :func:`load_scene` reads it with :func:`hsikit.open`, converts
to physical values, drops bad and water-absorption bands, fills nodata with the band mean and scales the
whole cube to [0, 1] (global min-max, the QRNN3D/HSDT protocol, ``../shared/docs/models.md`` 1.1).

The split is by scene and fixed (:data:`SPLITS`): test scenes are never used for training or model
selection, validation scenes only for model selection.

========  ===========================================================================================
test      ``cave/chart_and_stuffed_toy``, ``anomaly/abu-airport-2``, ``anomaly/sandiego_plane``,
          ``enmap/tile_96_96``, ``enmap/tile_128_128``, ``synthetic/enmap-100``
val       ``cave/watercolors`` (8-bit source), ``anomaly/abu-airport-4``, ``enmap/tile_64_32``,
          ``synthetic/enmap-101``
train     everything else: 2 CAVE, 4 anomaly (ABU airport-1, urban-2, beach-4; HYDICE urban), MUUFL
          (Gulfport CASI subset 51x88x72 and the 90x90x64 unmixing subset), AVIRIS Santa Barbara,
          7 EnMAP tiles, 3 synthetic EnMAP scenes (earthlib endmembers)
========  ===========================================================================================

The data root is ``root`` if given, else ``$HSIKIT_DATA``, else ``../shared/data`` beside the repository.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from hsikit.errors import InputError, UsageError

#: Water-vapour absorption ranges (nm) dropped by default when a cube has wavelengths.
ABSORPTION_NM = ((1340.0, 1460.0), (1790.0, 1960.0), (2450.0, 2600.0))


@dataclass(frozen=True)
class SceneEntry:
    """One benchmark scene: id ``<group>/<name>``, path relative to the data root, split, sensor."""

    id: str
    path: str
    split: str
    sensor: str

    @property
    def group(self) -> str:
        return self.id.split("/", 1)[0]


@dataclass
class SceneArray:
    """A loaded scene: ``data`` (C, H, W) float32 in [0, 1], ``wavelength`` (C,) nm (NaN unknown)."""

    id: str
    data: np.ndarray
    wavelength: np.ndarray
    split: str
    sensor: str
    source: str

    @property
    def bands(self) -> int:
        return int(self.data.shape[0])


_ENMAP = "enmap_potsdam_tiles/images/enmap_potsdam_tile_{}.tif"
_ENMAP_TILES = ("64_0", "64_32", "96_0", "96_32", "96_96", "96_128", "128_0", "128_32", "128_96", "128_128")

#: Scene ids of each split.
SPLITS = {
    "test": ("cave/chart_and_stuffed_toy", "anomaly/abu-airport-2", "anomaly/sandiego_plane", "enmap/tile_96_96",
             "enmap/tile_128_128", "synthetic/enmap-100"),
    "val": ("cave/watercolors", "anomaly/abu-airport-4", "enmap/tile_64_32", "synthetic/enmap-101"),
}
TEST_SCENES = SPLITS["test"]
VAL_SCENES = SPLITS["val"]

_PATHS = {
    **{f"cave/{n}": f"cave_multispectral/{n}_ms" for n in ("balloons", "chart_and_stuffed_toy", "fake_and_real_peppers", "watercolors")},
    **{f"anomaly/{n}": f"hsi_anomaly_scenes/{f}" for n, f in [
        ("abu-airport-1", "abu-airport-1.mat"), ("abu-airport-2", "abu-airport-2.mat"), ("abu-airport-4", "abu-airport-4.mat"),
        ("abu-urban-2", "abu-urban-2.mat"), ("abu-beach-4", "abu-beach-4_LREN_100x100_normalized.mat"),
        ("hydice-urban", "HYDICE_urban_anomaly_100x80.mat"), ("sandiego_plane", "sandiego_plane_100x100.mat")]},
    "muufl/gulfport_sub": "gatorsense_hsi_toolkit_demo/muufl_gulfport_sub_for_demo.mat",
    "muufl/unmixing_subset": "muufl_subset/muffle_dataset_130_90.mat",
    "aviris/santabarbara": "gatorsense_hsi_toolkit_demo/aviris_santabarbara_for_VI_demo.mat",
    **{f"enmap/tile_{t}": _ENMAP.format(t) for t in _ENMAP_TILES},
    **{f"synthetic/enmap-{k}": f"synthetic:enmap:{k}" for k in (0, 1, 2, 100, 101)},
}
_SENSORS = {"cave": "CAVE (lab camera)", "anomaly": "AVIRIS/HYDICE/ROSIS", "muufl": "CASI-1500", "aviris": "AVIRIS",
            "enmap": "EnMAP", "synthetic": "EnMAP (synthetic)"}

GROUPS = tuple(dict.fromkeys(k.split("/")[0] for k in _PATHS))


def _split_of(scene_id: str) -> str:
    for split, ids in SPLITS.items():
        if scene_id in ids:
            return split
    return "train"


SCENES = tuple(SceneEntry(k, p, _split_of(k), _SENSORS[k.split("/")[0]]) for k, p in _PATHS.items())


def data_root(root: str | os.PathLike | None = None) -> Path:
    """The shared data folder: ``root``, ``$HSIKIT_DATA`` or ``../shared/data`` beside the repository."""
    if root is not None:
        p = Path(root)
    elif os.environ.get("HSIKIT_DATA"):
        p = Path(os.environ["HSIKIT_DATA"])
    else:
        p = Path(__file__).resolve().parents[4] / "shared" / "data"
    if not p.is_dir():
        raise InputError("benchmark data folder not found (pass root= or set HSIKIT_DATA)", p)
    return p


def list_scenes(split: str = "all", groups: tuple[str, ...] | list[str] | None = None) -> list[SceneEntry]:
    """Scene entries of a split (``train``, ``val``, ``test`` or ``all``), optionally of some groups only."""
    if split not in ("all", "train", "val", "test"):
        raise UsageError(f"split must be all, train, val or test, got {split!r}")
    if groups is not None:
        unknown = set(groups) - set(GROUPS)
        if unknown:
            raise UsageError(f"unknown scene groups {sorted(unknown)} (known: {', '.join(GROUPS)})")
    return [e for e in SCENES if (split == "all" or e.split == split) and (groups is None or e.group in groups)]


def _entry(scene: str | SceneEntry) -> SceneEntry:
    if isinstance(scene, SceneEntry):
        return scene
    for e in SCENES:
        if e.id == scene:
            return e
    raise UsageError(f"unknown scene {scene!r} (see hsikit.data.datasets.catalog.SCENES)")


def _synthetic(spec: str) -> tuple[np.ndarray, np.ndarray]:
    from hsikit.data.synthetic import synthetic_scene

    _, sensor, seed = spec.split(":")
    cube, _, _ = synthetic_scene(sensor, 96, 96, 5, 0.0, seed=int(seed), dtype=np.float32)
    good = cube["bbl"].values
    return cube.values[good], cube["wavelength"].values[good]


def cube_to_array(cube, *, drop_absorption: bool = True, normalize: str = "minmax") -> tuple[np.ndarray, np.ndarray]:
    """A (band, y, x) cube to a (C, H, W) float32 array and (C,) wavelengths: physical values, good bands only.

    Bad bands (``bbl`` False or entirely nodata) and, with wavelengths known and ``drop_absorption``, the
    bands in :data:`ABSORPTION_NM` are removed; remaining nodata (NaN) is filled with the band mean;
    ``normalize="minmax"`` scales the whole cube to [0, 1], ``"none"`` keeps physical values.
    """
    from hsikit.cube import to_reflectance

    if normalize not in ("minmax", "none"):
        raise UsageError(f"normalize must be 'minmax' or 'none', got {normalize!r}")
    phys = to_reflectance(cube)
    data = np.asarray(phys.values, dtype=np.float32)
    wl = np.asarray(cube["wavelength"].values, dtype=np.float64)
    keep = np.asarray(cube["bbl"].values, bool) & np.isfinite(data).any(axis=(1, 2))
    if drop_absorption and np.isfinite(wl).all():
        for lo, hi in ABSORPTION_NM:
            keep &= ~((wl >= lo) & (wl <= hi))
    data, wl = data[keep], wl[keep]
    if data.shape[0] == 0:
        raise InputError("no usable band left", cube.attrs.get("source") or None)
    bad = ~np.isfinite(data)
    if bad.any():
        means = np.nanmean(np.where(bad, np.nan, data), axis=(1, 2), keepdims=True)
        data = np.where(bad, np.broadcast_to(means, data.shape), data)
    if normalize == "minmax":
        lo, hi = float(data.min()), float(data.max())
        data = (data - lo) / (hi - lo if hi > lo else 1.0)
    return np.ascontiguousarray(data, dtype=np.float32), wl.astype(np.float32)


@lru_cache(maxsize=64)
def _load(scene_id: str, root: str, normalize: str, drop_absorption: bool) -> SceneArray:
    e = _entry(scene_id)
    if e.path.startswith("synthetic:"):
        data, wl = _synthetic(e.path)
        if normalize == "minmax":
            data = (data - data.min()) / (data.max() - data.min())
        return SceneArray(e.id, data.astype(np.float32), wl.astype(np.float32), e.split, e.sensor, e.path)
    import hsikit

    path = Path(root) / e.path
    if not path.exists():
        raise InputError("benchmark scene not found", path)
    data, wl = cube_to_array(hsikit.open(path), drop_absorption=drop_absorption, normalize=normalize)
    for arr in (data, wl):
        arr.setflags(write=False)
    return SceneArray(e.id, data, wl, e.split, e.sensor, str(path))


def load_scene(
    scene: str | SceneEntry, root: str | os.PathLike | None = None, *, normalize: str = "minmax",
    drop_absorption: bool = True,
) -> SceneArray:
    """Load one scene (cached, read-only arrays) as a :class:`SceneArray`; see :func:`cube_to_array`."""
    e = _entry(scene)
    base = "" if e.path.startswith("synthetic:") else str(data_root(root))
    return _load(e.id, base, normalize, drop_absorption)


def load_scenes(
    split: str = "train", groups: tuple[str, ...] | list[str] | None = None, root: str | os.PathLike | None = None,
    **options,
) -> list[SceneArray]:
    """All scenes of a split (see :func:`list_scenes`), loaded with :func:`load_scene`."""
    return [load_scene(e, root, **options) for e in list_scenes(split, groups)]
