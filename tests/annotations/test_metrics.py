"""Removal metrics against hand-computed values."""

from __future__ import annotations

import math

import numpy as np
import pytest

from sonogan.annotations.metrics import pair_metrics, psnr, region_mae, region_mse, region_psnr, ssim


def test_psnr_hand_case():
    target = np.zeros((2, 2))
    pred = np.array([[0.1, 0.0], [0.0, 0.0]])            # MSE 0.01 / 4 = 0.0025
    assert psnr(pred, target) == pytest.approx(10 * math.log10(1 / 0.0025))   # 26.02 dB
    assert psnr(pred * 255, target, data_range=255) == pytest.approx(26.0206, abs=1e-3)
    assert psnr(target, target) == math.inf


def test_region_errors_only_count_masked_pixels_of_every_channel():
    target = np.zeros((2, 2, 3))
    pred = target.copy()
    pred[0, 0] = [0.2, 0.4, 0.0]     # inside the mask
    pred[1, 1] = 1.0                  # outside: must not count
    mask = np.array([[1, 1], [0, 0]], np.uint8)
    # six masked values: 0.2, 0.4, 0 and three zeros -> MSE (0.04 + 0.16) / 6, MAE 0.6 / 6
    assert region_mse(pred, target, mask) == pytest.approx(0.2 / 6)
    assert region_mae(pred, target, mask) == pytest.approx(0.1)
    assert region_psnr(pred, target, mask) == pytest.approx(10 * math.log10(6 / 0.2))
    assert math.isnan(region_psnr(pred, target, np.zeros((2, 2))))
    with pytest.raises(ValueError, match="does not match"):
        region_mse(pred, target, np.ones((3, 3)))


def test_ssim_is_one_for_identical_and_lower_for_noise():
    rng = np.random.default_rng(0)
    img = rng.random((32, 32))
    assert ssim(img, img) == pytest.approx(1.0)
    assert ssim(np.clip(img + rng.normal(0, 0.3, img.shape), 0, 1), img) < 0.8


def test_pair_metrics_has_every_key():
    img = np.zeros((16, 16, 3))
    out = pair_metrics(img + 0.1, img, np.ones((16, 16)))
    assert set(out) == {"psnr", "ssim", "region_psnr", "region_mae"}
    assert out["psnr"] == pytest.approx(20.0) and out["region_mae"] == pytest.approx(0.1)
