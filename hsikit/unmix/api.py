"""``hsikit.unmix``: endmembers + abundance maps of a scene, and the files a user keeps.

The one place that ties the unmixing methods to cubes and files: open the scene (any reader), keep
the good bands, take the valid pixels, estimate ``K`` when asked (``"auto"``), run the method, wrap
the results as xarray objects with the scene's grid, and optionally write

* ``OUT`` (GeoTIFF/COG): one band per endmember named after it, plus a last band ``residual_rmse``
  (per-pixel RMSE of ``y - E a`` over the bands used, in data units); nodata pixels of the input are
  NaN in every band; georeference from the input; written atomically;
* ``<OUT stem>_endmembers.csv``: wavelength (nm) and one column per endmember;
* ``<OUT stem>_endmembers.png``: a plot of the endmember spectra.

Methods (``method=``):

``vca-fcls``, ``nfindr-fcls``, ``atgp-fcls``, ``sivm-fcls`` (and ``-nnls`` / ``-ucls``)
    Extract ``K`` endmembers from the pixels, then invert every pixel (batched FCLS by default).
``rrlbs``
    The robust l2,1 + learned-sparsity blind method (:mod:`hsikit.unmix.robust_l21`).
``autoencoder``
    The per-scene unmixing autoencoder (:mod:`hsikit.unmix.autoencoder`).
``sunsal``
    Sparse regression on a spectral ``library`` (ADMM, :func:`~hsikit.unmix.abundances.sunsal`);
    every library spectrum becomes an abundance band.
``fcls``, ``nnls``, ``ucls``
    Supervised: the ``library`` spectra are the endmembers.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from hsikit.cube import BAND, X, Y
from hsikit.errors import MetadataError, UsageError

BLIND = ("rrlbs", "autoencoder")
LIBRARY = ("sunsal", "fcls", "nnls", "ucls")
SOLVERS = ("fcls", "nnls", "ucls")


def methods() -> list[str]:
    """All accepted ``method`` names."""
    from hsikit.unmix.endmembers import EXTRACTORS

    return [f"{e}-{s}" for e in EXTRACTORS for s in SOLVERS] + list(BLIND) + list(LIBRARY)


@dataclass
class UnmixResult:
    """What :func:`unmix` returns (unpacks as ``abundances, endmembers = unmix(...)``).

    Attributes
    ----------
    abundances
        ``(endmember, y, x)`` float32 DataArray with the scene's grid and CRS; NaN at nodata pixels.
    endmembers
        ``(band, endmember)`` float64 DataArray, coords ``wavelength`` (nm) on ``band``.
    residual_rmse
        ``(y, x)`` per-pixel RMSE of the reconstruction over the bands used.
    info
        Method, K and how it was chosen, bands used, timings, method details (RRLbS iterations, ...).
    guidance
        ``(y, x)`` RRLbS guidance map (None for other methods).
    paths
        Files written (``abundances``, ``endmembers_csv``, ``endmembers_png``).
    """

    abundances: xr.DataArray
    endmembers: xr.DataArray
    residual_rmse: xr.DataArray
    info: dict[str, Any] = field(default_factory=dict)
    guidance: xr.DataArray | None = None
    paths: dict[str, Path] = field(default_factory=dict)

    def __iter__(self):
        return iter((self.abundances, self.endmembers))


# --------------------------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------------------------

def _open(cube_or_path: Any) -> xr.DataArray:
    import hsikit

    if isinstance(cube_or_path, xr.DataArray):
        cube = cube_or_path
    elif isinstance(cube_or_path, (str, os.PathLike)):
        cube = hsikit.open(cube_or_path)
    else:
        raise UsageError(f"unmix needs a cube (xarray.DataArray) or a path, got {type(cube_or_path).__name__}")
    if cube.dims != (BAND, Y, X):
        raise UsageError(f"unmix needs a (band, y, x) cube, got dims {cube.dims}")
    return cube


def _scene_matrix(cube: xr.DataArray) -> tuple[xr.DataArray, np.ndarray, np.ndarray]:
    """Good bands in physical units -> (cube, Y (L, N_valid) float64, valid mask (H, W))."""
    from hsikit.cube import to_reflectance

    if "bbl" in cube.coords and not bool(np.all(cube["bbl"].values)):
        cube = cube.isel({BAND: np.flatnonzero(cube["bbl"].values)})
    phys = to_reflectance(cube, np.float64) if "scale" in cube.coords else cube.astype(np.float64)
    values = np.asarray(phys.values, np.float64)
    valid = np.isfinite(values).all(0)
    nd = cube.rio.nodata
    if nd is not None and not np.isnan(nd):
        valid &= ~(np.asarray(cube.values) == nd).any(0)
    if not valid.any():
        raise UsageError("the scene has no valid pixel (all nodata or NaN)")
    return cube, values[:, valid], valid


def _library(library: Any, cube: xr.DataArray) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Library resampled to the scene's bands -> (D (L_used, M), names, band mask (L,))."""
    from hsikit.cube import wavelengths_known
    from hsikit.data.spectral import resample_spectra
    from hsikit.io.envi import read_spectral_library

    lib = library if isinstance(library, xr.DataArray) else read_spectral_library(library)
    where = "" if isinstance(library, xr.DataArray) else f"{library}: "
    if not wavelengths_known(cube):
        raise MetadataError("the scene has no wavelengths, so a spectral library cannot be matched to its bands; "
                            "give the scene wavelengths (e.g. hsikit.open(..., wavelength=...))",
                            cube.attrs.get("source") or None)
    lw = np.asarray(lib["wavelength"].values, float)
    if not np.isfinite(lw).all():
        raise MetadataError(f"{where}the library has no (or incomplete) wavelengths")
    order = np.argsort(lw)
    lw = lw[order]
    spectra = np.asarray(lib.values, float)[:, order]
    names = [str(s) for s in lib["spectrum_name"].values] if "spectrum_name" in lib.coords else [f"spectrum_{i + 1}" for i in range(spectra.shape[0])]
    sw = np.asarray(cube["wavelength"].values, float)
    fw = np.nan_to_num(np.asarray(cube["fwhm"].values, float), nan=0.0) if "fwhm" in cube.coords else np.zeros_like(sw)
    inside = (sw >= lw[0]) & (sw <= lw[-1])
    if inside.sum() < 2:
        raise MetadataError(f"{where}library wavelengths {lw[0]:.0f}-{lw[-1]:.0f} nm do not overlap the scene's "
                            f"{np.nanmin(sw):.0f}-{np.nanmax(sw):.0f} nm")
    D = resample_spectra(spectra, lw, sw, fw, axis=-1, on_missing="nan").T  # (L, M)
    used = inside & np.isfinite(D).all(1)
    if used.sum() < 2:
        raise MetadataError(f"{where}library wavelengths {lw[0]:.0f}-{lw[-1]:.0f} nm do not overlap the scene's "
                            f"{np.nanmin(sw):.0f}-{np.nanmax(sw):.0f} nm")
    return D[used], names, used


