"""Benchmark catalog, patch datasets, band-grouped batching and the denoising DataModule (real cubes)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from hsikit.data.datasets import catalog
from hsikit.data.datasets.patches import (
    BandGroupedBatchSampler,
    GridPatches,
    NoisyPairs,
    RandomPatches,
    collate_padded,
    collate_patches,
    dihedral,
)
from hsikit.errors import UsageError


def test_split_is_fixed_and_disjoint() -> None:
    ids = {s: {e.id for e in catalog.list_scenes(s)} for s in ("train", "val", "test")}
    assert not ids["train"] & ids["test"] and not ids["train"] & ids["val"] and not ids["val"] & ids["test"]
    assert ids["test"] == set(catalog.TEST_SCENES)
    assert {e.group for e in catalog.list_scenes("test")} >= {"cave", "anomaly", "enmap"}
    assert sum(i.startswith("enmap/") for i in ids["test"]) == 2 and sum(i.startswith("cave/") for i in ids["test"]) == 1
    assert len(catalog.list_scenes("all")) == len(catalog.SCENES) == sum(len(v) for v in ids.values())
    with pytest.raises(UsageError):
        catalog.list_scenes("holdout")
    with pytest.raises(UsageError):
        catalog.list_scenes("train", ["landsat"])


def test_load_real_scenes(shared_data: Path) -> None:
    enmap = catalog.load_scene("enmap/tile_64_0", shared_data)
    assert enmap.data.shape == (215, 32, 32) and enmap.data.dtype == np.float32  # 218 valid - 3 absorption bands
    assert enmap.data.min() == 0 and enmap.data.max() == 1
    assert np.all(np.diff(enmap.wavelength[:80]) > 0) and np.isfinite(enmap.wavelength).all()
    aviris = catalog.load_scene("aviris/santabarbara", shared_data)
    wl = aviris.wavelength
    assert aviris.data.shape[0] < 224 and not ((wl > 1350) & (wl < 1450)).any()
    cave = catalog.load_scene("cave/watercolors", shared_data)  # the 8-bit RGBA CAVE quirk
    assert cave.data.shape == (31, 512, 512) and cave.split == "val"
    raw = catalog.load_scene("anomaly/abu-airport-1", shared_data, normalize="none")
    assert raw.data.max() == 6604  # uint16 cube kept in its units
    assert catalog.load_scene("anomaly/abu-airport-1", shared_data) is catalog.load_scene("anomaly/abu-airport-1", shared_data)


def test_dihedral_is_the_group_of_the_square() -> None:
    x = torch.arange(2 * 3 * 3.0).reshape(2, 3, 3)
    outs = [dihedral(x, k) for k in range(8)]
    assert len({tuple(o.flatten().tolist()) for o in outs}) == 8
    for o in outs:  # space only: each band keeps its own values
        assert torch.equal(o[0].flatten().sort().values, x[0].flatten().sort().values)
    torch.testing.assert_close(dihedral(dihedral(x, 1), 3), x)


def test_random_patches_seeded_and_augmented(shared_data: Path) -> None:
    scenes = [catalog.load_scene(i, shared_data) for i in ("enmap/tile_64_0", "muufl/gulfport_sub", "anomaly/hydice-urban")]
    ds = RandomPatches(scenes, 24, 50, seed=3)
    again = RandomPatches(scenes, 24, 50, seed=3)
    a, b = ds[7], again[7]
    assert torch.equal(a["image"], b["image"]) and a["scene"] == b["scene"]
    assert set(ds.band_counts) == {215, 72, 162}
    s = next(sc for sc in scenes if sc.id == a["scene"])
    y0, x0, k = a["window"].tolist()
    np.testing.assert_array_equal(a["image"].numpy(), dihedral(torch.from_numpy(np.array(s.data[:, y0:y0 + 24, x0:x0 + 24])), k).numpy())
    modes = {int(ds[i]["window"][2]) for i in range(50)}
    assert len(modes) >= 6
    big = RandomPatches(scenes, 40, 10)
    assert big.skipped == ["enmap/tile_64_0"]
    with pytest.raises(UsageError):
        RandomPatches(scenes[:1], 64, 10)


def test_grid_patches_cover_the_scene(shared_data: Path) -> None:
    s = catalog.load_scene("muufl/gulfport_sub", shared_data)  # 51 x 88
    ds = GridPatches([s], 32)
    assert len(ds) == 2 * 3
    cover = np.zeros(s.data.shape[1:], int)
    for i in range(len(ds)):
        y0, x0, _ = ds[i]["window"].tolist()
        cover[y0:y0 + 32, x0:x0 + 32] += 1
        assert torch.equal(ds[i]["image"], torch.from_numpy(np.array(s.data[:, y0:y0 + 32, x0:x0 + 32])))
    assert cover.min() >= 1


def test_noisy_pairs_fixed_and_fresh(shared_data: Path) -> None:
    s = catalog.load_scene("enmap/tile_96_0", shared_data)
    fixed = NoisyPairs(GridPatches([s], 32), "gaussian:0.1", seed=5, fixed=True)
    a, b = fixed[0], fixed[0]
    assert torch.equal(a["noisy"], b["noisy"]) and torch.equal(a["clean"], a["image"])
    assert float((a["noisy"] - a["clean"]).std()) == pytest.approx(0.1, rel=0.05)
    fresh = NoisyPairs(GridPatches([s], 32), "gaussian:0.1", seed=5)
    assert not torch.equal(fresh[0]["noisy"], fresh[0]["noisy"])
    sr = NoisyPairs(GridPatches([s], 32), None, blur_ratio=4)
    assert sr[0]["noisy"].shape == (215, 8, 8)


def test_band_grouped_batches_and_padding() -> None:
    counts = [31] * 5 + [64] * 3 + [215] * 4
    sampler = BandGroupedBatchSampler(counts, 2, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3 + 2 + 2
    assert sorted(i for b in batches for i in b) == list(range(12))
    assert all(len({counts[i] for i in b}) == 1 for b in batches)
    assert batches != list(sampler)  # a new order every epoch
    samples = [{"image": torch.ones(c, 4, 4), "wavelength": torch.arange(c, dtype=torch.float32)} for c in (3, 5)]
    with pytest.raises(UsageError):
        collate_patches(samples)
    batch = collate_padded(samples)
    assert batch["image"].shape == (2, 5, 4, 4) and batch["band_mask"].tolist()[0] == [True] * 3 + [False] * 2
    assert torch.isnan(batch["wavelength"][0, 3:]).all() and batch["image"][0, 3:].abs().sum() == 0


def test_datamodule_trains_a_tiny_model(shared_data: Path) -> None:
    import lightning as L

    from hsikit.data.datamodules import DenoisingDataModule

    class TinyDenoiser(L.LightningModule):
        """Band-agnostic residual 3-D conv: [B, 1, C, H, W] -> noise estimate."""

        def __init__(self) -> None:
            super().__init__()
            self.net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv3d(4, 1, 3, padding=1))
            self.losses: list[float] = []
            self.noise_std: list[float] = []

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x - self.net(x[:, None])[:, 0]

        def training_step(self, batch, _):
            assert batch["noisy"].shape == batch["clean"].shape and batch["wavelength"].shape == batch["clean"].shape[:2]
            self.noise_std.append(float((batch["noisy"] - batch["clean"]).std()))
            loss = torch.nn.functional.mse_loss(self(batch["noisy"]), batch["clean"])
            self.losses.append(float(loss.detach()))
            return loss

        def validation_step(self, batch, _):
            self.log("val_mse", torch.nn.functional.mse_loss(self(batch["noisy"]), batch["clean"]), batch_size=len(batch["scene"]))

        def configure_optimizers(self):
            return torch.optim.Adam(self.parameters(), lr=1e-2)

    dm = DenoisingDataModule("gaussian:50/255", root=shared_data, groups=["enmap", "muufl"], patch_size=16,
                             batch_size=4, train_length=24, seed=0)
    model = TinyDenoiser()
    before = [p.detach().clone() for p in model.parameters()]
    trainer = L.Trainer(fast_dev_run=5, accelerator="cpu", logger=False, enable_progress_bar=False,
                        enable_model_summary=False)
    trainer.fit(model, datamodule=dm)
    assert len(model.losses) == 5 and all(np.isfinite(model.losses))
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    scenes = {s for b in dm.train_dataloader() for s in b["scene"]}
    assert scenes and not scenes & set(catalog.TEST_SCENES)
    np.testing.assert_allclose(model.noise_std, 50 / 255, rtol=0.05)
    dm.setup("test")
    test_scenes = {dm.test_set.dataset.scenes[j].id for j, _, _ in dm.test_set.dataset.windows}
    assert test_scenes == {"enmap/tile_96_96", "enmap/tile_128_128"}
    # the same recipe drawn per batch on the training device (Lightning's on_after_batch_transfer)
    batched = DenoisingDataModule("gaussian:50/255", root=shared_data, groups=["enmap", "muufl"], patch_size=16,
                                  batch_size=4, train_length=24, seed=0, train_noise_on="batch")
    model2 = TinyDenoiser()
    L.Trainer(fast_dev_run=2, accelerator="cpu", logger=False, enable_progress_bar=False,
              enable_model_summary=False).fit(model2, datamodule=batched)
    np.testing.assert_allclose(model2.noise_std, 50 / 255, rtol=0.05)
    raw = next(iter(batched.train_dataloader()))
    assert torch.equal(raw["noisy"], raw["clean"])  # outside a Trainer the loader yields clean pairs


# ------------------------------------------------------------------- EnMAP tiles as a torchgeo GeoDataset


def test_enmap_geodataset_random_and_grid_sampling(shared_data: Path) -> None:
    pytest.importorskip("torchgeo")
    import rasterio
    from torch.utils.data import DataLoader
    from torchgeo.datasets import stack_samples
    from torchgeo.samplers import GridGeoSampler, RandomGeoSampler

    from hsikit.data.datasets.enmap import EnmapImages, enmap_tiles_dataset

    root = shared_data / "enmap_potsdam_tiles"
    ds = enmap_tiles_dataset(root, bands="valid")
    assert len(ds) == 10 and ds.res == (30.0, 30.0) and ds.crs.to_epsg() == 32633
    sampler = RandomGeoSampler(ds, size=16, length=8, generator=torch.Generator().manual_seed(0))
    batch = next(iter(DataLoader(ds, sampler=sampler, batch_size=4, collate_fn=stack_samples)))
    assert batch["image"].shape == (4, 218, 16, 16) and batch["mask"].shape == (4, 16, 16)
    assert batch["wavelength"].shape == (4, 218) and float(batch["wavelength"][0, 0]) == pytest.approx(418.24, abs=0.01)
    assert batch["mask"].dtype == torch.int64 and set(batch["mask"].unique().tolist()) <= set(range(7))
    assert -0.05 < float(batch["image"].min()) and float(batch["image"].max()) < 1.5  # reflectance, not x10000
    grid = list(GridGeoSampler(ds, size=16, stride=16))
    assert len(grid) == 40  # 10 tiles of 32 x 32 -> 4 patches each
    # a grid patch equals the file's pixels (scale 1e-4) and its label
    q = grid[0]
    sample = ds[q]
    x0, y1 = q[0].start, q[1].stop
    for f in sorted((root / "images").glob("*.tif")):
        with rasterio.open(f) as src:
            b = src.bounds
            if b.left <= x0 < b.right and b.bottom < y1 <= b.top:
                col, row = int((x0 - b.left) / 30), int((b.top - y1) / 30)
                raw = src.read(1, window=((row, row + 16), (col, col + 16)))
                with rasterio.open(root / "labels" / f.name) as lab:
                    lab_raw = lab.read(1, window=((row, row + 16), (col, col + 16)))
                break
    np.testing.assert_allclose(sample["image"][0].numpy(), raw * 1e-4, rtol=1e-6)
    np.testing.assert_array_equal(sample["mask"].numpy(), lab_raw.astype(np.int64))
    labelled = sum(int((ds[g]["mask"] > 0).sum()) for g in grid)
    in_files = 0
    for f in (root / "labels").glob("*.tif"):
        with rasterio.open(f) as lab:
            in_files += int((lab.read(1) > 0).sum())
    assert labelled == in_files > 3000  # the grid sees every labelled pixel of the 10 tiles exactly once
    everything = EnmapImages(root / "images", bands="torchgeo202", reflectance=False)
    s = everything[grid[0]]
    assert s["image"].shape[0] == 202 and float(s["image"].max()) > 100
    assert str(everything.index.index[0].left) == "2022-07-24 10:45:26"  # acquisition time from the tag
    with pytest.raises(UsageError):
        EnmapImages(root / "images", bands="rgb")


def test_enmap_geodataset_on_an_l2a_product_folder() -> None:
    pytest.importorskip("torchgeo")
    from torchgeo.samplers import GridGeoSampler

    from hsikit.data.datasets.enmap import EnmapImages
    from hsikit.io.enmap import read_enmap

    folder = Path(__file__).parent / "data" / "enmap" / "ENMAP01-____L2A-DT0000001867_20220724T104526Z_008_V010302_20230628T165614Z"
    ds = EnmapImages(folder, filename_glob="*SPECTRAL_IMAGE*", bands="valid")
    product = read_enmap(folder, bands="valid")
    assert len(ds) == 1 and ds.band_numbers == [int(b) for b in product["band"].values]
    np.testing.assert_allclose(ds.wavelength.numpy(), product["wavelength"].values, rtol=1e-6)  # from METADATA.XML
    assert str(ds.index.index[0].left) == "2022-07-24 10:45:26"  # from the product name
    q = list(GridGeoSampler(ds, 8, 8))[0]
    sample = ds[q]
    from hsikit.cube import to_reflectance

    t = product.rio.transform()
    col, row = round((q[0].start - t.c) / t.a), round((q[1].stop - t.f) / t.e)
    expected = to_reflectance(product).values[:, row:row + 8, col:col + 8]
    np.testing.assert_allclose(sample["image"].numpy(), expected, rtol=1e-6, equal_nan=True)


def test_fixed_test_set_files_round_trip(shared_data: Path, tmp_path: Path) -> None:
    from hsikit.data.datasets.testsets import MatPairs, write_test_set

    scenes = [catalog.load_scene("enmap/tile_96_96", shared_data), catalog.load_scene("anomaly/sandiego_plane", shared_data)]
    files = write_test_set(scenes, "gaussian:50/255", tmp_path, seed=0, crop=64)
    assert [f.name for f in files] == ["enmap__tile_96_96.mat", "anomaly__sandiego_plane.mat"]
    ds = MatPairs(tmp_path)
    s = next(ds[i] for i in range(len(ds)) if ds[i]["scene"] == "anomaly__sandiego_plane")
    assert s["clean"].shape == (scenes[1].bands, 64, 64) and s["sigma"] == pytest.approx(50 / 255)
    np.testing.assert_allclose(s["clean"].numpy(), scenes[1].data[:, 18:82, 18:82], rtol=1e-6)
    assert float((s["noisy"] - s["clean"]).std()) == pytest.approx(50 / 255, rel=0.02)
    np.testing.assert_allclose(s["wavelength"].numpy(), scenes[1].wavelength, equal_nan=True)
    again = tmp_path / "again"
    again.mkdir()
    write_test_set(scenes, "gaussian:50/255", again, seed=0, crop=64)
    torch.testing.assert_close(MatPairs(again)[0]["noisy"], ds[0]["noisy"])  # the same files from the same seed
    small = next(ds[i] for i in range(len(ds)) if ds[i]["scene"] == "enmap__tile_96_96")
    assert small["clean"].shape == (215, 32, 32)  # smaller than the crop: kept whole
