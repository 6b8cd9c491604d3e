"""Band definitions of hyperspectral and multispectral sensors, shipped as package data.

Each sensor is a CSV file in ``hsikit/data/sensors/`` with ``#`` comment lines (which state where the
numbers come from) and the columns ``band, name, wavelength_nm, fwhm_nm, bbl``:

``enmap``
    EnMAP HSI, 224 bands, from the per-band tags of a real EnMAP L2A tile (DLR 2022). VNIR and SWIR
    overlap at 902-993 nm, so the wavelengths are in detector order, not sorted.
``sentinel2``
    Sentinel-2A MSI, 13 bands B01-B12 with B8A and B10, from ESA's published S2A SRF table
    (centre wavelength and bandwidth; the bandwidth is used as a Gaussian FWHM).
``aviris``
    AVIRIS-classic, 224 channels, from the USGS 1995 library convolved to AVIRIS (Cuprite demos).

Example
-------
>>> from hsikit.data.sensors import sensor_bands
>>> s2 = sensor_bands("sentinel2")
>>> str(s2.names[8]), float(s2.wavelength[8])
('B8A', 864.7)
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

import numpy as np

from hsikit.errors import UsageError

_ALIASES = {
    "enmap": "enmap",
    "enmap-hsi": "enmap",
    "sentinel2": "sentinel2",
    "sentinel-2": "sentinel2",
    "sentinel2a": "sentinel2",
    "s2": "sentinel2",
    "s2a": "sentinel2",
    "msi": "sentinel2",
    "aviris": "aviris",
    "aviris-classic": "aviris",
}


@dataclass(frozen=True)
class SensorBands:
    """Spectral band definition of one sensor.

    Attributes
    ----------
    name
        Canonical sensor key (``"enmap"``, ``"sentinel2"``, ``"aviris"``).
    wavelength
        Band centres in nm, shape (n_bands,), float64, in the sensor's band order.
    fwhm
        Full widths at half maximum in nm, shape (n_bands,), float64.
    bbl
        Bad-band list, shape (n_bands,), bool, True = good band.
    names
        Band names, shape (n_bands,), str (``"B001"``..., ``"B8A"``).
    source
        The comment lines of the CSV file: where the numbers come from.
    """

    name: str
    wavelength: np.ndarray
    fwhm: np.ndarray
    bbl: np.ndarray
    names: np.ndarray
    source: str = ""

    def __len__(self) -> int:
        return int(self.wavelength.size)


def available_sensors() -> list[str]:
    """Canonical names of the sensors shipped with hsikit, sorted (aliases are accepted too)."""
    folder = resources.files("hsikit.data").joinpath("sensors")
    return sorted(p.name[:-4] for p in folder.iterdir() if p.name.endswith(".csv"))


def _canonical(name: str) -> str:
    key = name.strip().lower().replace("_", "-").replace(" ", "-")
    key = _ALIASES.get(key, key)
    if key not in available_sensors():
        raise UsageError(f"unknown sensor {name!r} (available: {', '.join(available_sensors())})")
    return key


@lru_cache(maxsize=None)
def _load(key: str) -> SensorBands:
    text = resources.files("hsikit.data").joinpath("sensors", f"{key}.csv").read_text(encoding="utf-8")
    comments = [ln[1:].strip() for ln in text.splitlines() if ln.startswith("#")]
    body = [ln for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    rows = list(csv.DictReader(io.StringIO("\n".join(body))))
    wl = np.array([float(r["wavelength_nm"]) for r in rows])
    fw = np.array([float(r["fwhm_nm"]) for r in rows])
    bbl = np.array([int(r["bbl"]) != 0 for r in rows])
    names = np.array([r["name"] for r in rows], dtype=str)
    for arr in (wl, fw, bbl, names):
        arr.setflags(write=False)
    return SensorBands(key, wl, fw, bbl, names, "\n".join(comments))


def sensor_bands(name: str) -> SensorBands:
    """Band centres, FWHM, bad-band list and names of a sensor.

    Parameters
    ----------
    name
        ``"enmap"``, ``"sentinel2"`` (also ``"s2"``, ``"sentinel-2"``) or ``"aviris"``; case-insensitive.

    Returns
    -------
    SensorBands
        Read-only arrays of shape (n_bands,): ``wavelength`` and ``fwhm`` in nm, ``bbl`` (bool),
        ``names`` (str).

    Raises
    ------
    UsageError
        If the sensor is unknown.
    """
    return _load(_canonical(name))


def identify_sensor(wavelength: np.ndarray, tolerance_nm: float = 1.0) -> str | None:
    """The shipped sensor whose band centres match ``wavelength`` (nm), or None.

    A match needs every band centre within ``tolerance_nm`` of a band of that sensor and at least
    90% of the sensor's bands present (band subsets such as EnMAP's 202 torchgeo bands match).
    """
    wl = np.asarray(wavelength, float)
    if wl.size == 0 or not np.isfinite(wl).all():
        return None
    for key in available_sensors():
        ref = _load(key).wavelength
        nearest = np.abs(wl[:, None] - ref[None, :]).min(axis=1)
        if (nearest <= tolerance_nm).all() and wl.size >= 0.9 * ref.size and wl.size <= ref.size:
            return key
    return None
