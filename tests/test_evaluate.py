"""``hsikit evaluate``: rasters, class maps and unmixing results against references, with grid checks."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import rasterio

import hsikit
from hsikit import metrics as M
from hsikit.cli import main
from hsikit.cube import make_cube
from hsikit.errors import MetadataError
from hsikit.evaluate import evaluate_classmap, evaluate_raster, evaluate_unmixing


def _noisy_copy(enmap_tile: Path, tmp_path: Path, sigma: float = 0.01) -> tuple[Path, np.ndarray, np.ndarray]:
    """Write the tile's reflectance plus Gaussian noise as a float COG; return it, the clean and noisy arrays."""
    cube = hsikit.to_reflectance(hsikit.open(enmap_tile))
    rng = np.random.default_rng(0)
    noisy = cube + rng.normal(0, sigma, cube.shape).astype(np.float32)
    noisy = noisy.rio.write_nodata(np.nan, encoded=False)
    out = tmp_path / "noisy.tif"
    hsikit.save(noisy, out)
    return out, cube.values, noisy.values


def test_raster_report_matches_metrics_on_valid_bands(enmap_tile, tmp_path):
    out, clean, noisy = _noisy_copy(enmap_tile, tmp_path)
    rep = evaluate_raster(out, enmap_tile, metrics="psnr,sam,ergas,rmse", data_range=1.0)
    good = np.isfinite(clean).all(axis=(1, 2))
    assert rep["conventions"]["bands_scored"] == 218 == good.sum()
    assert rep["conventions"]["pixels_masked"] == 0
    assert rep["psnr"] == pytest.approx(M.psnr(noisy[good], clean[good], 1.0), rel=1e-6)
    assert rep["sam"] == pytest.approx(M.sam(noisy[good], clean[good]).radians, rel=1e-6)
    assert rep["rmse"] == pytest.approx(0.01, rel=0.02)  # the added sigma, recovered