def _choose_k(n_endmembers: Any, Yv: np.ndarray, k_method: str) -> tuple[int, str]:
    from hsikit.unmix.endmembers import check_k
    from hsikit.unmix.estimate_k import estimate_n_endmembers

    if isinstance(n_endmembers, str):
        if n_endmembers.lower() != "auto":
            raise UsageError(f"n_endmembers must be an integer or 'auto', got {n_endmembers!r}")
        return estimate_n_endmembers(Yv, k_method), k_method
    if isinstance(n_endmembers, bool) or not isinstance(n_endmembers, (int, np.integer)):
        raise UsageError(f"n_endmembers must be an integer or 'auto', got {n_endmembers!r}")
    k = int(n_endmembers)
    check_k((Yv.shape[0], Yv.shape[1]), k)
    return k, "given"


# --------------------------------------------------------------------------------------------
# methods
# --------------------------------------------------------------------------------------------

def _solve(solver: str, E: torch.Tensor, Yt: torch.Tensor, tol: float) -> torch.Tensor:
    from hsikit.unmix import abundances as ab

    if solver == "fcls":
        return ab.fcls(E, Yt, tol=tol)
    if solver == "nnls":
        return ab.nnls(E, Yt, tol=tol)
    return ab.ucls(E, Yt)


def _run(method: str, Yv: np.ndarray, valid: np.ndarray, k: int | None, D: np.ndarray | None, *, seed: int,
         tol: float, device: Any, options: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any], torch.Tensor | None]:
    """-> endmembers (L, K), abundances (K, N_valid), details, guidance (N_valid,) or None."""
    from hsikit.unmix.abundances import as_tensor, sunsal
    from hsikit.unmix.endmembers import EXTRACTORS, extract

    Yt = as_tensor(Yv, device=device)
    if method in LIBRARY:
        E = as_tensor(D, device=device)
        if method == "sunsal":
            return E, sunsal(E, Yt, **options), {}, None
        return E, _solve(method, E, Yt, tol), {}, None
    assert k is not None
    if method == "rrlbs":
        from hsikit.unmix.robust_l21 import rrlbs

        r = rrlbs(Yt, k, shape=valid.shape, mask=valid.reshape(-1), seed=seed, **options)
        return r.endmembers, r.abundances, {"iterations": r.n_iter, "converged": r.converged,
                                            "objective": r.objective[-1]}, r.guidance
    if method == "autoencoder":
        from hsikit.unmix.autoencoder import autoencoder_unmix

        if not valid.all():
            # the convolutional encoder needs a full grid: fill nodata pixels with the mean spectrum
            full = np.empty((Yv.shape[0],) + valid.shape)
            full[:, valid] = Yv
            full[:, ~valid] = Yv.mean(1, keepdims=True)
        else:
            full = Yv.reshape((Yv.shape[0],) + valid.shape)
        r = autoencoder_unmix(full, k, seed=seed, device=device, **options)
        A = r.abundances.reshape(k, -1)[:, torch.as_tensor(valid.reshape(-1), device=r.abundances.device)]
        return r.endmembers, A, {"train_seconds": r.seconds, "final_loss": r.loss[-1]}, None
    extractor, _, solver = method.partition("-")
    if extractor not in EXTRACTORS or solver not in SOLVERS:
        raise UsageError(f"unknown unmixing method {method!r} (use one of {', '.join(methods())})")
    ex = extract(Yt, k, extractor, seed=seed)
    return ex.endmembers, _solve(solver, ex.endmembers, Yt, tol), {"pixel_indices": ex.indices.tolist()}, None


