"""The sample-scene generator datasets/make_sample_scene.py, run small."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import rasterio

pytest.importorskip("earthlib")

SCRIPT = Path(__file__).resolve().parents[1] / "datasets" / "make_sample_scene.py"


@pytest.fixture(scope="module")
def generator():
    spec = importlib.util.spec_from_file_location("make_sample_scene", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_sample_scene(generator, tmp_path: Path, capsys) -> None:
    assert generator.main(["--out", str(tmp_path), "--size", "48", "--seed", "1"]) == 0
    paths = generator.outputs(tmp_path)
    assert all(p.exists() for p in paths.values())
    with rasterio.open(paths["cube"]) as src:
        assert src.count == 224 and src.dtypes[0] == "int16" and src.nodata == -32768
        assert src.crs.to_epsg() == 32633 and src.res == (30.0, 30.0)
        assert src.scales[0] == pytest.approx(1e-4)
        assert src.tags()["sensor"] == "EnMAP (simulated from earthlib spectra)" and src.tags()["acquisition_time"]
        tags = [src.tags(i) for i in range(1, 225)]
        assert all("wavelength" in t and "fwhm" in t for t in tags)
        assert [i for i, t in enumerate(tags) if t["bbl"] == "0"] == list(range(129, 135))
        data = src.read()
    assert (data[129:135] == -32768).all()
    good = np.delete(data, range(129, 135), axis=0)
    assert (good[:, 0, -1] == -32768).all() and (good[:, -1, 0] != -32768).all()  # nodata triangle top-right
    valid = good[:, good[0] != -32768]
    assert 0 < np.median(valid) < 10000
    with rasterio.open(paths["clean"]) as src:
        clean = src.read()
    with rasterio.open(paths["abundances"]) as src:
        ab = src.read()
        assert src.count == 4 and src.crs.to_epsg() == 32633
    inside = ~np.isnan(ab[0])
    np.testing.assert_allclose(ab[:, inside].sum(axis=0), 1.0, atol=1e-5)
    table = pd.read_csv(paths["endmembers"], comment="#")
    assert list(table.columns[:5]) == ["band", "name", "wavelength_nm", "fwhm_nm", "bbl"] and len(table) == 224
    em = table.iloc[:, 5:].to_numpy()
    model = np.einsum("lk,kp->lp", em, ab[:, inside]) / 1e-4
    ok = np.ones(224, bool)
    ok[129:135] = False
    assert np.abs(model[ok] - clean[ok][:, inside]).max() <= 1.0  # int16 rounding + 6-decimal CSV
    # idempotent: a second run keeps the files
    mtime = paths["cube"].stat().st_mtime_ns
    generator.main(["--out", str(tmp_path), "--size", "48", "--seed", "1"])
    assert paths["cube"].stat().st_mtime_ns == mtime
    assert "already present" in capsys.readouterr().out
