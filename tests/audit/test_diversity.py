"""Mean pairwise (MS-)SSIM within a set: torchmetrics, scales fitted to the image size."""

from __future__ import annotations

import numpy as np
import pytest

from sonogan.audit.diversity import MS_SSIM_BETAS, diversity, ms_ssim_betas, pairwise_similarity, random_pairs


def test_scales_follow_torchmetrics_rule_and_sum_to_one():
    assert ms_ssim_betas(160) == MS_SSIM_BETAS          # five scales fit
    assert len(ms_ssim_betas(64)) == 4 and len(ms_ssim_betas(32)) == 3
    for size in (32, 64, 160):
        assert sum(ms_ssim_betas(size)) == pytest.approx(1.0, abs=1e-3)


def test_pairs_are_distinct_and_seeded():
    p = random_pairs(5, 100, seed=0)
    assert len(p) == 10 and (p[:, 0] < p[:, 1]).all()        # all C(5, 2) pairs, i < j
    assert (random_pairs(50, 20, seed=3) == random_pairs(50, 20, seed=3)).all()


def test_identical_images_score_one_and_noise_scores_low():
    same = np.repeat(np.random.default_rng(0).integers(0, 255, (1, 64, 64, 1), dtype=np.uint8), 4, axis=0)
    out = pairwise_similarity(same, n_pairs=6)
    assert out["ssim"] == pytest.approx(1.0) and out["ms_ssim"] == pytest.approx(1.0) and out["n_pairs"] == 6
    noise = np.random.default_rng(1).integers(0, 255, (6, 64, 64, 3), dtype=np.uint8)
    assert pairwise_similarity(noise)["ssim"] < 0.1


def test_collapsed_synthetic_set_is_less_diverse_than_real():
    rng = np.random.default_rng(2)
    real = rng.integers(0, 255, (8, 32, 32, 1), dtype=np.uint8)
    collapsed = np.clip(real[:1].astype(int) + rng.integers(-3, 4, (8, 32, 32, 1)), 0, 255).astype(np.uint8)
    out = diversity(real, collapsed, n_pairs=20)
    assert out["synthetic"]["ms_ssim"] > out["real"]["ms_ssim"] + 0.5
