"""Readers and writers: every reader returns the cube model of :mod:`hsikit.cube`.

:func:`open_cube` picks the reader from the path (folder layout, suffix, then magic bytes via GDAL);
:func:`save_cube` picks the writer from the suffix or ``format``.
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import xarray as xr

# GDAL's block cache defaults to 5% of RAM; a fixed size keeps memory independent of the scene.
os.environ.setdefault("GDAL_CACHEMAX", "64")  # MB; measured in scripts/bench/engine_memory.py

from hsikit.cube import select_bands
from hsikit.errors import InputError, UsageError

FORMATS = ("cog", "gtiff", "netcdf", "zarr")


def _looks_like_enmap(p: Path) -> bool:
    name = p.name.upper()
    if p.is_dir():
        return any(q.name.upper().endswith("-METADATA.XML") for q in p.rglob("*METADATA.XML"))
    if name.endswith("-METADATA.XML"):
        return True
    if name.endswith(".ZIP") and zipfile.is_zipfile(p):
        with zipfile.ZipFile(p) as z:
            return any(n.upper().endswith("-METADATA.XML") for n in z.namelist())
    return False


def _looks_like_sentinel2(p: Path) -> bool:
    """A SAFE product (folder or ZIP), a folder of SAFE products, or a STAC item collection (.json)."""
    name = p.name.upper()
    if name.endswith(".SAFE") or (name.endswith(".SAFE.ZIP") and zipfile.is_zipfile(p)):
        return True
    if p.is_dir():
        from hsikit.io.sentinel2 import _BAND_RE, _DATE_RE, _STACK_RE

        entries = list(p.iterdir())
        if any(q.name.upper().endswith(".SAFE") for q in entries):
            return True
        # a folder of dated Sentinel-2 band files or BOA/TOA stacks (sen2r, exports of STAC assets)
        rasters = [q for q in entries if q.suffix.lower() in (".tif", ".tiff", ".jp2")]
        return bool(rasters) and all(_DATE_RE.search(q.stem) and (_BAND_RE.search(q.stem) or _STACK_RE.search(q.stem))
                                     for q in rasters)
    if p.suffix.lower() == ".json":
        import json

        try:
            doc = json.loads(p.read_text())
        except (ValueError, UnicodeDecodeError):
            return False
        return isinstance(doc, dict) and (doc.get("type") in ("FeatureCollection", "Feature"))
    return False


def _looks_like_bigearthnet(p: Path) -> bool:
    if p.suffix.lower() != ".npz":
        return False
    import numpy as np

    try:
        with np.load(p) as z:
            return {"B02", "B03", "B04"} <= set(z.files)
    except (OSError, ValueError):
        return False


def detect_format(path: str | os.PathLike) -> str:
    """Name of the reader for ``path``: enmap, sentinel2, eolearn, bigearthnet, envi, matlab, pngstack,
    netcdf, zarr or raster (``spectralearth`` is chosen with ``format=``)."""
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", p)
    suffix = p.suffix.lower()
    if suffix == ".zarr" or (p.is_dir() and (p / "zarr.json").exists()):
        return "zarr"
    if _looks_like_enmap(p):
        return "enmap"
    if _looks_like_sentinel2(p):
        return "sentinel2"
    if _looks_like_bigearthnet(p):
        return "bigearthnet"
    if p.is_dir() and (p / "data" / "REFERENCE_SCENES.npy").exists():
        return "eolearn"
    if p.is_dir():
        entries = list(p.iterdir())
        subdirs = [q for q in entries if q.is_dir()]
        if any(q.suffix.lower() == ".png" for q in entries) or (
            len(subdirs) == 1 and any(q.suffix.lower() == ".png" for q in subdirs[0].iterdir())
        ):
            return "pngstack"
        raise InputError("folder is neither an EnMAP product, a Zarr store nor a PNG band stack", p)
    if suffix == ".mat":
        return "matlab"
    if suffix in (".nc", ".nc4", ".h5nc"):
        return "netcdf"
    if suffix in (".hdr", ".sli", ".bsq", ".bil", ".bip", ".img", ".dat") or p.with_suffix(".hdr").exists() or Path(str(p) + ".hdr").exists():
        return "envi"
    return "raster"


def open_cube(path: str | os.PathLike, *, format: str | None = None, bands: str | Any = "all", **opts: Any) -> xr.DataArray:
    """Open any supported scene as a cube (see :mod:`hsikit.cube`).

    Parameters
    ----------
    path
        GeoTIFF/COG, ENVI (.hdr + data, .sli libraries), EnMAP L2A product (folder, ZIP or
        METADATA.XML), Sentinel-2 (SAFE folder/ZIP, a folder of SAFEs, a STAC item collection .json;
        a (time, band, y, x) series), the eo-learn patch folder, BigEarthNet .npz patches, MATLAB .mat (v5 or v7.3), a folder of per-band PNGs (CAVE), NetCDF or Zarr
        written by hsikit.
    format
        Force a reader (``raster``, ``envi``, ``enmap``, ``sentinel2``, ``eolearn``, ``bigearthnet``,
        ``spectralearth``, ``matlab``, ``pngstack``, ``netcdf``, ``zarr``).
    bands
        Band preset or list passed to :func:`hsikit.cube.select_bands`.
    **opts
        Reader-specific options (e.g. ``key=`` for .mat files, ``chunks=`` for lazy rasters).
    """
    kind = format or detect_format(path)
    if kind == "raster":
        from hsikit.io.geotiff import read_raster as reader
    elif kind == "envi":
        from hsikit.io.envi import read_envi as reader
    elif kind == "enmap":
        from hsikit.io.enmap import read_enmap as reader
    elif kind == "matlab":
        from hsikit.io.matlab import read_matlab as reader
    elif kind == "pngstack":
        from hsikit.io.pngstack import read_png_stack as reader
    elif kind in ("netcdf", "zarr"):
        from hsikit.io.export import read_dataset as reader

        opts.setdefault("engine", kind)
    elif kind == "sentinel2":
        from hsikit.io.sentinel2 import read_sentinel2 as reader
    elif kind == "eolearn":
        from hsikit.io.sentinel2 import read_eolearn_patch as reader
    elif kind == "bigearthnet":
        from hsikit.io.sentinel2 import read_bigearthnet_patch as reader
    elif kind == "spectralearth":
        from hsikit.io.spectralearth import read_patch as reader
    else:
        raise UsageError(f"unknown input format {kind!r}")
    if kind == "enmap":  # presets refer to the product's 224 bands, before the overlap policy
        return reader(path, bands=bands, **opts)
    return select_bands(reader(path, **opts), bands)


def as_cube(obj: Any) -> tuple[xr.DataArray, str]:
    """(cube, source label) of what a task function was given: a path, a cube, or a (band, y, x) array.

    A path is opened with :func:`open_cube` and labelled by itself; a cube keeps its ``source`` attr
    (else ``"cube"``); an array becomes a cube without metadata (a 2-D array one band), labelled ``"array"``.
    """
    if isinstance(obj, xr.DataArray):
        return obj, str(obj.attrs.get("source", "") or "cube")
    if isinstance(obj, (str, os.PathLike)):
        return open_cube(obj), str(obj)
    import numpy as np

    from hsikit.cube import make_cube

    arr = np.asarray(obj)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3:
        raise UsageError(f"expected a (band, y, x) cube, got a {arr.ndim}-D array")
    return make_cube(arr), "array"


def output_format(path: str | os.PathLike, format: str | None = None) -> str:
    """The writer for ``path``: ``format`` if given, else from the suffix (.tif -> cog, .nc, .zarr)."""
    if format is not None:
        f = format.lower()
        if f not in FORMATS:
            raise UsageError(f"unknown output format {format!r} (use one of {', '.join(FORMATS)})")
        return f
    suffix = Path(path).suffix.lower()
    if suffix in (".nc", ".nc4"):
        return "netcdf"
    if suffix == ".zarr":
        return "zarr"
    if suffix in (".tif", ".tiff", ""):
        return "cog"
    raise UsageError(f"cannot tell the output format from {str(path)!r}: use .tif, .nc or .zarr, or --format")


def save_cube(cube: xr.DataArray, path: str | os.PathLike, *, format: str | None = None, overwrite: bool = True, **opts: Any) -> Path:
    """Write a cube atomically as COG/GeoTIFF, NetCDF or Zarr, keeping georeference and band metadata."""
    from hsikit.io import export

    fmt = output_format(path, format)
    if fmt in ("cog", "gtiff"):
        return export.write_geotiff(cube, path, cog=fmt == "cog", overwrite=overwrite, **opts)
    if fmt == "netcdf":
        return export.write_netcdf(cube, path, overwrite=overwrite, **opts)
    return export.write_zarr(cube, path, overwrite=overwrite, **opts)
