#!/usr/bin/env python
"""Build hsikit's sample scene: an EnMAP-like L2A-style COG simulated from earthlib spectra.

Outputs (in ``--out``, default ``datasets/sample/``; nothing here is committed):

``enmap_like_sample.tif``
    224 bands x N x N int16 COG, reflectance x 10000 (band scale 1e-4), nodata -32768, EPSG:32633,
    30 m near Potsdam; a nodata triangle in the top-right corner (like the edge of a rotated swath);
    bands 130-135 (1-based; 129-134 0-based) entirely nodata with bbl 0, as in real EnMAP L2A;
    band- and signal-dependent sensor noise (:func:`hsikit.data.synthetic.add_sensor_noise`).
``enmap_like_sample_clean.tif``
    The same without noise (same encoding and nodata layout): the reference for denoising.
``enmap_like_sample_abundances.tif``
    K bands float32, the true abundances (sum to 1; NaN = nodata in the triangle), band names are
    the endmembers.
``enmap_like_sample_endmembers.csv``
    The true endmember spectra (reflectance) at the 224 EnMAP bands, one column per endmember.
``enmap_like_sample.json``
    Generation parameters and provenance.

The noise-free model is exact in float: clean = endmembers @ abundances (before int16 rounding).

Usage: ``python datasets/make_sample_scene.py [--out DIR] [--size N] [--seed S] [--force]``.
Idempotent: does nothing when all outputs exist, unless ``--force``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from importlib import metadata as importlib_metadata
from pathlib import Path

import numpy as np
from affine import Affine

from hsikit.cube import make_cube
from hsikit.data.sensors import sensor_bands
from hsikit.data.synthetic import linear_mixture, load_earthlib, select_endmembers, synthetic_scene
from hsikit.io import save_cube

NAME = "enmap_like_sample"
SENSOR = "EnMAP (simulated from earthlib spectra)"
CRS = "EPSG:32633"
#: Upper-left corner (UTM 33N) of a 30 m grid over Potsdam, Germany (52.39 N, 13.06 E).
ORIGIN = (364000.0, 5812000.0)
PIXEL = 30.0
ACQUISITION_TIME = "2023-07-15T10:30:00Z"
SCALE = 1e-4
NODATA = -32768
#: 0-based bands that are entirely nodata in EnMAP L2A (1331-1391 nm, deep water vapour).
NODATA_BANDS = tuple(range(129, 135))
READ_SIGMA, SHOT_SIGMA = 3e-4, 1e-3
TRIANGLE = 0.3  # legs of the nodata triangle as a fraction of the scene size


def outputs(out: Path) -> dict[str, Path]:
    """Paths of every file the generator writes."""
    return {
        "cube": out / f"{NAME}.tif",
        "clean": out / f"{NAME}_clean.tif",
        "abundances": out / f"{NAME}_abundances.tif",
        "endmembers": out / f"{NAME}_endmembers.csv",
        "metadata": out / f"{NAME}.json",
    }


def swath_edge_mask(size: int, fraction: float = TRIANGLE) -> np.ndarray:
    """True inside a right triangle in the top-right corner with legs ``fraction * size``; (size, size)."""
    y, x = np.mgrid[0:size, 0:size]
    return (size - 1 - x) + y < fraction * size


def encode(reflectance: np.ndarray, nodata_mask: np.ndarray) -> np.ndarray:
    """Reflectance (224, N, N) -> int16 x 10000 with nodata pixels and nodata bands set to -32768."""
    data = np.clip(np.rint(reflectance / SCALE), -32767, 32767).astype(np.int16)
    data[:, nodata_mask] = NODATA
    data[list(NODATA_BANDS)] = NODATA
    return data


def write_endmembers(path: Path, endmembers: np.ndarray, names: list[str], table, seed: int) -> None:
    """Endmember spectra at the EnMAP bands as CSV with ``#`` provenance lines."""
    bands = sensor_bands("enmap")
    lines = [
        f"# True endmembers of {NAME}.tif: reflectance (0-1) at the 224 EnMAP bands (Gaussian SRF resampling",
        f"# of earthlib 1.1.0 spectra, MIT licence; seed {seed}). Columns after bbl: one endmember each.",
    ]
    for _, row in table.iterrows():
        lines.append(f"# {row['class']}: earthlib row {row['row']} {row['NAME']} ({row['LEVEL_1']}/{row['LEVEL_2']}/"
                     f"{row['LEVEL_3']}, source {row['SOURCE']})")
    lines.append(",".join(["band", "name", "wavelength_nm", "fwhm_nm", "bbl", *names]))
    for i in range(len(bands)):
        cells = [str(i + 1), str(bands.names[i]), f"{bands.wavelength[i]:g}", f"{bands.fwhm[i]:g}", str(int(bands.bbl[i]))]
        cells += [f"{v:.6f}" for v in endmembers[i]]
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def build(out: Path, size: int = 256, seed: int = 0, n_endmembers: int = 4, force: bool = False) -> dict[str, Path]:
    """Generate the sample scene into ``out``; returns the output paths (skips existing unless ``force``)."""
    paths = outputs(out)
    if not force and all(p.exists() for p in paths.values()):
        print(f"{out}: sample scene already present (use --force to rebuild)")
        return paths
    if size < 8:
        raise SystemExit("--size must be at least 8")
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    transform = Affine(PIXEL, 0.0, ORIGIN[0], 0.0, -PIXEL, ORIGIN[1])
    spectra, wavelength, table = load_earthlib()
    selected = select_endmembers(spectra, table, wavelength, n_endmembers=n_endmembers, seed=seed)
    noisy, endmembers, abundances = synthetic_scene(
        "enmap", size, size, n_endmembers, READ_SIGMA, seed,
        noise_model="sensor", shot_sigma=SHOT_SIGMA, selected=selected,
    )
    em_names = selected.names
    clean = linear_mixture(endmembers, abundances)
    mask = swath_edge_mask(size)
    bands = sensor_bands("enmap")
    bbl = bands.bbl.copy()
    bbl[list(NODATA_BANDS)] = False
    common = dict(crs=CRS, transform=transform, acquisition_time=ACQUISITION_TIME, sensor=SENSOR)
    spectral = dict(wavelength=bands.wavelength, fwhm=bands.fwhm, bbl=bbl, band_names=list(bands.names),
                    scale=SCALE, offset=0.0, nodata=NODATA)
    for key, values in (("cube", noisy.values), ("clean", clean)):
        cube = make_cube(encode(values, mask), source=str(paths[key]), **spectral, **common)
        save_cube(cube, paths[key])
    ab = abundances.astype(np.float32)
    ab[:, mask] = np.nan
    save_cube(make_cube(ab, band_names=em_names, nodata=np.nan, **common), paths["abundances"])
    write_endmembers(paths["endmembers"], endmembers, em_names, selected.table, seed)
    info = {
        "name": NAME,
        "generator": "datasets/make_sample_scene.py",
        "hsikit_version": importlib_metadata.version("hsikit") if _installed("hsikit") else None,
        "earthlib_version": importlib_metadata.version("earthlib"),
        "seed": seed,
        "size": size,
        "bands": len(bands),
        "sensor": SENSOR,
        "crs": CRS,
        "transform": list(transform)[:6],
        "acquisition_time": ACQUISITION_TIME,
        "scale": SCALE,
        "nodata": NODATA,
        "nodata_bands_0based": list(NODATA_BANDS),
        "nodata_triangle": f"top-right corner, legs {TRIANGLE} x size",
        "noise": {"model": "hsikit.data.synthetic.add_sensor_noise", "read_sigma": READ_SIGMA, "shot_sigma": SHOT_SIGMA},
        "abundances": {"model": "hsikit.data.synthetic.abundance_field", "scales": [4, 16, 64], "concentration": 4.0},
        "endmembers": em_names,
        "seconds": round(time.perf_counter() - t0, 2),
    }
    paths["metadata"].write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {NAME} ({size}x{size}x{len(bands)}, {n_endmembers} endmembers, seed {seed}) to {out} "
          f"in {info['seconds']:.1f} s")
    return paths


def _installed(dist: str) -> bool:
    try:
        importlib_metadata.version(dist)
    except importlib_metadata.PackageNotFoundError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "sample",
                        help="output folder (default: datasets/sample next to this script)")
    parser.add_argument("--size", type=int, default=256, help="scene width and height in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--endmembers", type=int, default=4, help="number of endmembers (default 4)")
    parser.add_argument("--force", action="store_true", help="rebuild even if the outputs exist")
    args = parser.parse_args(argv)
    build(args.out, size=args.size, seed=args.seed, n_endmembers=args.endmembers, force=args.force)
    return 0


if __name__ == "__main__":
    sys.exit(main())
