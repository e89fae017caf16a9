"""Precision and device settings of training, decided in one place: autocast dtype, loss
scaling, memory layout, optimiser kernels, cuDNN autotuning, pinned host memory and torch.compile.

Every training config carries ``precision: auto | fp32 | bf16`` and ``memory_format: auto |
channels_first | channels_last``; :func:`resolve_precision` turns them, for one model family
at one input size on one device, into a :class:`Precision` with a one-line ``reason``, which
every loop uses for its autocast context, its GradScaler, the layout of its model and
batches, its optimiser kernels (:meth:`Precision.optimizer_kwargs`) and ``compile``; the
run records :meth:`Precision.describe` (run.json, checkpoints, history.json).

- CPU, ``auto``: the fastest variant :data:`CPU_SPEED` measured for that family and size,
  bf16 only where the CPU has native bf16 instructions (:func:`bf16_flag`), else fp32. A
  family not measured stays float32 in the default layout.
- CPU, explicit values: as configured (bf16 also without native instructions: emulated, slow).
- CUDA: the loop's CUDA policy, unchanged (:func:`precision_for`: ``amp`` and channels_last);
  ``precision`` and ``memory_format`` choose the CPU path.

Master weights, optimiser state, losses and metrics stay float32 (the loops cast outputs to
float before their loss). The library default is fp32 / channels_first (GANs: the measured
layout rule of :func:`sonogan.synth.state.use_channels_last`), so an existing run keeps its
numbers; the MMOTU configs ask for ``auto``.

Example:
    >>> import torch
    >>> cpu = precision_for(torch.device("cpu"), amp=True)
    >>> cpu.autocast_dtype is None, cpu.channels_last, cpu.scaler().is_enabled(), cpu.describe()["autocast"]
    (True, False, False, 'float32')
    >>> fast = resolve_precision(torch.device("cpu"), "auto", "auto", family="dcgan", size=64,
    ...                          flags="fpu sse2 avx512f avx512_bf16")
    >>> fast.autocast_dtype, fast.channels_last, fast.optimizer_kwargs()
    (torch.bfloat16, True, {'fused': True})
    >>> fast.reason
    'bf16 + channels_last: fastest for dcgan at 64 px in benchmarks/results/cpu_speed.json on a CPU with avx512_bf16'
"""

from __future__ import annotations

import contextlib
import functools
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Literal

import torch
from torch import nn

PrecisionName = Literal["auto", "fp32", "bf16"]
MemoryFormatName = Literal["auto", "channels_first", "channels_last"]
BENCHMARK = "benchmarks/results/cpu_speed.json"
BF16_FLAGS = ("avx512_bf16", "amx_bf16")  # x86 flags of native bf16 dot products (AVX-512 BF16, AMX)

# Training throughput (img/s) of one step (forward, fp32 loss, backward, optimiser) per
# variant, by model family and input size in px; the variant names are benchmarks/cpu_speed.py's.
# Measured by benchmarks/cpu_speed.py (benchmarks/results/cpu_speed.json, its 2-thread rows:
# AMD EPYC with avx512_bf16, quiet machine, load 0.2 -> 1.4; batch 32, U-Net 16, DCGAN 64).
# Only ratios within a row matter: auto takes the row's fastest allowed variant (BF16_MARGIN).
CPU_SPEED: dict[str, dict[int, dict[str, float]]] = {
    "efficientnet-lite0": {160: {"fp32": 14.04, "fp32-cl": 25.32, "bf16": 23.56, "bf16-cl": 25.43},
                           224: {"fp32": 5.87, "fp32-cl": 10.28, "bf16": 12.85, "bf16-cl": 13.66}},
    "efficientnet-lite0-unet": {160: {"fp32": 10.22, "fp32-cl": 14.12, "bf16": 15.6, "bf16-cl": 17.44}},
    "dcgan": {64: {"fp32": 87.57, "fp32-cl": 96.98, "bf16": 145.22, "bf16-cl": 148.23}},
    # ngf = ndf = 32, batch 32 (the verdict's GANs), measured on its own (load 1.7)
    "dcgan-w32": {64: {"fp32": 184.14, "fp32-cl": 229.71, "bf16": 277.48, "bf16-cl": 292.9}},
}
#: bf16 changes a run's numbers, so ``auto`` takes it only when it is clearly faster than the best
#: float32 layout: by this factor (the machine's run-to-run noise is a few per cent).
BF16_MARGIN = 1.05


