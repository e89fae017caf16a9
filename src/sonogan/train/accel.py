"""GPU settings shared by the classifier and GAN loops: autocast dtype, loss scaling, cuDNN
autotuning, pinned host memory, channels_last and torch.compile.

Every helper leaves a CPU run exactly as it was (same tensors, same numbers); they act on CUDA.

Example:
    >>> import torch
    >>> cpu = torch.device("cpu")
    >>> grad_scaler(cpu, amp=True).is_enabled(), to_device(torch.ones(2), cpu).device.type
    (False, 'cpu')
"""

from __future__ import annotations

import torch
from torch import nn


def amp_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on GPUs that support it (float32's exponent range: no loss scaling), else float16."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


def grad_scaler(device: torch.device, amp: bool) -> torch.amp.GradScaler:
    """A GradScaler that is on only for float16 autocast on CUDA (bfloat16 gradients do not underflow)."""
    return torch.amp.GradScaler(device.type, enabled=amp and device.type == "cuda" and amp_dtype(device) == torch.float16)


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


def channels_last_model(model: nn.Module, device: torch.device) -> bool:
    """Conv nets in channels_last layout on CUDA (tensor-core convolutions need no transposes
    under autocast); returns whether it was applied (the inputs must follow)."""
    if device.type != "cuda":
        return False
    model.to(memory_format=torch.channels_last)
    return True


def compiled(module: nn.Module, enabled: bool) -> nn.Module:
    """``torch.compile(module)`` when ``enabled`` (the first steps pay the compilation), else ``module``."""
    return torch.compile(module) if enabled else module
