"""The training loop: learns, stops early and restores the best epoch, resumes exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.models.checkpoint import load_classifier
from sonogan.train.config import AugmentConfig, ClassifierTrainConfig
from sonogan.train.loop import predict_proba, train_classifier

SIZE = 16


def _toy(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Class 1 has a bright blob in the centre; noise elsewhere (separable, z-scored-ish)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 1, SIZE, SIZE, generator=g) * 0.5
    x[y == 1, :, 5:11, 5:11] += 2.0
    return x, y


def _cfg(**kw) -> ClassifierTrainConfig:
    base = dict(model="frid-adar-cnn", image_size=SIZE, epochs=4, batch_size=16, optimizer="adam", lr=2e-3,
                device="cpu", patience=None, seed=7)
    base.update(kw)
    return ClassifierTrainConfig(**base)


def test_learns_separable_toy_problem(tmp_path) -> None:
    x, y = _toy(96, 0)
    vx, vy = _toy(48, 1)
    res = train_classifier(_cfg(epochs=8), x, y, vx, vy, tmp_path, ["plain", "blob"])
    probs = predict_proba(res.model, vx)
    assert probs.shape == (48, 2) and np.allclose(probs.sum(1), 1.0)
    assert (probs.argmax(1) == vy.numpy()).mean() > 0.9
    hist = json.loads((tmp_path / "history.json").read_text())
    assert len(hist["epochs"]) == 8 and {"train_loss", "train_acc", "val_loss", "val_acc"} <= set(hist["epochs"][0])
    model, meta = load_classifier(tmp_path / "best.pt")
    assert meta["class_names"] == ["plain", "blob"] and meta["extra"]["epoch"] == res.best_epoch
    assert np.allclose(predict_proba(model, vx), probs, atol=1e-6)


def test_early_stopping_stops_and_restores_best(tmp_path) -> None:
    x, y = _toy(64, 0)
    vx, vy = _toy(32, 1)
    vy = 1 - vy  # validation labels contradict training: val loss rises as the model learns
    res = train_classifier(_cfg(epochs=30, patience=2), x, y, vx, vy, tmp_path, ["a", "b"])
    losses = [h["val_loss"] for h in res.history]
    assert res.stopped_early and res.epochs_run < 30
    assert res.best_epoch == int(np.argmin(losses)) + 1 and res.epochs_run == res.best_epoch + 2
    best_state = torch.load(tmp_path / "best.pt", weights_only=True)["state_dict"]
    assert all(torch.equal(v, best_state[k]) for k, v in res.model.state_dict().items())
    assert not res.model.training


class _Interrupt(Exception):
    pass


RECIPE = dict(optimizer="adamw", weight_decay=0.05, layer_decay=0.8, schedule="cosine", warmup_epochs=1,
              label_smoothing=0.1, ema_decay=0.9, tta="hflip", model="resnet10t",
              augment=AugmentConfig(hflip=True, rotation=10.0, brightness=0.2, contrast=0.2))


@pytest.mark.parametrize("kw", [dict(optimizer="sgd", lr=0.02, augment=AugmentConfig.frid_adar(), loss="focal"),
                                RECIPE], ids=["sgd-focal", "finetune-recipe"])
def test_resume_after_interruption_is_identical(tmp_path, kw) -> None:
    # dropout (global RNG), shuffling and augmentation (own generators), optimiser state, and for the
    # fine-tuning recipe the lr schedule and the weight EMA: all must continue exactly after a kill
    cfg = _cfg(epochs=4, **kw)
    x, y = _toy(48, 0)
    vx, vy = _toy(24, 1)
    full = train_classifier(cfg, x, y, vx, vy, tmp_path / "full", ["a", "b"])

    def stop_at_2(epoch: int, record: dict) -> None:
        if epoch == 2:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_classifier(cfg, x, y, vx, vy, tmp_path / "cut", ["a", "b"], on_epoch_end=stop_at_2)
    torch.manual_seed(123)  # the caller's RNG state must not matter
    resumed = train_classifier(cfg, x, y, vx, vy, tmp_path / "cut", ["a", "b"])
    assert resumed.history == full.history
    for key, value in full.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    last_full = torch.load(tmp_path / "full" / "last.pt", weights_only=True)["model"]
    last_cut = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)["model"]
    assert all(torch.equal(v, last_cut[k]) for k, v in last_full.items())
    # a finished run resumes to the same result without training again
    again = train_classifier(cfg, x, y, vx, vy, tmp_path / "cut", ["a", "b"])
    assert again.history == full.history
    # another config in the same folder is refused
    with pytest.raises(SonoganInputError, match="another config"):
        train_classifier(cfg.model_copy(update={"lr": 0.1}), x, y, vx, vy, tmp_path / "cut", ["a", "b"])


def test_seeded_and_leaves_global_rng_alone(tmp_path) -> None:
    x, y = _toy(32, 0)
    state = torch.get_rng_state()
    a = train_classifier(_cfg(epochs=2, loss="weighted_ce"), x, y, x, y, tmp_path / "a", ["a", "b"])
    assert torch.equal(torch.get_rng_state(), state)
    b = train_classifier(_cfg(epochs=2, loss="weighted_ce"), x, y, x, y, tmp_path / "b", ["a", "b"])
    c = train_classifier(_cfg(epochs=2, loss="weighted_ce", seed=8), x, y, x, y, tmp_path / "c", ["a", "b"])
    assert a.history == b.history and a.history != c.history


def test_input_errors(tmp_path) -> None:
    x, y = _toy(8, 0)
    with pytest.raises(SonoganInputError, match="image_size"):
        train_classifier(_cfg(image_size=32), x, y, x, y, tmp_path, ["a", "b"])
    with pytest.raises(SonoganInputError, match="labels"):
        train_classifier(_cfg(), x, y + 1, x, y, tmp_path, ["a", "b"])
    with pytest.raises(SonoganInputError, match="in_chans"):
        train_classifier(_cfg(in_chans=3), x, y, x, y, tmp_path, ["a", "b"])


def test_without_validation_keeps_last_epoch(tmp_path) -> None:
    x, y = _toy(32, 0)
    res = train_classifier(_cfg(epochs=2, patience=1), x, y, None, None, tmp_path, ["a", "b"])
    assert res.epochs_run == 2 and res.best_epoch == 2 and res.history[0]["val_loss"] is None


def test_recipe_schedule_ema_and_tta(tmp_path) -> None:
    x, y = _toy(48, 0)
    vx, vy = _toy(24, 1)
    cfg = _cfg(epochs=3, **RECIPE)
    res = train_classifier(cfg, x, y, vx, vy, tmp_path, ["a", "b"])
    lrs = [h["lr"] for h in res.history]
    assert lrs[0] < lrs[1] > lrs[2]  # warm-up, then cosine decay (lr read at each epoch's start)
    model, meta = load_classifier(tmp_path / "best.pt")
    assert meta["input"]["tta"] == "hflip"
    plain, flipped = predict_proba(model, vx), predict_proba(model, vx.flip(-1))
    assert np.allclose(predict_proba(model, vx, tta="hflip"), (plain + flipped) / 2, atol=1e-6)
    # the EMA weights are what is saved, not the raw weights of the last step
    raw = torch.load(tmp_path / "last.pt", weights_only=True)["model"]
    assert any(not torch.equal(v, raw[k]) for k, v in model.state_dict().items() if v.is_floating_point())


def test_keep_last_saves_the_final_epoch(tmp_path) -> None:
    x, y = _toy(32, 0)
    vx, vy = _toy(16, 1)
    vy = 1 - vy  # validation loss rises: "best" would keep an early epoch
    res = train_classifier(_cfg(epochs=3, keep="last", patience=1), x, y, vx, vy, tmp_path, ["a", "b"])
    assert res.best_epoch == 3 and res.epochs_run == 3 and not res.stopped_early