def amp_dtype(device: torch.device) -> torch.dtype:
    """bfloat16 on GPUs that support it (float32's exponent range: no loss scaling), else float16."""
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float16


@dataclass(frozen=True)
class Precision:
    """How training runs on ``device``: autocast in ``autocast_dtype`` (None = float32, no
    autocast), loss scaling for float16, conv nets and their image batches in channels_last
    layout when ``channels_last``, torch.compile when ``compile``; ``reason`` says why (it is
    not part of the comparison). Master weights, optimiser state, losses and metrics stay
    float32 (the tasks cast logits to float before their loss)."""

    device: torch.device
    autocast_dtype: torch.dtype | None = None
    channels_last: bool = False
    compile: bool = False
    reason: str = field(default="", compare=False)

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

    def optimizer_kwargs(self) -> dict[str, bool]:
        """Kernels of Adam / AdamW / SGD: multi-tensor (``foreach``) everywhere, which gives the
        same bits as the per-parameter loop in float32 (checked for all three, torch 2.14, CPU);
        fused on the CPU's bf16 path only: a Lite0 AdamW step ~3x faster (29 -> 9 ms, 1 thread),
        but its last bits differ from the loop's, so only where autocast changes the numbers anyway."""
        if self.device.type == "cpu" and self.autocast_dtype == torch.bfloat16:
            return {"fused": True}
        return {"foreach": True}

    def model(self, model: nn.Module) -> nn.Module:
        """``model`` (already on the device) in this layout, in place; the optimiser comes after."""
        if self.channels_last:
            model.to(memory_format=torch.channels_last)
        return model

    def inputs(self, x: torch.Tensor) -> torch.Tensor:
        """A training tensor on the device, 4-D images in this layout (:func:`to_device`)."""
        return to_device(x, self.device, self.channels_last)

    def wrap(self, module: nn.Module) -> nn.Module:
        """What runs the training forward: ``module``, compiled when :attr:`compile` (:func:`compiled`)."""
        return compiled(module, self.compile)

    def describe(self) -> dict[str, str | bool]:
        """What was used and why, for logs and run records."""
        return {"device": str(self.device),
                "autocast": "float32" if self.autocast_dtype is None else str(self.autocast_dtype).split(".")[-1],
                "memory_format": "channels_last" if self.channels_last else "channels_first",
                "compile": self.compile, "reason": self.reason}


def precision_for(device: torch.device, amp: bool = True, channels_last: bool = True) -> Precision:
    """The CUDA policy of a training run: autocast in :func:`amp_dtype` when ``amp`` and
    channels_last when ``channels_last`` (tensor-core convolutions need no transposes under
    autocast); on any other device float32 eager in the default layout (the CPU's choices are
    :func:`resolve_precision`'s)."""
    if device.type != "cuda":
        return Precision(device)
    return Precision(device, amp_dtype(device) if amp else None, channels_last)


def bf16_flag(flags: str) -> str | None:
    """The first native-bf16 instruction-set flag in ``flags`` (a /proc/cpuinfo "flags" line,
    space-separated), or None when the CPU has none (bf16 would be emulated, slower than fp32)."""
    present = set(flags.lower().split())
    return next((f for f in BF16_FLAGS if f in present), None)


