"""Full-reference metrics: hand-computed values on tiny arrays, skimage agreement, torchmetrics pitfalls."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from hsikit.errors import UsageError
from hsikit.metrics import cc, ergas, psnr, psnr_cube, q2n, rase, rmse, sam, sre, ssim, uiqi
from hsikit.metrics.full_reference import cayley_dickson_signs


@pytest.fixture(scope="module")
def pair() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    ref = rng.random((6, 24, 20))
    est = np.clip(ref + 0.05 * rng.standard_normal(ref.shape), 0, 1)
    return est, ref


def test_sam_orthogonal_spectra_is_half_pi_and_zero_pixel_is_excluded_and_counted() -> None:
    ref = np.zeros((3, 1, 3))
    est = np.zeros((3, 1, 3))
    ref[:, 0, 0], est[:, 0, 0] = [1, 0, 0], [0, 2, 0]  # orthogonal: pi/2
    ref[:, 0, 1], est[:, 0, 1] = [1, 1, 0], [3, 3, 0]  # parallel: 0
    ref[:, 0, 2], est[:, 0, 2] = [1, 2, 3], [0, 0, 0]  # zero estimate: excluded
    r = sam(est, ref, return_map=True)
    assert r.n_excluded == 1 and r.n_pixels == 2
    assert r.radians == pytest.approx(math.pi / 4, abs=1e-15)
    assert r.degrees == pytest.approx(45.0)
    assert r.angle_map[0, 0] == pytest.approx(math.pi / 2, abs=1e-15)
    assert np.isnan(r.angle_map[0, 2])
    # a mask that leaves out the orthogonal pixel
    m = np.array([[False, True, True]])
    r2 = sam(est, ref, mask=m)
    assert (r2.n_pixels, r2.n_excluded) == (1, 1)
    assert r2.radians == pytest.approx(0.0, abs=1e-15)


def test_sam_is_stable_for_tiny_angles() -> None:
    ref = np.ones((200, 1, 1))
    est = ref.copy()
    est[0] += 1e-9  # angle ~ 1e-9 / sqrt(200) * sqrt(199/200)
    exact = math.atan(1e-9 * math.sqrt(199) / (200 + 1e-9))
    assert sam(est, ref).radians == pytest.approx(exact, rel=1e-6)


def test_ergas_of_uniformly_scaled_cube_by_hand() -> None:
    # Each band is constant c_b and the estimate is 1.1 x reference, so RMSE_b / mu_b = 0.1 for every
    # band and ERGAS = 100 * (h/l) * sqrt(mean(0.1^2)) = 100 * 0.25 * 0.1 = 2.5 for a 4x fusion.
    ref = np.stack([np.full((4, 4), c) for c in (0.2, 0.5, 3.0)])
    est = 1.1 * ref
    assert ergas(est, ref, ratio=4) == pytest.approx(2.5, rel=1e-12)
    assert ergas(est, ref, ratio=0.25) == pytest.approx(2.5, rel=1e-12)  # Wald's h/l convention
    assert ergas(est, ref, ratio=1) == pytest.approx(10.0, rel=1e-12)
    # non-constant band by hand: ref = [1, 3], est = 1.1 ref -> RMSE = 0.1 sqrt((1 + 9)/2), mu = 2
    r = np.array([[[1.0, 3.0]]])
    assert ergas(1.1 * r, r, ratio=1) == pytest.approx(100 * 0.1 * math.sqrt(5) / 2, rel=1e-12)
    with pytest.raises(UsageError):
        ergas(est, ref, ratio=None)  # type: ignore[arg-type]


def test_rmse_rase_sre_by_hand() -> None:
    ref = np.array([[[1.0, 2.0]], [[3.0, 4.0]]])  # (2, 1, 2)
    est = ref + np.array([[[1.0, -1.0]], [[0.0, 2.0]]])
    assert rmse(est, ref) == pytest.approx(math.sqrt(6 / 4))
    # RASE = 100 / mu * sqrt(mean_b RMSE_b^2), mu = 2.5, RMSE_1^2 = 1, RMSE_2^2 = 2
    assert rase(est, ref) == pytest.approx(100 / 2.5 * math.sqrt(1.5))
    assert sre(est, ref) == pytest.approx(10 * math.log10(30 / 6))
    assert sre(ref, ref) == math.inf


def test_psnr_matches_skimage_and_cube_psnr_differs(pair: tuple[np.ndarray, np.ndarray]) -> None:
    est, ref = pair
    per_band = [peak_signal_noise_ratio(ref[b], est[b], data_range=1.0) for b in range(ref.shape[0])]
    assert psnr(est, ref, data_range=1.0) == pytest.approx(np.mean(per_band), abs=1e-10)
    np.testing.assert_allclose(psnr(est, ref, 1.0, reduction="none"), per_band, atol=1e-10)
    assert psnr_cube(est, ref, 1.0) == pytest.approx(peak_signal_noise_ratio(ref, est, data_range=1.0), abs=1e-10)
    assert psnr_cube(est, ref, 1.0) != pytest.approx(psnr(est, ref, 1.0), abs=1e-6)
    with pytest.raises(UsageError):
        psnr(est, ref, data_range=None)  # type: ignore[arg-type]


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_ssim_matches_skimage(pair: tuple[np.ndarray, np.ndarray], dtype: type) -> None:
    est, ref = (a.astype(dtype) for a in pair)
    sk = [
        structural_similarity(est[b], ref[b], data_range=1.0, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for b in range(ref.shape[0])
    ]
    tol = 1e-12 if dtype == np.float64 else 1e-6
    assert ssim(est, ref, data_range=1.0) == pytest.approx(np.mean(sk), abs=tol)
    np.testing.assert_allclose(ssim(est, ref, 1.0, reduction="none"), sk, atol=tol)
    assert ssim(ref, ref, 1.0) == pytest.approx(1.0)


def test_ssim_with_large_offset_in_float32_keeps_precision() -> None:
    rng = np.random.default_rng(1)
    ref = 5000 + 100 * rng.random((2, 16, 16))
    est = ref + rng.standard_normal(ref.shape)
    exact = ssim(est, ref, data_range=10000)
    assert ssim(est.astype(np.float32), ref.astype(np.float32), data_range=10000) == pytest.approx(exact, abs=1e-6)


def test_cc_and_uiqi(pair: tuple[np.ndarray, np.ndarray]) -> None:
    est, ref = pair
    expected = np.mean([np.corrcoef(est[b].ravel(), ref[b].ravel())[0, 1] for b in range(ref.shape[0])])
    assert cc(est, ref) == pytest.approx(expected, abs=1e-12)
    assert uiqi(ref, ref) == pytest.approx(1.0)
    # one 2x2 window by hand: x = [1,2,3,4], y = [2,2,4,4]
    x = np.array([[[1.0, 2.0], [3.0, 4.0]]])
    y = np.array([[[2.0, 2.0], [4.0, 4.0]]])
    mx, my, vx, vy, cxy = 2.5, 3.0, 1.25, 1.0, 1.0
    q = 4 * cxy * mx * my / ((vx + vy) * (mx**2 + my**2))
    assert uiqi(x, y, block_size=2) == pytest.approx(q)
    # flat identical windows count as 1 (Wang & Bovik's convention), no NaN
    assert uiqi(np.ones((1, 8, 8)), np.ones((1, 8, 8))) == 1.0


def _cd_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Slow recursive Cayley-Dickson product (a, b) (c, d) = (ac - conj(d) b, da + b conj(c))."""
    n = a.size
    if n == 1:
        return a * b
    h = n // 2
    p, q, r, s = a[:h], a[h:], b[:h], b[h:]
    return np.concatenate([_cd_mul(p, r) - _cd_mul(_cd_conj(s), q), _cd_mul(s, p) + _cd_mul(q, _cd_conj(r))])


