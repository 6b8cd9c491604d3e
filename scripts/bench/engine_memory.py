"""Peak memory of the tiled engine against scene size.

Runs a cheap spatial method (3x3 mean per band) through the engine over synthetic int16 scenes of
1000^2 and 4000^2 pixels x 50 bands (read lazily from a tiled GeoTIFF, written to a COG) and prints
the peak RSS of each run and their ratio. Each scene is made and processed in its own process, so
the numbers are the engine's alone. Target: ratio <= 1.2 (memory depends on tile and batch size,
not on the scene).

``--task unmix`` runs ``hsikit.unmix(scene, 4, method="vca-fcls", out=...)`` instead (endmembers from
the grid sample, abundances window by window), the whole task in the measured process.
``--task superres`` runs ``hsikit.super_resolve(scene, 3, --sr-model, out=...)``: the output is 9 times
the input's pixels, float32, written window by window onto the refined grid.

    python scripts/bench/engine_memory.py [--sizes 1000 4000] [--bands 50] [--workdir DIR] [--task unmix|superres]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def make_scene(path: Path, size: int, bands: int, seed: int = 0) -> None:
    """Write a smooth int16 scene window by window (never whole in memory)."""
    from affine import Affine

    from hsikit.io.export import GeoTiffWriter, RasterMeta, iter_windows

    meta = RasterMeta(count=bands, height=size, width=size, dtype=np.int16, crs="EPSG:32633",
                      transform=Affine(30, 0, 400000, 0, -30, 5800000), nodata=-32768,
                      wavelength=np.linspace(420, 2400, bands), fwhm=np.full(bands, 10.0), scale=np.full(bands, 1e-4))
    rng = np.random.default_rng(seed)
    base = np.linspace(800, 3000, bands, dtype=np.float32)[:, None, None]
    with GeoTiffWriter(path, meta, cog=False) as w:
        for win in iter_windows(size, size, 512):
            yy, xx = np.mgrid[win.row_off:win.row_off + win.height, win.col_off:win.col_off + win.width]
            pattern = np.sin(yy / 37.0) * np.cos(xx / 53.0)
            block = base * (1 + 0.3 * pattern[None]) + rng.normal(0, 50, (bands, win.height, win.width))
            w.write(block.astype(np.int16), win)


def run_engine(src: Path, dst: Path, tile: int, batch: int) -> dict:
    """Smooth ``src`` into ``dst`` through the engine; return timing and peak RSS."""
    from scipy import ndimage

    from hsikit.engine import run_tiled
    from hsikit.io import open_cube
    from hsikit.io.export import GeoTiffWriter, RasterMeta

    t0 = time.perf_counter()
    cube = open_cube(src, lazy=True)
    meta = RasterMeta.from_cube(cube)

    def smooth(b: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(b.astype(np.float32), size=(1, 1, 3, 3), mode="mirror")

    with GeoTiffWriter(dst, meta) as sink:
        stats = run_tiled(cube, smooth, sink, out_bands=meta.count, tile=tile, halo=1, batch_size=batch,
                          out_dtype=np.int16, progress=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_mb, "tiles": stats.tiles}


def run_unmix(src: Path, dst: Path) -> dict:
    """``hsikit.unmix`` of ``src`` into ``dst`` (4 endmembers, VCA + FCLS); timing and peak RSS."""
    import hsikit

    t0 = time.perf_counter()
    r = hsikit.unmix(src, 4, method="vca-fcls", out=dst)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_mb, "tiles": int(r.info.get("windows", 0))}


def run_superres(src: Path, dst: Path, model: str) -> dict:
    """``hsikit.super_resolve`` of ``src`` into ``dst`` (x3); timing and peak RSS."""
    import hsikit

    t0 = time.perf_counter()
    r = hsikit.super_resolve(src, 3, model, out=dst, progress=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": time.perf_counter() - t0, "peak_rss_mb": peak_mb, "tiles": r.tiles,
            "out_mb": dst.stat().st_size / 2**20}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    ap.add_argument("--bands", type=int, default=50)
    ap.add_argument("--tile", type=int, default=256)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--workdir", type=Path, default=None)
    ap.add_argument("--task", choices=("smooth", "unmix", "superres"), default="smooth")
    ap.add_argument("--sr-model", default="bicubic", help="--task superres: the method")
    ap.add_argument("--_make", nargs=2, help=argparse.SUPPRESS)
    ap.add_argument("--_run", nargs=2, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._make:
        make_scene(Path(args._make[0]), int(args._make[1]), args.bands)
        return
    if args._run:
        src, dst = Path(args._run[0]), Path(args._run[1])
        if args.task == "unmix":
            res = run_unmix(src, dst)
        elif args.task == "superres":
            res = run_superres(src, dst, args.sr_model)
        else:
            res = run_engine(src, dst, args.tile, args.batch)
        print(json.dumps(res))
        return
    work = args.workdir or Path(tempfile.mkdtemp(prefix="hsikit-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in args.sizes:
        src, dst = work / f"scene_{size}.tif", work / f"out_{size}.tif"
        if not src.exists():
            subprocess.run([sys.executable, __file__, "--bands", str(args.bands), "--_make", str(src), str(size)], check=True)
        out = subprocess.run([sys.executable, __file__, "--tile", str(args.tile), "--batch", str(args.batch),
                              "--task", args.task, "--sr-model", args.sr_model, "--_run", str(src), str(dst)],
                             check=True, capture_output=True, text=True)
        res = json.loads(out.stdout.strip().splitlines()[-1])
        res.update(size=size, file_mb=src.stat().st_size / 2**20, raw_mb=size * size * args.bands * 2 / 2**20)
        rows.append(res)
        for p in (dst, dst.with_name(dst.stem + "_endmembers.csv"), dst.with_name(dst.stem + "_endmembers.png")):
            p.unlink(missing_ok=True)
    what = {"unmix": "hsikit.unmix, 4 endmembers, vca-fcls", "superres": f"hsikit.super_resolve x3, {args.sr_model}"}.get(
        args.task, f"tile {args.tile}, halo 1, batch {args.batch}, 3x3 mean")
    print(f"engine memory, {args.bands} bands int16, {what}, COG output")
    print(f"{'scene':>11} {'raw MB':>8} {'tiles':>6} {'seconds':>8} {'peak RSS MB':>12} {'ratio':>6}")
    for r in rows:
        print(f"{r['size']:>5}x{r['size']:<5} {r['raw_mb']:>8.0f} {r['tiles']:>6} {r['seconds']:>8.1f} "
              f"{r['peak_rss_mb']:>12.0f} {r['peak_rss_mb'] / rows[0]['peak_rss_mb']:>6.2f}")
    if os.environ.get("HSIKIT_BENCH_KEEP") is None and args.workdir is None:
        for p in work.iterdir():
            p.unlink()
        work.rmdir()


if __name__ == "__main__":
    main()
