"""Grid checks for a pansharpening pair: the PAN grid must refine the cube's grid by an integer ratio.

Two georeferenced rasters fit when they share the CRS, neither is rotated, the PAN pixel is the
cube's pixel divided by ``r`` in both axes (``r`` an integer >= 2), the upper-left corners coincide
(to 1 % of a PAN pixel) and the PAN covers exactly ``r`` times the cube's rows and columns. Rasters
without a transform (plain arrays, ``.mat`` files) are matched by their shapes alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import xarray as xr

from hsikit.cube import X, Y, geotransform
from hsikit.errors import MetadataError, UsageError

#: Tolerance on pixel-size ratios and corner offsets, as a fraction of a PAN pixel.
GRID_TOLERANCE = 0.01


@dataclass(frozen=True)
class PairGrid:
    """The checked relation of the two grids: ``ratio`` and whether they are georeferenced."""

    ratio: int
    georeferenced: bool


def _name(cube: xr.DataArray, default: str) -> str:
    return str(cube.attrs.get("source") or default)


def check_grids(hs: xr.DataArray, pan: xr.DataArray, ratio: int | None = None) -> PairGrid:
    """Check that ``pan`` (1, H, W) refines the grid of ``hs`` (B, h, w); return the ratio.

    Raises
    ------
    MetadataError
        CRS mismatch, rotated grids, non-integer pixel-size ratio, misaligned corners or extents, one
        raster georeferenced and the other not.
    UsageError
        ``ratio`` given and different from the grids' ratio.
    """
    hs_name, pan_name = _name(hs, "cube"), _name(pan, "PAN")
    h, w = hs.sizes[Y], hs.sizes[X]
    ph, pw = pan.sizes[Y], pan.sizes[X]
    th, tp = geotransform(hs), geotransform(pan)
    has_h = th is not None and hs.rio.crs is not None
    has_p = tp is not None and pan.rio.crs is not None
    if has_h != has_p:
        which, other = (hs_name, pan_name) if has_h else (pan_name, hs_name)
        raise MetadataError(f"{which} is georeferenced but {other} is not: cannot tell whether the grids align")
    if not has_h:
        if h == 0 or w == 0 or ph % h or pw % w or ph // h != pw // w:
            raise MetadataError(f"PAN {pan_name} is {ph}x{pw} px, not an integer multiple of the cube {hs_name} ({h}x{w} px)")
        r = ph // h
        if ratio is not None and int(ratio) != r:
            raise UsageError(f"ratio {ratio} given, but the PAN ({ph}x{pw}) is {r} x the cube ({h}x{w})")
        if r < 2:
            raise MetadataError(f"PAN {pan_name} and cube {hs_name} have the same size: nothing to sharpen")
        return PairGrid(r, False)
    if hs.rio.crs != pan.rio.crs:
        raise MetadataError(f"CRS differ: cube {hs_name} is {hs.rio.crs}, PAN {pan_name} is {pan.rio.crs}; reproject one first")
    if th.b or th.d or tp.b or tp.d:
        raise MetadataError("rotated grids are not supported; resample to a north-up grid first")
    rx, ry = th.a / tp.a, th.e / tp.e
    r = round(rx)
    if r < 2 or abs(rx - r) > GRID_TOLERANCE or abs(ry - r) > GRID_TOLERANCE:
        raise MetadataError(
            f"pixel sizes do not fit: cube {hs_name} {abs(th.a):g} x {abs(th.e):g}, PAN {pan_name} {abs(tp.a):g} x "
            f"{abs(tp.e):g} (ratio {rx:g} x {ry:g}); the PAN pixel must be the cube pixel / an integer >= 2")
    if ratio is not None and int(ratio) != r:
        raise UsageError(f"ratio {ratio} given, but the pixel sizes ({abs(th.a):g} vs {abs(tp.a):g}) give ratio {r}")
    dx, dy = (th.c - tp.c) / tp.a, (th.f - tp.f) / tp.e
    if abs(dx) > GRID_TOLERANCE or abs(dy) > GRID_TOLERANCE:
        raise MetadataError(
            f"grids are not aligned: the cube's upper-left corner is {dx:+.2f}, {dy:+.2f} PAN pixels (x, y) from the PAN's; "
            "crop or resample so that both start at the same corner")
    if (ph, pw) != (h * r, w * r):
        raise MetadataError(f"extents differ: PAN {pan_name} is {ph}x{pw} px but {r} x the cube {hs_name} is {h * r}x{w * r}")
    return PairGrid(r, True)


__all__ = ["GRID_TOLERANCE", "PairGrid", "check_grids"]
