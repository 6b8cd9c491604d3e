"""Describe a cube: what ``hsikit info`` prints (as a dict for JSON, or as text)."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import xarray as xr

from hsikit.cube import BAND, TIME, X, Y, geotransform


def _crs_name(crs: Any) -> str | None:
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt()


def describe_cube(cube: xr.DataArray) -> dict[str, Any]:
    """JSON-friendly summary of a cube (metadata only; no pixel is read).

    Keys: sensor, shape, dims, bands, height, width, dtype, crs, transform, resolution [map units],
    bounds (left, bottom, right, top), wavelength_range_nm, wavelengths_known, fwhm_range_nm,
    valid_bands, invalid_bands (1-based numbers), nodata (a number, "nan" or None), scale, offset, acquisition_time, times.
    """
    wl = cube["wavelength"].values
    fw = cube["fwhm"].values
    bbl = cube["bbl"].values
    t = geotransform(cube)
    h, w = cube.sizes[Y], cube.sizes[X]
    bounds = None
    if t is not None:
        xs = [t.c, t.c + t.a * w + t.b * h, t.c + t.b * h, t.c + t.a * w]
        ys = [t.f, t.f + t.d * w + t.e * h, t.f + t.e * h, t.f + t.d * w]
        bounds = [min(xs), min(ys), max(xs), max(ys)]
    scale = np.unique(cube["scale"].values)
    offset = np.unique(cube["offset"].values)
    nodata = cube.rio.nodata
    out: dict[str, Any] = {
        "path": cube.attrs.get("source", ""),
        "sensor": cube.attrs.get("sensor", "") or None,
        "dims": list(cube.dims),
        "shape": list(cube.shape),
        "bands": int(cube.sizes[BAND]),
        "height": int(h),
        "width": int(w),
        "dtype": str(cube.dtype),
        "crs": _crs_name(cube.rio.crs),
        "transform": list(t)[:6] if t is not None else None,
        "resolution": [abs(t.a), abs(t.e)] if t is not None and t.b == 0 and t.d == 0 else None,
        "bounds": bounds,
        "wavelengths_known": bool(np.isfinite(wl).all()),
        "wavelength_range_nm": [float(np.nanmin(wl)), float(np.nanmax(wl))] if np.isfinite(wl).any() else None,
        "fwhm_range_nm": [float(np.nanmin(fw)), float(np.nanmax(fw))] if np.isfinite(fw).any() else None,
        "valid_bands": int(bbl.sum()),
        "invalid_bands": [int(b) for b in cube[BAND].values[~bbl]],
        "nodata": None if nodata is None else ("nan" if np.isnan(nodata) else float(nodata)),
        "scale": float(scale[0]) if scale.size == 1 else cube["scale"].values.tolist(),
        "offset": float(offset[0]) if offset.size == 1 else cube["offset"].values.tolist(),
        "acquisition_time": cube.attrs.get("acquisition_time") or None,
        "lazy": cube.chunks is not None,
    }
    if out["sensor"] is None and out["wavelengths_known"]:
        from hsikit.data.sensors import identify_sensor

        out["sensor_from_wavelengths"] = identify_sensor(wl)
    if TIME in cube.dims:
        out["times"] = [str(v)[:19] for v in cube[TIME].values]
    return out


def describe_path(path: str | os.PathLike, *, format: str | None = None) -> dict[str, Any]:
    """Open ``path`` (lazily for large files) and describe it."""
    from hsikit.io import detect_format, open_cube

    kind = format or detect_format(path)
    d = describe_cube(open_cube(path, format=kind))
    d["path"] = os.fspath(path)
    d["format"] = kind
    return d


def format_description(d: dict[str, Any]) -> str:
    """Human-readable text of :func:`describe_cube`'s dict."""
    lines = [f"{d['path']}  [{d.get('format', '?')}]"]
    guess = d.get("sensor_from_wavelengths")
    lines.append(f"  sensor        {d['sensor'] or (f'unknown ({guess} band centres)' if guess else 'unknown')}")
    lines.append(f"  shape         {' x '.join(f'{n} {k}' for k, n in zip(d['dims'], d['shape']))}  ({d['dtype']})")
    if d["crs"]:
        res = d["resolution"]
        lines.append(f"  crs           {d['crs']}" + (f", {res[0]:g} x {res[1]:g} m pixels" if res else ""))
        b = d["bounds"]
        lines.append(f"  bounds        left {b[0]:.2f}  bottom {b[1]:.2f}  right {b[2]:.2f}  top {b[3]:.2f}")
    else:
        lines.append("  crs           none (not georeferenced)")
    if d["wavelength_range_nm"]:
        lo, hi = d["wavelength_range_nm"]
        fw = d["fwhm_range_nm"]
        lines.append(f"  wavelengths   {lo:.2f} - {hi:.2f} nm" + (f", fwhm {fw[0]:.2f} - {fw[1]:.2f} nm" if fw else ", fwhm unknown"))
    else:
        lines.append("  wavelengths   unknown")
    inv = d["invalid_bands"]
    lines.append(f"  bands         {d['valid_bands']} valid, {len(inv)} invalid" + (f" ({_ranges(inv)})" if inv else ""))
    lines.append(f"  nodata        {d['nodata'] if d['nodata'] is not None else 'none'}")
    lines.append(f"  scale/offset  {d['scale']} / {d['offset']}")
    if d.get("acquisition_time"):
        lines.append(f"  acquired      {d['acquisition_time']}")
    if d.get("times"):
        lines.append(f"  times         {len(d['times'])}: {d['times'][0]} ... {d['times'][-1]}")
    return "\n".join(lines)


def _ranges(numbers: list[int]) -> str:
    """'130-135, 140' from [130, ..., 135, 140]."""
    out: list[str] = []
    start = prev = numbers[0]
    for n in numbers[1:] + [None]:  # type: ignore[list-item]
        if n is not None and n == prev + 1:
            prev = n
            continue
        out.append(f"{start}-{prev}" if prev != start else f"{start}")
        if n is not None:
            start = prev = n
    return ", ".join(out)


# ``hsikit.describe(cube)`` is the API function, and importing this module binds the module to the same
# attribute of ``hsikit``: make the module callable so that both spellings keep working
from hsikit._callable import callable_package  # noqa: E402

callable_package(__name__, "hsikit.describe", "describe_cube")
