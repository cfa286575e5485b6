"""PSNR/SSIM against values computed by hand."""

import math

import numpy as np
import pytest

from daeflow.quality import metrics


def test_psnr_matches_hand_computation_per_image():
    clean = np.zeros((2, 4, 4, 1))
    estimate = clean.copy()
    estimate[0] += 10  # MSE 100 on a 0-255 scale
    estimate[1, 0, 0, 0] = 255  # MSE 255**2 / 16
    values = metrics.psnr(clean, estimate, 255)
    assert values[0] == pytest.approx(10 * math.log10(255**2 / 100))
    assert values[1] == pytest.approx(10 * math.log10(16))


def test_mean_psnr_is_a_mean_of_images_not_of_a_batch_mse():
    clean = np.zeros((2, 4, 4, 1))
    estimate = clean.copy()
    estimate[0] += 1
    estimate[1] += 100
    per_image = metrics.psnr(clean, estimate, 255)
    batch_mse_psnr = 10 * math.log10(255**2 / np.mean((estimate - clean) ** 2))
    assert per_image.mean() == pytest.approx((48.1308 + 8.1308) / 2, abs=1e-3)
    assert per_image.mean() != pytest.approx(batch_mse_psnr)


def test_exact_reproduction_is_capped_not_infinite():
    clean = np.random.default_rng(0).uniform(0, 1, (3, 8, 8, 1))
    values = metrics.psnr(clean, clean, 1.0)
    assert np.all(values == metrics.MAX_PSNR)
    assert np.isfinite(values.mean())


def test_data_range_is_explicit():
    clean = np.zeros((1, 4, 4, 1))
    estimate = clean + 1
    assert metrics.psnr(clean, estimate, 255)[0] == pytest.approx(48.1308, abs=1e-3)
    assert metrics.psnr(clean, estimate, 65535)[0] == pytest.approx(96.3294, abs=1e-3)


def test_ssim_of_identical_images_is_one_and_of_constant_shift_by_hand():
    rng = np.random.default_rng(1)
    clean = rng.uniform(0, 1, (2, 16, 16, 3))
    assert metrics.ssim(clean, clean, 1.0) == pytest.approx([1.0, 1.0])
    # A constant image against a shifted constant: only the luminance term is left,
    # (2*mu_x*mu_y + C1) / (mu_x**2 + mu_y**2 + C1) with C1 = (0.01 * R)**2.
    flat = np.full((1, 16, 16, 1), 0.5)
    shifted = flat + 0.1
    c1 = (0.01 * 1.0) ** 2
    expected = (2 * 0.5 * 0.6 + c1) / (0.5**2 + 0.6**2 + c1)
    assert metrics.ssim(flat, shifted, 1.0)[0] == pytest.approx(expected, rel=1e-6)


def test_estimates_are_clipped_to_the_data_range():
    clean = np.ones((1, 4, 4, 1))
    overshoot = clean + 0.5
    assert metrics.psnr(clean, overshoot, 1.0)[0] == metrics.MAX_PSNR


def test_mse_psnr_and_ssim_all_score_the_clipped_estimate():
    from daeflow.quality.scores import score

    clean = np.full((1, 8, 8, 1), 0.9)
    overshoot = clean + 0.3  # displayed as 1.0: an error of 0.1 everywhere
    scores = score(clean, overshoot)
    assert scores.mse[0] == pytest.approx(0.01)
    assert scores.psnr[0] == pytest.approx(20.0)
