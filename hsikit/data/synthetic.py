"""Synthetic hyperspectral scenes from real spectra: abundance maps, linear mixing, sensor noise.

The generator is deliberately general; its parts can be used alone:

- :func:`abundance_field`: spatially structured abundance maps on the simplex (K, H, W).
- :func:`load_earthlib` / :func:`select_endmembers`: real endmember spectra from the earthlib library
  (measured soils, urban materials and NPV; PROSAIL-simulated canopies); :func:`load_usgs_library`: the
  USGS 1995 mineral library convolved to AVIRIS (498 minerals, class ``mineral``).
- :func:`~hsikit.data.spectral.resample_spectra`: library spectra to any sensor's Gaussian bands.
- :func:`linear_mixture`: the linear mixing model ``Y = E A``; :func:`bilinear_mixture`: the Fan
  bilinear model (second-order interactions).
- :func:`add_sensor_noise`: band- and signal-dependent (Poisson-Gaussian) noise.
- :func:`synthetic_scene`: all of the above as a cube of the :mod:`hsikit.cube` model.

Everything takes a ``seed`` (or a :class:`numpy.random.Generator`) and is reproducible across runs.
Reflectance is unitless (0-1); wavelengths and FWHM are in nm.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import xarray as xr

from hsikit.cube import make_cube
from hsikit.data.sensors import SensorBands, sensor_bands
from hsikit.data.spectral import resample_spectra
from hsikit.errors import InputError, MetadataError, UsageError

SeedLike = int | np.random.Generator | np.random.SeedSequence | None

#: Default endmember classes of :func:`select_endmembers` (matched against earthlib LEVEL_1..3).
DEFAULT_CLASSES = ("vegetation", "soil", "impervious", "npv")

#: Columns of earthlib's spectra.csv used to match class names.
EARTHLIB_LEVELS = ("LEVEL_1", "LEVEL_2", "LEVEL_3")


def _rng(seed: SeedLike) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


# ----------------------------------------------------------------------------------- abundances


def gaussian_random_field(height: int, width: int, scale: float, rng: np.random.Generator) -> np.ndarray:
    """Smooth Gaussian random field of zero mean and unit variance, shape (height, width).

    White noise filtered with a Gaussian kernel of standard deviation ``scale`` pixels (in the Fourier
    domain: transfer function :math:`\\exp(-2\\pi^2 s^2 |f|^2)`, f in cycles/pixel). The field is drawn
    on a canvas padded by ``3 * scale`` and cropped, so it does not wrap around; it is then
    standardised over the canvas. ``scale`` <= 0 gives white noise.
    """
    pad = int(np.ceil(3 * max(scale, 0.0)))
    hh, ww = height + 2 * pad, width + 2 * pad
    noise = rng.standard_normal((hh, ww))
    if scale > 0:
        fy = np.fft.fftfreq(hh)[:, None]
        fx = np.fft.rfftfreq(ww)[None, :]
        transfer = np.exp(-2.0 * np.pi**2 * scale**2 * (fx**2 + fy**2))
        noise = np.fft.irfft2(np.fft.rfft2(noise) * transfer, s=(hh, ww))
    noise = (noise - noise.mean()) / (noise.std() or 1.0)
    return noise[pad : pad + height, pad : pad + width]


def abundance_field(
    height: int,
    width: int,
    n_endmembers: int,
    *,
    scales: Sequence[float] = (4, 16, 64),
    scale_weights: Sequence[float] | None = None,
    concentration: float = 4.0,
    proportions: Sequence[float] | None = None,
    seed: SeedLike = None,
) -> np.ndarray:
    """Spatially structured abundance maps on the probability simplex.

    For each endmember ``k`` a latent field is the weighted sum of unit-variance Gaussian random
    fields at several spatial ``scales`` (:func:`gaussian_random_field`), rescaled to unit variance:
    :math:`z_k = \\sum_s w_s z_{k,s} / \\sqrt{\\sum_s w_s^2}`. The abundances are its softmax,

    .. math::

        a_k(y, x) = \\frac{\\exp(c\\, z_k(y, x) + \\log p_k)}{\\sum_m \\exp(c\\, z_m(y, x) + \\log p_m)},

    with concentration :math:`c` (inverse temperature) and prior proportions :math:`p`. Large ``c``
    gives patches of nearly pure pixels with sharp mixed edges; ``c`` near 0 gives well-mixed pixels
    close to ``p``.

    Parameters
    ----------
    height, width
        Map size in pixels.
    n_endmembers
        Number of endmembers K (>= 1).
    scales
        Correlation lengths of the component fields in pixels (Gaussian kernel sigma).
    scale_weights
        Weight of each scale (default: equal).
    concentration
        Inverse softmax temperature c >= 0 (dimensionless; the latent fields have unit variance).
    proportions
        Prior mixing proportions p (K positive values, normalised; default uniform).
    seed
        Seed or generator.

    Returns
    -------
    numpy.ndarray
        Abundances of shape (K, height, width), float64, non-negative, summing to 1 over K.
    """
    if n_endmembers < 1:
        raise UsageError(f"n_endmembers must be >= 1, got {n_endmembers}")
    if concentration < 0:
        raise UsageError(f"concentration must be >= 0, got {concentration}")
    rng = _rng(seed)
    scales = [float(s) for s in scales] or [0.0]
    weights = np.ones(len(scales)) if scale_weights is None else np.asarray(scale_weights, float)
    if weights.size != len(scales):
        raise UsageError(f"{weights.size} scale_weights for {len(scales)} scales")
    if proportions is None:
        log_p = np.zeros(n_endmembers)
    else:
        p = np.asarray(proportions, float)
        if p.size != n_endmembers or np.any(p <= 0):
            raise UsageError(f"proportions must be {n_endmembers} positive values")
        log_p = np.log(p / p.sum())
    norm = np.sqrt(np.sum(weights**2)) or 1.0
    logits = np.empty((n_endmembers, height, width))
    for k in range(n_endmembers):
        z = sum(w * gaussian_random_field(height, width, s, rng) for w, s in zip(weights, scales))
        logits[k] = concentration * z / norm + log_p[k]
    logits -= logits.max(axis=0, keepdims=True)
    expo = np.exp(logits)
    return expo / expo.sum(axis=0, keepdims=True)


def linear_mixture(endmembers: Any, abundances: Any) -> Any:
    """Linear mixing model :math:`Y = E A` per pixel.

    Parameters
    ----------
    endmembers
        E, shape (L, K): one endmember spectrum per column (numpy or torch).
    abundances
        A, shape (K, H, W) (or (K, N) for a pixel list).

    Returns
    -------
    numpy.ndarray or torch.Tensor
        Shape (L, H, W) (or (L, N)): ``Y[l, y, x] = sum_k E[l, k] A[k, y, x]``.
    """
    if endmembers.shape[1] != abundances.shape[0]:
        raise UsageError(f"{endmembers.shape[1]} endmembers but {abundances.shape[0]} abundance maps")
    flat = abundances.reshape(abundances.shape[0], -1)
    return (endmembers @ flat).reshape((endmembers.shape[0], *abundances.shape[1:]))


def bilinear_mixture(endmembers: Any, abundances: Any, gamma: Any = 1.0) -> Any:
    """Fan bilinear mixing model: linear mixing plus second-order interaction terms.

    .. math::

        y = \\sum_k a_k e_k + \\sum_{i<j} \\gamma_{ij}\\, a_i a_j\\, (e_i \\odot e_j)

    (Fan et al. 2009; :math:`\\gamma = 1`, the generalised bilinear model of Halimi et al. 2011 with
    :math:`\\gamma_{ij} \\in [0, 1]`). ``endmembers`` E (L, K), ``abundances`` A (K, H, W) or (K, N);
    ``gamma`` a scalar or a (K, K) matrix (upper triangle used). Returns (L, H, W) / (L, N) float64.
    """
    e = np.asarray(endmembers, float)
    a = np.asarray(abundances, float)
    k = e.shape[1]
    if a.shape[0] != k:
        raise UsageError(f"{k} endmembers but {a.shape[0]} abundance maps")
    g = np.broadcast_to(np.asarray(gamma, float), (k, k))
    flat = a.reshape(k, -1)
    y = e @ flat
    for i in range(k):
        for j in range(i + 1, k):
            y += g[i, j] * (e[:, i] * e[:, j])[:, None] * (flat[i] * flat[j])[None, :]
    return y.reshape((e.shape[0], *a.shape[1:]))


# ------------------------------------------------------------------------------------ earthlib


def earthlib_data_dir() -> Path:
    """Folder with earthlib's ``spectra.sli`` / ``spectra.sli.hdr`` / ``spectra.csv`` (package not imported)."""
    spec = importlib.util.find_spec("earthlib")
    if spec is None or not spec.submodule_search_locations:
        raise InputError("the earthlib package is not installed (pip install 'hsikit[samples]' or 'earthlib>=1.1')")
    return Path(next(iter(spec.submodule_search_locations))) / "data"


