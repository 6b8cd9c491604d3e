"""Time the degradation recipes and one epoch of the denoising DataModule, at 1 and N torch threads.

    .venv/bin/python scripts/bench/degrade.py [--threads 1 2] [--repeats 3]

Prints one row per operation: mean milliseconds per call at each thread count (one warm-up call
first), side by side in one run. Real patches come from ../shared/data (the DataModule row).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from hsikit.data.degrade import blur_decimate, parse_noise


def _mean_ms(fn: Callable[[], object], repeats: int) -> float:
    fn()
    t0 = time.perf_counter()
    for _ in range(repeats):
        fn()
    return 1000 * (time.perf_counter() - t0) / repeats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--no-datamodule", action="store_true", help="skip the DataModule epoch (needs ../shared/data)")
    a = ap.parse_args()
    x = torch.rand(16, 31, 64, 64)
    cube = torch.rand(31, 512, 512)
    big = torch.rand(224, 256, 256)
    g = torch.Generator().manual_seed(0)
    ops: list[tuple[str, Callable[[], object]]] = [
        ("gaussian:50/255, batch 16x31x64x64", lambda: parse_noise("gaussian:50/255")(x, g)),
        ("noniid, batch 16x31x64x64", lambda: parse_noise("noniid")(x, g)),
        ("complex, batch 16x31x64x64", lambda: parse_noise("complex")(x, g)),
        ("mixture, one 31x512x512 cube", lambda: parse_noise("mixture")(cube, g)),
        ("blur_decimate r=4, 224x256x256", lambda: blur_decimate(big, 4)),
    ]
    if not a.no_datamodule:
        from hsikit.data.datamodules import DenoisingDataModule

        dm = DenoisingDataModule("complex", groups=["anomaly", "enmap", "muufl", "aviris"], patch_size=32,
                                 batch_size=8, train_length=400)
        dm.setup("fit")
        ops.append(("DataModule epoch, 400 patches 32x32", lambda: sum(1 for _ in dm.train_dataloader())))
    print(f"{'operation':<40}" + "".join(f"{f'{t} thread(s) ms':>18}" for t in a.threads))
    for name, fn in ops:
        cells = []
        for t in a.threads:
            torch.set_num_threads(t)
            cells.append(_mean_ms(fn, a.repeats))
        print(f"{name:<40}" + "".join(f"{c:>18.1f}" for c in cells))


if __name__ == "__main__":
    main()
