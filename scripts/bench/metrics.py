"""Time the full-reference metrics on a 1000 x 1000 x 224 float32 cube (one run each).

Usage: .venv/bin/python scripts/bench/metrics.py [--size 1000] [--bands 224] [--threads 2] [--skimage-bands N]

Prints a table (metric, seconds, skimage seconds, ratio). The skimage column times
``skimage.metrics.structural_similarity`` / ``peak_signal_noise_ratio`` band by band on the same data
(all bands by default; ``--skimage-bands N`` times N bands and scales the time to all bands).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from hsikit import metrics as M


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=1000)
    ap.add_argument("--bands", type=int, default=224)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--skimage-bands", type=int, default=0, help="0 = all bands")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(0)
    shape = (a.bands, a.size, a.size)
    ref = rng.random(shape, dtype=np.float32)
    est = ref + np.float32(0.05) * rng.standard_normal(shape, dtype=np.float32)
    print(f"cube {a.bands} x {a.size} x {a.size} float32, torch threads {torch.get_num_threads()}")

    def timed(fn):
        t0 = time.perf_counter()
        v = fn()
        return time.perf_counter() - t0, v

    nb = a.bands if a.skimage_bands <= 0 else min(a.skimage_bands, a.bands)

    def sk_ssim():
        return float(np.mean([structural_similarity(est[b], ref[b], data_range=1.0, gaussian_weights=True,
                                                    sigma=1.5, use_sample_covariance=False) for b in range(nb)]))

    def sk_psnr():
        return float(np.mean([peak_signal_noise_ratio(ref[b], est[b], data_range=1.0) for b in range(nb)]))

    rows = []
    for name, fn, sk in [
        ("psnr", lambda: M.psnr(est, ref, data_range=1.0), sk_psnr),
        ("ssim", lambda: M.ssim(est, ref, data_range=1.0), sk_ssim),
        ("sam", lambda: M.sam(est, ref).radians, None),
        ("ergas", lambda: M.ergas(est, ref, ratio=1), None),
        ("rmse", lambda: M.rmse(est, ref), None),
    ]:
        t, v = timed(fn)
        if sk is not None:
            ts, vs = timed(sk)
            ts *= a.bands / nb
            rows.append((name, t, ts, ts / t, v, vs))
        else:
            rows.append((name, t, None, None, v, None))
    total = sum(r[1] for r in rows)
    print(f"{'metric':<8} {'seconds':>8} {'skimage_s':>10} {'ratio':>7}  value")
    for name, t, ts, ratio, v, vs in rows:
        skc = f"{ts:10.2f}" if ts is not None else f"{'-':>10}"
        rc = f"{ratio:7.1f}" if ratio is not None else f"{'-':>7}"
        extra = f" (skimage {vs:.6f}{'' if nb == a.bands else f', {nb} bands'})" if vs is not None else ""
        print(f"{name:<8} {t:8.2f} {skc} {rc}  {v:.6f}{extra}")
    print(f"{'total':<8} {total:8.2f}")


if __name__ == "__main__":
    main()