@lru_cache(maxsize=4)
def _read_earthlib(folder: str) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    from hsikit.io.envi import read_spectral_library

    root = Path(folder)
    sli, table = root / "spectra.sli", root / "spectra.csv"
    for p in (sli, table):
        if not p.exists():
            raise InputError("earthlib library file not found", p)
    lib = read_spectral_library(sli)
    meta = pd.read_csv(table)
    if len(meta) != lib.shape[0]:
        raise MetadataError(f"spectra.csv has {len(meta)} rows for {lib.shape[0]} spectra", table)
    names = lib["spectrum_name"].values.astype(str)
    agree = np.mean(names == meta["NAME"].astype(str).to_numpy())
    if agree < 0.99:  # rows align by position; earthlib 1.1.0 has one spelling difference (burncham)
        raise MetadataError(f"spectra.csv rows do not match the library's spectra names ({agree:.1%} agree)", table)
    meta.insert(0, "row", np.arange(len(meta)))
    meta["sli_name"] = names
    values = np.asarray(lib.values, dtype=np.float64)
    wavelength = np.asarray(lib["wavelength"].values, dtype=np.float64)
    for arr in (values, wavelength):
        arr.setflags(write=False)
    return values, wavelength, meta


def class_mask(metadata: pd.DataFrame, name: str) -> np.ndarray:
    """Rows of an earthlib table whose LEVEL_1, LEVEL_2 or LEVEL_3 equals ``name`` (case-insensitive).

    Examples of names: ``impervious``/``pervious`` (level 1); ``built``, ``bare``, ``vegetation``,
    ``npv``, ``burned`` (level 2); ``soil``, ``sand``, ``road``, ``asphalt``, ``comp_shingle``,
    ``litter``, ``bark``, ``canopy`` (level 3).
    """
    key = name.strip().lower()
    mask = np.zeros(len(metadata), bool)
    for col in EARTHLIB_LEVELS:
        mask |= metadata[col].astype(str).str.lower().to_numpy() == key
    return mask


