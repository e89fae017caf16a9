"""The one supervised loop: exact resume for every task kind, the corrupt-checkpoint guard, early
stopping on hand-computed epochs, the weighting of epoch metrics, and the precision switch."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from torch import nn

from sonogan.errors import SonoganInputError
from sonogan.models.multitask import LesionModelConfig, build_lesion_model
from sonogan.train.accel import Precision, precision_for
from sonogan.train.config import AugmentConfig
from sonogan.train.supervised import LoopOptions, Parts, TensorBatches, batch_starts, train_supervised
from sonogan.train.tasks import TASKS, Task, mean_term

CPU = torch.device("cpu")
FP32 = precision_for(CPU)


class _Stop(Exception):
    pass


def _stop_after(k: int):
    def hook(epoch: int, record: dict) -> None:
        if epoch == k:
            raise _Stop
    return hook


def _lesion_data(n: int, seed: int) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {"image": torch.randn(n, 1, 32, 32, generator=g), "mask": (torch.rand(n, 1, 32, 32, generator=g) > .5).float(),
            "has_mask": torch.tensor([True, False] * (n // 2)), "label": torch.arange(n) % 2}


def _parts(name: str) -> Parts:
    """A tiny model of the kind the task trains (dropout included: the global RNG must resume too)."""
    if name == "classification":
        def model() -> nn.Module:
            return nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Dropout(0.3),
                                 nn.Linear(4 * 30 * 30, 2))
    else:
        outputs = {"multitask": "multitask", "lesion-classification": "classification"}.get(name, "segmentation")
        cfg = LesionModelConfig(backbone="unet", backbone_kwargs={"width": 4}, outputs=outputs, num_classes=2)

        def model() -> nn.Module:
            return build_lesion_model(cfg)
    labels = torch.arange(8) % 2
    return Parts(model=model, task=lambda: TASKS.create(name, loss="weighted_ce", train_y=labels, num_classes=2,
                                                        disc_width=4),
                 optimizer=lambda m: torch.optim.Adam(m.parameters(), lr=2e-3),
                 scheduler=lambda opt, steps: torch.optim.lr_scheduler.LambdaLR(opt, lambda s: 1 / (1 + s)))


def _run(name: str, out: Path, precision: Precision = FP32, **kw):
    data = _lesion_data(8, 1)
    if name == "classification":
        data = {"image": data["image"], "label": data["label"]}
    val = {k: v[:4] for k, v in _lesion_data(4, 2).items() if k in data}
    options = LoopOptions(epochs=3, seed=5, precision=precision, patience=5)
    save = lambda path, model, record: torch.save({"state_dict": model.state_dict()}, path)  # noqa: E731
    return train_supervised(_parts(name), TensorBatches(data, 3, AugmentConfig(hflip=True, rotation=20.0)), options,
                            out, identity={"format": "test", "task": name}, val=val, save_best=save, **kw)


@pytest.mark.parametrize("name", TASKS.names())
def test_an_interrupted_run_resumes_to_the_uninterrupted_one(tmp_path: Path, name: str) -> None:
    full = _run(name, tmp_path / "full")
    with pytest.raises(_Stop):
        _run(name, tmp_path / "cut", on_epoch_end=_stop_after(2))
    torch.manual_seed(123)  # the caller's RNG state must not matter
    resumed_at: list[int] = []
    resumed = _run(name, tmp_path / "cut", on_resume=resumed_at.append)
    assert resumed_at == [2] and resumed.history == full.history and resumed.best_epoch == full.best_epoch
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    last_full = torch.load(tmp_path / "full" / "last.pt", weights_only=True)
    last_cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert all(torch.equal(v, last_cut["model"][k]) for k, v in last_full["model"].items())
    # a task with state of its own (the cGAN's discriminator) resumes it too
    assert (last_full["task_state"] is None) == (name != "cgan-segmentation")


@pytest.mark.parametrize("damage", [lambda b: b[:100], lambda b: b""], ids=["truncated", "empty"])
def test_a_damaged_last_pt_is_one_line_naming_the_file_and_the_fix(tmp_path: Path, damage) -> None:
    with pytest.raises(_Stop):
        _run("classification", tmp_path, on_epoch_end=_stop_after(1))
    last = tmp_path / "last.pt"
    last.write_bytes(damage(last.read_bytes()))
    with pytest.raises(SonoganInputError) as err:
        _run("classification", tmp_path)
    message = str(err.value)
    assert str(last) in message and "delete last.pt to train this model again" in message and "\n" not in message


def test_another_runs_state_is_refused(tmp_path: Path) -> None:
    with pytest.raises(_Stop):
        _run("classification", tmp_path, on_epoch_end=_stop_after(1))
    with pytest.raises(SonoganInputError, match="another config or data"):
        _run("segmentation", tmp_path)  # identity {"task": "segmentation"} != the stored "classification"
    torch.save([1, 2], tmp_path / "last.pt")  # readable, but not a training state
    with pytest.raises(SonoganInputError, match="another config or data"):
        _run("classification", tmp_path)


class _Scripted(Task):
    """Loss = the batch's mean pixel (weights untouched at lr 0); validation losses from a script."""

    metrics = ("loss", "hits")

    def __init__(self, val_losses: list[float]) -> None:
        self.val_losses = list(val_losses)

    def batch_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]):
        loss = model.weight.sum() * 0 + batch["image"].mean()
        return loss, {"loss": mean_term(loss, len(batch["image"])), "hits": (torch.tensor(1.0), 2)}

    def evaluate(self, model: nn.Module, data: dict[str, torch.Tensor]) -> dict[str, float]:
        return {"loss": self.val_losses.pop(0), "hits": 0.0}


