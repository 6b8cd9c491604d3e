"""Reduced- and full-resolution protocols on real data: EnMAP tiles (simulated PAN) and Landsat-7 pairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import scipy.io as sio
import torch

import hsikit
from hsikit.cube import select_bands, to_reflectance
from hsikit.errors import UsageError
from hsikit.pansharpen.classical import METHODS, fuse
from hsikit.pansharpen.protocols import (
    full_resolution,
    reduced_resolution,
    reduced_resolution_simulated,
    registration_shift,
    simulated_pair,
)

#: The six EnMAP tiles that form a 64 x 96 px mosaic (pixel offsets x, y in the source scene).
MOSAIC = ((64, 0), (96, 0), (128, 0), (64, 32), (96, 32), (128, 32))
PAN_BAND = (400.0, 700.0)  # a VIS PAN, as PRISMA's


@pytest.fixture(scope="module")
def enmap_mosaic(shared_data: Path) -> tuple[torch.Tensor, np.ndarray]:
    """(218 good bands x 64 x 96 reflectance, wavelengths nm) from six adjacent real EnMAP tiles."""
    d = shared_data / "enmap_potsdam_tiles" / "images"
    tiles = {xy: select_bands(hsikit.open(d / f"enmap_potsdam_tile_{xy[0]}_{xy[1]}.tif"), "valid") for xy in MOSAIC}
    first = tiles[MOSAIC[0]]
    # the tiles are adjacent on one grid (30 m): check it rather than assume it
    for (x, y), t in tiles.items():
        assert t.rio.transform().c == first.rio.transform().c + 30 * (x - 64)
        assert t.rio.transform().f == first.rio.transform().f - 30 * y
    rows = [np.concatenate([to_reflectance(tiles[(x, y)]).values for x in (64, 96, 128)], axis=2) for y in (0, 32)]
    cube = torch.from_numpy(np.concatenate(rows, axis=1))
    assert cube.shape == (218, 64, 96) and torch.isfinite(cube).all()
    return cube, first["wavelength"].values


def _landsat(shared_data: Path, scene: int) -> tuple[torch.Tensor, torch.Tensor]:
    d = shared_data / "landsat7_pan_ms_fusebox"
    ms = sio.loadmat(d / f"{scene}_ms.mat")["cropped_im"]
    pan = sio.loadmat(d / f"{scene}_pan.mat")["cropped_gray"]
    assert ms.shape == (400, 400, 6) and pan.shape == (800, 800) and ms.dtype == np.uint8
    return torch.from_numpy(ms.astype(np.float32)).permute(2, 0, 1).contiguous(), torch.from_numpy(pan.astype(np.float32))


def test_enmap_wald_ranks_cs_and_mra_above_bicubic(enmap_mosaic) -> None:
    cube, wl = enmap_mosaic
    res = reduced_resolution_simulated(cube, wl, 4, pan_band=PAN_BAND)
    base = res["bicubic"]
    assert 0.5 < base["q2n"] < 0.95 and base["ergas"] > 1
    # regression-gain methods win on every score over all 218 bands (VNIR + SWIR)
    for m in ("gsa", "mtf-glp-fs"):
        assert res[m]["q2n"] > base["q2n"] + 0.03 and res[m]["ergas"] < 0.8 * base["ergas"], (m, res[m], base)
    # the unit-gain MRA methods lower ERGAS too, but over-inject into the SWIR bands the VIS PAN misses
    for m in ("mtf-glp", "mtf-glp-hpm"):
        assert res[m]["ergas"] < base["ergas"], (m, res[m], base)
    # on the bands the PAN covers, every method beats the interpolation by far
    inside = np.flatnonzero((wl >= PAN_BAND[0]) & (wl <= PAN_BAND[1]))
    vis = reduced_resolution_simulated(cube[inside], wl[inside], 4, pan_band=PAN_BAND)
    for m in METHODS[1:]:
        assert vis[m]["q2n"] > vis["bicubic"]["q2n"] + 0.1 and vis[m]["ergas"] < 0.5 * vis["bicubic"]["ergas"], (m, vis[m])


def test_simulated_pair_shapes_and_crop(enmap_mosaic) -> None:
    cube, wl = enmap_mosaic
    ms, pan, ref = simulated_pair(cube[:, :, :50], wl, 3)
    assert ms.shape == (218, 21, 16) and pan.shape == (63, 48) and ref.shape == (218, 63, 48)
    with pytest.raises(UsageError, match="ratio"):
        simulated_pair(cube, wl, 1)


def test_landsat_pairs_are_misregistered_by_one_pan_pixel(shared_data: Path) -> None:
    ms, pan = _landsat(shared_data, 7)
    assert registration_shift(ms[:, :200, :200], pan[:400, :400], 2) == (1, 1)


def test_landsat_wald_with_registration(shared_data: Path) -> None:
    ms, pan = _landsat(shared_data, 1)
    ms, pan = ms[:, :200, :200], pan[:400, :400]
    registered = torch.roll(pan, registration_shift(ms, pan, 2), (0, 1))
    res = reduced_resolution(ms, registered, 2)
    for m in METHODS[1:]:
        assert res[m]["q2n"] > res["bicubic"]["q2n"] and res[m]["ergas"] < res["bicubic"]["ergas"], (m, res[m])
    # misregistered as published, the CS methods inject detail at the wrong place and lose
    raw = reduced_resolution(ms, pan, 2, methods=("bicubic", "gsa"))
    assert raw["gsa"]["q2n"] < raw["bicubic"]["q2n"]


def test_landsat_full_resolution(shared_data: Path) -> None:
    ms, pan = _landsat(shared_data, 7)
    ms, pan = ms[:, :128, :128], torch.roll(pan, (1, 1), (0, 1))[:256, :256]
    res = full_resolution(ms, pan, 2, methods=("bicubic", "gsa", "mtf-glp-fs"))
    for m, s in res.items():
        assert 0 <= s["d_lambda_khan"] < 0.3 and s["hqnr"] == pytest.approx((1 - s["d_lambda_khan"]) * (1 - s["d_s"]))
    # bicubic keeps the MS spectra (smallest D_lambda) but has none of the PAN's spatial detail
    assert res["bicubic"]["d_lambda_khan"] < res["gsa"]["d_lambda_khan"]
    for m in ("gsa", "mtf-glp-fs"):
        assert res[m]["d_s_r"] < 0.5 * res["bicubic"]["d_s_r"] and res[m]["d_rho"] < res["bicubic"]["d_rho"]


def test_reduced_resolution_needs_a_multiple_of_the_ratio() -> None:
    with pytest.raises(UsageError, match="multiple of the ratio"):
        reduced_resolution(torch.ones(3, 8, 8), torch.ones(24, 24), 3)
    with pytest.raises(UsageError, match="NaN"):
        reduced_resolution(torch.full((3, 8, 8), float("nan")), torch.ones(16, 16), 2)


@pytest.mark.slow
@pytest.mark.parametrize("scene", [1, 2, 3, 7, 13])
def test_every_landsat_scene_is_shifted_and_fused_better_once_registered(shared_data: Path, scene: int) -> None:
    ms, pan = _landsat(shared_data, scene)
    shift = registration_shift(ms, pan, 2)
    assert shift == (1, 1)
    res = reduced_resolution(ms, torch.roll(pan, shift, (0, 1)), 2, methods=("bicubic", "gsa", "mtf-glp-fs"))
    assert res["gsa"]["q2n"] > res["bicubic"]["q2n"] and res["mtf-glp-fs"]["q2n"] > res["bicubic"]["q2n"]


def test_fused_result_is_consistent_across_devices_and_dtypes(enmap_mosaic) -> None:
    cube, wl = enmap_mosaic
    ms, pan, _ = simulated_pair(cube[:20], wl[:20], 2, pan_band=(400.0, 560.0))
    f32 = fuse(ms, pan, 2, "gsa")
    f64 = fuse(ms.double(), pan.double(), 2, "gsa")
    torch.testing.assert_close(f32.double(), f64, atol=1e-5, rtol=1e-4)
    if torch.cuda.is_available():
        torch.testing.assert_close(fuse(ms.cuda(), pan.cuda(), 2, "gsa").cpu(), f32, atol=1e-5, rtol=1e-4)
