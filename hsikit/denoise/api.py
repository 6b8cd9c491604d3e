"""``hsikit.denoise``: denoise a scene tile by tile into a georeferenced cube.

The one place that ties io, the engine and the denoisers together (the CLI and the QGIS plugin call
:func:`denoise`). The walk:

1. open the scene; check it (a 3-D cube with at least :data:`MIN_BANDS` bands to denoise, no NaN
   unless nodata is NaN, a known model) before anything is written;
2. one statistics pass over a pixel sample (at most :data:`SAMPLE_PIXELS`): per-band noise sigma
   (robust HySime, or the given value), the scene's value scale and, for the subspace methods, the
   signal subspace of the whitened scene, so that every tile uses the same parameters (no seams);
   with ``sparse="auto"`` the sample (a regular grid, so columns stay columns) is first cleaned of
   impulse, stripe and dead-line values (:mod:`hsikit.denoise.sparse`), and the tiles are too when
   the sample had any;
3. stream tiles with a halo through :func:`hsikit.engine.job.run_scene` (atomic COG) or into memory.

Values are physical: stored values times ``scale`` plus ``offset`` (int16 / uint16 reflectance x 10000
with a scale tag become 0-1). The output is float32 in the same physical unit; nodata pixels are
written as NaN; bands not denoised (``bbl`` False with ``bands="valid"``) are passed through unchanged
(physical values). Georeference, wavelengths, fwhm, bbl and band names are kept.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from hsikit.cube import BAND, X, Y
from hsikit.errors import InputError, UsageError
from hsikit.devices import resolve_device as _device

#: Classical methods dispatched here by name (learned models come from the zoo registry).
CLASSICAL = ("fasthyde", "lrmr")
#: Default model: the best on the test split (docs/denoise.md).
DEFAULT_MODEL = "hsdt-s-sub"
#: Fewest bands a scene must have to be denoised by any method here.
MIN_BANDS = 5
#: Pixels sampled for the scene statistics.
SAMPLE_PIXELS = 65536
#: Quantile of the sampled values the learned models' input is divided by (to about [0, 1]).
VALUE_QUANTILE = 0.999


@dataclass
class DenoiseResult:
    """What :func:`denoise` did.

    ``sigma`` (L_denoised,) is the per-band noise sigma used (physical units), ``bands`` the 1-based
    band numbers denoised, ``cube`` the result when no output path was given.
    """

    model: str
    out: Path | None
    seconds: float
    tiles: int
    tiles_skipped: int
    sigma: np.ndarray
    bands: list[int]
    sigma_estimated: bool
    subspace_dim: int | None = None
    cube: xr.DataArray | None = field(default=None, repr=False)
    sparse_fraction: float | None = None

    def summary(self, src: Any = "") -> str:
        """One line: model, bands, tiles, time, sigma."""
        s = self.sigma
        how = "estimated" if self.sigma_estimated else "given"
        dest = f" -> {self.out}" if self.out is not None else ""
        sub = f", subspace k={self.subspace_dim}" if self.subspace_dim else ""
        if self.sparse_fraction is not None:
            sub += f", {100 * self.sparse_fraction:.2f}% values replaced as sparse noise"
        return (f"denoised {src}{dest} with {self.model}: {len(self.bands)} bands, {self.tiles} tiles "
                f"({self.tiles_skipped} empty) in {self.seconds:.1f} s; {how} sigma median {np.median(s):.4g} "
                f"(min {s.min():.4g}, max {s.max():.4g}){sub}")


def _resolve_model(model: str, weights: str | os.PathLike | None = None) -> Any:
    """A classical name, or a learned zoo model (eval mode) with its released weights or ``weights``."""
    name = str(model).strip().lower()
    if name in CLASSICAL:
        if weights is not None:
            raise UsageError(f"{name} is a classical method and takes no weights")
        return name
    import hsikit.denoise.hsdt  # noqa: F401  (registers the learned models)
    from hsikit.zoo import create_model, get_entry, list_models, released_models

    try:
        get_entry(name, task="denoise")
    except UsageError:
        runnable = ", ".join([*CLASSICAL, *released_models("denoise")])
        other = [n for n in list_models("denoise") if n not in released_models("denoise")]
        extra = f"; without released weights, run with weights=<folder> / --weights: {', '.join(other)}" if other else ""
        raise UsageError(f"unknown denoising model {model!r} (available: {runnable}{extra})") from None
    return create_model(name, pretrained=True, task="denoise", weights=weights)


def _clean_sample(grid: np.ndarray, keep: np.ndarray, sigma: Any, source: str) -> tuple[np.ndarray, torch.Tensor, bool]:
    """Sparse noise removed from the sample grid (L, h, w).

    Returns the valid pixels (L, N), the sigma the detection used (L,) and whether any value was
    replaced (when none was, the tiles skip the step).
    """
    from hsikit.denoise.sparse import remove_sparse_noise

    valid = grid[:, keep]
    _check_sample(valid, source)
    s, _ = _band_sigma(valid, sigma)
    filled = np.where(keep[None], grid, valid.mean(axis=1)[:, None, None])
    found = remove_sparse_noise(torch.as_tensor(filled), s)
    return found.cleaned.numpy()[:, keep], s, bool((found.mask & torch.as_tensor(keep)).any())


def _sigma_arg(sigma: Any) -> str | float:
    """``"auto"`` or a positive finite float; anything else is a UsageError."""
    if isinstance(sigma, str):
        if sigma != "auto":
            raise UsageError(f"sigma must be 'auto' or a number, got {sigma!r}")
        return sigma
    value = float(sigma)
    if not np.isfinite(value) or value <= 0:
        raise UsageError(f"sigma must be a positive number, got {sigma!r}")
    return value


def _band_sigma(phys: np.ndarray, sigma: Any) -> tuple[torch.Tensor, bool]:
    """Per-band sigma (L,) float64 of a (L, N) sample: robust HySime for ``"auto"`` (and True), else the value."""
    if _sigma_arg(sigma) == "auto":
        from hsikit.data.noise_estimation import estimate_noise

        return estimate_noise(torch.as_tensor(phys), robust=True).sigma, True
    return torch.full((phys.shape[0],), float(sigma), dtype=torch.float64), False


def _check_sample(phys: np.ndarray, source: str) -> int:
    """The band count of a (L, N) sample with enough pixels for the noise estimate."""
    L, n = phys.shape
    if n <= L:
        raise InputError(f"only {n} valid pixels for {L} bands: too few to estimate the noise", source)
    return L


def _stats(model: Any, phys: np.ndarray, sigma: Any, source: str) -> dict[str, Any]:
    """Scene-level parameters from the sample (L, N) of physical values."""
    from hsikit.data.noise_estimation import estimate_noise, hysime

    L = _check_sample(phys, source)
    y = torch.as_tensor(phys)
    s, estimated = _band_sigma(phys, sigma)
    floor = 1e-3 * s.median().clamp_min(1e-12)
    s = torch.maximum(s, floor)
    vmax = float(np.quantile(np.abs(phys), VALUE_QUANTILE)) or 1.0
    out = {"sigma": s, "estimated": estimated, "value_scale": vmax, "basis": None}
    if model == "fasthyde" or hasattr(model, "project"):
        yw = y / s[:, None]
        sub = hysime(yw, estimate_noise(yw))
        lo, hi = (1, 32) if model == "fasthyde" else (model.min_k, model.max_k)
        k = int(min(max(int(sub.dim), lo), hi, L))
        out["basis"] = sub.basis[:, :k]
    return out


def _method(model: Any, stats: dict[str, Any], device: torch.device, wavelengths: np.ndarray | None):
    """(B, L, H, W) float32 physical tensor -> same, on ``device``."""
    from hsikit.denoise.classical import fasthyde, lrmr

    sigma = stats["sigma"].to(device)
    basis = stats["basis"].to(device) if stats["basis"] is not None else None
    if model == "fasthyde":
        return lambda x: fasthyde(x, sigma, basis=basis)
    if model == "lrmr":
        return lambda x: lrmr(x, sigma)
    vs = stats["value_scale"]
    net = model.to(device).eval()
    wl = None
    if wavelengths is not None and np.isfinite(wavelengths).all():
        wl = torch.as_tensor(wavelengths, dtype=torch.float32, device=device)

    def run(x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return net.denoise(x / vs, wavelengths=wl, sigma=sigma / vs, basis=basis) * vs

    return run


def denoise(
    cube_or_path: Any,
    model: str = DEFAULT_MODEL,
    *,
    sigma: str | float = "auto",
    out: str | os.PathLike | None = None,
    tile: int = 256,
    overlap: int = 16,
    batch_size: int = 4,
    device: str = "auto",
    bands: str = "valid",
    sparse: str = "off",
    weights: str | os.PathLike | None = None,
    overwrite: bool = True,
    progress: Any = True,
) -> DenoiseResult:
    """Denoise a hyperspectral scene.

    Parameters
    ----------
    cube_or_path
        A scene path (any format hsikit reads), a cube (:mod:`hsikit.cube`) or a (band, y, x) array.
    model
        ``"fasthyde"`` (subspace + non-local means), ``"lrmr"`` (low-rank + sparse, for stripes, dead
        lines and impulse noise) or a registered learned model with released weights (``"hsdt-s-sub"``).
    sigma
        ``"auto"``: per-band noise sigma by robust HySime; a number: iid noise of that sigma in the
        scene's physical unit (after scale/offset).
    out
        Output path (COG, written atomically); None returns the result in memory (``result.cube``).
    tile, overlap
        Tile edge and halo (context pixels per side) in pixels.
    batch_size
        Tiles per method call.
    device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    bands
        ``"valid"``: denoise the bands with ``bbl`` True and pass the others through; ``"all"``: all bands.
    sparse
        ``"auto"``: find impulse, stripe and dead-line values (:mod:`hsikit.denoise.sparse`) in the
        statistics sample and replace them; when any were found, do the same in every tile before the
        method runs. For scenes with such defects (on the test split's mixture noise it adds 4-5 dB);
        it costs about a third of an LRMR pass, and on very clean scenes it replaces a few tenths of a percent
        of values it should not (-0.3 dB on the README's sample scene), hence off by default.
        ``"off"``: do not. LRMR models sparse noise itself and skips it.
    weights
        For a learned ``model``: a weights folder (``config.json`` + ``model.safetensors``, as written by
        ``scripts/train_denoise.py``) to load instead of the released ``models/<model>``.
    overwrite
        Replace an existing output.
    progress
        Progress bar (True), silent (False) or a callback ``(done, total) -> bool | None``.

    Returns
    -------
    DenoiseResult
        Timing, tiles, the sigma used and (without ``out``) the denoised float32 cube.
    """
    t0 = time.perf_counter()
    from hsikit.io import as_cube

    cube, source = as_cube(cube_or_path)
    if cube.dims != (BAND, Y, X):
        raise UsageError(f"expected a (band, y, x) cube, got dims {cube.dims}")
    if bands not in ("valid", "all"):
        raise UsageError(f"bands must be 'valid' or 'all', got {bands!r}")
    if sparse not in ("auto", "off"):
        raise UsageError(f"sparse must be 'auto' or 'off', got {sparse!r}")
    if tile < 8 or overlap < 0 or batch_size < 1:
        raise UsageError("tile must be >= 8, overlap >= 0 and batch size >= 1")
    n_all = cube.sizes[BAND]
    good = np.asarray(cube["bbl"].values, bool) if bands == "valid" else np.ones(n_all, bool)
    idx = np.flatnonzero(good)
    if n_all == 1:
        raise InputError("a single-band (2-D) image cannot be denoised spectrally: give a (band, y, x) cube", source)
    if idx.size < MIN_BANDS:
        what = "valid bands" if bands == "valid" else "bands"
        raise InputError(f"{idx.size} {what}: denoising needs at least {MIN_BANDS}", source)
    dev = _device(device)
    method_model = _resolve_model(model, weights)
    name = method_model if isinstance(method_model, str) else str(model).lower()
    if out is not None:
        from hsikit.engine.job import check_cog_output

        check_cog_output(out, overwrite=overwrite, task="denoise")
    scale = np.asarray(cube["scale"].values, np.float64)
    offset = np.asarray(cube["offset"].values, np.float64)
    nodata = cube.rio.nodata
    from hsikit.engine.grid import sample_physical

    # a regular grid, so columns stay columns (what the sparse step tests)
    phys_all, bad = sample_physical(cube, SAMPLE_PIXELS, source)
    grid, keep = phys_all[idx], ~bad[idx].any(axis=0)
    use_sparse = sparse == "auto" and name != "lrmr"
    despike = False  # the tiles get the sparse step only when the sample had something to replace
    if use_sparse:
        from hsikit.denoise.sparse import remove_sparse_noise

        phys, sparse_sigma, despike = _clean_sample(grid, keep, sigma, source)
    else:
        phys = grid[:, keep]
    stats = _stats(method_model, phys, sigma, source)
    wl = np.asarray(cube["wavelength"].values, np.float64)[idx]
    run = _method(method_model, stats, dev, wl)
    sc = torch.as_tensor(scale, dtype=torch.float32, device=dev)[None, :, None, None]
    off = torch.as_tensor(offset, dtype=torch.float32, device=dev)[None, :, None, None]
    sel = torch.as_tensor(idx, device=dev)
    # nodata values reach fn unchanged (fill_value = nodata): in the denoised bands they are replaced by
    # the band's mean for the method and written back as NaN, in the other bands they become NaN
    fill = float(nodata) if nodata is not None else 0.0
    band_mean = torch.as_tensor(phys.mean(axis=1), dtype=torch.float32, device=dev)[None, :, None, None]
    replaced = [0, 0]  # values replaced as sparse noise, values seen

    def fn(batch: np.ndarray) -> np.ndarray:
        raw = torch.as_tensor(np.asarray(batch, np.float32), device=dev)
        bad = torch.isnan(raw)
        if nodata is not None and not np.isnan(nodata):
            bad |= raw == fill
        x = raw * sc + off
        y = x.clone()
        xs = x[:, sel]
        bs = bad[:, sel]
        if bool(bs.any()):
            xs = torch.where(bs, band_mean.expand_as(xs), xs)
        if despike:
            found = remove_sparse_noise(xs, sparse_sigma.to(dev))
            xs = found.cleaned
            replaced[0] += int((found.mask & ~bs).sum())
            replaced[1] += int((~bs).sum())
        y[:, sel] = run(xs).to(torch.float32)
        y[bad] = float("nan")
        return y.cpu().numpy()

    from hsikit.engine.job import output_meta, run_scene

    meta = output_meta(cube, dtype=np.float32)
    if out is not None:
        stats_run = run_scene(cube, fn, out, meta, tile=tile, halo=overlap, batch_size=batch_size,
                              overwrite=overwrite, fill_value=fill, progress=progress, description="denoise")
        result_cube = None
    else:
        from hsikit.cube import to_reflectance
        from hsikit.engine.run import ArraySink, run_tiled

        sink = ArraySink(meta.count, meta.height, meta.width)
        stats_run = run_tiled(cube, fn, sink, out_bands=meta.count, tile=tile, halo=overlap, batch_size=batch_size,
                              nodata_out=np.nan, fill_value=fill, out_dtype=np.float32, progress=progress,
                               description="denoise")
        result_cube = to_reflectance(cube).copy(data=sink.data)
        result_cube.attrs["denoise_model"] = name
    basis = stats["basis"]
    return DenoiseResult(
        model=name, out=Path(out) if out is not None else None, seconds=time.perf_counter() - t0,
        tiles=stats_run.tiles, tiles_skipped=stats_run.tiles_skipped, sigma=stats["sigma"].numpy(),
        bands=[int(b) for b in cube[BAND].values[idx]], sigma_estimated=stats["estimated"],
        subspace_dim=int(basis.shape[1]) if basis is not None else None, cube=result_cube,
        sparse_fraction=(replaced[0] / replaced[1] if replaced[1] else 0.0) if use_sparse else None,
    )
