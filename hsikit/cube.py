"""The hsikit cube model.

A cube is an :class:`xarray.DataArray` with dims ``(band, y, x)`` (one scene) or
``(time, band, y, x)`` (a time series). Everything hsikit knows about it lives in coords and attrs:

coords on ``band``
    ``band`` (1-based band number in the source file), ``wavelength`` and ``fwhm`` [nm, float64,
    NaN when unknown], ``bbl`` (bool, True = good band), ``band_name`` (str),
    ``scale`` and ``offset`` (float64; physical value = stored value * scale + offset).
coords on ``y`` / ``x``
    map coordinates of pixel centres (only when the cube has an affine transform).
``time``
    datetime64 acquisition times (series only).
georeference
    CRS, affine transform and nodata through the rioxarray ``.rio`` accessor
    (``cube.rio.crs``, ``cube.rio.transform()``, ``cube.rio.nodata``).
attrs
    ``sensor`` (str), ``acquisition_time`` (ISO 8601 str), ``wavelength_units`` ("nm"),
    ``wavelengths_known`` (1/0: whether ``wavelength`` holds real values), ``source`` (path).

The data stay as stored (e.g. int16 reflectance x 10000) so that read -> write round-trips exactly;
:func:`to_reflectance` applies scale/offset and turns nodata into NaN when a method needs physical
values. Methods take plain arrays; the cube lives at the edges (io, api).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import rioxarray  # noqa: F401  (registers the .rio accessor)
import xarray as xr
from affine import Affine

from hsikit.errors import CubeValidationError, MetadataError, UsageError

BAND, Y, X, TIME = "band", "y", "x", "time"
SPATIAL_DIMS = (Y, X)

#: Largest step back (nm) accepted between two detectors' ranges in detector-ordered cubes.
MAX_DETECTOR_OVERLAP_NM = 150.0

#: 1-based EnMAP band numbers kept by torchgeo / HySpecNet / SpectralEarth (202 of 224).
TORCHGEO202 = tuple(list(range(1, 127)) + list(range(142, 161)) + list(range(168, 225)))


def _band_vector(values: Any, n: int, name: str, fill: Any, dtype: Any) -> np.ndarray:
    if values is None:
        return np.full(n, fill, dtype=dtype)
    arr = np.asarray(values, dtype=dtype).reshape(-1)
    if arr.size == 1 and n != 1:
        arr = np.full(n, arr[0], dtype=dtype)
    if arr.size != n:
        raise MetadataError(f"{name} has {arr.size} values but the cube has {n} bands")
    return arr


def pixel_centre_coords(transform: Affine, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Map coordinates (y, x) of pixel centres for a north-up ``transform``; shapes (height,), (width,)."""
    xs = transform.c + transform.a * (np.arange(width) + 0.5)
    ys = transform.f + transform.e * (np.arange(height) + 0.5)
    return ys, xs


