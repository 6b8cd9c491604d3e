"""Training labels on a scene grid: from a label raster, a vector file or an array.

A label map is an ``(y, x)`` int64 array on the scene's pixel grid with ``0`` = unlabelled and
positive integer class codes; class names map codes to text. Rasters must already lie on the
scene grid (same CRS and pixel size, offset by whole pixels; the overlap is cut out, the rest is
unlabelled) — a raster is never resampled, because resampling labels silently changes them.
Vector files (GeoPackage, Shapefile, GeoJSON) are reprojected to the scene CRS and rasterised
with :func:`rasterio.features.rasterize` (a pixel is labelled when its centre is inside a polygon).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import xarray as xr
from affine import Affine

from hsikit.cube import X, Y, geotransform
from hsikit.errors import InputError, MetadataError

VECTOR_SUFFIXES = (".gpkg", ".shp", ".geojson", ".json", ".fgb")
#: Field names tried, in order, when no class field is given.
CLASS_FIELDS = ("class", "label", "class_id", "classid", "class_name", "classname", "landcover", "code", "name")
#: GeoTIFF tag in which hsikit stores ``{code: name}`` as JSON (read back from hsikit's own maps).
CLASS_NAMES_TAG = "class_names"
MAX_CODE = 254


@dataclass
class Labels:
    """Labels on a scene grid.

    Attributes
    ----------
    values
        ``(y, x)`` int64, 0 = unlabelled, codes 1..254.
    names
        ``{code: name}`` for every code present (and possibly more).
    source
        Where the labels came from (a path or ``"array"``).
    """

    values: np.ndarray
    names: dict[int, str] = field(default_factory=dict)
    source: str = "array"

    @property
    def classes(self) -> np.ndarray:
        """Sorted class codes present (without 0)."""
        u = np.unique(self.values)
        return u[u > 0]

    @property
    def count(self) -> int:
        """Number of labelled pixels."""
        return int((self.values > 0).sum())

    def name_of(self, code: int) -> str:
        return self.names.get(int(code), f"class_{int(code)}")


def _check_codes(values: np.ndarray, source: str) -> np.ndarray:
    a = np.asarray(values)
    if a.dtype.kind == "f":
        finite = np.isfinite(a)
        a = np.where(finite, a, 0)
        if not np.all(a == np.round(a)):
            raise InputError("labels must be integer class codes; found fractional values", source)
    elif a.dtype.kind not in "biu":
        raise InputError(f"labels must be integer class codes; got dtype {a.dtype}", source)
    a = a.astype(np.int64)
    if a.min(initial=0) < 0:
        a = np.where(a < 0, 0, a)  # negative codes are nodata markers in many label rasters
    if a.max(initial=0) > MAX_CODE:
        raise InputError(f"class codes above {MAX_CODE} are not supported (found {int(a.max())})", source)
    return a


def parse_class_names(text: Any) -> dict[int, str]:
    """``{code: name}`` from the JSON of a :data:`CLASS_NAMES_TAG` tag; {} when absent or unreadable."""
    if not text:
        return {}
    try:
        raw = json.loads(text) if isinstance(text, str) else text
        return {int(k): str(v) for k, v in dict(raw).items()}
    except (ValueError, TypeError, AttributeError):
        return {}


def _finish(values: np.ndarray, names: dict[int, str], source: str) -> Labels:
    lab = Labels(values, {int(k): str(v) for k, v in names.items()}, source)
    if lab.count == 0:
        raise InputError("no labelled pixel inside the scene (labels are all 0/unlabelled on the scene grid)", source)
    return lab


def labels_from_array(values: Any, cube: xr.DataArray | None = None, names: dict[int, str] | None = None, source: str = "array") -> Labels:
    """Labels from an ``(y, x)`` array already on the scene grid (0 = unlabelled)."""
    a = _check_codes(np.asarray(values), source)
    if a.ndim != 2:
        raise InputError(f"labels must be a 2-D (y, x) array, got shape {a.shape}", source)
    if cube is not None and a.shape != (cube.sizes[Y], cube.sizes[X]):
        raise MetadataError(f"labels are {a.shape[0]}x{a.shape[1]} but the scene is {cube.sizes[Y]}x{cube.sizes[X]}", source)
    return _finish(a, names or {}, source)


def read_labels(path: str | os.PathLike, cube: xr.DataArray, *, class_field: str | None = None,
                names: dict[int, str] | None = None) -> Labels:
    """Read labels for ``cube`` from a label raster or a vector file.

    Parameters
    ----------
    path
        A single-band raster of class codes (GeoTIFF, ...; 0 = unlabelled) or a vector file
        (``.gpkg``, ``.shp``, ``.geojson``) of polygons with a class field.
    cube
        The scene (band, y, x); its CRS, transform and size define the grid.
    class_field
        Attribute holding the class (vector only). Integer fields are the codes; text fields are
        class names, coded 1..K in sorted order. Default: the first of :data:`CLASS_FIELDS`.
    names
        ``{code: name}`` overriding names found in the file.

    Raises
    ------
    InputError
        Unreadable file, missing class field, no labelled pixel inside the scene.
    MetadataError
        A raster on another CRS or grid, a vector file without CRS while the scene has one.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("label file not found", p)
    if p.suffix.lower() in VECTOR_SUFFIXES:
        lab = _read_vector(p, cube, class_field)
    else:
        lab = _read_raster(p, cube)
    if names:
        lab.names.update({int(k): str(v) for k, v in names.items()})
    return lab


