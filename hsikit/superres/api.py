"""``hsikit.super_resolve``: super-resolve a scene tile by tile onto a grid ``scale`` times finer.

The one place that ties io, the engine and the super-resolution methods together (the CLI calls
:func:`super_resolve`). The walk:

1. open the scene and check it (a (band, y, x) cube, an integer ``scale`` >= 2 that the model
   supports, a known model, no NaN unless nodata is NaN) before anything is written;
2. for the learned models, one statistics pass over a regular pixel grid (at most
   :data:`SAMPLE_PIXELS`): the scene's principal basis (:func:`~hsikit.superres.subspace.principal_basis`)
   and value scale, so that every tile uses the same parameters (no seams);
3. stream tiles with a halo through the engine (:func:`hsikit.engine.job.run_scene`, an atomic COG,
   or into memory); each tile comes back ``scale`` times larger and its core lands on the refined grid.

Output grid: same CRS and upper-left corner, pixels ``scale`` times smaller (``scale`` times the rows
and columns). Values are physical (scale/offset applied), float32; wavelengths, fwhm, bbl and band
names are kept. A nodata input pixel becomes ``scale`` x ``scale`` NaN output pixels; a value missing
in some bands only is filled with its band's mean for the method and written as NaN.

Methods: ``bicubic`` (cubic convolution, Keys a = -0.5, on aligned grids; any integer scale) and
the released learned models (``essaformer-sub-x3``: ESSAformer on the scene's eigen-images,
:mod:`hsikit.superres.subspace`), which refine the bands with ``bbl`` True and leave the others bicubic.
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
from hsikit.devices import resolve_device as _device
from hsikit.errors import CubeValidationError, InputError, UsageError

#: Classical methods dispatched by name (learned models come from the zoo registry).
CLASSICAL = ("bicubic",)
#: Default method: ``auto`` = the released learned model for the scale (:data:`LEARNED_BY_SCALE`), else bicubic.
DEFAULT_MODEL = "auto"
#: The released learned model ``auto`` picks per scale: the best on the test split (docs/superres.md).
LEARNED_BY_SCALE = {3: "essaformer-sub-x3"}
#: Pixels sampled for the scene statistics of the learned models.
SAMPLE_PIXELS = 65536
#: Tile core and halo (input pixels) of bicubic: its support is 2 pixels per side.
BICUBIC_TILE, BICUBIC_HALO = 128, 2
#: Output bytes per method call that set the default batch size (the output is scale^2 times the input).
BATCH_BYTES = 64 << 20
#: Halo (input pixels) of the learned models.
LEARNED_HALO = 4
#: A learned model's default window (core + 2 halos), in training windows: ESSA's key normalisation
#: depends on the extent, but 2x the training window scores the same on the test split as 1x
#: (+2.52 against +2.50 dB over bicubic, docs/superres.md) with a third of the halo overhead.
WINDOW_FACTOR = 2


@dataclass
class SuperResolveResult:
    """What :func:`super_resolve` did; ``cube`` is the result when no output path was given."""

    model: str
    scale: int
    out: Path | None
    seconds: float
    tiles: int
    tiles_skipped: int
    shape_in: tuple[int, int, int]
    refined_bands: list[int]
    subspace_dim: int | None = None
    cube: xr.DataArray | None = field(default=None, repr=False)

    def summary(self, src: Any = "") -> str:
        """One line: model, scale, sizes, tiles, time."""
        b, h, w = self.shape_in
        dest = f" -> {self.out}" if self.out is not None else ""
        how = ""
        if self.subspace_dim is not None:
            how = f"; {len(self.refined_bands)} bands refined on {self.subspace_dim} eigen-images, the others bicubic"
        return (f"super-resolved {src}{dest} with {self.model} x{self.scale}: {b} bands, {h}x{w} -> "
                f"{h * self.scale}x{w * self.scale} px, {self.tiles} tiles ({self.tiles_skipped} empty) in "
                f"{self.seconds:.1f} s{how}")


def _resolve_model(model: str, scale: int, weights: str | os.PathLike | None) -> tuple[str, Any]:
    """(name, method): ``"bicubic"`` or a learned zoo model (eval mode) for ``scale``, with its released
    weights or ``weights``; ``"auto"`` resolved (:data:`DEFAULT_MODEL`)."""
    import hsikit.superres.subspace  # noqa: F401  (registers the learned models)
    from hsikit.zoo import create_model, get_entry, list_models, released_models

    name = str(model).strip().lower()
    if name == "auto":
        learned = LEARNED_BY_SCALE.get(scale)
        name = learned if learned and (weights is not None or learned in released_models("superres")) else "bicubic"
    if name in CLASSICAL:
        if weights is not None:
            raise UsageError(f"{name} is a classical method and takes no weights")
        return name, name
    try:
        get_entry(name, task="superres")
    except UsageError:
        runnable = ", ".join(["auto", *CLASSICAL, *released_models("superres")])
        other = [n for n in list_models("superres") if n not in released_models("superres")]
        extra = f"; without released weights, run with weights=<folder> / --weights: {', '.join(other)}" if other else ""
        raise UsageError(f"unknown super-resolution model {model!r} (available: {runnable}{extra})") from None
    net = create_model(name, pretrained=True, task="superres", weights=weights).eval()
    if net.scale != scale:
        raise UsageError(f"{name} super-resolves by {net.scale}, not {scale}: use --scale {net.scale} or bicubic")
    return name, net


def _scale_arg(scale: Any) -> int:
    try:
        s = int(scale)
    except (TypeError, ValueError):
        raise UsageError(f"scale must be an integer >= 2, got {scale!r}") from None
    if s != scale or s < 2:
        raise UsageError(f"scale must be an integer >= 2, got {scale!r}")
    return s


def _statistics(cube: xr.DataArray, idx: np.ndarray, k: int, source: str) -> tuple[torch.Tensor, torch.Tensor, float, np.ndarray]:
    """(mean (L,), basis (L, k), value scale, band means (all bands)) of the bands ``idx`` from a regular grid.

    NaN values in a scene whose nodata is not NaN are a CubeValidationError (:func:`~hsikit.engine.grid.sample_physical`)."""
    from hsikit.engine.grid import sample_physical
    from hsikit.superres.subspace import principal_basis, value_scale

    phys, bad = sample_physical(cube, SAMPLE_PIXELS, source)
    keep = ~bad[idx].any(axis=0)
    sample = phys[idx][:, keep]
    if sample.shape[1] < 2:
        raise InputError("fewer than 2 valid pixels in the statistics sample: nothing to super-resolve", source)
    if not np.isfinite(sample).all():
        raise CubeValidationError("infinite values in the scene", source)
    mean, basis = principal_basis(sample, k)
    band_mean = np.array([phys[b][~bad[b]].mean() if (~bad[b]).any() else 0.0 for b in range(phys.shape[0])])
    return mean, basis, value_scale(sample), band_mean


def super_resolve(
    cube_or_path: Any,
    scale: int = 3,
    model: str = DEFAULT_MODEL,
    *,
    out: str | os.PathLike | None = None,
    tile: int | None = None,
    overlap: int | None = None,
    batch_size: int | None = None,
    device: str = "auto",
    weights: str | os.PathLike | None = None,
    overwrite: bool = True,
    progress: Any = True,
) -> SuperResolveResult:
    """Super-resolve a scene by an integer ``scale``.

    Parameters
    ----------
    cube_or_path
        A scene path (any format hsikit reads), a cube (:mod:`hsikit.cube`) or a (band, y, x) array.
    scale
        Integer factor >= 2 (a learned model supports the scale it was trained for).
    model
        ``"auto"`` (the released learned model for ``scale``, else bicubic; the result says which ran),
        ``"bicubic"`` or a learned model (``"essaformer-sub-x3"``).
    out
        Output path (COG on the refined grid, written atomically); None returns the result in memory.
    tile, overlap
        Tile core edge and halo in input pixels. Defaults: bicubic 128 / 2; a learned model
        :data:`WINDOW_FACTOR` times its training window (``config.json`` ``window``) minus two halos of
        :data:`LEARNED_HALO` (ESSA's key normalisation depends on the extent it sees; measured, see there).
    batch_size
        Tiles per method call; default: as many as keep one call's float32 output under
        :data:`BATCH_BYTES` (at least 1), so memory does not grow with the band count or the scale.
    device
        ``"auto"`` (CUDA when available), ``"cpu"`` or ``"cuda"``.
    weights
        For a learned ``model``: a weights folder to load instead of the released ``models/<model>``.
    overwrite
        Replace an existing output.
    progress
        Progress bar (True), silent (False) or a callback ``(done, total) -> bool | None``.

    Returns
    -------
    SuperResolveResult
    """
    t0 = time.perf_counter()
    s = _scale_arg(scale)
    from hsikit.io import as_cube

    cube, source = as_cube(cube_or_path)
    if cube.dims != (BAND, Y, X):
        raise UsageError(f"expected a (band, y, x) cube, got dims {cube.dims}")
    if batch_size is not None and batch_size < 1:
        raise UsageError("batch size must be >= 1")
    name, net = _resolve_model(model, s, weights)
    learned = not isinstance(net, str)
    if learned:
        halo = LEARNED_HALO if overlap is None else int(overlap)
        core = max(WINDOW_FACTOR * net.window - 2 * halo, 8) if tile is None else int(tile)
    else:
        halo = BICUBIC_HALO if overlap is None else int(overlap)
        core = BICUBIC_TILE if tile is None else int(tile)
    if core < 1 or halo < 0:
        raise UsageError(f"tile must be >= 1 and overlap >= 0, got {core} and {halo}")
    if batch_size is None:
        tile_bytes = 4 * cube.sizes[BAND] * (s * (min(core, max(cube.sizes[Y], cube.sizes[X])) + 2 * halo)) ** 2
        batch_size = max(1, BATCH_BYTES // tile_bytes)
    if out is not None:
        from hsikit.engine.job import check_cog_output

        check_cog_output(out, overwrite=overwrite, task="super-resolve")
    dev = _device(device)
    n_all = cube.sizes[BAND]
    sc = np.asarray(cube["scale"].values, np.float64)
    off = np.asarray(cube["offset"].values, np.float64)
    nodata = cube.rio.nodata
    good = np.flatnonzero(np.asarray(cube["bbl"].values, bool))
    stats = None
    if learned:
        if good.size < 2:
            raise InputError(f"{good.size} valid bands: the learned models need at least 2 (use bicubic)", source)
        stats = _statistics(cube, good, net.k, source)
        net = net.to(dev)
    sc_t = torch.as_tensor(sc, dtype=torch.float32, device=dev)[None, :, None, None]
    off_t = torch.as_tensor(off, dtype=torch.float32, device=dev)[None, :, None, None]
    fill = float(nodata) if nodata is not None else 0.0
    band_mean = None if stats is None else torch.as_tensor(stats[3], dtype=torch.float32, device=dev)[None, :, None, None]
    sel = torch.as_tensor(good, device=dev)

    def fn(batch: np.ndarray) -> np.ndarray:
        from hsikit.data.resample import upsample

        raw = torch.as_tensor(np.asarray(batch, np.float32), device=dev)
        bad = torch.isnan(raw)
        if nodata is not None and not np.isnan(nodata):
            bad |= raw == fill
        x = raw * sc_t + off_t
        if bool(bad.any()):
            means = band_mean if band_mean is not None else torch.nanmean(torch.where(bad, torch.nan, x), dim=(2, 3),
                                                                          keepdim=True).nan_to_num(0.0)
            x = torch.where(bad, means.expand_as(x), x)
        with torch.no_grad():
            y = upsample(x, s)
            if learned:
                mean, basis, vs, _ = stats
                y[:, sel] = net(x[:, sel], mean.float(), basis.float(), vs, base=y[:, sel]).to(torch.float32)
        if bool(bad.any()):
            y[bad.repeat_interleave(s, dim=2).repeat_interleave(s, dim=3)] = float("nan")
        return y.cpu().numpy()

    from hsikit.engine.job import output_meta, run_scene

    meta = output_meta(cube, dtype=np.float32, refine=s)
    meta.tags.update({"superres_model": name, "superres_scale": str(s)})
    run = dict(tile=core, halo=halo, batch_size=batch_size, fill_value=fill, progress=progress,
               description="super-resolve", scale=s)
    result_cube = None
    if out is not None:
        stats_run = run_scene(cube, fn, out, meta, overwrite=overwrite, **run)
    else:
        from hsikit.cube import make_cube
        from hsikit.engine.run import ArraySink, run_tiled

        sink = ArraySink(meta.count, meta.height, meta.width)
        stats_run = run_tiled(cube, fn, sink, out_bands=meta.count, nodata_out=np.nan, out_dtype=np.float32, **run)
        result_cube = make_cube(sink.data, wavelength=cube["wavelength"].values, fwhm=cube["fwhm"].values,
                                bbl=cube["bbl"].values, band_names=[str(v) for v in cube["band_name"].values],
                                crs=cube.rio.crs, transform=meta.transform, nodata=float("nan"), name="super_resolved")
        result_cube.attrs.update({"superres_model": name, "superres_scale": s})
    return SuperResolveResult(
        model=name, scale=s, out=Path(out) if out is not None else None, seconds=time.perf_counter() - t0,
        tiles=stats_run.tiles, tiles_skipped=stats_run.tiles_skipped, shape_in=(n_all, cube.sizes[Y], cube.sizes[X]),
        refined_bands=[int(b) for b in cube[BAND].values[good]] if learned else [],
        subspace_dim=int(stats[1].shape[1]) if stats is not None else None, cube=result_cube,
    )
