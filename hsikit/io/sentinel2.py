"""Sentinel-2 readers: L2A/L1C SAFE folders, per-band GeoTIFF/COG/JP2 stacks, multi-band stacks, local STAC
item collections, the eo-learn test patch and BigEarthNet patches, into one (time, band, y, x) cube.

Every band of every date is warped (:class:`rasterio.vrt.WarpedVRT`) onto one common grid (default the
10 m grid of the finest band; ``resolution`` sets another), reflectance bands with ``resampling``
(default nearest, i.e. 20/60 m pixels replicated; "bilinear" also works), the scene classification
(SCL) always with nearest. Dates are sorted by time. Values stay as stored (uint16 DN) and the cube's
``scale`` / ``offset`` coords carry the conversion

    reflectance = (DN + ADD_OFFSET) / QUANTIFICATION  =  DN * scale + offset,

so :func:`hsikit.cube.to_reflectance` gives reflectance. ``ADD_OFFSET`` is ``BOA_ADD_OFFSET`` (L2A) or
``RADIO_ADD_OFFSET`` (L1C), -1000 from processing baseline 04.00 (2022-01-25) on, 0 before; it is read
from ``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml`` (or a STAC item's ``s2:processing_baseline`` /
``earthsearch:boa_offset_applied``) when present. Without metadata it must be given: ``add_offset``
(e.g. -1000 for a baseline >= 04.00 product whose offset was not removed); a product dated on or after
2022-01-25 without metadata and without ``add_offset`` triggers a warning and is read with offset 0.
The attr ``add_offset_source`` records where the offset came from, per date.

Masks: the coord ``clear`` (time, y, x), bool, is True where every band has data and, when an SCL layer
exists, its class is in ``clear_classes`` (default {4 vegetation, 5 not vegetated, 6 water, 7
unclassified}; always masked: 0 nodata, 1 saturated, 3 cloud shadow, 8/9 cloud, 10 cirrus; 2 dark
and 11 snow by default too). The coord ``scl`` (time, y, x, uint8, 0 = none) keeps the classes.

Band names follow ESA (``B01`` ... ``B08``, ``B8A``, ``B09`` ... ``B12``); wavelengths and FWHM come from
:func:`hsikit.data.sensors.sensor_bands` ("sentinel2").
"""

from __future__ import annotations

import json
import os
import re
import warnings
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import xarray as xr
from affine import Affine
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT

from hsikit.cube import TIME, X, Y, make_cube
from hsikit.errors import InputError, MetadataError, UsageError

#: ESA band order (MTD band_id 0..12).
S2_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
#: Native resolution (m) of each band.
NATIVE_RES = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10,
              "B8A": 20, "B09": 60, "B10": 60, "B11": 20, "B12": 20, "SCL": 20}
#: SCL classes counted as clear by default.
CLEAR_CLASSES = (4, 5, 6, 7)
#: First sensing day of processing baseline 04.00 (ADD_OFFSET -1000).
BASELINE_04_START = np.datetime64("2022-01-25")
#: Band lists of multi-band stacks by product keyword (sen2r: B08 kept at 10 m, no B8A).
STACK_BANDS = {
    "BOA": ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B11", "B12"),
    "TOA": ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B09", "B10", "B11", "B12"),
}
#: STAC asset keys (Earth Search common names and Planetary Computer band ids) -> band.
STAC_KEYS = {"coastal": "B01", "blue": "B02", "green": "B03", "red": "B04", "rededge1": "B05", "rededge2": "B06",
             "rededge3": "B07", "nir": "B08", "nir08": "B8A", "nir09": "B09", "cirrus": "B10", "swir16": "B11",
             "swir22": "B12", "scl": "SCL", **{b: b for b in S2_BANDS}, "SCL": "SCL"}

_BAND_RE = re.compile(r"(?:^|[_.\-])(B0?[1-9]|B1[0-2]|B8A|SCL)(?:_(10|20|60)m)?(?=[_.\-]|$)", re.IGNORECASE)
_DATE_RE = re.compile(r"(?<!\d)(\d{8})(T\d{6})?(?!\d)")
_STACK_RE = re.compile(r"(?:^|[_.\-])(BOA|TOA|SCL)(?:[_.\-]|$)", re.IGNORECASE)
_LEVEL_RE = re.compile(r"(?:MSI|S2[ABC]?)L?(1C|2A)", re.IGNORECASE)
_RASTER_SUFFIXES = (".tif", ".tiff", ".jp2", ".vrt")


