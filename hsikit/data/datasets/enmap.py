"""EnMAP L2A rasters (products or tiles) as torchgeo ``RasterDataset`` s, for torchgeo's geo samplers.

:class:`EnmapImages` indexes GeoTIFF/COG files (one scene or tile each) by footprint and acquisition
time (from the EnMAP product name when it has one, else from the file's ``start_time`` /
``acquisition_time`` tag) and returns torchgeo samples ``{"image", "crs", "bounds", "wavelength"}``:
``image`` (C, h, w) float32 reflectance (stored value * scale + offset, nodata -> NaN) of the selected
bands (presets ``all``, ``valid`` = good bands of the file's ``bbl``, ``torchgeo202``, or band numbers).
:class:`EnmapLabels` reads label rasters as ``mask`` (h, w) int64. ``images & labels`` (a torchgeo
``IntersectionDataset``, see :func:`enmap_tiles_dataset`) gives both; sample it with
``RandomGeoSampler(ds, size)`` (random patches) or ``GridGeoSampler(ds, size, stride)`` (grid patches)
and batch with ``torchgeo.datasets.stack_samples``.

Importing this module imports torchgeo (a few seconds).
"""

from __future__ import annotations

import glob
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torchgeo.datasets import IntersectionDataset, RasterDataset

from hsikit.cube import TORCHGEO202
from hsikit.errors import InputError, UsageError

#: torchgeo's EnMAP RGB bands (1-based).
RGB_BANDS = (48, 30, 16)
_PRODUCT_TIME = r"ENMAP01-____L2A-DT\d{10}_(\d{8}T\d{6})Z"


def _files(paths: str | os.PathLike | Sequence[str | os.PathLike], pattern: str) -> list[str]:
    items = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    out: set[str] = set()
    for p in items:
        if os.path.isdir(p):
            out |= set(glob.glob(os.path.join(p, "**", pattern), recursive=True))
        elif os.path.isfile(p):
            out.add(str(p))
    return sorted(out)


def _file_time(path: str) -> pd.Timestamp | None:
    import re

    import rasterio

    m = re.search(_PRODUCT_TIME, os.path.basename(path))
    if m:
        return pd.Timestamp(m.group(1))
    with rasterio.open(path) as src:
        tags = src.tags()
    for key in ("start_time", "acquisition_time", "ACQUISITIONDATETIME"):
        if tags.get(key):
            try:
                return pd.Timestamp(tags[key].rstrip("Z"))
            except ValueError:
                continue
    return None


def _retime(ds: RasterDataset) -> None:
    """Replace the index's open time intervals by each file's acquisition time (when known).

    The interval is [t, t + 1 s]: like torchgeo's timestamp disambiguation it spans the precision of the
    time stamp (a zero-length interval would never overlap torchgeo's half-open queries)."""
    old = ds.index.index
    new = []
    for (lo, hi), fp in zip(zip(old.left, old.right), ds.index["filepath"]):
        t = _file_time(fp)
        new.append((t, t + pd.Timedelta(seconds=1)) if t is not None else (lo, hi))
    ds.index.index = pd.IntervalIndex.from_tuples(new, closed="both", name="datetime")


def _band_metadata(path: str) -> Any:
    """The band metadata of a file as a lazy cube: from the product's METADATA.XML for an L2A
    ``*SPECTRAL_IMAGE*`` file beside one (wavelengths, FWHM, gains, no-data bands), else from its tags."""
    from hsikit.io.geotiff import read_raster

    p = Path(path)
    if "SPECTRAL_IMAGE" in p.name.upper() and any(q.name.upper().endswith("-METADATA.XML") for q in p.parent.iterdir()):
        from hsikit.io.enmap import read_enmap

        return read_enmap(p)
    return read_raster(p, lazy=True)


