"""``hsikit.pansharpen``: fuse a hyperspectral/multispectral cube with a PAN into a cube on the PAN grid.

The one place that ties io, the engine and the classical methods together (the CLI calls
:func:`pansharpen`). The walk:

1. open both rasters (paths or cubes); values become physical (:func:`hsikit.cube.to_reflectance`,
   nodata NaN); the PAN must have one band;
2. check the grids (:func:`hsikit.pansharpen.grids.check_grids`: same CRS, PAN pixel = cube pixel /
   ratio, aligned corners and extents) before anything is written;
3. fill nodata for the statistics (a band with no data is 0, a missing pixel its band mean, a missing
   PAN pixel the PAN mean) and compute the method's scene statistics once
   (:func:`hsikit.pansharpen.classical.fit`), so every tile uses the same weights and gains;
4. stream the PAN grid tile by tile through :func:`hsikit.engine.job.run_scene` into an atomic COG
   (the engine reads the PAN stacked with the cube replicated onto the PAN grid, lazily; tiles and
   halo are multiples of the ratio, so each tile sees whole LR pixels), or fuse in memory when no
   output path is given;
5. optionally score the result: ``"full"`` (no reference: D_lambda Khan, D_s, HQNR, D_S^R, D_rho on
   the fused scene) or ``"reduced"`` (Wald protocol on the degraded pair, Q2n/ERGAS/SAM); both hold
   the scene in memory and use the good bands only.

Memory: the LR cube and the PAN are held in memory (float32) for the statistics; the output is streamed
tile by tile (bounded by the tile size) when ``out`` is given, and held in memory otherwise.

The output is float32 in the cube's physical unit, with the cube's wavelengths, fwhm, bbl and band names
and the PAN's CRS and transform. Output nodata is NaN: a pixel is NaN in a band where that band of the
LR pixel under it was nodata, and in every band where the PAN is nodata.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from hsikit.cube import BAND, X, Y, make_cube, select_bands, to_reflectance
from hsikit.errors import UsageError
from hsikit.metrics.mtf import GNYQ_HS, GNYQ_PAN
from hsikit.pansharpen.classical import METHODS, Fusion, apply, fit, halo
from hsikit.pansharpen.grids import check_grids
from hsikit.devices import resolve_device as _device

#: Default method: the best of the Wald-protocol benchmark on EnMAP (docs/pansharpen.md).
DEFAULT_METHOD = "mtf-glp-fs"
#: Evaluation protocols.
EVALUATIONS = ("reduced", "full")


@dataclass
class PansharpenResult:
    """What :func:`pansharpen` did: method, ratio, where the result is, time, tiles and scores."""

    method: str
    ratio: int
    out: Path | None
    cube: xr.DataArray | None
    seconds: float
    tiles: int
    scores: dict[str, float] | None = None

    def summary(self) -> str:
        where = str(self.out) if self.out is not None else "memory"
        text = f"pansharpened ({self.method}, ratio {self.ratio}) -> {where} in {self.seconds:.1f} s"
        if self.scores:
            text += "; " + ", ".join(f"{k} {v:.4f}" for k, v in self.scores.items())
        return text


def _open(x: Any, what: str) -> xr.DataArray:
    if isinstance(x, xr.DataArray):
        cube = x
    elif isinstance(x, (str, os.PathLike)):
        from hsikit.io import open_cube

        cube = open_cube(x)
        cube.attrs.setdefault("source", str(x))
    else:
        arr = np.asarray(x)
        if arr.ndim == 2:
            arr = arr[None]
        if arr.ndim != 3:
            raise UsageError(f"the {what} must be a (band, y, x) array or a path; got a {arr.ndim}-D array")
        cube = make_cube(arr)
    if cube.ndim == 2:
        cube = cube.expand_dims(BAND)
    if cube.dims != (BAND, Y, X):
        raise UsageError(f"the {what} must be a (band, y, x) cube; got dims {cube.dims}")
    return cube


def _fill(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(filled copy, per-band fill values): NaN -> band mean, all-NaN band -> 0."""
    bad = np.isnan(values)
    counts = (~bad).sum(axis=(1, 2))
    sums = np.where(bad, 0, values).sum(axis=(1, 2), dtype=np.float64)
    fill = np.where(counts > 0, sums / np.maximum(counts, 1), 0.0).astype(values.dtype)
    return (np.where(bad, fill[:, None, None], values) if bad.any() else values), fill