def product_level(name: str) -> str | None:
    """``"L2A"``, ``"L1C"`` or None from a file name (``S2A_MSIL2A_...``, sen2r ``S2A2A_..._BOA_``, ``_TOA_``)."""
    stack = _STACK_RE.search(Path(name).stem)
    if stack is not None:
        return "L1C" if stack.group(1).upper() == "TOA" else "L2A"
    m = _LEVEL_RE.search(name)
    return f"L{m.group(1).upper()}" if m else None


def band_key(token: str) -> str:
    """Canonical band name: ``b2`` -> ``B02``, ``B8a`` -> ``B8A``, ``scl`` -> ``SCL``."""
    t = token.upper()
    if t in ("SCL", "B8A"):
        return t
    m = re.fullmatch(r"B0?(\d{1,2})", t)
    if not m or not 1 <= int(m.group(1)) <= 12:
        raise UsageError(f"{token!r} is not a Sentinel-2 band (B01-B12, B8A, SCL)")
    return f"B{int(m.group(1)):02d}"


def _parse_time(text: str | None) -> np.datetime64 | None:
    if not text:
        return None
    m = _DATE_RE.search(text)
    if not m:
        return None
    d, t = m.group(1), m.group(2)
    iso = f"{d[:4]}-{d[4:6]}-{d[6:8]}" + (f"T{t[1:3]}:{t[3:5]}:{t[5:7]}" if t else "")
    try:
        return np.datetime64(iso, "s")
    except ValueError:
        return None


@dataclass
class BandSource:
    """One band of one date: the file, the 1-based band in it, and its resolution (m, from the file)."""

    path: str
    index: int = 1


@dataclass
class Scene:
    """One acquisition: its time, band sources, optional SCL, and the radiometric conversion."""

    time: np.datetime64 | None
    bands: dict[str, BandSource] = field(default_factory=dict)
    scl: BandSource | None = None
    add_offset: dict[str, float] | None = None  # per band, DN; None = unknown (no metadata)
    quantification: float | None = None
    baseline: str = ""
    label: str = ""
    offset_source: str = ""


# ---------------------------------------------------------------------------------------- metadata


def parse_product_metadata(xml: str | os.PathLike | bytes) -> dict[str, Any]:
    """Radiometric metadata of ``MTD_MSIL2A.xml`` / ``MTD_MSIL1C.xml``.

    Returns
    -------
    dict
        ``baseline`` (str, e.g. "04.00"), ``quantification`` (float, e.g. 10000), ``add_offset``
        (dict band -> DN offset; empty before baseline 04.00 since older files have no such list),
        ``time`` (datetime64 of PRODUCT_START_TIME or None).
    """
    try:
        root = ET.fromstring(xml) if isinstance(xml, bytes) else ET.parse(xml).getroot()
    except (ET.ParseError, OSError) as exc:
        raise InputError(f"not a readable Sentinel-2 metadata file ({exc})", None if isinstance(xml, bytes) else xml) from None
    for el in root.iter():
        if "}" in el.tag:
            el.tag = el.tag.split("}", 1)[1]
    ids: dict[str, str] = {}
    for el in root.iter("Spectral_Information"):
        if el.get("bandId") is not None and el.get("physicalBand"):
            ids[el.get("bandId")] = band_key(el.get("physicalBand"))
    def band_of(bid: str) -> str:
        return ids.get(bid) or S2_BANDS[int(bid)]
    offsets: dict[str, float] = {}
    for tag in ("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET"):
        for el in root.iter(tag):
            offsets[band_of(el.get("band_id", "0"))] = float(el.text)
    quant = None
    for tag in ("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE"):
        el = next(root.iter(tag), None)
        if el is not None and el.text:
            quant = float(el.text)
            break
    baseline = next((el.text.strip() for el in root.iter("PROCESSING_BASELINE") if el.text), "")
    start = next((el.text.strip() for el in root.iter("PRODUCT_START_TIME") if el.text), "")
    t = np.datetime64(start.rstrip("Z")[:19], "s") if start else None
    return {"baseline": baseline, "quantification": quant, "add_offset": offsets, "time": t}