def _cd_conj(a: np.ndarray) -> np.ndarray:
    c = -a.copy()
    c[0] = a[0]
    return c


def _q2n_slow(est: np.ndarray, ref: np.ndarray, block: int) -> float:
    """Independent loop implementation of Q2n from Garzelli & Nencini's definition."""
    b, h, w = ref.shape
    d = 1 << math.ceil(math.log2(b))
    qs = []
    for y0 in range(0, h - block + 1, block):
        for x0 in range(0, w - block + 1, block):
            z = np.zeros((block * block, d))
            zh = np.zeros((block * block, d))
            z[:, :b] = ref[:, y0 : y0 + block, x0 : x0 + block].reshape(b, -1).T
            zh[:, :b] = est[:, y0 : y0 + block, x0 : x0 + block].reshape(b, -1).T
            mz, mzh = z.mean(0), zh.mean(0)
            cov = np.mean([_cd_mul(z[i] - mz, _cd_conj(zh[i] - mzh)) for i in range(len(z))], axis=0)
            vz = np.mean(np.sum((z - mz) ** 2, 1))
            vzh = np.mean(np.sum((zh - mzh) ** 2, 1))
            nz, nzh = np.linalg.norm(mz), np.linalg.norm(mzh)
            qs.append(4 * np.linalg.norm(cov) * nz * nzh / ((vz + vzh) * (nz**2 + nzh**2)))
    return float(np.mean(qs))


