"""Class weights and focal loss against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from sonogan.errors import SonoganInputError
from sonogan.train.losses import LOSSES, build_loss, class_weights_from_labels, focal_loss


def test_class_weights_inverse_frequency() -> None:
    # N / (C * n_c): 4 / (2 * 3) and 4 / (2 * 1)
    assert torch.allclose(class_weights_from_labels([0, 0, 0, 1], 2), torch.tensor([2 / 3, 2.0]))
    # balanced labels give all ones
    assert torch.allclose(class_weights_from_labels(torch.tensor([0, 1, 2, 0, 1, 2]), 3), torch.ones(3))
    with pytest.raises(SonoganInputError, match=r"classes \[2\]"):
        class_weights_from_labels([0, 1, 1], 3)


def test_focal_loss_hand_computed() -> None:
    logits = torch.tensor([[math.log(3.0), 0.0], [0.0, 0.0]])  # p(true) = 0.75 and 0.5
    target = torch.tensor([0, 1])
    l0 = -(0.25 ** 2) * math.log(0.75)
    l1 = -(0.5 ** 2) * math.log(0.5)
    assert float(focal_loss(logits, target, gamma=2.0)) == pytest.approx((l0 + l1) / 2, rel=1e-6)
    w = torch.tensor([1.0, 3.0])
    assert float(focal_loss(logits, target, 2.0, w)) == pytest.approx((1 * l0 + 3 * l1) / 4, rel=1e-6)
    # gamma = 0 is exactly weighted cross-entropy
    assert torch.allclose(focal_loss(logits, target, 0.0, w), F.cross_entropy(logits, target, weight=w))


def test_build_loss_uses_training_label_weights() -> None:
    assert LOSSES.names() == ["ce", "focal", "weighted_ce"]
    train_y = torch.tensor([0, 0, 0, 1])
    logits, target = torch.tensor([[0.2, -0.1], [1.0, 0.5]]), torch.tensor([1, 0])
    wce = build_loss("weighted_ce", train_y, 2)
    expected = F.cross_entropy(logits, target, weight=torch.tensor([2 / 3, 2.0]))
    assert torch.allclose(wce(logits, target), expected)
    assert torch.allclose(build_loss("ce", train_y, 2)(logits, target), F.cross_entropy(logits, target))
    focal = build_loss("focal", train_y, 2, gamma=0.0)
    assert torch.allclose(focal(logits, target), expected)
