"""Sparse-noise removal (hsikit.denoise.sparse) on real test-split cubes: it finds dead lines, stripes
and impulses, leaves Gaussian-only cubes untouched, and lifts the denoisers on mixture noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

import hsikit
from hsikit.cli import main
from hsikit.cube import make_cube
from hsikit.data.datasets.catalog import load_scene
from hsikit.data.degrade import mixture_noise, parse_noise
from hsikit.denoise.classical import noise_sigma
from hsikit.denoise.sparse import remove_sparse_noise, sparse_mask
from hsikit.metrics import psnr

SCENE = "enmap/tile_96_96"  # real EnMAP L2A, test split (never trained on)


@pytest.fixture(scope="module")
def clean(shared_data: Path) -> tuple[np.ndarray, np.ndarray]:
    scene = load_scene(SCENE, shared_data)
    return np.ascontiguousarray(scene.data), scene.wavelength


def test_gaussian_only_cube_passes_unchanged(clean, one_torch_thread):
    x, _ = clean
    for i, spec in enumerate(("gaussian:0.05", "gaussian:0.2", "noniid")):
        y = parse_noise(spec)(torch.from_numpy(x.copy()), i)
        found = remove_sparse_noise(y)
        assert found.fraction == 0.0, spec
        assert torch.equal(found.cleaned, y)


def test_finds_dead_lines_stripes_and_impulses(clean, one_torch_thread):
    x = torch.from_numpy(clean[0].copy())
    y, params = mixture_noise(x, generator=3, return_params=True)
    stripes, dead, imp = params["corrupted"]
    found = remove_sparse_noise(y)
    mask = found.mask
    dead_cells = torch.zeros_like(mask)
    for b, cols in zip(dead.bands, dead.columns):
        dead_cells[b, :, cols] = True
    # a dead column is found where its true values stand out of the band's noise (mean > 2.5 sigma)
    sigma = torch.as_tensor(params["sigma"]).flatten()
    far = torch.zeros_like(mask)
    for b, cols in zip(dead.bands, dead.columns):
        keep = [c for c in cols if float(x[b, :, c].mean()) > 2.5 * float(sigma[b])]
        far[b, :, keep] = True
    assert int(far.sum()) > 500
    assert mask[far].float().mean() > 0.9
    # impulses (values set to exactly 0 or 1) that stand 4 estimated sigma off, in bands of density
    # <= 0.3 (denser ones inflate the band's sigma estimate until few of them stand out)
    est = noise_sigma(y)
    bands = torch.zeros(x.shape[0], dtype=torch.bool)
    bands[imp.bands] = True
    sparse_bands = torch.zeros_like(bands)
    sparse_bands[[b for b, d in zip(imp.bands, imp.density) if d <= 0.3]] = True
    hit = sparse_bands[:, None, None] & ((y == 0) | (y == 1)) & ((y - x).abs() > 4 * est[:, None, None])
    assert int(hit.sum()) > 500
    assert mask[hit].float().mean() > 0.75
    # stripes offset by more than 2 sigma are found too
    big = torch.zeros_like(mask)
    for b, cols, offs in zip(stripes.bands, stripes.columns, stripes.offsets):
        for c, o in zip(cols, offs):
            if abs(o) > 2 * float(sigma[b]):
                big[b, :, c] = True
    assert int(big.sum()) > 200
    assert mask[big].float().mean() > 0.8
    # few clean values are replaced
    corrupted = dead_cells | (bands[:, None, None] & ((y == 0) | (y == 1)))
    for b, cols in zip(stripes.bands, stripes.columns):
        corrupted[b, :, cols] = True
    assert mask[~corrupted].float().mean() < 0.02
    # and the cube gets closer to the truth
    assert psnr(found.cleaned.numpy(), x.numpy(), data_range=1.0) > psnr(y.numpy(), x.numpy(), data_range=1.0) + 2


def test_gates_need_structure():
    """Flags scattered at the chance rate open no gate; one flagged column does."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1, 8, 64, 64, generator=g, dtype=torch.float64)
    pred = torch.zeros_like(x)
    assert not bool(sparse_mask(x, pred).any())
    x[0, 3, :, 10] += 6.0
    m = sparse_mask(x, pred)
    assert bool(m[0, 3, :, 10].all()) and int(m.sum()) == 64


