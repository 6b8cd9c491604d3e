"""Writers: tiled GeoTIFF -> COG, NetCDF (CF-1.8) and Zarr, all atomic, all keeping georeference
and band metadata; plus the reader for the NetCDF/Zarr files hsikit writes.

:class:`GeoTiffWriter` is the windowed sink the tiled engine streams into; :func:`write_geotiff`
streams a (possibly lazy) cube through it window by window, so memory stays bounded.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import rasterio.shutil
import xarray as xr
from affine import Affine
from rasterio.windows import Window

import hsikit
from hsikit.cube import BAND, TIME, X, Y, geotransform, make_cube
from hsikit.errors import InputError, UsageError
from hsikit.io.atomic import check_output, replace as replace_path, temporary_sibling, _remove
from hsikit.io.bandmeta import write_band_meta

BLOCK = 256
#: tile edge of the final COG
COG_BLOCK = 512


@dataclass
class RasterMeta:
    """Everything a writer needs to know about an output raster, without its pixels.

    ``wavelength``/``fwhm`` in nm (NaN unknown), ``bbl`` True = good, physical = stored * scale + offset.
    """

    count: int
    height: int
    width: int
    dtype: np.dtype
    crs: Any = None
    transform: Affine | None = None
    nodata: float | None = None
    wavelength: np.ndarray | None = None
    fwhm: np.ndarray | None = None
    bbl: np.ndarray | None = None
    names: list[str] = field(default_factory=list)
    scale: np.ndarray | None = None
    offset: np.ndarray | None = None
    tags: dict[str, str] = field(default_factory=dict)
    colormap: dict[int, tuple[int, int, int, int]] | None = None

    def __post_init__(self) -> None:
        n = self.count
        self.dtype = np.dtype(self.dtype)
        self.wavelength = np.full(n, np.nan) if self.wavelength is None else np.asarray(self.wavelength, float)
        self.fwhm = np.full(n, np.nan) if self.fwhm is None else np.asarray(self.fwhm, float)
        self.bbl = np.ones(n, bool) if self.bbl is None else np.asarray(self.bbl, bool)
        self.scale = np.ones(n) if self.scale is None else np.asarray(self.scale, float)
        self.offset = np.zeros(n) if self.offset is None else np.asarray(self.offset, float)
        if not self.names:
            self.names = [f"{w:.2f} nm" if np.isfinite(w) else f"band_{i + 1}" for i, w in enumerate(self.wavelength)]
        for key in ("wavelength", "fwhm", "bbl", "scale", "offset"):
            if len(getattr(self, key)) != n:
                raise UsageError(f"{key} has {len(getattr(self, key))} values for {n} bands")

    @classmethod
    def from_cube(cls, cube: xr.DataArray, **overrides: Any) -> RasterMeta:
        """Metadata of a (band, y, x) cube; ``overrides`` replace fields (e.g. ``dtype``)."""
        if TIME in cube.dims:
            raise UsageError("a time series (time, band, y, x) cannot be written as GeoTIFF: use NetCDF or Zarr")
        tags = {k: str(cube.attrs[k]) for k in ("sensor", "acquisition_time", "class_names") if cube.attrs.get(k)}
        meta = cls(
            count=cube.sizes[BAND],
            height=cube.sizes[Y],
            width=cube.sizes[X],
            dtype=cube.dtype,
            crs=cube.rio.crs,
            transform=geotransform(cube),
            nodata=cube.rio.nodata,
            wavelength=cube["wavelength"].values,
            fwhm=cube["fwhm"].values,
            bbl=cube["bbl"].values,
            names=[str(s) for s in cube["band_name"].values],
            scale=cube["scale"].values,
            offset=cube["offset"].values,
            tags=tags,
        )
        return replace(meta, **overrides) if overrides else meta

    def with_bands(self, count: int, *, names: list[str] | None = None, dtype: Any = None, **band_fields: Any) -> RasterMeta:
        """Same grid and georeference, new bands (e.g. abundances or class probabilities).

        ``band_fields`` may give ``wavelength``, ``fwhm``, ``bbl``, ``scale``, ``offset``, ``nodata``,
        ``colormap`` for the new bands; unspecified band metadata is reset to its defaults.
        """
        fields = dict(wavelength=None, fwhm=None, bbl=None, scale=None, offset=None)
        fields.update(band_fields)
        return replace(self, count=count, names=list(names or []), dtype=dtype or self.dtype, **fields)


def _block(n: int, limit: int) -> int:
    """Block edge for a raster edge of n pixels: a multiple of 16 (GDAL's rule), at most ``limit``."""
    return min(limit, max(16, -(-n // 16) * 16))


def _creation_options(meta: RasterMeta, compress: str) -> dict[str, Any]:
    integer = np.issubdtype(meta.dtype, np.integer)
    opts: dict[str, Any] = dict(
        driver="GTiff",
        tiled=True,
        blockxsize=_block(meta.width, BLOCK),
        blockysize=_block(meta.height, BLOCK),
        compress=compress,
        interleave="band",
        BIGTIFF="IF_SAFER",
        NUM_THREADS="ALL_CPUS",
    )
    if compress in ("deflate", "zstd", "lzw") and meta.dtype.itemsize > 1:
        opts["predictor"] = 2 if integer else 3
    return opts


def overview_factors(width: int, height: int, block: int = COG_BLOCK) -> list[int]:
    """Overview decimation factors 2, 4, 8, ... until the coarsest level fits in one block."""
    factors, k = [], 2
    while max(width, height) / (k // 2) > block:
        factors.append(k)
        k *= 2
    return factors


def _build_overviews(path: Path, resampling: str) -> None:
    """Add internal overviews to a tiled, band-interleaved GeoTIFF (band by band: memory is bounded)."""
    from rasterio.enums import Resampling

    with rasterio.open(path, "r+") as ds:
        factors = overview_factors(ds.width, ds.height)
        if factors:
            ds.build_overviews(factors, Resampling[resampling])


class GeoTiffWriter:
    """Windowed, atomic GeoTIFF/COG writer.

    The COG is **band-interleaved** (each tile holds one band), as hyperspectral readers need: a
    pixel-interleaved COG (what GDAL < 3.11's COG driver writes) makes a 512x512 tile of a 224-band
    float cube 235 MB, so reading one band decompresses all of them and writing needs memory that
    grows with the scene width. It is built the classic way: tiled GeoTIFF -> internal overviews
    (band by band) -> ``COPY_SRC_OVERVIEWS=YES`` copy, which puts every IFD before the pixel data
    and the overviews before the full-resolution tiles (the COG layout).

    Use as a context manager: windows are written into a tiled GeoTIFF under a temporary name next
    to ``path``; on a clean exit the metadata is written, the file is converted to a Cloud-Optimized
    GeoTIFF (``cog=True``) and renamed to ``path``. On an exception nothing at ``path`` changes.

    Parameters
    ----------
    path
        Output file (.tif).
    meta
        :class:`RasterMeta` of the output.
    cog
        Convert to COG (with overviews) at the end; else keep the tiled GeoTIFF.
    overwrite
        Replace an existing ``path`` (only once the new file is complete).
    compress
        GDAL compression (deflate with a predictor by default).
    overview_resampling
        Resampling for COG overviews ("average" for reflectance, "nearest" for class maps).
    """

    def __init__(
        self,
        path: str | os.PathLike,
        meta: RasterMeta,
        *,
        cog: bool = True,
        overwrite: bool = True,
        compress: str = "deflate",
        overview_resampling: str = "average",
    ) -> None:
        self.path = check_output(path, overwrite=overwrite)
        self.meta = meta
        self.cog = cog
        self.compress = compress
        self.overview_resampling = overview_resampling
        self._tmp = temporary_sibling(self.path)
        self._dst: rasterio.io.DatasetWriter | None = None

    def __enter__(self) -> GeoTiffWriter:
        m = self.meta
        # a COG is compressed once, by the final copy; the intermediate tiled GeoTIFF stays raw
        profile = _creation_options(m, "none" if self.cog else self.compress)
        profile.update(count=m.count, height=m.height, width=m.width, dtype=m.dtype.name, crs=m.crs,
                       transform=m.transform or Affine.identity(), nodata=m.nodata)
        self._dst = rasterio.open(self._tmp, "w", **profile)
        if m.colormap is not None:  # before any pixel: TIFF fixes the photometric tag at the first write
            self._dst.write_colormap(1, m.colormap)
        return self

    def write(self, array: np.ndarray, window: Window) -> None:
        """Write ``array`` of shape (count, window.height, window.width) at ``window``."""
        assert self._dst is not None, "use GeoTiffWriter as a context manager"
        self._dst.write(np.asarray(array, dtype=self.meta.dtype), window=window)

    def _finish(self) -> None:
        m = self.meta
        dst = self._dst
        assert dst is not None
        write_band_meta(dst, m.wavelength, m.fwhm, m.bbl, m.names)
        dst.scales = tuple(float(s) for s in m.scale)
        dst.offsets = tuple(float(o) for o in m.offset)
        dst.update_tags(hsikit_version=hsikit.__version__, **m.tags)
        dst.close()
        self._dst = None
        if self.cog:
            cog_tmp = temporary_sibling(self.path, "cog")
            try:
                _build_overviews(self._tmp, self.overview_resampling)
                opts = _creation_options(m, self.compress)
                edge = max(128, _block(max(m.width, m.height), COG_BLOCK))  # square tiles, as GDAL's COG driver
                opts.update(blockxsize=edge, blockysize=edge, COPY_SRC_OVERVIEWS="YES")
                rasterio.shutil.copy(self._tmp, cog_tmp, **opts)
            except BaseException:
                _remove(cog_tmp)
                raise
            _remove(self._tmp)
            self._tmp = cog_tmp
        replace_path(self._tmp, self.path)

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self._finish()
        finally:
            if self._dst is not None:
                self._dst.close()
                self._dst = None
            if exc_type is not None or self._tmp.exists():
                _remove(self._tmp)


def iter_windows(height: int, width: int, size: int = 512) -> Iterator[Window]:
    """Non-overlapping windows of at most ``size`` x ``size`` covering a raster, row by row."""
    for y0 in range(0, height, size):
        for x0 in range(0, width, size):
            yield Window(x0, y0, min(size, width - x0), min(size, height - y0))


def write_geotiff(
    cube: xr.DataArray,
    path: str | os.PathLike,
    *,
    cog: bool = True,
    overwrite: bool = True,
    compress: str = "deflate",
    window_size: int = 512,
    **_: Any,
) -> Path:
    """Write a (band, y, x) cube as COG (default) or tiled GeoTIFF, streaming window by window.

    Keeps CRS, transform, nodata, per-band scale/offset, band names and every spelling of the
    per-band wavelength/fwhm/bbl (see :mod:`hsikit.io.bandmeta`).
    """
    meta = RasterMeta.from_cube(cube)
    with GeoTiffWriter(path, meta, cog=cog, overwrite=overwrite, compress=compress) as w:
        for win in iter_windows(meta.height, meta.width, window_size):
            part = cube.isel({Y: slice(win.row_off, win.row_off + win.height), X: slice(win.col_off, win.col_off + win.width)})
            w.write(part.values, win)
    return Path(path)


# ---------------------------------------------------------------------------------- NetCDF / Zarr

_BAND_COORDS = ("wavelength", "fwhm", "bbl", "band_name", "scale", "offset")


def cube_to_dataset(cube: xr.DataArray) -> xr.Dataset:
    """CF-1.8 dataset for a cube: one data variable, band coords, x/y/time coords, ``spatial_ref``."""
    name = str(cube.name or "cube")
    da_ = cube.copy()
    nodata = da_.rio.nodata
    da_.attrs = {k: v for k, v in cube.attrs.items() if k not in ("_FillValue", "grid_mapping")}
    da_ = da_.assign_coords(bbl=(BAND, cube["bbl"].values.astype(np.int8)),
                            band_name=(BAND, cube["band_name"].values.astype(object)))
    da_["wavelength"].attrs.update(units="nm", long_name="band centre wavelength")
    da_["fwhm"].attrs.update(units="nm", long_name="full width at half maximum")
    da_["bbl"].attrs.update(long_name="bad band list", flag_values=np.array([0, 1], np.int8), flag_meanings="bad good")
    da_["scale"].attrs.update(long_name="per-band scale: physical = stored * scale + offset")
    da_["offset"].attrs.update(long_name="per-band offset: physical = stored * scale + offset")
    if X in da_.coords:
        da_[X].attrs.update(standard_name="projection_x_coordinate", units="m", long_name="x of pixel centre")
        da_[Y].attrs.update(standard_name="projection_y_coordinate", units="m", long_name="y of pixel centre")
    ds = da_.to_dataset(name=name)
    ds.attrs.update(Conventions="CF-1.8", title=name, source=str(cube.attrs.get("source", "")),
                    history=f"written by hsikit {hsikit.__version__}")
    ds[name].encoding = {}
    if "spatial_ref" in ds.coords:
        ds[name].encoding["grid_mapping"] = "spatial_ref"
        t = geotransform(cube)
        if t is not None:
            ds["spatial_ref"].attrs["GeoTransform"] = " ".join(str(v) for v in t.to_gdal())
    if nodata is not None:
        ds[name].encoding["_FillValue"] = np.array(nodata, dtype=cube.dtype) if not np.isnan(nodata) else np.nan
    return ds


def write_netcdf(cube: xr.DataArray, path: str | os.PathLike, *, overwrite: bool = True, **_: Any) -> Path:
    """Write a cube (or time series) to NetCDF-4 (h5netcdf), CF-1.8, atomically; lazy cubes stream."""
    final = check_output(path, overwrite=overwrite)
    tmp = temporary_sibling(final)
    ds = cube_to_dataset(cube)
    name = next(iter(ds.data_vars))
    ds[name].encoding.update(zlib=True, complevel=4, chunksizes=_nc_chunks(cube))
    try:
        ds.to_netcdf(tmp, engine="h5netcdf")
        replace_path(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
    return final


def _nc_chunks(cube: xr.DataArray) -> tuple[int, ...]:
    sizes = [cube.sizes[d] for d in cube.dims]
    return tuple(min(s, 256) if d in (X, Y) else (min(s, 1) if d == TIME else s) for d, s in zip(cube.dims, sizes))


def write_zarr(cube: xr.DataArray, path: str | os.PathLike, *, overwrite: bool = True, **_: Any) -> Path:
    """Write a cube (or time series) to a Zarr v3 store, CF attrs, atomically (temporary folder, then rename)."""
    final = check_output(path, overwrite=overwrite)
    tmp = temporary_sibling(final)
    ds = cube_to_dataset(cube)
    name = next(iter(ds.data_vars))
    chunks = dict(zip(cube.dims, _nc_chunks(cube)))
    if cube.chunks is None:
        ds[name] = ds[name].chunk(chunks)
    try:
        ds.to_zarr(tmp, mode="w", consolidated=False)
        replace_path(tmp, final)
    except BaseException:
        _remove(tmp)
        raise
    return final


def read_dataset(path: str | os.PathLike, *, engine: str = "netcdf", variable: str | None = None, **_: Any) -> xr.DataArray:
    """Read a NetCDF or Zarr cube written by hsikit back into the cube model (lazily)."""
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", p)
    try:
        if engine == "zarr":
            ds = xr.open_zarr(p, consolidated=False, decode_coords="all", mask_and_scale=False)
        else:
            ds = xr.open_dataset(p, engine="h5netcdf", decode_coords="all", mask_and_scale=False, chunks={})
    except Exception as exc:  # xarray raises many types for unreadable stores
        raise InputError(f"not a readable {engine} cube ({type(exc).__name__}: {exc})", p) from None
    names = [variable] if variable else [v for v in ds.data_vars if ds[v].ndim in (3, 4)]
    if len(names) != 1 or names[0] not in ds:
        raise InputError(f"expected one 3-D or 4-D variable, found {list(ds.data_vars)}", p)
    var = ds[names[0]]
    if BAND not in var.dims:
        raise InputError(f"variable {names[0]!r} has no 'band' dimension (dims {var.dims})", p)
    crs = ds["spatial_ref"].attrs.get("crs_wkt") if "spatial_ref" in ds.coords or "spatial_ref" in ds else None
    gt = ds["spatial_ref"].attrs.get("GeoTransform") if crs is not None or "spatial_ref" in ds else None
    transform = Affine.from_gdal(*[float(v) for v in gt.split()]) if gt else None
    nodata = var.attrs.get("_FillValue", var.encoding.get("_FillValue"))
    cube = make_cube(
        var.data,
        wavelength=var["wavelength"].values,
        fwhm=var["fwhm"].values,
        bbl=var["bbl"].values.astype(bool),
        band_names=[str(s) for s in var["band_name"].values],
        band_numbers=var[BAND].values,
        scale=var["scale"].values,
        offset=var["offset"].values,
        crs=crs,
        transform=transform,
        nodata=None if nodata is None else nodata.item() if hasattr(nodata, "item") else nodata,
        time=var[TIME].values if TIME in var.dims else None,
        sensor=str(var.attrs.get("sensor", "")),
        acquisition_time=str(var.attrs.get("acquisition_time", "")),
        source=str(p),
        name=names[0],
    )
    # per-pixel layers stored beside the cube (e.g. Sentinel-2 ``clear`` / ``scl`` masks on (time, y, x))
    extra = {k: c for k, c in var.coords.items()
             if k not in cube.coords and k != "spatial_ref" and c.dims and set(c.dims) <= {TIME, Y, X}}
    if extra:
        cube = cube.assign_coords({k: (c.dims, np.asarray(c.values)) for k, c in extra.items()})
    return cube