def _scripted(tmp_path: Path, val_losses: list[float], n: int = 11, **options):
    saved: list[int] = []
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1).expand(n, 1, 2, 2).contiguous()
    parts = Parts(model=lambda: nn.Linear(1, 1), task=lambda: _Scripted(val_losses),
                  optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.0))
    res = train_supervised(parts, TensorBatches({"image": x}, 4), LoopOptions(seed=0, precision=FP32, **options),
                           tmp_path, identity={"format": "scripted"}, val={"image": x[:2]},
                           save_best=lambda path, model, record: saved.append(record["epoch"]), resume=False)
    return res, saved


def test_a_lone_last_image_waits_for_the_next_epoch() -> None:
    assert batch_starts(11, 4) == [0, 4, 8] and batch_starts(9, 4) == [0, 4] and batch_starts(1, 4) == [0]


def test_epoch_means_weigh_each_batch_by_its_images(tmp_path: Path) -> None:
    # 11 images of values 0..10 in batches of 4, 4 and 3: the image-weighted mean is 5 whatever the
    # shuffle; "hits" adds 1 per batch with weight 2 -> 3 / 6
    res, _ = _scripted(tmp_path, [1.0], epochs=1)
    assert res.history[0]["train_loss"] == pytest.approx(5.0, abs=1e-12) and res.history[0]["train_hits"] == 0.5
    assert res.history[0]["val_loss"] == 1.0 and res.history[0]["lr"] == 0.0


@pytest.mark.parametrize("val_losses, options, saved, best, stopped", [
    # e1 best, e2 best, e3 and e4 worse: patience 2 stops after e4
    ([3.0, 2.0, 2.5, 2.4, 1.0], dict(epochs=10, patience=2), [1, 2], (2, 2.0), True),
    # 2.95 is not 0.1 below 3.0 (bad), 2.5 is (best); patience 3 never reached
    ([3.0, 2.95, 2.5], dict(epochs=3, patience=3, min_delta=0.1), [1, 3], (3, 2.5), False),
    # keep="last" saves every epoch, even a worse one
    ([1.0, 2.0], dict(epochs=2, keep="last"), [1, 2], (2, 2.0), False),
    # a NaN validation loss is never the best
    ([math.nan, 1.0], dict(epochs=2), [2], (2, 1.0), False),
], ids=["patience", "min-delta", "keep-last", "nan"])
def test_early_stopping_and_the_best_epoch(tmp_path: Path, val_losses, options, saved, best, stopped) -> None:
    res, calls = _scripted(tmp_path, val_losses, **options)
    assert calls == saved and (res.best_epoch, res.best_val_loss) == best and res.stopped_early is stopped
    assert len(res.history) == (4 if stopped else options["epochs"])