def test_cayley_dickson_table_is_quaternions_and_octonions_are_normed() -> None:
    s = cayley_dickson_signs(4)
    # i*i = -1, i*j = k, j*i = -k (indices 1, 2, 3)
    assert (s[1, 1], s[1, 2], s[2, 1]) == (-1, 1, -1)
    rng = np.random.default_rng(2)
    a, b = rng.standard_normal((2, 8))
    assert np.linalg.norm(_cd_mul(a, b)) == pytest.approx(np.linalg.norm(a) * np.linalg.norm(b))
    for i in range(8):
        for j in range(8):
            ei, ej = np.eye(8)[i], np.eye(8)[j]
            prod = _cd_mul(ei, ej)
            assert prod[i ^ j] == cayley_dickson_signs(8)[i, j]


@pytest.mark.parametrize("bands", [3, 5])
def test_q2n_identity_and_against_slow_loop(bands: int) -> None:
    rng = np.random.default_rng(bands)
    ref = rng.random((bands, 8, 12)) + 0.5
    est = ref + 0.2 * rng.standard_normal(ref.shape)
    assert q2n(ref, ref, block_size=4) == pytest.approx(1.0, abs=1e-12)
    expected = _q2n_slow(est, ref, 4)
    assert q2n(est, ref, block_size=4) == pytest.approx(expected, abs=1e-12)
    assert 0 < expected < 1


def test_q2n_one_band_is_abs_uiqi_on_blocks() -> None:
    rng = np.random.default_rng(3)
    ref = rng.random((1, 8, 8))
    est = ref + 0.3 * rng.standard_normal(ref.shape)
    assert q2n(est, ref, block_size=8) == pytest.approx(abs(uiqi(est, ref, block_size=8)), abs=1e-12)


def test_torch_and_numpy_inputs_give_the_same_numbers(pair: tuple[np.ndarray, np.ndarray]) -> None:
    est, ref = pair
    te, tr = torch.from_numpy(est), torch.from_numpy(ref)
    assert psnr(te, tr, 1.0) == psnr(est, ref, 1.0)
    assert ssim(te, tr, 1.0) == ssim(est, ref, 1.0)
    assert sam(te, tr).radians == sam(est, ref).radians
    assert ergas(te, tr, 4) == ergas(est, ref, 4)
    assert q2n(te, tr) == q2n(est, ref)
    assert cc(te, tr) == cc(est, ref)
    if torch.cuda.is_available():  # pragma: no cover - GPU runner
        ce, cr = te.cuda(), tr.cuda()
        assert ssim(ce, cr, 1.0) == pytest.approx(ssim(est, ref, 1.0), abs=1e-10)
        assert sam(ce, cr).radians == pytest.approx(sam(est, ref).radians, abs=1e-12)


