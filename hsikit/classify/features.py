"""Spectral preprocessing (band set, standardisation, optional PCA) and patch extraction.

The same :class:`SpectralPrep` is fitted once on the training scenes and stored with the model, so a
scene of the same sensor is always transformed exactly as the training scenes were. Patches are
gathered with array indexing (training) or strided views (prediction), never by per-pixel loops.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
import xarray as xr

from hsikit.cube import BAND
from hsikit.errors import MetadataError, UsageError

#: Largest wavelength difference (nm) accepted between the model's bands and a scene's bands.
WAVELENGTH_TOLERANCE_NM = 1.0


def physical_values(cube: xr.DataArray) -> np.ndarray:
    """(band, y, x) float32 physical values of a whole cube, nodata as NaN."""
    values = np.asarray(cube.values).astype(np.float32)
    return to_physical(values, cube)


def to_physical(values: np.ndarray, cube: xr.DataArray, band_axis: int = 0) -> np.ndarray:
    """Stored values (..., band, y, x) -> float32 physical values (scale/offset), nodata/NaN -> NaN."""
    nd = cube.rio.nodata
    v = values.astype(np.float32, copy=True)
    if nd is not None and not np.isnan(nd):
        v[values == nd] = np.nan
    shape = [1] * v.ndim
    shape[band_axis] = -1
    scale = cube["scale"].values.astype(np.float32).reshape(shape)
    offset = cube["offset"].values.astype(np.float32).reshape(shape)
    if not (np.all(scale == 1) and np.all(offset == 0)):
        v = v * scale + offset
    return v


@dataclass
class SpectralPrep:
    """Band subset -> per-band standardisation -> optional PCA (whitened) of physical spectra.

    Attributes
    ----------
    n_bands
        Band count of the scenes this applies to.
    bands
        ``(k,)`` 0-based indices of the bands used (good, finite, not constant in training).
    wavelength
        ``(k,)`` wavelengths [nm] of those bands (NaN when unknown).
    mean, std
        ``(k,)`` statistics of the training pixels.
    components
        ``(m, k)`` PCA projection of the standardised spectra, rows scaled by 1/sqrt(eigenvalue)
        (whitened); None without PCA.
    """

    n_bands: int
    bands: np.ndarray
    wavelength: np.ndarray
    mean: np.ndarray
    std: np.ndarray
    components: np.ndarray | None = None

    @property
    def out_channels(self) -> int:
        """Features per pixel after the transform."""
        return int(self.components.shape[0]) if self.components is not None else int(self.bands.size)

    @classmethod
    def fit(cls, spectra: np.ndarray, *, good: np.ndarray, wavelength: np.ndarray, pca: int | None = None,
            max_samples: int = 200_000, seed: int = 0) -> SpectralPrep:
        """Fit on ``(N, B)`` physical spectra (NaN = missing) of the training scenes.

        ``good`` is the ``(B,)`` bad-band list (True = usable); ``pca`` the number of whitened
        principal components kept (None: standardised bands).
        """
        spectra = np.asarray(spectra, np.float32)
        n, b = spectra.shape
        if spectra.shape[0] > max_samples:
            spectra = spectra[np.random.default_rng(seed).choice(n, max_samples, replace=False)]
        finite = np.isfinite(spectra)
        with warnings.catch_warnings(), np.errstate(invalid="ignore"):
            warnings.simplefilter("ignore", RuntimeWarning)  # all-nodata bands: NaN statistics, dropped below
            frac = finite.mean(0)
            mean = np.nanmean(np.where(finite, spectra, np.nan), axis=0) if finite.any() else np.zeros(b)
            std = np.nanstd(np.where(finite, spectra, np.nan), axis=0)
        use = np.asarray(good, bool) & (frac > 0.5) & np.isfinite(std) & (std > 0)
        bands = np.flatnonzero(use)
        if bands.size == 0:
            raise UsageError("no usable band: every band is flagged bad, mostly nodata or constant in the training pixels")
        prep = cls(b, bands, np.asarray(wavelength, float)[bands], mean[bands].astype(np.float64), std[bands].astype(np.float64))
        if pca is not None:
            if not 1 <= pca <= bands.size:
                raise UsageError(f"PCA components must be in 1..{bands.size}, got {pca}")
            z = prep._standardise(spectra[:, bands])
            cov = np.cov(z, rowvar=False)
            evals, evecs = np.linalg.eigh(cov)
            order = np.argsort(evals)[::-1][:pca]
            evals = np.clip(evals[order], 1e-12, None)
            vecs = evecs[:, order]
            vecs *= np.sign(vecs[np.abs(vecs).argmax(0), np.arange(pca)])  # deterministic sign
            prep.components = (vecs / np.sqrt(evals)).T.astype(np.float64)
        return prep

    def _standardise(self, x: np.ndarray) -> np.ndarray:
        z = (x - self.mean.astype(np.float32)) / self.std.astype(np.float32)
        return np.where(np.isfinite(z), z, np.float32(0)).astype(np.float32)

    def transform(self, values: np.ndarray, band_axis: int = 0) -> np.ndarray:
        """Physical values with all ``n_bands`` bands on ``band_axis`` -> features on that axis, float32.

        Missing values (NaN) become the training mean (0 after standardisation).
        """
        if values.shape[band_axis] != self.n_bands:
            raise MetadataError(f"the model expects {self.n_bands} bands, the data have {values.shape[band_axis]}")
        x = np.moveaxis(np.take(values, self.bands, axis=band_axis), band_axis, -1)
        z = self._standardise(x)
        if self.components is not None:
            z = z @ self.components.T.astype(np.float32)
        return np.moveaxis(z, -1, band_axis).astype(np.float32, copy=False)

    def check_scene(self, cube: xr.DataArray) -> None:
        """Raise :class:`MetadataError` unless ``cube`` has the band set the model was fitted on."""
        n = cube.sizes[BAND]
        if n != self.n_bands:
            raise MetadataError(f"the model was fitted on {self.n_bands}-band scenes; this scene has {n} bands",
                                cube.attrs.get("source") or None)
        wl = np.asarray(cube["wavelength"].values, float)[self.bands]
        both = np.isfinite(wl) & np.isfinite(self.wavelength)
        if both.any():
            worst = float(np.max(np.abs(wl[both] - self.wavelength[both])))
            if worst > WAVELENGTH_TOLERANCE_NM:
                raise MetadataError(f"band wavelengths differ from the model's by up to {worst:.1f} nm (another sensor?)",
                                    cube.attrs.get("source") or None)

    def tensors(self) -> dict[str, np.ndarray]:
        out = {"prep.bands": self.bands.astype(np.int64), "prep.wavelength": self.wavelength.astype(np.float64),
               "prep.mean": self.mean, "prep.std": self.std, "prep.n_bands": np.array([self.n_bands], np.int64)}
        if self.components is not None:
            out["prep.components"] = self.components
        return out

    @classmethod
    def from_tensors(cls, t: dict[str, np.ndarray]) -> SpectralPrep:
        return cls(int(t["prep.n_bands"][0]), t["prep.bands"], t["prep.wavelength"], t["prep.mean"], t["prep.std"],
                   t.get("prep.components"))


def patch_offsets(patch: int) -> np.ndarray:
    """Offsets of a ``patch``-wide window around its pixel: ``arange(patch) - patch // 2``.

    Odd sizes are centred; even sizes put the pixel at index ``patch // 2`` (the MorpMamba
    notebook's 4 x 4 patch has it at (2, 2)).
    """
    return np.arange(patch) - patch // 2


def extract_patches(features: np.ndarray, rows: np.ndarray, cols: np.ndarray, patch: int) -> np.ndarray:
    """Patches ``(N, C, patch, patch)`` around pixels (rows, cols) of ``(C, H, W)`` features.

    The scene is extended by mirror reflection (as the tiled engine does at scene edges).
    """
    c, h, w = features.shape
    half = patch // 2
    if patch == 1:
        return features[:, rows, cols].T[:, :, None, None].copy()
    mode = "reflect" if min(h, w) > half else "edge"
    padded = np.pad(features, ((0, 0), (half, half), (half, half)), mode=mode)
    off = patch_offsets(patch)
    rr = (np.asarray(rows) + half)[:, None, None] + off[None, :, None]
    cc = (np.asarray(cols) + half)[:, None, None] + off[None, None, :]
    return np.ascontiguousarray(np.moveaxis(padded[:, rr, cc], 0, 1))


def tile_patches(tile: torch.Tensor, patch: int) -> tuple[torch.Tensor, int, int]:
    """All patches of a ``(C, H, W)`` tile as a strided view ``(H', W', C, patch, patch)``.

    Patch (i, j) belongs to tile pixel (i + patch // 2, j + patch // 2); H' = H - patch + 1.
    """
    v = tile.unfold(1, patch, 1).unfold(2, patch, 1)  # (C, H', W', p, p)
    return v.permute(1, 2, 0, 3, 4), v.shape[1], v.shape[2]
