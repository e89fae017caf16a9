"""GPU settings: identities on CPU; the CUDA choices (dtype, scaler, cuDNN autotuning) by construction."""

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
    assert not accel.channels_last_model(model, CPU) and model.weight.is_contiguous()
    assert not accel.grad_scaler(CPU, amp=True).is_enabled()
    assert accel.compiled(model, False) is model


@pytest.mark.parametrize("bf16, dtype", [(True, torch.bfloat16), (False, torch.float16)])
def test_autocast_dtype_is_bf16_where_supported(monkeypatch, bf16: bool, dtype: torch.dtype) -> None:
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
    assert accel.amp_dtype(CUDA) == dtype and accel.amp_dtype(CPU) == torch.float16


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
