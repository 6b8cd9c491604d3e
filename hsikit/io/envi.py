"""ENVI images (.hdr + raw data) and spectral libraries (ENVI .sli and CSV).

An ENVI dataset is a plain-text header (``ENVI`` on the first line, then ``key = value`` pairs,
``{...}`` lists that may span lines) and a raw binary file in BSQ, BIL or BIP order. The header
carries everything spectral (wavelengths, fwhm, bad-band list, band names, data ignore value,
reflectance scale factor); hsikit reads it with its own parser so that the spectral metadata do
not depend on how GDAL exposes them. Pixels and georeference come from GDAL's ENVI driver through
:func:`hsikit.io.geotiff.read_raster` (lazy when ``chunks`` is given); when GDAL cannot open the
file, the pixels are memory-mapped with numpy from the header's layout.

Spectral libraries (``file type = ENVI Spectral Library``) are not images: they hold one spectrum
per header "line". :func:`read_spectral_library` returns them as a 2-D
:class:`xarray.DataArray` ``(spectrum, band)``; it also reads CSV libraries.
"""

from __future__ import annotations

import csv
import io
import os
import re
from pathlib import Path
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from affine import Affine

from hsikit.cube import geotransform, make_cube
from hsikit.errors import InputError, MetadataError
from hsikit.io.bandmeta import unit_factor

#: Suffixes (lower case) an ENVI data file may have next to its header; "" = no suffix.
DATA_SUFFIXES = ("", ".bsq", ".bil", ".bip", ".img", ".dat", ".raw", ".sli")

#: ENVI ``data type`` codes -> numpy dtypes (native order; ``byte order`` is applied on read).
ENVI_DTYPES: dict[int, np.dtype] = {
    1: np.dtype("u1"), 2: np.dtype("i2"), 3: np.dtype("i4"), 4: np.dtype("f4"), 5: np.dtype("f8"),
    6: np.dtype("c8"), 9: np.dtype("c16"), 12: np.dtype("u2"), 13: np.dtype("u4"),
    14: np.dtype("i8"), 15: np.dtype("u8"),
}

_INT_KEYS = ("samples", "lines", "bands", "header offset", "data type", "byte order", "x start", "y start",
             "file compression")
_FLOAT_KEYS = ("data ignore value", "reflectance scale factor")
_FLOAT_LIST_KEYS = ("data gain values", "data offset values")
_STR_LIST_KEYS = ("band names", "spectra names", "map info", "default bands")
_SPECTRAL_LIBRARY = "envi spectral library"


# --------------------------------------------------------------------------------------------
# header parsing
# --------------------------------------------------------------------------------------------

