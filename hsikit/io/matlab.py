"""MATLAB ``.mat`` files (v4/v5/v7 through :mod:`scipy.io`, v7.3 through :mod:`h5py`).

Hyperspectral scenes are published in ``.mat`` files in a handful of layouts; :func:`read_matlab`
turns each into the cube model of :mod:`hsikit.cube` (dims ``(band, y, x)``):

``hwl``
    A 3-D array ``H x W x L`` (rows, columns, bands) as MATLAB stores images: the classic scenes
    (``indian_pines_corrected``, ``paviaU``, ``salinas_corrected``, ``KSC``, ``Botswana``, ...),
    the anomaly-detection scenes (``data``), GatorSense demos (``hsi_img``, ``hsi_sub``, ...),
    MiSiCNet/UPCGIT files (``Y`` or ``Y_clean`` as ``H x W x L``) and CAVE-like ``.mat`` files.
``lhw``
    A 3-D array ``L x H x W`` (band first, as written from Python). Never guessed from shapes;
    chosen with ``layout="lhw"`` or when only the first axis matches the file's wavelength vector.
``zhu``
    Zhu et al. unmixing files: ``Y`` (or ``V``) is an ``L x N`` matrix, one column per pixel, with
    the grid in ``nRow`` / ``nCol`` (UPCGIT files such as ``moffett.mat`` use ``lines`` / ``cols``).
    Pixels are in MATLAB column-major order: pixel ``(r, c)`` is column ``c * nRow + r``, i.e. the
    cube is ``Y.reshape(L, nRow, nCol, order="F")``. Optional ``SlectBands`` (the 1-based band
    numbers kept from the sensor's bands) become the ``band`` coordinate; ``maxValue`` is stored in
    ``attrs["max_value"]`` and **not** applied: the data stay as stored (Jasper Ridge, for example,
    stores raw values whose maximum is ``maxValue``; divide by it yourself if a method needs it).
``hysupp``
    HySUPP files: ``Y`` is ``L x N`` with the grid in ``H`` / ``W`` (plus ``p``, ``L``, ``N``).
    HySUPP builds and displays these in row-major (C) order: pixel ``(r, c)`` is column
    ``r * W + c``, i.e. the cube is ``Y.reshape(L, H, W)``.

When ``key`` is not given the image array is found automatically: an ``L x N`` matrix (``Y``,
``V``, or any 2-D array with a side equal to rows x cols) when the file has grid keys (``nRow`` and
``nCol``, ``lines`` and ``cols``, or ``H`` and ``W``); otherwise the largest numeric 3-D array; as a
last resort a ``Y`` / ``V`` matrix whose pixel count is a perfect square, read as a square
column-major grid (``attrs["matlab_grid"] = "assumed square"``; pass ``shape=(rows, cols)`` when
that is wrong).

v7.3 files are HDF5: h5py exposes MATLAB arrays with their axes reversed (an ``H x W x L`` variable
appears as ``(L, W, H)``); :func:`read_matlab_array` transposes them back so both versions give the
MATLAB shape. Data keep the stored dtype (e.g. uint16 counts, int16 reflectance x 10000).

Wavelengths come from a variable whose name contains ``wavelength``, ``wavlength`` (GatorSense's
spelling) or ``wavlen``, or starts with ``lambda``, and that has one value per band (shortest name
first); micrometres are converted to nm when the largest value is below 30. Without one they are
NaN. The ``wavelength=`` argument overrides the file. A ``fwhm`` variable is read the same way.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr

from hsikit.cube import make_cube
from hsikit.errors import InputError, MetadataError, UsageError
from hsikit.io.bandmeta import unit_factor

LAYOUTS = ("hwl", "lhw", "zhu", "hysupp")

#: MATLAB classes that hold numbers (``logical`` masks and ``char`` strings are not images).
NUMERIC_CLASSES = frozenset(
    {"double", "single", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64"}
)

#: Grid keys of L x N layouts: (rows key, cols key, layout). Checked in this order.
GRID_KEYS: tuple[tuple[str, str, str], ...] = (
    ("nRow", "nCol", "zhu"),
    ("lines", "cols", "zhu"),  # UPCGIT (moffett.mat): column-major, checked against its S_GT
    ("H", "W", "hysupp"),
)

#: Names of the L x N pixel matrix in Zhu / HySUPP files, preferred in this order.
MATRIX_KEYS = ("Y", "V")

#: Names that hold the image in well-known files; break ties between equally large 3-D arrays.
CUBE_KEYS = (
    "Y", "Y_clean", "data", "hsi_img", "hsi_img_sub", "hsi_sub", "indian_pines_corrected",
    "indian_pines", "paviaU", "pavia", "salinas_corrected", "salinas", "salinasA_corrected",
    "salinasA", "KSC", "Botswana", "img", "hsi", "HSI", "cube", "msi",
)

#: Wavelength variables: ``wavelength(s)``, GatorSense's ``wavlength``, ``AVIRIS_wavlen``, ``lambda*``.
_WAVELENGTH_KEY = re.compile(r"wavelength|wavlength|wavlen|^lambda", re.IGNORECASE)

#: (pattern on the lower-case file stem or key, sensor); the first match wins.
_SENSORS: tuple[tuple[str, str], ...] = (
    (r"abu-beach", "ROSIS"),
    (r"abu-(airport|urban)", "AVIRIS"),
    (r"hydice", "HYDICE"),
    (r"samson", "SAMSON"),
    (r"muufl|muffle|gulfport", "CASI-1500"),
    (r"pavia", "ROSIS"),
    (r"botswana", "Hyperion"),
    (r"indian_pines|salinas|^ksc$|sandiego|san_diego|moffett|cuprite|jasper|aviris", "AVIRIS"),
    (r"urban|washington|dc_mall", "HYDICE"),
    (r"apex", "APEX"),
    (r"cave", "CAVE"),
)


# --------------------------------------------------------------------------------------------
# low-level file access (v5 and v7.3 behind one interface)
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class MatVariable:
    """One variable of a MAT file: its name, MATLAB shape and MATLAB class (``double``, ``struct``...)."""

    name: str
    shape: tuple[int, ...]
    mclass: str

    @property
    def numeric(self) -> bool:
        """Whether the variable holds numbers (not logical, char, cell or struct)."""
        return self.mclass in NUMERIC_CLASSES

    @property
    def size(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


def _is_hdf5(path: Path) -> bool:
    import h5py

    try:
        return bool(h5py.is_hdf5(path))
    except OSError:
        return False


def _unreadable(path: Path, exc: BaseException) -> InputError:
    return InputError(f"not a readable MATLAB file: {exc}", path)


def _check_file(path: str | os.PathLike) -> Path:
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", p)
    if p.is_dir():
        raise InputError("is a folder, not a MATLAB file", p)
    return p


def _h5_class(ds: Any) -> str:
    value = ds.attrs.get("MATLAB_class", b"")
    return value.decode() if isinstance(value, bytes) else str(value)


def _h5_variables(path: Path) -> dict[str, MatVariable]:
    import h5py

    out: dict[str, MatVariable] = {}
    with h5py.File(path, "r") as f:
        for name, obj in f.items():
            if name.startswith("#") or not isinstance(obj, h5py.Dataset):
                continue  # '#refs#' / '#subsystem#' and struct groups
            mclass = _h5_class(obj)
            if obj.attrs.get("MATLAB_empty", 0):
                shape: tuple[int, ...] = (0, 0)
            else:
                shape = tuple(int(s) for s in obj.shape[::-1])
            if obj.dtype.kind == "O":  # cell arrays: object references
                mclass = "cell"
            out[name] = MatVariable(name, shape, mclass or "double")
    return out


def _h5_load(path: Path, name: str) -> np.ndarray:
    import h5py

    with h5py.File(path, "r") as f:
        raw = f[name][()]
    arr = np.asarray(raw)
    if arr.dtype.names and {"real", "imag"} <= set(arr.dtype.names):
        arr = arr["real"] + 1j * arr["imag"]
    return arr.T  # h5py shows MATLAB's axes reversed


def matlab_variables(path: str | os.PathLike) -> dict[str, MatVariable]:
    """List the variables of a MAT file (v5 or v7.3) without reading their data.

    Parameters
    ----------
    path
        The ``.mat`` file.

    Returns
    -------
    dict
        ``{name: MatVariable}`` with MATLAB shapes (an ``H x W x L`` image is ``(H, W, L)`` in both
        versions) and MATLAB classes.

    Raises
    ------
    InputError
        When the file is missing or is not a readable MAT file.
    """
    from scipy.io import whosmat

    p = _check_file(path)
    try:
        if _is_hdf5(p):
            return _h5_variables(p)
        return {name: MatVariable(name, tuple(int(s) for s in shape), mclass) for name, shape, mclass in whosmat(p)}
    except Exception as exc:  # scipy/h5py raise many types (ValueError, MatReadError, OSError, ...)
        raise _unreadable(p, exc) from exc


def _missing_key(p: Path, key: str, variables: dict[str, MatVariable]) -> InputError:
    listing = ", ".join(f"{v.name} ({'x'.join(map(str, v.shape))} {v.mclass})" for v in variables.values())
    return InputError(f"no variable {key!r} in the file; variables: {listing or 'none'}", p)


def _load(p: Path, names: list[str]) -> dict[str, np.ndarray]:
    """Read ``names`` (which must exist) in MATLAB axis order."""
    from scipy.io import loadmat

    try:
        if _is_hdf5(p):
            return {n: _h5_load(p, n) for n in names}
        data = loadmat(p, variable_names=names, squeeze_me=False)
        return {n: np.asarray(data[n]) for n in names}
    except Exception as exc:
        raise _unreadable(p, exc) from exc


def read_matlab_array(path: str | os.PathLike, key: str) -> np.ndarray:
    """Read one variable of a MAT file as stored, in MATLAB axis order.

    Parameters
    ----------
    path
        The ``.mat`` file (v5 or v7.3).
    key
        Variable name.

    Returns
    -------
    numpy.ndarray
        The array with MATLAB's shape (e.g. ``(H, W, L)``; v7.3 arrays are transposed back) and
        its stored dtype. Scalars come back as ``(1, 1)`` arrays.

    Raises
    ------
    InputError
        Missing file, unreadable file, or no variable ``key`` (the message lists the variables).
    """
    p = Path(path)
    variables = matlab_variables(p)
    if key not in variables:
        raise _missing_key(p, key, variables)
    return _load(p, [key])[key]


# --------------------------------------------------------------------------------------------
# choosing the image array and its layout
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Plan:
    """What to read: the image variable, its layout and, for L x N layouts, the grid."""

    key: str
    layout: str
    grid: tuple[int, int] | None = None
    grid_note: str = ""


def _scalar(p: Path, variables: dict[str, MatVariable], name: str) -> int | None:
    var = variables.get(name)
    if var is None or not var.numeric or var.size != 1:
        return None
    value = float(_load(p, [name])[name].reshape(-1)[0])
    return int(value) if value.is_integer() and value >= 1 else None  # e.g. a scalar weight named W


def _grid_from_keys(p: Path, variables: dict[str, MatVariable]) -> tuple[int, int, str] | None:
    """(rows, cols, layout) from nRow/nCol, lines/cols or H/W, if the file has such a pair."""
    for rows_key, cols_key, layout in GRID_KEYS:
        rows, cols = _scalar(p, variables, rows_key), _scalar(p, variables, cols_key)
        if rows is not None and cols is not None:
            return rows, cols, layout
    return None


def _pixel_matrix(variables: dict[str, MatVariable], n_pixels: int | None, named_only: bool = False) -> str | None:
    """Name of the L x N (or N x L) matrix: Y or V first, else any 2-D array with a side of n_pixels.

    ``n_pixels=None`` accepts Y or V of any size; ``named_only`` skips the search beyond Y and V.
    """
    two_d = [v for v in variables.values() if v.numeric and len(v.shape) == 2 and min(v.shape) > 1]
    for name in MATRIX_KEYS:
        var = variables.get(name)
        if var is not None and var in two_d and (n_pixels is None or n_pixels in var.shape):
            return name
    if n_pixels is not None and not named_only:
        fits = [v for v in two_d if n_pixels in v.shape]
        if fits:
            return max(fits, key=lambda v: v.size).name
    return None


def _largest_3d(variables: dict[str, MatVariable]) -> str | None:
    cubes = [v for v in variables.values() if v.numeric and len(v.shape) == 3 and min(v.shape) > 0]
    if not cubes:
        return None
    rank = {name: i for i, name in enumerate(CUBE_KEYS)}
    return min(cubes, key=lambda v: (-v.size, rank.get(v.name, len(rank)), v.name)).name


def _square_grid(n_pixels: int) -> tuple[int, int] | None:
    side = math.isqrt(n_pixels)
    return (side, side) if side * side == n_pixels else None


def _plan(p: Path, variables: dict[str, MatVariable], key: str | None, layout: str | None,
          shape: tuple[int, int] | None) -> _Plan:
    """Decide which variable holds the image and how its axes map to (band, y, x)."""
    if layout is not None and layout not in LAYOUTS:
        raise UsageError(f"unknown MATLAB layout {layout!r} (use one of {', '.join(LAYOUTS)})")
    if key is not None and key not in variables:
        raise _missing_key(p, key, variables)
    found = _grid_from_keys(p, variables)
    grid = tuple(shape) if shape is not None else (found[:2] if found else None)
    grid_layout = found[2] if found else "zhu"
    if key is None:
        n_pixels = None if grid is None else grid[0] * grid[1]
        if n_pixels is not None:
            key = _pixel_matrix(variables, n_pixels, named_only=True)
        key = key or _largest_3d(variables)
        if key is None and n_pixels is not None:
            key = _pixel_matrix(variables, n_pixels)
        key = key or _pixel_matrix(variables, None)
        if key is None:
            listing = ", ".join(f"{v.name} ({'x'.join(map(str, v.shape))})" for v in variables.values())
            raise InputError(f"no hyperspectral image array found (no 3-D array, no L x N matrix); "
                             f"variables: {listing or 'none'}; pass key=", p)
    var = variables[key]
    if not var.numeric:
        raise InputError(f"variable {key!r} is a MATLAB {var.mclass}, not a numeric image", p)
    ndim = len(var.shape)
    if ndim == 3:
        if layout in ("zhu", "hysupp"):
            raise UsageError(f"layout {layout!r} needs an L x N matrix but {key!r} is 3-D {var.shape}", p)
        return _Plan(key, layout or _guess_3d_layout(p, variables, var))
    if ndim != 2 or min(var.shape) < 2:
        raise InputError(f"variable {key!r} has shape {var.shape}, not an image (H x W x L) or an L x N matrix", p)
    if layout in ("hwl", "lhw"):
        raise UsageError(f"layout {layout!r} needs a 3-D array but {key!r} is {var.shape[0]} x {var.shape[1]}", p)
    note = ""
    if grid is None:
        grid = _square_grid(max(var.shape))  # pixels outnumber bands
        note = "assumed square"
        if grid is None:
            raise MetadataError(f"{key!r} is an L x N matrix ({var.shape[0]} x {var.shape[1]}) but the file has "
                                "no nRow/nCol, lines/cols or H/W keys; pass shape=(rows, cols)", p)
    return _Plan(key, layout or grid_layout, (int(grid[0]), int(grid[1])), note)


def _guess_3d_layout(p: Path, variables: dict[str, MatVariable], var: MatVariable) -> str:
    """``hwl`` unless the file's wavelength vector matches only the first axis."""
    lengths = {v.size for v in variables.values() if _WAVELENGTH_KEY.search(v.name) and v.numeric}
    if var.shape[0] in lengths and var.shape[2] not in lengths:
        return "lhw"
    return "hwl"