def test_cli_json_and_auto_data_range(enmap_tile, tmp_path, capsys):
    out, clean, _ = _noisy_copy(enmap_tile, tmp_path)
    assert main(["evaluate", str(out), "--reference", str(enmap_tile), "--metrics", "psnr,ssim", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    good = np.isfinite(clean).all(axis=(1, 2))
    assert rep["conventions"]["data_range"] == pytest.approx(float(clean[good].max() - clean[good].min()), rel=1e-6)
    assert rep["ssim"] < 1 and rep["psnr"] > 20


def test_grid_mismatch_says_how_and_exits_2(enmap_tile, tmp_path, capsys, shared_data):
    other = shared_data / "enmap_potsdam_tiles" / "images" / "enmap_potsdam_tile_96_0.tif"
    assert main(["evaluate", str(other), "--reference", str(enmap_tile)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hsikit: error:") and "grids differ" in err and "origin (365055.000" in err
    assert err.count("\n") == 1


def test_band_count_mismatch(enmap_tile, tmp_path, capsys):
    cube = hsikit.open(enmap_tile, bands="1-10")
    sub = tmp_path / "ten.tif"
    hsikit.save(cube, sub)
    assert main(["evaluate", str(sub), "--reference", str(enmap_tile)]) == 2
    assert "10 bands vs 224" in capsys.readouterr().err


def test_classmap_against_real_labels(shared_data, tmp_path, capsys):
    labels = shared_data / "enmap_potsdam_tiles" / "labels" / "enmap_potsdam_tile_64_0.tif"
    with rasterio.open(labels) as src:
        lab = src.read(1)
        profile = src.profile
    rng = np.random.default_rng(1)
    pred = lab.copy()
    flip = (lab > 0) & (rng.random(lab.shape) < 0.2)
    pred[flip] = rng.integers(1, 7, flip.sum())
    pred[lab == 0] = rng.integers(1, 7, (lab == 0).sum())  # unlabelled pixels are not scored
    path = tmp_path / "pred.tif"
    profile.update(dtype="uint8", nodata=None)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(pred.astype(np.uint8), 1)
        dst.update_tags(class_names=json.dumps({str(i): n for i, n in enumerate(["Roof", "Pavement", "Low Vegetation", "Soil", "Tree", "Water"], 1)}))
    rep = evaluate_classmap(path, labels)
    scored = lab > 0
    assert rep["n_pixels"] == scored.sum()
    assert rep["oa"] == pytest.approx((pred[scored] == lab[scored]).mean())
    assert {c["name"] for c in rep["classes"]} <= {"Roof", "Pavement", "Low Vegetation", "Soil", "Tree", "Water"}
    assert main(["evaluate", str(path), "--labels", str(labels)]) == 0
    assert "OA" in capsys.readouterr().out


def test_unmixing_reproduces_deeptrans_hsu_numbers(shared_data, capsys):
    s = shared_data / "samson"
    rep = evaluate_unmixing(
        hsikit.open(s / "DeepTransHSU_Abundance_Samson.mat", key="a_Tra"),
        hsikit.open(s / "DeepTransHSU_Abundance_Samson.mat", key="a_GT"),
        endmembers=s / "DeepTransHSU_Endmembers_Samson.mat", endmember_key="E_Tra",
        reference_endmembers=s / "DeepTransHSU_Endmembers_Samson.mat", reference_endmember_key="E_GT",
    )
    assert rep["sad_mean_rad"] == pytest.approx(0.0510, abs=5e-5)
    assert rep["abundance_rmse"] == pytest.approx(0.0783, abs=5e-5)
    args = ["evaluate", str(s / "DeepTransHSU_Abundance_Samson.mat"), "--key", "a_Tra",
            "--reference-abundances", str(s / "DeepTransHSU_Abundance_Samson.mat"), "--reference-key", "a_GT", "--json"]
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["abundance_rmse"] == pytest.approx(0.0783, abs=5e-5)


def test_unmixing_csv_endmembers_named(tmp_path):
    rng = np.random.default_rng(0)
    e = rng.random((20, 3))
    names = ["soil", "tree", "water"]
    ref = tmp_path / "ref.csv"
    est = tmp_path / "est.csv"
    wl = np.linspace(400, 900, 20)
    ref.write_text("wavelength_nm," + ",".join(names) + "\n" + "\n".join(",".join(map(str, [w, *r])) for w, r in zip(wl, e)))
    perm = [2, 0, 1]
    est.write_text("wavelength_nm,a,b,c\n" + "\n".join(",".join(map(str, [w, *r[perm]])) for w, r in zip(wl, e)))
    rep = evaluate_unmixing(endmembers=est, reference_endmembers=ref)
    assert rep["sad_mean_rad"] == pytest.approx(0.0, abs=1e-7)
    assert [m["name"] for m in rep["matching"]] == names
    assert [m["estimate"] for m in rep["matching"]] == [1, 2, 0]


def test_no_mode_or_two_modes_is_usage_error(enmap_tile, capsys):
    assert main(["evaluate", str(enmap_tile)]) == 2
    assert "exactly one of" in capsys.readouterr().err
    assert main(["evaluate", str(enmap_tile), "--reference", str(enmap_tile), "--labels", str(enmap_tile)]) == 2


def test_identical_cube_scores_perfectly():
    cube = make_cube(np.random.default_rng(0).random((5, 40, 40)).astype(np.float32) + 0.1)
    rep = evaluate_raster(cube, cube, metrics="psnr,ssim,sam,q2n", data_range=1.0)
    assert rep["psnr"] == "inf" and rep["ssim"] == pytest.approx(1.0) and rep["sam"] == pytest.approx(0.0, abs=1e-6)
    assert rep["q2n"] == pytest.approx(1.0)


def test_classmap_against_vector_labels_by_name(enmap_tile, tmp_path):
    """Polygons in another CRS (EPSG:4326), classes by name, matched to the map's codes by name."""
    from rasterio.warp import transform_geom

    cube = hsikit.open(enmap_tile)
    t = cube.rio.transform()
    pred = np.ones((32, 32), np.uint8)
    pred[:, 16:] = 2  # left half "Water" (1), right half "Tree" (2)
    path = tmp_path / "map.tif"
    meta = dict(driver="GTiff", width=32, height=32, count=1, dtype="uint8", crs=cube.rio.crs, transform=t)
    with rasterio.open(path, "w", **meta) as dst:
        dst.write(pred, 1)
        dst.update_tags(class_names=json.dumps({"1": "Water", "2": "Tree"}))

    def box(c0, c1, r0, r1):
        (x0, y0), (x1, y1) = t * (c0, r0), t * (c1, r1)
        ring = [[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]]
        return transform_geom(cube.rio.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]})

    features = [  # 8x8 px of Water on the left (correct) and 8x8 px labelled Water on the right (wrong)
        {"type": "Feature", "properties": {"landcover": "Water"}, "geometry": box(2, 10, 2, 10)},
        {"type": "Feature", "properties": {"landcover": "Water"}, "geometry": box(20, 28, 2, 10)},
        {"type": "Feature", "properties": {"landcover": "Tree"}, "geometry": box(20, 28, 20, 28)},
    ]
    vec = tmp_path / "labels.geojson"
    vec.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    rep = evaluate_classmap(path, vec, class_field="landcover")
    assert rep["n_pixels"] == pytest.approx(192, abs=12)  # 3 boxes of 8x8 px (edges may shift by the reprojection)
    assert rep["oa"] == pytest.approx(2 / 3, abs=0.05)
    assert {c["name"] for c in rep["classes"]} == {"Water", "Tree"}
    bad = tmp_path / "bad.geojson"
    bad.write_text(json.dumps({"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {"landcover": "Glacier"}, "geometry": box(2, 10, 2, 10)}]}))
    with pytest.raises(MetadataError, match="Glacier"):
        evaluate_classmap(path, bad, class_field="landcover")


def test_classify_output_scores_with_evaluate(shared_data, tmp_path):
    """The two-band map of hsikit classify (class, confidence) is scored on its class band."""
    scene = shared_data / "enmap_potsdam_tiles" / "images" / "enmap_potsdam_tile_64_0.tif"
    labels = shared_data / "enmap_potsdam_tiles" / "labels" / "enmap_potsdam_tile_64_0.tif"
    out = tmp_path / "map.tif"
    assert main(["classify", str(scene), str(out), "--labels", str(labels), "--model", "rf", "--seed", "0"]) == 0
    with rasterio.open(out) as src:
        assert src.count == 2
        cls = src.read(1)
    rep = evaluate_classmap(out, labels)
    with rasterio.open(labels) as src:
        lab = src.read(1)
    scored = lab > 0
    assert rep["oa"] == pytest.approx((cls[scored] == lab[scored]).mean())
