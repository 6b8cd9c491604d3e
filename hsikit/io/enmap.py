"""EnMAP L2A products (DLR): folder, ZIP, METADATA.XML or the spectral image itself.

A product is a set of files sharing the product name
``ENMAP01-____L2A-DT<datatake>_<start>Z_<tile>_V<version>_<processing>Z``: the spectral image
(``-SPECTRAL_IMAGE.TIF``, ``_COG.TIF``/``.tiff`` for ARD deliveries, or ENVI ``.BSQ``/``.BIL``/
``.BIP`` + ``.HDR``), ``-METADATA.XML`` and quality layers (``-QL_*``). The image holds int16
reflectance x 10000 with nodata -32768 and no spectral metadata; the XML is the authority for
band centres, widths, gains and offsets (``specific/bandCharacterisation/bandID``), no-data bands
(``product/bandStatistics``: std 0 or mean -1e6), the bands of each detector
(``specific/{vnir,swir}ProductQuality/expectedChannelsList``) and the acquisition start time
(``base/temporalCoverage/startTime``). ZIP deliveries are read in place through GDAL's
``/vsizip/``; nothing is extracted.

VNIR (418-993 nm) and SWIR (902-2446 nm) overlap at 900-1000 nm. Older processor versions store
the bands by detector (VNIR 1-91, SWIR 92-224), newer ones sorted by wavelength; the reader
keeps the file order and exposes a ``detector`` coord so both layouts are handled the same way.
"""

from __future__ import annotations

import os
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from xml.etree import ElementTree as ET

import numpy as np
import xarray as xr

from hsikit.cube import BAND, geotransform, make_cube, select_bands
from hsikit.errors import InputError, MetadataError, UsageError

#: L2A defaults (EnPT): reflectance x 10000 as int16, nodata -32768.
DEFAULT_NODATA = -32768
DEFAULT_GAIN = 1e-4
#: ``bandStatistics`` mean that DLR writes for bands without valid pixels.
NODATA_BAND_MEAN = -1e6
OVERLAP_POLICIES = ("wavelength", "vnir", "swir")

_METADATA_SUFFIX = "-METADATA.XML"
_IMAGE_SUFFIXES = (
    "-SPECTRAL_IMAGE.TIF", "-SPECTRAL_IMAGE.TIFF", "-SPECTRAL_IMAGE_COG.TIF", "-SPECTRAL_IMAGE_COG.TIFF",
    "-SPECTRAL_IMAGE.BSQ", "-SPECTRAL_IMAGE.BIL", "-SPECTRAL_IMAGE.BIP",
)


@dataclass
class EnmapMetadata:
    """Band metadata of an EnMAP product from its METADATA.XML (n = number of bands).

    Attributes
    ----------
    wavelength, fwhm
        Band centres and full widths at half maximum [nm], shape (n,), file order.
    gain, offset
        Physical value = stored value * gain + offset, shape (n,).
    nodata_band
        True where ``bandStatistics`` flags a band without valid pixels, shape (n,).
    vnir, swir
        1-based band numbers of each detector (empty when the XML has no channel lists).
    start_time
        Acquisition start, ISO 8601 as written in the XML (``""`` when absent).
    """

    wavelength: np.ndarray
    fwhm: np.ndarray
    gain: np.ndarray
    offset: np.ndarray
    nodata_band: np.ndarray
    vnir: list[int]
    swir: list[int]
    start_time: str
    name: str = ""

    @property
    def expected(self) -> set[int]:
        """Band numbers listed by either detector (empty when unknown)."""
        return set(self.vnir) | set(self.swir)


@dataclass
class _Product:
    """Where a product's parts are: ``image`` is a local path or a ``/vsizip/`` path for GDAL."""

    source: Path
    metadata_label: str
    metadata_bytes: bytes
    image: str


# --------------------------------------------------------------------------------------------
# locating the product parts
# --------------------------------------------------------------------------------------------

def _is_metadata(name: str) -> bool:
    return name.upper().endswith(_METADATA_SUFFIX)


def _image_suffix(name: str) -> str | None:
    """The spectral-image suffix that ``name`` ends with (case-insensitive), else None."""
    upper = PurePosixPath(name).name.upper()
    return next((s for s in _IMAGE_SUFFIXES if upper.endswith(s)), None)