# ------------------------------------------------------------------------------------------ raster


def _same_crs(a: Any, b: Any) -> bool:
    from rasterio.crs import CRS

    try:
        return CRS.from_user_input(a) == CRS.from_user_input(b)
    except Exception:  # noqa: BLE001  (an unparsable CRS is simply not equal)
        return False


def _read_raster(p: Path, cube: xr.DataArray) -> Labels:
    import rasterio

    try:
        with rasterio.open(p) as src:
            if src.count != 1:
                raise InputError(f"a label raster needs 1 band, this one has {src.count}", p)
            data = src.read(1, masked=True)
            crs, transform = src.crs, src.transform
            tags = src.tags()
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"cannot read the label raster ({exc})", p) from None
    values = _check_codes(np.ma.filled(data.astype(np.float64), 0), str(p))
    names = parse_class_names(tags.get(CLASS_NAMES_TAG))
    height, width = cube.sizes[Y], cube.sizes[X]
    scene_t = geotransform(cube)
    scene_crs = cube.rio.crs
    if scene_t is None or (transform == Affine.identity() and crs is None):
        if values.shape != (height, width):
            raise MetadataError(f"label raster is {values.shape[0]}x{values.shape[1]} pixels without a georeference, "
                                f"the scene is {height}x{width}", p)
        return _finish(values, names, str(p))
    if scene_crs is not None and crs is not None and not _same_crs(scene_crs, crs):
        raise MetadataError(f"label raster is on {crs.to_string()} but the scene is on {scene_crs.to_string()}: "
                            "reproject the labels onto the scene grid (nearest neighbour) or give polygons", p)
    if (scene_crs is None) != (crs is None):
        raise MetadataError("one of the label raster and the scene has a CRS and the other has none", p)
    rows, cols = _grid_offset(transform, scene_t, p)
    out = np.zeros((height, width), np.int64)
    r0, c0 = max(rows, 0), max(cols, 0)
    r1, c1 = min(rows + values.shape[0], height), min(cols + values.shape[1], width)
    if r1 <= r0 or c1 <= c0:
        raise InputError("the label raster does not overlap the scene (no labelled pixel inside the scene)", p)
    out[r0:r1, c0:c1] = values[r0 - rows : r1 - rows, c0 - cols : c1 - cols]
    return _finish(out, names, str(p))


def _grid_offset(label_t: Affine, scene_t: Affine, p: Path) -> tuple[int, int]:
    """(rows, cols) of the label raster's first pixel on the scene grid; error unless whole pixels."""
    tol = 1e-3
    if label_t.b or label_t.d or scene_t.b or scene_t.d:
        raise MetadataError("rotated grids are not supported for label rasters", p)
    if abs(label_t.a - scene_t.a) > tol * abs(scene_t.a) or abs(label_t.e - scene_t.e) > tol * abs(scene_t.e):
        raise MetadataError(f"label raster pixel size {label_t.a:g} x {abs(label_t.e):g} differs from the scene's "
                            f"{scene_t.a:g} x {abs(scene_t.e):g}: the grids are not alignable", p)
    col = (label_t.c - scene_t.c) / scene_t.a
    row = (label_t.f - scene_t.f) / scene_t.e
    if abs(col - round(col)) > tol or abs(row - round(row)) > tol:
        raise MetadataError(f"label raster is shifted by a fraction of a pixel ({row:.3f}, {col:.3f} px) from the "
                            "scene grid: the grids are not alignable", p)
    return int(round(row)), int(round(col))


