"""Transforms are pure (input unchanged) and random ones are seeded."""

from __future__ import annotations

import numpy as np

from sonogan.preprocess import transforms as T


def test_every_transform_leaves_its_input_unchanged():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 255, (30, 40, 3), dtype=np.uint8)
    img[:3] = 0
    before = img.copy()
    for t in [T.MedianFilter(3), T.ScanArea(), T.Resize(16), T.ToGrayscale(), T.ToRGB(), T.CLAHE(),
              T.RandomHorizontalFlip(p=1.0, seed=1), T.Compose([T.ToGrayscale(), T.Resize(8)])]:
        out = t(img)
        assert out is not img and not np.shares_memory(out, img)
        assert (img == before).all(), type(t).__name__


def test_compose_order_and_seeded_flip():
    img = np.zeros((10, 20, 3), np.uint8)
    img[:, :5] = 200
    out = T.Compose([T.ToGrayscale(), T.Resize((5, 10), mode="stretch")])(img)
    assert out.shape == (5, 10)
    a = [T.RandomHorizontalFlip(0.5, seed=3)(img)[0, 0, 0] for _ in range(1)]
    f1, f2 = T.RandomHorizontalFlip(0.5, seed=3), T.RandomHorizontalFlip(0.5, seed=3)
    seq1 = [int(f1(img)[0, 0, 0]) for _ in range(20)]
    seq2 = [int(f2(img)[0, 0, 0]) for _ in range(20)]
    assert seq1 == seq2 and set(seq1) == {0, 200} and a
    assert (T.RandomHorizontalFlip(1.0)(img)[:, -5:] == 200).all()
