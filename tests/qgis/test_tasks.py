"""Each hsikit algorithm through processing.run on real EnMAP tiles: outputs, metadata, progress."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import rasterio


def _index(alg: str, param: str, value: str) -> int:
    """Index of an enum option (QGIS 3.22 enums take indices)."""
    from qgis.core import QgsApplication

    p = QgsApplication.processingRegistry().algorithmById(alg).parameterDefinition(param)
    return p.options().index(value)


def test_denoise_writes_a_georeferenced_cube_qgis_reads(run, enmap_tile: Path, tmp_path: Path) -> None:
    from qgis.core import QgsRasterLayer

    out = tmp_path / "den.tif"
    res, feedback = run("hsikit:denoise", {"INPUT": str(enmap_tile), "MODEL": _index("hsikit:denoise", "MODEL", "fasthyde"),
                                           "TILE": 8, "OVERLAP": 4, "OUTPUT": str(out)})
    assert res["OUTPUT"] == str(out) and res["TILES"] == 16  # 4 batches of 4 tiles
    # progress came from the engine's per-tile callback, up to 100 %
    assert feedback.progress[-1] == pytest.approx(100) and len(feedback.progress) >= 4
    assert feedback.progress == sorted(feedback.progress)
    layer, source = QgsRasterLayer(str(out), "den"), QgsRasterLayer(str(enmap_tile), "src")
    assert layer.isValid() and layer.bandCount() == 224
    assert layer.crs().authid() == "EPSG:32633" and layer.extent() == source.extent()
    with rasterio.open(out) as d, rasterio.open(enmap_tile) as s:
        wl = [float(d.tags(i)["wavelength"]) for i in (1, 100, 224)]
        assert wl == pytest.approx([float(s.tags(i)["wavelength"]) for i in (1, 100, 224)])
        assert d.dtypes[0] == "float32"
        desc = d.descriptions[0]
        den, raw = d.read(50), s.read(50).astype(np.float64) * 1e-4  # stored reflectance x 10000
    # QGIS shows the band descriptions (with the wavelength) as band names
    assert desc and desc in layer.bandName(1)
    assert np.isfinite(den).all() and abs(den.mean() - raw.mean()) < 0.01 * raw.mean()
    assert np.std(den - raw) < np.std(raw)


def test_cancel_stops_the_run_and_leaves_no_output(run, enmap_tile: Path, tmp_path: Path) -> None:
    from qgis.core import QgsProcessingException

    out = tmp_path / "cancelled.tif"
    with pytest.raises(QgsProcessingException, match="cancelled"):
        run("hsikit:denoise", {"INPUT": str(enmap_tile), "TILE": 8, "OVERLAP": 2, "OUTPUT": str(out)}, cancel_after=1)
    assert not out.exists() and not list(tmp_path.iterdir())


def test_unmix_a_real_tile(run, enmap_tile: Path, tmp_path: Path) -> None:
    out = tmp_path / "abund.tif"
    res, _ = run("hsikit:unmix", {"INPUT": str(enmap_tile), "METHOD": _index("hsikit:unmix", "METHOD", "vca-fcls"),
                                  "N_ENDMEMBERS": 3, "OUTPUT": str(out)})
    assert res["N_ENDMEMBERS_USED"] == 3 and Path(res["ENDMEMBERS_PNG"]).exists()
    with rasterio.open(out) as ds:
        assert ds.count == 4 and ds.crs.to_epsg() == 32633
        assert list(ds.descriptions) == ["endmember_1", "endmember_2", "endmember_3", "residual_rmse"]
        ab = ds.read([1, 2, 3])
    # FCLS: non-negative abundances that sum to one
    assert (ab >= -1e-6).all() and np.allclose(ab.sum(0), 1, atol=1e-4)
    with open(res["ENDMEMBERS_CSV"]) as f:
        rows = list(csv.reader(f))
    assert rows[0][0].startswith("wavelength") and len(rows[0]) == 4 and len(rows) - 1 == 218  # valid bands


def test_classify_with_a_label_raster_then_evaluate_the_map(run, tile_pair, tmp_path: Path) -> None:
    from qgis.core import QgsRasterLayer

    image, labels = tile_pair
    out = tmp_path / "map.tif"
    res, feedback = run("hsikit:classify", {"INPUT": str(image), "LABELS": str(labels),
                                            "MODEL": _index("hsikit:classify", "MODEL", "rf"), "OUTPUT": str(out)})
    assert res["OUTPUT"] == str(out) and feedback.progress[-1] == pytest.approx(100)
    report = json.loads(Path(res["REPORT"]).read_text())
    assert report["model"] == "rf" and res["OA"] == pytest.approx(report["scores"]["oa"]) and 0 < res["OA"] <= 1
    layer = QgsRasterLayer(str(out), "map")
    assert layer.isValid() and layer.crs().authid() == "EPSG:32633"
    # the class map opens as a paletted layer (colour table + the .qml beside it)
    assert layer.renderer().type() == "paletted" and out.with_suffix(".qml").exists()
    with rasterio.open(out) as m, rasterio.open(labels) as lab:
        codes, known = set(np.unique(m.read(1))), set(np.unique(lab.read(1)))
        assert m.colormap(1)[max(known)][3] == 255
    assert codes <= known | {0} and len(codes - {0}) >= 2

    # hsikit.evaluate_classmap takes one-band maps; classify writes (class, confidence), so score the
    # label raster against itself here (OA 1) and a wrong grid must fail
    ev, _ = run("hsikit:evaluate", {"MODE": 1, "INPUT": str(labels), "REFERENCE": str(labels),
                                    "OUTPUT_JSON": str(tmp_path / "ev.json")})
    scores = json.loads(ev["REPORT"])
    assert scores["oa"] == 1 and scores["kappa"] == pytest.approx(1)
    assert json.loads((tmp_path / "ev.json").read_text()) == scores


@pytest.fixture(scope="module")
def pan_pair(enmap_tile: Path, tmp_path_factory) -> tuple[Path, Path]:
    """LR cube (224 x 16 x 16, 60 m) from the tile and a PAN (32 x 32, 30 m) simulated from it."""
    import torch

    import hsikit
    from hsikit.cube import geotransform, make_cube, to_reflectance
    from hsikit.data.degrade import degrade_cube, simulate_pan

    d = tmp_path_factory.mktemp("pan")
    tile = hsikit.open(enmap_tile)
    good = np.asarray(tile["bbl"].values, bool)
    phys = to_reflectance(tile).values[good]
    pan = simulate_pan(torch.from_numpy(phys), tile["wavelength"].values[good], band=(400, 700)).numpy()
    hsikit.save(degrade_cube(tile, blur_ratio=2), d / "hs.tif")
    hsikit.save(make_cube(pan, crs=tile.rio.crs, transform=geotransform(tile), name="pan"), d / "pan.tif")
    return d / "hs.tif", d / "pan.tif"


def test_pansharpen_onto_the_pan_grid(run, pan_pair, tmp_path: Path) -> None:
    hs, pan = pan_pair
    out = tmp_path / "sharp.tif"
    res, _ = run("hsikit:pansharpen", {"INPUT": str(hs), "PAN": str(pan), "OUTPUT": str(out),
                                       "METHOD": _index("hsikit:pansharpen", "METHOD", "gsa"),
                                       "EVALUATE": _index("hsikit:pansharpen", "EVALUATE", "full")})
    assert res["RATIO_USED"] == 2 and "hqnr" in json.loads(res["SCORES"]).get("scores", json.loads(res["SCORES"]))
    with rasterio.open(out) as ds, rasterio.open(pan) as p, rasterio.open(hs) as h:
        assert ds.count == 224 and ds.shape == p.shape and ds.transform == p.transform
        assert ds.tags(10)["wavelength"] == h.tags(10)["wavelength"]


def test_evaluate_raster_metrics(run, enmap_tile: Path, tmp_path: Path) -> None:
    import hsikit

    out = tmp_path / "den.tif"
    run("hsikit:denoise", {"INPUT": str(enmap_tile), "OUTPUT": str(out)})
    res, _ = run("hsikit:evaluate", {"MODE": 0, "INPUT": str(out), "REFERENCE": str(enmap_tile), "METRICS": "psnr,sam"})
    report = json.loads(res["REPORT"])
    direct = hsikit.evaluate_raster(out, enmap_tile, metrics="psnr,sam")
    assert json.loads(json.dumps(direct, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))) == report


def test_denoise_sparse_option_reaches_the_api(run, enmap_tile: Path, tmp_path: Path) -> None:
    """SPARSE=auto gives what hsikit.denoise(..., sparse="auto") gives."""
    import hsikit

    out = tmp_path / "den_sparse.tif"
    model = _index("hsikit:denoise", "MODEL", "fasthyde")
    run("hsikit:denoise", {"INPUT": str(enmap_tile), "MODEL": model, "SPARSE": _index("hsikit:denoise", "SPARSE", "auto"),
                           "OUTPUT": str(out)})
    direct = hsikit.denoise(enmap_tile, "fasthyde", sparse="auto", progress=False, device="cpu")
    with rasterio.open(out) as d:
        np.testing.assert_array_equal(d.read(), direct.cube.values)


def test_super_resolve_bicubic_onto_a_finer_grid(run, enmap_tile: Path, tmp_path: Path) -> None:
    """bicubic x2: 224 x 64 x 64 on the source's CRS and corner, pixels half as large, as the API gives."""
    import hsikit

    out = tmp_path / "sr.tif"
    res, feedback = run("hsikit:super_resolve", {"INPUT": str(enmap_tile), "SCALE": 2, "OUTPUT": str(out),
                                                 "MODEL": _index("hsikit:super_resolve", "MODEL", "bicubic")})
    assert res["OUTPUT"] == str(out) and res["TILES"] >= 1 and feedback.progress[-1] == pytest.approx(100)
    sr, src = hsikit.open(out), hsikit.open(enmap_tile)
    assert sr.shape == (224, 64, 64) and sr.rio.crs == src.rio.crs
    assert sr.rio.resolution() == pytest.approx(tuple(r / 2 for r in src.rio.resolution()))
    assert sr.rio.transform()[2] == src.rio.transform()[2] and sr.rio.transform()[5] == src.rio.transform()[5]
    direct = hsikit.super_resolve(enmap_tile, 2, "bicubic", progress=False, device="cpu")
    np.testing.assert_allclose(sr.values, direct.cube.values, rtol=1e-6, atol=1e-7, equal_nan=True)


def test_super_resolve_learned_model_at_the_wrong_scale_fails(run, enmap_tile: Path, tmp_path: Path) -> None:
    """A learned model runs only at its own scale (3): scale 2 gives hsikit's one-line message."""
    from qgis.core import QgsProcessingException

    import hsikit.superres.subspace  # noqa: F401  (registers the learned models)
    from hsikit.superres.api import LEARNED_BY_SCALE
    from hsikit.zoo import released_models

    model = LEARNED_BY_SCALE[3]
    if model not in released_models("superres"):
        pytest.skip(f"{model} not released (no models/{model}/model.safetensors)")
    out = tmp_path / "never.tif"
    with pytest.raises(QgsProcessingException, match="by 3, not 2") as err:
        run("hsikit:super_resolve", {"INPUT": str(enmap_tile), "SCALE": 2, "OUTPUT": str(out),
                                     "MODEL": _index("hsikit:super_resolve", "MODEL", model)})
    assert "\n" not in str(err.value) and not out.exists()
