"""MATLAB .mat reader: hsikit.io.matlab (real files from shared data + tiny v5 / v7.3 fixtures)."""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pytest
import scipy.io as sio
from scipy.optimize import nnls

from hsikit.cube import to_reflectance, validate
from hsikit.errors import InputError, MetadataError, UsageError
from hsikit.io import detect_format, open_cube
from hsikit.io.matlab import guess_sensor, matlab_variables, pixels_to_cube, read_matlab, read_matlab_array


def _fcls(y: np.ndarray, endmembers: np.ndarray, delta: float = 1e3) -> np.ndarray:
    """Fully constrained least squares of one spectrum (sum-to-one row weighted by ``delta``)."""
    aug = np.vstack([endmembers, np.full((1, endmembers.shape[1]), delta)])
    return nnls(aug, np.concatenate([y, [delta]]))[0]


def _image(rows: int, cols: int, bands: int, dtype: type = np.float64) -> np.ndarray:
    """H x W x L test image whose value encodes its position: 100*r + 10*c + l (all distinct)."""
    r, c, band = np.meshgrid(np.arange(rows), np.arange(cols), np.arange(bands), indexing="ij")
    return (100 * r + 10 * c + band).astype(dtype)


def _band_first(img: np.ndarray) -> np.ndarray:
    return np.moveaxis(img, 2, 0)


def _write_v73(path: Path, variables: dict[str, np.ndarray]) -> Path:
    """Write a MATLAB v7.3-style file: HDF5 with a 512-byte MATLAB userblock, arrays stored transposed."""
    classes = {"f8": "double", "f4": "single", "u1": "uint8", "u2": "uint16", "i2": "int16"}
    with h5py.File(path, "w", userblock_size=512) as f:
        for name, value in variables.items():
            arr = np.atleast_2d(np.asarray(value))
            ds = f.create_dataset(name, data=arr.T)  # MATLAB column-major -> h5py sees reversed axes
            ds.attrs["MATLAB_class"] = np.bytes_(classes[arr.dtype.str[1:]])
    header = b"MATLAB 7.3 MAT-file, Platform: GLNXA64, Created on: Mon Jan  1 00:00:00 2024 HDF5 schema 1.00 ."
    with open(path, "r+b") as fh:
        fh.write(header.ljust(116) + b"\x00" * 8 + b"\x00\x02IM")
    return path


# ---------------------------------------------------------------------------- real data: Samson

def test_samson_zhu_orientation(shared_data: Path) -> None:
    path = shared_data / "samson" / "samson_1.mat"
    cube = read_matlab(path)
    raw = read_matlab_array(path, "V")  # 156 x 9025, MATLAB column-major pixels
    n_row = int(read_matlab_array(path, "nRow")[0, 0])
    assert raw.shape == (156, 9025) and n_row == 95
    assert cube.dims == ("band", "y", "x") and cube.shape == (156, 95, 95) and cube.dtype == np.float64
    assert cube.attrs["sensor"] == "SAMSON" and cube.attrs["source"] == str(path)
    assert (cube.attrs["matlab_key"], cube.attrs["matlab_layout"]) == ("V", "zhu")
    assert cube.attrs["wavelengths_known"] == 0
    for r, c in [(0, 0), (3, 71), (94, 2), (50, 17)]:
        np.testing.assert_array_equal(cube.values[:, r, c], raw[:, c * n_row + r])
    # The whole cube is the README's Y.T.reshape(nRow, nCol, L, order="F").
    np.testing.assert_array_equal(np.moveaxis(cube.values, 0, 2), raw.T.reshape(95, 95, 156, order="F"))


def test_samson_orientation_against_independent_abundances(shared_data: Path) -> None:
    """MiSiCNet's A_true (95 x 95 x 3, a MATLAB image) is FCLS(Y, E): our pixel (r, c) must match A_true[r, c]."""
    cube = read_matlab(shared_data / "samson" / "samson_1.mat")
    e = read_matlab_array(shared_data / "samson" / "E_misicnet.mat", "E")
    a_true = read_matlab_array(shared_data / "samson" / "A_true_misicnet.mat", "A_true")
    for r, c in [(10, 80), (70, 5), (33, 60)]:
        a = _fcls(cube.values[:, r, c], e)
        np.testing.assert_allclose(a, a_true[r, c], atol=1e-4)
        assert np.abs(a - a_true[c, r]).max() > 0.5  # the transposed reading would be far off


