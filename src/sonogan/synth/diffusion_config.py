"""``DiffusionConfig``: one typed config for a denoising-diffusion generator run (family "ddpm").

Trained with the DDPM objective (epsilon prediction, diffusers ``DDPMScheduler`` noise
schedule), sampled with the deterministic DDIM sampler (diffusers ``DDIMScheduler``, eta 0).
The defaults are sized for a CPU: a 3-level UNet of widths (32, 64, 64) without attention.

Example:
    >>> cfg = DiffusionConfig(iterations=200)
    >>> cfg.family, cfg.widths, cfg.beta_schedule, cfg.sample_steps
    ('ddpm', (32, 64, 64), 'squaredcos_cap_v2', 50)
    >>> try:
    ...     DiffusionConfig(widths=(24, 48))
    ... except ValueError as exc:
    ...     print("must divide every UNet width" in str(exc))
    True
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from sonogan.config import StrictModel
from sonogan.train.accel import MemoryFormatName, PrecisionName

DIFFUSION_FAMILIES = ("ddpm",)


class DiffusionConfig(StrictModel):
    """UNet, noise schedule, sampler, optimiser, loop budget, EMA and augmentation of one run."""

    family: Literal["ddpm"] = Field("ddpm", description="generator family; 'ddpm' = DDPM training, DDIM sampling")
    resolution: Literal[64, 128] = 64
    channels: Literal[1, 3] = 1
    widths: tuple[int, ...] = Field((32, 64, 64), min_length=2, max_length=6,
                                    description="UNet block widths, one per resolution level")
    layers_per_block: int = Field(1, ge=1, le=4, description="ResNet blocks per UNet level")
    norm_groups: int = Field(32, ge=1, description="GroupNorm groups; must divide every width")
    attention: bool = Field(False, description="self-attention at the deepest level (costly on CPU at 64 px)")
    train_timesteps: int = Field(1000, ge=2, description="diffusion steps of the noise schedule")
    beta_schedule: Literal["squaredcos_cap_v2", "linear", "scaled_linear"] = Field(
        "squaredcos_cap_v2", description="DDPMScheduler beta schedule; squaredcos_cap_v2 = cosine")
    sample_steps: int = Field(50, ge=1, description="DDIM steps when sampling (grids and datasets)")
    iterations: int = Field(5000, ge=1, description="budget of optimiser steps")
    batch_size: int = Field(16, ge=1)
    lr: float = Field(2e-4, gt=0)
    warmup: int = Field(200, ge=0, description="linear learning-rate warm-up over this many iterations")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="EMA of the UNet weights (used to sample); 0 = copy")
    hflip: bool = Field(True, description="random horizontal flips of the training images")
    class_conditional: bool = Field(False, description="one model for all classes of a fold (class embeddings)")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: PrecisionName = Field("fp32", description="CPU training precision: fp32, bf16 autocast, or auto "
                                     "(the fastest measured; bf16 only on CPUs with native bf16)")
    memory_format: MemoryFormatName = Field("channels_first", description="CPU layout of the UNet and its batches: "
                                            "channels_first, channels_last, or auto (the fastest measured)")
    amp: bool = Field(True, description="fp16 mixed precision on CUDA (precision and memory_format choose the CPU path)")
    checkpoint_every: int = Field(500, ge=1)
    sample_every: int = Field(500, ge=1, description="fixed-noise grid every N iterations")
    log_every: int = Field(50, ge=1, description="read device-side loss sums every N iterations")
    preset: str = Field("gan-64", description="preprocessing preset of the real images")

    @model_validator(mode="after")
    def _groups_divide_widths(self) -> "DiffusionConfig":
        bad = [w for w in self.widths if w < 1 or w % self.norm_groups]
        if bad:
            raise ValueError(f"norm_groups {self.norm_groups} must divide every UNet width; {bad} do not")
        if self.resolution % 2 ** (len(self.widths) - 1):
            raise ValueError(f"{len(self.widths)} levels halve {self.resolution} px to a fraction")
        if self.sample_steps > self.train_timesteps:
            raise ValueError(f"sample_steps {self.sample_steps} exceeds train_timesteps {self.train_timesteps}")
        return self