# ------------------------------------------------------------------------------------------ vector


def _read_features(p: Path) -> tuple[list[dict], dict[str, list], Any]:
    """(GeoJSON-like geometries, {field: values}, crs) of a vector file."""
    try:
        import pyogrio.raw
        import shapely
    except ImportError:
        pass
    else:
        try:
            meta, _, geoms, field_data = pyogrio.raw.read(p)
        except Exception as exc:  # noqa: BLE001  (GDAL raises many kinds)
            raise InputError(f"cannot read the vector file ({exc})", p) from None
        shapes = [shapely.geometry.mapping(g) if g is not None else None for g in shapely.from_wkb(geoms)]
        fields = {str(n): list(v) for n, v in zip(meta["fields"], field_data)}
        return shapes, fields, meta.get("crs")
    if p.suffix.lower() not in (".geojson", ".json"):
        raise InputError("reading GeoPackage/Shapefile labels needs the 'pyogrio' package "
                         "(pip install pyogrio); GeoJSON works without it", p)
    return _read_geojson(p)


def _read_geojson(p: Path) -> tuple[list[dict], dict[str, list], Any]:
    """Plain-JSON GeoJSON reader (used when pyogrio is not installed)."""
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"cannot read the GeoJSON file ({exc})", p) from None
    feats = doc.get("features", [doc] if doc.get("type") == "Feature" else [])
    crs = "EPSG:4326"  # RFC 7946; a legacy "crs" member overrides it
    legacy = doc.get("crs", {}).get("properties", {}).get("name")
    if legacy:
        crs = legacy
    keys: list[str] = []
    for f in feats:
        for k in (f.get("properties") or {}):
            if k not in keys:
                keys.append(k)
    fields = {k: [(f.get("properties") or {}).get(k) for f in feats] for k in keys}
    return [f.get("geometry") for f in feats], fields, crs


def _codes_from_field(values: list, p: Path, name: str) -> tuple[np.ndarray, dict[int, str]]:
    present = [v for v in values if v is not None and not (isinstance(v, float) and np.isnan(v))]
    if not present:
        raise InputError(f"class field {name!r} is empty", p)
    if all(isinstance(v, (int, np.integer)) or (isinstance(v, (float, np.floating)) and float(v).is_integer()) for v in present):
        codes = np.array([int(v) if v is not None else 0 for v in values], np.int64)
        return codes, {}
    text = sorted({str(v) for v in present})
    mapping = {t: i + 1 for i, t in enumerate(text)}
    codes = np.array([mapping[str(v)] if v is not None else 0 for v in values], np.int64)
    return codes, {c: t for t, c in mapping.items()}


def _read_vector(p: Path, cube: xr.DataArray, class_field: str | None) -> Labels:
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom

    shapes, fields, crs = _read_features(p)
    if not shapes:
        raise InputError("the vector file has no features", p)
    if class_field is None:
        lower = {k.lower(): k for k in fields}
        class_field = next((lower[c] for c in CLASS_FIELDS if c in lower), None)
        if class_field is None:
            raise InputError(f"no class field found (tried {', '.join(CLASS_FIELDS)}; fields: {', '.join(fields) or 'none'}): "
                             "name it with --class-field", p)
    elif class_field not in fields:
        raise InputError(f"no field {class_field!r} (fields: {', '.join(fields) or 'none'})", p)
    codes, names = _codes_from_field(fields[class_field], p, class_field)
    if codes.max(initial=0) > MAX_CODE:
        raise InputError(f"class codes above {MAX_CODE} are not supported", p)
    scene_t = geotransform(cube)
    if scene_t is None:
        raise MetadataError("the scene has no georeference, so polygons cannot be placed on it", cube.attrs.get("source") or None)
    scene_crs = cube.rio.crs
    if crs is None and scene_crs is not None:
        raise MetadataError("the vector file has no CRS", p)
    pairs = []
    for geom, code in zip(shapes, codes):
        if geom is None or code <= 0:
            continue
        if scene_crs is not None and not _same_crs(crs, scene_crs):
            geom = transform_geom(crs, scene_crs, geom)
        pairs.append((geom, int(code)))
    if not pairs:
        raise InputError("no feature with a positive class code", p)
    values = rasterize(pairs, out_shape=(cube.sizes[Y], cube.sizes[X]), transform=scene_t, fill=0, dtype="int32")
    return _finish(values.astype(np.int64), names, str(p))
