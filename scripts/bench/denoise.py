#!/usr/bin/env python
"""Denoising benchmark on the fixed test split: PSNR / SSIM / SAM and speed, per method and noise.

Every method runs through the user-facing API (``hsikit.denoise`` on an in-memory cube: scene-level
HySime statistics, one tile per scene here). Test scenes are those of
:data:`hsikit.data.datasets.catalog.SPLITS` ``["test"]`` (min-max scaled to [0, 1], bad and absorption
bands dropped), centre-cropped to ``--crop`` pixels to fit the CPU budget. Noise (seeded, QRNN3D test
protocol): Gaussian sigma 0.05 / 0.1 / 0.2, non-iid ({10, 30, 50, 70}/255 per band) and mixture
(non-iid + stripes + dead lines + impulse on disjoint thirds of the bands). Outputs are clipped to
[0, 1] before the metrics (as HSIR does); PSNR/SSIM with data range 1, SAM in radians.

Speed: seconds per megapixel x 100 bands, from the mean time per scene (time / (H W / 1e6) / (L / 100)).

    .venv/bin/python scripts/bench/denoise.py --crop 96 --json runs/bench_denoise.json
    .venv/bin/python scripts/bench/denoise.py --models fasthyde,lrmr,hsdt-s-sub --weights hsdt-s-sub=runs/export
    .venv/bin/python scripts/bench/denoise.py --models fasthyde,fasthyde/sparse,hsdt-s-sub,hsdt-s-sub/sparse --noises mixture

A method written ``name/sparse`` runs with the sparse-noise step (``hsikit.denoise(..., sparse="auto")``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

NOISES = ("gaussian:0.05", "gaussian:0.1", "gaussian:0.2", "noniid", "mixture")


def _denoiser(spec: str, weights: dict[str, str]):
    """A runner ``(noisy, wavelengths) -> estimate`` through ``hsikit.denoise``.

    ``spec`` is a method name, optionally with ``/sparse`` (``sparse="auto"``: the sparse-noise step). Weights given
    as ``name=folder`` are loaded from that folder (``hsikit.denoise(..., weights=folder)``).
    """
    import hsikit
    from hsikit.cube import make_cube

    name, _, flag = spec.partition("/")
    if flag not in ("", "sparse"):
        raise SystemExit(f"unknown method flag {flag!r} in {spec!r} (use name or name/sparse)")
    sparse = "auto" if flag == "sparse" else "off"
    folder = weights.get(name)

    def run(y: np.ndarray, wl: np.ndarray) -> np.ndarray:
        cube = make_cube(y, wavelength=wl if np.isfinite(wl).all() else None)
        return hsikit.denoise(cube, name, tile=512, overlap=0, progress=False, device="cpu", sparse=sparse,
                              weights=folder).cube.values

    return run


def bench(models: list[str], crop: int, seed: int, weights: dict[str, str], noises: tuple[str, ...] = NOISES) -> dict:
    from hsikit.data.datasets.catalog import load_scenes
    from hsikit.data.degrade import parse_noise
    from hsikit.metrics import psnr, sam, ssim

    scenes = load_scenes("test")
    runners = {m: _denoiser(m, weights) for m in models}
    rows = []
    for si, scene in enumerate(scenes):
        C, H, W = scene.data.shape
        h, w = min(H, crop), min(W, crop)
        r0, c0 = (H - h) // 2, (W - w) // 2
        clean = np.ascontiguousarray(scene.data[:, r0 : r0 + h, c0 : c0 + w])
        for ni, spec in enumerate(noises):
            noisy = parse_noise(spec)(torch.as_tensor(clean), seed + 100 * si + ni).numpy().astype(np.float32)
            for method in ["noisy", *models]:
                t0 = time.perf_counter()
                est = noisy if method == "noisy" else runners[method](noisy, scene.wavelength)
                dt = time.perf_counter() - t0
                est = np.clip(est, 0, 1)
                rows.append({
                    "scene": scene.id, "noise": spec, "method": method, "bands": C, "pixels": h * w,
                    "psnr": float(psnr(est, clean, data_range=1.0)), "ssim": float(ssim(est, clean, data_range=1.0)),
                    "sam": float(sam(est, clean).radians), "seconds": dt,
                    "s_per_mpx_100b": dt / (h * w / 1e6) / (C / 100) if method != "noisy" else 0.0,
                })
                print(f"{scene.id:28s} {spec:14s} {method:15s} {rows[-1]['psnr']:6.2f} dB  {rows[-1]['ssim']:.3f}  "
                      f"{rows[-1]['sam']:.3f} rad  {dt:6.2f} s", flush=True)
    return {"rows": rows, "crop": crop, "seed": seed, "scenes": [s.id for s in scenes], "noises": list(noises)}


def table(result: dict) -> str:
    """Markdown: mean PSNR / SSIM / SAM over the test scenes per noise and method, plus speed."""
    rows = result["rows"]
    methods = list(dict.fromkeys(r["method"] for r in rows))
    lines = ["| method | " + " | ".join(result["noises"]) + " | s / (Mpx x 100 bands) |",
             "|---|" + "---|" * (len(result["noises"]) + 1)]
    for m in methods:
        cells = []
        for n in result["noises"]:
            sel = [r for r in rows if r["method"] == m and r["noise"] == n]
            cells.append(f"{np.mean([r['psnr'] for r in sel]):.2f} / {np.mean([r['ssim'] for r in sel]):.3f} / "
                         f"{np.mean([r['sam'] for r in sel]):.3f}")
        sp = [r["s_per_mpx_100b"] for r in rows if r["method"] == m]
        cells.append("–" if m == "noisy" else f"{np.mean(sp):.0f}")
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def hsdt_speed(size: int = 64, bands: int = 31, repeats: int = 3) -> list[dict]:
    """Inference seconds per (Mpx x 100 bands) of HSDT-S/M (full band space), reference vs auto kernels."""
    from hsikit.denoise.hsdt import HSDT, VARIANTS
    from hsikit.layers.kernels.dispatch import kernel_mode

    out = []
    x = torch.rand(1, bands, size, size)
    for variant in ("s", "m"):
        torch.manual_seed(0)
        net = HSDT(**VARIANTS[variant]).eval()
        for mode in ("reference", "auto"):
            with kernel_mode(mode), torch.no_grad():
                net(x)
                t0 = time.perf_counter()
                for _ in range(repeats):
                    net(x)
                dt = (time.perf_counter() - t0) / repeats
            out.append({"model": f"hsdt-{variant}", "kernels": mode, "seconds": dt,
                        "s_per_mpx_100b": dt / (size * size / 1e6) / (bands / 100)})
            print(f"hsdt-{variant} {mode:9s} {dt:.3f} s per {bands}x{size}x{size}  "
                  f"{out[-1]['s_per_mpx_100b']:.0f} s/(Mpx x 100 bands)", flush=True)
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="fasthyde,lrmr", help="comma-separated methods (registered names need weights; name/sparse: with the sparse-noise step)")
    p.add_argument("--weights", default="", help="name=folder,... weights folders (default models/<name>)")
    p.add_argument("--crop", type=int, default=96, help="centre crop edge of each test scene")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None, help="write all rows here")
    p.add_argument("--speed-only", action="store_true", help="only time HSDT-S/M (reference vs auto kernels)")
    p.add_argument("--noises", default=",".join(NOISES),
                   help="comma-separated noise recipes (the seed of each follows its position in this list)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    weights = dict(kv.split("=", 1) for kv in args.weights.split(",") if kv)
    if args.speed_only:
        rows = hsdt_speed()
        if args.json:
            Path(args.json).write_text(json.dumps(rows, indent=1))
        return
    noises = tuple(n for n in args.noises.split(",") if n)
    result = bench([m for m in args.models.split(",") if m], args.crop, args.seed, weights, noises)
    result["command"] = " ".join(["scripts/bench/denoise.py", *(argv if argv is not None else sys.argv[1:])])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(table(result))
    print()
    print(group_table(result))


def group_table(result: dict) -> str:
    """Markdown: mean PSNR per scene group (the scene id's prefix) and method, one cell per noise."""
    rows = result["rows"]
    groups = list(dict.fromkeys(r["scene"].split("/")[0] for r in rows))
    methods = [m for m in dict.fromkeys(r["method"] for r in rows) if m != "noisy"]
    lines = ["| group (scenes) | " + " | ".join(methods) + " |", "|---|" + "---|" * len(methods)]
    for g in groups:
        n_sc = len({r["scene"] for r in rows if r["scene"].split("/")[0] == g})
        cells = []
        for m in methods:
            per_noise = [np.mean([r["psnr"] for r in rows if r["method"] == m and r["noise"] == n
                                  and r["scene"].split("/")[0] == g]) for n in result["noises"]]
            cells.append(" / ".join(f"{v:.2f}" for v in per_noise))
        lines.append(f"| {g} ({n_sc}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