def load_earthlib(
    classes: Sequence[str] | None = None, *, path: str | Path | None = None
) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """The earthlib spectral library (MIT; Anderson et al.) as arrays and a metadata table.

    Parameters
    ----------
    classes
        Keep only spectra of these classes (see :func:`class_mask`); None keeps all 7261.
    path
        Folder holding ``spectra.sli`` (+ ``.sli.hdr``) and ``spectra.csv``; default: the installed
        earthlib package's ``data/`` folder.

    Returns
    -------
    spectra
        Reflectance, shape (N, 180), float64 (a copy).
    wavelength
        Band centres in nm, shape (180,): 400-2450 nm in 10 nm steps, without 1360-1450 and
        1800-1950 nm (water vapour).
    metadata
        pandas DataFrame, one row per spectrum: ``row`` (index in the full library), the columns of
        ``spectra.csv`` (NAME, LEVEL_1..LEVEL_4, LAT, LON, SOURCE, NOTES) and ``sli_name``.
    """
    folder = Path(path) if path is not None else earthlib_data_dir()
    values, wavelength, meta = _read_earthlib(str(folder.resolve()))
    if classes is None:
        keep = np.ones(len(meta), bool)
    else:
        keep = np.zeros(len(meta), bool)
        for c in classes:
            m = class_mask(meta, c)
            if not m.any():
                raise UsageError(f"no earthlib spectra of class {c!r}")
            keep |= m
    return values[keep].copy(), wavelength.copy(), meta[keep].reset_index(drop=True)