def _pick_image(names: list[str], metadata_name: str, where: Path) -> str:
    """The spectral image among ``names``: same folder as the XML; its product prefix, then TIF first."""
    folder = PurePosixPath(metadata_name).parent
    prefix = PurePosixPath(metadata_name).name[: -len(_METADATA_SUFFIX)].upper()
    candidates = [n for n in names if PurePosixPath(n).parent == folder and _image_suffix(n)]
    if not candidates:
        raise InputError(
            "EnMAP product has no spectral image (looked for *-SPECTRAL_IMAGE.TIF, _COG.TIF/.tiff, .BSQ/.BIL/.BIP)",
            where,
        )

    def rank(name: str) -> tuple[bool, int]:
        other_product = not PurePosixPath(name).name.upper().startswith(prefix)
        return other_product, _IMAGE_SUFFIXES.index(_image_suffix(name))

    return min(candidates, key=rank)


def _single_metadata(names: list[str], where: Path) -> str:
    found = sorted(n for n in names if _is_metadata(PurePosixPath(n).name))
    if not found:
        raise MetadataError("no *-METADATA.XML found: not an EnMAP product, or its metadata file is missing", where)
    if len(found) > 1:
        listed = ", ".join(PurePosixPath(n).name for n in found[:3])
        raise InputError(
            f"holds {len(found)} EnMAP products ({listed}); pass one product folder, ZIP or METADATA.XML", where
        )
    return found[0]


def _from_zip(path: Path) -> _Product:
    try:
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.endswith("/")]
            meta = _single_metadata(names, path)
            image = _pick_image(names, meta, path)
            xml = archive.read(meta)
    except zipfile.BadZipFile as exc:
        raise InputError(f"not a readable ZIP file ({exc})", path) from None
    return _Product(path, f"{path}/{meta}", xml, f"/vsizip/{path.resolve()}/{image}")


def _from_folder(folder: Path, metadata: Path | None = None) -> _Product:
    if metadata is None:
        files = [p for p in folder.rglob("*") if p.is_file()]
        meta_name = _single_metadata([p.relative_to(folder).as_posix() for p in files], folder)
        metadata = folder / meta_name
    siblings = [p.name for p in metadata.parent.iterdir() if p.is_file()]
    image = _pick_image(siblings, metadata.name, metadata.parent)
    try:
        xml = metadata.read_bytes()
    except OSError as exc:
        raise MetadataError(f"cannot read the metadata file ({exc.strerror})", metadata) from None
    return _Product(folder, str(metadata), xml, str(metadata.parent / image))


def _from_image(image: Path) -> _Product:
    suffix = _image_suffix(image.name)
    prefix = image.name[: len(image.name) - len(suffix)] if suffix else image.stem
    wanted = (prefix + _METADATA_SUFFIX).upper()
    metadata = next((p for p in image.parent.iterdir() if p.name.upper() == wanted), None)
    if metadata is None:
        raise MetadataError(f"no {prefix}{_METADATA_SUFFIX} beside the spectral image", image)
    product = _from_folder(image.parent, metadata)
    product.image = str(image)
    return product


def locate_product(path: str | os.PathLike) -> _Product:
    """Find the METADATA.XML and the spectral image of the product at ``path``.

    ``path`` may be the product folder (searched recursively; it must hold exactly one
    product), a ZIP (product folder inside, read in place), the METADATA.XML or the spectral
    image.
    """
    p = Path(path)
    if not p.exists():
        raise InputError("file not found", p)
    if p.is_dir():
        return _from_folder(p)
    if _is_metadata(p.name):
        return _from_folder(p.parent, p)
    if p.suffix.lower() == ".zip":
        return _from_zip(p)
    return _from_image(p)


# --------------------------------------------------------------------------------------------
# METADATA.XML
# --------------------------------------------------------------------------------------------

def _strip_namespaces(root: ET.Element) -> None:
    for element in root.iter():
        if isinstance(element.tag, str) and "}" in element.tag:
            element.tag = element.tag.split("}", 1)[1]


def _find_all(root: ET.Element, path: str) -> list[ET.Element]:
    """Elements at ``path`` under the root, else anywhere below it (``.//`` + last two steps)."""
    found = root.findall(path)
    if not found:
        found = root.findall(".//" + "/".join(path.split("/")[-2:]))
    return found


def _number(entry: ET.Element, tag: str, label: str, default: float = np.nan) -> float:
    text = entry.findtext(tag)
    if text is None or not text.strip():
        return default
    try:
        return float(text)
    except ValueError:
        number = entry.get("number", "?")
        raise MetadataError(f"{tag} of band {number} is not a number ({text.strip()!r})", label) from None