def make_cube(
    data: Any,
    *,
    wavelength: Sequence[float] | np.ndarray | None = None,
    fwhm: Sequence[float] | np.ndarray | None = None,
    bbl: Sequence[bool] | np.ndarray | None = None,
    band_names: Sequence[str] | None = None,
    band_numbers: Sequence[int] | None = None,
    scale: float | Sequence[float] | None = None,
    offset: float | Sequence[float] | None = None,
    crs: Any = None,
    transform: Affine | None = None,
    nodata: float | int | None = None,
    time: Sequence[Any] | None = None,
    sensor: str = "",
    acquisition_time: str = "",
    source: str = "",
    name: str = "cube",
) -> xr.DataArray:
    """Build a cube from an array and its metadata.

    Parameters
    ----------
    data
        Array (numpy or dask) of shape (band, y, x), or (time, band, y, x) when ``time`` is given.
    wavelength, fwhm
        Band centres and full widths at half maximum in nanometres, one per band (None: unknown).
    bbl
        Bad-band list, True/1 for good bands (None: all good).
    band_names
        Human-readable band names (default ``"band_<n>"`` or ``"<wavelength> nm"``).
    band_numbers
        1-based band numbers in the source (default 1..n).
    scale, offset
        Physical value = stored value * scale + offset (scalar or per band; default 1 and 0).
    crs, transform, nodata
        Georeference: anything rasterio/pyproj accepts as a CRS, an :class:`affine.Affine`
        (north-up transforms also get x/y pixel-centre coords) and the nodata value.
    time
        Acquisition times of a series (anything :func:`numpy.datetime64` parses).
    sensor, acquisition_time, source
        Free-text attrs: sensor name, ISO 8601 time of a single scene, source path.

    Returns
    -------
    xarray.DataArray
        The cube with dims (band, y, x) or (time, band, y, x).
    """
    ndim = getattr(data, "ndim", None)
    if time is not None:
        if ndim != 4:
            raise MetadataError(f"a time series needs a 4-D array (time, band, y, x), got {ndim}-D")
        dims: tuple[str, ...] = (TIME, BAND, Y, X)
    else:
        if ndim != 3:
            raise MetadataError(f"a cube needs a 3-D array (band, y, x), got {ndim}-D")
        dims = (BAND, Y, X)
    nb = data.shape[dims.index(BAND)]
    height, width = data.shape[-2], data.shape[-1]
    wl = _band_vector(wavelength, nb, "wavelength", np.nan, np.float64)
    fw = _band_vector(fwhm, nb, "fwhm", np.nan, np.float64)
    good = _band_vector(bbl, nb, "bbl", True, bool)
    numbers = _band_vector(band_numbers, nb, "band_numbers", 0, np.int64)
    if band_numbers is None:
        numbers = np.arange(1, nb + 1, dtype=np.int64)
    sc = _band_vector(scale, nb, "scale", 1.0, np.float64)
    off = _band_vector(offset, nb, "offset", 0.0, np.float64)
    known = bool(np.isfinite(wl).all())
    if band_names is None:
        names = [f"{w:.2f} nm" if np.isfinite(w) else f"band_{n}" for w, n in zip(wl, numbers)]
    else:
        names = [str(s) for s in band_names]
        if len(names) != nb:
            raise MetadataError(f"band_names has {len(names)} entries but the cube has {nb} bands")
    coords: dict[str, Any] = {
        BAND: numbers,
        "wavelength": (BAND, wl),
        "fwhm": (BAND, fw),
        "bbl": (BAND, good),
        "band_name": (BAND, np.array(names, dtype=str)),
        "scale": (BAND, sc),
        "offset": (BAND, off),
    }
    if time is not None:
        t = np.array([np.datetime64(v, "ns") for v in time])
        if t.size != data.shape[0]:
            raise MetadataError(f"{t.size} times for {data.shape[0]} time steps")
        coords[TIME] = t
    if transform is not None and transform.b == 0 and transform.d == 0:
        ys, xs = pixel_centre_coords(transform, height, width)
        coords[Y], coords[X] = ys, xs
    cube = xr.DataArray(data, dims=dims, coords=coords, name=name)
    cube.attrs.update(
        sensor=sensor,
        acquisition_time=acquisition_time,
        wavelength_units="nm",
        wavelengths_known=int(known),
        source=source,
    )
    if crs is not None:
        cube = cube.rio.write_crs(crs)
    if transform is not None:
        cube = cube.rio.write_transform(transform)
    if nodata is not None:
        cube = cube.rio.write_nodata(nodata, encoded=False)
    return cube


def wavelengths_known(cube: xr.DataArray) -> bool:
    """Whether the cube carries real band-centre wavelengths."""
    return bool(np.isfinite(cube["wavelength"].values).all())


def geotransform(cube: xr.DataArray) -> Affine | None:
    """The cube's affine transform, or None when it has no georeference."""
    ref = cube.coords.get("spatial_ref")
    if ref is None or "GeoTransform" not in ref.attrs:
        if X in cube.coords and Y in cube.coords:
            return cube.rio.transform()
        return None
    return cube.rio.transform()


