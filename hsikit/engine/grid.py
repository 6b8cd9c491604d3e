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
