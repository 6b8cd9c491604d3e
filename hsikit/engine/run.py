"""The tiled, streaming run: read windows -> batch -> method -> centre-crop -> write.

Memory is bounded by the tile size, halo, batch size and band counts, never by the scene size:
windows are read from the (lazy) source cube as they are needed (the next batch is prefetched on a
background thread while the method runs on the current one) and each finished batch is written to
the sink at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import xarray as xr
from rasterio.windows import Window

from hsikit.cube import BAND, X, Y
from hsikit.engine.progress import Progress
from hsikit.engine.windows import Tile, plan_tiles

#: method(batch) -> result: batch (B, C_in, th + 2h, tw + 2h) float32/any dtype, result (B, C_out, same h, w)
TileFunction = Callable[[np.ndarray], np.ndarray]


class Sink(Protocol):
    """Anything with ``write(array (C, h, w), window)``, e.g. :class:`hsikit.io.export.GeoTiffWriter`."""

    def write(self, array: np.ndarray, window: Window) -> None: ...


class ArraySink:
    """An in-memory :class:`Sink`: ``data`` (count, height, width) float32, filled window by window."""

    def __init__(self, count: int, height: int, width: int) -> None:
        self.data = np.empty((count, height, width), np.float32)

    def write(self, array: np.ndarray, window: Window) -> None:
        r, c = int(window.row_off), int(window.col_off)
        self.data[:, r : r + int(window.height), c : c + int(window.width)] = array


class Cancelled(Exception):
    """Raised when the progress callback asks to stop; the output is then not written."""


@dataclass
class RunStats:
    """What a run did: tile counts, pixels, seconds."""

    tiles: int
    tiles_skipped: int
    pixels: int
    seconds: float


def pad_tile(values: np.ndarray, tile: Tile) -> np.ndarray:
    """Pad a (C, h, w) read window to the full tile size.

    Pixels beyond the scene edge mirror the scene (reflection without repeating the edge pixel, as
    scipy's ``mode="mirror"``) as far as the window allows; any remaining fill (tiny scenes, the
    unused part of an edge tile) repeats the edge.
    """
    want = ((0, 0), (tile.pad_top, tile.pad_bottom), (tile.pad_left, tile.pad_right))
    if not any(p for pair in want for p in pair):
        return values
    h, w = values.shape[1:]
    mirror = tuple((min(a, n - 1), min(b, n - 1)) for (a, b), n in zip(want, (1, h, w)))
    out = np.pad(values, mirror, mode="reflect")
    rest = tuple((a - ma, b - mb) for (a, b), (ma, mb) in zip(want, mirror))
    return np.pad(out, rest, mode="edge") if any(p for pair in rest for p in pair) else out


def _read(source: xr.DataArray, tile: Tile) -> np.ndarray:
    r = tile.read
    part = source.isel({Y: slice(int(r.row_off), int(r.row_off + r.height)), X: slice(int(r.col_off), int(r.col_off + r.width))})
    return np.asarray(part.values)


def _batches(tiles: Sequence[Tile], size: int) -> Iterator[list[Tile]]:
    for i in range(0, len(tiles), size):
        yield list(tiles[i : i + size])


def run_tiled(
    source: xr.DataArray,
    fn: TileFunction,
    sink: Sink,
    *,
    out_bands: int,
    tile: int = 256,
    halo: int = 16,
    batch_size: int = 4,
    nodata_in: float | None = None,
    nodata_out: float | None = None,
    fill_value: float = 0.0,
    out_dtype: np.dtype | type = np.float32,
    progress: bool | Callable[[int, int], bool | None] = True,
    description: str = "tiles",
    scale: int = 1,
) -> RunStats:
    """Run ``fn`` over a (band, y, x) cube tile by tile and stream the result into ``sink``.

    Parameters
    ----------
    source
        The input cube, (band, y, x); lazy (dask) cubes are read one window at a time.
    fn
        Method on a batch, (B, C_in, H, W) -> (B, out_bands, scale H, scale W) (H = tile + 2 halo).
    sink
        Where core windows go: ``sink.write(array (out_bands, h, w), window)``; with ``scale`` > 1
        the windows are on the output grid, ``scale`` times finer than the input's.
    out_bands
        Number of output bands.
    tile, halo, batch_size
        Core tile edge, context pixels per side, tiles per call of ``fn``.
    nodata_in
        Input nodata value (default ``source.rio.nodata``); a pixel is nodata when every band is.
        Nodata pixels are set to ``fill_value`` before ``fn`` sees them and to ``nodata_out`` after;
        tiles with no valid pixel in their core are not computed.
    nodata_out
        Value written at nodata pixels (default NaN for float outputs, else ``nodata_in``).
    out_dtype
        dtype handed to the sink.
    progress
        True: a progress bar on stderr when it is a terminal; False: silent; a callable
        ``(done, total) -> bool | None`` is called after each batch and may return False to cancel.
    description
        Label of the progress bar.
    scale
        Integer factor between the output grid and the input grid (super-resolution); a nodata
        input pixel marks its ``scale`` x ``scale`` output pixels.

    Returns
    -------
    RunStats
    """
    if source.dims != (BAND, Y, X):
        raise ValueError(f"run_tiled needs a (band, y, x) cube, got dims {source.dims}")
    if int(scale) != scale or scale < 1:
        raise ValueError(f"scale must be a positive integer, got {scale}")
    s = int(scale)
    t0 = time.perf_counter()
    height, width = source.sizes[Y], source.sizes[X]
    nd_in = source.rio.nodata if nodata_in is None else nodata_in
    out_dtype = np.dtype(out_dtype)
    if nodata_out is None:
        nodata_out = np.nan if np.issubdtype(out_dtype, np.floating) else (nd_in if nd_in is not None else 0)
    tiles = plan_tiles(height, width, tile, halo)
    reporter = Progress(len(tiles), progress, description)
    skipped = 0

    def load(batch: list[Tile]) -> list[tuple[np.ndarray, np.ndarray]]:
        return [prepare_tile(pad_tile(_read(source, t), t), nd_in, fill_value) for t in batch]

    batches = list(_batches(tiles, batch_size))
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(load, batches[0]) if batches else None
        for i, batch in enumerate(batches):
            assert pending is not None
            prepared = pending.result()
            pending = pool.submit(load, batches[i + 1]) if i + 1 < len(batches) else None
            valid = [v for _, v in prepared]
            work = [k for k, t in enumerate(batch) if valid[k][t.crop].any()]
            results: dict[int, np.ndarray] = {}
            if work:
                stack = np.stack([prepared[k][0] for k in work])
                out = np.asarray(fn(stack))
                want = (len(work), out_bands, s * stack.shape[2], s * stack.shape[3])
                if out.shape != want:
                    raise ValueError(f"method returned shape {out.shape}, expected {want}")
                results = {k: out[j] for j, k in enumerate(work)}
            for k, t in enumerate(batch):
                rows, cols = t.crop
                if k in results:
                    out_rows, out_cols = slice(s * rows.start, s * rows.stop), slice(s * cols.start, s * cols.stop)
                    core = results[k][:, out_rows, out_cols].astype(out_dtype, copy=True)
                    mask = ~valid[k][rows, cols]
                    if mask.any():
                        core[:, _refine(mask, s)] = nodata_out
                else:
                    skipped += 1
                    core = np.full((out_bands, s * int(t.core.height), s * int(t.core.width)), nodata_out, out_dtype)
                sink.write(core, _refine_window(t.core, s))
            if reporter.update(len(batch)) is False:
                pool.shutdown(wait=True, cancel_futures=True)
                reporter.close()
                raise Cancelled("cancelled by the caller")
    reporter.close()
    return RunStats(tiles=len(tiles), tiles_skipped=skipped, pixels=height * width, seconds=time.perf_counter() - t0)


def _refine(mask: np.ndarray, scale: int) -> np.ndarray:
    """(h, w) -> (scale h, scale w): each pixel becomes a scale x scale block."""
    return mask if scale == 1 else np.repeat(np.repeat(mask, scale, axis=0), scale, axis=1)


def _refine_window(window: Window, scale: int) -> Window:
    """The window on the grid ``scale`` times finer (same extent)."""
    if scale == 1:
        return window
    return Window(window.col_off * scale, window.row_off * scale, window.width * scale, window.height * scale)


def _bad(values: np.ndarray, nodata: float | None) -> np.ndarray | None:
    """(C, h, w) True where a value is nodata or NaN; None when nothing can be bad."""
    floating = np.issubdtype(values.dtype, np.floating)
    has_nodata = nodata is not None and not np.isnan(nodata)
    if floating:
        bad = np.isnan(values)
        if has_nodata:
            bad |= values == nodata
        return bad
    return values == nodata if has_nodata else None


def prepare_tile(values: np.ndarray, nodata: float | None, fill_value: float) -> tuple[np.ndarray, np.ndarray]:
    """Fill nodata/NaN values with ``fill_value``; return (filled (C,h,w), valid pixels (h,w)).

    A pixel is valid when any band holds data.
    """
    bad = _bad(values, nodata)
    if bad is None or not bad.any():
        return values, np.ones(values.shape[1:], bool)
    return np.where(bad, np.asarray(fill_value, values.dtype), values), ~bad.all(axis=0)
