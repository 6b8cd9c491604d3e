"""Per-band PNG stacks: hsikit.io.pngstack (real CAVE scenes + tiny written fixtures)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from hsikit.cube import to_reflectance, validate
from hsikit.errors import InputError, MetadataError
from hsikit.io import detect_format, open_cube
from hsikit.io.pngstack import read_png_stack


def _cave(shared_data: Path, scene: str) -> Path:
    return shared_data / "cave_multispectral" / f"{scene}_ms"


def _band(value: int, shape: tuple[int, int] = (3, 4), dtype: type = np.uint16) -> np.ndarray:
    """A small band whose pixels are all distinct: value + 10*r + c."""
    r, c = np.indices(shape)
    return (value + 10 * r + c).astype(dtype)


def _save_grey(path: Path, arr: np.ndarray) -> Path:
    Image.fromarray(arr).save(path)  # uint16 -> 16-bit grey (I;16), uint8 -> 8-bit grey (L)
    return path


def _save_rgba_grey(path: Path, arr: np.ndarray) -> Path:
    rgba = np.dstack([arr, arr, arr, np.full(arr.shape, 255, np.uint8)])
    Image.fromarray(rgba, "RGBA").save(path)
    return path


# ---------------------------------------------------------------------------- real CAVE scenes

def test_cave_balloons(shared_data: Path) -> None:
    folder = _cave(shared_data, "balloons")
    cube = read_png_stack(folder)
    assert cube.dims == ("band", "y", "x") and cube.shape == (31, 512, 512) and cube.dtype == np.uint16
    assert cube.attrs["sensor"] == "CAVE" and cube.attrs["source"] == str(folder)
    np.testing.assert_allclose(cube["wavelength"].values, np.arange(400, 701, 10))
    np.testing.assert_allclose(cube["fwhm"].values, 10.0)
    np.testing.assert_allclose(cube["scale"].values, 1 / 65535)
    assert cube["band"].values.tolist() == list(range(1, 32))
    assert cube["band_name"].values[16] == "balloons_ms_17"
    validate(cube, require_wavelengths=True)
    # orientation: band 17, row 123, column 401 equals Pillow's reading of balloons_ms_17.png there
    with Image.open(folder / "balloons_ms_17.png") as im:
        assert im.mode == "I;16"
        png = np.asarray(im)
        assert int(cube.values[16, 123, 401]) == int(im.getpixel((401, 123)))  # getpixel takes (x, y)
    np.testing.assert_array_equal(cube.values[16], png)
    refl = to_reflectance(cube)
    assert 0.0 <= float(refl.min()) and float(refl.max()) <= 1.0


def test_cave_watercolors_rgba_quirk(shared_data: Path) -> None:
    folder = _cave(shared_data, "watercolors")
    cube = open_cube(folder)  # dispatch: folder of PNGs -> pngstack
    assert cube.shape == (31, 512, 512) and cube.dtype == np.uint8 and cube.attrs["sensor"] == "CAVE"
    np.testing.assert_allclose(cube["scale"].values, 1 / 255)
    assert int(cube.values.max()) == 214  # stored values kept (0-214), not rescaled
    with Image.open(folder / "watercolors_ms_05.png") as im:
        assert im.mode == "RGBA"
        rgba = np.asarray(im)
    assert int(cube.values[4, 300, 77]) == int(rgba[300, 77, 0]) == int(rgba[300, 77, 2])
    np.testing.assert_array_equal(cube.values[4], rgba[..., 0])
    refl = to_reflectance(cube)
    assert float(refl.max()) == pytest.approx(214 / 255, rel=1e-6)


# ---------------------------------------------------------------------------- fixtures

def test_numeric_band_order_and_ignored_bmp(tmp_path: Path) -> None:
    for n in (1, 2, 10):
        _save_grey(tmp_path / f"scene_{n}.png", _band(1000 * n))
    Image.fromarray(np.zeros((3, 4, 3), np.uint8)).save(tmp_path / "scene_RGB.bmp")
    assert detect_format(tmp_path) == "pngstack"
    cube = read_png_stack(tmp_path)
    assert cube["band"].values.tolist() == [1, 2, 10]  # not 1, 10, 2
    assert cube["band_name"].values.tolist() == ["scene_1", "scene_2", "scene_10"]
    np.testing.assert_array_equal(cube.values[2], _band(10000))
    assert cube.values[2, 2, 3] == 10000 + 23
    assert cube.attrs["sensor"] == "" and cube.attrs["wavelengths_known"] == 0


def test_nested_folder_and_cave_wavelengths(tmp_path: Path) -> None:
    inner = tmp_path / "toy_ms" / "toy_ms"
    inner.mkdir(parents=True)
    for n in range(1, 32):
        _save_grey(inner / f"toy_ms_{n:02d}.png", _band(n, (2, 3)))
    cube = read_png_stack(tmp_path / "toy_ms")
    assert cube.shape == (31, 2, 3) and cube.attrs["sensor"] == "CAVE"
    assert cube["wavelength"].values[[0, 10, 30]].tolist() == [400.0, 500.0, 700.0]
    np.testing.assert_array_equal(cube.values[30], _band(31, (2, 3)))


def test_eight_bit_grey_and_rgba_grey(tmp_path: Path) -> None:
    _save_grey(tmp_path / "b_1.png", _band(5, dtype=np.uint8))
    _save_rgba_grey(tmp_path / "b_2.png", _band(50, dtype=np.uint8))
    cube = read_png_stack(tmp_path, wavelength=[0.5, 0.6])
    assert cube.dtype == np.uint8
    np.testing.assert_array_equal(cube.values[1], _band(50, dtype=np.uint8))
    np.testing.assert_allclose(cube["scale"].values, 1 / 255)
    np.testing.assert_allclose(cube["wavelength"].values, [500, 600])  # micrometres -> nm


def test_mixed_bit_depths_get_per_band_scale(tmp_path: Path) -> None:
    _save_grey(tmp_path / "m_1.png", _band(40000))
    _save_grey(tmp_path / "m_2.png", _band(7, dtype=np.uint8))
    cube = read_png_stack(tmp_path)
    assert cube.dtype == np.uint16
    np.testing.assert_allclose(cube["scale"].values, [1 / 65535, 1 / 255])
    assert cube.values[1, 0, 0] == 7


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="folder not found"):
        read_png_stack(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no PNG files"):
        read_png_stack(tmp_path / "empty")

    colour = tmp_path / "colour"
    colour.mkdir()
    rgb = np.zeros((3, 4, 3), np.uint8)
    rgb[..., 0] = 9
    Image.fromarray(rgb).save(colour / "c_1.png")
    with pytest.raises(InputError, match="R, G and B differ"):
        read_png_stack(colour)

    unnumbered = tmp_path / "unnumbered"
    unnumbered.mkdir()
    _save_grey(unnumbered / "band_a.png", _band(1))
    with pytest.raises(InputError, match="no band number"):
        read_png_stack(unnumbered)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    _save_grey(mixed / "a_1.png", _band(1))
    _save_grey(mixed / "b_2.png", _band(2))
    with pytest.raises(InputError, match="several stacks"):
        read_png_stack(mixed)

    sizes = tmp_path / "sizes"
    sizes.mkdir()
    _save_grey(sizes / "s_1.png", _band(1))
    _save_grey(sizes / "s_2.png", _band(2, (4, 4)))
    with pytest.raises(InputError, match="differ in size"):
        read_png_stack(sizes)

    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "x_1.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    with pytest.raises(InputError, match="not a readable PNG"):
        read_png_stack(broken)

    good = tmp_path / "good"
    good.mkdir()
    _save_grey(good / "g_1.png", _band(1))
    with pytest.raises(MetadataError, match="2 wavelengths given for 1 band"):
        read_png_stack(good, wavelength=[400, 500])
    with pytest.raises(InputError, match="must be a folder"):
        read_png_stack(good / "g_1.png")


def test_duplicate_band_numbers(tmp_path: Path) -> None:
    _save_grey(tmp_path / "d_1.png", _band(1))
    shutil.copy(tmp_path / "d_1.png", tmp_path / "d_01.png")
    with pytest.raises(InputError, match=r"band numbers \[1\]"):
        read_png_stack(tmp_path)
