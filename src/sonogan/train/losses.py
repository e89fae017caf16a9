"""Classification losses: cross-entropy, class-weighted cross-entropy, softmax focal loss.

Class weights are inverse class frequencies from the TRAINING labels, in scikit-learn's
"balanced" form ``w_c = N / (C * n_c)`` (so a balanced set gets all ones).

Example:
    >>> import torch
    >>> class_weights_from_labels([0, 0, 0, 1], num_classes=2)
    tensor([0.6667, 2.0000])
    >>> loss = build_loss("focal", train_y=[0, 0, 1], num_classes=2, gamma=2.0)
    >>> float(loss(torch.zeros(1, 2), torch.tensor([1]))) > 0
    True
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight
from torch import nn

from sonogan.errors import SonoganInputError
from sonogan.registry import Registry

LOSSES: Registry[nn.Module] = Registry("loss")


def class_weights_from_labels(y: Sequence[int] | np.ndarray | torch.Tensor, num_classes: int) -> torch.Tensor:
    """Inverse-frequency weights (C,) from training labels; every class must occur."""
    y = np.asarray(y.cpu() if isinstance(y, torch.Tensor) else y, dtype=int)
    counts = np.bincount(y, minlength=num_classes)
    if len(counts) > num_classes or np.any(counts == 0):
        missing = [c for c in range(num_classes) if counts[c] == 0]
        raise SonoganInputError("training labels", f"classes {missing} have no training images",
                                "check the split: every class needs images in each training partition")
    w = compute_class_weight("balanced", classes=np.arange(num_classes), y=y)
    return torch.as_tensor(w, dtype=torch.float32)


def focal_loss(logits: torch.Tensor, target: torch.Tensor, gamma: float = 2.0,
               weight: torch.Tensor | None = None) -> torch.Tensor:
    """Softmax focal loss (Lin et al. 2017), weighted mean over the batch.

    ``l_i = -w[y_i] (1 - p_i)^gamma log p_i`` with ``p_i`` the probability of the true class,
    reduced as ``sum(l_i) / sum(w[y_i])`` -- the same normalisation as torch's weighted
    cross-entropy, so gamma=0 gives exactly ``F.cross_entropy(..., weight=w)``.
    Hand-written because torchvision's focal loss is the binary sigmoid form and MONAI's
    needs one-hot targets and normalises class weights differently.
    """
    logp = F.log_softmax(logits.float(), dim=1).gather(1, target[:, None]).squeeze(1)
    w = torch.ones_like(logp) if weight is None else weight.to(logp.device)[target]
    per_sample = -w * (1.0 - logp.exp()).pow(gamma) * logp
    return per_sample.sum() / w.sum()


class FocalLoss(nn.Module):
    def __init__(self, gamma: float = 2.0, weight: torch.Tensor | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        return focal_loss(logits, target, self.gamma, self.weight)


@LOSSES.register("ce")
def _ce(train_y: Any, num_classes: int, label_smoothing: float = 0.0, **_: Any) -> nn.Module:
    return nn.CrossEntropyLoss(label_smoothing=label_smoothing)


@LOSSES.register("weighted_ce")
def _weighted_ce(train_y: Any, num_classes: int, label_smoothing: float = 0.0, **_: Any) -> nn.Module:
    return nn.CrossEntropyLoss(weight=class_weights_from_labels(train_y, num_classes), label_smoothing=label_smoothing)


@LOSSES.register("focal")
def _focal(train_y: Any, num_classes: int, gamma: float = 2.0, **_: Any) -> nn.Module:
    # focal loss is used with inverse-frequency weights: it targets the same imbalance
    return FocalLoss(gamma=gamma, weight=class_weights_from_labels(train_y, num_classes))


def build_loss(name: str, train_y: Any, num_classes: int, gamma: float = 2.0, label_smoothing: float = 0.0) -> nn.Module:
    """The loss module ``name`` ("ce" | "weighted_ce" | "focal") for these training labels."""
    return LOSSES.create(name, train_y=train_y, num_classes=num_classes, gamma=gamma, label_smoothing=label_smoothing)
