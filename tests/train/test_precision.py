"""The precision switch of the classifier loop (issue 17): bf16 close to fp32, repeatable,
exact resume on the fast path (bf16 + channels_last), and what the run records."""

from __future__ import annotations

import json

import pytest
import torch

from sonogan.models.checkpoint import load_classifier
from sonogan.train import accel
from sonogan.train.config import AugmentConfig, ClassifierTrainConfig
from sonogan.train.loop import train_classifier

SIZE = 16
BF16_CPU = "fpu avx2 avx512f avx512_bf16"


def _toy(n: int, seed: int, size: int = SIZE) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    y = torch.arange(n) % 2
    x = torch.randn(n, 1, size, size, generator=g) * 0.5
    x[y == 1, :, 5:11, 5:11] += 2.0
    return x, y


def _cfg(**kw) -> ClassifierTrainConfig:
    base = dict(model="frid-adar-cnn", image_size=SIZE, epochs=3, batch_size=16, optimizer="adam", lr=2e-3,
                device="cpu", patience=None, seed=7, num_threads=1)
    base.update(kw)
    return ClassifierTrainConfig(**base)


@pytest.fixture
def bf16_cpu(monkeypatch):
    """A CPU with native bf16, whatever this machine has (the reason names its flag)."""
    monkeypatch.setattr(accel, "host_cpu_flags", lambda: BF16_CPU)


def test_bf16_trains_close_to_fp32_and_repeats_exactly(tmp_path) -> None:
    x, y = _toy(48, 0)
    vx, vy = _toy(24, 1)
    runs = {name: train_classifier(_cfg(precision=p), x, y, vx, vy, tmp_path / name, ["a", "b"])
            for name, p in (("fp32", "fp32"), ("bf16", "bf16"), ("bf16-again", "bf16"))}
    fp32, bf16 = runs["fp32"].history, runs["bf16"].history
    assert bf16 == runs["bf16-again"].history  # same config + seed + precision + threads: same numbers
    assert bf16 != fp32  # the switch did switch
    for a, b in zip(fp32, bf16):  # bf16 keeps ~3 significant digits in the convolutions only
        assert b["train_loss"] == pytest.approx(a["train_loss"], abs=0.03)
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=0.03)
    weights = runs["bf16"].model.state_dict()
    assert all(v.dtype in (torch.float32, torch.int64) for v in weights.values())  # master weights stay fp32


class _Interrupt(Exception):
    pass


def test_the_fast_path_resumes_exactly(tmp_path, bf16_cpu) -> None:
    # bf16 autocast, channels_last, fused AdamW with layer decay, cosine schedule, EMA, augmentation.
    # 32 px, not 16: at 16 px resnet10t's last stage sees 1x1 maps, where torch 2.14's CPU bf16
    # convolution backward returns garbage weight gradients (up to 1e29) on some steps
    cfg = _cfg(model="resnet10t", image_size=32, precision="bf16", memory_format="channels_last", optimizer="adamw",
               weight_decay=0.05, layer_decay=0.8, schedule="cosine", warmup_epochs=1, ema_decay=0.9,
               augment=AugmentConfig(hflip=True, rotation=10.0, brightness=0.2))
    x, y = _toy(48, 0, 32)
    vx, vy = _toy(24, 1, 32)
    full = train_classifier(cfg, x, y, vx, vy, tmp_path / "full", ["a", "b"])

    def stop_after_first(epoch: int, record: dict) -> None:
        if epoch == 1:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        train_classifier(cfg, x, y, vx, vy, tmp_path / "cut", ["a", "b"], on_epoch_end=stop_after_first)
    resumed = train_classifier(cfg, x, y, vx, vy, tmp_path / "cut", ["a", "b"])
    assert resumed.history == full.history
    a, b = full.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    state = torch.load(tmp_path / "cut" / "last.pt", weights_only=True)
    assert state["optimisation"]["optimizer"]["param_groups"][0]["fused"] is True


def test_the_run_records_what_it_used_and_why(tmp_path, bf16_cpu) -> None:
    x, y = _toy(32, 0)
    res = train_classifier(_cfg(epochs=1, precision="auto", memory_format="auto"), x, y, x, y, tmp_path, ["a", "b"])
    expected = {"device": "cpu", "autocast": "float32", "memory_format": "channels_first", "compile": False,
                "reason": "fp32 + channels_first: frid-adar-cnn is not measured in benchmarks/results/cpu_speed.json, "
                          "so the float32 default on a CPU with avx512_bf16"}
    assert res.precision == expected
    assert json.loads((tmp_path / "history.json").read_text())["precision"] == expected
    _, meta = load_classifier(tmp_path / "best.pt")
    assert meta["extra"]["precision"] == expected
    assert meta["extra"]["train_config"]["precision"] == "auto"


def test_auto_resolves_by_model_and_size(bf16_cpu) -> None:
    from sonogan.train.loop import classifier_precision

    lite = classifier_precision(ClassifierTrainConfig(model="efficientnet-lite0", image_size=160, device="cpu",
                                                      precision="auto", memory_format="auto"))
    row = accel.CPU_SPEED["efficientnet-lite0"][160]
    fastest = max(row.items(), key=lambda kv: kv[1])[0]
    best_fp32 = max(("fp32", "fp32-cl"), key=row.__getitem__)
    if fastest.startswith("bf16") and row[fastest] < accel.BF16_MARGIN * row[best_fp32]:
        fastest = best_fp32  # bf16 only where it is clearly faster
    assert (lite.autocast_dtype is not None, lite.channels_last) == (fastest.startswith("bf16"), fastest.endswith("-cl"))
    assert "efficientnet-lite0 at 160 px" in lite.reason
    assert classifier_precision(ClassifierTrainConfig(device="cpu")) == accel.Precision(torch.device("cpu"))


def test_every_other_training_config_carries_the_switch(tmp_path) -> None:
    """Lesion models (segmenter, multitask) and the annotation remover resolve it the same way."""
    from sonogan.annotations.train import RemoverTrainConfig, remover_precision
    from sonogan.lesion.config import LesionTrainConfig
    from sonogan.lesion.train import lesion_precision, train_lesion
    from sonogan.models.multitask import LesionModelConfig

    fast = accel.Precision(torch.device("cpu"), torch.bfloat16, True)
    lesion = LesionTrainConfig(image_size=32, epochs=1, batch_size=4, **{"precision": "bf16",
                                                                          "memory_format": "channels_last"})
    assert lesion_precision(lesion, "unet") == fast
    assert lesion_precision(LesionTrainConfig(), "unet") == accel.Precision(torch.device("cpu"))
    assert remover_precision(RemoverTrainConfig(device="cpu", precision="bf16", memory_format="channels_last")) == fast
    assert remover_precision(RemoverTrainConfig(device="cpu")) == accel.Precision(torch.device("cpu"))
    data = {"image": torch.randn(4, 1, 32, 32), "mask": (torch.rand(4, 1, 32, 32) > .5).float(),
            "has_mask": torch.ones(4, dtype=torch.bool), "label": torch.zeros(4, dtype=torch.long)}
    mcfg = LesionModelConfig(backbone="unet", backbone_kwargs={"width": 4}, outputs="segmentation")
    train_lesion(mcfg, lesion, "segmentation", {}, data, None, tmp_path, resume=False)
    recorded = json.loads((tmp_path / "history.json").read_text())["precision"]
    assert (recorded["autocast"], recorded["memory_format"]) == ("bfloat16", "channels_last")