def test_samson_wavelengths_from_companion_file(shared_data: Path) -> None:
    lam = read_matlab_array(shared_data / "apex_gt_only" / "DeepTransHSU_Wavelengths_Apex_DC_Samson.mat", "lambda_Samson")
    assert lam.shape == (1, 156)
    cube = read_matlab(shared_data / "samson" / "samson_1.mat", wavelength=lam)
    assert cube.attrs["wavelengths_known"] == 1
    assert 400 < cube["wavelength"].values[0] < 402 and 888 < cube["wavelength"].values[-1] < 890
    validate(cube, require_wavelengths=True)


def test_samson_cycunet_matrix_without_grid_keys(shared_data: Path) -> None:
    """samson_dataset_CyCU-Net.mat has Y (= V) but no nRow/nCol: read as a square column-major grid."""
    cube = read_matlab(shared_data / "samson" / "samson_dataset_CyCU-Net.mat")
    assert cube.shape == (156, 95, 95) and cube.attrs["matlab_grid"] == "assumed square"
    np.testing.assert_array_equal(cube.values, read_matlab(shared_data / "samson" / "samson_1.mat").values)


# ---------------------------------------------------------------------------- real data: Moffett, MUUFL

def test_moffett_lines_cols_is_column_major(shared_data: Path) -> None:
    path = shared_data / "moffett" / "moffett.mat"
    cube = read_matlab(path)
    y = read_matlab_array(path, "Y")
    assert cube.shape == (184, 50, 50) and cube.attrs["matlab_layout"] == "zhu" and cube.attrs["sensor"] == "AVIRIS"
    for r, c in [(3, 41), (40, 7), (49, 0)]:
        np.testing.assert_array_equal(cube.values[:, r, c], y[:, c * 50 + r])
    # S_GT (50 x 50 x 3) is FCLS(Y, GT) with pixels in F order: pixel (r, c) <-> S_GT[r, c], not S_GT[c, r].
    gt = read_matlab_array(path, "GT").T  # 184 x 3
    s_gt = read_matlab_array(path, "S_GT")
    for r, c in [(3, 41), (40, 7), (12, 30)]:
        a = _fcls(cube.values[:, r, c], gt)
        np.testing.assert_allclose(a, s_gt[r, c], atol=1e-4)
        assert np.abs(a - s_gt[c, r]).max() > 0.5


def test_muufl_subset_hwl(shared_data: Path) -> None:
    path = shared_data / "muufl_subset" / "muffle_dataset_130_90.mat"
    cube = read_matlab(path)
    y = read_matlab_array(path, "Y")
    assert y.shape == (90, 90, 64)
    assert cube.shape == (64, 90, 90) and cube.attrs["matlab_key"] == "Y" and cube.attrs["matlab_layout"] == "hwl"
    assert cube.attrs["sensor"] == "CASI-1500"
    for r, c in [(5, 77), (61, 2)]:
        np.testing.assert_array_equal(cube.values[:, r, c], y[r, c, :])


# ---------------------------------------------------------------------------- real data: anomaly, GatorSense

def test_anomaly_scene_keeps_dtype_and_orientation(shared_data: Path) -> None:
    path = shared_data / "hsi_anomaly_scenes" / "HYDICE_urban_anomaly_100x80.mat"
    cube = read_matlab(path)
    data = read_matlab_array(path, "data")
    assert data.shape == (100, 80, 162)
    assert cube.shape == (162, 100, 80) and cube.dtype == np.uint16 and cube.attrs["sensor"] == "HYDICE"
    np.testing.assert_array_equal(cube.values[:, 97, 13], data[97, 13, :])
    assert read_matlab_array(path, "map").sum() == 19  # 19 anomalous pixels (the literature often says 21)


def test_gatorsense_misspelt_wavelength_key(shared_data: Path) -> None:
    path = shared_data / "gatorsense_hsi_toolkit_demo" / "muufl_gulfport_for_class_demo.mat"
    assert "wavlength" in matlab_variables(path)
    cube = read_matlab(path)
    assert cube.shape == (72, 31, 20) and cube.dtype == np.float32 and cube.attrs["matlab_key"] == "hsi_sub"
    np.testing.assert_allclose(cube["wavelength"].values, read_matlab_array(path, "wavlength").ravel())
    assert cube.attrs["wavelengths_known"] == 1 and cube.attrs["sensor"] == "CASI-1500"
    validate(cube, require_wavelengths=True)


