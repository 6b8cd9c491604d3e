"""GeoTIFF/COG (and any single-file GDAL raster) reader returning the cube model.

Large files are opened lazily: the cube's data is an xarray lazily-indexed view of the file, so
``cube.isel(y=..., x=...).values`` reads exactly that window (one rasterio read) and a scene never
has to fit in memory.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import xarray as xr
from rasterio.windows import Window
from xarray.backends import BackendArray
from xarray.core import indexing

from hsikit.cube import X, Y, make_cube
from hsikit.errors import InputError
from hsikit.io.bandmeta import read_band_meta

#: Files larger than this (bytes, decoded) are opened lazily unless ``lazy`` says otherwise.
LAZY_THRESHOLD = 256 * 2**20

_TIME_TAGS = ("acquisition_time", "start_time", "ACQUISITIONDATETIME", "ACQUISITION_DATE", "TIFFTAG_DATETIME")


def open_rasterio(path: str | os.PathLike) -> rasterio.DatasetReader:
    """``rasterio.open`` with errors that name the file and say what is wrong."""
    p = Path(path)
    if not str(path).startswith("/vsi") and not p.exists():
        raise InputError("file not found", path)
    try:
        return rasterio.open(path)
    except rasterio.errors.RasterioIOError as exc:
        msg = str(exc).split("\n")[0]
        if str(path) in msg:
            msg = msg.replace(str(path), "").strip(" :'")
        raise InputError(f"not a readable raster ({msg or 'GDAL could not open it'})", path) from None


class RasterBackendArray(BackendArray):
    """Lazy (band, y, x) view of a raster file for xarray.

    xarray composes ``isel`` calls lazily and finally asks for one outer-indexed selection, which
    becomes a single rasterio read of exactly the requested window and bands.
    """

    def __init__(self, path: str, count: int, height: int, width: int, dtype: np.dtype) -> None:
        self.path = path
        self.shape = (count, height, width)
        self.dtype = np.dtype(dtype)
        self._local = threading.local()

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state.pop("_local")
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def _dataset(self) -> rasterio.DatasetReader:
        """This thread's open handle: kept open so GDAL's block cache serves neighbouring windows."""
        src = getattr(self._local, "src", None)
        if src is None or src.closed:
            src = self._local.src = rasterio.open(self.path)
        return src

    def __getitem__(self, key: indexing.ExplicitIndexer) -> np.ndarray:
        return indexing.explicit_indexing_adapter(key, self.shape, indexing.IndexingSupport.OUTER, self._read)

    def _read(self, key: tuple) -> np.ndarray:
        axes = []  # per axis: (start, stop, post-selection applied after reading [start, stop))
        squeeze = []
        for k, n in zip(key, self.shape):
            if isinstance(k, (int, np.integer)):
                k = slice(int(k), int(k) + 1)
                squeeze.append(True)
            else:
                squeeze.append(False)
            if isinstance(k, slice):
                start, stop, step = k.indices(n)
                idx = np.arange(start, stop, step)
            else:
                idx = np.asarray(k, dtype=np.int64)
            lo = int(idx.min()) if idx.size else 0
            hi = int(idx.max()) + 1 if idx.size else 0
            axes.append((lo, hi, idx - lo))
        (b0, b1, bsel), (y0, y1, ysel), (x0, x1, xsel) = axes
        if bsel.size == 0 or ysel.size == 0 or xsel.size == 0:
            out = np.empty((bsel.size, ysel.size, xsel.size), self.dtype)
        else:
            bands = [int(b) + b0 + 1 for b in bsel]
            try:
                out = self._dataset().read(bands, window=Window(x0, y0, x1 - x0, y1 - y0))
            except rasterio.errors.RasterioIOError as exc:
                raise InputError(f"read failed, the file may be truncated or corrupt ({exc})", self.path) from None
            if ysel.size != y1 - y0 or not np.array_equal(ysel, np.arange(ysel.size)):
                out = out[:, ysel]
            if xsel.size != x1 - x0 or not np.array_equal(xsel, np.arange(xsel.size)):
                out = out[:, :, xsel]
        index = tuple(0 if sq else slice(None) for sq in squeeze)
        return out[index]


def read_raster(
    path: str | os.PathLike,
    *,
    lazy: bool | None = None,
    chunks: int | None = None,
    sensor: str | None = None,
    **_: Any,
) -> xr.DataArray:
    """Read a GeoTIFF/COG (or any GDAL single-file raster) as a cube.

    Parameters
    ----------
    path
        Raster file (also ``/vsizip/...`` paths).
    lazy
        Keep the pixels on disk: selections (``cube.isel(...)``) stay lazy and ``.values`` reads
        exactly the selected window and bands (default: lazy when the decoded size exceeds 256 MiB).
    chunks
        Also wrap the lazy cube in dask with this spatial chunk size (pixels; the band axis is one
        chunk), for dask-based processing.
    sensor
        Override the sensor name (default: the ``sensor`` tag, else empty).

    Returns
    -------
    xarray.DataArray
        (band, y, x) cube with wavelengths/fwhm/bbl from the band metadata (nm), scale/offset,
        nodata, CRS and transform as stored; values are not rescaled.
    """
    with open_rasterio(path) as src:
        meta = read_band_meta(src)
        tags = src.tags()
        count, height, width = src.count, src.height, src.width
        dtype = np.dtype(src.dtypes[0])
        if len(set(src.dtypes)) > 1:
            raise InputError(f"bands have different data types {sorted(set(src.dtypes))}; hsikit needs one", path)
        crs, transform, nodata = src.crs, src.transform, src.nodata
        scales, offsets = np.array(src.scales, float), np.array(src.offsets, float)
        if lazy is None:
            lazy = count * height * width * dtype.itemsize > LAZY_THRESHOLD
        if lazy or chunks:
            data: Any = indexing.LazilyIndexedArray(RasterBackendArray(str(path), count, height, width, dtype))
        else:
            try:
                data = src.read()
            except rasterio.errors.RasterioIOError as exc:
                raise InputError(f"read failed, the file may be truncated or corrupt ({exc})", path) from None
    acq = next((tags[k] for k in _TIME_TAGS if tags.get(k)), "")
    has_geo = crs is not None or not transform.is_identity
    cube = make_cube(
        data,
        wavelength=meta.wavelength,
        fwhm=meta.fwhm,
        bbl=meta.bbl,
        band_names=[n or None for n in meta.names] if all(meta.names) else None,
        scale=scales,
        offset=offsets,
        crs=crs,
        transform=transform if has_geo else None,
        nodata=nodata,
        sensor=sensor if sensor is not None else tags.get("sensor", ""),
        acquisition_time=acq,
        source=str(path),
    )
    if tags.get("class_names"):  # class maps (hsikit classify): JSON {label: name}
        cube.attrs["class_names"] = tags["class_names"]
    return cube.chunk({Y: chunks, X: chunks}) if chunks else cube
