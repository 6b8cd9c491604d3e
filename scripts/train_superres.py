#!/usr/bin/env python
"""Train (or resume) the subspace ESSAformer super-resolution model, and export its best checkpoint.

Train / resume (the same command resumes from ``<run>/checkpoints/last.ckpt``)::

    nohup .venv/bin/python scripts/train_superres.py train --run runs/essaformer-sub-x3 --steps 6000 \
        > runs/essaformer-sub-x3.log 2>&1 &

Export the best checkpoint into a zoo folder (weights + config; the card's numbers come from
``scripts/bench/superres.py``)::

    .venv/bin/python scripts/train_superres.py export --run runs/essaformer-sub-x3 --out models/essaformer-sub-x3

Data: the train split of :mod:`hsikit.data.datasets.catalog` degraded by the Wald protocol
(:mod:`hsikit.train.superres`); validation on fixed windows of the val split; the test split is never read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def train(args: argparse.Namespace) -> None:
    from torch.utils.data import DataLoader

    import hsikit.superres.subspace as subspace
    from hsikit.data.datasets.catalog import load_scenes
    from hsikit.train.entry import fit
    from hsikit.train.superres import GNYQ, FixedSRWindows, SRPairs, SubspaceSRModule

    torch.manual_seed(args.seed)
    model_config = {"k": args.k, "scale": args.scale, "dim": args.dim, "dropout": args.dropout, "window": args.patch}
    train_scenes = load_scenes("train")
    val_scenes = load_scenes("val")
    stream = SRPairs(train_scenes, ratio=args.scale, crop=args.crop, patch=args.patch, min_bands=args.min_bands,
                     seed=args.seed)
    val = FixedSRWindows(val_scenes, ratio=args.scale, patch=args.patch, per_scene=args.val_windows)
    module = SubspaceSRModule(model_config, model_name=args.model, patch=args.patch, windows=args.windows,
                              lr=args.lr, lr_min=args.lr_min, lr_steps=args.steps)
    config = {**vars(args), "model_config": model_config, "gnyq": GNYQ, "dim_default": subspace.DIM,
              "train_scenes": [s.id for s in train_scenes], "val_scenes": [s.id for s in val_scenes],
              "val_windows_total": len(val)}
    config.pop("func", None)
    fit(module, DataLoader(stream, batch_size=1, num_workers=0), DataLoader(val, batch_size=1), args.run,
        max_steps=args.steps, val_every=args.val_every, checkpoint_minutes=args.ckpt_minutes, config=config,
        accelerator=args.accelerator)


def export(args: argparse.Namespace) -> None:
    from hsikit.train.entry import export_best
    from hsikit.train.superres import SubspaceSRModule

    print(export_best(SubspaceSRModule, args.run, args.out, args.checkpoint))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(required=True)
    t = sub.add_parser("train", help="train or resume a run")
    t.add_argument("--run", default=str(REPO / "runs" / "essaformer-sub-x3"), help="run folder (resumed if it has checkpoints)")
    t.add_argument("--model", default="essaformer-sub-x3", help="registered model name")
    t.add_argument("--scale", type=int, default=3, help="upsampling factor")
    t.add_argument("--k", type=int, default=8, help="eigen-images")
    t.add_argument("--dim", type=int, default=36, help="ESSAformer width")
    t.add_argument("--dropout", type=float, default=0.0, help="Dropout2d of the ESSAformer blocks")
    t.add_argument("--steps", type=int, default=6000, help="total optimizer steps of the run")
    t.add_argument("--crop", type=int, default=48, help="LR crop edge (the basis is estimated on it)")
    t.add_argument("--patch", type=int, default=16, help="LR window edge (the inference tile)")
    t.add_argument("--windows", type=int, default=8, help="windows per step")
    t.add_argument("--min-bands", type=int, default=12, help="smallest random band subset")
    t.add_argument("--lr", type=float, default=5e-4)
    t.add_argument("--lr-min", type=float, default=2e-5)
    t.add_argument("--val-every", type=int, default=200, help="validation interval in steps")
    t.add_argument("--val-windows", type=int, default=4, help="validation windows per val scene")
    t.add_argument("--ckpt-minutes", type=float, default=4.0, help="last.ckpt interval")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    t.add_argument("--accelerator", default="auto")
    t.set_defaults(func=train)
    e = sub.add_parser("export", help="export a checkpoint into a models/<name> folder")
    e.add_argument("--run", required=True)
    e.add_argument("--checkpoint", default=None, help="checkpoint file (default <run>/checkpoints/best.ckpt)")
    e.add_argument("--out", required=True)
    e.set_defaults(func=export)
    args = p.parse_args(argv)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    args.func(args)


if __name__ == "__main__":
    main()
