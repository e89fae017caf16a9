"""FID / KID through torchmetrics with precomputed features; PRDC against hand-computed cases."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.linalg

from sonogan.audit.fidelity import fid_kid, knn_radii, prdc


def test_fid_matches_the_closed_form_for_hand_built_sets():
    # real: mean 0, covariance I (2-D); fake: the same points shifted by (3, 4): FID = |shift|^2 = 25
    real = np.array([[1.0, 0], [-1, 0], [0, 1], [0, -1]]) * np.sqrt(1.5)
    fake = real + np.array([3.0, 4.0])
    out = fid_kid(real, fake, kid_subsets=3)
    assert out["fid"] == pytest.approx(25.0, abs=1e-6)
    # scaled covariance: FID = Tr(S1 + S2 - 2 sqrt(S1 S2)) = 2 * (1 + 4 - 2 * 2) = 2
    out = fid_kid(real, 2 * real, kid_subsets=3)
    s1 = np.cov(real, rowvar=False)
    expected = np.trace(s1 + 4 * s1 - 2 * scipy.linalg.sqrtm(4 * s1 @ s1).real)
    assert out["fid"] == pytest.approx(expected, abs=1e-6) and expected == pytest.approx(2.0)


def test_kid_is_seeded_and_orders_distributions():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(60, 4))
    near, far = rng.normal(size=(60, 4)), rng.normal(size=(60, 4)) + 2
    a, b = fid_kid(real, near, kid_subsets=10, seed=1), fid_kid(real, near, kid_subsets=10, seed=1)
    assert a == b and a["kid_subset_size"] == 60
    assert fid_kid(real, far, kid_subsets=10)["kid_mean"] > a["kid_mean"] + 0.5
    with pytest.raises(ValueError):
        fid_kid(real[:1], near)


def test_prdc_hand_computed():
    real = np.array([[0.0], [1.0], [2.0], [10.0]])
    fake = np.array([[0.5], [20.0]])
    # radii (k=1): real 1, 1, 1, 8; fake 19.5, 19.5
    assert knn_radii(real, 1).tolist() == [1.0, 1.0, 1.0, 8.0]
    # precision: 0.5 lies in the balls of 0 and 1 (d 0.5 < 1); 20 in none -> 1/2
    # recall: every real point lies within 19.5 of 0.5 -> 1 (the outlier's huge ball fools recall)
    # density: 2 balls hold 0.5, none holds 20 -> (2 + 0) / (1 * 2) = 1
    # coverage: real 0 and 1 have a fake within radius 1; 2 (d 1.5) and 10 (d 9.5 > 8) do not -> 1/2
    assert prdc(real, fake, k=1) == {"precision": 0.5, "recall": 1.0, "density": 1.0, "coverage": 0.5}


def test_prdc_identical_sets_and_k():
    x = np.random.default_rng(0).normal(size=(30, 3))
    out = prdc(x, x.copy(), k=3)
    assert out["precision"] == 1.0 and out["recall"] == 1.0 and out["coverage"] == 1.0
    with pytest.raises(ValueError, match="more than k"):
        knn_radii(x[:3], 3)