def _sorted_bands(entries: list[ET.Element], label: str) -> list[ET.Element]:
    try:
        numbers = [int(e.get("number", i + 1)) for i, e in enumerate(entries)]
    except ValueError:
        raise MetadataError("bandID has a non-integer 'number' attribute", label) from None
    return [e for _, e in sorted(zip(numbers, entries), key=lambda t: t[0])]


def _channel_list(root: ET.Element, detector: str, label: str) -> list[int]:
    text = root.findtext(f"specific/{detector}ProductQuality/expectedChannelsList")
    if text is None:
        text = root.findtext(f".//{detector}ProductQuality/expectedChannelsList")
    if not text or not text.strip():
        return []
    try:
        return [int(float(t)) for t in text.replace(";", ",").split(",") if t.strip()]
    except ValueError:
        raise MetadataError(
            f"{detector}ProductQuality/expectedChannelsList is not a list of band numbers", label
        ) from None


def _nodata_bands(root: ET.Element, n: int, label: str) -> np.ndarray:
    """True for bands whose statistics say they hold no data (std 0 or mean -1e6), shape (n,)."""
    flags = np.zeros(n, dtype=bool)
    for entry in _find_all(root, "product/bandStatistics/bandID"):
        number = int(entry.get("number", 0))
        if not 1 <= number <= n:
            continue
        mean = _number(entry, "mean", label)
        std = _number(entry, "stdDeviation", label)
        flags[number - 1] = std == 0 or mean == NODATA_BAND_MEAN
    return flags


def parse_metadata(xml: bytes, label: str = "METADATA.XML") -> EnmapMetadata:
    """Parse an EnMAP L2A METADATA.XML.

    Parameters
    ----------
    xml
        The file's bytes.
    label
        Path used in error messages.

    Returns
    -------
    EnmapMetadata
        Per-band arrays in band-number order. Missing ``GainOfBand``/``OffsetOfBand`` default to
        the L2A convention 1e-4 / 0; a missing FWHM is NaN.

    Raises
    ------
    MetadataError
        Not XML, no ``bandCharacterisation/bandID`` entries, or a non-numeric value.
    """
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise MetadataError(f"metadata file is not valid XML ({exc})", label) from None
    _strip_namespaces(root)
    bands = _sorted_bands(_find_all(root, "specific/bandCharacterisation/bandID"), label)
    if not bands:
        raise MetadataError("metadata file has no specific/bandCharacterisation/bandID entries", label)
    wavelength = np.array([_number(b, "wavelengthCenterOfBand", label) for b in bands])
    if not np.isfinite(wavelength).all():
        raise MetadataError("some bandID entries have no wavelengthCenterOfBand", label)
    start = root.findtext("base/temporalCoverage/startTime") or root.findtext(".//temporalCoverage/startTime") or ""
    return EnmapMetadata(
        wavelength=wavelength,
        fwhm=np.array([_number(b, "FWHMOfBand", label) for b in bands]),
        gain=np.array([_number(b, "GainOfBand", label, DEFAULT_GAIN) for b in bands]),
        offset=np.array([_number(b, "OffsetOfBand", label, 0.0) for b in bands]),
        nodata_band=_nodata_bands(root, len(bands), label),
        vnir=_channel_list(root, "vnir", label),
        swir=_channel_list(root, "swir", label),
        start_time=start.strip(),
        name=(root.findtext("metadata/name") or "").strip(),
    )


# --------------------------------------------------------------------------------------------
# detectors and overlap
# --------------------------------------------------------------------------------------------

def detectors(meta: EnmapMetadata) -> np.ndarray:
    """``"VNIR"``/``"SWIR"`` per band, shape (n,).

    From the expected channel lists; without them, a file in detector order is split where the
    wavelength drops, and bands of a sorted file without lists are ``""`` (unknown).
    """
    n = meta.wavelength.size
    out = np.full(n, "", dtype="<U4")
    if meta.vnir or meta.swir:
        for label, numbers in (("VNIR", meta.vnir), ("SWIR", meta.swir)):
            idx = [b - 1 for b in numbers if 1 <= b <= n]
            out[idx] = label
        return out
    drops = np.flatnonzero(np.diff(meta.wavelength) < 0)
    if drops.size == 1:
        out[: drops[0] + 1] = "VNIR"
        out[drops[0] + 1:] = "SWIR"
    return out


