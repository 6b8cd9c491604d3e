"""hsikit.engine.grid: the regular-grid sample read in row blocks."""

from __future__ import annotations

import numpy as np

from hsikit.cube import make_cube
from hsikit.engine.grid import grid_axes, read_grid


def test_read_grid_equals_slicing_and_sees_every_block() -> None:
    data = np.arange(3 * 23 * 17, dtype=np.float32).reshape(3, 23, 17)
    cube = make_cube(data)
    rows, cols = grid_axes(23, 17, 4)
    assert rows.tolist() == [2, 6, 10, 14, 18, 22] and cols.tolist() == [2, 6, 10, 14]
    seen = []
    got = read_grid(cube, rows, cols, block_values=3 * 17 * 5, on_block=lambda b: seen.append(b.shape[1]))
    np.testing.assert_array_equal(got, data[:, rows][:, :, cols])
    assert sum(seen) == 23  # every row was handed to on_block, in blocks of 5
    calls = []
    few = read_grid(cube, np.array([1]), cols, block_values=3 * 17 * 5, progress=lambda d, t: calls.append((d, t)))
    np.testing.assert_array_equal(few, data[:, [1]][:, :, cols])
    assert calls == [(1, 1)]  # without on_block only the block holding the row is read