def load_usgs_library(path: str | Path) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """The USGS 1995 mineral library convolved to AVIRIS (``USGS_1995_Library.mat``, SUnSAL/Cuprite demos).

    The file's ``datalib`` is (224, 501): column 0 the wavelength in um, 1 the resolution in um, 2 the
    channel number (with fill values), columns 3-500 the 498 mineral spectra; ``names`` (501, 29) uint8
    holds the names row by row.

    Returns
    -------
    spectra
        Reflectance (498, 224), float64.
    wavelength
        Band centres in nm (224,), 383-2508 nm.
    metadata
        One row per spectrum: ``row``, ``NAME`` (e.g. ``"Alunite GDS84 Na03"``), ``LEVEL_1`` =
        ``"mineral"``, ``LEVEL_2`` = the mineral (first word, lower case), ``LEVEL_3`` = the full name in
        lower case, and ``fwhm_nm`` (the library's resolution; a few entries are not minerals, e.g.
        ``Lawn_Grass``); usable with :func:`select_endmembers`
        (``classes=("mineral",)``) and :func:`synthetic_scene` (``library=``).
    """
    from hsikit.io.matlab import read_matlab_array

    lib = np.asarray(read_matlab_array(path, "datalib"), float)
    raw = np.asarray(read_matlab_array(path, "names"))
    if lib.ndim != 2 or lib.shape[1] < 4:
        raise MetadataError(f"datalib has shape {lib.shape}, expected (bands, 3 + spectra)", path)
    names = ["".join(chr(int(c)) for c in row).strip() for row in raw] if raw.dtype.kind in "ui" else [str(r).strip() for r in raw]
    if len(names) != lib.shape[1]:
        raise MetadataError(f"{len(names)} names for {lib.shape[1]} datalib columns", path)
    spectra = lib[:, 3:].T.copy()
    if not np.isfinite(spectra).all() or spectra.min() < -1e3:
        raise MetadataError("mineral spectra hold fill values", path)
    names = names[3:]
    meta = pd.DataFrame({
        "row": np.arange(len(names)), "NAME": names, "LEVEL_1": "mineral",
        "LEVEL_2": [n.split()[0].lower() if n else "" for n in names], "LEVEL_3": [n.lower() for n in names],
        "fwhm_nm": np.median(lib[:, 1]) * 1000.0,
    })
    return spectra, lib[:, 0] * 1000.0, meta


