"""The shared training entry: one resumable Lightning run in a run folder.

A run folder holds ``checkpoints/last.ckpt`` (written every ``checkpoint_minutes`` and at the end),
``checkpoints/best.ckpt`` (best validation score), ``logs/version_<n>/metrics.csv`` (the CSV logger, one version per launch) and
``config.json`` (the arguments of the run). Calling :func:`fit` again on the same folder resumes from
``last.ckpt`` (optimizer, step counter and all), so a run can be trained across sessions.
"""

from __future__ import annotations

import json
import math
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

CKPT_DIR = "checkpoints"
LAST = "last.ckpt"
BEST = "best.ckpt"


def dihedral(x: np.ndarray, mode: int) -> np.ndarray:
    """One of the 8 flips/rotations of the last two axes (``mode`` 0-7; bit 2 flips rows first)."""
    if mode & 4:
        x = x[..., ::-1, :]
    return np.rot90(x, mode & 3, axes=(-2, -1))


def cosine_adam(params: Any, lr: float, lr_min: float, steps: int) -> dict[str, Any]:
    """Lightning optimiser config: Adam at ``lr``, cosine-annealed per step to ``lr_min`` over ``steps``."""
    import torch

    opt = torch.optim.Adam(params, lr=lr)
    n = max(1, int(steps))

    def factor(step: int) -> float:
        t = min(step, n) / n
        return (lr_min + 0.5 * (lr - lr_min) * (1 + math.cos(math.pi * t))) / lr

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}


def last_checkpoint(run_dir: str | os.PathLike) -> Path | None:
    """``checkpoints/last.ckpt`` of a run folder, if it exists."""
    p = Path(run_dir) / CKPT_DIR / LAST
    return p if p.is_file() else None


def fit(
    module: Any,
    train_loader: Any,
    val_loader: Any,
    run_dir: str | os.PathLike,
    *,
    max_steps: int,
    val_every: int = 200,
    monitor: str = "val/psnr",
    checkpoint_minutes: float = 4.0,
    config: dict[str, Any] | None = None,
    accelerator: str = "auto",
    log_every: int = 10,
) -> Any:
    """Train ``module`` (a LightningModule) in ``run_dir``, resuming from its last checkpoint.

    Parameters
    ----------
    module, train_loader, val_loader
        The Lightning module and its (iterable) data loaders.
    run_dir
        Run folder (created); see the module docstring for its content.
    max_steps
        Total optimizer steps of the run (a resumed run continues up to this count).
    val_every
        Validation every this many steps (the best checkpoint follows ``monitor``, higher is better).
    checkpoint_minutes
        Wall-clock interval of ``last.ckpt``.
    config
        JSON-able arguments saved as ``config.json``.

    Returns
    -------
    The Lightning ``Trainer`` after the run.
    """
    import lightning as L
    from lightning.pytorch.callbacks import ModelCheckpoint
    from lightning.pytorch.loggers import CSVLogger

    run = Path(run_dir)
    ckpts = run / CKPT_DIR
    ckpts.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (run / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True, default=str))
    last = ModelCheckpoint(dirpath=ckpts, filename="step{step}", save_last=True, save_top_k=0,
                           train_time_interval=timedelta(minutes=checkpoint_minutes), auto_insert_metric_name=False)
    best = ModelCheckpoint(dirpath=ckpts, filename="best", monitor=monitor, mode="max", save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False)
    trainer = L.Trainer(
        max_steps=max_steps, val_check_interval=val_every, check_val_every_n_epoch=None,
        accelerator=accelerator, devices=1, logger=CSVLogger(str(run), name="logs"),
        callbacks=[last, best], log_every_n_steps=log_every, enable_progress_bar=False,
        num_sanity_val_steps=0, limit_val_batches=None, enable_model_summary=False,
    )
    resume = last_checkpoint(run)
    trainer.fit(module, train_loader, val_loader, ckpt_path=str(resume) if resume else None)
    return trainer


def export_best(module_cls: Any, run_dir: str | os.PathLike, out: str | os.PathLike, checkpoint: str | os.PathLike | None = None) -> str:
    """Export a run's checkpoint (default ``checkpoints/best.ckpt``) into a zoo folder; return a summary line.

    ``module_cls`` is the run's LightningModule class; its ``self.model`` is saved under
    ``hparams["model_name"]`` with ``hparams["model_config"]`` (:func:`hsikit.zoo.save_model`), and the
    checkpoint name, its step and the run's ``config.json`` go to ``extra``.
    """
    import torch

    from hsikit.zoo import save_model

    run = Path(run_dir)
    ckpt = Path(checkpoint) if checkpoint else run / CKPT_DIR / BEST
    module = module_cls.load_from_checkpoint(str(ckpt), map_location="cpu")
    state = torch.load(str(ckpt), map_location="cpu", weights_only=False)
    hp = module.hparams
    config_file = run / "config.json"
    extra = {"checkpoint": ckpt.name, "global_step": int(state.get("global_step", 0)),
             "run_config": json.loads(config_file.read_text()) if config_file.is_file() else {}}
    save_model(module.model, out, name=hp["model_name"], config=dict(hp["model_config"]), extra=extra)
    return f"exported {ckpt} (step {extra['global_step']}) -> {out}"