def test_without_a_best_writer_the_last_epoch_is_the_result(tmp_path: Path) -> None:
    parts = Parts(model=lambda: nn.Linear(1, 1), task=lambda: _Scripted([]),
                  optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.0))
    x = torch.zeros(4, 1, 2, 2)
    with pytest.raises(ValueError, match="keep='last'"):
        train_supervised(parts, TensorBatches({"image": x}, 4), LoopOptions(epochs=1, seed=0, precision=FP32),
                         tmp_path, identity={})
    res = train_supervised(parts, TensorBatches({"image": x}, 4),
                           LoopOptions(epochs=2, seed=0, precision=FP32, keep="last"), tmp_path, identity={})
    assert res.best_path is None and res.best_epoch == 2 and not (tmp_path / "best.pt").exists()


class _Probe(Task):
    """Records the autocast state and the dtypes of each training forward."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, torch.dtype, torch.dtype]] = []

    def batch_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]):
        out = model(batch["image"])
        loss = out.float().pow(2).mean()
        self.seen.append((torch.is_autocast_enabled("cpu"), out.dtype, loss.dtype))
        return loss, {"loss": mean_term(loss, len(batch["image"]))}


@pytest.mark.parametrize("precision, expected", [(FP32, (False, torch.float32, torch.float32)),
                                                 (Precision(CPU, torch.bfloat16), (True, torch.bfloat16, torch.float32))],
                         ids=["fp32", "bf16"])
def test_the_loop_runs_the_forward_in_its_precision(tmp_path: Path, precision: Precision, expected) -> None:
    probe = _Probe()
    parts = Parts(model=lambda: nn.Conv2d(1, 2, 3), task=lambda: probe,
                  optimizer=lambda m: torch.optim.SGD(m.parameters(), lr=0.1))
    res = train_supervised(parts, TensorBatches({"image": torch.randn(4, 1, 8, 8)}, 2),
                           LoopOptions(epochs=1, seed=0, precision=precision, keep="last"), tmp_path, identity={})
    assert probe.seen == [expected, expected]
    assert all(p.dtype == torch.float32 for p in res.model.parameters())  # master weights stay float32


def test_bf16_is_close_to_fp32_and_repeats_exactly(tmp_path: Path) -> None:
    bf16 = Precision(CPU, torch.bfloat16)
    a, b = _run("multitask", tmp_path / "a", bf16), _run("multitask", tmp_path / "b", bf16)
    ref = _run("multitask", tmp_path / "ref")
    assert a.history == b.history  # same config + seed + precision = identical numbers
    assert a.history != ref.history
    for got, want in zip(a.history, ref.history):
        assert got["train_loss"] == pytest.approx(want["train_loss"], rel=0.05)


def test_a_bf16_run_resumes_exactly(tmp_path: Path) -> None:
    bf16 = Precision(CPU, torch.bfloat16)
    full = _run("segmentation", tmp_path / "full", bf16)
    with pytest.raises(_Stop):
        _run("segmentation", tmp_path / "cut", bf16, on_epoch_end=_stop_after(1))
    resumed = _run("segmentation", tmp_path / "cut", bf16)
    assert resumed.history == full.history
    assert all(torch.equal(v, resumed.model.state_dict()[k]) for k, v in full.model.state_dict().items())
