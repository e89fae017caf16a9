"""Lesion tasks: every registered task computes a loss; images without a mask add nothing to the
segmentation term; lambda weights; the cGAN task steps its discriminator."""

from __future__ import annotations

import pytest
import torch

from sonogan.models.multitask import LesionModelConfig, build_lesion_model
from sonogan.train.tasks import TASKS, LesionTask


def _batch(n: int = 4, has: list[bool] | None = None) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {"image": torch.randn(n, 1, 32, 32, generator=g), "mask": (torch.rand(n, 1, 32, 32, generator=g) > .5).float(),
            "has_mask": torch.tensor(has if has is not None else [True] * n), "label": torch.arange(n) % 2}


def _model(outputs: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_lesion_model(LesionModelConfig(backbone="unet", backbone_kwargs={"width": 4}, outputs=outputs,
                                                num_classes=2))


@pytest.mark.parametrize("name", TASKS.names())
def test_every_task_gives_a_finite_loss(name: str) -> None:
    outputs = {"segmentation": "segmentation", "cgan-segmentation": "segmentation", "multitask": "multitask"}
    if name == "classification":
        model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 2))
    else:
        model = _model(outputs.get(name, "classification"))
    task = TASKS.create(name, loss="ce", train_y=torch.tensor([0, 1]), num_classes=2)
    loss, sums = task.batch_loss(model, _batch())
    assert torch.isfinite(loss) and list(sums) == list(task.metrics) and task.monitor == "loss"
    assert sums["loss"][1] == 4 and float(sums["loss"][0]) == pytest.approx(4 * float(loss.detach()))  # a mean over 4 images
    loss.backward()
    scores = task.evaluate(model, _batch())
    assert list(scores) == list(task.metrics) and scores["loss"] > 0


@torch.no_grad()
def test_images_without_mask_skip_the_segmentation_term() -> None:
    model = _model("multitask").eval()
    task = TASKS.create("multitask", loss="ce", train_y=torch.tensor([0, 1]), num_classes=2)
    batch = _batch(has=[True, True, False, False])
    seg, _ = task.seg_loss(model(batch["image"])["mask"], batch)
    # the mean over the two masked images only: changing the unmasked images' masks changes nothing
    other = dict(batch, mask=batch["mask"].clone())
    other["mask"][2:] = 1 - other["mask"][2:]
    seg_other, _ = task.seg_loss(model(batch["image"])["mask"], other)
    assert float(seg) == pytest.approx(float(seg_other))
    none = dict(batch, has_mask=torch.zeros(4, dtype=torch.bool))
    seg_none, dice_sum = task.seg_loss(model(batch["image"])["mask"], none)
    assert float(seg_none) == 0.0 and float(dice_sum) == 0.0
    # with no mask at all the multitask loss is exactly lambda_cls * CE
    loss, _ = task.batch_loss(model, none)
    logits = model(batch["image"])["logits"]
    assert float(loss) == pytest.approx(float(torch.nn.functional.cross_entropy(logits, batch["label"])))


@torch.no_grad()
def test_lambda_weights_combine_the_terms() -> None:
    model = _model("multitask").eval()
    crit = torch.nn.CrossEntropyLoss()
    batch = _batch()
    both, _ = LesionTask(crit, lambda_seg=0.3, lambda_cls=1.0).batch_loss(model, batch)
    seg_only, _ = LesionTask(crit, lambda_seg=1.0, lambda_cls=0.0).batch_loss(model, batch)
    cls_only, _ = LesionTask(crit, lambda_seg=0.0, lambda_cls=1.0).batch_loss(model, batch)
    assert float(both) == pytest.approx(0.3 * float(seg_only) + float(cls_only), rel=1e-5)


def test_cgan_task_steps_the_discriminator_and_saves_its_state() -> None:
    model = _model("segmentation")
    task = TASKS.create("cgan-segmentation", in_chans=1, disc_width=4)
    before = {k: v.clone() for k, v in task.discriminator.state_dict().items()}
    loss, _ = task.batch_loss(model, _batch())
    loss.backward()
    after = task.discriminator.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
    state = task.state_dict()
    fresh = TASKS.create("cgan-segmentation", in_chans=1, disc_width=4)
    fresh.load_state_dict(state)
    assert all(torch.equal(fresh.discriminator.state_dict()[k], after[k]) for k in after)