# --------------------------------------------------------------------------------------------
# arrays -> (band, y, x)
# --------------------------------------------------------------------------------------------

def pixels_to_cube(matrix: np.ndarray, rows: int, cols: int, order: str, path: Path | None = None) -> np.ndarray:
    """Turn an ``L x N`` (or ``N x L``) pixel matrix into a ``(band, y, x)`` array.

    Parameters
    ----------
    matrix
        One spectrum per column (``L x N``) or per row (``N x L``), ``N = rows * cols``.
    rows, cols
        Image height and width in pixels.
    order
        ``"F"``: column-major pixel order, pixel ``(r, c)`` is number ``c * rows + r`` (Zhu,
        MATLAB). ``"C"``: row-major, pixel ``(r, c)`` is number ``r * cols + c`` (HySUPP).

    Returns
    -------
    numpy.ndarray
        C-contiguous array of shape (L, rows, cols), same dtype as ``matrix``.

    Raises
    ------
    MetadataError
        When neither side of ``matrix`` equals ``rows * cols``.
    """
    n = rows * cols
    if matrix.shape[1] != n:
        if matrix.shape[0] != n:
            raise MetadataError(f"pixel matrix is {matrix.shape[0]} x {matrix.shape[1]} but the grid is "
                                f"{rows} x {cols} = {n} pixels", path)
        matrix = matrix.T  # N x L -> L x N
    n_bands = matrix.shape[0]
    if order == "F":
        cube = matrix.reshape(n_bands, cols, rows).transpose(0, 2, 1)  # [l, c, r] -> [l, r, c]
    else:
        cube = matrix.reshape(n_bands, rows, cols)
    return np.ascontiguousarray(cube)


