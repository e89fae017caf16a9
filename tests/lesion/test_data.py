"""Cascade crops (loose frame, empty-mask fallback), mask flags and batch tensors."""

from __future__ import annotations

import numpy as np
import torch

from sonogan.lesion.data import lesion_crops, resize_masks, upsample_probs
from sonogan.train.augment import augment_pair
from sonogan.train.config import AugmentConfig


def test_crop_follows_the_mask_with_its_margin() -> None:
    images = np.zeros((1, 40, 40, 1), np.uint8)
    images[0, 10:20, 10:30] = 200          # the lesion's pixels
    masks = np.zeros((1, 40, 40), bool)
    masks[0, 10:20, 10:30] = True          # 10 x 20 box; margin 0.5 -> rows 5..25, cols 0..40
    crops, fallback = lesion_crops(images, masks, margin=0.5, size=20)
    assert not fallback[0]
    # a 20 x 40 crop padded to 20 x 20: 10 rows of image centred, the lesion in its middle half
    row = crops[0, :, :, 0]
    assert row[:5].max() == 0 and row[15:].max() == 0
    assert row[8:12, 6:14].min() == 200 and row[8:12, :4].max() == 0


def test_empty_predicted_mask_falls_back_to_the_whole_image() -> None:
    images = np.random.default_rng(0).integers(0, 255, (2, 32, 32, 3), dtype=np.uint8)
    masks = np.zeros((2, 32, 32), bool)
    masks[1, 4:8, 4:8] = True
    crops, fallback = lesion_crops(images, masks, margin=0.15, size=32)
    assert fallback.tolist() == [True, False]
    np.testing.assert_array_equal(crops[0], images[0])   # the whole scan area, unchanged at the same size


def test_mask_resizing_stays_binary() -> None:
    masks = np.zeros((1, 64, 64), np.uint8)
    masks[0, :32] = 1
    out = resize_masks(masks, 16)
    assert out.shape == (1, 1, 16, 16) and set(out.unique().tolist()) == {0.0, 1.0}
    assert upsample_probs(np.full((1, 8, 8), 0.7, np.float32), 16).shape == (1, 16, 16)


def test_augmentation_moves_image_and_mask_together() -> None:
    image = torch.zeros(4, 1, 32, 32)
    image[:, :, 4:12, 4:12] = 5.0
    mask = (image > 0).float()
    cfg = AugmentConfig(hflip=True, vflip=True, rotation=30.0, translate=0.1)
    img2, mask2 = augment_pair(image, mask, cfg, torch.Generator().manual_seed(0))
    assert set(mask2.unique().tolist()) <= {0.0, 1.0}
    inside = img2[mask2.bool()]
    assert float(inside.mean()) > 4.0   # the moved mask still covers the moved lesion
    assert not torch.equal(mask2, mask)