def test_mask_and_shape_errors(pair: tuple[np.ndarray, np.ndarray]) -> None:
    est, ref = pair
    m = np.zeros(ref.shape[1:], bool)
    m[:10] = True
    assert rmse(est, ref, mask=m) == pytest.approx(rmse(est[:, :10], ref[:, :10]))
    assert psnr(est, ref, 1.0, mask=m) == pytest.approx(psnr(est[:, :10], ref[:, :10], 1.0))
    with pytest.raises(UsageError, match="shape"):
        rmse(est[:, :5], ref)
    with pytest.raises(UsageError, match="mask"):
        rmse(est, ref, mask=m[:5])


def test_torchmetrics_rase_is_inflated_and_sam_nan_on_zero_pixel(pair: tuple[np.ndarray, np.ndarray]) -> None:
    """Documents two torchmetrics 1.9 defects that our definitions avoid (docs/metrics.md, pitfalls)."""
    tm = pytest.importorskip("torchmetrics.functional.image")
    est, ref = pair
    te, tr = torch.from_numpy(est)[None], torch.from_numpy(ref)[None]
    ours = rase(est, ref)
    theirs = float(tm.relative_average_spectral_error(te, tr))
    # torchmetrics divides the already-normalised window mean by window_size^2 again (x64 by default)
    assert theirs > 10 * ours
    ref0 = ref.copy()
    est0 = est.copy()
    ref0[:, 0, 0] = 0.0
    est0[:, 0, 0] = 0.0
    their_sam = float(tm.spectral_angle_mapper(torch.from_numpy(est0)[None], torch.from_numpy(ref0)[None]))
    assert math.isnan(their_sam)
    r = sam(est0, ref0)
    assert math.isfinite(r.radians) and r.n_excluded == 1


def test_full_reference_report_is_json_and_needs_explicit_conventions(pair: tuple[np.ndarray, np.ndarray]) -> None:
    import json

    from hsikit.metrics import full_reference_report

    est, ref = pair
    rep = full_reference_report(est, ref, metrics=("psnr", "ssim", "sam", "ergas", "rmse"), data_range=1.0, ratio=4)
    json.dumps(rep, allow_nan=False)
    assert rep["psnr"] == pytest.approx(psnr(est, ref, 1.0))
    assert rep["sam_degrees"] == pytest.approx(sam(est, ref).degrees)
    with pytest.raises(UsageError, match="data_range"):
        full_reference_report(est, ref)
    assert full_reference_report(ref, ref, metrics=("psnr",), data_range=1.0)["psnr"] == "inf"


def test_agrees_with_torchmetrics_where_torchmetrics_is_correct(pair: tuple[np.ndarray, np.ndarray]) -> None:
    """SAM without zero pixels, whole-cube PSNR, ERGAS (torchmetrics >= 1.x uses 100/ratio) and SSIM."""
    tm = pytest.importorskip("torchmetrics.functional.image")
    est, ref = pair
    te, tr = torch.from_numpy(est.astype(np.float64))[None], torch.from_numpy(ref.astype(np.float64))[None]
    assert sam(est, ref).radians == pytest.approx(float(tm.spectral_angle_mapper(te, tr)), rel=1e-6)
    assert psnr_cube(est, ref, 1.0) == pytest.approx(float(tm.peak_signal_noise_ratio(te, tr, data_range=1.0)), rel=1e-6)
    # torchmetrics' ERGAS is 100 / ratio * sqrt(mean_b (RMSE_b / mean_b)^2) with ratio = low/high (4):
    # ours with the scale factor 4 (or Wald's h/l = 0.25) gives the same number
    theirs = float(tm.error_relative_global_dimensionless_synthesis(te, tr, ratio=4))
    assert ergas(est, ref, 4) == pytest.approx(theirs, rel=1e-6)
    assert ergas(est, ref, 0.25) == pytest.approx(theirs, rel=1e-6)
    their_ssim = float(tm.structural_similarity_index_measure(te, tr, data_range=1.0, gaussian_kernel=True, sigma=1.5, kernel_size=11))
    assert ssim(est, ref, 1.0) == pytest.approx(their_ssim, abs=2e-3)  # torchmetrics pads the border, skimage crops it
