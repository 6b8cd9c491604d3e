#!/usr/bin/env python
"""What the wavelength-embedded GSSA guide costs or gains against HSDT's fixed 31-band table.

Two full-band HSDT-S networks, identical but for the guide of every GSSA (same parameter count,
134,350): ``embedding`` (hsikit's default, :class:`hsikit.layers.gssa.WavelengthEmbedding`) and
``table`` (the paper's ``Linear(C, 31)``, :class:`hsikit.layers.gssa.BandTable`). Both start from the
same seed and train on the same batches: random ``--patch`` crops of the CAVE training scenes
(31 bands, 400-700 nm) with Gaussian noise of sigma U(0.02, 0.2), Adam, MSE. Then, on the CAVE val
and test scenes (never trained on, centre ``--crop``), PSNR at sigma 0.05 / 0.1 / 0.2, the time of a
training step and of a forward pass, and for the embedding model alone a 16-band subset (every
other band), which the table cannot take at all.

    OMP_NUM_THREADS=1 .venv/bin/python -W ignore scripts/bench/guide_ablation.py --steps 400 --json runs/guide_ablation.json
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

SIGMAS = (0.05, 0.1, 0.2)


def _cave(split: str) -> list:
    from hsikit.data.datasets.catalog import load_scenes

    return load_scenes(split, groups=("cave",))


def _batch(scenes: list, n: int, patch: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """n noisy/clean crops (n, 31, patch, patch) and their wavelengths (n, 31)."""
    clean, wls = [], []
    for _ in range(n):
        s = scenes[int(torch.randint(len(scenes), (1,), generator=gen))]
        _, H, W = s.data.shape
        r = int(torch.randint(H - patch + 1, (1,), generator=gen))
        c = int(torch.randint(W - patch + 1, (1,), generator=gen))
        clean.append(torch.from_numpy(np.ascontiguousarray(s.data[:, r : r + patch, c : c + patch])))
        wls.append(torch.as_tensor(s.wavelength, dtype=torch.float32))
    x = torch.stack(clean).float()
    sigma = 0.02 + 0.18 * torch.rand(n, 1, 1, 1, generator=gen)
    return x + sigma * torch.randn(x.shape, generator=gen), x, torch.stack(wls)


def _evaluate(model: torch.nn.Module, scenes: list, crop: int, seed: int, bands: slice = slice(None)) -> dict[str, float]:
    from hsikit.metrics import psnr

    out = {}
    model.eval()
    for sigma in SIGMAS:
        vals = []
        for i, s in enumerate(scenes):
            _, H, W = s.data.shape
            r0, c0 = (H - crop) // 2, (W - crop) // 2
            clean = torch.from_numpy(np.ascontiguousarray(s.data[bands, r0 : r0 + crop, c0 : c0 + crop])).float()
            g = torch.Generator().manual_seed(seed + 17 * i + int(1000 * sigma))
            noisy = clean + sigma * torch.randn(clean.shape, generator=g)
            wl = torch.as_tensor(s.wavelength[bands], dtype=torch.float32)
            with torch.no_grad():
                est = model(noisy[None], wl)[0].clamp(0, 1)
            vals.append(float(psnr(est.numpy(), clean.numpy(), data_range=1.0)))
        out[f"{sigma:g}"] = float(np.mean(vals))
    return out


def run(steps: int, batch: int, patch: int, crop: int, seed: int, lr: float) -> dict:
    from hsikit.denoise.hsdt import HSDT, VARIANTS

    train, held = _cave("train"), _cave("val") + _cave("test")
    result: dict = {"steps": steps, "batch": batch, "patch": patch, "crop": crop, "lr": lr,
                    "train": [s.id for s in train], "eval": [s.id for s in held], "variants": {}}
    for name, guide in (("embedding", None), ("table", 31)):
        torch.manual_seed(seed)
        model = HSDT(**VARIANTS["s"], guide_bands=guide)
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        gen = torch.Generator().manual_seed(seed)
        losses, t0 = [], time.perf_counter()
        model.train()
        for step in range(steps):
            noisy, clean, wl = _batch(train, batch, patch, gen)
            loss = torch.mean((model(noisy, wl) - clean) ** 2)
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss))
            if (step + 1) % 100 == 0:
                print(f"{name:9s} step {step + 1:5d}  loss {np.mean(losses[-100:]):.5f}", flush=True)
        step_s = (time.perf_counter() - t0) / max(steps, 1)
        scores = _evaluate(model, held, crop, seed)
        x = torch.rand(1, 31, 64, 64)
        with torch.no_grad():
            model(x)
            t1 = time.perf_counter()
            for _ in range(3):
                model(x)
            fwd = (time.perf_counter() - t1) / 3
        row = {"params": sum(p.numel() for p in model.parameters()), "step_seconds": step_s,
               "forward_seconds_31x64x64": fwd, "psnr": scores, "final_loss": float(np.mean(losses[-100:]))}
        if guide is None:
            row["psnr_16_band_subset"] = _evaluate(model, held, crop, seed, bands=slice(0, 31, 2))
        result["variants"][name] = row
        print(name, json.dumps(row), flush=True)
    return result


def table(result: dict) -> str:
    """Markdown: PSNR per sigma, times and the ratio embedding / table."""
    v = result["variants"]
    lines = ["| guide | params | " + " | ".join(f"PSNR sigma {s:g}" for s in SIGMAS)
             + " | s / training step | s / forward 31x64x64 |", "|---|---|" + "---|" * (len(SIGMAS) + 2)]
    for name, row in v.items():
        lines.append(f"| {name} | {row['params']:,} | " + " | ".join(f"{row['psnr'][f'{s:g}']:.2f}" for s in SIGMAS)
                     + f" | {row['step_seconds']:.3f} | {row['forward_seconds_31x64x64']:.3f} |")
    e, t = v["embedding"], v["table"]
    lines.append("| embedding - table | | " + " | ".join(f"{e['psnr'][f'{s:g}'] - t['psnr'][f'{s:g}']:+.2f} dB" for s in SIGMAS)
                 + f" | {e['step_seconds'] / t['step_seconds']:.2f}x | {e['forward_seconds_31x64x64'] / t['forward_seconds_31x64x64']:.2f}x |")
    sub = e.get("psnr_16_band_subset")
    if sub:
        lines.append("| embedding, 16-band subset (the table cannot run) | | "
                     + " | ".join(f"{sub[f'{s:g}']:.2f}" for s in SIGMAS) + " | | |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=400)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--patch", type=int, default=32)
    p.add_argument("--crop", type=int, default=96)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", default=None)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    result = run(args.steps, args.batch, args.patch, args.crop, args.seed, args.lr)
    result["command"] = " ".join(["scripts/bench/guide_ablation.py", *(argv if argv is not None else sys.argv[1:])])
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(table(result))


if __name__ == "__main__":
    main()
