"""Loss objects for supervised training: what one batch costs, and how a whole set is scored.

The loop (:mod:`sonogan.train.loop`) knows nothing about labels, masks or heads: it hands a
batch dict (``{"image": (B,C,H,W), "label": (B,), ...}``) to the task and gets back the loss
and the number of correct predictions. Segmentation and multitask models plug in as new tasks
(a mask term, a second head) without touching the loop, as the GAN loop's loss objects do:
``segmentation``, ``multitask``, ``lesion-classification`` (with clinical fusion when the batch
carries ``"clinical"``) and ``cgan-segmentation`` (:class:`LesionTask`, :class:`CGanSegmentationTask`;
their batches add ``"mask"`` (B,1,H,W) and ``"has_mask"`` (B,)).

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
from monai.losses import DiceLoss
from torch import nn

from sonogan.models.segmentation import MaskDiscriminator
from sonogan.registry import Registry
from sonogan.train.losses import build_loss

TASKS: Registry["ClassificationTask | LesionTask"] = Registry("training task")


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


class LesionTask:
    """Segmentation and/or classification terms on a lesion model's dict output
    (:class:`sonogan.models.multitask.LesionModel`): ``lambda_seg * (Dice + seg_bce * BCE) +
    lambda_cls * criterion``.

    The segmentation term is averaged over the images that HAVE a mask (``batch["has_mask"]``):
    an image without one still trains the classifier, and adds nothing to the mask loss
    rather than teaching "no lesion here". Clinical variables (``batch["clinical"]``) go to the
    model when present (intermediate fusion). ``score`` is the number of correct predictions,
    or for a segmentation-only model the summed Dice of the masked images.
    """

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

    def terms(self, out: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """(loss, score) of one model output against its batch."""
        loss = torch.zeros((), device=batch["image"].device)
        score = torch.zeros((), device=batch["image"].device)
        if "mask" in out:
            seg, score = self.seg_loss(out["mask"], batch)
            loss = loss + self.lambda_seg * seg
        if "logits" in out:
            assert self.criterion is not None
            loss = loss + self.lambda_cls * self.criterion(out["logits"].float(), batch["label"])
            score = (out["logits"].argmax(1) == batch["label"]).sum()
        return loss, score

    def batch_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.terms(model(batch["image"], batch.get("clinical")), batch)

    @torch.no_grad()
    def evaluate(self, model: nn.Module, data: dict[str, torch.Tensor], batch_size: int = 64) -> tuple[float, float]:
        """(mean loss, accuracy or mean Dice) over the whole set in eval mode."""
        model.eval()
        device = next(model.parameters()).device
        n = data["image"].shape[0]
        total_loss, total_score, weight = 0.0, 0.0, 0.0
        for i in range(0, n, batch_size):
            batch = {k: v[i:i + batch_size].to(device) for k, v in data.items()}
            out = model(batch["image"], batch.get("clinical"))
            loss, score = self.terms(out, batch)
            total_loss += float(loss) * len(batch["image"])
            total_score += float(score)
            # accuracy over all images; Dice only over the images that have a mask
            weight += len(batch["image"]) if "logits" in out else float(batch["has_mask"].sum())
        return total_loss / max(n, 1), total_score / max(weight, 1.0)


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

    def batch_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
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
               label_smoothing: float = 0.0) -> ClassificationTask:
    """The task ``name`` with its loss built from the training labels (class weights)."""
    return TASKS.create(name, loss=loss, train_y=train_y, num_classes=num_classes, gamma=gamma,
                        label_smoothing=label_smoothing)
