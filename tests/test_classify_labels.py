"""Labels from rasters and vector files onto a scene grid; spatially disjoint block splits."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.warp import transform as warp_transform

import hsikit
from hsikit.classify.labels import read_labels
from hsikit.classify.split import block_split, class_weights
from hsikit.errors import InputError, MetadataError, UsageError

TILE = "enmap_potsdam_tile_96_0.tif"


@pytest.fixture(scope="module")
def tile(shared_data):
    d = shared_data / "enmap_potsdam_tiles"
    return hsikit.open(d / "images" / TILE), d / "labels" / TILE


def _write(path, values, transform, crs="EPSG:32633", dtype="float32"):
    with rasterio.open(path, "w", driver="GTiff", height=values.shape[0], width=values.shape[1], count=1,
                       dtype=dtype, crs=crs, transform=transform) as dst:
        dst.write(values.astype(dtype), 1)
    return path


def test_real_label_raster_on_grid(tile):
    cube, lab_path = tile
    lab = read_labels(lab_path, cube)
    with rasterio.open(lab_path) as src:
        ref = src.read(1)
    assert lab.values.shape == (32, 32)
    np.testing.assert_array_equal(lab.values, ref.astype(np.int64))
    assert lab.count == 807 and list(lab.classes) == [1, 2, 3, 4, 5]


def test_label_raster_offset_by_whole_pixels(tile, tmp_path):
    cube, lab_path = tile
    with rasterio.open(lab_path) as src:
        ref = src.read(1).astype(np.int64)
        t = src.transform
    part = ref[5:20, 3:30]
    p = _write(tmp_path / "part.tif", part, t * Affine.translation(3, 5))
    lab = read_labels(p, cube)
    expect = np.zeros_like(ref)
    expect[5:20, 3:30] = part
    np.testing.assert_array_equal(lab.values, expect)


@pytest.mark.parametrize("case", ["crs", "fraction", "pixel_size"])
def test_label_raster_not_alignable(tile, tmp_path, case):
    cube, lab_path = tile
    with rasterio.open(lab_path) as src:
        ref, t = src.read(1), src.transform
    crs = "EPSG:32633"
    if case == "crs":
        crs = "EPSG:32632"
    elif case == "fraction":
        t = t * Affine.translation(0.5, 0)
    else:
        t = t * Affine.scale(0.5)
    p = _write(tmp_path / f"{case}.tif", ref, t, crs=crs)
    with pytest.raises(MetadataError, match="EPSG:32632|not alignable"):
        read_labels(p, cube)


def test_label_raster_outside_scene(tile, tmp_path):
    cube, lab_path = tile
    with rasterio.open(lab_path) as src:
        ref, t = src.read(1), src.transform
    p = _write(tmp_path / "far.tif", ref, t * Affine.translation(100, 0))
    with pytest.raises(InputError, match="no labelled pixel inside the scene"):
        read_labels(p, cube)


def _square(cx, cy, half, crs_from="EPSG:32633", crs_to="EPSG:4326"):
    xs = [cx - half, cx + half, cx + half, cx - half, cx - half]
    ys = [cy - half, cy - half, cy + half, cy + half, cy - half]
    lon, lat = warp_transform(crs_from, crs_to, xs, ys)
    return {"type": "Polygon", "coordinates": [list(zip(lon, lat))]}


def _geojson(cube, tmp_path):
    t = cube.rio.transform()
    # squares of 3x3 pixels around pixel centres (row 4, col 4) and (row 20, col 25), in WGS84
    feats = []
    for (r, c), name in (((4, 4), "Water"), ((20, 25), "Roof")):
        x, y = t * (c + 0.5, r + 0.5)
        feats.append({"type": "Feature", "properties": {"landcover": name}, "geometry": _square(x, y, 44.0)})
    p = tmp_path / "polys.geojson"
    p.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    return p


def _expected_polys():
    v = np.zeros((32, 32), np.int64)
    v[3:6, 3:6] = 2  # "Water" sorts after "Roof"
    v[19:22, 24:27] = 1
    return v


def test_vector_labels_reprojected_and_rasterised(tile, tmp_path):
    cube, _ = tile
    lab = read_labels(_geojson(cube, tmp_path), cube, class_field="landcover")
    np.testing.assert_array_equal(lab.values, _expected_polys())
    assert lab.names == {1: "Roof", 2: "Water"}


def test_vector_labels_plain_json_reader(tile, tmp_path, monkeypatch):
    import builtins

    real = builtins.__import__

    def no_pyogrio(name, *a, **k):
        if name.startswith("pyogrio"):
            raise ImportError(name)
        return real(name, *a, **k)

    cube, _ = tile
    path = _geojson(cube, tmp_path)
    monkeypatch.setattr(builtins, "__import__", no_pyogrio)
    lab = read_labels(path, cube)  # class field found automatically ("landcover")
    np.testing.assert_array_equal(lab.values, _expected_polys())
    assert lab.names == {1: "Roof", 2: "Water"}


def test_vector_labels_geopackage(tile, tmp_path):
    pyogrio = pytest.importorskip("pyogrio")
    shapely = pytest.importorskip("shapely")
    cube, _ = tile
    t = cube.rio.transform()
    x, y = t * (10.5, 12.5)
    geom = shapely.geometry.shape(_square(x, y, 14.0, crs_to="EPSG:3857"))
    p = tmp_path / "l.gpkg"
    pyogrio.raw.write(p, np.array([shapely.to_wkb(geom)], dtype=object), [np.array([4], np.int32)], ["class_id"],
                      crs="EPSG:3857", geometry_type="Polygon", driver="GPKG")
    lab = read_labels(p, cube)
    expect = np.zeros((32, 32), np.int64)
    expect[12, 10] = 4
    np.testing.assert_array_equal(lab.values, expect)


def test_vector_missing_class_field(tile, tmp_path):
    cube, _ = tile
    with pytest.raises(InputError, match="no field 'nope'"):
        read_labels(_geojson(cube, tmp_path), cube, class_field="nope")


def test_block_split_disjoint_with_margin(tile):
    cube, lab_path = tile
    lab = read_labels(lab_path, cube).values
    (train, held), = block_split(lab, fraction=0.3, block=8, margin=2, seed=3)
    assert not (train & held).any()
    assert (lab[train] > 0).all() and (lab[held] > 0).all()
    # no training pixel within 2 px (Chebyshev) of a held-out pixel, so 5x5 patches never overlap them
    from scipy.ndimage import distance_transform_cdt

    dist = distance_transform_cdt(~held, metric="chessboard")
    assert dist[train].min() > 2
    share = held.sum() / (lab > 0).sum()
    assert 0.15 < share < 0.45
    again, = block_split(lab, fraction=0.3, block=8, margin=2, seed=3)
    np.testing.assert_array_equal(again[1], held)
    # held-out pixels are whole 8x8 blocks: a block is either all held out or not at all
    blocks = (np.arange(32)[:, None] // 8) * 4 + np.arange(32)[None, :] // 8
    for b in np.unique(blocks[held]):
        inside = (blocks == b) & (lab > 0)
        assert held[inside].all()


def test_block_split_several_maps_and_errors():
    a = np.zeros((16, 16), np.int64)
    a[:8] = 1
    a[8:] = 2
    b = a[::-1].copy()
    parts = block_split([a, b], fraction=0.5, block=4, seed=0)
    assert len(parts) == 2
    held = sum(p[1].sum() for p in parts)
    assert 0.3 * 512 < held < 0.7 * 512
    with pytest.raises(UsageError, match="one 16x16 block"):
        block_split(a, fraction=0.3, block=16)
    with pytest.raises(UsageError, match="fraction"):
        block_split(a, fraction=1.2)


def test_class_weights_balanced():
    w = class_weights(np.array([0, 0, 0, 1, 2, 2]), 4)
    np.testing.assert_allclose(w, [6 / (3 * 3), 6 / (3 * 1), 6 / (3 * 2), 0.0])
