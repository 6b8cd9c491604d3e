"""Scene jobs: one cube in, one georeferenced raster out, tile by tile.

The single place where a task's ``api.py`` meets the engine and the writer: it builds the output's
:class:`~hsikit.io.export.RasterMeta` from the input grid, opens an atomic
:class:`~hsikit.io.export.GeoTiffWriter`, streams :func:`~hsikit.engine.run.run_tiled` into it and
renames the file only when every window is written. An exception (or a cancel) anywhere leaves an
existing output untouched and no temporary file behind.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from hsikit.cube import BAND, X, Y
from hsikit.engine.run import RunStats, TileFunction, run_tiled
from hsikit.errors import UsageError
from hsikit.io.export import GeoTiffWriter, RasterMeta


def output_meta(
    cube: xr.DataArray,
    *,
    out_bands: int | None = None,
    names: Sequence[str] | None = None,
    dtype: Any = np.float32,
    nodata: float | None = None,
    keep_band_metadata: bool = True,
    **band_fields: Any,
) -> RasterMeta:
    """RasterMeta of an output on the grid of ``cube`` (band, y, x).

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
    **band_fields
        ``wavelength``, ``fwhm``, ``bbl``, ``colormap``, ... of the new bands.
    """
    meta = RasterMeta.from_cube(cube)
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
) -> RunStats:
    """Stream ``fn`` over ``cube`` (band, y, x) into a COG at ``out_path`` described by ``meta``.

    ``fn`` maps a batch (B, C_in, tile + 2 halo, tile + 2 halo) to (B, meta.count, same h, w);
    nodata pixels of the input are filled with ``fill_value`` before ``fn`` and written as
    ``meta.nodata``. Returns the engine's :class:`RunStats`.
    """
    if cube.dims != (BAND, Y, X):
        raise UsageError(f"expected a (band, y, x) cube, got dims {cube.dims}")
    if (meta.height, meta.width) != (cube.sizes[Y], cube.sizes[X]):
        raise UsageError(f"output grid {meta.height}x{meta.width} differs from the input {cube.sizes[Y]}x{cube.sizes[X]}")
    with GeoTiffWriter(Path(out_path), meta, cog=cog, overwrite=overwrite, overview_resampling=overview_resampling) as sink:
        return run_tiled(
            cube, fn, sink, out_bands=meta.count, tile=tile, halo=halo, batch_size=batch_size,
            nodata_out=meta.nodata, fill_value=fill_value, out_dtype=meta.dtype, progress=progress,
            description=description,
        )
