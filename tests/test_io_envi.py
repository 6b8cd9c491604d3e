"""ENVI images and spectral libraries: hsikit.io.envi."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import dask.array as da
import numpy as np
import pytest

from hsikit.cube import to_reflectance
from hsikit.errors import InputError, MetadataError
from hsikit.io import open_cube
from hsikit.io import envi
from hsikit.io.envi import parse_envi_header, read_envi, read_spectral_library

DATA = Path(__file__).parent / "data" / "envi"
BSQ_HDR = DATA / "tiny_bsq.hdr"
BIL = DATA / "tiny_bil.bil"
BIP = DATA / "tiny_bip.bip"


def _generator():
    spec = importlib.util.spec_from_file_location("envi_fixture_data", DATA / "data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


GEN = _generator()


def _write_header(path: Path, body: str) -> Path:
    path.write_text("ENVI\n" + body, encoding="ascii")
    return path


def _copy_bsq(tmp_path: Path, data_name: str, header_name: str) -> Path:
    shutil.copy(DATA / "tiny_bsq.bsq", tmp_path / data_name)
    shutil.copy(BSQ_HDR, tmp_path / header_name)
    return tmp_path / data_name


# ---------------------------------------------------------------------------- header parser

def test_parse_header_fixture() -> None:
    hdr = parse_envi_header(BSQ_HDR)
    assert (hdr["samples"], hdr["lines"], hdr["bands"]) == (6, 7, 5)
    assert (hdr["data type"], hdr["byte order"], hdr["header offset"], hdr["interleave"]) == (2, 0, 0, "bsq")
    np.testing.assert_allclose(hdr["wavelength"], np.array(GEN.WAVELENGTH_UM) * 1000)  # um -> nm
    np.testing.assert_allclose(hdr["fwhm"], np.array(GEN.FWHM_UM) * 1000)
    assert hdr["wavelength units"] == "Nanometers" and hdr["source wavelength units"] == "Micrometers"
    assert hdr["bbl"].tolist() == [True, True, True, True, False]
    assert hdr["data ignore value"] == -9999.0
    assert hdr["reflectance scale factor"] == 10000.0
    assert hdr["band names"] == list(GEN.BAND_NAMES)
    assert hdr["map info"][:3] == ["UTM", "1.000", "1.000"] and hdr["map info"][7:9] == ["33", "North"]
    assert hdr["coordinate system string"].startswith("PROJCS[")
    assert hdr["description"].startswith("hsikit test fixture: 5-band int16") and "\n" not in hdr["description"]


def test_parse_header_edge_cases(tmp_path: Path) -> None:
    body = (
        "description = {line one = with equals,\r\n  line two}\r\n"
        "; a comment = ignored\r\n"
        "Samples = 3\r\nLINES=2\r\nbands  =   4\r\n"
        "Wavelength Units = Nanometers\r\n"
        "wavelength = {\r\n 400.5 ,\r\n 500,600,\r\n 700 }\r\n"
        "bbl = {1, 0.0, 1, 1}\r\n"
        "spectra names = { a b , c }\r\n"
        "some unknown key = {x, y}\r\n"
    )
    hdr = parse_envi_header(_write_header(tmp_path / "edge.hdr", body))
    assert hdr["description"] == "line one = with equals, line two"
    assert (hdr["samples"], hdr["lines"], hdr["bands"]) == (3, 2, 4)
    assert hdr["wavelength"].tolist() == [400.5, 500.0, 600.0, 700.0]
    assert hdr["bbl"].tolist() == [True, False, True, True]
    assert hdr["spectra names"] == ["a b", "c"]
    assert hdr["some unknown key"] == "x, y"
    assert "a comment" not in hdr


@pytest.mark.parametrize(
    ("units", "values", "expected"),
    [("Micrometers", "0.45, 2.1", [450.0, 2100.0]), ("Nanometers", "450, 2100", [450.0, 2100.0]),
     ("Unknown", "0.45, 2.1", [450.0, 2100.0]), (None, "450, 2100", [450.0, 2100.0]),
     ("Millimeters", "0.00045, 0.0021", [450.0, 2100.0])],
)
def test_wavelength_units_to_nm(tmp_path: Path, units: str | None, values: str, expected: list[float]) -> None:
    line = f"wavelength units = {units}\n" if units else ""
    body = f"{line}wavelength = {{{values}}}\nfwhm = {{{values}}}\n"
    hdr = parse_envi_header(_write_header(tmp_path / "u.hdr", body))
    np.testing.assert_allclose(hdr["wavelength"], expected)
    np.testing.assert_allclose(hdr["fwhm"], expected)


def test_parse_header_rejects_non_envi(tmp_path: Path) -> None:
    bad = tmp_path / "x.hdr"
    bad.write_text("samples = 3\n")
    with pytest.raises(InputError, match="not an ENVI header") as err:
        parse_envi_header(bad)
    assert str(bad) in str(err.value)


# ---------------------------------------------------------------------------- images

@pytest.mark.parametrize(
    "path", [BSQ_HDR, DATA / "tiny_bsq.bsq", BIL, DATA / "tiny_bil.bil.hdr", BIP, DATA / "tiny_bip.hdr"]
)
def test_read_envi_values_and_metadata(path: Path) -> None:
    cube = read_envi(path)
    assert cube.dims == ("band", "y", "x") and cube.shape == (5, 7, 6)
    assert cube.dtype == np.int16
    np.testing.assert_array_equal(cube.values, GEN.make_cube())
    np.testing.assert_allclose(cube["wavelength"].values, [482.5, 562.5, 655.0, 865.0, 1610.0])
    np.testing.assert_allclose(cube["fwhm"].values, [65.0, 75.0, 50.0, 40.0, 90.0])
    assert cube["bbl"].values.tolist() == [True, True, True, True, False]
    assert cube["band_name"].values.tolist() == list(GEN.BAND_NAMES)
    np.testing.assert_allclose(cube["scale"].values, 1e-4)
    assert cube.rio.nodata == -9999
    assert cube.rio.crs.to_epsg() == 32633
    assert tuple(cube.rio.transform())[:6] == (30.0, 0.0, 364095.0, 0.0, -30.0, 5809965.0)
    assert cube.attrs["wavelength_units"] == "nm" and cube.attrs["sensor"] == ""


def test_bsq_bil_bip_same_cube() -> None:
    bsq, bil, bip = read_envi(BSQ_HDR), read_envi(BIL), read_envi(BIP)
    for other in (bil, bip):
        np.testing.assert_array_equal(other.values, bsq.values)
        for coord in ("wavelength", "fwhm", "bbl", "band_name", "scale", "x", "y"):
            np.testing.assert_array_equal(other[coord].values, bsq[coord].values)


def test_nodata_honoured_in_reflectance() -> None:
    refl = to_reflectance(read_envi(BSQ_HDR))
    assert np.isnan(refl.values[:, 0, 0]).all()
    assert np.isnan(refl.values[2, 6, 5]) and not np.isnan(refl.values[1, 6, 5])
    np.testing.assert_allclose(refl.values[:, 3, 3], GEN.make_cube()[:, 3, 3] * 1e-4, rtol=1e-6)


def test_read_envi_lazy() -> None:
    cube = read_envi(BIP, chunks=4)
    assert isinstance(cube.data, da.Array)
    np.testing.assert_array_equal(cube.values, GEN.make_cube())


@pytest.mark.parametrize("path", [BSQ_HDR, BIL, BIP])
@pytest.mark.parametrize("chunks", [None, 3])
def test_numpy_fallback_matches_gdal(monkeypatch: pytest.MonkeyPatch, path: Path, chunks: int | None) -> None:
    expected = read_envi(path)
    monkeypatch.setattr(envi, "_gdal_pixels", lambda *a, **k: None)
    cube = read_envi(path, chunks=chunks)
    np.testing.assert_array_equal(cube.values, expected.values)
    assert cube.dtype == np.int16 and cube.dtype.isnative
    assert cube.rio.crs.to_epsg() == 32633
    assert tuple(cube.rio.transform())[:6] == tuple(expected.rio.transform())[:6]


@pytest.mark.parametrize(("data_name", "header_name"), [("scene", "scene.hdr"), ("scene.img", "scene.hdr"),
                                                        ("scene.dat", "scene.dat.hdr"), ("SCENE.BSQ", "SCENE.HDR")])
def test_data_file_naming(tmp_path: Path, data_name: str, header_name: str) -> None:
    data = _copy_bsq(tmp_path, data_name, header_name)
    for path in (data, tmp_path / header_name):
        np.testing.assert_array_equal(read_envi(path).values, GEN.make_cube())
    np.testing.assert_array_equal(open_cube(tmp_path / header_name).values, GEN.make_cube())


def test_open_cube_dispatches_envi() -> None:
    cube = open_cube(BSQ_HDR, bands="valid")
    assert cube.sizes["band"] == 4


# ---------------------------------------------------------------------------- errors

def test_header_without_data_file(tmp_path: Path) -> None:
    header = shutil.copy(BSQ_HDR, tmp_path / "lonely.hdr")
    with pytest.raises(InputError, match="without a data file") as err:
        read_envi(header)
    assert "lonely.hdr" in str(err.value)


def test_data_file_without_header(tmp_path: Path) -> None:
    data = shutil.copy(DATA / "tiny_bsq.bsq", tmp_path / "orphan.bsq")
    with pytest.raises(InputError, match="no ENVI header"):
        read_envi(data)


def test_wavelength_count_mismatch(tmp_path: Path) -> None:
    data = _copy_bsq(tmp_path, "bad.bsq", "bad.hdr")
    header = tmp_path / "bad.hdr"
    text = header.read_text().replace(" 0.8650, 1.6100}", " 0.8650}")
    header.write_text(text)
    with pytest.raises(MetadataError, match="4 wavelengths but the image has 5 bands") as err:
        read_envi(data)
    assert "bad.hdr" in str(err.value)


def test_truncated_data_file(tmp_path: Path) -> None:
    data = _copy_bsq(tmp_path, "cut.bsq", "cut.hdr")
    data.write_bytes(data.read_bytes()[:100])
    with pytest.raises(InputError, match="truncated"):
        read_envi(data)


def test_missing_file() -> None:
    with pytest.raises(InputError, match="file not found"):
        read_envi(DATA / "nope.hdr")


# ---------------------------------------------------------------------------- spectral libraries

@pytest.fixture(scope="module")
def earthlib(shared_data: Path) -> Path:
    return shared_data / "earthlib_spectral_library" / "spectra.sli"


def test_earthlib_library(earthlib: Path) -> None:
    hdr = parse_envi_header(Path(str(earthlib) + ".hdr"))
    assert hdr["source wavelength units"] == "Micrometers" and hdr["file type"] == "ENVI Spectral Library"
    lib = read_spectral_library(earthlib)
    assert lib.dims == ("spectrum", "band") and lib.shape == (7261, 180)
    assert lib.dtype == np.float32
    wl = lib["wavelength"].values
    assert wl[0] == pytest.approx(400.0) and wl[-1] == pytest.approx(2450.0)
    assert np.all(np.diff(wl) > 0)
    names = lib["spectrum_name"].values
    assert names[0] == "FS15R_FS4275" and names[-1] == "v-LAI-5.3-LMA-0.009-CHL-40.9-N-1.8"
    raw = np.fromfile(earthlib, "<f4").reshape(7261, 180)
    assert lib.values[1234, 56] == raw[1234, 56]
    np.testing.assert_array_equal(lib.values, raw)
    via_header = read_spectral_library(Path(str(earthlib) + ".hdr"))
    np.testing.assert_array_equal(via_header.values[-1], raw[-1])


def test_sli_is_not_an_image(earthlib: Path) -> None:
    with pytest.raises(InputError, match="read_spectral_library"):
        read_envi(earthlib)
    with pytest.raises(InputError, match="spectral library"):
        open_cube(earthlib)


def test_csv_library_layouts(tmp_path: Path) -> None:
    wl_um = np.array([0.40, 0.41, 0.42, 0.43])
    spectra = np.array([[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]])
    columns = tmp_path / "columns.csv"
    rows = ["wavelength,grass,soil"] + [f"{w},{a},{b}" for w, a, b in zip(wl_um, *spectra)]
    columns.write_text("\n".join(rows) + "\n")
    transposed = tmp_path / "rows.csv"
    body = [f"{n};" + ";".join(str(v) for v in s) for n, s in zip(("grass", "soil"), spectra)]
    transposed.write_text("\n".join(["name;" + ";".join(f"{w * 1000:g}" for w in wl_um), *body]))
    for path in (columns, transposed):
        lib = read_spectral_library(path)
        assert lib.dims == ("spectrum", "band") and lib.shape == (2, 4)
        np.testing.assert_allclose(lib["wavelength"].values, [400.0, 410.0, 420.0, 430.0])
        assert lib["spectrum_name"].values.tolist() == ["grass", "soil"]
        np.testing.assert_allclose(lib.values, spectra)


def test_csv_library_units_from_label_and_no_header(tmp_path: Path) -> None:
    labelled = tmp_path / "nm.csv"
    labelled.write_text("Wavelength (nm),a\n10,1\n20,2\n")  # below 30 but labelled nm: no guessing
    assert read_spectral_library(labelled)["wavelength"].values.tolist() == [10.0, 20.0]
    bare = tmp_path / "bare.csv"
    bare.write_text("0.5,1,2\n0.6,3,4\n")
    lib = read_spectral_library(bare)
    np.testing.assert_allclose(lib["wavelength"].values, [500.0, 600.0])
    assert lib["spectrum_name"].values.tolist() == ["spectrum_1", "spectrum_2"]
    np.testing.assert_allclose(lib.values, [[1, 3], [2, 4]])


def test_csv_round_trip_of_real_spectra(tmp_path: Path, earthlib: Path) -> None:
    lib = read_spectral_library(earthlib).isel(spectrum=[0, 2500, 7260])
    path = tmp_path / "earthlib3.csv"
    lines = ["wavelength_um," + ",".join(lib["spectrum_name"].values)]
    for i, w in enumerate(lib["wavelength"].values):
        lines.append(f"{w / 1000:.2f}," + ",".join(repr(float(v)) for v in lib.values[:, i]))
    path.write_text("\n".join(lines))
    back = read_spectral_library(path)
    np.testing.assert_allclose(back["wavelength"].values, lib["wavelength"].values)
    np.testing.assert_allclose(back.values, lib.values, rtol=1e-7)
    assert back["spectrum_name"].values.tolist() == lib["spectrum_name"].values.tolist()


def test_library_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="file not found"):
        read_spectral_library(tmp_path / "none.sli")
    short = tmp_path / "short.csv"
    short.write_text("wavelength,a\n")
    with pytest.raises(InputError, match="at least one data row"):
        read_spectral_library(short)
    sli = tmp_path / "lib.sli"
    np.zeros((2, 3), "<f4").tofile(sli)
    _write_header(tmp_path / "lib.hdr", "samples = 3\nlines = 2\nbands = 1\ndata type = 4\n"
                  "file type = ENVI Spectral Library\nwavelength = {400, 500}\n")
    with pytest.raises(MetadataError, match="2 wavelengths but the library has 3 bands"):
        read_spectral_library(sli)
