"""The hsikit provider inside QGIS: registration, hsikit:info, error messages, qgis_process."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sysconfig
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
ALGORITHMS = {"info", "denoise", "unmix", "classify", "pansharpen", "super_resolve", "evaluate"}


def test_provider_lists_the_task_algorithms(qgis_app) -> None:
    from qgis.core import QgsApplication

    provider = QgsApplication.processingRegistry().providerById("hsikit")
    assert provider is not None and provider.name() == "hsikit"
    assert {a.name() for a in provider.algorithms()} == ALGORITHMS
    assert {a.id() for a in provider.algorithms()} == {f"hsikit:{n}" for n in ALGORITHMS}
    assert provider.supportedOutputRasterLayerExtensions() == ["tif"]


def test_enum_choices_come_from_the_hsikit_registries(qgis_app) -> None:
    from qgis.core import QgsApplication

    from hsikit.classify.estimator import kinds
    from hsikit.pansharpen.api import DEFAULT_METHOD, METHODS
    from hsikit.unmix.api import methods

    reg = QgsApplication.processingRegistry()
    options = {n: {p.name(): p.options() for p in reg.algorithmById(f"hsikit:{n}").parameterDefinitions()
                   if p.type() == "enum"} for n in ALGORITHMS}
    assert options["unmix"]["METHOD"] == methods()
    assert sorted(options["classify"]["MODEL"]) == kinds() and options["classify"]["MODEL"][0] == "rf"
    assert sorted(options["pansharpen"]["METHOD"]) == sorted(METHODS)
    assert options["pansharpen"]["METHOD"][0] == DEFAULT_METHOD
    from hsikit.denoise.api import DEFAULT_MODEL

    assert options["denoise"]["MODEL"][0] == DEFAULT_MODEL == "hsdt-s-sub"  # released weights in models/
    assert sorted(options["denoise"]["MODEL"]) == ["fasthyde", "hsdt-m-sub", "hsdt-s-sub", "lrmr"]
    assert options["denoise"]["SPARSE"] == ["off", "auto"]  # off first: the API's default
    import hsikit.superres.subspace  # noqa: F401  (registers the learned models)
    from hsikit.superres.api import DEFAULT_MODEL as SR_DEFAULT
    from hsikit.zoo import released_models

    # the API's default (auto) first, bicubic always, a learned model once models/<name>/model.safetensors is there
    assert options["super_resolve"]["MODEL"] == [SR_DEFAULT, "bicubic", *released_models("superres")]
    assert SR_DEFAULT == "auto"
    assert options["super_resolve"]["DEVICE"] == ["auto", "cpu", "cuda"]


def test_info_on_a_real_enmap_tile(run, enmap_tile: Path, tmp_path: Path) -> None:
    out = tmp_path / "info.json"
    res, feedback = run("hsikit:info", {"INPUT": str(enmap_tile), "OUTPUT_JSON": str(out)})
    assert res["BANDS"] == 224 and res["WIDTH"] == 32 and res["HEIGHT"] == 32
    assert "32633" in res["CRS"]
    desc = json.loads(out.read_text())
    assert desc["bands"] == 224 and desc["dtype"] == "float32"
    assert 400 < desc["wavelength_range_nm"][0] < 430 and 2400 < desc["wavelength_range_nm"][1] < 2500
    assert res["DESCRIPTION"] in feedback.infos


def test_bad_input_raises_hsikits_message(run, tile_pair, tmp_path: Path) -> None:
    """A single-band raster cannot be denoised: QGIS gets hsikit's own one-line message."""
    from qgis.core import QgsProcessingException

    import hsikit
    from hsikit.errors import HsikitError

    _, labels = tile_pair
    with pytest.raises(HsikitError) as direct:
        hsikit.denoise(labels, out=tmp_path / "direct.tif")
    out = tmp_path / "never.tif"
    with pytest.raises(QgsProcessingException) as err:
        run("hsikit:denoise", {"INPUT": str(labels), "OUTPUT": str(out)})
    assert str(err.value) == str(direct.value)
    assert "cannot be denoised spectrally" in str(err.value) and str(labels) in str(err.value)
    assert not out.exists()


def test_grid_mismatch_in_evaluate_names_both_files(run, shared_data: Path) -> None:
    from qgis.core import QgsProcessingException

    images = shared_data / "enmap_potsdam_tiles" / "images"
    a, b = images / "enmap_potsdam_tile_64_0.tif", images / "enmap_potsdam_tile_128_0.tif"
    with pytest.raises(QgsProcessingException, match="grid|transform|bounds|origin"):
        run("hsikit:evaluate", {"MODE": 0, "INPUT": str(a), "REFERENCE": str(b)})


def _qgis_process_env(tmp_path: Path) -> dict[str, str]:
    """qgis_process.bin with the repository root as a plugin folder (it holds qgis_plugin/) and this
    venv's site-packages on PYTHONPATH (its embedded Python is /usr's, which lacks hsikit's stack)."""
    site = sysconfig.get_paths()["purelib"]
    return dict(os.environ, QT_QPA_PLATFORM="offscreen", QGIS_PLUGINPATH=str(REPO), PYTHONPATH=site,
                XDG_RUNTIME_DIR=str(tmp_path), HOME=str(tmp_path))


qgis_process = pytest.mark.skipif(shutil.which("qgis_process.bin") is None, reason="qgis_process.bin not installed")


def _enable_plugin(env: dict[str, str]) -> None:
    subprocess.run(["qgis_process.bin", "plugins", "enable", "qgis_plugin"], env=env, capture_output=True, text=True,
                   timeout=120)


@qgis_process
def test_qgis_process_lists_and_runs_hsikit(enmap_tile: Path, tmp_path: Path) -> None:
    env = _qgis_process_env(tmp_path)
    _enable_plugin(env)
    listing = subprocess.run(["qgis_process.bin", "list"], env=env, capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "hsikit:denoise" in listing.stdout and "hsikit:info" in listing.stdout
    ran = subprocess.run(["qgis_process.bin", "run", "hsikit:info", "--", f"INPUT={enmap_tile}"], env=env,
                         capture_output=True, text=True, timeout=180)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "BANDS:\t224" in ran.stdout
    # a full task inside qgis_process (its own GDAL/PROJ loaded globally, rasterio's beside them)
    out = tmp_path / "den.tif"
    ran = subprocess.run(["qgis_process.bin", "run", "hsikit:denoise", "--", f"INPUT={enmap_tile}", f"OUTPUT={out}"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert f"OUTPUT:\t{out}" in ran.stdout
    import rasterio

    with rasterio.open(out) as d, rasterio.open(enmap_tile) as s:
        assert d.count == 224 and d.crs == s.crs and d.transform == s.transform
        assert float(d.tags(224)["wavelength"]) == pytest.approx(float(s.tags(224)["wavelength"]))
