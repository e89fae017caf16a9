"""Memorisation: nearest real training image, ratio to real-to-real NN distances, calibrated
threshold, flagged near-copies excluded, the side-by-side panel."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from sonogan.audit.memorisation import (augmented_copies, exclude_flagged, loo_nearest, memorisation_check, nearest,
                                        pixel_embed, plot_memorisation_panel, space_test)
from sonogan.preprocess.fold import Partition


def test_nearest_and_leave_one_out_hand_computed():
    real = np.array([[0.0, 0.0], [3.0, 4.0], [3.0, 0.0]])
    d, idx = nearest(np.array([[3.0, 3.0], [0.0, 1.0]]), real, chunk=1)
    assert d.tolist() == [1.0, 1.0] and idx.tolist() == [1, 0]
    assert loo_nearest(real).tolist() == [3.0, 4.0, 3.0]   # never the point itself


def test_space_test_threshold_from_copies_hand_computed():
    real = np.array([[0.0], [10.0], [20.0]])                 # real-to-real NN distance 10 for each
    copies = np.array([[1.0], [11.0], [21.0]])               # each 1 from its source: ratio 0.1
    res = space_test(real, np.array([[0.5], [5.0], [19.0]]), copies, quantile=0.95)
    assert res.real_nn_median == 10.0 and res.threshold == pytest.approx(0.1)
    assert res.ratio.tolist() == pytest.approx([0.05, 0.5, 0.1])
    assert res.flagged.tolist() == [True, False, False]       # strictly below the threshold
    assert res.nearest.tolist() == [0, 0, 2] and res.real_ratio_below == 0.0
    assert res.summary()["n_flagged"] == 1
    # copies far from their sources (ratios 0.1, 0.1, 0.9) would give a threshold of 0.82: capped
    loose = space_test(real, np.array([[5.0]]), np.array([[9.0], [19.0], [29.0]]), 0.95, max_ratio=0.5)
    assert loose.threshold == 0.5 and loose.ratio[0] == 0.5 and not loose.flagged[0]
    assert space_test(real, np.array([[5.0]]), np.array([[9.0], [19.0], [29.0]]), 0.95, max_ratio=1.0).flagged[0]


def _speckle(n: int, seed: int, size: int = 32) -> np.ndarray:
    """Smooth random images (structure at a few pixels' scale, like anatomy; white noise is not)."""
    noise = np.random.default_rng(seed).normal(size=(n, size, size))
    smooth = np.stack([cv2.GaussianBlur(x, (0, 0), 3) for x in noise])
    smooth = (smooth - smooth.mean()) / smooth.std()
    return np.clip(128 + 50 * smooth, 0, 255).astype(np.uint8)[..., None]


def test_augmented_copies_are_seeded_near_copies():
    real = _speckle(3, 0)
    a, b = augmented_copies(real, copies=2, seed=5), augmented_copies(real, copies=2, seed=5)
    assert a.shape == (6, 32, 32, 1) and a.dtype == np.uint8 and (a == b).all()
    assert not (a[:3] == real).all()
    # each copy is nearer its own source than any other real image in pixel space
    _, idx = nearest(pixel_embed(a), pixel_embed(real))
    assert idx.tolist() == [0, 1, 2, 0, 1, 2]


def test_copies_of_training_images_are_flagged_and_excluded():
    real = _speckle(12, 1)
    new = _speckle(6, 2)
    shifted = np.roll(real[4], 1, axis=1)
    synthetic = np.concatenate([new, real[2:3], shifted[None]])
    ids = [f"syn{k}" for k in range(len(synthetic))]
    mem = memorisation_check(real, synthetic, {"pixel": pixel_embed}, quantile=0.95, copies_per_image=2)
    summary = mem.summary(ids)
    assert summary["flagged_ids"] == ["syn6", "syn7"] and summary["n_flagged"] == 2
    # seeded: 12 of the 24 planted copies (2 per real image) fall under the 0.5 ratio threshold
    assert summary["spaces"]["pixel"]["copies_caught"] == 0.5
    assert summary["spaces"]["pixel"]["threshold_ratio"] == 0.5
    part = Partition(ids, synthetic, synthetic[..., 0], np.zeros(len(ids), int), pd.DataFrame(index=range(len(ids))))
    kept, n = exclude_flagged(part, summary["flagged_ids"])
    assert n == 2 and kept.ids == ids[:6]


def test_panel_is_written(tmp_path):
    real, synthetic = _speckle(6, 3), _speckle(4, 4)
    synthetic[0] = real[1]
    mem = memorisation_check(real, synthetic, {"pixel": pixel_embed})
    path = plot_memorisation_panel(synthetic, real, mem, "pixel", tmp_path / "panel.png", n=3)
    assert path.is_file() and path.stat().st_size > 1000
    assert mem.spaces["pixel"].nearest[0] == 1 and mem.flagged[0]