def offset_for_baseline(baseline: str | float) -> float:
    """ADD_OFFSET (DN) implied by a processing baseline: -1000 from 04.00 on, else 0."""
    try:
        value = float(baseline)
    except (TypeError, ValueError):
        raise MetadataError(f"processing baseline {baseline!r} is not a number like 04.00") from None
    return -1000.0 if value >= 4.0 else 0.0


# --------------------------------------------------------------------------------------- discovery


def _scene_from_safe(name: str, mtd: tuple[str, bytes] | None, images: Sequence[str], where: Path) -> Scene:
    """A Scene from a SAFE product's name, its MTD_MSIL*.xml (file name, bytes) and image paths."""
    meta = parse_product_metadata(mtd[1]) if mtd is not None else None
    m = re.search(r"_N(\d{2})(\d{2})_", name)
    scene = Scene(_parse_time(name), label=name)
    if meta is not None:
        scene.time = meta["time"] or scene.time
        scene.quantification = meta["quantification"]
        scene.baseline = meta["baseline"]
        if meta["add_offset"]:
            scene.add_offset, scene.offset_source = meta["add_offset"], mtd[0]
        elif meta["baseline"]:
            o = offset_for_baseline(meta["baseline"])
            scene.add_offset, scene.offset_source = {b: o for b in S2_BANDS}, f"{mtd[0]} baseline {meta['baseline']}"
    elif m:
        scene.baseline = f"{m.group(1)}.{m.group(2)}"
        if scene.baseline != "99.99":  # N9999: reprocessed / unknown
            o = offset_for_baseline(scene.baseline)
            scene.add_offset, scene.offset_source = {b: o for b in S2_BANDS}, f"baseline {scene.baseline} in the name"
    if not images:
        raise InputError("SAFE product has no GRANULE/*/IMG_DATA images", where)
    best: dict[str, tuple[int, str]] = {}
    for p in images:
        hit = _BAND_RE.search(Path(p).stem)
        if not hit:
            continue
        b = band_key(hit.group(1))
        res = int(hit.group(2) or NATIVE_RES[b])
        if b not in best or res < best[b][0]:
            best[b] = (res, p)
    for b, (_, p) in best.items():
        if b == "SCL":
            scene.scl = BandSource(p)
        else:
            scene.bands[b] = BandSource(p)
    return scene


def _safe_scene(safe: Path) -> Scene:
    mtd = next(iter(sorted(safe.glob("MTD_MSIL*.xml"))), None)
    images = sorted(str(p) for p in safe.glob("GRANULE/*/IMG_DATA/**/*") if p.suffix.lower() in _RASTER_SUFFIXES)
    return _scene_from_safe(safe.name, (mtd.name, mtd.read_bytes()) if mtd is not None else None, images, safe)