def validate(cube: xr.DataArray, *, check_data: bool = False, require_wavelengths: bool = False) -> None:
    """Check a cube and raise :class:`CubeValidationError` naming every problem found.

    Metadata checks (always): dims, wavelength monotonicity (a single step back of at most
    :data:`MAX_DETECTOR_OVERLAP_NM` is accepted: two spectrometers in detector order, as EnMAP's
    VNIR and SWIR), fwhm positivity. Data checks
    (``check_data=True``, reads the whole array): NaN values and bands that are entirely nodata
    while flagged good in ``bbl``.
    """
    problems: list[str] = []
    if cube.dims not in ((BAND, Y, X), (TIME, BAND, Y, X)):
        problems.append(f"dims are {cube.dims}, expected (band, y, x) or (time, band, y, x)")
    wl = cube["wavelength"].values
    if require_wavelengths and not np.isfinite(wl).all():
        problems.append("wavelengths are missing")
    finite = wl[np.isfinite(wl)]
    steps = np.diff(finite)
    if finite.size > 1 and (steps <= 0).any() and not (steps < 0).all():
        # one step back by less than MAX_DETECTOR_OVERLAP_NM is a two-detector cube in detector order
        # (EnMAP VNIR 418-993 nm then SWIR 902-2446 nm); anything else is an error
        back = np.flatnonzero(steps <= 0)
        detector_split = back.size == 1 and steps[back[0]] < 0 and -steps[back[0]] <= MAX_DETECTOR_OVERLAP_NM
        if not detector_split:
            i = int(back[0])
            problems.append(
                f"wavelengths are not monotonic (band {i + 2}: {finite[i + 1]:.2f} nm after {finite[i]:.2f} nm)"
            )
    fw = cube["fwhm"].values
    if np.any(fw[np.isfinite(fw)] <= 0):
        problems.append("fwhm has non-positive values")
    if check_data:
        values = np.asarray(cube.values)
        band_axis = cube.dims.index(BAND)
        other = tuple(a for a in range(values.ndim) if a != band_axis)
        if np.issubdtype(values.dtype, np.floating):
            nan_count = int(np.isnan(values).sum())
            if nan_count and not (cube.rio.nodata is not None and np.isnan(cube.rio.nodata)):
                problems.append(f"{nan_count} NaN values")
        nd = cube.rio.nodata
        if nd is not None:
            empty = (values == nd).all(axis=other) if not np.isnan(nd) else np.isnan(values).all(axis=other)
            flagged = np.flatnonzero(empty & cube["bbl"].values)
            if flagged.size:
                problems.append(
                    f"bands {', '.join(str(int(b)) for b in cube[BAND].values[flagged][:10])} are entirely "
                    "nodata but flagged good in bbl"
                )
    if problems:
        raise CubeValidationError("; ".join(problems), cube.attrs.get("source") or None)


def parse_band_list(spec: str, n_bands: int) -> list[int]:
    """Parse ``"1-126,142,150-160"`` into 1-based band numbers, checked against ``n_bands``."""
    out: list[int] = []
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise UsageError(f"band list item {part!r} is not a number or a range like 10-20")
        lo = int(m.group(1))
        hi = int(m.group(2) or lo)
        if lo < 1 or hi > n_bands or lo > hi:
            raise UsageError(f"band range {part!r} is outside 1-{n_bands}")
        out.extend(range(lo, hi + 1))
    return out


