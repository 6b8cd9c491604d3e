"""Benchmark of the classical pansharpening methods on real data (reduced and full resolution).

Scenes:

* Landsat-7 ETM+ pairs of ``../shared/data/landsat7_pan_ms_fusebox`` (6 bands 30 m, 8-bit; PAN 15 m;
  ratio 2). The published crops are misregistered by one PAN pixel in both axes (measured by
  :func:`hsikit.pansharpen.protocols.registration_shift`); the PAN is rolled by that shift
  (``registered``), and the reduced-resolution scores of the pairs as published are given too.
* EnMAP L2A mosaics from ``../shared/data/enmap_potsdam_tiles`` (218 good bands, 30 m): six tiles
  (64 x 96 px) and four tiles (64 x 64 px); the PAN is simulated over 400-700 nm (a VIS PAN, as
  PRISMA's) and the cube is degraded by the ratio (Wald); the no-reference indices are computed on the
  same simulated pair (the degraded cube is the "MS", the simulated PAN the PAN).

Reduced resolution: Q2n (32 x 32 blocks), ERGAS, SAM (degrees); full resolution: D_lambda (Khan), D_s,
HQNR, D_S^R. ``s`` is the fusion time of one method (statistics + fusion, no metrics), median of
``--repeat`` runs, all methods timed side by side in the same process.

Usage::

    .venv/bin/python scripts/bench/pansharpen.py            # markdown tables on stdout
    .venv/bin/python scripts/bench/pansharpen.py --quick    # one Landsat scene, one EnMAP mosaic
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import scipy.io as sio
import torch

import hsikit
from hsikit.cube import select_bands, to_reflectance
from hsikit.pansharpen.classical import METHODS, fuse
from hsikit.pansharpen.protocols import (
    full_resolution_scores,
    reduced_resolution,
    reduced_resolution_simulated,
    registration_shift,
    simulated_pair,
)

ROOT = Path(__file__).resolve().parents[2]
DATA = ROOT.parent / "shared" / "data"
LANDSAT_SCENES = (1, 2, 3, 7, 13)
ENMAP_MOSAICS = {
    "enmap6": [[(64, 0), (96, 0), (128, 0)], [(64, 32), (96, 32), (128, 32)]],
    "enmap4": [[(96, 96), (128, 96)], [(96, 128), (128, 128)]],
}
PAN_BAND = (400.0, 700.0)


def landsat(scene: int) -> tuple[torch.Tensor, torch.Tensor]:
    d = DATA / "landsat7_pan_ms_fusebox"
    ms = sio.loadmat(d / f"{scene}_ms.mat")["cropped_im"].astype(np.float32)
    pan = sio.loadmat(d / f"{scene}_pan.mat")["cropped_gray"].astype(np.float32)
    return torch.from_numpy(ms).permute(2, 0, 1).contiguous(), torch.from_numpy(pan)


def enmap(name: str) -> tuple[torch.Tensor, np.ndarray]:
    d = DATA / "enmap_potsdam_tiles" / "images"
    rows = []
    wl = None
    for row in ENMAP_MOSAICS[name]:
        tiles = [select_bands(hsikit.open(d / f"enmap_potsdam_tile_{x}_{y}.tif"), "valid") for x, y in row]
        wl = tiles[0]["wavelength"].values
        rows.append(np.concatenate([to_reflectance(t).values for t in tiles], axis=2))
    return torch.from_numpy(np.concatenate(rows, axis=1)), wl


def timed(ms: torch.Tensor, pan: torch.Tensor, r: int, repeat: int, **kw) -> dict[str, float]:
    out = {}
    for m in METHODS:
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            fuse(ms, pan, r, m, **kw)
            runs.append(time.perf_counter() - t0)
        out[m] = statistics.median(runs)
    return out


def full(ms: torch.Tensor, pan: torch.Tensor, r: int, **kw) -> dict[str, dict[str, float]]:
    return {m: full_resolution_scores(fuse(ms, pan, r, m, **kw), ms, pan, r) for m in METHODS}


def table(title: str, rows: list[tuple[str, str, dict[str, float]]], keys: list[str]) -> str:
    lines = [f"**{title}**", "", "| scene | method | " + " | ".join(keys) + " |",
             "|---|---|" + "---:|" * len(keys)]
    for scene, method, vals in rows:
        lines.append(f"| {scene} | {method} | " + " | ".join(f"{vals[k]:.4f}" if k != "s" else f"{vals[k]:.3f}"
                                                              for k in keys) + " |")
    return "\n".join(lines)


def means(rows: list[tuple[str, str, dict[str, float]]], keys: list[str]) -> list[tuple[str, str, dict[str, float]]]:
    out = []
    for m in METHODS:
        sel = [v for _, meth, v in rows if meth == m]
        out.append(("mean", m, {k: float(np.mean([v[k] for v in sel])) for k in keys}))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="one Landsat scene and one EnMAP mosaic")
    ap.add_argument("--repeat", type=int, default=3, help="timing runs per method (median)")
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    scenes = LANDSAT_SCENES[:1] if args.quick else LANDSAT_SCENES
    mosaics = ["enmap6"] if args.quick else list(ENMAP_MOSAICS)
    t_start = time.perf_counter()
    print(f"machine: {platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}\n")

    rr, rr_raw, fr = [], [], []
    for s in scenes:
        ms, pan = landsat(s)
        shift = registration_shift(ms, pan, 2)
        reg = torch.roll(pan, shift, (0, 1))
        res = reduced_resolution(ms, reg, 2)
        raw = reduced_resolution(ms, pan, 2)
        secs = timed(ms, reg, 2, args.repeat)
        fscores = full(ms, reg, 2)
        for m in METHODS:
            rr.append((f"L7-{s} {shift}", m, {**res[m], "s": secs[m]}))
            rr_raw.append((f"L7-{s}", m, raw[m]))
            fr.append((f"L7-{s}", m, fscores[m]))
    rk = ["q2n", "ergas", "sam_deg"]
    fk = ["d_lambda_khan", "d_s", "hqnr", "d_s_r"]
    print(table("Landsat-7, reduced resolution (ratio 2), PAN registered (shift in PAN px); s = fusion "
                "seconds of the full 400x400 -> 800x800 pair", rr + means(rr, rk + ["s"]), rk + ["s"]))
    print()
    print(table("Landsat-7, reduced resolution, PAN as published (misregistered)", means(rr_raw, rk), rk))
    print()
    print(table("Landsat-7, full resolution (registered PAN)", fr + means(fr, fk), fk))
    print()

    for name in mosaics:
        cube, wl = enmap(name)
        for r in (2, 4):
            res = reduced_resolution_simulated(cube, wl, r, pan_band=PAN_BAND)
            ms, pan, _ = simulated_pair(cube, wl, r, pan_band=PAN_BAND)
            secs = timed(ms, pan, r, args.repeat, offset=r // 2, phase=r // 2)
            fscores = {m: full_resolution_scores(fuse(ms, pan, r, m, offset=r // 2, phase=r // 2), ms, pan, r)
                       for m in METHODS}
            inside = np.flatnonzero((wl >= PAN_BAND[0]) & (wl <= PAN_BAND[1]))
            vis = reduced_resolution_simulated(cube[inside], wl[inside], r, pan_band=PAN_BAND)
            rows = [(f"{name} x{r}", m, {**res[m], **fscores[m], "vis_q2n": vis[m]["q2n"], "vis_ergas": vis[m]["ergas"],
                                         "s": secs[m]}) for m in METHODS]
            h, w = cube.shape[1] // r * r, cube.shape[2] // r * r
            print(table(f"EnMAP {name} ({cube.shape[0]} bands, {h}x{w} px reference, ratio {r}, PAN {PAN_BAND[0]:.0f}-"
                        f"{PAN_BAND[1]:.0f} nm); vis_* = scores on the {inside.size} bands inside the PAN range",
                        rows, rk + fk + ["vis_q2n", "vis_ergas", "s"]))
            print()
    print(f"total {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