# --------------------------------------------------------------------------------------------
# outputs
# --------------------------------------------------------------------------------------------

def _grid_map(values: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(C, N_valid) -> (C, H, W) float32 with NaN at invalid pixels."""
    out = np.full((values.shape[0],) + valid.shape, np.nan, np.float32)
    out[:, valid] = values
    return out


def _spatial(arr: np.ndarray, dims: tuple[str, ...], cube: xr.DataArray, coords: dict[str, Any], name: str) -> xr.DataArray:
    from hsikit.cube import geotransform

    c = dict(coords)
    for d in (Y, X):
        if d in cube.coords:
            c[d] = cube[d].values
    da = xr.DataArray(arr, dims=dims, coords=c, name=name)
    if cube.rio.crs is not None:
        da = da.rio.write_crs(cube.rio.crs)
    tr = geotransform(cube)
    if tr is not None:
        da = da.rio.write_transform(tr)
    return da.rio.write_nodata(np.nan, encoded=False)


def _sidecar(out: Path, suffix: str) -> Path:
    return out.with_name(out.stem + suffix)


def write_endmember_csv(endmembers: xr.DataArray, path: Path) -> Path:
    """Write ``(band, endmember)`` spectra as CSV: ``wavelength_nm`` then one column per endmember.

    The layout is the one :func:`hsikit.io.envi.read_spectral_library` reads back. Atomic.
    """
    from hsikit.io.atomic import replace, temporary_sibling

    wl = endmembers["wavelength"].values if "wavelength" in endmembers.coords else np.full(endmembers.sizes[BAND], np.nan)
    band = endmembers[BAND].values
    tmp = temporary_sibling(path)
    with open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        known = bool(np.isfinite(wl).all())
        w.writerow(["wavelength_nm" if known else "band"] + [str(n) for n in endmembers["endmember"].values])
        for i in range(endmembers.sizes[BAND]):
            w.writerow([f"{wl[i]:.4f}" if known else int(band[i])] + [f"{v:.8g}" for v in endmembers.values[i]])
    replace(tmp, path)
    return path


def write_endmember_plot(endmembers: xr.DataArray, path: Path, title: str = "") -> Path:
    """PNG plot of the endmember spectra (matplotlib, Agg backend). Atomic."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    from hsikit.io.atomic import replace, temporary_sibling

    wl = endmembers["wavelength"].values if "wavelength" in endmembers.coords else None
    known = wl is not None and bool(np.isfinite(wl).all())
    xv = np.asarray(wl if known else endmembers[BAND].values, float)
    yv = np.asarray(endmembers.values, float)
    order = np.argsort(xv, kind="stable")  # e.g. EnMAP's VNIR and SWIR ranges overlap
    xv, yv = xv[order], yv[order]
    if xv.size > 2:  # break the lines over spectral gaps (removed absorption bands)
        step = np.diff(xv)
        gaps = np.flatnonzero(step > 5 * np.median(step[step > 0])) if (step > 0).any() else np.array([], int)
        xv = np.insert(xv, gaps + 1, np.nan)
        yv = np.insert(yv, gaps + 1, np.nan, axis=0)
    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    for j, name in enumerate(endmembers["endmember"].values):
        ax.plot(xv, yv[:, j], label=str(name), lw=1.5)
    ax.set_xlabel("wavelength (nm)" if known else "band")
    ax.set_ylabel("value")
    ax.set_title(title or "endmembers")
    ax.grid(alpha=0.3)
    if endmembers.sizes["endmember"] <= 20:
        ax.legend(fontsize=8)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.13, top=0.9)
    tmp = temporary_sibling(path)
    fig.savefig(tmp, format="png")
    plt.close(fig)
    replace(tmp, path)
    return path


