"""Folders of per-band PNG images (the CAVE multispectral database and similar).

A PNG stack is a folder of greyscale PNGs, one per band, whose names end in the band number
(``balloons_ms_01.png`` ... ``balloons_ms_31.png``). Bands are ordered by that number, not by name
(``_2`` comes before ``_10``); the number becomes the cube's ``band`` coordinate. Files that are not
PNGs (CAVE's ``<scene>_RGB.bmp``) are ignored. The PNGs may sit in the folder itself or in its
single sub-folder (CAVE archives unpack as ``<scene>_ms/<scene>_ms/*.png``).

Values stay as stored (uint16 for 16-bit PNGs, uint8 for 8-bit ones); the per-band ``scale``
coordinate maps them to [0, 1]: ``1/65535`` for 16-bit bands and ``1/255`` for 8-bit bands, so
:func:`hsikit.cube.to_reflectance` gives comparable values for both.

CAVE quirk: the ``watercolors_ms`` PNGs are 8-bit RGBA with R = G = B (and opaque alpha) instead of
16-bit grey. Such grey-in-colour PNGs are read through one channel; a colour PNG whose channels
differ is refused.

When the names follow CAVE's ``<scene>_ms_NN.png`` pattern and there are 31 of them numbered 1-31,
the wavelengths are set to 400, 410, ..., 700 nm with fwhm 10 nm and the sensor to ``"CAVE"``;
otherwise wavelengths are NaN unless given with ``wavelength=``.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from hsikit.cube import make_cube
from hsikit.errors import InputError, MetadataError
from hsikit.io.bandmeta import unit_factor

#: CAVE: 31 bands from 400 to 700 nm in 10 nm steps.
CAVE_N_BANDS = 31
CAVE_FIRST_NM = 400.0
CAVE_STEP_NM = 10.0

_NUMBERED = re.compile(r"^(?P<prefix>.*?)(?P<number>\d+)$")
_CAVE_PREFIX = re.compile(r"_ms_$", re.IGNORECASE)

#: Full-scale value of each stored dtype: scale = 1 / full scale.
_FULL_SCALE = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}


@dataclass(frozen=True)
class BandFile:
    """One band PNG: its path, the number at the end of its name and the name before that number."""

    path: Path
    number: int
    prefix: str


def _png_files(folder: Path) -> list[Path]:
    return sorted(q for q in folder.iterdir() if q.is_file() and q.suffix.lower() == ".png")


def find_band_folder(path: str | os.PathLike) -> Path:
    """The folder that holds the band PNGs: ``path`` itself or its only sub-folder with PNGs.

    Raises
    ------
    InputError
        When ``path`` is missing, not a folder, or no (or more than one) folder level holds PNGs.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("folder not found", p)
    if not p.is_dir():
        raise InputError("a PNG band stack must be a folder of per-band PNG files", p)
    if _png_files(p):
        return p
    nested = [q for q in sorted(p.iterdir()) if q.is_dir() and _png_files(q)]
    if len(nested) == 1:
        return nested[0]
    if not nested:
        raise InputError("no PNG files in the folder or its sub-folders", p)
    names = ", ".join(q.name for q in nested)
    raise InputError(f"several sub-folders hold PNG files ({names}); open one of them", p)


def band_files(folder: Path) -> list[BandFile]:
    """The folder's band PNGs ordered by the number at the end of their names.

    Raises
    ------
    InputError
        When a PNG name does not end in a number, names have different prefixes, or a band number
        appears twice.
    """
    bands: list[BandFile] = []
    for f in _png_files(folder):
        m = _NUMBERED.match(f.stem)
        if m is None:
            raise InputError(f"PNG {f.name!r} has no band number at the end of its name", folder)
        bands.append(BandFile(f, int(m.group("number")), m.group("prefix")))
    prefixes = sorted({b.prefix for b in bands})
    if len(prefixes) > 1:
        raise InputError(f"PNG names belong to several stacks (prefixes {', '.join(map(repr, prefixes))})", folder)
    bands.sort(key=lambda b: b.number)
    numbers = [b.number for b in bands]
    duplicates = sorted({n for n in numbers if numbers.count(n) > 1})
    if duplicates:
        raise InputError(f"band numbers {duplicates} appear in more than one PNG name", folder)
    return bands


def _grey_channel(arr: np.ndarray, path: Path) -> np.ndarray:
    """A 2-D greyscale array from a grey, grey+alpha or R=G=B colour PNG array."""
    if arr.ndim == 2:
        return arr
    if arr.ndim == 3 and arr.shape[2] in (2, 3, 4):  # grey+alpha, RGB, RGBA
        if arr.shape[2] >= 3 and not (np.array_equal(arr[..., 0], arr[..., 1])
                                      and np.array_equal(arr[..., 0], arr[..., 2])):
            raise InputError("band PNG is in colour (R, G and B differ); expected one grey band", path)
        return np.ascontiguousarray(arr[..., 0])
    raise InputError(f"band PNG has an unexpected pixel layout {arr.shape}", path)