def test_gatorsense_aviris_int16_with_wavelengths(shared_data: Path) -> None:
    path = shared_data / "gatorsense_hsi_toolkit_demo" / "aviris_santabarbara_for_VI_demo.mat"
    cube = open_cube(path)
    assert cube.shape == (224, 90, 90) and cube.dtype == np.int16 and cube.attrs["sensor"] == "AVIRIS"
    wl = cube["wavelength"].values
    assert 365 < wl[0] < 367 and 2496 < wl[-1] < 2497
    np.testing.assert_array_equal(cube.values[:, 8, 71], read_matlab_array(path, "hsi_img")[8, 71, :])


# ---------------------------------------------------------------------------- fixtures: v5 layouts

@pytest.mark.parametrize(
    ("key", "sensor"),
    [("indian_pines_corrected", "AVIRIS"), ("paviaU", "ROSIS"), ("salinas_corrected", "AVIRIS"),
     ("KSC", "AVIRIS"), ("Botswana", "Hyperion")],
)
def test_classic_keys(tmp_path: Path, key: str, sensor: str) -> None:
    img = _image(5, 7, 4, np.uint16)
    path = tmp_path / "scene.mat"
    sio.savemat(path, {key: img, f"{key}_gt": np.zeros((5, 7), np.uint8)})
    cube = read_matlab(path)
    assert cube.shape == (4, 5, 7) and cube.dtype == np.uint16
    np.testing.assert_array_equal(cube.values, _band_first(img))
    assert cube.attrs["sensor"] == sensor and cube.attrs["matlab_key"] == key
    assert np.isnan(cube["wavelength"].values).all()


def test_wavelengths_in_micrometres_and_fwhm(tmp_path: Path) -> None:
    path = tmp_path / "scene.mat"
    wl_um = np.array([0.45, 0.55, 0.65, 0.85])
    sio.savemat(path, {"hsi": _image(3, 2, 4), "wavelengths": wl_um[:, None], "fwhm": np.full((4, 1), 0.01)})
    cube = read_matlab(path)
    np.testing.assert_allclose(cube["wavelength"].values, wl_um * 1000)
    np.testing.assert_allclose(cube["fwhm"].values, 10.0)
    override = read_matlab(path, wavelength=[500, 600, 700, 800])
    np.testing.assert_allclose(override["wavelength"].values, [500, 600, 700, 800])
    with pytest.raises(MetadataError, match="3 wavelengths"):
        read_matlab(path, wavelength=[1, 2, 3])


def test_largest_3d_array_is_picked(tmp_path: Path) -> None:
    path = tmp_path / "scene.mat"
    sio.savemat(path, {"label": _image(6, 5, 3), "cube_data": _image(6, 5, 10), "mask": np.ones((6, 5))})
    assert read_matlab(path).attrs["matlab_key"] == "cube_data"
    assert read_matlab(path, key="label").shape == (3, 6, 5)


def test_zhu_non_square_grid(tmp_path: Path) -> None:
    """nRow != nCol: pixel (r, c) is column c * nRow + r (MATLAB reshape(img, N, L)')."""
    rows, cols, bands = 3, 5, 4
    img = _image(rows, cols, bands)
    y = img.reshape(rows * cols, bands, order="F").T  # L x N in MATLAB column-major pixel order
    path = tmp_path / "jasper_like.mat"
    sio.savemat(path, {"Y": y, "nRow": np.uint16(rows), "nCol": np.uint16(cols),
                       "SlectBands": np.array([[2], [3], [7], [9]], np.float64), "maxValue": 4095.0})
    cube = read_matlab(path)
    assert cube.shape == (bands, rows, cols) and cube.attrs["matlab_layout"] == "zhu"
    np.testing.assert_array_equal(cube.values, _band_first(img))
    np.testing.assert_array_equal(cube.values[:, 2, 4], y[:, 4 * rows + 2])
    assert cube["band"].values.tolist() == [2, 3, 7, 9]
    assert cube.attrs["max_value"] == 4095.0
    assert cube.values.max() == img.max()  # maxValue is recorded, not applied
    assert cube.attrs["sensor"] == "AVIRIS"  # from the file name


