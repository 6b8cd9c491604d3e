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


def test_sample_physical_scales_marks_bad_values_and_counts_nan_everywhere() -> None:
    import pytest

    from hsikit.engine.grid import sample_physical
    from hsikit.errors import CubeValidationError

    data = np.arange(2 * 20 * 20, dtype=np.int16).reshape(2, 20, 20)
    data[1, 10, 10] = -1
    cube = make_cube(data, scale=[1e-4, 2e-4], offset=[0.0, 0.1], nodata=-1)
    phys, bad = sample_physical(cube, 100, "scene.tif")  # step ceil(sqrt(400 / 100)) = 2, from row/col 1
    assert phys.shape == bad.shape == (2, 10, 10)
    np.testing.assert_allclose(phys[0], data[0, 1::2, 1::2] * 1e-4)
    np.testing.assert_allclose(phys[1, 0, 0], data[1, 1, 1] * 2e-4 + 0.1)
    assert not bad.any()  # the nodata pixel (10, 10) is off the grid
    _, bad_all = sample_physical(cube, 400, "scene.tif")
    assert bad_all.sum() == 1 and bad_all[1, 10, 10]
    floats = data.astype(np.float32)
    floats[0, 0, 0] = np.nan  # off the grid, still counted
    with pytest.raises(CubeValidationError, match="scene.tif: 1 NaN values but nodata is not NaN"):
        sample_physical(make_cube(floats, nodata=-1), 100, "scene.tif")
