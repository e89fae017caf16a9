"""BRISQUE (brisque package), PIQE (hand-checked blocks) and NIQE (known distributions)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from sonogan.audit.niqe import aggd_fit_rows, fit_niqe, ggd_fit_rows, niqe_distance, niqe_features, niqe_score
from sonogan.audit.quality import piqe_block_score, piqe_from_mscn, piqe_score, brisque_score, quality_summary


def speckle(size: int = 64, seed: int = 0) -> np.ndarray:
    """An ultrasound-like test image: smooth anatomy times Rayleigh speckle, uint8."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] / size
    anatomy = 0.35 + 0.4 * np.exp(-((xx - 0.5) ** 2 + (yy - 0.55) ** 2) / 0.05)
    anatomy[(xx - 0.45) ** 2 + (yy - 0.5) ** 2 < 0.02] = 0.08  # an anechoic cyst
    img = anatomy * rng.rayleigh(0.8, (size, size))
    return np.clip(cv2.GaussianBlur(img, (0, 0), 0.7) * 255, 0, 255).astype(np.uint8)


def test_brisque_rises_with_blur():
    img = speckle(128)
    scores = [brisque_score(cv2.GaussianBlur(img, (0, 0), s) if s else img) for s in (0, 1.5, 3)]
    assert scores[0] < scores[1] < scores[2]
    # grey, grey with a channel axis and the same grey as RGB are one image to BRISQUE
    assert brisque_score(img) == pytest.approx(brisque_score(np.stack([img] * 3, -1)))
    assert brisque_score(img) == pytest.approx(brisque_score(img[..., None]))


def test_piqe_uniform_image_scores_100():
    # no block is active: (0 + 1) / (0 + 1) * 100 (MATLAB piqe's documented behaviour)
    assert piqe_score(np.full((40, 40), 77, np.uint8)) == 100.0
    assert piqe_score(np.zeros((16, 16, 3), np.uint8)) == 100.0


def test_piqe_block_hand_checked():
    # vertical stripes of +-1: variance 256/255 (active); the left edge is constant (a flat
    # segment: noticeable artifact, scores 1 - var); centre columns 7, 8 and the surround both
    # hold +-1 half and half: sd sqrt(32/31) and sqrt(224/223), ratio 1.0137, block sd 1.00196,
    # beta = |1.00196 - 1.0137| / 1.0137 = 0.0116 < sd / 2: noise, scores + var. Sum: exactly 1.
    block = np.tile(np.where(np.arange(16) % 2 == 0, 1.0, -1.0), (16, 1))
    active, score = piqe_block_score(block)
    assert active and score == pytest.approx(1.0)
    # one such block and one inactive (all-zero) block: 100 * (1 + 1) / (1 + 1)
    assert piqe_from_mscn(np.concatenate([block, np.zeros((16, 16))], axis=1)) == pytest.approx(100.0)
    # a block of variance 0.1 or less is not active
    assert piqe_block_score(np.full((16, 16), 0.3)) == (False, 0.0)


def test_piqe_block_noise_without_artifact():
    # checkerboard +-a: no flat edge segment; centre and surround alike -> noise only: score = var
    a = 0.8
    block = a * np.where((np.add.outer(np.arange(16), np.arange(16)) % 2) == 0, 1.0, -1.0)
    var = a * a * 256 / 255
    assert piqe_block_score(block) == (True, pytest.approx(var))


def test_piqe_rises_with_heavy_blur_and_noise():
    img = speckle(128)
    assert piqe_score(cv2.GaussianBlur(img, (0, 0), 3)) > piqe_score(img)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 30, img.shape), 0, 255).astype(np.uint8)
    assert piqe_score(noisy) > piqe_score(img)


def test_ggd_and_aggd_fits_recover_known_shapes():
    rng = np.random.default_rng(0)
    shape, var = ggd_fit_rows(rng.normal(0, 2, 200_000)[None])[0]
    assert shape == pytest.approx(2.0, abs=0.03) and var == pytest.approx(4.0, rel=0.02)
    assert ggd_fit_rows(rng.laplace(0, 1, 200_000)[None])[0, 0] == pytest.approx(1.0, abs=0.03)
    # an AGGD of shape 2 with left sd 1 and right sd 2: P(x < 0) = 1 / 3; mean = (2 - 1) / sqrt(pi / 2) * ... = 0.798
    x = np.concatenate([-np.abs(rng.normal(0, 1, 100_000)), np.abs(rng.normal(0, 2, 200_000))])
    shape, mean, left, right = aggd_fit_rows(x[None])[0]
    assert shape == pytest.approx(2.0, abs=0.03) and left == pytest.approx(1.0, rel=0.02)
    assert right == pytest.approx(4.0, rel=0.02) and mean == pytest.approx(np.sqrt(2 / np.pi), rel=0.03)


def test_niqe_distance_hand_computed():
    # identity covariances: (I + I) / 2 = I, distance = |(3, 4)| = 5
    assert niqe_distance(np.zeros(2), np.eye(2), np.array([3.0, 4.0]), np.eye(2)) == 5.0
    # covariances 2I and 2I: sqrt(25 / 2)
    assert niqe_distance(np.zeros(2), 2 * np.eye(2), np.array([3.0, 4.0]), 2 * np.eye(2)) == pytest.approx(np.sqrt(12.5))


def test_niqe_features_and_domain_model():
    imgs = np.stack([speckle(64, s) for s in range(12)])[..., None]
    f, sharp = niqe_features(imgs[0], patch=16)
    assert f.shape == (16, 36) and sharp.shape == (16,)
    model = fit_niqe(imgs, patch=16)
    assert model.mean.shape == (36,) and model.cov.shape == (36, 36) and 0 < model.n_patches <= 12 * 16
    own = np.mean([niqe_score(model, im) for im in imgs[:4]])
    blurred = np.mean([niqe_score(model, cv2.GaussianBlur(im[..., 0], (0, 0), 2)) for im in imgs[:4]])
    assert blurred > own


def test_quality_summary_shape():
    imgs = np.stack([speckle(64, s) for s in range(4)])[..., None]
    out = quality_summary(imgs, fit_niqe(imgs))
    assert set(out) == {"brisque", "piqe", "niqe"} and all(v["n"] == 4 for v in out.values())
