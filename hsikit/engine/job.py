"""Scene jobs: one cube in, one georeferenced raster out, tile by tile.

The single place where a task's ``api.py`` meets the engine and the writer: it builds the output's
:class:`~hsikit.io.export.RasterMeta` from the input grid, opens an atomic
:class:`~hsikit.io.export.GeoTiffWriter`, streams :func:`~hsikit.engine.run.run_tiled` into it and
renames the file only when every window is written. An exception (or a cancel) anywhere leaves an
existing output untouched and no temporary file behind.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from affine import Affine

from hsikit.cube import BAND, X, Y
from hsikit.engine.run import RunStats, TileFunction, run_tiled
from hsikit.errors import OutputError, UsageError
from hsikit.io.export import GeoTiffWriter, RasterMeta


def check_cog_output(path: str | os.PathLike, *, overwrite: bool = True, task: str = "this task") -> Path:
    """Check a task's raster output before any work: a GeoTIFF path (.tif), folder there, overwrite allowed.

    The tasks stream their result into a COG (:func:`run_scene`); a ``.nc`` or ``.zarr`` path would
    otherwise get a GeoTIFF under the wrong suffix. Raises :class:`~hsikit.errors.OutputError` naming the path.
    """
    from hsikit.io import output_format
    from hsikit.io.atomic import check_output

    if output_format(path) != "cog":
        raise OutputError(f"{task} writes a GeoTIFF (COG): use a .tif output (hsikit convert makes NetCDF/Zarr)", path)
    return check_output(path, overwrite=overwrite)


def output_meta(
    cube: xr.DataArray,
    *,
    out_bands: int | None = None,
    names: Sequence[str] | None = None,
    dtype: Any = np.float32,
    nodata: float | None = None,
    keep_band_metadata: bool = True,
    refine: int = 1,
    **band_fields: Any,
) -> RasterMeta:
    """RasterMeta of an output on the grid of ``cube`` (band, y, x), or on that grid refined ``refine`` times.

    Parameters
    ----------
    cube
        The input cube: CRS, transform and size come from it.
    out_bands
        Output band count (default: the input's).
    names
        Band names of the output (e.g. endmember or class names).
    dtype
        Output dtype.
    nodata
        Output nodata value (default NaN for floats).
    keep_band_metadata
        With ``out_bands`` equal to the input's, keep wavelength/fwhm/bbl/names (a denoised cube);
        else the bands are new quantities (abundances, classes) with only ``names``.
    refine
        Integer refinement of the grid (super-resolution): ``refine`` times the rows and columns,
        pixels ``refine`` times smaller, same upper-left corner and extent.
    **band_fields
        ``wavelength``, ``fwhm``, ``bbl``, ``colormap``, ``scale`` (per-band value scale), ... of the new bands.
    """
    meta = RasterMeta.from_cube(cube)
    if refine != 1:
        meta = refine_meta(meta, refine)
    n = meta.count if out_bands is None else int(out_bands)
    dtype = np.dtype(dtype)
    if nodata is None:
        nodata = float("nan") if np.issubdtype(dtype, np.floating) else meta.nodata
    if keep_band_metadata and n == meta.count and not band_fields and names is None:
        # physical values are written, so scale/offset of the (scaled integer) input no longer apply
        return meta.with_bands(n, names=meta.names, dtype=dtype, wavelength=meta.wavelength, fwhm=meta.fwhm,
                               bbl=meta.bbl, nodata=nodata)
    if names is not None and len(names) != n:
        raise UsageError(f"{len(names)} band names for {n} output bands")
    return meta.with_bands(n, names=list(names) if names is not None else None, dtype=dtype, nodata=nodata, **band_fields)


def refine_meta(meta: RasterMeta, scale: int) -> RasterMeta:
    """``meta`` on its grid refined ``scale`` times (same corner and extent, pixels ``scale`` times smaller)."""
    s = int(scale)
    if s != scale or s < 1:
        raise UsageError(f"scale must be a positive integer, got {scale}")
    transform = None if meta.transform is None else meta.transform * Affine.scale(1 / s)
    return dataclasses.replace(meta, height=meta.height * s, width=meta.width * s, transform=transform)


def run_scene(
    cube: xr.DataArray,
    fn: TileFunction,
    out_path: str | os.PathLike,
    meta: RasterMeta,
    *,
    tile: int = 256,
    halo: int = 16,
    batch_size: int = 4,
    overwrite: bool = True,
    cog: bool = True,
    overview_resampling: str = "average",
    fill_value: float = 0.0,
    progress: bool | Callable[[int, int], bool | None] = True,
    description: str = "tiles",
    scale: int = 1,
) -> RunStats:
    """Stream ``fn`` over ``cube`` (band, y, x) into a COG at ``out_path`` described by ``meta``.

    ``fn`` maps a batch (B, C_in, tile + 2 halo, tile + 2 halo) to (B, meta.count, scale h, scale w)
    (``scale`` > 1: the output grid is the input grid refined, :func:`refine_meta`);
    nodata pixels of the input are filled with ``fill_value`` before ``fn`` and written as
    ``meta.nodata``. Returns the engine's :class:`RunStats`.
    """
    if cube.dims != (BAND, Y, X):
        raise UsageError(f"expected a (band, y, x) cube, got dims {cube.dims}")
    want = (scale * cube.sizes[Y], scale * cube.sizes[X])
    if (meta.height, meta.width) != want:
        raise UsageError(f"output grid {meta.height}x{meta.width} differs from the input's {cube.sizes[Y]}x{cube.sizes[X]}"
                         + (f" refined {scale} times" if scale != 1 else ""))
    with GeoTiffWriter(Path(out_path), meta, cog=cog, overwrite=overwrite, overview_resampling=overview_resampling) as sink:
        return run_tiled(
            cube, fn, sink, out_bands=meta.count, tile=tile, halo=halo, batch_size=batch_size,
            nodata_out=meta.nodata, fill_value=fill_value, out_dtype=meta.dtype, progress=progress,
            description=description, scale=scale,
        )
