"""The command line: info, convert, and one-line errors with exit status 2."""

from __future__ import annotations

import re

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hsikit.cli import main
from hsikit.io import open_cube


def _run(capsys, *args):
    rc = main(list(args))
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_info_json_on_real_enmap_tile(capsys, enmap_tile: Path):
    rc, out, err = _run(capsys, "info", str(enmap_tile), "--json")
    assert rc == 0, err
    d = json.loads(out)
    assert d["bands"] == 224 and d["crs"] == "EPSG:32633" and d["resolution"] == [30.0, 30.0]
    assert round(d["wavelength_range_nm"][0]) == 418 and round(d["wavelength_range_nm"][1]) == 2446
    assert d["invalid_bands"] == [130, 131, 132, 133, 134, 135] and d["valid_bands"] == 218
    assert d["nodata"] == -32768 and d["scale"] == pytest.approx(1e-4)
    assert d["bounds"] == [364095.0, 5809005.0, 365055.0, 5809965.0]


def test_info_text(capsys, enmap_tile: Path):
    rc, out, _ = _run(capsys, "info", str(enmap_tile))
    assert rc == 0 and "418.24 - 2445.53 nm" in out and "6 invalid (130-135)" in out and "EPSG:32633" in out


@pytest.mark.parametrize("suffix,bands,count", [(".tif", "valid", 218), (".nc", "torchgeo202", 202), (".zarr", "1-10,224", 11)])
def test_convert(capsys, tmp_path, enmap_tile: Path, suffix, bands, count):
    out_path = tmp_path / f"o{suffix}"
    rc, out, err = _run(capsys, "convert", str(enmap_tile), str(out_path), "--bands", bands)
    assert rc == 0, err
    assert "wrote" in out
    c = open_cube(out_path)
    assert c.sizes["band"] == count and c.rio.crs.to_epsg() == 32633


def test_bad_inputs_one_line_exit_2(capsys, tmp_path, enmap_tile: Path):
    junk = tmp_path / "junk.tif"
    junk.write_text("hello")
    truncated = tmp_path / "truncated.tif"
    truncated.write_bytes(enmap_tile.read_bytes()[:100_000])
    envi_dir = Path(__file__).parent / "data" / "envi"
    (tmp_path / "w.bsq").write_bytes((envi_dir / "tiny_bsq.bsq").read_bytes())
    header = re.sub(r"wavelength = \{[^}]*\}", "wavelength = {0.4, 0.5}", (envi_dir / "tiny_bsq.hdr").read_text())
    (tmp_path / "w.hdr").write_text(header)
    cases = [
        (("info", str(truncated)), "truncated.tif: read failed, the file may be truncated or corrupt"),
        (("convert", str(truncated), str(tmp_path / "o.tif")), "truncated.tif: read failed"),
        (("info", str(tmp_path / "w.bsq")), "w.hdr: header lists 2 wavelengths but the image has 5 bands"),
        (("info", str(tmp_path / "missing.tif")), "missing.tif: file not found"),
        (("info", str(junk)), "junk.tif: not a readable raster"),
        (("convert", str(enmap_tile), str(tmp_path / "no" / "o.tif")), "output folder"),
        (("convert", str(enmap_tile), str(tmp_path / "o.tif"), "--bands", "bogus"), "unknown band preset 'bogus'"),
        (("convert", str(enmap_tile), str(tmp_path / "o.tif"), "--format", "jpeg"), "unknown output format 'jpeg'"),
    ]
    for args, message in cases:
        rc, out, err = _run(capsys, *args)
        assert rc == 2, (args, err)
        assert err.count("\n") == 1 and err.startswith("hsikit: error: ") and message in err, err
        assert "Traceback" not in err
    assert not (tmp_path / "o.tif").exists()


def test_existing_output_untouched_on_bad_bands(capsys, tmp_path, enmap_tile: Path):
    target = tmp_path / "o.tif"
    assert _run(capsys, "convert", str(enmap_tile), str(target))[0] == 0
    before = target.read_bytes()
    assert _run(capsys, "convert", str(enmap_tile), str(target), "--bands", "300-400")[0] == 2
    assert target.read_bytes() == before


def test_debug_shows_traceback(tmp_path):
    with pytest.raises(Exception, match="file not found"):
        main(["--debug", "info", str(tmp_path / "missing.tif")])


def test_console_script_end_to_end(tmp_path, enmap_tile: Path):
    exe = shutil.which("hsikit", path=str(Path(sys.executable).parent))
    assert exe, "the hsikit console script is not installed in this environment"
    ok = subprocess.run([exe, "info", str(enmap_tile), "--json"], capture_output=True, text=True)
    assert ok.returncode == 0 and json.loads(ok.stdout)["bands"] == 224
    bad = subprocess.run([exe, "info", str(tmp_path / "x.tif")], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().endswith("x.tif: file not found")
    usage = subprocess.run([exe, "convert"], capture_output=True, text=True)
    assert usage.returncode == 2 and "Missing argument" in usage.stderr
    helped = subprocess.run([exe, "--help"], capture_output=True, text=True)
    assert helped.returncode == 0 and "convert" in helped.stdout and "info" in helped.stdout


def test_info_reports_nan_nodata(capsys, tmp_path, enmap_tile: Path):
    import hsikit

    refl = hsikit.to_reflectance(hsikit.open(enmap_tile))  # nodata becomes NaN
    out = hsikit.save(refl, tmp_path / "refl.tif")
    rc, text, _ = _run(capsys, "info", str(out), "--json")
    assert rc == 0 and json.loads(text)["nodata"] == "nan"
    rc, text, _ = _run(capsys, "info", str(out))
    assert "nodata        nan" in text
