#!/usr/bin/env bash
# Install (if needed), build the bundled sample scene from real earthlib spectra, and run hsikit on it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/env.sh
.venv/bin/python datasets/make_sample_scene.py --out datasets/sample
.venv/bin/hsikit info datasets/sample/enmap_like_sample.tif
.venv/bin/hsikit convert datasets/sample/enmap_like_sample.tif datasets/sample/enmap_like_sample_valid.nc --bands valid
.venv/bin/hsikit info datasets/sample/enmap_like_sample_valid.nc