def _write(result: UnmixResult, cube: xr.DataArray, out: Path, overwrite: bool) -> dict[str, Path]:
    from hsikit.engine.job import output_meta
    from hsikit.io.atomic import check_output
    from hsikit.io.export import GeoTiffWriter, iter_windows

    names = [str(n) for n in result.abundances["endmember"].values] + ["residual_rmse"]
    csv_path, png_path = _sidecar(out, "_endmembers.csv"), _sidecar(out, "_endmembers.png")
    for p in (out, csv_path, png_path):
        check_output(p, overwrite=overwrite)
    meta = output_meta(cube, out_bands=len(names), names=names, dtype=np.float32, keep_band_metadata=False)
    meta.tags.update(hsikit_task="unmix", unmix_method=str(result.info.get("method", "")))
    stack = np.concatenate([result.abundances.values, result.residual_rmse.values[None]], 0).astype(np.float32)
    with GeoTiffWriter(out, meta, overwrite=overwrite) as sink:
        for win in iter_windows(meta.height, meta.width):
            r0, c0 = int(win.row_off), int(win.col_off)
            sink.write(stack[:, r0 : r0 + int(win.height), c0 : c0 + int(win.width)], win)
    write_endmember_csv(result.endmembers, csv_path)
    write_endmember_plot(result.endmembers, png_path, title=f"{result.info.get('method', '')} endmembers, {out.name}")
    return {"abundances": out, "endmembers_csv": csv_path, "endmembers_png": png_path}


# --------------------------------------------------------------------------------------------
# the task function
# --------------------------------------------------------------------------------------------