class EnmapImages(RasterDataset):
    """EnMAP L2A GeoTIFFs / COGs as a torchgeo ``RasterDataset`` returning reflectance and wavelengths.

    Band metadata (wavelength, FWHM, bbl, scale/offset, nodata) come from the first file: from the
    product's METADATA.XML for L2A ``*SPECTRAL_IMAGE*`` files (product folders), else from its tags; all
    files must share them.

    Parameters
    ----------
    paths
        Folder(s) searched recursively for ``filename_glob``, or files.
    bands
        ``"all"``, ``"valid"`` (the first file's good bands), ``"torchgeo202"`` (224-band files) or a
        sequence of 1-based band numbers.
    reflectance
        Apply scale/offset and turn nodata into NaN (else stored values as float32, nodata kept).
    crs, res
        Target CRS and resolution (default: the first file's).
    transforms
        Callable on the sample dict (after the reflectance conversion).
    filename_glob
        Pattern of image files (default ``*.tif``; e.g. ``*SPECTRAL_IMAGE*`` for product folders).
    cache
        Keep file handles open (torchgeo's cache).
    """

    filename_glob = "*.tif"
    filename_regex = ".*"

    def __init__(
        self,
        paths: str | os.PathLike | Sequence[str | os.PathLike],
        *,
        bands: str | Sequence[int] = "all",
        reflectance: bool = True,
        crs: Any = None,
        res: float | tuple[float, float] | None = None,
        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
        filename_glob: str | None = None,
        cache: bool = True,
    ) -> None:
        if filename_glob is not None:
            self.filename_glob = filename_glob
        files = _files(paths, self.filename_glob)
        if not files:
            raise InputError(f"no EnMAP rasters matching {self.filename_glob!r}", paths if isinstance(paths, (str, os.PathLike)) else None)
        first = _band_metadata(files[0])
        n = first.sizes["band"]
        self.all_bands = tuple(f"B{i}" for i in range(1, n + 1))
        self.rgb_bands = tuple(f"B{b}" for b in RGB_BANDS) if n == 224 else ()
        numbers = self._band_numbers(bands, first)
        idx = np.asarray(numbers) - 1
        self.band_numbers = list(numbers)
        self.wavelength = torch.as_tensor(first["wavelength"].values[idx], dtype=torch.float32)
        self.fwhm = torch.as_tensor(first["fwhm"].values[idx], dtype=torch.float32)
        self.scale = torch.as_tensor(first["scale"].values[idx], dtype=torch.float32)
        self.offset = torch.as_tensor(first["offset"].values[idx], dtype=torch.float32)
        self.nodata = first.rio.nodata
        self.reflectance = reflectance
        self.user_transforms = transforms
        super().__init__(files, crs=crs, res=res, bands=[f"B{b}" for b in numbers], transforms=None, cache=cache)
        _retime(self)

    @staticmethod
    def _band_numbers(bands: str | Sequence[int], first: Any) -> list[int]:
        n = first.sizes["band"]
        if isinstance(bands, str):
            key = bands.lower()
            if key == "all":
                return list(range(1, n + 1))
            if key == "valid":
                return [i + 1 for i in np.flatnonzero(first["bbl"].values)]
            if key == "torchgeo202":
                if n != 224:
                    raise UsageError(f"band preset 'torchgeo202' needs 224-band files, these have {n}")
                return list(TORCHGEO202)
            raise UsageError(f"unknown band preset {bands!r} (all, valid, torchgeo202 or band numbers)")
        numbers = [int(b) for b in bands]
        if not numbers or min(numbers) < 1 or max(numbers) > n:
            raise UsageError(f"band numbers must lie in 1-{n}")
        return numbers

    def __getitem__(self, query: Any) -> dict[str, Any]:
        sample = super().__getitem__(query)
        img = sample["image"]
        if self.reflectance:
            if self.nodata is not None and not np.isnan(self.nodata):
                img = torch.where(img == float(self.nodata), torch.nan, img)
            img = img * self.scale[:, None, None] + self.offset[:, None, None]
        sample["image"] = img
        sample["wavelength"] = self.wavelength
        if self.user_transforms is not None:
            sample = self.user_transforms(sample)
        return sample


class EnmapLabels(RasterDataset):
    """Label rasters on the EnMAP grid (``mask`` (h, w) int64; 0 = unlabelled in the Potsdam tiles)."""

    filename_glob = "*.tif"
    filename_regex = ".*"
    is_image = False

    def __init__(self, paths: str | os.PathLike | Sequence[str | os.PathLike], *, crs: Any = None,
                 res: float | tuple[float, float] | None = None, filename_glob: str | None = None,
                 transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None, cache: bool = True) -> None:
        if filename_glob is not None:
            self.filename_glob = filename_glob
        if not _files(paths, self.filename_glob):
            raise InputError(f"no label rasters matching {self.filename_glob!r}", paths if isinstance(paths, (str, os.PathLike)) else None)
        super().__init__(paths, crs=crs, res=res, transforms=transforms, cache=cache)

    @property
    def resampling(self):  # labels: always nearest
        from rasterio.enums import Resampling

        return Resampling.nearest


def enmap_tiles_dataset(root: str | os.PathLike, *, bands: str | Sequence[int] = "valid", reflectance: bool = True,
                        transforms: Callable[[dict[str, Any]], dict[str, Any]] | None = None) -> IntersectionDataset:
    """The EnMAP tiles of ``root/images`` with their labels ``root/labels`` (the layout of
    ``enmap_potsdam_tiles``) as one torchgeo dataset: samples hold ``image``, ``mask`` and ``wavelength``."""
    root = Path(root)
    images = EnmapImages(root / "images", bands=bands, reflectance=reflectance)
    labels = EnmapLabels(root / "labels", crs=images.crs, res=images.res)
    ds = images & labels
    if transforms is not None:
        ds.transforms = transforms
    return ds