def select_bands(cube: xr.DataArray, bands: str | Sequence[int] = "all") -> xr.DataArray:
    """Subset bands by preset or list.

    Parameters
    ----------
    bands
        ``"all"``; ``"valid"`` (bands with bbl True); ``"torchgeo202"`` (the 202 EnMAP bands of
        torchgeo/SpectralEarth, needs a 224-band cube); a band-list string ``"1-10,20"``; or a
        sequence of 1-based band numbers (as in the ``band`` coord).
    """
    if isinstance(bands, str):
        key = bands.strip().lower()
        if key == "all":
            return cube
        if key == "valid":
            return cube.isel({BAND: np.flatnonzero(cube["bbl"].values)})
        if key == "torchgeo202":
            if cube.sizes[BAND] != 224:
                raise UsageError(f"band preset 'torchgeo202' needs a 224-band EnMAP cube, this one has {cube.sizes[BAND]}")
            return cube.isel({BAND: [b - 1 for b in TORCHGEO202]})
        if re.fullmatch(r"[\d\s,\-]+", key):
            numbers = parse_band_list(key, int(cube[BAND].values.max()))
        else:
            raise UsageError(f"unknown band preset {bands!r} (use all, valid, torchgeo202 or a list like 1-10,20)")
    else:
        numbers = [int(b) for b in bands]
    index = {int(b): i for i, b in enumerate(cube[BAND].values)}
    missing = [b for b in numbers if b not in index]
    if missing:
        raise UsageError(f"bands {missing[:10]} are not in the cube (it has bands {min(index)}-{max(index)})")
    return cube.isel({BAND: [index[b] for b in numbers]})


def valid_pixel_mask(values: np.ndarray, nodata: float | None, band_axis: int = 0) -> np.ndarray:
    """True where a pixel has data: not nodata (or NaN) in any band. Shape: ``values`` without the band axis."""
    if nodata is None:
        bad = np.isnan(values) if np.issubdtype(values.dtype, np.floating) else np.zeros(values.shape, bool)
    elif np.isnan(nodata):
        bad = np.isnan(values)
    else:
        bad = values == nodata
        if np.issubdtype(values.dtype, np.floating):
            bad |= np.isnan(values)
    return ~bad.all(axis=band_axis)


def to_reflectance(cube: xr.DataArray, dtype: Any = np.float32) -> xr.DataArray:
    """Apply per-band scale/offset and turn nodata into NaN (lazy if the cube is lazy).

    Returns a float cube with ``scale`` = 1, ``offset`` = 0 and nodata NaN.
    """
    nd = cube.rio.nodata
    sc = cube["scale"].astype(dtype)
    off = cube["offset"].astype(dtype)
    out = cube.astype(dtype) * sc + off
    if nd is not None and not np.isnan(nd):
        out = out.where(cube != nd)
    out = out.astype(dtype)
    out.attrs = dict(cube.attrs)
    out = out.assign_coords(scale=(BAND, np.ones(cube.sizes[BAND])), offset=(BAND, np.zeros(cube.sizes[BAND])))
    out.name = cube.name
    if "spatial_ref" in cube.coords:
        out = out.assign_coords(spatial_ref=cube.coords["spatial_ref"])
    return out.rio.write_nodata(np.nan, encoded=False)


def grid_differences(a: xr.DataArray, b: xr.DataArray, names: tuple[str, str] = ("first", "second")) -> list[str]:
    """How the pixel grids of two cubes differ: shape, CRS and transform; [] when they match.

    Each entry is a short phrase such as ``"size 32x32 vs 64x64"`` or ``"CRS EPSG:32633 vs
    EPSG:32632"``, naming the values of ``a`` then ``b`` (``names`` label them in the messages).
    """
    out: list[str] = []
    sa, sb = (a.sizes[Y], a.sizes[X]), (b.sizes[Y], b.sizes[X])
    if sa != sb:
        out.append(f"size {sa[0]}x{sa[1]} ({names[0]}) vs {sb[0]}x{sb[1]} ({names[1]}) pixels")
    ca, cb = a.rio.crs, b.rio.crs
    if (ca is None) != (cb is None) or (ca is not None and ca != cb):
        out.append(f"CRS {ca.to_string() if ca else 'none'} ({names[0]}) vs {cb.to_string() if cb else 'none'} ({names[1]})")
    ta, tb = geotransform(a), geotransform(b)
    if (ta is None) != (tb is None) or (ta is not None and not ta.almost_equals(tb, precision=1e-9 * max(1.0, abs(ta.c), abs(ta.f)))):
        fmt = lambda t: "none" if t is None else f"origin ({t.c:.3f}, {t.f:.3f}) pixel ({t.a:g}, {t.e:g})"  # noqa: E731
        out.append(f"transform {fmt(ta)} ({names[0]}) vs {fmt(tb)} ({names[1]})")
    return out