def unmix(
    cube_or_path: Any,
    n_endmembers: int | str = 3,
    *,
    method: str = "vca-fcls",
    library: Any = None,
    out: str | os.PathLike | None = None,
    seed: int = 0,
    k_method: str = "hysime",
    tol: float = 1e-10,
    device: Any = None,
    overwrite: bool = True,
    endmember_names: list[str] | None = None,
    **method_options: Any,
) -> UnmixResult:
    """Unmix a scene into endmember spectra and abundance maps.

    Parameters
    ----------
    cube_or_path
        A ``(band, y, x)`` cube (:mod:`hsikit.cube`) or any file :func:`hsikit.open` reads. Bands flagged
        bad (``bbl``) are left out; scale/offset are applied; pixels that are nodata/NaN in any band are
        skipped and come out NaN.
    n_endmembers
        ``K``, or ``"auto"`` to estimate it with ``k_method`` (``hysime``, ``hfc`` or ``nwhfc``). Ignored
        by the library methods (the library size is ``K``).
    method
        See the module docstring; :func:`methods` lists them.
    library
        Spectral library (path to ``.csv`` / ``.sli``, or a ``(spectrum, band)`` DataArray as
        :func:`hsikit.io.envi.read_spectral_library` returns) for ``sunsal`` / ``fcls`` / ``nnls`` /
        ``ucls``; resampled to the scene's bands with Gaussian SRFs (the scene needs wavelengths).
    out
        Write the abundance GeoTIFF here (plus the endmember CSV and PNG next to it).
    seed
        Seed of every random choice (VCA directions, N-FINDR start, SiVM start, network weights).
    tol
        Optimality tolerance of the FCLS/NNLS solver.
    device
        Torch device for the maths (``"cuda"`` when available; default CPU).
    overwrite
        Replace existing outputs.
    endmember_names
        Names of the endmember bands (default ``endmember_1`` ... or the library spectrum names).
    **method_options
        Passed to the method (e.g. ``lam=`` for ``rrlbs`` or ``sunsal``, ``epochs=`` for ``autoencoder``).

    Returns
    -------
    UnmixResult
        ``abundances`` (endmember, y, x), ``endmembers`` (band, endmember), ``residual_rmse`` (y, x),
        ``info``, ``guidance`` (RRLbS) and ``paths``.

    Raises
    ------
    UsageError
        Unknown method, K larger than the band or valid-pixel count, a library method without a library.
    MetadataError
        A library with a scene without wavelengths, or wavelengths that do not overlap.
    """
    import time

    t0 = time.perf_counter()
    if method not in methods():
        raise UsageError(f"unknown unmixing method {method!r} (use one of {', '.join(methods())})")
    if method in LIBRARY and library is None:
        raise UsageError(f"method {method!r} needs a spectral library (library=... / --library)")
    if library is not None and method not in LIBRARY:
        raise UsageError(f"a library is used only by the methods {', '.join(LIBRARY)}, not {method!r}")
    cube = _open(cube_or_path)
    cube, Yv, valid = _scene_matrix(cube)
    info: dict[str, Any] = {"method": method, "seed": seed, "bands": int(Yv.shape[0]), "valid_pixels": int(valid.sum())}
    D = None
    band_used = np.ones(Yv.shape[0], bool)
    k: int | None = None
    if library is not None:
        D, lib_names, band_used = _library(library, cube)
        Yv = Yv[band_used]
        info["bands_used"] = int(band_used.sum())
        names = endmember_names or lib_names
        info["k_source"] = "library"
    else:
        k, info["k_source"] = _choose_k(n_endmembers, Yv, k_method)
        names = endmember_names or [f"endmember_{i + 1}" for i in range(k)]
    E, A, details, guidance = _run(method, Yv, valid, k, D, seed=seed, tol=tol, device=device, options=method_options)
    K = E.shape[1]
    if len(names) != K:
        raise UsageError(f"{len(names)} endmember names for {K} endmembers")
    info.update(details, n_endmembers=K)
    Yt = torch.as_tensor(Yv, dtype=E.dtype, device=E.device)
    resid = torch.sqrt(((Yt - E @ A.to(E.dtype)) ** 2).mean(0)).cpu().numpy()
    sub = cube.isel({BAND: np.flatnonzero(band_used)})
    a_map = _spatial(_grid_map(A.cpu().numpy(), valid), ("endmember", Y, X), cube, {"endmember": names}, "abundance")
    r_map = _spatial(_grid_map(resid[None], valid)[0], (Y, X), cube, {}, "residual_rmse")
    em = xr.DataArray(
        E.cpu().numpy().astype(np.float64),
        dims=(BAND, "endmember"),
        coords={BAND: sub[BAND].values, "wavelength": (BAND, sub["wavelength"].values), "endmember": names},
        name="endmembers",
    )
    g_map = None
    if guidance is not None:
        g_map = _spatial(_grid_map(guidance.cpu().numpy()[None], valid)[0], (Y, X), cube, {}, "guidance")
    info["seconds"] = time.perf_counter() - t0
    result = UnmixResult(a_map, em, r_map, info, g_map)
    if out is not None:
        result.paths = _write(result, cube, Path(out), overwrite)
    return result
