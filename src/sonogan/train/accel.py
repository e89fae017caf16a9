"""Precision and device settings of training, decided in one place: autocast dtype, loss
scaling, memory layout, cuDNN autotuning, pinned host memory and torch.compile.

:func:`precision_for` decides how a supervised loop runs on its device and returns a
:class:`Precision`, which every supervised loop (:mod:`sonogan.train.supervised`) uses for
its autocast context, its GradScaler and the layout of its model and batches; the GAN loops
use the helpers below it. Today the policy is: on CUDA, bfloat16 autocast where the GPU
supports it (else float16 with loss scaling) and channels_last; on the CPU, float32 eager in
the default layout, so a CPU run keeps exactly its numbers. A CPU policy (bf16 on CPUs with
native bf16 instructions, channels_last) belongs in :func:`precision_for` and nowhere else.

Example:
    >>> import torch
    >>> cpu = precision_for(torch.device("cpu"), amp=True)
    >>> cpu.autocast_dtype is None, cpu.channels_last, cpu.scaler().is_enabled(), cpu.describe()["autocast"]
    (True, False, False, 'float32')
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import nn


def amp_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on GPUs that support it (float32's exponent range: no loss scaling), else float16."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


@dataclass(frozen=True)
class Precision:
    """How training runs on ``device``: autocast in ``autocast_dtype`` (None = float32, no
    autocast), loss scaling for float16, and conv nets and their image batches in
    channels_last layout when ``channels_last``. Master weights, optimiser state, losses and
    metrics stay float32 (the tasks cast logits to float before their loss)."""

    device: torch.device
    autocast_dtype: torch.dtype | None = None
    channels_last: bool = False

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward pass's context (no context at all for float32: the CPU path stays eager fp32)."""
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(device_type=self.device.type, dtype=self.autocast_dtype)

    @property
    def loss_scaling(self) -> bool:
        """Only float16 gradients underflow (bfloat16 has float32's exponent range)."""
        return self.autocast_dtype == torch.float16

    def scaler(self) -> torch.amp.GradScaler:
        """A GradScaler that is on only with :attr:`loss_scaling`."""
        return torch.amp.GradScaler(self.device.type, enabled=self.loss_scaling)

    def model(self, model: nn.Module) -> nn.Module:
        """``model`` (already on the device) in this layout, in place; the optimiser comes after."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A training tensor on the device, 4-D images in this layout (:func:`to_device`)."""
        return to_device(x, self.device, self.channels_last)

    def describe(self) -> dict[str, str]:
        """What was used, for logs and run records."""
        return {"device": str(self.device),
                "autocast": "float32" if self.autocast_dtype is None else str(self.autocast_dtype).split(".")[-1],
                "memory_format": "channels_last" if self.channels_last else "channels_first"}


def precision_for(device: torch.device, amp: bool = True, channels_last: bool = True) -> Precision:
    """The precision of a training run on ``device``: on CUDA, autocast in :func:`amp_dtype`
    when ``amp`` and channels_last when ``channels_last`` (tensor-core convolutions need no
    transposes under autocast); on any other device float32 eager in the default layout."""
    if device.type != "cuda":
        return Precision(device)
    return Precision(device, amp_dtype(device) if amp else None, channels_last)


def setup_device(device: torch.device) -> None:
    """On CUDA: cuDNN picks the fastest convolution algorithms for the (fixed) input shapes,
    unless the user asked for determinism with ``torch.use_deterministic_algorithms(True)``."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = not torch.are_deterministic_algorithms_enabled()


def pinned(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A host tensor bound for CUDA in pinned (page-locked) memory, whose copies to the GPU are
    faster and asynchronous; anything else unchanged."""
    return x.pin_memory() if device.type == "cuda" and x.device.type == "cpu" else x


def to_device(x: torch.Tensor, device: torch.device, channels_last: bool = False) -> torch.Tensor:
    """``x`` on ``device`` (to CUDA from pinned memory), optionally in channels_last layout
    (4-D images); on CPU the tensor itself."""
    # asynchronous only towards the GPU: a non-blocking copy to the host could be read before it lands
    x = pinned(x, device).to(device, non_blocking=device.type == "cuda")
    return x.contiguous(memory_format=torch.channels_last) if channels_last and x.dim() == 4 else x


def compiled(module: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(module)`` when ``enabled`` (the first steps pay the compilation), else ``module``."""
    return torch.compile(module) if enabled else module
