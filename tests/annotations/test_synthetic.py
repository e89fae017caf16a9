"""The annotation generator: deterministic per seed, marks only where the mask says, any image."""

from __future__ import annotations

import numpy as np
import pytest

from sonogan.annotations.synthetic import AnnotationConfig, annotate, downsized_pair, edge_points


def scan(h: int = 96, w: int = 128, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    img = rng.integers(30, 140, (h, w, 3), dtype=np.uint8)
    lesion = np.zeros((h, w), np.uint8)
    lesion[30:70, 40:90] = 1
    return img, lesion


def test_same_seed_same_pair_and_other_seed_other_marks():
    img, lesion = scan()
    a = annotate(img, np.random.default_rng(7), lesion)
    b = annotate(img, np.random.default_rng(7), lesion)
    c = annotate(img, np.random.default_rng(8), lesion)
    assert np.array_equal(a.annotated, b.annotated) and np.array_equal(a.mask, b.mask)
    assert not np.array_equal(a.annotated, c.annotated)


def test_mask_is_exactly_the_changed_pixels_and_input_untouched():
    img, lesion = scan()
    before = img.copy()
    for seed in range(10):
        pair = annotate(img, np.random.default_rng(seed), lesion)
        assert np.array_equal(img, before) and pair.clean is img
        assert pair.mask.dtype == np.uint8 and pair.mask.shape == img.shape[:2]
        assert np.array_equal(pair.mask.astype(bool), (pair.annotated != img).any(axis=2))
        assert 0 < pair.mask.mean() < 0.5   # some marks, never a repainted image


def test_only_the_asked_kind_of_mark_is_drawn():
    img, lesion = scan()
    text_only = AnnotationConfig(p_arrow=0, p_text=1, p_calliper=0, p_readout=0)
    nothing_asked = AnnotationConfig(p_arrow=0, p_text=0, p_calliper=0, p_readout=0)
    a = annotate(img, np.random.default_rng(3), lesion, text_only)
    b = annotate(img, np.random.default_rng(3), lesion, nothing_asked)   # falls back to one label
    assert a.mask.any() and b.mask.any()


@pytest.mark.parametrize("shape", [(80, 80), (80, 80, 1)])
def test_grey_images_stay_grey(shape):
    img = np.full(shape, 50, np.uint8)
    pair = annotate(img, np.random.default_rng(0))
    assert pair.annotated.shape == img.shape and pair.mask.any()


def test_edges_follow_the_mask_or_fall_back_inside_the_image():
    _, lesion = scan()
    pts = edge_points(lesion, lesion.shape, np.random.default_rng(0))
    assert pts[:, 0].min() == 40 and pts[:, 0].max() == 89 and pts[:, 1].min() == 30 and pts[:, 1].max() == 69
    for mask in (None, np.zeros_like(lesion)):
        pts = edge_points(mask, (96, 128), np.random.default_rng(1))
        assert len(pts) > 8 and (pts >= 0).all() and (pts[:, 0] < 128).all() and (pts[:, 1] < 96).all()


def test_downsized_pair_shrinks_both_and_recomputes_the_mask():
    img, lesion = scan()
    pair = downsized_pair(img, np.random.default_rng(0), 32, lesion)
    assert pair.clean.shape == pair.annotated.shape == (32, 32, 3) and pair.mask.shape == (32, 32)
    assert np.array_equal(pair.mask.astype(bool), (pair.annotated != pair.clean).any(axis=2))
    assert np.array_equal(downsized_pair(img, np.random.default_rng(0), 32, lesion).annotated, pair.annotated)
