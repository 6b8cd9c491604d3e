"""Shared fixtures. Real data is read in place from ../shared/data (beside the clone)."""

from __future__ import annotations

import os
from pathlib import Path

# Triton kernels run in interpreter mode on the CPU; this must happen before any @triton.jit is
# defined. On a GPU machine set HSIKIT_GPU_TESTS=1 to compile them for the device instead.
if os.environ.get("HSIKIT_GPU_TESTS") != "1":
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("HSIKIT_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Root of the real test data (../shared/data). In CI its absence is an error, not a skip."""
    if not SHARED_DATA.is_dir():
        if os.environ.get("CI"):
            pytest.fail(f"real test data not found at {SHARED_DATA}")
        pytest.skip(f"real test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def enmap_tile(shared_data: Path) -> Path:
    """One real EnMAP L2A tile: 224 bands x 32 x 32, float32, EPSG:32633, 30 m."""
    return shared_data / "enmap_potsdam_tiles" / "images" / "enmap_potsdam_tile_64_0.tif"


@pytest.fixture()
def one_torch_thread():
    """Run a test with one torch intra-op thread (on 2 shared cores, OpenMP oversubscription stalls
    small ops by 5-200x); the previous count is restored afterwards."""
    import torch

    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)