def test_denoise_api_uses_it_on_mixture_noise_only(clean, one_torch_thread):
    x, wl = clean
    mixed = mixture_noise(torch.as_tensor(x), generator=5).numpy().astype(np.float32)
    gauss = parse_noise("gaussian:0.1")(torch.as_tensor(x), 6).numpy().astype(np.float32)
    res = {}
    for name, y in (("mixture", mixed), ("gaussian", gauss)):
        for sparse in ("auto", "off"):
            r = hsikit.denoise(make_cube(y, wavelength=wl), "fasthyde", sparse=sparse, progress=False, device="cpu")
            res[name, sparse] = (r, psnr(r.cube.values.clip(0, 1), x, data_range=1.0))
    assert res["mixture", "auto"][0].sparse_fraction > 0.01
    assert res["mixture", "auto"][1] > res["mixture", "off"][1] + 2.0
    assert "replaced as sparse noise" in res["mixture", "auto"][0].summary()
    assert res["gaussian", "auto"][0].sparse_fraction == 0.0
    np.testing.assert_array_equal(res["gaussian", "auto"][0].cube.values, res["gaussian", "off"][0].cube.values)


def test_cli_rejects_a_bad_sparse_value(tmp_path: Path, enmap_tile: Path, capsys):
    out = tmp_path / "o.tif"
    rc = main(["denoise", str(enmap_tile), str(out), "--sparse", "maybe"])
    err = capsys.readouterr().err
    assert rc == 2 and "sparse must be 'auto' or 'off'" in err and not out.exists()


def test_cli_sparse_auto_on_a_striped_int16_scene(enmap_tile: Path, tmp_path: Path, capsys):
    """Tiles, int16 scaling, nodata and bad bands with the sparse step: the defects go, the rest is kept."""
    cube = hsikit.open(enmap_tile)
    raw = np.asarray(cube.values, np.float64)
    good = np.asarray(cube["bbl"].values, bool)
    clean = raw * 1e-4
    noisy = clean.copy()
    y = parse_noise("gaussian:0.01+stripe:bands=40,amp=0.1+deadline:bands=40")(torch.as_tensor(clean[good]), 4)
    noisy[good] = y.numpy()
    stored = np.where(raw == -32768, -32768, np.clip(np.round(noisy * 1e4), -32767, 32767)).astype(np.int16)
    stored[:, 0, 0] = -32768
    src = tmp_path / "striped.tif"
    hsikit.save(make_cube(stored, wavelength=cube["wavelength"].values, bbl=good, scale=1e-4, crs=cube.rio.crs,
                          transform=cube.rio.transform(), nodata=-32768), src)
    scores = {}
    for sparse in ("off", "auto"):
        out = tmp_path / f"den_{sparse}.tif"
        rc = main(["denoise", str(src), str(out), "--model", "fasthyde", "--tile", "16", "--overlap", "4",
                   "--sparse", sparse])
        line = capsys.readouterr().out
        assert rc == 0 and out.exists()
        assert ("replaced as sparse noise" in line) == (sparse == "auto")
        den = hsikit.open(out).values
        assert np.isnan(den[:, 0, 0]).all()  # nodata stays nodata
        np.testing.assert_array_equal(np.isnan(den[~good]), True)  # bad bands: nodata there, passed through
        scores[sparse] = psnr(np.nan_to_num(den[good][:, 1:, 1:]), clean[good][:, 1:, 1:], data_range=float(clean[good].max()))
    assert scores["auto"] > scores["off"] + 2.0, scores