def overlap_drop(wavelength: np.ndarray, detector: np.ndarray, policy: str, label: str) -> np.ndarray:
    """Bands to drop (bool, shape (n,)) for an overlap ``policy``.

    ``"wavelength"`` keeps every band; ``"vnir"`` drops SWIR bands at or below the longest VNIR
    wavelength; ``"swir"`` drops VNIR bands at or above the shortest SWIR wavelength.
    """
    key = policy.strip().lower()
    if key not in OVERLAP_POLICIES:
        raise UsageError(f"unknown overlap policy {policy!r} (use {', '.join(OVERLAP_POLICIES)})")
    if key == "wavelength":
        return np.zeros(wavelength.size, dtype=bool)
    vnir, swir = detector == "VNIR", detector == "SWIR"
    if not vnir.any() or not swir.any():
        raise MetadataError(
            f"overlap={policy!r} needs the detector of each band, which the metadata do not give", label
        )
    if key == "vnir":
        return swir & (wavelength <= wavelength[vnir].max())
    return vnir & (wavelength >= wavelength[swir].min())


# --------------------------------------------------------------------------------------------
# reader
# --------------------------------------------------------------------------------------------

def _read_pixels(product: _Product, chunks: int | None) -> xr.DataArray:
    from hsikit.io.geotiff import read_raster

    return read_raster(product.image, lazy=True if chunks else None, chunks=chunks)


def read_enmap(
    path: str | os.PathLike,
    *,
    bands: str | Any = "all",
    overlap: str = "wavelength",
    chunks: int | None = None,
    **_: Any,
) -> xr.DataArray:
    """Read an EnMAP L2A product as a cube.

    Parameters
    ----------
    path
        Product folder, ZIP, ``*-METADATA.XML`` or the ``*-SPECTRAL_IMAGE*`` file.
    bands
        Band preset or list for :func:`hsikit.cube.select_bands`: ``"all"`` (224), ``"valid"``
        (bands the XML statistics do not flag as no-data), ``"torchgeo202"`` or a list.
    overlap
        VNIR/SWIR overlap (900-1000 nm): ``"wavelength"`` keeps all bands in file order,
        ``"vnir"`` drops the SWIR bands inside the overlap, ``"swir"`` the VNIR ones.
    chunks
        Spatial chunk size in pixels for lazy (dask) reading; without it, large images are still
        read lazily (see :func:`hsikit.io.geotiff.read_raster`).

    Returns
    -------
    xarray.DataArray
        (band, y, x) int16 cube as stored (reflectance x 10000): ``wavelength``/``fwhm`` [nm],
        ``scale`` = GainOfBand, ``offset`` = OffsetOfBand, ``bbl`` False for no-data bands
        (and bands no detector lists), a ``detector`` coord ("VNIR"/"SWIR"), nodata from the
        image (default -32768), CRS/transform from the image, attrs ``sensor="EnMAP"`` and
        ``acquisition_time`` (XML start time).

    Raises
    ------
    InputError
        Missing path, unreadable ZIP or no spectral image.
    MetadataError
        METADATA.XML missing or unparsable, or its band count differs from the image's.
    UsageError
        Unknown band preset or overlap policy.
    """
    product = locate_product(path)
    meta = parse_metadata(product.metadata_bytes, product.metadata_label)
    raw = _read_pixels(product, chunks)
    n_xml, n_image = meta.wavelength.size, raw.sizes[BAND]
    if n_xml != n_image:
        raise MetadataError(
            f"METADATA.XML describes {n_xml} bands but the spectral image has {n_image}", product.metadata_label
        )
    bbl = ~meta.nodata_band
    if meta.expected:
        bbl &= np.isin(np.arange(1, n_xml + 1), sorted(meta.expected))
    detector = detectors(meta)
    drop = overlap_drop(meta.wavelength, detector, overlap, product.metadata_label)
    nodata = raw.rio.nodata if raw.rio.nodata is not None else DEFAULT_NODATA
    cube = make_cube(
        raw.data,
        wavelength=meta.wavelength,
        fwhm=meta.fwhm,
        bbl=bbl,
        scale=meta.gain,
        offset=meta.offset,
        crs=raw.rio.crs,
        transform=geotransform(raw),
        nodata=nodata,
        sensor="EnMAP",
        acquisition_time=meta.start_time,
        source=str(path),
    )
    cube = cube.assign_coords(detector=(BAND, detector))
    cube.attrs["product_name"] = meta.name or PurePosixPath(product.image).name.split("-SPECTRAL_IMAGE")[0]
    cube = select_bands(cube, bands)
    dropped = set(np.flatnonzero(drop) + 1)
    if dropped:
        cube = cube.isel({BAND: [i for i, b in enumerate(cube[BAND].values) if int(b) not in dropped]})
    return cube