def _braced_end(text: str, start: int) -> int:
    """Index of the ``}`` closing the ``{`` at ``start`` (last index when unbalanced)."""
    depth = 0
    for j in range(start, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j
    return len(text) - 1


def _raw_entries(text: str) -> dict[str, str]:
    """Split header text (without the ``ENVI`` line) into ``{lower-case key: raw value}``.

    Values in braces are kept whole (braces included) even when they span several lines or
    contain ``=``; comment lines (``;``) and lines without ``=`` outside braces are skipped.
    """
    entries: dict[str, str] = {}
    pos = 0
    while pos < len(text):
        eol = text.find("\n", pos)
        eol = len(text) if eol < 0 else eol
        line = text[pos:eol]
        if "=" not in line or line.lstrip().startswith(";"):
            pos = eol + 1
            continue
        key, _, rest = line.partition("=")
        key = " ".join(key.split()).lower()
        value_at = pos + line.index("=") + 1 + (len(rest) - len(rest.lstrip()))
        if rest.lstrip().startswith("{"):
            close = _braced_end(text, value_at)
            entries[key] = text[value_at:close + 1]
            eol = text.find("\n", close)
            eol = len(text) if eol < 0 else eol
        else:
            entries[key] = rest.strip()
        pos = eol + 1
    return entries


def _unbrace(value: str) -> str:
    value = value.strip()
    if value.startswith("{") and value.endswith("}"):
        value = value[1:-1]
    return value.strip()


def _split_list(value: str) -> list[str]:
    """Items of an ENVI ``{a, b, c}`` value (whitespace around items removed)."""
    body = _unbrace(value)
    return [item.strip() for item in body.split(",")] if body else []


def _to_float(item: str, key: str, path: Path) -> float:
    try:
        return float(item)
    except ValueError:
        raise MetadataError(f"header entry '{key}' has a non-numeric value {item!r}", path) from None


def _float_list(value: str, key: str, path: Path) -> np.ndarray:
    return np.array([_to_float(v, key, path) for v in _split_list(value) if v != ""], dtype=np.float64)


def _nm_factor(units: str | None, reference: np.ndarray | None) -> float | None:
    """Factor from ``units`` to nm (guessed from ``reference`` values when unknown); None if not linear."""
    key = (units or "").strip().lower()
    if key in ("index", "wavenumber", "wavenumbers", "cm-1"):
        return None
    return unit_factor(None if key in ("", "unknown") else key, reference)


def _scaled(values: np.ndarray, factor: float) -> np.ndarray:
    return values if factor == 1.0 else np.round(values * factor, 6)


def wavelength_to_nm(values: np.ndarray, units: str | None) -> np.ndarray:
    """Convert ENVI ``wavelength`` values in ``units`` to nanometres.

    Parameters
    ----------
    values
        Values as written in the header, shape (n,).
    units
        The header's ``wavelength units`` (Micrometers, Nanometers, Millimeters, Wavenumber,
        Index, Unknown, ...; case-insensitive). Unknown or missing units are guessed from the
        magnitude (values below 30 are micrometres).

    Returns
    -------
    numpy.ndarray
        Values in nm, shape (n,); all NaN for ``Index`` (band numbers, not wavelengths).
    """
    key = (units or "").strip().lower()
    if key == "index":
        return np.full(values.shape, np.nan)
    factor = _nm_factor(units, values)
    if factor is None:  # wavenumbers in cm^-1
        with np.errstate(divide="ignore"):
            return 1e7 / values
    return _scaled(values, factor)


def parse_envi_header(path: str | os.PathLike) -> dict[str, Any]:
    """Parse an ENVI ``.hdr`` file into typed values.

    Parameters
    ----------
    path
        Header file; the first non-blank line must be ``ENVI``.

    Returns
    -------
    dict
        Lower-case keys with single spaces (``"data ignore value"``). Typed entries: ``samples``,
        ``lines``, ``bands``, ``header offset``, ``data type``, ``byte order`` (int);
        ``data ignore value``, ``reflectance scale factor`` (float); ``wavelength`` and ``fwhm``
        (float64 arrays **in nm**, converted from ``wavelength units``); ``bbl`` (bool array,
        True = good band); ``band names``, ``spectra names``, ``map info`` (lists of str);
        ``data gain values``/``data offset values`` (float arrays); ``interleave`` (lower case);
        ``description`` and ``coordinate system string`` (str, braces removed). After conversion
        ``wavelength units`` is ``"Nanometers"`` and the header's own spelling is kept under
        ``"source wavelength units"``. Other keys keep their raw text.

    Raises
    ------
    InputError
        The file is missing or is not an ENVI header.
    MetadataError
        A numeric entry does not parse.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        raise InputError("file not found", p) from None
    except OSError as exc:
        raise InputError(f"cannot read the ENVI header ({exc.strerror})", p) from None
    text = text.replace("\r\n", "\n").replace("\r", "\n").lstrip("\ufeff")
    first, _, body = text.lstrip().partition("\n")
    if first.strip().upper() != "ENVI":
        raise InputError("not an ENVI header (the first line must be 'ENVI')", p)
    out: dict[str, Any] = {}
    for key, raw in _raw_entries(body).items():
        out[key] = _typed_value(key, raw, p)
    _convert_wavelengths(out)
    return out


def _typed_value(key: str, raw: str, path: Path) -> Any:
    if key in _INT_KEYS:
        return int(_to_float(_unbrace(raw), key, path))
    if key in _FLOAT_KEYS:
        return _to_float(_unbrace(raw), key, path)
    if key in _FLOAT_LIST_KEYS or key in ("wavelength", "fwhm"):
        return _float_list(raw, key, path)
    if key == "bbl":
        return _float_list(raw, key, path) != 0
    if key in _STR_LIST_KEYS:
        return _split_list(raw)
    if key == "interleave":
        return _unbrace(raw).lower()
    if key == "description":
        return " ".join(_unbrace(raw).split())
    return _unbrace(raw)


def _convert_wavelengths(hdr: dict[str, Any]) -> None:
    """Turn ``wavelength``/``fwhm`` into nm in place; fwhm uses the factor found for the wavelengths."""
    if "wavelength" not in hdr and "fwhm" not in hdr:
        return
    units = hdr.get("wavelength units")
    wl, fw = hdr.get("wavelength"), hdr.get("fwhm")
    if wl is not None:
        hdr["wavelength"] = wavelength_to_nm(wl, units)
    if fw is not None:
        factor = _nm_factor(units, wl if wl is not None and wl.size else fw)
        hdr["fwhm"] = np.full(fw.shape, np.nan) if factor is None else _scaled(fw, factor)
    hdr["source wavelength units"] = units if units is not None else ""
    hdr["wavelength units"] = "Nanometers"


# --------------------------------------------------------------------------------------------
# file pairing
# --------------------------------------------------------------------------------------------

def _siblings(p: Path) -> dict[str, Path]:
    parent = p.parent if str(p.parent) else Path(".")
    try:
        return {q.name.lower(): q for q in parent.iterdir() if q.is_file()}
    except OSError:
        return {}


def envi_paths(path: str | os.PathLike) -> tuple[Path, Path | None]:
    """The (header, data file) pair of an ENVI dataset given either file.

    Parameters
    ----------
    path
        The ``.hdr`` file, or the data file (``.bsq``, ``.bil``, ``.bip``, ``.img``, ``.dat``,
        ``.sli``, no suffix ...). Suffix case is ignored.

    Returns
    -------
    tuple
        Header path and data path (None when no data file sits beside the header).

    Raises
    ------
    InputError
        ``path`` does not exist, or a data file has no header beside it.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", p)
    files = _siblings(p)
    name = p.name.lower()
    if name.endswith(".hdr"):
        stem = name[:-4]
        if Path(stem).suffix in DATA_SUFFIXES[1:] and stem in files:
            return p, files[stem]
        base = Path(stem).stem if Path(stem).suffix in DATA_SUFFIXES[1:] else stem
        for suffix in DATA_SUFFIXES:
            q = files.get(base + suffix)
            if q is not None and q.name.lower() != name:
                return p, q
        return p, None
    for candidate in (Path(name).stem + ".hdr", name + ".hdr"):  # GDAL's order
        if candidate in files:
            return files[candidate], p
    raise InputError(f"no ENVI header found beside the data file (looked for {p.name}.hdr and {p.stem}.hdr)", p)


def _require_data(header: Path, data: Path | None) -> Path:
    if data is None:
        stem = header.name[:-4]
        looked = ", ".join((stem + s) or stem for s in DATA_SUFFIXES if s)
        raise InputError(f"ENVI header without a data file (looked for {stem}, {looked})", header)
    return data


def is_spectral_library(hdr: dict[str, Any], data: Path | None = None) -> bool:
    """Whether a parsed header describes an ENVI spectral library rather than an image."""
    kind = str(hdr.get("file type", "")).strip().lower()
    return kind == _SPECTRAL_LIBRARY or (data is not None and data.suffix.lower() == ".sli")


# --------------------------------------------------------------------------------------------
# pixel access
# --------------------------------------------------------------------------------------------

def _header_int(hdr: dict[str, Any], key: str, header: Path, default: int | None = None) -> int:
    value = hdr.get(key, default)
    if value is None:
        raise MetadataError(f"ENVI header has no '{key}' entry", header)
    return int(value)


def envi_dtype(hdr: dict[str, Any], header: Path) -> np.dtype:
    """Numpy dtype of the data file from ``data type`` and ``byte order`` (0 little, 1 big endian)."""
    code = _header_int(hdr, "data type", header)
    if code not in ENVI_DTYPES:
        raise MetadataError(f"ENVI data type {code} is not supported (known: {sorted(ENVI_DTYPES)})", header)
    order = ">" if int(hdr.get("byte order", 0)) == 1 else "<"
    return ENVI_DTYPES[code].newbyteorder(order)


def _check_size(data: Path, expected: int, offset: int) -> None:
    actual = data.stat().st_size
    if actual < offset + expected:
        raise InputError(
            f"data file is truncated: the header describes {offset + expected} bytes, the file has {actual}", data
        )


def _memmap_cube(data: Path, hdr: dict[str, Any], header: Path, chunks: int | None) -> Any:
    """Pixels (band, y, x) memory-mapped with numpy from the header's layout; dask when ``chunks``."""
    nb, ny, nx = (_header_int(hdr, k, header) for k in ("bands", "lines", "samples"))
    dtype = envi_dtype(hdr, header)
    interleave = hdr.get("interleave", "bsq")
    shapes = {"bsq": ((nb, ny, nx), (0, 1, 2)), "bil": ((ny, nb, nx), (1, 0, 2)), "bip": ((ny, nx, nb), (2, 0, 1))}
    if interleave not in shapes:
        raise MetadataError(f"unknown ENVI interleave {interleave!r} (expected bsq, bil or bip)", header)
    shape, order = shapes[interleave]
    raw = np.memmap(data, dtype=dtype, mode="r", offset=int(hdr.get("header offset", 0)), shape=shape)
    view = raw.transpose(order)
    native = np.dtype(dtype.char)
    if chunks:
        return da.from_array(view, chunks=(nb, chunks, chunks)).astype(native)
    return np.ascontiguousarray(view, dtype=native)


def _map_info_transform(hdr: dict[str, Any]) -> Affine | None:
    """North-up transform from ``map info`` (reference pixel is 1-based; rotation is ignored)."""
    info = hdr.get("map info")
    if not info or len(info) < 7:
        return None
    try:
        ref_x, ref_y, east, north, dx, dy = (float(v) for v in info[1:7])
    except ValueError:
        return None
    return Affine(dx, 0.0, east - (ref_x - 1.0) * dx, 0.0, -dy, north + (ref_y - 1.0) * dy)


def _header_crs(hdr: dict[str, Any]) -> Any:
    """CRS from ``coordinate system string`` (WKT) or a UTM/WGS-84 ``map info``; None if neither."""
    from rasterio.crs import CRS
    from rasterio.errors import CRSError

    wkt = hdr.get("coordinate system string")
    if wkt:
        try:
            return CRS.from_wkt(wkt)
        except CRSError:
            pass
    info = hdr.get("map info") or []
    if len(info) >= 9 and info[0].strip().upper() == "UTM" and "WGS-84" in ",".join(info).upper():
        try:
            zone = int(info[7])
        except ValueError:
            return None
        north = info[8].strip().lower().startswith("n")
        return CRS.from_epsg((32600 if north else 32700) + zone)
    return None


def _gdal_pixels(
    data: Path, hdr: dict[str, Any], header: Path, chunks: int | None
) -> tuple[Any, Any, Affine | None] | None:
    """Pixels, CRS and transform through GDAL's ENVI driver; None when GDAL cannot read the file."""
    import rasterio

    from hsikit.io.geotiff import read_raster

    expected = tuple(_header_int(hdr, k, header) for k in ("bands", "lines", "samples"))
    try:
        with rasterio.open(data) as src:
            if src.driver != "ENVI" or (src.count, src.height, src.width) != expected:
                return None
        raw = read_raster(data, lazy=bool(chunks), chunks=chunks)
    except (rasterio.errors.RasterioIOError, InputError):
        return None
    return raw.data, raw.rio.crs, geotransform(raw)


def _band_list(hdr: dict[str, Any], key: str, n: int, header: Path) -> Any:
    values = hdr.get(key)
    if values is None:
        return None
    if len(values) != n:
        noun = {"wavelength": "wavelengths", "fwhm": "fwhm values", "bbl": "bbl entries"}.get(key, key)
        raise MetadataError(f"header lists {len(values)} {noun} but the image has {n} bands", header)
    return values


def _scale_offset(hdr: dict[str, Any], n: int, header: Path) -> tuple[Any, Any]:
    factor = hdr.get("reflectance scale factor")
    if factor:
        return 1.0 / factor, 0.0
    return _band_list(hdr, "data gain values", n, header), _band_list(hdr, "data offset values", n, header)


def _nodata(hdr: dict[str, Any], fallback: Any, dtype: np.dtype) -> Any:
    value = hdr.get("data ignore value", fallback)
    if value is None:
        return None
    value = float(value)
    if np.issubdtype(dtype, np.integer) and value.is_integer():
        return int(value)
    return value


def read_envi(path: str | os.PathLike, *, chunks: int | None = None, **_: Any) -> xr.DataArray:
    """Read an ENVI image as a cube.

    Parameters
    ----------
    path
        The ``.hdr`` or the data file (``.bsq``/``.bil``/``.bip``/``.img``/``.dat`` or no suffix).
    chunks
        Spatial chunk size in pixels: when given, pixels are a lazy dask array (band axis one
        chunk); otherwise they are read into memory.

    Returns
    -------
    xarray.DataArray
        (band, y, x) cube with values as stored (any ENVI data type, native byte order);
        ``wavelength``/``fwhm`` in nm from the header, ``bbl``, ``band_name``, nodata from
        ``data ignore value``, scale = 1 / ``reflectance scale factor`` (else ``data gain
        values``/``data offset values``), CRS and transform from GDAL (or from ``map info`` /
        ``coordinate system string`` when GDAL cannot open the file).

    Raises
    ------
    InputError
        Missing header or data file, a truncated data file, or a spectral library (use
        :func:`read_spectral_library`).
    MetadataError
        Missing size entries, or a wavelength/fwhm/bbl/band-name count that differs from the
        band count.
    """
    header, data = envi_paths(path)
    hdr = parse_envi_header(header)
    if is_spectral_library(hdr, data):
        raise InputError(
            "is an ENVI spectral library, not an image: read it with hsikit.io.envi.read_spectral_library", path
        )
    data = _require_data(header, data)
    nb, ny, nx = (_header_int(hdr, k, header) for k in ("bands", "lines", "samples"))
    dtype = envi_dtype(hdr, header)
    _check_size(data, nb * ny * nx * dtype.itemsize, int(hdr.get("header offset", 0)))
    wavelength = _band_list(hdr, "wavelength", nb, header)
    fwhm = _band_list(hdr, "fwhm", nb, header)
    bbl = _band_list(hdr, "bbl", nb, header)
    names = _band_list(hdr, "band names", nb, header)
    scale, offset = _scale_offset(hdr, nb, header)
    got = _gdal_pixels(data, hdr, header, chunks)
    if got is None:
        pixels, crs, transform = _memmap_cube(data, hdr, header, chunks), _header_crs(hdr), _map_info_transform(hdr)
    else:
        pixels, crs, transform = got
    sensor = str(hdr.get("sensor type", ""))
    return make_cube(
        pixels,
        wavelength=wavelength,
        fwhm=fwhm,
        bbl=bbl,
        band_names=names,
        scale=scale,
        offset=offset,
        crs=crs,
        transform=transform,
        nodata=_nodata(hdr, None, np.dtype(pixels.dtype)),
        sensor="" if sensor.lower() == "unknown" else sensor,
        acquisition_time=str(hdr.get("acquisition time", "")),
        source=str(data),
    )


# --------------------------------------------------------------------------------------------
# spectral libraries
# --------------------------------------------------------------------------------------------

def _library_array(
    values: np.ndarray, wavelength: np.ndarray, names: list[str], source: str, **attrs: Any
) -> xr.DataArray:
    """Wrap (n_spectra, n_bands) ``values`` as a library DataArray (wavelength in nm)."""
    n_spectra, n_bands = values.shape
    lib = xr.DataArray(
        values,
        dims=("spectrum", "band"),
        coords={
            "spectrum": np.arange(n_spectra),
            "band": np.arange(1, n_bands + 1),
            "wavelength": ("band", np.asarray(wavelength, np.float64)),
            "spectrum_name": ("spectrum", np.array(names, dtype=str)),
        },
        name="library",
    )
    lib.attrs.update(wavelength_units="nm", source=source, **attrs)
    return lib


def _read_sli(path: Path) -> xr.DataArray:
    header, data = envi_paths(path)
    hdr = parse_envi_header(header)
    data = _require_data(header, data)
    n_bands = _header_int(hdr, "samples", header)
    n_spectra = _header_int(hdr, "lines", header)
    if _header_int(hdr, "bands", header, 1) != 1:
        raise InputError(f"not a spectral library: the header has {hdr['bands']} bands (a library has 1)", header)
    dtype = envi_dtype(hdr, header)
    offset = int(hdr.get("header offset", 0))
    _check_size(data, n_spectra * n_bands * dtype.itemsize, offset)
    values = np.fromfile(data, dtype=dtype, count=n_spectra * n_bands, offset=offset).reshape(n_spectra, n_bands)
    values = values.astype(np.dtype(dtype.char))
    wl = hdr.get("wavelength")
    if wl is None:
        wl = np.full(n_bands, np.nan)
    elif wl.size != n_bands:
        raise MetadataError(f"header lists {wl.size} wavelengths but the library has {n_bands} bands", header)
    names = hdr.get("spectra names") or [f"spectrum_{i + 1}" for i in range(n_spectra)]
    if len(names) != n_spectra:
        raise MetadataError(
            f"header lists {len(names)} spectra names but the library has {n_spectra} spectra", header
        )
    factor = hdr.get("reflectance scale factor")
    attrs: dict[str, Any] = {}
    if factor:
        values = values / factor
        attrs["reflectance_scale_factor"] = factor
    lib = _library_array(values, wl, names, str(data), **attrs)
    fwhm = hdr.get("fwhm")
    if fwhm is not None and fwhm.size == n_bands:
        lib = lib.assign_coords(fwhm=("band", fwhm))
    return lib


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_rows(path: Path) -> list[list[str]]:
    try:
        text = path.read_text(encoding="utf-8-sig", errors="replace")
    except OSError as exc:
        raise InputError(f"cannot read the CSV library ({exc.strerror})", path) from None
    try:
        dialect: Any = csv.Sniffer().sniff(text[:8192], delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    rows = [[c.strip() for c in r] for r in csv.reader(io.StringIO(text), dialect)]
    return [r for r in rows if any(rows_cell for rows_cell in r) and not r[0].startswith("#")]


def _csv_float(cell: str) -> float:
    return float(cell) if cell not in ("", "nan", "NaN", "NA") else np.nan


def _csv_units(label: str, wavelength: np.ndarray) -> np.ndarray:
    """Wavelengths in nm, using a unit in the column label (``"wavelength (um)"``) or the magnitude."""
    low = label.lower()
    if re.search(r"\bnm\b|nanomet", low):
        return wavelength
    if re.search(r"\b(um|µm|micron)|micromet", low):
        return wavelength * 1e3
    return wavelength * unit_factor(None, wavelength)


def _read_csv_library(path: Path) -> xr.DataArray:
    """CSV library: wavelength column + one column per spectrum, or transposed (one row per spectrum)."""
    rows = _csv_rows(path)
    if len(rows) < 2:
        raise InputError("CSV library needs a header row and at least one data row", path)
    head = rows[0]
    has_header = not all(_is_number(c) for c in head if c)
    transposed = has_header and len(head) > 1 and all(_is_number(c) for c in head[1:] if c)
    body = rows[1:] if has_header else rows
    width = max(len(r) for r in rows)
    try:
        if transposed:
            wl = np.array([float(c) for c in head[1:]])
            names = [r[0] for r in body]
            values = np.array([[_csv_float(c) for c in r[1:]] + [np.nan] * (width - len(r)) for r in body])
        else:
            table = np.array([[_csv_float(c) for c in r] + [np.nan] * (width - len(r)) for r in body])
            wl, values = table[:, 0], table[:, 1:].T
            names = head[1:] if has_header else [f"spectrum_{i + 1}" for i in range(values.shape[0])]
    except ValueError as exc:
        raise InputError(f"CSV library has a non-numeric value ({exc})", path) from None
    if values.ndim != 2 or values.shape[0] != len(names) or values.shape[1] != wl.size:
        raise InputError(
            f"CSV library rows have inconsistent lengths ({values.shape} values, {wl.size} wavelengths)", path
        )
    label = head[0] if (has_header and not transposed) else (head[0] if has_header else "")
    return _library_array(values, _csv_units(label, wl), [str(n) for n in names], str(path))


def read_spectral_library(path: str | os.PathLike) -> xr.DataArray:
    """Read a spectral library from an ENVI ``.sli`` (+ ``.hdr``) or a CSV file.

    Parameters
    ----------
    path
        ENVI library (``.sli``, its ``.sli.hdr``/``.hdr``) or CSV. CSV layouts: first column
        wavelength (nm or µm; units from the column label or guessed from the magnitude) and one
        column per spectrum with the header row giving names; or transposed, with wavelengths in
        the header row and one row per spectrum whose first cell is its name.

    Returns
    -------
    xarray.DataArray
        Shape (n_spectra, n_bands), dims ``("spectrum", "band")``; coords ``wavelength`` (nm,
        on ``band``), ``spectrum_name`` (on ``spectrum``), ``band`` (1-based) and ``fwhm`` (nm)
        when the header has it. ENVI values keep their stored dtype unless the header has a
        ``reflectance scale factor``, which is divided out.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", p)
    if p.suffix.lower() in (".csv", ".txt", ".tsv"):
        return _read_csv_library(p)
    return _read_sli(p)
