"""Writers: COG / NetCDF / Zarr round trips on real tiles, GDAL-visible metadata, atomicity."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import rasterio

from hsikit.cube import make_cube, select_bands
from hsikit.errors import OutputError, UsageError
from hsikit.io import open_cube, save_cube
from hsikit.io.export import GeoTiffWriter, RasterMeta


def _same(a, b):
    assert np.array_equal(a.values, b.values)
    for k in ("wavelength", "fwhm", "scale", "offset"):
        np.testing.assert_array_equal(a[k].values, b[k].values)
    assert a["bbl"].values.tolist() == b["bbl"].values.tolist()
    assert list(a["band_name"].values) == list(b["band_name"].values)
    assert a["band"].values.tolist() == b["band"].values.tolist()
    assert a.rio.crs == b.rio.crs and a.rio.transform() == b.rio.transform()
    assert a.rio.nodata == b.rio.nodata
    assert a.attrs["acquisition_time"] == b.attrs["acquisition_time"]


@pytest.mark.parametrize("suffix", [".tif", ".nc", ".zarr"])
def test_round_trip_real_tile(tmp_path, enmap_tile: Path, suffix):
    cube = open_cube(enmap_tile)
    out = save_cube(cube, tmp_path / f"o{suffix}")
    _same(open_cube(out), cube)


@pytest.mark.parametrize("suffix", [".tif", ".nc", ".zarr"])
def test_round_trip_band_subset_keeps_band_numbers(tmp_path, enmap_tile: Path, suffix):
    cube = select_bands(open_cube(enmap_tile), "valid")
    back = open_cube(save_cube(cube, tmp_path / f"o{suffix}"))
    assert back.sizes["band"] == 218
    np.testing.assert_array_equal(back["wavelength"].values, cube["wavelength"].values)
    if suffix != ".tif":  # GeoTIFF renumbers bands 1..n; NetCDF/Zarr keep the source numbers
        assert back["band"].values.tolist() == cube["band"].values.tolist()


def _ifds(path: Path) -> list[dict[int, list[int]]]:
    """Walk the IFD chain of a classic or BigTIFF file: per IFD, {tag: values} for offset tags + IFD offset."""
    import struct

    data = path.read_bytes()
    bo = "<" if data[:2] == b"II" else ">"
    big = struct.unpack(bo + "H", data[2:4])[0] == 43
    off = struct.unpack(bo + ("Q" if big else "I"), data[(8 if big else 4):(16 if big else 8)])[0]
    sizes = {3: ("H", 2), 4: ("I", 4), 16: ("Q", 8)}
    out = []
    while off:
        n = struct.unpack(bo + ("Q" if big else "H"), data[off:off + (8 if big else 2)])[0]
        p = off + (8 if big else 2)
        entry = 20 if big else 12
        tags: dict[int, list[int]] = {-1: [off]}
        for i in range(n):
            e = data[p + i * entry:p + (i + 1) * entry]
            tag, typ = struct.unpack(bo + "HH", e[:4])
            count = struct.unpack(bo + ("Q" if big else "I"), e[4:(12 if big else 8)])[0]
            if tag in (324, 256) and typ in sizes:  # TileOffsets, ImageWidth
                fmt, sz = sizes[typ]
                inline = e[(12 if big else 8):]
                raw = inline if count * sz <= len(inline) else data[(vo := struct.unpack(bo + ("Q" if big else "I"), inline)[0]):vo + count * sz]
                tags[tag] = list(struct.unpack(bo + fmt * count, raw[:count * sz]))
        out.append(tags)
        p += n * entry
        off = struct.unpack(bo + ("Q" if big else "I"), data[p:p + (8 if big else 4)])[0]
    return out


def assert_cog_layout(path: Path) -> None:
    """COG layout: every IFD before any tile data; overview tiles before full-resolution tiles."""
    ifds = _ifds(path)
    first_tile = min(min(t for t in d[324] if t) for d in ifds)
    assert max(d[-1][0] for d in ifds) < first_tile, "an IFD comes after pixel data"
    widths = [d[256][0] for d in ifds]
    assert widths == sorted(widths, reverse=True), "full resolution first, then smaller overviews"
    starts = [min(t for t in d[324] if t) for d in ifds]
    assert starts == sorted(starts, reverse=True), "overview data must precede full-resolution data"


def test_large_cog_has_overviews_in_cog_order(tmp_path):
    from hsikit.cube import make_cube

    data = np.random.default_rng(0).integers(0, 10000, (3, 1100, 700)).astype(np.int16)
    cube = make_cube(data, wavelength=[500.0, 600.0, 700.0], crs="EPSG:32633",
                     transform=rasterio.Affine(30, 0, 4e5, 0, -30, 5.8e6), nodata=-1)
    out = save_cube(cube, tmp_path / "big.tif")
    with rasterio.open(out) as src:
        assert src.overviews(1) == [2, 4] and src.profile["interleave"] == "band"
        np.testing.assert_array_equal(src.read(), data)
    assert_cog_layout(out)


def test_cog_is_valid_and_gdal_sees_wavelengths(tmp_path, enmap_tile: Path):
    out = save_cube(open_cube(enmap_tile), tmp_path / "o.tif")
    with rasterio.open(out) as src:
        assert src.driver == "GTiff" and src.profile["tiled"]
        assert src.profile["interleave"] == "band"
        assert float(src.tags(1)["wavelength"]) == pytest.approx(418.24)
        assert src.tags(1)["wavelength_units"] == "Nanometers"
        assert float(src.tags(1, ns="IMAGERY")["CENTRAL_WAVELENGTH_UM"]) == pytest.approx(0.41824)
        assert src.tags(130)["bbl"] == "0" and src.scales[0] == pytest.approx(1e-4)
        assert src.descriptions[0] == "band 1 (418.24 Nanometers)"
    assert_cog_layout(out)


def test_time_series_to_netcdf_and_zarr(tmp_path):
    data = np.random.default_rng(1).integers(0, 10000, (2, 3, 5, 4)).astype(np.uint16)
    cube = make_cube(data, time=["2017-07-03", "2019-07-23"], wavelength=[490, 560, 665], crs="EPSG:32632",
                     transform=rasterio.Affine(10, 0, 5e5, 0, -10, 5e6), nodata=65535)
    for suffix in (".nc", ".zarr"):
        back = open_cube(save_cube(cube, tmp_path / f"s{suffix}"))
        assert back.dims == ("time", "band", "y", "x") and np.array_equal(back.values, data)
        assert back["time"].values.tolist() == cube["time"].values.tolist()
        assert back.rio.nodata == 65535 and back.rio.crs.to_epsg() == 32632
    with pytest.raises(UsageError, match="time series"):
        save_cube(cube, tmp_path / "s.tif")


def test_existing_output_survives_a_failed_write(tmp_path, enmap_tile: Path):
    cube = open_cube(enmap_tile)
    target = save_cube(cube, tmp_path / "o.tif")
    before = target.read_bytes()
    meta = RasterMeta.from_cube(cube)
    with pytest.raises(RuntimeError):
        with GeoTiffWriter(target, meta) as w:
            w.write(cube.values[:, :16], rasterio.windows.Window(0, 0, 32, 16))
            raise RuntimeError("killed midway")
    assert target.read_bytes() == before and os.listdir(tmp_path) == ["o.tif"]


def test_output_checks(tmp_path, enmap_tile: Path):
    cube = open_cube(enmap_tile)
    with pytest.raises(OutputError, match="does not exist"):
        save_cube(cube, tmp_path / "nope" / "o.tif")
    save_cube(cube, tmp_path / "o.nc")
    with pytest.raises(OutputError, match="output exists"):
        save_cube(cube, tmp_path / "o.nc", overwrite=False)
    with pytest.raises(UsageError, match="cannot tell the output format"):
        save_cube(cube, tmp_path / "o.xyz")


def test_colour_table_is_written_without_gdal_errors(tmp_path, capfd):
    from rasterio.windows import Window

    from hsikit.io.export import GeoTiffWriter, RasterMeta

    meta = RasterMeta(count=2, height=40, width=40, dtype=np.uint8, crs="EPSG:32633",
                      transform=rasterio.Affine(30, 0, 0, 0, -30, 0), nodata=255,
                      colormap={1: (255, 0, 0, 255), 2: (0, 255, 0, 255)})
    with GeoTiffWriter(tmp_path / "classes.tif", meta) as w:
        w.write(np.ones((2, 40, 40), np.uint8), Window(0, 0, 40, 40))
    assert "ERROR" not in capfd.readouterr().err
    with rasterio.open(tmp_path / "classes.tif") as src:
        assert src.colormap(1)[2] == (0, 255, 0, 255)