def _safe_zip_scene(path: Path) -> Scene:
    """A zipped SAFE product (``S2?_MSIL2A_....SAFE.zip`` / ``.zip`` as downloaded); pixels read via /vsizip/."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
            safe = next((n.split("/")[0] for n in names if n.split("/")[0].upper().endswith(".SAFE")), None)
            if safe is None:
                raise InputError("ZIP holds no .SAFE product", path)
            mtd_name = next((n for n in names if re.fullmatch(re.escape(safe) + r"/MTD_MSIL\w+\.xml", n)), None)
            mtd = (Path(mtd_name).name, z.read(mtd_name)) if mtd_name else None
    except zipfile.BadZipFile:
        raise InputError("not a readable ZIP file", path) from None
    images = sorted(f"/vsizip/{path.resolve()}/{n}" for n in names
                    if "/IMG_DATA/" in n and n.startswith(f"{safe}/GRANULE/") and Path(n).suffix.lower() in _RASTER_SUFFIXES)
    return _scene_from_safe(safe, mtd, images, path)


def _is_safe_zip(p: Path) -> bool:
    return p.is_file() and p.suffix.lower() == ".zip"


def _files_scenes(files: Sequence[Path], band_names: Sequence[str] | None, level: str | None) -> list[Scene]:
    levels = {p: product_level(p.name) for p in files}
    found = set(levels.values()) - {None}
    if level is None and len(found) > 1:
        level = "L2A"  # both levels side by side (sen2r output folders): the surface reflectance
    if level is not None:
        files = [p for p in files if levels[p] in (level, None)]
    by_date: dict[Any, Scene] = {}
    for p in files:
        t = _parse_time(p.name)
        scene = by_date.setdefault(t, Scene(t, label=p.name))
        stack = _STACK_RE.search(p.stem)
        hit = _BAND_RE.search(p.stem)
        with rasterio.open(p) as src:
            count = src.count
        if count == 1 and hit is not None:
            b = band_key(hit.group(1))
            if b == "SCL":
                scene.scl = BandSource(str(p))
            else:
                scene.bands[b] = BandSource(str(p))
            continue
        if stack is not None and stack.group(1).upper() == "SCL":
            scene.scl = BandSource(str(p))
            continue
        names = band_names or (STACK_BANDS.get(stack.group(1).upper()) if stack else None)
        if names is None or len(names) != count:
            raise MetadataError(
                f"{count}-band stack whose bands are unknown: pass band_names=[...] ({count} names)"
                + (f" (a {stack.group(1).upper()} stack has {len(names)} bands)" if names else ""), p)
        for i, b in enumerate(names):
            scene.bands[band_key(b)] = BandSource(str(p), i + 1)
    return list(by_date.values())


def _stac_scenes(path: Path) -> list[Scene]:
    doc = json.loads(path.read_text())
    items = doc.get("features", [doc] if doc.get("type") == "Feature" else [])
    if not items:
        raise InputError("no STAC items (expected a FeatureCollection or a Feature)", path)
    scenes = []
    for it in items:
        props = it.get("properties", {})
        t = props.get("datetime")
        scene = Scene(np.datetime64(t.rstrip("Z")[:19], "s") if t else None, label=it.get("id", path.name))
        for key, asset in it.get("assets", {}).items():
            b = STAC_KEYS.get(key)
            if b is None:
                continue
            href = asset["href"]
            href = href[7:] if href.startswith("file://") else href
            src = BandSource(str((path.parent / href) if not os.path.isabs(href) else Path(href)))
            if b == "SCL":
                scene.scl = src
            else:
                scene.bands[b] = src
        baseline = props.get("s2:processing_baseline")
        if props.get("earthsearch:boa_offset_applied") is True:
            scene.add_offset, scene.offset_source = {b: 0.0 for b in S2_BANDS}, "earthsearch:boa_offset_applied"
        elif baseline is not None:
            o = offset_for_baseline(baseline)
            scene.add_offset, scene.offset_source = {b: o for b in S2_BANDS}, f"s2:processing_baseline {baseline}"
        scene.baseline = str(baseline or "")
        scenes.append(scene)
    return scenes


def find_scenes(
    source: str | os.PathLike | Iterable[str | os.PathLike], *, band_names: Sequence[str] | None = None,
    level: str | None = None,
) -> list[Scene]:
    """Group the files of ``source`` into acquisitions (unsorted, unread).

    ``source`` is a SAFE folder or ZIP, a folder of SAFE folders / ZIPs and/or band files, a STAC item collection
    (``.json``), one raster or a list of any of these. Band files are recognised by a band token in
    the name (``_B02``, ``.b2.``, ``_B8A_20m``, ``_SCL``) and grouped by the date in the name
    (``YYYYMMDD[Thhmmss]``); multi-band stacks by ``BOA`` / ``TOA`` in the name or ``band_names``.
    ``level`` (``"L2A"`` or ``"L1C"``) keeps one processing level when a folder holds both (default:
    L2A then).
    """
    if level is not None and level.upper() not in ("L2A", "L1C"):
        raise UsageError(f"level must be L2A or L1C, got {level!r}")
    level = level.upper() if level else None
    paths = [Path(source)] if isinstance(source, (str, os.PathLike)) else [Path(p) for p in source]
    scenes: list[Scene] = []
    loose: list[Path] = []
    for p in paths:
        if not p.exists():
            raise InputError("file not found", p)
        if p.is_dir() and p.suffix.upper() == ".SAFE":
            scenes.append(_safe_scene(p))
        elif _is_safe_zip(p):
            scenes.append(_safe_zip_scene(p))
        elif p.is_dir():
            safes = sorted(q for q in p.iterdir() if q.is_dir() and q.suffix.upper() == ".SAFE"
                           and (level is None or product_level(q.name) in (level, None)))
            scenes.extend(_safe_scene(q) for q in safes)
            zips = sorted(q for q in p.iterdir() if _is_safe_zip(q) and (level is None or product_level(q.name) in (level, None)))
            scenes.extend(_safe_zip_scene(q) for q in zips)
            loose.extend(sorted(q for q in p.iterdir() if q.is_file() and q.suffix.lower() in _RASTER_SUFFIXES))
            for js in sorted(q for q in p.iterdir() if q.suffix.lower() == ".json"):
                try:
                    doc = json.loads(js.read_text())
                except (ValueError, OSError):
                    continue
                if doc.get("type") in ("FeatureCollection", "Feature"):
                    scenes.extend(_stac_scenes(js))
        elif p.suffix.lower() == ".json":
            scenes.extend(_stac_scenes(p))
        else:
            loose.append(p)
    if loose:
        scenes.extend(_files_scenes(loose, band_names, level))
    if not scenes:
        raise InputError("no Sentinel-2 SAFE folders, band files or STAC items found", paths[0])
    return scenes


# ------------------------------------------------------------------------------------------- grid


@dataclass
class Grid:
    """Target grid: CRS, north-up transform and size."""

    crs: Any
    transform: Affine
    height: int
    width: int


def _reference_grid(scenes: Sequence[Scene], resolution: float | None) -> Grid:
    best = None
    for s in scenes:
        for src in s.bands.values():
            with rasterio.open(src.path) as ds:
                res = abs(ds.transform.a)
                if best is None or res < best[0]:
                    best = (res, ds.crs, ds.transform, ds.height, ds.width)
    if best is None:
        raise InputError("no reflectance bands found")
    res, crs, t, h, w = best
    if resolution is None or abs(resolution - res) < 1e-9:
        return Grid(crs, t, h, w)
    r = float(resolution)
    width, height = round(w * res / r), round(h * res / r)
    return Grid(crs, Affine(r, 0, t.c, 0, -r, t.f), height, width)


def _warp(src: BandSource, grid: Grid, resampling: Resampling, label: str) -> tuple[np.ndarray, float | None]:
    try:
        ds = rasterio.open(src.path)
    except rasterio.errors.RasterioIOError as exc:
        raise InputError(f"not a readable raster ({exc})", src.path) from None
    with ds:
        if ds.crs is None:
            raise MetadataError(f"{label} has no CRS; cannot put it on the common grid", src.path)
        same = ds.crs == grid.crs and ds.transform == grid.transform and (ds.height, ds.width) == (grid.height, grid.width)
        if same:
            return ds.read(src.index), ds.nodata
        with WarpedVRT(ds, crs=grid.crs, transform=grid.transform, height=grid.height, width=grid.width,
                       resampling=resampling, src_nodata=ds.nodata, nodata=ds.nodata) as vrt:
            return vrt.read(src.index), ds.nodata


# --------------------------------------------------------------------------------------------- read


def _resolve_offset(scene: Scene, add_offset: float | None, label: str) -> tuple[dict[str, float], str]:
    if add_offset is not None:
        return {b: float(add_offset) for b in S2_BANDS}, "parameter"
    if scene.add_offset is not None:
        return scene.add_offset, scene.offset_source
    if scene.time is not None and scene.time >= BASELINE_04_START:
        warnings.warn(
            f"{label}: acquired {str(scene.time)[:10]} (processing baseline >= 04.00 era) without metadata; "
            "read with ADD_OFFSET 0: pass add_offset=-1000 if the -1000 offset was not removed", stacklevel=3)
    return {b: 0.0 for b in S2_BANDS}, "assumed 0 (no metadata)"


def _looks_like_dn(data: np.ndarray, nodata: float | None) -> bool:
    v = data[np.isfinite(data)] if nodata is None else data[(data != nodata) & np.isfinite(data)]
    return v.size > 0 and float(np.percentile(v, 99)) > 10


def read_sentinel2(
    source: str | os.PathLike | Iterable[str | os.PathLike],
    *,
    bands: Sequence[str] | None = None,
    resolution: float | None = None,
    resampling: str = "nearest",
    add_offset: float | None = None,
    quantification: float | None = None,
    clear_classes: Sequence[int] = CLEAR_CLASSES,
    band_names: Sequence[str] | None = None,
    level: str | None = None,
    time: Any = None,
) -> xr.DataArray:
    """Read Sentinel-2 acquisitions into one (time, band, y, x) cube on a common grid.

    Parameters
    ----------
    source
        See :func:`find_scenes`: SAFE folder(s), folder of band files / stacks, STAC item collection
        JSON, or a list of files.
    bands
        Bands to keep (``["B02", "B03", "B04", "B08"]``, case and zero-padding free); default: the
        bands every date has, in ESA order.
    resolution
        Target pixel size in the files' CRS units (m); default: the finest band's grid (10 m).
    resampling
        Rasterio resampling for reflectance bands (``nearest``, ``bilinear``, ``cubic``, ``average``).
    add_offset
        ADD_OFFSET in DN for every band and date (overrides metadata): -1000 for baseline >= 04.00
        products whose offset is still in the pixels, 0 when already removed.
    quantification
        QUANTIFICATION_VALUE (default: from metadata, else 10000 for integer data and for floats whose
        99th percentile exceeds 10, and 1 for floats in reflectance units).
    clear_classes
        SCL classes that count as clear in the ``clear`` mask.
    band_names
        Band order of multi-band stacks that the file name does not identify.
    level
        ``"L2A"`` or ``"L1C"`` when a folder holds both (default L2A).
    time
        Acquisition time(s) for files without a date in their name (one per acquisition).

    Returns
    -------
    xarray.DataArray
        (time, band, y, x) with the stored dtype (float32 if the files differ), coords ``time``,
        ``wavelength``/``fwhm`` (nm), ``band_name``, ``scale`` = 1/quantification and ``offset`` =
        add_offset/quantification per band (the first date's; see attr ``add_offset`` per date if
        dates differ, then values are rescaled to the first date's offset), ``clear`` and ``scl``
        (time, y, x); CRS/transform/nodata via ``.rio``.
    """
    from hsikit.data.sensors import sensor_bands

    try:
        method = Resampling[resampling]
    except KeyError:
        raise UsageError(f"unknown resampling {resampling!r} (nearest, bilinear, cubic, average, ...)") from None
    scenes = find_scenes(source, band_names=band_names, level=level)
    if time is not None:
        times = [time] if isinstance(time, (str, np.datetime64)) else list(time)
        if len(times) != len(scenes):
            raise UsageError(f"{len(times)} times for {len(scenes)} acquisitions")
        for s, t in zip(scenes, times):
            s.time = np.datetime64(t, "s")
    missing_time = [s.label for s in scenes if s.time is None]
    if missing_time:
        raise MetadataError(f"no acquisition date in {missing_time[0]!r}: pass time=...")
    scenes.sort(key=lambda s: s.time)
    common = [b for b in S2_BANDS if all(b in s.bands for s in scenes)]
    wanted = common if bands is None else [band_key(b) for b in bands]
    for b in wanted:
        lacking = [s.label for s in scenes if b not in s.bands]
        if lacking:
            raise InputError(f"band {b} is missing from {lacking[0]}")
    if not wanted:
        raise InputError("the acquisitions have no band in common")
    grid = _reference_grid(scenes, resolution)
    stacks, clears, scls, offsets, sources = [], [], [], [], []
    nodata = None
    dtypes = set()
    for s in scenes:
        arrays = []
        for b in wanted:
            arr, nd = _warp(s.bands[b], grid, method, f"{s.label} {b}")
            nodata = nd if nodata is None else nodata
            arrays.append(arr)
            dtypes.add(arr.dtype)
        data = np.stack(arrays)
        has = np.ones(data.shape[1:], bool) if nodata is None else ~(data == nodata).any(axis=0)
        if np.issubdtype(data.dtype, np.floating):
            has &= ~np.isnan(data).any(axis=0)
        scl = np.zeros(data.shape[1:], np.uint8)
        if s.scl is not None:
            scl = _warp(s.scl, grid, Resampling.nearest, f"{s.label} SCL")[0].astype(np.uint8)
            has &= np.isin(scl, np.asarray(clear_classes))
        off, how = _resolve_offset(s, add_offset, s.label)
        stacks.append(data)
        clears.append(has)
        scls.append(scl)
        offsets.append([off.get(b, 0.0) for b in wanted])
        sources.append(how)
    dtype = dtypes.pop() if len(dtypes) == 1 else np.dtype(np.float32)
    data = np.stack([a.astype(dtype, copy=False) for a in stacks])
    q = quantification or next((s.quantification for s in scenes if s.quantification), None)
    if q is None:  # integer DN, or DN stored as floats, are x 10000; floats in 0-1 are reflectance
        q = 10000.0 if np.issubdtype(dtype, np.integer) or _looks_like_dn(data, nodata) else 1.0
    off = np.asarray(offsets, float)  # (time, band) in DN
    if not np.all(off == off[0]):
        # dates with another offset (baseline change inside the series): bring them to the first's
        data = data.astype(np.float32)
        shift = (off - off[0])[:, :, None, None]
        valid = np.ones_like(data, bool) if nodata is None else data != nodata
        data = np.where(valid, data + shift, data).astype(np.float32)
    s2 = sensor_bands("sentinel2")
    index = {str(n): i for i, n in enumerate(s2.names)}
    sel = [index[b] for b in wanted]
    cube = make_cube(
        data, wavelength=s2.wavelength[sel], fwhm=s2.fwhm[sel], bbl=s2.bbl[sel], band_names=wanted,
        band_numbers=[S2_BANDS.index(b) + 1 for b in wanted], scale=1.0 / q, offset=off[0] / q,
        crs=grid.crs, transform=grid.transform, nodata=nodata, time=[s.time for s in scenes],
        sensor="Sentinel-2", source=str(source) if isinstance(source, (str, os.PathLike)) else "",
    )
    cube = cube.assign_coords(clear=((TIME, Y, X), np.stack(clears)), scl=((TIME, Y, X), np.stack(scls)))
    cube.attrs["add_offset"] = ", ".join(f"{str(s.time)[:10]}: {o[0]:g}" for s, o in zip(scenes, offsets))
    cube.attrs["add_offset_source"] = "; ".join(dict.fromkeys(sources))
    cube.attrs["quantification"] = q
    return cube


# --------------------------------------------------------------------------------- special formats


def _eolearn_bbox(folder: Path) -> tuple[Any, Affine] | None:
    p = folder / "bbox.geojson"
    if not p.exists():
        return None
    g = json.loads(p.read_text())
    xs = [c[0] for c in g["coordinates"][0]]
    ys = [c[1] for c in g["coordinates"][0]]
    crs = g.get("crs", {}).get("properties", {}).get("name", "")
    m = re.search(r"EPSG::?(\d+)", crs)
    return (f"EPSG:{m.group(1)}" if m else None), (min(xs), max(ys), max(xs), min(ys))


def read_eolearn_patch(folder: str | os.PathLike, *, mask: bool = True) -> xr.DataArray:
    """The eo-learn ``TestEOPatch`` raw bands (``data/REFERENCE_SCENES.npy``) as a (time, 13, y, x) cube.

    The 5 frames are L1C TOA reflectance (float32, B01-B12 with B8A and B10) and are stored out of time
    order; each frame's date is found by matching its NDVI, (B08 - B04) / (B08 + B04), against the
    68-date ``data/NDVI.npy`` and ``timestamps.json``, then the frames are sorted by time. ``clear``
    is ``~CLM & IS_DATA`` of the matched dates (``mask/``), when those files exist. The grid comes
    from ``bbox.geojson`` (10 m pixels).
    """
    from hsikit.data.sensors import sensor_bands

    root = Path(folder)
    ref = root / "data" / "REFERENCE_SCENES.npy"
    if not ref.exists():
        raise InputError("no data/REFERENCE_SCENES.npy in this eo-learn patch", root)
    frames = np.load(ref)  # (t, y, x, 13)
    if frames.ndim != 4 or frames.shape[-1] != 13:
        raise InputError(f"expected (time, y, x, 13) raw bands, got {frames.shape}", ref)
    stamps = np.array([np.datetime64(t, "s") for t in json.loads((root / "timestamps.json").read_text())])
    ndvi_all = np.load(root / "data" / "NDVI.npy")[..., 0]  # (68, y, x)
    red, nir = frames[..., 3], frames[..., 7]
    with np.errstate(divide="ignore", invalid="ignore"):
        ndvi = (nir - red) / (nir + red)
    which = []
    for f in ndvi:
        err = np.nanmean(np.abs(ndvi_all - f[None]), axis=(1, 2))
        k = int(np.nanargmin(err))
        if err[k] > 1e-4:
            raise MetadataError(f"frame NDVI matches no date (best mean difference {err[k]:.3g})", ref)
        which.append(k)
    order = np.argsort(stamps[which])
    which = [which[i] for i in order]
    data = np.moveaxis(frames[order], -1, 1)  # (t, 13, y, x)
    clear = np.ones((len(which), *data.shape[-2:]), bool)
    if mask and (root / "mask" / "CLM.npy").exists():
        clear &= ~np.load(root / "mask" / "CLM.npy")[which, ..., 0].astype(bool)
    if mask and (root / "mask" / "IS_DATA.npy").exists():
        clear &= np.load(root / "mask" / "IS_DATA.npy")[which, ..., 0].astype(bool)
    geo = _eolearn_bbox(root)
    crs = transform = None
    if geo is not None:
        crs, (left, top, right, bottom) = geo
        h, w = data.shape[-2:]
        transform = Affine((right - left) / w, 0, left, 0, -(top - bottom) / h, top)
    s2 = sensor_bands("sentinel2")
    cube = make_cube(data, wavelength=s2.wavelength, fwhm=s2.fwhm, bbl=s2.bbl, band_names=list(S2_BANDS),
                     crs=crs, transform=transform, time=stamps[which], sensor="Sentinel-2 L1C (eo-learn)",
                     source=str(ref))
    cube.attrs["frame_order"] = ",".join(str(int(i)) for i in order)
    return cube.assign_coords(clear=((TIME, Y, X), clear))


#: The 12 L2A bands of BigEarthNet patches.
BIGEARTHNET_BANDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B11", "B12")


def read_bigearthnet_patch(path: str | os.PathLike, *, size: int = 120, order: int = 0) -> xr.DataArray:
    """A BigEarthNet S2 patch (``.npz`` of 12 bands at 10/20/60 m) as a (1, 12, 120, 120) cube at 10 m.

    20 m and 60 m bands are upsampled by pixel replication (``order=0``, exact: every 10 m pixel
    takes its 20/60 m parent) or bilinear interpolation (``order=1``). Values: uint16 BOA reflectance x
    10000 without offset (scale 1e-4). The time comes from the patch name; no georeference
    (BigEarthNet's LMDB ships none).
    """
    from scipy.ndimage import zoom

    from hsikit.data.sensors import sensor_bands

    p = Path(path)
    if not p.exists():
        raise InputError("file not found", p)
    with np.load(p) as z:
        missing = [b for b in BIGEARTHNET_BANDS if b not in z]
        if missing:
            raise InputError(f"BigEarthNet patch lacks bands {missing}", p)
        planes = []
        for b in BIGEARTHNET_BANDS:
            a = z[b]
            if a.shape[0] != size:
                f = size // a.shape[0]
                if f * a.shape[0] != size:
                    raise InputError(f"band {b} is {a.shape}, not a divisor of {size}", p)
                a = np.kron(a, np.ones((f, f), a.dtype)) if order == 0 else zoom(a.astype(np.float32), f, order=1).round().astype(a.dtype)
            planes.append(a)
    data = np.stack(planes)[None]
    s2 = sensor_bands("sentinel2")
    sel = [list(s2.names).index(b) for b in BIGEARTHNET_BANDS]
    t = _parse_time(p.stem)
    cube = make_cube(data, wavelength=s2.wavelength[sel], fwhm=s2.fwhm[sel], band_names=list(BIGEARTHNET_BANDS),
                     band_numbers=[S2_BANDS.index(b) + 1 for b in BIGEARTHNET_BANDS], scale=1e-4,
                     time=[t if t is not None else np.datetime64("NaT")], sensor="Sentinel-2 L2A (BigEarthNet)",
                     source=str(p))
    return cube.assign_coords(clear=((TIME, Y, X), (data[0] > 0).all(axis=0)[None]))
