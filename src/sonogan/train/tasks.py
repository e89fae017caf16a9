"""Task objects for supervised training: what one batch costs, what an epoch reports, how a
whole set is scored, and which score the loop watches.

The loop (:mod:`sonogan.train.supervised`) knows nothing about labels, masks or heads: it hands
a batch dict (``{"image": (B,C,H,W), "label": (B,), ...}``) to the task's ``batch_loss`` and
gets back the loss to step on and the epoch sums of the task's ``metrics`` (``name -> (sum,
weight)``: the epoch's value is the sum over batches divided by the summed weights); a
validation set goes to ``evaluate`` (``name -> value``) and the loop stops early on
``monitor`` (lower is better). Tasks: ``classification`` (:class:`ClassificationTask`),
``segmentation``, ``multitask``, ``lesion-classification`` (with clinical fusion when the batch
carries ``"clinical"``) and ``cgan-segmentation`` (:class:`LesionTask`, :class:`CGanSegmentationTask`;
their batches add ``"mask"`` (B,1,H,W) and ``"has_mask"`` (B,)); the annotation remover's task
lives with it (:class:`sonogan.annotations.train.RemoverTask`).

Example:
    >>> import torch
    >>> from torch import nn
    >>> task = ClassificationTask(nn.CrossEntropyLoss())
    >>> model = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    >>> batch = {"image": torch.zeros(3, 1, 2, 2), "label": torch.tensor([0, 1, 1])}
    >>> loss, sums = task.batch_loss(model, batch)
    >>> sorted(sums), sums["acc"][1]
    (['acc', 'loss'], 3)
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from monai.losses import DiceLoss
from torch import nn

from sonogan.models.segmentation import MaskDiscriminator
from sonogan.registry import Registry
from sonogan.train.losses import build_loss

Sums = dict[str, tuple[torch.Tensor, float]]


class Task(abc.ABC):
    """The interface the supervised loop trains through. Subclasses define ``batch_loss``;
    tasks that can be validated also define ``evaluate(model, data) -> {metric: value}``;
    a task with trainable state of its own (a discriminator) overrides ``state_dict`` /
    ``load_state_dict`` so ``last.pt`` resumes it."""

    metrics: tuple[str, ...] = ("loss",)   # what an epoch reports, as train_<name> / val_<name>
    monitor = "loss"                        # the validation metric early stopping minimises

    def to(self, device: torch.device) -> "Task":
        return self

    @abc.abstractmethod
    def batch_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Sums]:
        """(loss to step on, {metric: (sum, weight)}) of one batch; runs under the loop's autocast."""

    def state_dict(self) -> dict[str, Any] | None:
        return None

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise ValueError(f"{type(self).__name__} keeps no state")


def mean_term(loss: torch.Tensor, n: int) -> tuple[torch.Tensor, float]:
    """A batch-mean loss as an epoch sum weighted by its ``n`` images (float64, the arithmetic
    of Python floats)."""
    return loss.detach().double() * n, n


TASKS: Registry[Task] = Registry("training task")


class ClassificationTask(Task):
    """Logits from ``model(batch["image"])``; the criterion (CE, weighted CE, focal) on them."""

    metrics = ("loss", "acc")

    def __init__(self, criterion: nn.Module) -> None:
        self.criterion = criterion

    def to(self, device: torch.device) -> "ClassificationTask":
        self.criterion = self.criterion.to(device)
        return self

    def batch_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Sums]:
        """(loss, {loss, number of correct predictions}) of one batch."""
        logits = model(batch["image"])
        loss = self.criterion(logits.float(), batch["label"])
        n = len(batch["image"])
        return loss, {"loss": mean_term(loss, n), "acc": ((logits.argmax(1) == batch["label"]).sum(), n)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: dict[str, torch.Tensor], batch_size: int = 256) -> dict[str, float]:
        """Loss and accuracy over the whole set, eval mode; the loss is computed once on all logits."""
        model.eval()
        device = next(model.parameters()).device
        x, y = data["image"], data["label"].to(device)
        logits = torch.cat([model(x[i:i + batch_size].to(device)).float() for i in range(0, x.shape[0], batch_size)])
        return {"loss": float(self.criterion(logits, y)), "acc": float((logits.argmax(1) == y).float().mean())}


