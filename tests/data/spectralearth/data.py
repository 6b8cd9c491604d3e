#!/usr/bin/env python3
"""Generate a tiny fake SpectralEarth archive (torchgeo-style fake data; nothing here is real).

Layout written under ROOT::

    enmap/<location>/<k>.tif   int16 (202, size, size) EnMAP-like DN (reflectance x 10000), EPSG:32633, 30 m,
                               nodata -32768; location 0000000 has one timestamp, the others 2-3
    cdl/<location>/<k>.tif     uint8 labels (values 0, 1, 5, 24, 36: CDL-like codes)
    splits/enmap_cdl/{train,val,test}.txt   entries <location>/<k>.tif

Usage: ``python tests/data/spectralearth/data.py ROOT [--size 32] [--locations 5]``. The tests call
:func:`make_archive` into a temporary folder, so no binary files are committed.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

N_BANDS = 202
CDL_CODES = (0, 1, 5, 24, 36)


def make_archive(root: str | Path, *, locations: int = 5, size: int = 32, seed: int = 0) -> dict[str, list[Path]]:
    """Write the fake archive; returns ``{location: [patch paths]}``."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    out: dict[str, list[Path]] = {}
    entries = []
    spectrum = 800 + 1200 * np.sin(np.linspace(0, 3, N_BANDS)) ** 2  # a smooth vegetation-ish shape in DN
    for i in range(locations):
        loc = f"{i:07d}"
        n_times = 1 if i == 0 else int(rng.integers(2, 4))
        x0, y0 = 300000 + 3840 * i, 5800000
        transform = Affine(30, 0, x0, 0, -30, y0)
        for k in range(n_times):
            brightness = rng.uniform(0.6, 1.4, (size, size))
            data = (spectrum[:, None, None] * brightness[None] + rng.normal(0, 30, (N_BANDS, size, size))).astype(np.int16)
            if i == 1 and k == 0:
                data[:, :2, :2] = -32768  # a nodata corner
            path = root / "enmap" / loc / f"{k:05d}.tif"
            path.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(path, "w", driver="GTiff", count=N_BANDS, height=size, width=size, dtype="int16",
                               crs="EPSG:32633", transform=transform, nodata=-32768, tiled=False) as dst:
                dst.write(data)
            out.setdefault(loc, []).append(path)
            label = rng.choice(CDL_CODES, (size, size)).astype(np.uint8)
            lpath = root / "cdl" / loc / f"{k:05d}.tif"
            lpath.parent.mkdir(parents=True, exist_ok=True)
            with rasterio.open(lpath, "w", driver="GTiff", count=1, height=size, width=size, dtype="uint8",
                               crs="EPSG:32633", transform=transform) as dst:
                dst.write(label, 1)
            entries.append(f"{loc}/{k:05d}.tif")
    split_dir = root / "splits" / "enmap_cdl"
    split_dir.mkdir(parents=True, exist_ok=True)
    n = len(entries)
    parts = {"train": entries[: n // 2], "val": entries[n // 2 : 3 * n // 4], "test": entries[3 * n // 4 :]}
    for name, items in parts.items():
        (split_dir / f"{name}.txt").write_text("\n".join(items) + "\n")
    return out


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("root", type=Path)
    ap.add_argument("--size", type=int, default=32)
    ap.add_argument("--locations", type=int, default=5)
    args = ap.parse_args()
    made = make_archive(args.root, locations=args.locations, size=args.size)
    print(f"wrote {sum(len(v) for v in made.values())} patches in {len(made)} locations under {args.root}")