def _to_band_first(arr: np.ndarray, plan: _Plan, path: Path) -> np.ndarray:
    if plan.layout == "hwl":
        return np.ascontiguousarray(np.moveaxis(arr, 2, 0))
    if plan.layout == "lhw":
        return np.ascontiguousarray(arr)
    assert plan.grid is not None
    order = "F" if plan.layout == "zhu" else "C"
    return pixels_to_cube(arr, plan.grid[0], plan.grid[1], order, path)


# --------------------------------------------------------------------------------------------
# spectral metadata
# --------------------------------------------------------------------------------------------

def _band_vectors(p: Path, variables: dict[str, MatVariable], names: list[str], n_bands: int) -> dict[str, np.ndarray]:
    """Read the numeric vectors among ``names`` that have exactly ``n_bands`` values."""
    keep = [n for n in names if n in variables and variables[n].numeric and variables[n].size == n_bands
            and max(variables[n].shape) == n_bands]
    return {k: v.reshape(-1) for k, v in _load(p, keep).items()} if keep else {}


def _spectral(p: Path, variables: dict[str, MatVariable], n_bands: int,
              wavelength: Any) -> tuple[np.ndarray | None, np.ndarray | None]:
    """(wavelength, fwhm) in nm: the argument or the file's wavelength variable, and ``fwhm``.

    The file's fwhm shares the units of the file's wavelengths (converted by the same factor).
    """
    names = sorted((n for n in variables if _WAVELENGTH_KEY.search(n)), key=lambda n: (len(n), n))
    vectors = _band_vectors(p, variables, names + ["fwhm", "FWHM"], n_bands)
    raw = next((vectors[n].astype(np.float64) for n in names if n in vectors), None)
    factor = 1.0 if raw is None else unit_factor(None, raw)
    raw_fwhm = vectors.get("fwhm", vectors.get("FWHM"))
    fwhm = None if raw_fwhm is None else raw_fwhm.astype(np.float64) * factor
    if wavelength is not None:
        return _to_nm(wavelength, n_bands, p), fwhm
    return (None if raw is None else raw * factor), fwhm


