"""Loss objects for supervised training: what one batch costs, and how a whole set is scored.

The loop (:mod:`sonogan.train.loop`) knows nothing about labels, masks or heads: it hands a
batch dict (``{"image": (B,C,H,W), "label": (B,), ...}``) to the task and gets back the loss
and the number of correct predictions. Segmentation and multitask models plug in as new tasks
(a mask term, a second head) without touching the loop, as the GAN loop's loss objects do.

Example:
    >>> import torch
    >>> from torch import nn
    >>> task = ClassificationTask(nn.CrossEntropyLoss())
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    >>> batch = {"image": torch.zeros(3, 1, 2, 2), "label": torch.tensor([0, 1, 1])}
    >>> loss, correct = task.batch_loss(model, batch)
    >>> float(loss.detach()) > 0, int(correct) in (0, 1, 2, 3)
    (True, True)
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sonogan.registry import Registry
from sonogan.train.losses import build_loss

TASKS: Registry["ClassificationTask"] = Registry("training task")


class ClassificationTask:
    """Logits from ``model(batch["image"])``; the criterion (CE, weighted CE, focal) on them."""

    def __init__(self, criterion: nn.Module) -> None:
        self.criterion = criterion

    def to(self, device: torch.device) -> "ClassificationTask":
        self.criterion = self.criterion.to(device)
        return self

    def batch_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, number of correct predictions) of one batch; runs under the caller's autocast."""
        logits = model(batch["image"])
        loss = self.criterion(logits.float(), batch["label"])
        return loss, (logits.argmax(1) == batch["label"]).sum()

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: dict[str, torch.Tensor], batch_size: int = 256) -> tuple[float, float]:
        """(loss, accuracy) over the whole set, eval mode; the loss is computed once on all logits."""
        model.eval()
        device = next(model.parameters()).device
        x, y = data["image"], data["label"].to(device)
        logits = torch.cat([model(x[i:i + batch_size].to(device)).float() for i in range(0, x.shape[0], batch_size)])
        return float(self.criterion(logits, y)), float((logits.argmax(1) == y).float().mean())


@TASKS.register("classification")
def _classification(loss: str, train_y: Any, num_classes: int, gamma: float = 2.0, label_smoothing: float = 0.0,
                    **_: Any) -> ClassificationTask:
    return ClassificationTask(build_loss(loss, train_y, num_classes, gamma=gamma, label_smoothing=label_smoothing))


def build_task(name: str, loss: str, train_y: Any, num_classes: int, gamma: float = 2.0,
               label_smoothing: float = 0.0) -> ClassificationTask:
    """The task ``name`` with its loss built from the training labels (class weights)."""
    return TASKS.create(name, loss=loss, train_y=train_y, num_classes=num_classes, gamma=gamma,
                        label_smoothing=label_smoothing)
