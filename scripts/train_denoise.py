#!/usr/bin/env python
"""Train (or resume) a denoising model, and export its best checkpoint into models/<name>/.

Train / resume (the same command resumes from ``<run>/checkpoints/last.ckpt``)::

    nohup .venv/bin/python scripts/train_denoise.py train --run runs/hsdt-s-sub --steps 20000 \
        > runs/hsdt-s-sub.log 2>&1 &

Export the best checkpoint (weights + config through ``hsikit.zoo.save_model``; the card is written by
``scripts/bench/denoise.py --card``)::

    .venv/bin/python scripts/train_denoise.py export --run runs/hsdt-s-sub --out models/hsdt-s-sub

Data: the train split of :mod:`hsikit.data.datasets.catalog` (real CAVE/AVIRIS/HYDICE/ROSIS/CASI/EnMAP
cubes + synthetic EnMAP scenes), random band subsets, the degradation recipes of
:data:`hsikit.train.denoise.TRAIN_RECIPES`; validation on the val split; the test split is never read.
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

    import hsikit.denoise.hsdt as hsdt
    from hsikit.data.datasets.catalog import load_scenes
    from hsikit.train.denoise import TRAIN_RECIPES, VAL_RECIPES, CropStream, FixedCrops, SubspaceDenoiseModule
    from hsikit.train.entry import fit

    torch.manual_seed(args.seed)
    model_config = {**hsdt.VARIANTS[args.variant], "k": args.k}
    train_scenes = load_scenes("train")
    val_scenes = load_scenes("val")
    stream = CropStream(train_scenes, crop=args.crop, min_bands=args.min_bands, seed=args.seed)
    val = FixedCrops(val_scenes, crop=64, seed=args.seed)
    module = SubspaceDenoiseModule(model_config, model_name=args.model, patch=args.patch, patches=args.patches,
                                   lr=args.lr, lr_min=args.lr_min, lr_steps=args.steps, reuse=args.reuse,
                                   freeze_bn=args.freeze_bn, loss_norm=args.loss_norm, sparse=args.sparse)
    if args.init:  # a new run's starting weights (a resumed run restores its own checkpoint over them)
        from hsikit.train.denoise import init_from

        init_from(module, args.init)
    config = {**vars(args), "model_config": model_config, "train_scenes": [s.id for s in train_scenes],
              "val_scenes": [s.id for s in val_scenes], "train_recipes": list(TRAIN_RECIPES), "val_recipes": list(VAL_RECIPES)}
    config.pop("func", None)
    fit(module, DataLoader(stream, batch_size=1, num_workers=0), DataLoader(val, batch_size=1), args.run,
        max_steps=args.steps, val_every=args.val_every, checkpoint_minutes=args.ckpt_minutes, config=config,
        accelerator=args.accelerator)


def export(args: argparse.Namespace) -> None:
    from hsikit.train.entry import export_best
    from hsikit.train.denoise import SubspaceDenoiseModule

    print(export_best(SubspaceDenoiseModule, args.run, args.out, args.checkpoint))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(required=True)
    t = sub.add_parser("train", help="train or resume a run")
    t.add_argument("--run", default=str(REPO / "runs" / "hsdt-s-sub"), help="run folder (resumed if it has checkpoints)")
    t.add_argument("--model", default="hsdt-s-sub", help="registered model name")
    t.add_argument("--variant", default="s", choices=["s", "m", "l"], help="HSDT width/depth")
    t.add_argument("--k", type=int, default=8, help="eigen-images per training crop")
    t.add_argument("--steps", type=int, default=20000, help="total optimizer steps of the run")
    t.add_argument("--crop", type=int, default=96, help="scene crop edge (subspace estimated on it)")
    t.add_argument("--patch", type=int, default=32, help="network window edge")
    t.add_argument("--patches", type=int, default=8, help="windows per step")
    t.add_argument("--reuse", type=int, default=4, help="steps per projected crop")
    t.add_argument("--min-bands", type=int, default=12, help="smallest random band subset")
    t.add_argument("--lr", type=float, default=2e-4)
    t.add_argument("--no-freeze-bn", dest="freeze_bn", action="store_false", help="train BatchNorm on batch statistics")
    t.add_argument("--lr-min", type=float, default=5e-5)
    t.add_argument("--init", default=None, help="start from these released weights (a models/<name> folder)")
    t.add_argument("--loss-norm", default="none", choices=["none", "input"],
                   help="none: window MSE; input: window MSE / noisy input MSE (every noise level weighs the same)")
    t.add_argument("--sparse", default="off", choices=["auto", "off"],
                   help="auto: remove impulse/stripe/dead-line values before the projection (as hsikit denoise does)")
    t.add_argument("--val-every", type=int, default=100, help="validation interval in steps")
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