def spectral_angle(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Spectral angle in radians between the rows of ``a`` (n, L) and ``b`` (m, L); shape (n, m)."""
    an = a / np.linalg.norm(a, axis=1, keepdims=True)
    bn = b / np.linalg.norm(b, axis=1, keepdims=True)
    return np.arccos(np.clip(an @ bn.T, -1.0, 1.0))


@dataclass
class Endmembers:
    """Selected endmembers: spectra (L, K) at the library wavelengths and their metadata rows."""

    spectra: np.ndarray
    wavelength: np.ndarray
    table: pd.DataFrame

    @property
    def names(self) -> list[str]:
        """``"<class>:<spectrum name>"`` per endmember."""
        return [f"{c}:{n}" for c, n in zip(self.table["class"], self.table["NAME"])]


def select_endmembers(
    spectra: np.ndarray,
    metadata: pd.DataFrame,
    wavelength: np.ndarray,
    classes: Sequence[str] = DEFAULT_CLASSES,
    *,
    n_endmembers: int | None = None,
    seed: SeedLike = 0,
    brightness_quantiles: tuple[float, float] = (0.1, 0.9),
    max_candidates: int = 300,
) -> Endmembers:
    """Pick a few typical but mutually distinct library spectra, one class after another.

    Endmember ``k`` is drawn from class ``classes[k % len(classes)]``. Candidates are the class's
    spectra with all values in (0.002, 1] whose mean reflectance lies between the class's
    ``brightness_quantiles`` (typical, not extreme, spectra), at most ``max_candidates`` of them
    drawn at random. The first endmember is a random candidate; each next one is the candidate
    whose smallest spectral angle to the endmembers already chosen is largest (max-min diversity),
    which keeps the endmember matrix well conditioned.

    Parameters
    ----------
    spectra, metadata, wavelength
        As returned by :func:`load_earthlib`: (N, L) reflectance, its table, (L,) nm.
    classes
        Class names (see :func:`class_mask`); default vegetation, soil, impervious, npv.
    n_endmembers
        Number K of endmembers (default ``len(classes)``).
    seed
        Seed or generator.

    Returns
    -------
    Endmembers
        ``spectra`` of shape (L, K) (one column per endmember), ``wavelength`` (L,) in nm and
        ``table`` (K rows of ``metadata`` plus a ``class`` column).
    """
    if not classes:
        raise UsageError("select_endmembers needs at least one class")
    k_total = len(classes) if n_endmembers is None else int(n_endmembers)
    if k_total < 1:
        raise UsageError(f"n_endmembers must be >= 1, got {k_total}")
    rng = _rng(seed)
    spectra = np.asarray(spectra, float)
    valid = np.all((spectra > 0.002) & (spectra <= 1.0), axis=1)
    pools: dict[str, np.ndarray] = {}
    for c in dict.fromkeys(classes):
        idx = np.flatnonzero(class_mask(metadata, c) & valid)
        if idx.size == 0:
            raise UsageError(f"no usable earthlib spectra of class {c!r}")
        bright = spectra[idx].mean(axis=1)
        lo, hi = np.quantile(bright, brightness_quantiles)
        typical = idx[(bright >= lo) & (bright <= hi)]
        idx = typical if typical.size else idx
        if idx.size > max_candidates:
            idx = np.sort(rng.choice(idx, max_candidates, replace=False))
        pools[c] = idx
    chosen: list[int] = []
    labels: list[str] = []
    for k in range(k_total):
        c = classes[k % len(classes)]
        pool = np.setdiff1d(pools[c], chosen)
        if pool.size == 0:
            raise UsageError(f"class {c!r} has too few spectra for {k_total} endmembers")
        if not chosen:
            pick = int(rng.choice(pool))
        else:
            angles = spectral_angle(spectra[pool], spectra[chosen]).min(axis=1)
            pick = int(pool[np.argmax(angles)])
        chosen.append(pick)
        labels.append(c)
    table = metadata.iloc[chosen].reset_index(drop=True).copy()
    table.insert(0, "class", labels)
    return Endmembers(spectra[chosen].T.copy(), np.asarray(wavelength, float).copy(), table)


# ---------------------------------------------------------------------------------------- noise

# Absorption features of a mid-latitude summer atmosphere (centre nm, depth 0-1, Gaussian sigma nm):
# O2-A, H2O 720/820/940/1130/1400/1900, O2 1270, CO2 2010/2060. A coarse proxy, not radiative transfer.
_ABSORPTION = (
    (687.0, 0.15, 3.0), (720.0, 0.15, 8.0), (761.0, 0.6, 3.5), (820.0, 0.15, 10.0), (940.0, 0.55, 22.0),
    (1135.0, 0.55, 25.0), (1268.0, 0.1, 6.0), (1390.0, 0.98, 45.0), (1880.0, 0.98, 55.0),
    (2010.0, 0.3, 9.0), (2060.0, 0.2, 9.0), (2500.0, 0.5, 60.0),
)


def atmospheric_gain(wavelength: Any) -> np.ndarray:
    """Relative at-sensor signal per unit surface reflectance, shape (n_bands,), in (0, 1].

    Product of the solar photon flux (a 5778 K blackbody's photon radiance, normalised to its
    maximum, :math:`\\propto \\lambda^{-4} / (e^{hc/\\lambda k T} - 1)`) and a two-way transmittance proxy
    :math:`\\prod_f (1 - d_f \\exp(-(\\lambda-c_f)^2 / 2 w_f^2))^2` over the main absorption features.
    Used to make sensor noise larger in absorption bands and the SWIR. Floor 0.01.
    """
    wl = np.asarray(wavelength, float)
    lam = wl * 1e-9
    c2 = 6.62607015e-34 * 2.99792458e8 / (1.380649e-23 * 5778.0)
    photon = lam**-4 / np.expm1(c2 / lam)
    ref = np.linspace(300e-9, 2600e-9, 2301)
    photon = photon / (ref**-4 / np.expm1(c2 / ref)).max()
    trans = np.ones_like(wl)
    for centre, depth, width in _ABSORPTION:
        trans *= 1.0 - depth * np.exp(-0.5 * ((wl - centre) / width) ** 2)
    return np.clip(photon * trans**2, 0.01, 1.0)


def noise_sigma_model(
    reflectance: Any, wavelength: Any, *, read_sigma: float = 3e-4, shot_sigma: float = 1e-3, band_axis: int = 0
) -> np.ndarray:
    """Standard deviation of sensor noise in reflectance units (Poisson-Gaussian model).

    .. math::

        \\sigma_b(\\rho) = \\frac{\\sqrt{\\sigma_r^2 + \\sigma_s^2\\, g_b\\, \\max(\\rho, 0)}}{g_b}

    with the band gain :math:`g_b` of :func:`atmospheric_gain`: signal-independent read/dark noise
    :math:`\\sigma_r` plus photon noise whose variance grows with the signal :math:`g_b \\rho`, both
    referred back to reflectance. With the defaults, at 30 % reflectance the SNR is about 450 at
    500-550 nm, 200 at 1650 nm and 130 at 2200 nm (EnMAP-like), and 40-130 in absorption bands.

    Parameters
    ----------
    reflectance
        Noise-free reflectance, any shape with the band axis ``band_axis``.
    wavelength
        Band centres in nm, shape (n_bands,).
    read_sigma, shot_sigma
        :math:`\\sigma_r` and :math:`\\sigma_s` (reflectance units at unit gain).

    Returns
    -------
    numpy.ndarray
        Same shape as ``reflectance``, float64.
    """
    rho = np.moveaxis(np.asarray(reflectance, float), band_axis, -1)
    g = atmospheric_gain(wavelength)
    sigma = np.sqrt(read_sigma**2 + shot_sigma**2 * g * np.maximum(rho, 0.0)) / g
    return np.moveaxis(sigma, -1, band_axis)


def add_sensor_noise(
    reflectance: np.ndarray,
    wavelength: Any,
    *,
    read_sigma: float = 3e-4,
    shot_sigma: float = 1e-3,
    band_axis: int = 0,
    seed: SeedLike = None,
) -> np.ndarray:
    """``reflectance`` plus zero-mean Gaussian noise of :func:`noise_sigma_model`'s standard deviation.

    Independent between pixels and bands (no striping or spectral correlation). Returns float64.
    """
    rng = _rng(seed)
    sigma = noise_sigma_model(reflectance, wavelength, read_sigma=read_sigma, shot_sigma=shot_sigma, band_axis=band_axis)
    return np.asarray(reflectance, float) + sigma * rng.standard_normal(sigma.shape)


# ---------------------------------------------------------------------------------------- scene


def _bands(sensor: str | SensorBands) -> SensorBands:
    return sensor if isinstance(sensor, SensorBands) else sensor_bands(sensor)


def synthetic_scene(
    sensor: str | SensorBands = "enmap",
    height: int = 64,
    width: int = 64,
    n_endmembers: int = 4,
    noise_sigma: float = 0.0,
    seed: int | None = 0,
    *,
    noise_model: str = "gaussian",
    shot_sigma: float | None = None,
    classes: Sequence[str] = DEFAULT_CLASSES,
    scales: Sequence[float] = (4, 16, 64),
    concentration: float = 4.0,
    proportions: Sequence[float] | None = None,
    library: tuple[np.ndarray, np.ndarray, pd.DataFrame] | None = None,
    selected: Endmembers | None = None,
    dtype: Any = np.float64,
    mixing: str = "linear",
    bilinear_gamma: float = 1.0,
    **cube_kwargs: Any,
) -> tuple[xr.DataArray, np.ndarray, np.ndarray]:
    """A linear-mixture scene from earthlib endmembers, resampled to a sensor's bands.

    Steps: pick endmembers (:func:`select_endmembers`), resample them with Gaussian SRFs to the
    sensor (:func:`~hsikit.data.spectral.resample_spectra`; library gaps are linearly
    interpolated), draw abundances (:func:`abundance_field`), mix (:func:`linear_mixture`) and add
    noise. Independent child seeds drive endmembers, abundances and noise, so changing the noise
    leaves endmembers and abundances unchanged.

    Parameters
    ----------
    sensor
        Sensor name (:func:`~hsikit.data.sensors.available_sensors`) or a :class:`SensorBands`.
    height, width
        Scene size in pixels.
    n_endmembers
        Number of endmembers K.
    noise_sigma
        ``noise_model="gaussian"``: standard deviation of white Gaussian noise (reflectance units).
        ``"sensor"``: read-noise term :math:`\\sigma_r` of :func:`noise_sigma_model`. 0: noise-free.
    seed
        Seed (int or None for fresh entropy).
    noise_model
        ``"gaussian"`` (i.i.d.) or ``"sensor"`` (band- and signal-dependent, :func:`add_sensor_noise`).
    shot_sigma
        Photon-noise term for ``"sensor"`` (default ``3 * noise_sigma``).
    classes, scales, concentration, proportions
        Passed to :func:`select_endmembers` and :func:`abundance_field`.
    library
        ``(spectra, wavelength, metadata)`` as from :func:`load_earthlib` (default: load it).
    selected
        Endmembers already chosen with :func:`select_endmembers` (then ``classes`` and ``library``
        are not used; ``n_endmembers`` must match).
    dtype
        dtype of the cube values.
    mixing
        ``"linear"`` (:func:`linear_mixture`) or ``"bilinear"`` (:func:`bilinear_mixture` with
        ``bilinear_gamma``; the cube is then no longer ``E A``).
    **cube_kwargs
        Extra arguments of :func:`hsikit.cube.make_cube` (``crs``, ``transform``, ``acquisition_time``, ...).

    Returns
    -------
    cube
        Reflectance cube (band, y, x) with the sensor's wavelength/fwhm/bbl/band names, attrs
        ``sensor`` = ``"<sensor> (simulated from earthlib spectra)"`` unless given. Bands outside
        the library's 400-2450 nm are extrapolated as constants and flagged bad in ``bbl`` (their
        1-based numbers in attr ``extrapolated_bands``).
    endmembers
        E, shape (L, K), float64 reflectance at the sensor's bands.
    abundances
        A, shape (K, height, width), float64 on the simplex; the noise-free cube is ``E A``.
    """
    if noise_model not in ("gaussian", "sensor"):
        raise UsageError(f"noise_model must be 'gaussian' or 'sensor', got {noise_model!r}")
    if mixing not in ("linear", "bilinear"):
        raise UsageError(f"mixing must be 'linear' or 'bilinear', got {mixing!r}")
    if noise_sigma < 0:
        raise UsageError(f"noise_sigma must be >= 0, got {noise_sigma}")
    bands = _bands(sensor)
    seq_em, seq_ab, seq_noise = np.random.SeedSequence(seed).spawn(3)
    if selected is None:
        spectra, wl, meta = library if library is not None else load_earthlib()
        em = select_endmembers(spectra, meta, wl, classes, n_endmembers=n_endmembers, seed=np.random.default_rng(seq_em))
    else:
        em = selected
        if em.spectra.shape[1] != n_endmembers:
            raise UsageError(f"{em.spectra.shape[1]} selected endmembers but n_endmembers={n_endmembers}")
    wl = em.wavelength
    endmembers = resample_spectra(em.spectra, wl, bands.wavelength, bands.fwhm, axis=0, on_missing="nan")
    outside = np.isnan(endmembers).any(axis=1)  # bands beyond the library's 400-2450 nm
    for b in np.flatnonzero(outside):  # constant extrapolation from the nearest library sample
        endmembers[b] = [np.interp(bands.wavelength[b], wl, em.spectra[:, k]) for k in range(em.spectra.shape[1])]
    endmembers = np.clip(endmembers, 0.0, None)
    abundances = abundance_field(
        height, width, n_endmembers, scales=scales, concentration=concentration, proportions=proportions,
        seed=np.random.default_rng(seq_ab),
    )
    clean = linear_mixture(endmembers, abundances) if mixing == "linear" else bilinear_mixture(endmembers, abundances, bilinear_gamma)
    if noise_sigma > 0:
        noise_rng = np.random.default_rng(seq_noise)
        if noise_model == "gaussian":
            clean = clean + noise_sigma * noise_rng.standard_normal(clean.shape)
        else:
            shot = 3 * noise_sigma if shot_sigma is None else shot_sigma
            clean = add_sensor_noise(clean, bands.wavelength, read_sigma=noise_sigma, shot_sigma=shot, seed=noise_rng)
    cube_kwargs.setdefault("sensor", f"{bands.name} (simulated from earthlib spectra)")
    cube = make_cube(
        clean.astype(dtype, copy=False), wavelength=bands.wavelength, fwhm=bands.fwhm, bbl=bands.bbl & ~outside,
        band_names=list(bands.names), **cube_kwargs,
    )
    cube.attrs["endmembers"] = ", ".join(em.names)
    cube.attrs["mixing"] = mixing if mixing == "linear" else f"bilinear (Fan, gamma={bilinear_gamma:g})"
    if outside.any():
        cube.attrs["extrapolated_bands"] = ",".join(str(int(b) + 1) for b in np.flatnonzero(outside))
    return cube, endmembers, abundances