def _to_nm(values: Any, n_bands: int, path: Path) -> np.ndarray:
    """Wavelengths as a float64 vector in nm (values below 30 are taken as micrometres)."""
    wl = np.asarray(values, dtype=np.float64).reshape(-1)
    if wl.size != n_bands:
        raise MetadataError(f"{wl.size} wavelengths given for a cube of {n_bands} bands", path)
    return wl * unit_factor(None, wl)


def _band_numbers(p: Path, variables: dict[str, MatVariable], n_bands: int) -> np.ndarray | None:
    """Zhu's ``SlectBands``: 1-based numbers of the sensor bands kept, when it fits the cube."""
    vectors = _band_vectors(p, variables, ["SlectBands"], n_bands)
    if "SlectBands" not in vectors:
        return None
    numbers = vectors["SlectBands"].astype(np.float64)
    if not (np.all(numbers >= 1) and np.all(numbers == np.round(numbers)) and np.all(np.diff(numbers) > 0)):
        return None
    return numbers.astype(np.int64)


def _max_value(p: Path, variables: dict[str, MatVariable]) -> float | None:
    var = variables.get("maxValue")
    if var is None or not var.numeric or var.size != 1:
        return None
    return float(_load(p, ["maxValue"])["maxValue"].reshape(-1)[0])


