"""Unmixing accuracy on the reference scenes: mean SAD and abundance RMSE, mean +- std over seeds.

Usage: .venv/bin/python scripts/bench/unmix_real.py [--data ../shared/data] [--seeds 5]
       [--scenes samson,moffett,muufl,sim1,sim2] [--methods vca-fcls,...] [--out results.json] [--threads 1]

Every run goes through :func:`hsikit.unmix.api.unmix` (the same path as the CLI). Metrics from
:mod:`hsikit.metrics`: SAD in radians, mean over the reference endmembers after Hungarian matching on
SAD; abundance RMSE is the global RMSE over all pixels and endmembers (HySUPP aRMSE / 100, the
DeepTrans-HSU "abund RMSE") with the *same* matching, against every ground-truth convention of the
scene (``fcls``, ``zhu``, ``label``; see :mod:`hsikit.unmix.reference`). ``rrlbs+fcls`` takes the
RRLbS endmembers and re-estimates the abundances with FCLS; ``autoencoder-vca`` is the autoencoder
initialised from VCA instead of RRLbS. Prints a markdown table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch

import hsikit
from hsikit.metrics import abundance_rmse, sad
from hsikit.unmix.abundances import fcls
from hsikit.unmix.api import unmix
from hsikit.unmix.reference import SCENES, load_reference_scene

METHODS = ("vca-fcls", "nfindr-fcls", "atgp-fcls", "sivm-fcls", "rrlbs", "rrlbs+fcls", "autoencoder", "autoencoder-vca")


def run_one(scene, method: str, seed: int) -> dict:
    cube = hsikit.make_cube(scene.cube, wavelength=scene.wavelength)
    p = scene.n_endmembers
    t = time.perf_counter()
    opts = {"init": "vca"} if method == "autoencoder-vca" else {}
    r = unmix(cube, p, method=method.replace("+fcls", "").replace("-vca", ""), seed=seed, **opts)
    seconds = time.perf_counter() - t
    E = r.endmembers.values
    A = r.abundances.values.astype(np.float64)
    if method.endswith("+fcls"):
        A = fcls(E, scene.spectra).numpy().reshape(A.shape)
    s = sad(E, scene.endmembers)
    out = {"scene": scene.name, "method": method, "seed": seed, "sad": s.mean, "sad_per_endmember": s.per_endmember.tolist(),
           "seconds": seconds}
    for conv, gt in scene.abundances.items():
        out[f"rmse_{conv}"] = abundance_rmse(A, gt, permutation=s.permutation).global_rmse
    return out


def summarise(rows: list[dict]) -> str:
    convs = sorted({k for r in rows for k in r if k.startswith("rmse_")})
    head = "| scene | method | SAD (rad) | " + " | ".join(f"abund RMSE vs {c[5:]}" for c in convs) + " | s/run |"
    lines = [head, "|" + "---|" * (4 + len(convs))]
    keys = sorted({(r["scene"], r["method"]) for r in rows}, key=lambda k: (SCENES.index(k[0]), METHODS.index(k[1])))
    for scene, method in keys:
        rs = [r for r in rows if r["scene"] == scene and r["method"] == method]
        sads = np.array([r["sad"] for r in rs])
        cells = [f"{sads.mean():.4f} ± {sads.std():.4f}"]
        for c in convs:
            v = np.array([r[c] for r in rs if c in r])
            cells.append(f"{v.mean():.4f} ± {v.std():.4f}" if v.size else "–")
        sec = np.mean([r["seconds"] for r in rs])
        lines.append(f"| {scene} | {method} | " + " | ".join(cells) + f" | {sec:.1f} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("--methods", default=",".join(METHODS[:-1]))
    ap.add_argument("--out", default="unmix_real.json")
    ap.add_argument("--threads", type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    rows: list[dict] = []
    for name in a.scenes.split(","):
        scene = load_reference_scene(a.data, name)
        for method in a.methods.split(","):
            for seed in range(a.seeds):
                r = run_one(scene, method, seed)
                rows.append(r)
                print(f"{name} {method} seed {seed}: SAD {r['sad']:.4f} "
                      + " ".join(f"{k} {v:.4f}" for k, v in r.items() if k.startswith("rmse_")) + f" ({r['seconds']:.1f} s)",
                      flush=True)
                with open(a.out, "w") as f:
                    json.dump(rows, f, indent=1)
    print(summarise(rows))


if __name__ == "__main__":
    main()