def _tile_fn(fusion: Fusion, fill: np.ndarray, pan_fill: float, device: torch.device):
    r = fusion.ratio
    fill_t = torch.as_tensor(fill, device=device)[None, :, None, None]

    def fn(batch: np.ndarray) -> np.ndarray:
        t = torch.from_numpy(np.ascontiguousarray(batch, dtype=np.float32)).to(device)
        p = t[:, :1]
        lr = t[:, 1:, ::r, ::r]
        lr_bad, p_bad = torch.isnan(lr), torch.isnan(p)
        lr = torch.where(lr_bad, fill_t, lr)
        p = torch.where(p_bad, torch.full_like(p, pan_fill), p)
        out = apply(fusion, lr, p)
        mask = lr_bad.repeat_interleave(r, dim=2).repeat_interleave(r, dim=3) | p_bad
        return torch.where(mask, torch.full_like(out, float("nan")), out).cpu().numpy()

    return fn


def _good_bands(hs: xr.DataArray, values: np.ndarray) -> np.ndarray:
    has_data = ~np.isnan(values).all(axis=(1, 2))
    return np.flatnonzero(np.asarray(hs["bbl"].values, bool) & has_data)


def pansharpen(
    hs: Any,
    pan: Any,
    method: str = DEFAULT_METHOD,
    out: str | os.PathLike | None = None,
    ratio: int | None = None,
    *,
    bands: Any = "all",
    gnyq: float | Any = GNYQ_HS,
    gnyq_pan: float = GNYQ_PAN,
    evaluate: str | None = None,
    device: str = "cpu",
    tile: int = 512,
    overwrite: bool = True,
    progress: Any = False,
) -> PansharpenResult:
    """Pansharpen a cube with a PAN image onto the PAN grid.

    Parameters
    ----------
    hs
        The cube (path or cube ``(band, y, x)``), e.g. EnMAP 30 m.
    pan
        The PAN (path or one-band cube) on a grid ``ratio`` times finer, same CRS, aligned corners.
    method
        One of :data:`hsikit.pansharpen.classical.METHODS`.
    out
        Output path (.tif, a COG written atomically); None: return the result in memory.
    ratio
        Scale factor; None infers it from the grids (given, it must agree with them).
    bands
        Band preset or list for the cube (:func:`hsikit.cube.select_bands`).
    gnyq
        MTF gain at Nyquist of the cube's bands (scalar or per band).
    gnyq_pan
        MTF gain of the PAN (used by ``evaluate``).
    evaluate
        None, ``"full"`` or ``"reduced"`` (see the module docstring).
    device
        ``cpu``, ``cuda`` or ``auto``.
    tile
        Core tile edge in PAN pixels (rounded up to a multiple of the ratio).
    overwrite
        Replace an existing output.
    progress
        Progress bar (True) or callback, as :func:`hsikit.engine.run.run_tiled`.

    Returns
    -------
    PansharpenResult
    """
    from hsikit.pansharpen.classical import _method

    t0 = time.perf_counter()
    name = _method(method)
    if evaluate is not None and evaluate not in EVALUATIONS:
        raise UsageError(f"evaluate must be one of {', '.join(EVALUATIONS)}; got {evaluate!r}")
    dev = _device(device)
    if out is not None:
        from hsikit.engine.job import check_cog_output

        check_cog_output(out, overwrite=overwrite, task="pansharpen")
    hs_cube = select_bands(_open(hs, "cube"), bands)
    pan_cube = _open(pan, "PAN")
    if pan_cube.sizes[BAND] != 1:
        raise UsageError(f"the PAN must have one band; {pan_cube.attrs.get('source', 'it')} has {pan_cube.sizes[BAND]}")
    grid = check_grids(hs_cube, pan_cube, ratio)
    r = grid.ratio
    hs_phys = to_reflectance(hs_cube)
    pan_phys = to_reflectance(pan_cube)
    hs_vals = np.asarray(hs_phys.values, np.float32)
    pan_vals = np.asarray(pan_phys.values, np.float32)[0]
    if np.isnan(pan_vals).all():
        raise UsageError("the PAN holds no valid pixel")
    filled, fill = _fill(hs_vals)
    pan_fill = float(np.nanmean(pan_vals))
    pan_filled = np.where(np.isnan(pan_vals), pan_fill, pan_vals)
    fusion = fit(torch.from_numpy(filled).to(dev), torch.from_numpy(pan_filled).to(dev), r, name, gnyq=gnyq)
    fn = _tile_fn(fusion, fill, pan_fill, dev)
    wl, fw, bbl = hs_cube["wavelength"].values, hs_cube["fwhm"].values, hs_cube["bbl"].values
    names = [str(s) for s in hs_cube["band_name"].values]
    import dask.array as da

    from hsikit.engine.run import run_tiled

    rep = da.from_array(hs_vals, chunks=(hs_vals.shape[0], 256, 256))
    rep = da.repeat(da.repeat(rep, r, axis=1), r, axis=2)
    stack = da.concatenate([da.from_array(pan_vals[None], chunks=(1, 256 * r, 256 * r)), rep], axis=0)
    source = xr.DataArray(stack, dims=(BAND, Y, X), coords={Y: pan_cube[Y].values, X: pan_cube[X].values})
    if grid.georeferenced:
        source = source.rio.write_crs(pan_cube.rio.crs).rio.write_transform(pan_cube.rio.transform())
    edge = r * -(-int(tile) // r)
    run = dict(tile=edge, halo=halo(r), batch_size=1, fill_value=float("nan"), progress=progress,
               description="pansharpen")
    result_cube = None
    if out is not None:
        from hsikit.engine.job import run_scene
        from hsikit.io.export import RasterMeta

        meta = RasterMeta.from_cube(pan_cube).with_bands(
            hs_vals.shape[0], names=names, dtype=np.float32, wavelength=wl, fwhm=fw, bbl=bbl, nodata=float("nan"))
        meta.tags.update({"pansharpen_method": name, "pansharpen_ratio": str(r)})
        stats = run_scene(source, fn, out, meta, overwrite=overwrite, **run)
    else:
        from hsikit.engine.run import ArraySink

        sink = ArraySink(hs_vals.shape[0], *pan_vals.shape)  # every core is written (skipped tiles as NaN)
        stats = run_tiled(source, fn, sink, out_bands=hs_vals.shape[0], nodata_out=float("nan"), **run)
        transform = pan_cube.rio.transform() if grid.georeferenced else None
        result_cube = make_cube(sink.data, wavelength=wl, fwhm=fw, bbl=bbl, band_names=names,
                                crs=pan_cube.rio.crs if grid.georeferenced else None, transform=transform,
                                nodata=float("nan"), name="pansharpened")
        result_cube.attrs.update({"pansharpen_method": name, "pansharpen_ratio": r})
    tiles = stats.tiles
    scores = None
    if evaluate is not None:
        scores = _evaluate(evaluate, name, fusion, filled, pan_filled, _good_bands(hs_cube, hs_vals), r, gnyq, gnyq_pan)
    return PansharpenResult(name, r, None if out is None else Path(out), result_cube, time.perf_counter() - t0,
                            tiles, scores)


def _evaluate(kind: str, name: str, fusion: Fusion, hs: np.ndarray, pan: np.ndarray, good: np.ndarray, r: int,
              gnyq: Any, gnyq_pan: float) -> dict[str, float]:
    from hsikit.pansharpen.protocols import full_resolution_scores, reduced_resolution

    if good.size == 0:
        raise UsageError("no good band to evaluate")
    g = np.broadcast_to(np.asarray(gnyq, float), (hs.shape[0],))[good]
    if kind == "full":
        fused = apply(fusion, torch.from_numpy(hs), torch.from_numpy(pan))
        return full_resolution_scores(fused[good], hs[good], pan, r, gnyq=g)
    h, w = (hs.shape[1] // r) * r, (hs.shape[2] // r) * r
    if h == 0 or w == 0:
        raise UsageError(f"the cube ({hs.shape[1]}x{hs.shape[2]}) is too small for a reduced-resolution test at ratio {r}")
    res = reduced_resolution(hs[good, :h, :w], pan[: h * r, : w * r], r, [name], gnyq=g, gnyq_pan=gnyq_pan)[name]
    return {k: v for k, v in res.items() if k != "seconds"}


__all__ = ["DEFAULT_METHOD", "EVALUATIONS", "METHODS", "PansharpenResult", "pansharpen"]
