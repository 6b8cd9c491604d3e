"""Fit / score / save / load / predict a class map on the real EnMAP tiles, and the CLI door."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

import hsikit
from hsikit.classify.api import classify, evaluate, fit_classifier, predict_scene
from hsikit.classify.modelfile import FittedClassifier
from hsikit.cli import main
from hsikit.errors import MetadataError

TRAIN, OTHER = "enmap_potsdam_tile_96_0.tif", "enmap_potsdam_tile_96_32.tif"


@pytest.fixture(scope="module")
def tiles(shared_data):
    d = shared_data / "enmap_potsdam_tiles"
    return {n: (d / "images" / n, d / "labels" / n) for n in (TRAIN, OTHER)}


@pytest.fixture(scope="module")
def rf(tiles):
    return fit_classifier(*tiles[TRAIN], model="rf", seed=0, options={"n_estimators": 60})


def test_fit_reports_disjoint_heldout_scores(rf, tiles):
    s = rf.summary
    assert s["split"]["kind"] == "spatially disjoint blocks"
    held = s["heldout"]
    with rasterio.open(tiles[TRAIN][1]) as src:
        n_lab = int((src.read(1) > 0).sum())
    assert held["pixels"] + s["train_pixels"] + s["stop_pixels"] <= n_lab
    assert 0.2 * n_lab < held["pixels"] < 0.45 * n_lab
    # real spectra separate these classes well above the majority-class rate
    majority = max(c["support"] for c in held["per_class"]) / held["pixels"]
    assert held["oa"] > majority and held["kappa"] > 0.3
    assert {c["code"] for c in held["per_class"]} <= {1, 2, 3, 4, 5}
    assert s["bands_used"] == 218  # the 6 all-nodata bands (129-134, bbl=0) are left out


def test_model_file_roundtrip_and_other_tile(rf, tiles, tmp_path):
    path = rf.save(tmp_path / "rf.safetensors")
    loaded = FittedClassifier.load(path)
    assert loaded.kind == "rf" and list(loaded.codes) == list(rf.codes)
    a = evaluate(rf, *tiles[OTHER])
    b = evaluate(loaded, *tiles[OTHER])
    assert a == b and a["pixels"] == 480
    cube = hsikit.open(tiles[OTHER][0])
    with pytest.raises(MetadataError, match="224-band"):
        loaded.prep.check_scene(cube.isel(band=slice(0, 200)))


def _with_nodata(src_path, dst_path):
    with rasterio.open(src_path) as src:
        prof, data = src.profile, src.read()
    data[:, :4, :] = -32768
    data[:, 10, 7] = -32768
    with rasterio.open(dst_path, "w", **prof) as dst:
        dst.write(data)
        for b in range(1, data.shape[0] + 1):
            with rasterio.open(src_path) as src:
                dst.update_tags(b, **src.tags(b))
    return dst_path


def test_predict_scene_map_probabilities_nodata(rf, tiles, tmp_path):
    scene = _with_nodata(tiles[OTHER][0], tmp_path / "scene.tif")
    out = tmp_path / "map.tif"
    info = predict_scene(rf, scene, out, probabilities=tmp_path / "proba.tif", progress=False)
    with rasterio.open(out) as m, rasterio.open(tmp_path / "proba.tif") as p, rasterio.open(scene) as s:
        assert m.crs == s.crs and m.transform == s.transform and m.dtypes == ("uint8", "uint8")
        cls, conf = m.read()
        prob = p.read()
        names = json.loads(m.tags()["class_names"])
        cmap = m.colormap(1)
    assert set(names) == {str(c) for c in rf.codes}
    assert cmap[0][3] == 0 and all(cmap[int(c)][3] == 255 for c in rf.codes)
    nod = np.zeros((32, 32), bool)
    nod[:4] = True
    nod[10, 7] = True
    assert (cls[nod] == 0).all() and (conf[nod] == 0).all() and np.isnan(prob[:, nod]).all()
    ok = ~nod
    np.testing.assert_allclose(prob[:, ok].sum(0), 1.0, atol=1e-5)
    np.testing.assert_array_equal(cls[ok], rf.codes[prob[:, ok].argmax(0)])
    np.testing.assert_array_equal(conf[ok], np.clip(np.rint(100 * prob[:, ok].max(0)), 1, 100))
    assert info["pixels"] == 1024 and (tmp_path / "map.qml").read_text().count("paletteEntry") == rf.codes.size


def test_train_on_tiles_test_on_others(tiles):
    f = fit_classifier([tiles[TRAIN][0]], [tiles[TRAIN][1]], model="svm", test=[tiles[OTHER]], seed=0)
    assert f.summary["split"]["kind"] == "held-out scenes"
    assert f.summary["heldout"]["pixels"] == 480 and f.summary["heldout"]["oa"] > 0.5


def test_api_is_exposed():
    assert hsikit.fit_classifier is fit_classifier
    import hsikit.classify as pkg

    assert callable(hsikit.classify) and callable(pkg)


def test_cli_classify_fit_save_load(tiles, tmp_path, capsys):
    img, lab = tiles[TRAIN]
    out = tmp_path / "map.tif"
    model = tmp_path / "m.safetensors"
    assert main(["classify", str(img), "--labels", str(lab), str(out), "--model", "rf", "--save-model", str(model)]) == 0
    text = capsys.readouterr().out
    assert "OA " in text and "kappa" in text and "F1" in text
    report = json.loads((tmp_path / "map.report.json").read_text())
    assert report["scores"]["oa"] == pytest.approx(float(text.split("OA ")[1].split()[0]), abs=1e-4)
    img2, lab2 = tiles[OTHER]
    assert main(["classify", str(img2), str(tmp_path / "map2.tif"), "--load-model", str(model), "--labels", str(lab2)]) == 0
    assert "every labelled pixel" in capsys.readouterr().out


def _label_copy(src_path, dst_path, fn, crs=None):
    with rasterio.open(src_path) as src:
        prof, v = src.profile, src.read(1)
    if crs:
        prof["crs"] = crs
    with rasterio.open(dst_path, "w", **prof) as dst:
        dst.write(fn(v), 1)
    return dst_path


@pytest.mark.parametrize("case,message", [
    ("one_class", "one class only"),
    ("empty", "no labelled pixel"),
    ("crs", "EPSG:4326"),
])
def test_cli_bad_labels_exit_2(tiles, tmp_path, capsys, case, message):
    img, lab = tiles[TRAIN]
    fn = {"one_class": lambda v: (v > 0).astype(v.dtype) * 3, "empty": lambda v: v * 0, "crs": lambda v: v}[case]
    bad = _label_copy(lab, tmp_path / "bad.tif", fn, crs="EPSG:4326" if case == "crs" else None)
    assert main(["classify", str(img), "--labels", str(bad), str(tmp_path / "m.tif"), "--model", "rf"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("hsikit: error:") and message in err and len(err.strip().splitlines()) == 1


def test_gatorsense_muufl_labelled_spectra(shared_data):
    """The GatorSense class demo's labelled spectra are pixels of its MUUFL image: fit on them."""
    import scipy.io as sio

    m = sio.loadmat(shared_data / "gatorsense_hsi_toolkit_demo" / "muufl_gulfport_for_class_demo.mat")
    img = m["hsi_sub"].astype(np.float32)
    flat = img.reshape(-1, 72).astype(np.float64)
    lab = np.zeros(flat.shape[0], np.int64)
    names = {}
    for k in range(5):
        e = m["train_data"][0, k]
        names[k + 1] = str(e["name"][0])
        d = ((e["Spectra"].astype(np.float64).T[:, None] - flat[None]) ** 2).sum(-1)
        assert np.allclose(d.min(1), 0)
        lab[d.argmin(1)] = k + 1
    cube = hsikit.make_cube(np.transpose(img, (2, 0, 1)), wavelength=m["wavlength"].ravel())
    f = fit_classifier(cube, lab.reshape(31, 20), model="rf", val_fraction=0.3, seed=0, class_names=names,
                       options={"n_estimators": 50})
    held = f.summary["heldout"]
    assert held["pixels"] >= 5 and f.summary["train_pixels"] >= 10
    assert held["oa"] >= 0.6  # calibration panels, trees and grass are spectrally distinct
    assert "Trees" in f.class_names()