def test_zhu_pixels_as_rows_and_lines_cols(tmp_path: Path) -> None:
    rows, cols, bands = 4, 2, 3
    img = _image(rows, cols, bands)
    y = img.reshape(rows * cols, bands, order="F").T
    path = tmp_path / "nl.mat"
    sio.savemat(path, {"Y": y.T, "lines": rows, "cols": cols})  # N x L
    np.testing.assert_array_equal(read_matlab(path).values, _band_first(img))


def test_zhu_grid_mismatch_is_metadata_error(tmp_path: Path) -> None:
    path = tmp_path / "bad_grid.mat"
    sio.savemat(path, {"Y": np.zeros((4, 15)), "nRow": 4, "nCol": 5})
    with pytest.raises(MetadataError, match="4 x 5 = 20 pixels"):
        read_matlab(path)


def test_matrix_without_grid(tmp_path: Path) -> None:
    path = tmp_path / "nogrid.mat"
    img = _image(3, 5, 2)
    sio.savemat(path, {"Y": img.reshape(15, 2, order="F").T})
    with pytest.raises(MetadataError, match="shape="):
        read_matlab(path)
    np.testing.assert_array_equal(read_matlab(path, shape=(3, 5)).values, _band_first(img))


def test_square_band_count_without_grid(tmp_path: Path) -> None:
    """L = 4 is itself a perfect square: the square grid must come from N = 9, not from L."""
    img = _image(3, 3, 4)
    path = tmp_path / "sq.mat"
    sio.savemat(path, {"Y": img.reshape(9, 4, order="F").T})
    cube = read_matlab(path)
    assert cube.shape == (4, 3, 3) and cube.attrs["matlab_grid"] == "assumed square"
    np.testing.assert_array_equal(cube.values, _band_first(img))


def test_grid_keys_with_3d_image_prefer_the_image(tmp_path: Path) -> None:
    """H/W scalars next to a 3-D Y and a p x N abundance matrix: the 3-D Y is the image."""
    img = _image(3, 5, 6)
    path = tmp_path / "mixed.mat"
    sio.savemat(path, {"Y": img, "A": np.ones((2, 15)), "H": 3, "W": 5, "alpha": 0.5})
    cube = read_matlab(path)
    assert cube.attrs["matlab_key"] == "Y" and cube.attrs["matlab_layout"] == "hwl"
    np.testing.assert_array_equal(cube.values, _band_first(img))


def test_hysupp_row_major(tmp_path: Path) -> None:
    """HySUPP bundles an H x W x L image as Y = img.reshape(N, L).T (row-major pixels) with H, W, p, L, N."""
    rows, cols, bands = 3, 5, 4
    img = _image(rows, cols, bands)
    y = img.reshape(rows * cols, bands).T
    path = tmp_path / "hysupp.mat"
    sio.savemat(path, {"Y": y, "E": np.ones((bands, 2)), "A": np.full((2, rows * cols), 0.5),
                       "H": rows, "W": cols, "p": 2, "L": bands, "N": rows * cols})
    cube = read_matlab(path)
    assert cube.attrs["matlab_layout"] == "hysupp" and cube.attrs["matlab_key"] == "Y"
    np.testing.assert_array_equal(cube.values, _band_first(img))
    np.testing.assert_array_equal(cube.values[:, 1, 3], y[:, 1 * cols + 3])
    # layout="zhu" forces column-major reading of the same matrix
    forced = read_matlab(path, layout="zhu")
    np.testing.assert_array_equal(forced.values, pixels_to_cube(y, rows, cols, "F"))


def test_layout_lhw(tmp_path: Path) -> None:
    path = tmp_path / "lhw.mat"
    img = _image(3, 5, 6)
    sio.savemat(path, {"data": _band_first(img)})
    np.testing.assert_array_equal(read_matlab(path, layout="lhw").values, _band_first(img))
    sio.savemat(path, {"data": _band_first(img), "wavelength": np.linspace(400, 900, 6)})
    assert read_matlab(path).attrs["matlab_layout"] == "lhw"  # only axis 0 matches the 6 wavelengths


# ---------------------------------------------------------------------------- fixtures: v7.3