@functools.lru_cache(maxsize=1)  # the CPU does not change within a process: read /proc/cpuinfo once
def host_cpu_flags() -> str:
    """This CPU's flags: the /proc/cpuinfo "flags" line on Linux; elsewhere the bf16 flags that
    torch's own runtime CPU checks find (``torch.backends.cpu.get_cpu_capability()`` names only
    the vector width, "AVX512", not whether it has bf16)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return line.split(":", 1)[1].strip()
    checks = (("avx512_bf16", "_is_avx512_bf16_supported"), ("amx_bf16", "_is_amx_tile_supported"))
    return " ".join(flag for flag, name in checks if getattr(torch.cpu, name, lambda: False)())


def _label(bf16: bool, channels_last: bool) -> str:
    return f"{'bf16' if bf16 else 'fp32'} + {'channels_last' if channels_last else 'channels_first'}"


def resolve_precision(device: torch.device, precision: PrecisionName = "fp32",
                      memory_format: MemoryFormatName = "channels_first", *, family: str, size: int,
                      compile: bool = False, cuda: Precision | None = None, flags: str | None = None,
                      layout_rule: tuple[bool, str] | None = None) -> Precision:
    """The :class:`Precision` of training ``family`` (a classifier, segmenter backbone or GAN
    family name) on ``size``-px inputs on ``device``, with its one-line reason; see the module
    docstring. ``cuda``: the loop's CUDA policy (default :func:`precision_for`); ``flags``: the
    CPU flags (default :func:`host_cpu_flags`); ``layout_rule``: (channels_last, why) for
    ``memory_format: auto`` where :data:`CPU_SPEED` has no row (the GANs' measured rule)."""
    if device.type == "cuda":
        chosen = cuda if cuda is not None else precision_for(device)
        d = chosen.describe()
        return replace(chosen, compile=compile, reason=f"CUDA: {d['autocast']} + {d['memory_format']} "
                       "(the CUDA policy: amp and channels_last; precision and memory_format choose the CPU path)")
    native = bf16_flag(host_cpu_flags() if flags is None else flags)
    dtypes = [precision == "bf16"] if precision != "auto" else ([False, True] if native else [False])
    layouts = [memory_format == "channels_last"] if memory_format != "auto" else [False, True]
    rows = CPU_SPEED.get(family.lower(), {})
    at = min(rows, key=lambda s: (abs(s - size), s)) if rows else None
    bf16, cl = dtypes[0], layouts[0]
    if precision != "auto" and memory_format != "auto":
        why = "as configured"
    elif at is not None:
        speed = rows[at]
        rate = lambda v: speed[("bf16" if v[0] else "fp32") + ("-cl" if v[1] else "")]  # noqa: E731
        # ties keep the earlier variant: fp32 before bf16, channels_first before channels_last
        bf16, cl = max(((b, c) for b in dtypes for c in layouts), key=rate)
        best_fp32 = max(((False, c) for c in layouts), key=rate) if False in dtypes else None
        if bf16 and best_fp32 is not None and rate((bf16, cl)) < BF16_MARGIN * rate(best_fp32):
            bf16, cl = best_fp32
        why = f"fastest for {family} at {at} px in {BENCHMARK}"
    else:
        why = f"{family} is not measured in {BENCHMARK}, so the float32 default"
        if memory_format == "auto" and layout_rule is not None:
            cl, why = layout_rule[0], f"{why}; {layout_rule[1]}"
    if why != "as configured" and "auto" in (precision, memory_format) and not precision == memory_format:
        why += f" ({'precision' if precision != 'auto' else 'memory_format'} as configured)"
    if precision == "auto" or bf16:
        why += f" on a CPU with {native}" if native else " on a CPU without native bf16 instructions"
        why += " (emulated: slower than fp32)" if bf16 and not native else ""
    return Precision(device, torch.bfloat16 if bf16 else None, cl, compile, reason=f"{_label(bf16, cl)}: {why}")


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
    """``torch.compile(module)`` when ``enabled`` (inductor, also on the CPU; the first steps
    pay the compilation), else ``module``."""
    return torch.compile(module) if enabled else module


class Float32Outputs(nn.Module):
    """``module`` whose tensor outputs (or tuple of them) are cast to float32, so a loss applied
    to them by code that does not cast (the GAN loss objects) is computed in float32 under autocast."""

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        self.module = module

    def forward(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        out = self.module(*args, **kwargs)
        return tuple(o.float() for o in out) if isinstance(out, tuple) else out.float()
