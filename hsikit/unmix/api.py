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

Memory stays bounded for the extraction and library methods: ``K`` and the endmembers come from a
regular grid of at most :data:`SAMPLE_PIXELS` pixels (every pixel of smaller scenes), and the
abundances are computed window by window through the engine (:func:`hsikit.engine.run.run_tiled`),
straight into the output file when ``out`` is given (the returned maps then read that file lazily).
``rrlbs`` and ``autoencoder`` fit the whole scene jointly and hold it in memory.
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
from hsikit.errors import InputError, MetadataError, UsageError

BLIND = ("rrlbs", "autoencoder")
#: Most pixels that the K estimate and the endmember extraction read (a regular grid of the scene).
SAMPLE_PIXELS = 1 << 18
#: Window edge (pixels) of the abundance pass.
TILE = 256
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


def _good_bands(cube: xr.DataArray) -> xr.DataArray:
    """The bands flagged good (``bbl``), a lazy selection."""
    if "bbl" in cube.coords and not bool(np.all(cube["bbl"].values)):
        return cube.isel({BAND: np.flatnonzero(cube["bbl"].values)})
    return cube


def _physical(raw: np.ndarray, scale: np.ndarray, offset: np.ndarray, nodata: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Stored values (L, ...) -> (physical float64 (L, ...), valid (...)): valid = finite and not nodata in every band."""
    values = raw.astype(np.float64) * scale.reshape((-1,) + (1,) * (raw.ndim - 1)) + offset.reshape((-1,) + (1,) * (raw.ndim - 1))
    valid = np.isfinite(values).all(0)
    if nodata is not None and not np.isnan(nodata):
        valid &= ~(raw == nodata).any(0)
    return values, valid


def _scale_offset(cube: xr.DataArray) -> tuple[np.ndarray, np.ndarray]:
    n = cube.sizes[BAND]
    scale = np.asarray(cube["scale"].values, np.float64) if "scale" in cube.coords else np.ones(n)
    offset = np.asarray(cube["offset"].values, np.float64) if "offset" in cube.coords else np.zeros(n)
    return scale, offset


def _scene_matrix(cube: xr.DataArray, max_pixels: int | None = None, progress: bool = False
                  ) -> tuple[np.ndarray, np.ndarray, int]:
    """Good-band cube -> (Y (L, N_valid) float64, valid mask of the grid, grid step).

    The grid is every ``step``-th row and column (offset ``step // 2``), with ``step`` the smallest that
    keeps it within ``max_pixels`` (1, the whole scene, when None or when the scene is small). Read in
    row blocks, so only the grid is held in memory; ``progress``: a bar over the blocks on a terminal.
    """
    from hsikit.engine.grid import grid_axes, read_grid

    height, width = cube.sizes[Y], cube.sizes[X]
    step = 1 if max_pixels is None else max(1, int(np.sqrt(height * width / max_pixels)))
    while max_pixels is not None and np.prod([a.size for a in grid_axes(height, width, step)]) > max_pixels:
        step += 1
    rows, cols = grid_axes(height, width, step)
    raw = read_grid(cube, rows, cols, block_values=2**24, progress=progress, description="unmix: reading the sample")
    scale, offset = _scale_offset(cube)
    grid, valid = _physical(raw, scale, offset, cube.rio.nodata)
    if not valid.any():
        raise UsageError("the scene has no valid pixel (all nodata or NaN)")
    return grid[:, valid], valid, step


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


def _choose_k(n_endmembers: Any, Yv: np.ndarray, k_method: str, source: str | None = None) -> tuple[int, str]:
    from hsikit.unmix.endmembers import check_k
    from hsikit.unmix.estimate_k import estimate_n_endmembers

    if isinstance(n_endmembers, str):
        if n_endmembers.lower() != "auto":
            raise UsageError(f"n_endmembers must be an integer or 'auto', got {n_endmembers!r}")
        return estimate_n_endmembers(Yv, k_method), k_method
    if isinstance(n_endmembers, bool) or not isinstance(n_endmembers, (int, np.integer)):
        raise UsageError(f"n_endmembers must be an integer or 'auto', got {n_endmembers!r}")
    k = int(n_endmembers)
    try:
        check_k((Yv.shape[0], Yv.shape[1]), k)
    except UsageError as err:  # K against this scene's bands or valid pixels: name the scene
        if source is None:
            raise
        raise InputError(str(err), source) from None
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


def _blind(method: str, Yv: np.ndarray, valid: np.ndarray, k: int, *, seed: int, device: Any,
           options: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any], torch.Tensor | None]:
    """The whole-scene methods -> endmembers (L, K), abundances (K, N_valid), details, guidance (N_valid,) or None."""
    from hsikit.unmix.abundances import as_tensor

    Yt = as_tensor(Yv, device=device)
    if method == "rrlbs":
        from hsikit.unmix.robust_l21 import rrlbs

        r = rrlbs(Yt, k, shape=valid.shape, mask=valid.reshape(-1), seed=seed, **options)
        return r.endmembers, r.abundances, {"iterations": r.n_iter, "converged": r.converged,
                                            "objective": r.objective[-1]}, r.guidance
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


def _extract(method: str, Ys: np.ndarray, valid: np.ndarray, step: int, k: int, *, seed: int,
             device: Any) -> tuple[torch.Tensor, dict[str, Any]]:
    """Endmembers (L, K) of the sample by the method's extractor, and the scene (row, col) of each pixel picked."""
    from hsikit.unmix.abundances import as_tensor
    from hsikit.unmix.endmembers import EXTRACTORS, extract

    extractor, _, solver = method.partition("-")
    if extractor not in EXTRACTORS or solver not in SOLVERS:
        raise UsageError(f"unknown unmixing method {method!r} (use one of {', '.join(methods())})")
    ex = extract(as_tensor(Ys, device=device), k, extractor, seed=seed)
    r, c = np.nonzero(valid)
    picked = [[int(step // 2 + step * r[i]), int(step // 2 + step * c[i])] for i in ex.indices.tolist()]
    return ex.endmembers, {"endmember_pixels_yx": picked}


def _tile_solver(E: torch.Tensor, solver: str, tol: float, options: dict[str, Any], band_used: np.ndarray,
                 scale: np.ndarray, offset: np.ndarray, nodata: float | None):
    """Engine method for the abundance pass: (B, L, h, w) stored values -> (B, K + 1, h, w) float32.

    Bands ``band_used`` in physical units; per valid pixel (finite and not nodata in every band) the
    abundances of ``solver`` (``fcls``, ``nnls``, ``ucls`` or ``sunsal``) and, last, the RMSE of
    ``y - E a`` over the bands; NaN elsewhere.
    """
    from hsikit.unmix.abundances import sunsal

    K = E.shape[1]
    idx = np.flatnonzero(band_used)

    def fn(batch: np.ndarray) -> np.ndarray:
        B, _, h, w = batch.shape
        raw = np.moveaxis(np.asarray(batch)[:, idx], 1, 0).reshape(idx.size, -1)  # (L, B*h*w)
        values, valid = _physical(raw, scale[idx], offset[idx], nodata)
        out = np.full((K + 1, raw.shape[1]), np.nan, np.float32)
        if valid.any():
            Yt = torch.as_tensor(values[:, valid], dtype=E.dtype, device=E.device)
            A = sunsal(E, Yt, **options) if solver == "sunsal" else _solve(solver, E, Yt, tol)
            A = A.to(E.dtype)
            out[:K, valid] = A.cpu().numpy()
            out[K, valid] = torch.sqrt(((Yt - E @ A) ** 2).mean(0)).cpu().numpy()
        return np.moveaxis(out.reshape(K + 1, B, h, w), 0, 1)

    return fn


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


def _paths(out: Path, overwrite: bool) -> dict[str, Path]:
    """The three output paths, each checked (writable; not there unless ``overwrite``) before any work."""
    from hsikit.engine.job import check_cog_output
    from hsikit.io.atomic import check_output

    paths = {"abundances": out, "endmembers_csv": _sidecar(out, "_endmembers.csv"),
             "endmembers_png": _sidecar(out, "_endmembers.png")}
    check_cog_output(out, overwrite=overwrite, task="unmix")
    for p in paths.values():
        check_output(p, overwrite=overwrite)
    return paths


def _meta(cube: xr.DataArray, names: list[str], method: str) -> Any:
    from hsikit.engine.job import output_meta

    bands = [*names, "residual_rmse"]
    meta = output_meta(cube, out_bands=len(bands), names=bands, dtype=np.float32, keep_band_metadata=False)
    meta.tags.update(hsikit_task="unmix", unmix_method=method)
    return meta


def _write_sidecars(endmembers: xr.DataArray, paths: dict[str, Path], method: str) -> None:
    write_endmember_csv(endmembers, paths["endmembers_csv"])
    write_endmember_plot(endmembers, paths["endmembers_png"], title=f"{method} endmembers, {paths['abundances'].name}")


def _write(result: UnmixResult, cube: xr.DataArray, paths: dict[str, Path], overwrite: bool) -> None:
    """Write an in-memory result (the whole-scene methods): abundance COG window by window, CSV, PNG."""
    from hsikit.io.export import GeoTiffWriter, iter_windows

    method = str(result.info.get("method", ""))
    meta = _meta(cube, [str(n) for n in result.abundances["endmember"].values], method)
    stack = np.concatenate([result.abundances.values, result.residual_rmse.values[None]], 0).astype(np.float32)
    with GeoTiffWriter(paths["abundances"], meta, overwrite=overwrite) as sink:
        for win in iter_windows(meta.height, meta.width):
            r0, c0 = int(win.row_off), int(win.col_off)
            sink.write(stack[:, r0 : r0 + int(win.height), c0 : c0 + int(win.width)], win)
    _write_sidecars(result.endmembers, paths, method)


class _CountingSink:
    """Passes windows on to ``inner`` and counts the valid pixels (finite residual) written."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.valid = inner, 0

    def write(self, array: np.ndarray, window: Any) -> None:
        self.valid += int(np.isfinite(array[-1]).sum())
        self.inner.write(array, window)


def _abundance_pass(cube: xr.DataArray, fn: Any, K: int, names: list[str], method: str, paths: dict[str, Path] | None,
                    overwrite: bool, progress: Any) -> tuple[xr.DataArray, xr.DataArray, Any, int]:
    """Run the per-window solver over the good-band cube -> (abundances, residual_rmse, engine stats, valid pixels).

    With ``paths`` the windows stream into the COG and the returned maps read it lazily; otherwise
    they fill an in-memory array.
    """
    from hsikit.engine.run import ArraySink, run_tiled

    nd = cube.rio.nodata
    fill = nd if nd is not None else np.nan
    kw = dict(out_bands=K + 1, tile=TILE, halo=0, batch_size=1, fill_value=fill, out_dtype=np.float32,
              progress=progress, description="unmix windows")
    if paths is None:
        array = ArraySink(K + 1, cube.sizes[Y], cube.sizes[X])
        sink = _CountingSink(array)
        stats = run_tiled(cube, fn, sink, **kw)
        a_map = _spatial(array.data[:K], ("endmember", Y, X), cube, {"endmember": names}, "abundance")
        r_map = _spatial(array.data[K], (Y, X), cube, {}, "residual_rmse")
        return a_map, r_map, stats, sink.valid
    from hsikit.io.export import GeoTiffWriter

    with GeoTiffWriter(paths["abundances"], _meta(cube, names, method), overwrite=overwrite) as writer:
        sink = _CountingSink(writer)
        stats = run_tiled(cube, fn, sink, **kw)
    return (*_lazy_maps(paths["abundances"], cube, names), stats, sink.valid)


def _lazy_maps(path: Path, cube: xr.DataArray, names: list[str]) -> tuple[xr.DataArray, xr.DataArray]:
    """The abundance and residual maps of a written COG, read lazily (on access), on the cube's y/x coords."""
    import rioxarray

    da = rioxarray.open_rasterio(path, masked=False)
    da.attrs = {}
    coords = {d: cube[d].values for d in (Y, X) if d in cube.coords}
    a_map = da.isel(band=slice(0, len(names))).rename(band="endmember").assign_coords(endmember=names, **coords)
    r_map = da.isel(band=len(names), drop=True).assign_coords(**coords)
    a_map.name, r_map.name = "abundance", "residual_rmse"
    return a_map.rio.write_nodata(np.nan, encoded=False), r_map.rio.write_nodata(np.nan, encoded=False)


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
    progress: Any = True,
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
    progress
        Progress of the abundance pass: a bar on a terminal (True), silent (False) or a callback
        ``(done, total) -> bool | None`` (return False to cancel).
    **method_options
        Passed to the method (e.g. ``lam=`` for ``rrlbs`` or ``sunsal``, ``epochs=`` for ``autoencoder``).

    Returns
    -------
    UnmixResult
        ``abundances`` (endmember, y, x), ``endmembers`` (band, endmember), ``residual_rmse`` (y, x),
        ``info``, ``guidance`` (RRLbS) and ``paths``. With ``out`` and an extraction or library method
        the two maps read the written file lazily.

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
    cube = _good_bands(_open(cube_or_path))
    paths = _paths(Path(out), overwrite) if out is not None else None
    blind = method in BLIND
    Ys, valid, step = _scene_matrix(cube, None if blind else SAMPLE_PIXELS, progress is True)
    info: dict[str, Any] = {"method": method, "seed": seed, "bands": int(Ys.shape[0])}
    if step > 1:
        info.update(sample_step=step, sample_pixels=int(Ys.shape[1]))
    band_used = np.ones(Ys.shape[0], bool)
    if library is not None:
        D, lib_names, band_used = _library(library, cube)
        info["bands_used"] = int(band_used.sum())
        names = endmember_names or lib_names
        info["k_source"] = "library"
    else:
        k, info["k_source"] = _choose_k(n_endmembers, Ys, k_method, cube.attrs.get("source") or None)
        names = endmember_names or [f"endmember_{i + 1}" for i in range(k)]
    sub = cube.isel({BAND: np.flatnonzero(band_used)})
    guidance = None
    if blind:
        E, A, details, guidance = _blind(method, Ys, valid, k, seed=seed, device=device, options=method_options)
        info["valid_pixels"] = int(valid.sum())
    elif library is not None:
        from hsikit.unmix.abundances import as_tensor

        E, details = as_tensor(D, device=device), {}
    else:
        E, details = _extract(method, Ys, valid, step, k, seed=seed, device=device)
    K = E.shape[1]
    if len(names) != K:
        raise UsageError(f"{len(names)} endmember names for {K} endmembers")
    info.update(details, n_endmembers=K)
    em = xr.DataArray(
        E.cpu().numpy().astype(np.float64),
        dims=(BAND, "endmember"),
        coords={BAND: sub[BAND].values, "wavelength": (BAND, sub["wavelength"].values), "endmember": names},
        name="endmembers",
    )
    if blind:
        Yt = torch.as_tensor(Ys, dtype=E.dtype, device=E.device)
        resid = torch.sqrt(((Yt - E @ A.to(E.dtype)) ** 2).mean(0)).cpu().numpy()
        a_map = _spatial(_grid_map(A.cpu().numpy(), valid), ("endmember", Y, X), cube, {"endmember": names}, "abundance")
        r_map = _spatial(_grid_map(resid[None], valid)[0], (Y, X), cube, {}, "residual_rmse")
        g_map = None
        if guidance is not None:
            g_map = _spatial(_grid_map(guidance.cpu().numpy()[None], valid)[0], (Y, X), cube, {}, "guidance")
        info["seconds"] = time.perf_counter() - t0
        result = UnmixResult(a_map, em, r_map, info, g_map)
        if paths is not None:
            _write(result, cube, paths, overwrite)
            result.paths = paths
        return result
    del Ys
    solver = method if library is not None else method.partition("-")[2]
    scale, offset = _scale_offset(cube)
    fn = _tile_solver(E, solver, tol, method_options if solver == "sunsal" else {}, band_used, scale, offset,
                      cube.rio.nodata)
    a_map, r_map, stats, n_valid = _abundance_pass(cube, fn, K, names, method, paths, overwrite, progress)
    info.update(valid_pixels=n_valid, windows=stats.tiles)
    info["seconds"] = time.perf_counter() - t0
    result = UnmixResult(a_map, em, r_map, info, None)
    if paths is not None:
        _write_sidecars(em, paths, method)
        result.paths = paths
    return result
