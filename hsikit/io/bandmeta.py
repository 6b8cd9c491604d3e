"""Per-band spectral metadata on GDAL rasters: read every common spelling, write all of them.

Read priority for band centres (first source that gives a value for every band wins):

1. default-domain band items ``wavelength`` (+ ``wavelength_units`` on the band or the dataset),
2. ``IMAGERY`` domain ``CENTRAL_WAVELENGTH_UM`` (micrometres),
3. dataset ``ENVI`` domain lists (``wavelength = {...}``, ``wavelength_units``),
4. numbers in band descriptions (``"band 1 (418.24 Nanometers)"``, ``"418.2 nm"``).

FWHM follows the same order (``fwhm``, ``FWHM_UM``, ENVI ``fwhm``). ``bbl`` comes from band items
or the ENVI list. On write, every spelling is written so that GDAL, QGIS, EnMAP-Box and ENVI tools
all see the wavelengths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

_UNIT_TO_NM = {
    "nanometers": 1.0, "nanometer": 1.0, "nm": 1.0,
    "micrometers": 1e3, "micrometer": 1e3, "micrometre": 1e3, "micrometres": 1e3, "um": 1e3, "µm": 1e3, "microns": 1e3,
    "millimeters": 1e6, "mm": 1e6,
}


@dataclass
class BandMeta:
    """Spectral metadata of n bands: wavelength and fwhm in nm (NaN unknown), bbl, names."""

    wavelength: np.ndarray
    fwhm: np.ndarray
    bbl: np.ndarray
    names: list[str]


def unit_factor(units: str | None, values: np.ndarray | None = None) -> float:
    """Factor that converts ``values`` in ``units`` to nm; guesses from magnitude when units are unknown."""
    if units:
        key = units.strip().lower()
        if key in _UNIT_TO_NM:
            return _UNIT_TO_NM[key]
    if values is not None and np.isfinite(values).any() and np.nanmax(values) < 30:
        return 1e3  # micrometres: no optical sensor has bands below 30 nm
    return 1.0


def _float(text: str | None) -> float:
    try:
        return float(text) if text not in (None, "") else np.nan
    except ValueError:
        return np.nan


def parse_envi_list(text: str | None) -> list[str]:
    """Items of an ENVI ``{a, b, c}`` list (also accepts a bare comma-separated string)."""
    if not text:
        return []
    return [t.strip() for t in text.strip().strip("{}").split(",") if t.strip()]


_DESC_NUMBER = re.compile(r"([-+]?\d+(?:\.\d+)?)\s*(nanometers|nanometer|nm|micrometers|micrometer|um|µm)\b", re.I)


def read_band_meta(src) -> BandMeta:
    """Spectral metadata of an open rasterio dataset ``src`` (see module docstring for the order)."""
    n = src.count
    ds_tags = src.tags()
    ds_units = ds_tags.get("wavelength_units")
    band_tags = [src.tags(i) for i in range(1, n + 1)]
    names = [d or "" for d in src.descriptions]

    units = band_tags[0].get("wavelength_units") if n else None
    units = units or ds_units
    raw_wl = np.array([_float(t.get("wavelength")) for t in band_tags])
    items_factor = unit_factor(units, raw_wl)  # fwhm shares the wavelength units

    def from_items(key: str) -> np.ndarray | None:
        vals = np.array([_float(t.get(key)) for t in band_tags])
        return vals * items_factor if np.isfinite(vals).all() else None

    def from_imagery(key: str) -> np.ndarray | None:
        vals = np.array([_float(src.tags(i, ns="IMAGERY").get(key)) for i in range(1, n + 1)])
        return vals * 1e3 if np.isfinite(vals).all() else None

    envi = src.tags(ns="ENVI") if "ENVI" in (src.tag_namespaces() or []) else {}

    envi_wl = np.array([_float(v) for v in parse_envi_list(envi.get("wavelength"))])
    envi_factor = unit_factor(envi.get("wavelength_units"), envi_wl if envi_wl.size else None)

    def from_envi(key: str) -> np.ndarray | None:
        vals = np.array([_float(v) for v in parse_envi_list(envi.get(key))])
        return vals * envi_factor if vals.size == n and np.isfinite(vals).all() else None

    def from_descriptions() -> np.ndarray | None:
        out = np.full(n, np.nan)
        for i, d in enumerate(names):
            m = _DESC_NUMBER.search(d)
            if m:
                out[i] = float(m.group(1)) * unit_factor(m.group(2))
        return out if np.isfinite(out).all() else None

    def first(*candidates) -> np.ndarray:
        for get in candidates:
            v = get()
            if v is not None:
                return v.astype(np.float64)
        return np.full(n, np.nan)

    wl = first(lambda: from_items("wavelength"), lambda: from_imagery("CENTRAL_WAVELENGTH_UM"),
               lambda: from_envi("wavelength"), from_descriptions)
    fw = first(lambda: from_items("fwhm"), lambda: from_imagery("FWHM_UM"), lambda: from_envi("fwhm"))
    bbl_items = [t.get("bbl") for t in band_tags]
    if all(b not in (None, "") for b in bbl_items):
        bbl = np.array([_float(b) != 0 for b in bbl_items])
    elif len(parse_envi_list(envi.get("bbl"))) == n:
        bbl = np.array([_float(b) != 0 for b in parse_envi_list(envi.get("bbl"))])
    else:
        bbl = np.ones(n, bool)
    return BandMeta(wavelength=wl, fwhm=fw, bbl=bbl, names=names)


def write_band_meta(dst, wavelength: np.ndarray, fwhm: np.ndarray, bbl: np.ndarray, names: list[str]) -> None:
    """Write band names and every spelling of wavelength/fwhm/bbl to an open rasterio dataset ``dst``."""
    dst.update_tags(wavelength_units="Nanometers")
    for i in range(dst.count):
        band = i + 1
        items: dict[str, str] = {"bbl": str(int(bool(bbl[i])))}
        imagery: dict[str, str] = {}
        if np.isfinite(wavelength[i]):
            items["wavelength"] = repr(float(wavelength[i]))
            items["wavelength_units"] = "Nanometers"
            imagery["CENTRAL_WAVELENGTH_UM"] = repr(float(wavelength[i]) / 1e3)
        if np.isfinite(fwhm[i]):
            items["fwhm"] = repr(float(fwhm[i]))
            imagery["FWHM_UM"] = repr(float(fwhm[i]) / 1e3)
        dst.update_tags(band, **items)
        if imagery:
            dst.update_tags(band, ns="IMAGERY", **imagery)
        if names[i]:
            dst.set_band_description(band, names[i])