def guess_sensor(path: str | os.PathLike, key: str = "") -> str:
    """Sensor name from well-known file stems or variable names (``""`` when unknown).

    ``samson*`` -> SAMSON, ``moffett``/``indian_pines``/``salinas``/``KSC``/``abu-airport`` -> AVIRIS,
    ``paviaU``/``abu-beach`` -> ROSIS, ``muufl``/``gulfport`` -> CASI-1500, ``Botswana`` -> Hyperion,
    ``HYDICE``/``urban`` -> HYDICE, ``apex`` -> APEX.
    """
    for text in (Path(path).stem.lower(), key.lower()):
        for pattern, sensor in _SENSORS:
            if text and re.search(pattern, text):
                return sensor
    return ""


# --------------------------------------------------------------------------------------------
# public reader
# --------------------------------------------------------------------------------------------

def read_matlab(
    path: str | os.PathLike,
    *,
    key: str | None = None,
    layout: str | None = None,
    wavelength: Any = None,
    shape: tuple[int, int] | None = None,
    **_: Any,
) -> xr.DataArray:
    """Read a hyperspectral image from a MATLAB ``.mat`` file (v5 or v7.3) as a cube.

    Parameters
    ----------
    path
        The ``.mat`` file.
    key
        Variable holding the image (default: found automatically, see the module docstring).
    layout
        Force the axis layout: ``"hwl"`` (H x W x L), ``"lhw"`` (L x H x W), ``"zhu"`` (L x N,
        column-major pixels) or ``"hysupp"`` (L x N, row-major pixels). Default: ``zhu`` with
        ``nRow``/``nCol`` or ``lines``/``cols``, ``hysupp`` with ``H``/``W``, ``hwl`` for 3-D arrays.
    wavelength
        Band centres (nm; values below 30 are taken as micrometres), one per band; overrides the
        file's wavelength variable.
    shape
        ``(rows, cols)`` of an L x N matrix when the file has no grid keys (or to override them).
    **_
        Other options of :func:`hsikit.io.open_cube`, ignored.

    Returns
    -------
    xarray.DataArray
        Cube ``(band, y, x)`` in the stored dtype; ``wavelength`` in nm (NaN when unknown);
        attrs ``sensor``, ``source`` plus ``matlab_key``, ``matlab_layout`` and, when present,
        ``max_value`` (Zhu's ``maxValue``, not applied) and ``matlab_grid``.

    Raises
    ------
    InputError
        Missing or unreadable file, missing ``key`` (the message lists the variables), no image.
    MetadataError
        An L x N matrix whose pixel count does not match the grid, or wavelengths of wrong length.
    UsageError
        An unknown or impossible ``layout``.
    """
    p = _check_file(path)
    variables = matlab_variables(p)
    plan = _plan(p, variables, key, layout, shape)
    data = _to_band_first(_load(p, [plan.key])[plan.key], plan, p)
    n_bands = data.shape[0]
    wl, fwhm = _spectral(p, variables, n_bands, wavelength)
    cube = make_cube(
        data,
        wavelength=wl,
        fwhm=fwhm,
        band_numbers=_band_numbers(p, variables, n_bands),
        sensor=guess_sensor(p, plan.key),
        source=str(path),
    )
    cube.attrs.update(matlab_key=plan.key, matlab_layout=plan.layout)
    max_value = _max_value(p, variables)
    if max_value is not None:
        cube.attrs["max_value"] = max_value
    if plan.grid_note:
        cube.attrs["matlab_grid"] = plan.grid_note
    return cube
