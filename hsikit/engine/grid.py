"""Regular pixel grids of a scene, read in row blocks (statistics samples of the tasks)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import xarray as xr

from hsikit.cube import BAND, X, Y


def grid_axes(height: int, width: int, step: int) -> tuple[np.ndarray, np.ndarray]:
    """Rows and columns of the grid with spacing ``step``, starting at ``step // 2``."""
    return np.arange(step // 2, height, step), np.arange(step // 2, width, step)


def read_grid(
    cube: xr.DataArray,
    rows: np.ndarray,
    cols: np.ndarray,
    *,
    block_values: int = 2**22,
    on_block: Callable[[np.ndarray], None] | None = None,
    progress: bool | Callable[[int, int], bool | None] = False,
    description: str = "reading",
) -> np.ndarray:
    """Stored values (band, len(rows), len(cols)) of a (band, y, x) cube at the grid ``rows`` x ``cols``.

    The cube is read in blocks of whole rows (about ``block_values`` values each), so only one block
    and the grid are in memory. ``on_block`` sees every block (band, rows, x), e.g. to count NaNs over
    the whole scene; without it, blocks holding no grid row are not read. ``progress`` as in
    :class:`hsikit.engine.progress.Progress`, one unit per block read.
    """
    from hsikit.engine.progress import Progress

    height, width = cube.sizes[Y], cube.sizes[X]
    block = max(1, block_values // max(1, cube.sizes[BAND] * width))
    starts = [r0 for r0 in range(0, height, block) if on_block is not None or ((rows >= r0) & (rows < r0 + block)).any()]
    bar = Progress(len(starts), progress, description)
    parts = []
    for r0 in starts:
        vals = np.asarray(cube.isel({Y: slice(r0, r0 + block)}).values)
        if on_block is not None:
            on_block(vals)
        take = rows[(rows >= r0) & (rows < r0 + block)] - r0
        if take.size:
            parts.append(vals[:, take][:, :, cols])
        bar.update()
    bar.close()
    if not parts:
        return np.empty((cube.sizes[BAND], 0, cols.size), cube.dtype)
    return np.concatenate(parts, axis=1)


def sample_physical(cube: xr.DataArray, max_pixels: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Physical values (band, h, w) float64 of a regular grid of about ``max_pixels`` pixels, and where they are bad.

    The grid step is ``ceil(sqrt(H W / max_pixels))`` (every pixel of a small scene); the grid keeps
    rows and columns of the scene as rows and columns. Values are the stored ones times the cube's
    ``scale`` plus ``offset``; ``bad`` is True at NaN and nodata values. When the cube is floating
    point and its nodata is not NaN, NaN values anywhere in the scene (not only on the grid) are a
    :class:`~hsikit.errors.CubeValidationError` naming ``source``.
    """
    from hsikit.errors import CubeValidationError

    height, width = cube.sizes[Y], cube.sizes[X]
    step = max(1, int(np.ceil(np.sqrt(height * width / max_pixels))))
    rows, cols = grid_axes(height, width, step)
    nodata = cube.rio.nodata
    check_nan = np.issubdtype(cube.dtype, np.floating) and not (nodata is not None and np.isnan(nodata))
    nan_count = [0]

    def count_nan(vals: np.ndarray) -> None:
        nan_count[0] += int(np.isnan(vals).sum())

    raw = read_grid(cube, rows, cols, on_block=count_nan if check_nan else None)
    if nan_count[0]:
        raise CubeValidationError(f"{nan_count[0]} NaN values but nodata is not NaN (fill them or set nodata to NaN)", source)
    bad = np.isnan(raw) if np.issubdtype(raw.dtype, np.floating) else np.zeros(raw.shape, bool)
    if nodata is not None and not np.isnan(nodata):
        bad |= raw == nodata
    scale = np.asarray(cube["scale"].values, np.float64)[:, None, None]
    offset = np.asarray(cube["offset"].values, np.float64)[:, None, None]
    return raw.astype(np.float64) * scale + offset, bad
