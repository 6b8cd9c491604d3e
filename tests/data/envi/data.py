#!/usr/bin/env python3
"""Write the tiny ENVI test images in this folder (fixed seed; run ``python tests/data/envi/data.py``).

One 5-band, 7-line x 6-sample int16 cube (reflectance x 10000, nodata -9999) written three times:

* ``tiny_bsq.bsq`` + ``tiny_bsq.hdr``      band sequential, little endian
* ``tiny_bil.bil`` + ``tiny_bil.bil.hdr``  band interleaved by line, little endian, header named
  ``<data file>.hdr`` (the other common convention)
* ``tiny_bip.bip`` + ``tiny_bip.hdr``      band interleaved by pixel, **big endian** (byte order = 1)

The headers use wavelength units = Micrometers, multi-line ``{...}`` lists, a multi-line
description, a comment line, fwhm, bbl (band 5 bad), data ignore value, reflectance scale factor,
band names, map info and a coordinate system string (UTM 33N, 30 m). The raw files are written
with numpy, not GDAL, so the fixtures do not depend on the reader under test.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from rasterio.crs import CRS

HERE = Path(__file__).resolve().parent
SEED = 20240607
BANDS, LINES, SAMPLES = 5, 7, 6
NODATA = -9999
WAVELENGTH_UM = (0.4825, 0.5625, 0.6550, 0.8650, 1.6100)
FWHM_UM = (0.0650, 0.0750, 0.0500, 0.0400, 0.0900)
BBL = (1, 1, 1, 1, 0)
BAND_NAMES = ("Blue", "Green", "Red", "NIR", "SWIR 1")
ORIGIN = (364095.0, 5809965.0)  # upper-left corner of pixel (1, 1), EPSG:32633
PIXEL = 30.0


def make_cube() -> np.ndarray:
    """The test cube, shape (bands, lines, samples) = (5, 7, 6), int16 reflectance x 10000."""
    rng = np.random.default_rng(SEED)
    base = np.array([450, 800, 600, 3500, 2200], dtype=np.int32)[:, None, None]
    cube = base + rng.integers(-300, 300, size=(BANDS, LINES, SAMPLES))
    cube = cube.astype(np.int16)
    cube[:, 0, 0] = NODATA  # one nodata pixel in every band
    cube[2, 6, 5] = NODATA  # and one in a single band
    return cube


def _envi_list(values: list[str], per_line: int = 3) -> str:
    lines = [", ".join(values[i:i + per_line]) for i in range(0, len(values), per_line)]
    return "{\n " + ",\n ".join(lines) + "}"


def header_text(interleave: str, byte_order: int) -> str:
    """ENVI header for the test cube in ``interleave`` order with ``byte_order`` (0 little, 1 big)."""
    wkt = CRS.from_epsg(32633).to_wkt(version="WKT1_ESRI")
    return "\n".join([
        "ENVI",
        "description = {",
        "  hsikit test fixture: 5-band int16 reflectance x 10000,",
        f"  {interleave.upper()} interleave, written by tests/data/envi/data.py}}",
        f"samples = {SAMPLES}",
        f"lines   = {LINES}",
        f"bands   = {BANDS}",
        "header offset = 0",
        "file type = ENVI Standard",
        "data type = 2",
        f"interleave = {interleave}",
        "sensor type = Unknown",
        f"byte order = {byte_order}",
        "; map info: reference pixel (1, 1) is the upper-left corner of the upper-left pixel",
        f"map info = {{UTM, 1.000, 1.000, {ORIGIN[0]:.3f}, {ORIGIN[1]:.3f}, {PIXEL:.1f}, {PIXEL:.1f}, "
        "33, North, WGS-84, units=Meters}",
        f"coordinate system string = {{{wkt}}}",
        "wavelength units = Micrometers",
        f"wavelength = {_envi_list([f'{w:.4f}' for w in WAVELENGTH_UM])}",
        f"fwhm = {_envi_list([f'{w:.4f}' for w in FWHM_UM], per_line=5)}",
        f"bbl = {{{', '.join(str(b) for b in BBL)}}}",
        f"data ignore value = {NODATA}",
        "reflectance scale factor = 10000.000000",
        f"band names = {{\n {', '.join(BAND_NAMES)}}}",
        "",
    ])


def write(stem: str, interleave: str, byte_order: int, header_name: str) -> None:
    """Write ``<stem>.<interleave>`` and its header ``header_name`` into this folder."""
    cube = make_cube()
    layout = {"bsq": (0, 1, 2), "bil": (1, 0, 2), "bip": (1, 2, 0)}[interleave]
    dtype = np.dtype(">i2" if byte_order else "<i2")
    np.ascontiguousarray(cube.transpose(layout)).astype(dtype).tofile(HERE / f"{stem}.{interleave}")
    (HERE / header_name).write_text(header_text(interleave, byte_order), encoding="ascii")


def main() -> None:
    write("tiny_bsq", "bsq", 0, "tiny_bsq.hdr")
    write("tiny_bil", "bil", 0, "tiny_bil.bil.hdr")
    write("tiny_bip", "bip", 1, "tiny_bip.hdr")


if __name__ == "__main__":
    main()
