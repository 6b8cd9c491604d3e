"""SpectralEarth-style patch archives (Braham et al. 2024): layout, patch reader and split files.

Layout (pretraining): ``<root>/enmap/<location>/<k>.tif`` - one folder per location, one 128 x 128 px,
202-band int16 GeoTIFF (EnMAP L2A reflectance x 10000, 30 m) per acquisition; locations with several
files are multi-temporal. Downstream tasks: split files ``<splits>/<task>/{train,val,test}.txt`` with
entries ``<location>/<k>.tif``; the image is ``<root>/enmap/<entry>``, the label ``<root>/<product>/<entry>``
(``task`` = ``enmap_<product>``, e.g. ``enmap_cdl``).

The 202 bands are EnMAP's 224 without 1-based bands 127-141 and 161-167 (torchgeo / HySpecNet
convention, :data:`hsikit.cube.TORCHGEO202`). When a patch carries no wavelength tags they are filled
from the EnMAP band table for those bands (attr ``wavelengths_assumed`` = 1).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np
import xarray as xr

from hsikit.cube import BAND, TORCHGEO202
from hsikit.errors import InputError, MetadataError, UsageError

#: Bands per SpectralEarth EnMAP patch and the patch edge in pixels.
N_BANDS = 202
PATCH_SIZE = 128
SPLITS = ("train", "val", "test")
_NUMBER = re.compile(r"(\d+)")


def _sort_key(p: Path) -> tuple[int, str]:
    m = _NUMBER.search(p.stem)
    return (int(m.group(1)) if m else -1, p.name)


def scan_archive(root: str | os.PathLike, sensor: str = "enmap") -> dict[str, list[Path]]:
    """Locations of an archive and their patch files (sorted by the number in the name).

    Returns
    -------
    dict
        ``{location: [path, ...]}``, locations sorted; only folders with at least one ``.tif``.
    """
    base = Path(root) / sensor
    if not base.is_dir():
        raise InputError(f"not a SpectralEarth archive: no {sensor}/ folder", root)
    out: dict[str, list[Path]] = {}
    for loc in sorted(p for p in base.iterdir() if p.is_dir()):
        files = sorted((f for f in loc.iterdir() if f.suffix.lower() in (".tif", ".tiff")), key=_sort_key)
        if files:
            out[loc.name] = files
    if not out:
        raise InputError(f"no patches under {sensor}/<location>/*.tif", root)
    return out


def spectralearth_wavelengths() -> tuple[np.ndarray, np.ndarray]:
    """Centre wavelengths and FWHM (nm) of the 202 bands, from hsikit's EnMAP band table; shape (202,)."""
    from hsikit.data.sensors import sensor_bands

    enmap = sensor_bands("enmap")
    idx = np.asarray(TORCHGEO202) - 1
    return enmap.wavelength[idx].copy(), enmap.fwhm[idx].copy()


def read_patch(path: str | os.PathLike) -> xr.DataArray:
    """One patch as a cube (band, y, x), stored int16 DN, scale 1e-4 when the file has no scale tag.

    Raises :class:`MetadataError` if the band count is neither 202 nor given wavelengths by the file.
    """
    from hsikit.io.geotiff import read_raster

    cube = read_raster(path)
    n = cube.sizes[BAND]
    if not np.isfinite(cube["wavelength"].values).all():
        if n != N_BANDS:
            raise MetadataError(f"{n} bands without wavelength tags (a SpectralEarth patch has {N_BANDS})", path)
        wl, fw = spectralearth_wavelengths()
        cube = cube.assign_coords(wavelength=(BAND, wl), fwhm=(BAND, fw))
        cube.attrs["wavelengths_known"] = 1
        cube.attrs["wavelengths_assumed"] = 1
    if np.all(cube["scale"].values == 1) and np.issubdtype(cube.dtype, np.integer):
        cube = cube.assign_coords(scale=(BAND, np.full(n, 1e-4)))
    if not cube.attrs.get("sensor"):
        cube.attrs["sensor"] = "EnMAP (SpectralEarth patch)"
    return cube


def read_split(splits: str | os.PathLike, task: str, split: str) -> list[str]:
    """Entries ``<location>/<k>.tif`` of ``<splits>/<task>/<split>.txt`` (blank lines and ``#`` comments skipped)."""
    if split not in SPLITS:
        raise UsageError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    p = Path(splits) / task / f"{split}.txt"
    if not p.exists():
        raise InputError("split file not found", p)
    entries = [ln.strip() for ln in p.read_text().splitlines() if ln.strip() and not ln.lstrip().startswith("#")]
    bad = [e for e in entries if len(Path(e).parts) != 2]
    if bad:
        raise InputError(f"entries must look like <location>/<k>.tif, got {bad[0]!r}", p)
    return entries
