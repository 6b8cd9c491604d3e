#!/usr/bin/env python
"""Super-resolution benchmark on the fixed test split: PSNR / SSIM / SAM / ERGAS and speed, per method.

Protocol (Wald): each test scene of :mod:`hsikit.data.datasets.catalog` (min-max scaled to [0, 1],
bad and absorption bands dropped) is the reference HR image; its LR input is the scene blurred by a
Gaussian MTF (gain 0.3 at Nyquist) and decimated by the scale from offset ``r // 2``
(:func:`hsikit.train.superres.degrade_scene`, the training degradation). The real EnMAP tiles are
32 x 32 pixels, so their LR image (10 x 10 at x3) is smaller than the learned model's 16-pixel window:
the engine pads it by reflection, and they are reported apart from the other scenes. Every method runs through the
user-facing API (``hsikit.super_resolve`` on an in-memory cube, tiled as a user's scene would be).
Outputs are clipped to [0, 1]; PSNR/SSIM with data range 1, SAM in degrees, ERGAS with the scale.

    .venv/bin/python scripts/bench/superres.py
    .venv/bin/python scripts/bench/superres.py --weights essaformer-sub-x3=runs/export --tiles 8,24,56

``--noise gaussian:0.01`` adds seeded noise to the LR input (the model was trained without noise).
``--tiles`` also runs each learned model with these tile cores (input pixels; the default is the
model's training window minus two halos), to measure how ESSA's window dependence moves the scores.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def _scores(sr: np.ndarray, hr: np.ndarray, scale: int) -> dict[str, float]:
    from hsikit.metrics import ergas, psnr, sam, ssim

    est = np.clip(sr, 0, 1)
    return {"psnr": float(psnr(est, hr, data_range=1.0)), "ssim": float(ssim(est, hr, data_range=1.0)),
            "sam_deg": float(sam(est, hr).degrees), "ergas": float(ergas(est, hr, ratio=scale))}


def main(argv: list[str] | None = None) -> None:
    import torch

    import hsikit
    from hsikit.cube import make_cube
    from hsikit.data.datasets.catalog import load_scenes
    from hsikit.train.superres import degrade_scene

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="bicubic,essaformer-sub-x3", help="comma-separated methods")
    p.add_argument("--weights", action="append", default=[], help="name=folder: load a learned model from a folder")
    p.add_argument("--scale", type=int, default=3)
    p.add_argument("--split", default="test", choices=["test", "val"])
    p.add_argument("--tiles", default="", help="extra tile cores for the learned models, e.g. 8,24,56")
    p.add_argument("--noise", default=None, help="noise recipe added to the LR input (hsikit.data.degrade), e.g. gaussian:0.01")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--json", default=None, help="write the rows here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    weights = dict(w.split("=", 1) for w in args.weights)
    r = args.scale
    runs: list[tuple[str, int | None]] = []
    for m in args.models.split(","):
        runs.append((m, None))
        if m != "bicubic":
            runs += [(m, int(t)) for t in args.tiles.split(",") if t]
    rows = []
    for index, scene in enumerate(load_scenes(args.split)):
        lr, hr = degrade_scene(scene.data, r)
        if min(lr.shape[1:]) < 4:
            continue
        if args.noise:  # seeded by the scene's index: the same input for every method and method list
            from hsikit.data.degrade import parse_noise

            lr = parse_noise(args.noise)(torch.from_numpy(lr), index).float().numpy()
        cube = make_cube(lr, wavelength=scene.wavelength)
        for name, tile in runs:
            t0 = time.perf_counter()
            res = hsikit.super_resolve(cube, r, name, tile=tile, weights=weights.get(name), progress=False)
            dt = time.perf_counter() - t0
            rows.append({"scene": scene.id, "bands": int(lr.shape[0]), "lr": f"{lr.shape[1]}x{lr.shape[2]}",
                         "method": name if tile is None else f"{name}@tile{tile}", "tiles": res.tiles,
                         "s": dt, **_scores(res.cube.values, hr, r)})
            print(" ".join(f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}" for k, v in rows[-1].items()), flush=True)
    methods = list(dict.fromkeys(row["method"] for row in rows))
    groups = {"scenes with an LR image >= 16 px": [row for row in rows if not row["scene"].startswith("enmap/")],
              "real EnMAP tiles (LR 10 x 10, padded)": [row for row in rows if row["scene"].startswith("enmap/")]}
    for title, group in groups.items():
        if not group:
            continue
        print(f"\nx{r}, {args.split} split, {title}: {len({row['scene'] for row in group})} scenes, mean over scenes")
        print(f"{'method':32s} {'PSNR':>8s} {'dPSNR':>7s} {'SSIM':>7s} {'SAM deg':>8s} {'ERGAS':>7s} {'s/scene':>8s}")
        bic = [row["psnr"] for row in group if row["method"] == "bicubic"]
        base = float(np.mean(bic)) if bic else None
        for m in methods:
            sel = [row for row in group if row["method"] == m]
            mean = {k: float(np.mean([row[k] for row in sel])) for k in ("psnr", "ssim", "sam_deg", "ergas", "s")}
            d = f"{mean['psnr'] - base:+7.2f}" if base is not None else "      -"
            print(f"{m:32s} {mean['psnr']:8.2f} {d} {mean['ssim']:7.4f} {mean['sam_deg']:8.3f} {mean['ergas']:7.3f} "
                  f"{mean['s']:8.2f}")
    if args.json:
        Path(args.json).write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()
