"""Dice / IoU against hand-counted masks, the empty-mask convention, pooled vs mean, CIs."""

from __future__ import annotations

import numpy as np
import pytest

from sonogan.evaluate.segmentation import (dice, iou, mask_counts, metrics_from_counts, segmentation_ci,
                                           segmentation_gain, segmentation_metrics)


def _masks() -> tuple[np.ndarray, np.ndarray]:
    true = np.zeros((3, 4, 4), bool)
    pred = np.zeros((3, 4, 4), bool)
    true[0, :2, :2] = True            # 4 px
    pred[0, 1:3, 1:3] = True          # 4 px, overlap 1 (pixel 1,1)
    true[1, :, :] = True              # 16 px
    pred[1, :, :2] = True             # 8 px, all inside
    # image 2: both empty
    return true, pred


def test_hand_counted_per_image() -> None:
    true, pred = _masks()
    # image 0: inter 1, |P|=|T|=4 -> dice 2/8, union 7 -> iou 1/7
    # image 1: inter 8, |P|=8, |T|=16 -> dice 16/24, union 16 -> iou 1/2
    # image 2: both empty -> 1, 1
    np.testing.assert_allclose(dice(pred, true), [2 / 8, 16 / 24, 1.0])
    np.testing.assert_allclose(iou(pred, true), [1 / 7, 1 / 2, 1.0])


def test_pooled_and_mean() -> None:
    true, pred = _masks()
    m = segmentation_metrics(true, pred)
    assert m["mean_dice"] == pytest.approx((2 / 8 + 16 / 24 + 1) / 3)
    assert m["mean_iou"] == pytest.approx((1 / 7 + 1 / 2 + 1) / 3)
    # pooled: inter 9, |P| 12, |T| 20, union 23
    assert m["pooled_dice"] == pytest.approx(18 / 32)
    assert m["pooled_iou"] == pytest.approx(9 / 23)


def test_empty_prediction_of_a_lesion_scores_zero() -> None:
    true = np.zeros((4, 4), bool)
    true[0, 0] = True
    assert dice(np.zeros((4, 4), bool), true).tolist() == [0.0]
    assert iou(true, true).tolist() == [1.0]


def test_shape_mismatch_raises() -> None:
    with pytest.raises(ValueError, match="differ in shape"):
        dice(np.zeros((2, 4, 4), bool), np.zeros((2, 4, 5), bool))


def test_bootstrap_ci_by_hand_and_seeded() -> None:
    true = np.zeros((4, 4, 4), bool)
    true[:, :2, :2] = True
    pred = true.copy()
    pred[0] = False  # IoU 0 on image 0, 1 on the others: mean IoU 3/4
    # seed 0 draws the images [3,2,2,1], [1,0,0,0], [0,3,2,3], [2,2,3,2]: mean IoUs 1, 1/4, 3/4, 1;
    # sorted 0.25, 0.75, 1, 1, linear percentiles at positions 0.75 and 2.25 (ci 0.5)
    res = segmentation_ci(true, pred, n_resamples=4, seed=0, ci=0.5)
    assert res["mean_iou"] == pytest.approx((0.75, 0.25 + 0.75 * 0.5, 1.0))
    assert segmentation_ci(true, pred, n_resamples=4, seed=0, ci=0.5)["mean_iou"] == res["mean_iou"]


def test_counts_give_the_same_metrics_and_a_paired_gain() -> None:
    true, pred = _masks()
    assert metrics_from_counts(mask_counts(pred, true)) == segmentation_metrics(true, pred)
    # B = the truth itself: the gain in mean IoU is 1 - mean IoU of A, on every resample >= 0
    res = segmentation_gain(true, pred, true, n_resamples=100, seed=0)
    gain, low, high, _p = res["mean_iou"]
    assert gain == pytest.approx(1 - (1 / 7 + 1 / 2 + 1) / 3) and low >= 0