def read_band_png(path: Path) -> np.ndarray:
    """Read one band PNG as a 2-D uint8 or uint16 array with the stored values.

    16-bit PNGs that Pillow opens as 32-bit integers (mode ``I``) are narrowed back to uint16;
    grey-in-colour PNGs (R = G = B, e.g. CAVE watercolors) give one channel.

    Raises
    ------
    InputError
        When the file is not a readable PNG, or is a colour / palette image.
    """
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            if im.format != "PNG":
                raise InputError(f"not a PNG file (Pillow sees {im.format})", path)
            if im.mode in ("P", "PA"):
                raise InputError("band PNG uses a colour palette; expected greyscale", path)
            if im.mode == "1":
                im = im.convert("L")
            arr = np.asarray(im)
    except (OSError, UnidentifiedImageError, SyntaxError) as exc:
        raise InputError(f"not a readable PNG: {exc}", path) from exc
    arr = _grey_channel(arr, path)
    if arr.dtype.kind in "iu" and arr.dtype.itemsize > 2:
        if arr.min() < 0 or arr.max() > 65535:
            raise InputError("band PNG values do not fit 16 bits", path)
        arr = arr.astype(np.uint16)
    elif arr.dtype == np.dtype(">u2"):
        arr = arr.astype(np.uint16)
    return arr


def _stack(bands: list[BandFile], folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(data (band, y, x), per-band scale) from the band PNGs."""
    arrays = [read_band_png(b.path) for b in bands]
    shapes = sorted({a.shape for a in arrays})
    if len(shapes) > 1:
        raise InputError(f"band PNGs differ in size: {', '.join('x'.join(map(str, s)) for s in shapes)}", folder)
    scale = np.array([1.0 / _FULL_SCALE.get(a.dtype, 1.0) for a in arrays])
    dtype = np.result_type(*[a.dtype for a in arrays])
    return np.stack(arrays).astype(dtype, copy=False), scale


def _is_cave(bands: list[BandFile]) -> bool:
    numbers = [b.number for b in bands]
    return (len(bands) == CAVE_N_BANDS and numbers == list(range(1, CAVE_N_BANDS + 1))
            and bool(_CAVE_PREFIX.search(bands[0].prefix)))


def read_png_stack(path: str | os.PathLike, *, wavelength: Any = None, **_: Any) -> xr.DataArray:
    """Read a folder of per-band PNGs (e.g. a CAVE ``<scene>_ms`` folder) as a cube.

    Parameters
    ----------
    path
        The folder (the PNGs may also be one level deeper, in its only sub-folder).
    wavelength
        Band centres in nm (values below 30 are taken as micrometres), one per PNG; overrides the
        CAVE default of 400-700 nm.
    **_
        Other options of :func:`hsikit.io.open_cube`, ignored.

    Returns
    -------
    xarray.DataArray
        Cube ``(band, y, x)`` with the stored values (uint16, or uint8 for 8-bit PNGs); ``band`` is
        the number in each file name, ``band_name`` the file stem, ``scale`` 1/65535 (16-bit) or
        1/255 (8-bit) per band. CAVE stacks get wavelengths 400-700 nm, fwhm 10 nm, sensor "CAVE".

    Raises
    ------
    InputError
        Missing folder, no PNGs, unnumbered or duplicate band names, unreadable or colour PNGs,
        bands of different sizes.
    MetadataError
        ``wavelength`` does not have one value per band.
    """
    folder = find_band_folder(path)
    bands = band_files(folder)
    data, scale = _stack(bands, folder)
    cave = _is_cave(bands)
    fwhm = None
    if wavelength is not None:
        wl = np.asarray(wavelength, dtype=np.float64).reshape(-1)
        if wl.size != len(bands):
            raise MetadataError(f"{wl.size} wavelengths given for {len(bands)} band PNGs", folder)
        wl = wl * unit_factor(None, wl)
    elif cave:
        wl = CAVE_FIRST_NM + CAVE_STEP_NM * np.arange(CAVE_N_BANDS)
        fwhm = np.full(CAVE_N_BANDS, CAVE_STEP_NM)
    else:
        wl = None
    return make_cube(
        data,
        wavelength=wl,
        fwhm=fwhm,
        band_numbers=[b.number for b in bands],
        band_names=[b.path.stem for b in bands],
        scale=scale,
        sensor="CAVE" if cave else "",
        source=str(path),
    )
