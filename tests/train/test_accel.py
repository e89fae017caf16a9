"""Precision and GPU settings: identities on CPU; the CUDA choices (dtype, scaler, layout, cuDNN
autotuning) by construction."""

from __future__ import annotations

import pytest
import torch

from sonogan.synth.config import GanConfig
from sonogan.train import accel

CPU, CUDA = torch.device("cpu"), torch.device("cuda")


def test_cpu_run_is_untouched() -> None:
    x = torch.randn(2, 3, 4, 4)
    model = torch.nn.Conv2d(3, 3, 1)
    assert accel.to_device(x, CPU) is x and accel.pinned(x, CPU) is x and not x.is_pinned()
    precision = accel.precision_for(CPU, amp=True)
    assert precision == accel.Precision(CPU, None, False)
    assert precision.model(model) is model and model.weight.is_contiguous() and precision.inputs(x) is x
    assert not precision.scaler().is_enabled() and not torch.is_autocast_enabled("cpu")
    with precision.autocast():  # float32 eager: no autocast context at all
        assert not torch.is_autocast_enabled("cpu")
    assert accel.compiled(model, False) is model


@pytest.mark.parametrize("bf16, dtype, scaled", [(True, torch.bfloat16, False), (False, torch.float16, True)])
def test_cuda_precision_is_bf16_where_supported(monkeypatch, bf16: bool, dtype: torch.dtype, scaled: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert accel.amp_dtype(CUDA) == dtype and accel.amp_dtype(CPU) == torch.float16
    precision = accel.precision_for(CUDA, amp=True)
    assert precision == accel.Precision(CUDA, dtype, True)
    assert precision.describe() == {"device": "cuda", "autocast": str(dtype)[6:], "memory_format": "channels_last",
                                    "compile": False, "reason": ""}
    assert precision.loss_scaling is scaled
    assert accel.precision_for(CUDA, amp=False, channels_last=False) == accel.Precision(CUDA, None, False)


def test_cudnn_autotuning_on_cuda_unless_determinism_is_asked(monkeypatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    accel.setup_device(CPU)
    assert torch.backends.cudnn.benchmark is False
    accel.setup_device(CUDA)
    assert torch.backends.cudnn.benchmark is True
    monkeypatch.setattr(torch, "are_deterministic_algorithms_enabled", lambda: True)
    accel.setup_device(CUDA)
    assert torch.backends.cudnn.benchmark is False


def test_channels_last_layout_when_asked() -> None:
    x = accel.to_device(torch.randn(2, 3, 4, 4), CPU, channels_last=True)
    assert x.is_contiguous(memory_format=torch.channels_last)
    precision = accel.Precision(CPU, None, channels_last=True)
    model = precision.model(torch.nn.Conv2d(3, 3, 1))
    assert model.weight.is_contiguous(memory_format=torch.channels_last)
    assert precision.inputs(torch.randn(2, 3, 4, 4)).is_contiguous(memory_format=torch.channels_last)
    assert precision.inputs(torch.arange(2)).shape == (2,)  # labels keep their layout


def test_compile_option_refuses_the_double_backward_family() -> None:
    assert GanConfig(compile=True).compile
    with pytest.raises(ValueError, match="wgan-gp"):
        GanConfig(family="wgan-gp", compile=True)


@pytest.mark.slow
def test_compiled_classifier_trains_like_eager(tmp_path) -> None:
    """compile: true runs through torch.compile (inductor, ~1 min to compile on a CPU) to the eager numbers."""
    from sonogan.train.config import ClassifierTrainConfig
    from sonogan.train.loop import train_classifier

    x, y = torch.randn(16, 1, 16, 16, generator=torch.Generator().manual_seed(0)), torch.arange(16) % 2
    runs = [train_classifier(ClassifierTrainConfig(image_size=16, epochs=2, batch_size=8, device="cpu", compile=c,
                                                   model_kwargs={"drop_rate": 0.0}, patience=None),
                             x, y, x, y, tmp_path / str(c), ["a", "b"]) for c in (False, True)]
    eager, comp = (r.model.state_dict() for r in runs)
    assert all(torch.allclose(eager[k], comp[k], atol=1e-6) for k in eager)
    assert runs[1].history[-1]["train_loss"] == pytest.approx(runs[0].history[-1]["train_loss"], abs=1e-6)