def test_v73_hwl_and_wavelengths(tmp_path: Path) -> None:
    img = _image(3, 5, 4, np.float32)
    path = _write_v73(tmp_path / "gulfport_v73.mat", {"hsi_img": img, "wavelengths": np.array([[0.4, 0.5, 0.6, 0.7]])})
    assert h5py.File(path, "r")["hsi_img"].shape == (4, 5, 3)  # what h5py shows: reversed axes
    assert read_matlab_array(path, "hsi_img").shape == (3, 5, 4)
    assert matlab_variables(path)["hsi_img"].shape == (3, 5, 4)
    cube = open_cube(path)
    assert cube.dtype == np.float32 and cube.attrs["sensor"] == "CASI-1500"
    np.testing.assert_array_equal(cube.values, _band_first(img))
    np.testing.assert_allclose(cube["wavelength"].values, [400, 500, 600, 700])


def test_v73_zhu(tmp_path: Path) -> None:
    rows, cols, bands = 2, 3, 5
    img = _image(rows, cols, bands)
    y = img.reshape(rows * cols, bands, order="F").T
    path = _write_v73(tmp_path / "zhu73.mat", {"Y": y, "nRow": np.array([[rows]], np.uint8),
                                               "nCol": np.array([[cols]], np.uint8)})
    cube = read_matlab(path)
    assert cube.attrs["matlab_layout"] == "zhu"
    np.testing.assert_array_equal(cube.values, _band_first(img))


# ---------------------------------------------------------------------------- errors

def test_missing_key_lists_variables(tmp_path: Path) -> None:
    path = tmp_path / "s.mat"
    sio.savemat(path, {"data": _image(2, 2, 3), "map": np.zeros((2, 2))})
    with pytest.raises(InputError, match=r"no variable 'paviaU'.*data \(2x2x3 double\).*map") as err:
        read_matlab(path, key="paviaU")
    assert str(path) in str(err.value)
    with pytest.raises(InputError, match="no variable 'x'"):
        read_matlab_array(path, "x")


def test_not_a_mat_file(tmp_path: Path) -> None:
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"this is not a MAT file at all " * 10)
    with pytest.raises(InputError, match="not a readable MATLAB file"):
        read_matlab(junk)
    good = tmp_path / "good.mat"
    sio.savemat(good, {"data": _image(20, 20, 10)})
    truncated = tmp_path / "truncated.mat"
    truncated.write_bytes(good.read_bytes()[:2000])
    with pytest.raises(InputError, match="not a readable MATLAB file"):
        read_matlab(truncated)
    with pytest.raises(InputError, match="file not found"):
        read_matlab(tmp_path / "missing.mat")
    assert detect_format(good) == "matlab"


def test_no_image_and_bad_options(tmp_path: Path) -> None:
    path = tmp_path / "lib.mat"
    sio.savemat(path, {"E": np.ones((10, 3)), "names": "abc", "s": {"a": 1}})
    with pytest.raises(InputError, match="no hyperspectral image array"):
        read_matlab(path)
    with pytest.raises(InputError, match="not a numeric image"):
        read_matlab(path, key="s")
    cube_path = tmp_path / "c.mat"
    sio.savemat(cube_path, {"data": _image(2, 3, 4)})
    with pytest.raises(UsageError, match="unknown MATLAB layout"):
        read_matlab(cube_path, layout="bsq")
    with pytest.raises(UsageError, match="needs an L x N matrix"):
        read_matlab(cube_path, layout="zhu")


def test_guess_sensor() -> None:
    assert guess_sensor("abu-beach-4.mat") == "ROSIS"
    assert guess_sensor("abu-urban-2.mat") == "AVIRIS"
    assert guess_sensor("Urban_R162.mat") == "HYDICE"
    assert guess_sensor("x.mat", "paviaU") == "ROSIS"
    assert guess_sensor("x.mat", "data") == ""


def test_to_reflectance_of_matlab_cube(shared_data: Path) -> None:
    cube = read_matlab(shared_data / "hsi_anomaly_scenes" / "abu-airport-1.mat")
    assert cube.shape == (205, 100, 100) and cube.dtype == np.uint16
    refl = to_reflectance(cube)
    assert refl.dtype == np.float32 and float(refl.max()) == 6604.0