def test_cli_vector_labels_in_another_crs(tiles, tmp_path, capsys):
    """Polygons in WGS84 are reprojected onto the UTM scene; their text classes name the map's classes."""
    from rasterio.warp import transform as warp_transform

    img, lab = tiles[TRAIN]
    with rasterio.open(lab) as src:
        ref, t = src.read(1), src.transform
    feats = []
    for r in range(0, 32, 2):
        for c in range(0, 32, 2):
            code = int(ref[r, c])
            if code == 0:
                continue
            x0, y0 = t * (c + 0.1, r + 0.1)
            x1, y1 = t * (c + 0.9, r + 0.9)
            lon, lat = warp_transform("EPSG:32633", "EPSG:4326", [x0, x1, x1, x0, x0], [y0, y0, y1, y1, y0])
            feats.append({"type": "Feature", "properties": {"class": f"type_{code}"},
                          "geometry": {"type": "Polygon", "coordinates": [list(zip(lon, lat))]}})
    path = tmp_path / "poly.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}))
    out = tmp_path / "vmap.tif"
    assert main(["classify", str(img), str(out), "--labels", str(path), "--val-fraction", "0.3", "--block", "8"]) == 0
    with rasterio.open(out) as m:
        names = json.loads(m.tags()["class_names"])
    present = sorted({f"type_{int(v)}" for v in np.unique(ref[::2, ::2]) if v > 0})
    assert sorted(names.values()) == present
    assert "OA " in capsys.readouterr().out