@TASKS.register("classification")
def _classification(loss: str, train_y: Any, num_classes: int, gamma: float = 2.0, label_smoothing: float = 0.0,
                    **_: Any) -> ClassificationTask:
    return ClassificationTask(build_loss(loss, train_y, num_classes, gamma=gamma, label_smoothing=label_smoothing))


class LesionTask(Task):
    """Segmentation and/or classification terms on a lesion model's dict output
    (:class:`sonogan.models.multitask.LesionModel`): ``lambda_seg * (Dice + seg_bce * BCE) +
    lambda_cls * criterion``.

    The segmentation term is averaged over the images that HAVE a mask (``batch["has_mask"]``):
    an image without one still trains the classifier, and adds nothing to the mask loss
    rather than teaching "no lesion here". Clinical variables (``batch["clinical"]``) go to the
    model when present (intermediate fusion). ``score`` is the number of correct predictions,
    or for a segmentation-only model the summed Dice of the masked images.
    """

    metrics = ("loss", "score")

    def __init__(self, criterion: nn.Module | None, lambda_seg: float = 0.3, lambda_cls: float = 1.0,
                 seg_bce: float = 0.0) -> None:
        self.criterion = criterion
        self.lambda_seg, self.lambda_cls, self.seg_bce = lambda_seg, lambda_cls, seg_bce
        self.dice = DiceLoss(sigmoid=True, reduction="none")  # MONAI: one soft-Dice loss per image

    def to(self, device: torch.device) -> "LesionTask":
        self.criterion = None if self.criterion is None else self.criterion.to(device)
        return self

    def seg_loss(self, mask_logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(mean Dice(+BCE) loss over the images with a mask, summed soft Dice of those images)."""
        has = batch["has_mask"].float()
        target = batch["mask"].float()
        per_image = self.dice(mask_logits.float(), target).flatten(1).mean(1)
        if self.seg_bce:
            bce = nn.functional.binary_cross_entropy_with_logits(mask_logits.float(), target, reduction="none")
            per_image = per_image + self.seg_bce * bce.flatten(1).mean(1)
        loss = (per_image * has).sum() / has.sum().clamp_min(1.0)
        soft_dice = 1 - self.dice(mask_logits.float().detach(), target).flatten(1).mean(1)
        return loss, (soft_dice * has).sum()

    def terms(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]
              ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """(loss, score, what the score counts) of one model output against its batch: accuracy
        over all images, Dice only over the images that have a mask."""
        loss = torch.zeros((), device=batch["image"].device)
        score = torch.zeros((), device=batch["image"].device)
        weight = 0.0
        if "mask" in out:
            seg, score = self.seg_loss(out["mask"], batch)
            loss = loss + self.lambda_seg * seg
            weight = float(batch["has_mask"].sum())
        if "logits" in out:
            assert self.criterion is not None
            loss = loss + self.lambda_cls * self.criterion(out["logits"].float(), batch["label"])
            score = (out["logits"].argmax(1) == batch["label"]).sum()
            weight = len(batch["image"])
        return loss, score, weight

    def batch_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Sums]:
        loss, score, weight = self.terms(model(batch["image"], batch.get("clinical")), batch)
        return loss, {"loss": mean_term(loss, len(batch["image"])), "score": (score, weight)}

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: dict[str, torch.Tensor], batch_size: int = 64) -> dict[str, float]:
        """Mean loss and accuracy (or mean Dice) over the whole set in eval mode."""
        model.eval()
        device = next(model.parameters()).device
        n = data["image"].shape[0]
        total_loss, total_score, weight = 0.0, 0.0, 0.0
        for i in range(0, n, batch_size):
            batch = {k: v[i:i + batch_size].to(device) for k, v in data.items()}
            loss, score, w = self.terms(model(batch["image"], batch.get("clinical")), batch)
            total_loss += float(loss) * len(batch["image"])
            total_score += float(score)
            weight += w
        return {"loss": total_loss / max(n, 1), "score": total_score / max(weight, 1.0)}


def _lesion_criterion(loss: str, train_y: Any, num_classes: int, gamma: float, label_smoothing: float) -> nn.Module:
    return build_loss(loss, train_y, num_classes, gamma=gamma, label_smoothing=label_smoothing)


@TASKS.register("segmentation")
def _segmentation(seg_bce: float = 1.0, **_: Any) -> LesionTask:
    return LesionTask(None, lambda_seg=1.0, lambda_cls=0.0, seg_bce=seg_bce)


@TASKS.register("multitask")
def _multitask(loss: str, train_y: Any, num_classes: int, gamma: float = 2.0, label_smoothing: float = 0.0,
               lambda_seg: float = 0.3, lambda_cls: float = 1.0, seg_bce: float = 0.0, **_: Any) -> LesionTask:
    return LesionTask(_lesion_criterion(loss, train_y, num_classes, gamma, label_smoothing), lambda_seg, lambda_cls,
                      seg_bce)


@TASKS.register("lesion-classification")
def _lesion_classification(loss: str, train_y: Any, num_classes: int, gamma: float = 2.0,
                           label_smoothing: float = 0.0, **_: Any) -> LesionTask:
    # a lesion model's classification head, image only or fused with clinical variables
    return LesionTask(_lesion_criterion(loss, train_y, num_classes, gamma, label_smoothing), 0.0, 1.0)


class CGanSegmentationTask(LesionTask):
    """The cGAN segmenter of Singh et al. (2020): the U-Net generator's loss is
    ``Dice + adv_weight * BCE(D(x, G(x)), real)``; the conditional discriminator learns
    ``BCE(D(x, y), real) + BCE(D(x, G(x)), fake)``. One optimisation step for each network per
    batch, as in the paper: the discriminator's step is taken here, the generator's by the loop.
    Only images with a mask enter the adversarial terms.
    """

    def __init__(self, discriminator: nn.Module, adv_weight: float = 0.1, d_lr: float = 2e-4) -> None:
        super().__init__(None, lambda_seg=1.0, lambda_cls=0.0, seg_bce=0.0)
        self.discriminator = discriminator
        self.adv_weight = adv_weight
        self.opt_d = torch.optim.Adam(discriminator.parameters(), lr=d_lr, betas=(0.5, 0.999))

    def to(self, device: torch.device) -> "CGanSegmentationTask":
        self.discriminator.to(device)  # in place: the optimiser keeps pointing at the same tensors
        return self

    def _bce(self, logits: torch.Tensor, real: bool) -> torch.Tensor:
        target = torch.full_like(logits, 1.0 if real else 0.0)
        return nn.functional.binary_cross_entropy_with_logits(logits, target)

    def batch_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, Sums]:
        loss, score = self._losses(model, batch)
        return loss, {"loss": mean_term(loss, len(batch["image"])), "score": (score, float(batch["has_mask"].sum()))}

    def _losses(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(generator loss, summed Dice); takes the discriminator's step on the way."""
        out = model(batch["image"])
        seg, score = self.seg_loss(out["mask"], batch)
        has = batch["has_mask"].bool()
        if not bool(has.any()):
            return seg, score
        x = batch["image"][has].float()
        fake = torch.sigmoid(out["mask"][has].float())
        real = batch["mask"][has].float()
        # the discriminator's step in full precision (no scaler of its own under AMP)
        with torch.autocast(device_type=x.device.type, enabled=False):
            self.discriminator.train()
            loss_d = self._bce(self.discriminator(x, real), True) + self._bce(self.discriminator(x, fake.detach()), False)
            self.opt_d.zero_grad(set_to_none=True)
            loss_d.backward()
            self.opt_d.step()
            adv = self._bce(self.discriminator(x, fake), True)
        return seg + self.adv_weight * adv, score

    def state_dict(self) -> dict[str, Any]:
        return {"discriminator": self.discriminator.state_dict(), "opt_d": self.opt_d.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.discriminator.load_state_dict(state["discriminator"])
        self.opt_d.load_state_dict(state["opt_d"])


@TASKS.register("cgan-segmentation")
def _cgan_segmentation(in_chans: int = 1, disc_width: int = 32, adv_weight: float = 0.1, d_lr: float = 2e-4,
                       **_: Any) -> CGanSegmentationTask:
    return CGanSegmentationTask(MaskDiscriminator(in_chans, disc_width), adv_weight, d_lr)


def build_task(name: str, loss: str, train_y: Any, num_classes: int, gamma: float = 2.0,
               label_smoothing: float = 0.0) -> Task:
    """The task ``name`` with its loss built from the training labels (class weights)."""
    return TASKS.create(name, loss=loss, train_y=train_y, num_classes=num_classes, gamma=gamma,
                        label_smoothing=label_smoothing)
