"""``GanConfig``: one typed config for every GAN family and the shared training loop.

Example:
    >>> cfg = GanConfig(family="dcgan", iterations=2000, diffaugment="color,translation")
    >>> cfg.resolution, cfg.batch_size
    (64, 64)
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from sonogan.config import StrictModel
from sonogan.synth.augment import POLICIES
from sonogan.train.accel import MemoryFormatName, PrecisionName


class GanConfig(StrictModel):
    """Networks, optimiser, loop budget, augmentation, EMA and the stopping rule of one GAN run."""

    family: str = Field("dcgan", description="GAN family (see sonogan.synth.GAN_FAMILIES.names())")
    resolution: Literal[64, 128] = 64
    channels: Literal[1, 3] = 1
    z_dim: int = Field(100, ge=1)
    z_dist: Literal["default", "normal", "uniform"] = Field(
        "default", description="noise distribution; 'default' = the family's (uniform [-1,1] for dcgan-radford)")
    ngf: int = Field(64, ge=1, description="generator width")
    ndf: int = Field(64, ge=1, description="discriminator width")
    batch_size: int = Field(64, ge=1)
    lr_g: float = Field(2e-4, gt=0)
    lr_d: float = Field(2e-4, gt=0)
    betas: tuple[float, float] = (0.5, 0.999)
    n_critic: int = Field(1, ge=1, description="D steps per G step (5 for wgan-gp)")
    gp_weight: float = Field(10.0, ge=0, description="gradient penalty weight (wgan-gp)")
    iterations: int = Field(5000, ge=1, description="budget of G steps")
    checkpoint_every: int = Field(500, ge=1)
    sample_every: int = Field(500, ge=1, description="fixed-noise grid every N iterations")
    log_every: int = Field(50, ge=1, description="read device-side loss sums every N iterations")
    diffaugment: str = Field("", description="DiffAugment policy, e.g. 'color,translation,cutout'; '' = off")
    ema_decay: float = Field(0.999, ge=0, lt=1, description="EMA of G weights; 0 = plain copy")
    seed: int = 0
    device: Literal["auto", "cpu", "cuda"] = "auto"
    precision: PrecisionName = Field("fp32", description="CPU training precision: fp32, bf16 autocast, or auto "
                                     "(the fastest measured for the family; bf16 only on CPUs with native bf16)")
    memory_format: MemoryFormatName = Field(
        "auto", description="CPU layout of G, D and the images: channels_first, channels_last, or auto (the fastest "
                            "measured; at fp32 on an unmeasured family or width: channels_last at 128 px or widths "
                            ">= 64, the GANs' earlier default)")
    amp: bool = Field(False, description="mixed precision on CUDA (bfloat16 where supported, else float16 "
                      "with loss scaling); precision and memory_format choose the CPU path")
    compile: bool = Field(False, description="torch.compile G and D for training (inductor, CUDA or CPU; long runs; "
                          "not with wgan-gp, whose gradient penalty needs a double backward)")
    channels_last: bool | None = Field(None, description="deprecated, read as memory_format: true = channels_last, "
                                       "false = channels_first (also on CUDA, where null = channels_last)")
    preset: str = Field("gan-64", description="preprocessing preset of the real images")
    quality_every: int = Field(500, ge=1, description="feature-distance check every K iterations")
    quality_samples: int = Field(256, ge=8, description="generated images per check")
    patience: int = Field(6, ge=0, description="stop after this many checks without improvement; 0 = never")
    min_iterations: int = Field(0, ge=0, description="never stop early before this iteration")

    @model_validator(mode="after")
    def _compile_family(self) -> "GanConfig":
        if self.compile and self.family == "wgan-gp":
            raise ValueError("compile: true does not work with wgan-gp (torch.compile has no double backward)")
        return self

    @model_validator(mode="after")
    def _layout(self) -> "GanConfig":
        # the older field still decides where the new one is left at auto; both set must agree
        if self.channels_last is not None and self.memory_format != "auto" \
                and (self.memory_format == "channels_last") != self.channels_last:
            raise ValueError(f"channels_last: {str(self.channels_last).lower()} contradicts memory_format: "
                             f"{self.memory_format}; set memory_format only (channels_last is deprecated)")
        return self

    @property
    def layout(self) -> MemoryFormatName:
        """The memory format asked for, ``channels_last`` (deprecated) read into it."""
        if self.memory_format == "auto" and self.channels_last is not None:
            return "channels_last" if self.channels_last else "channels_first"
        return self.memory_format

    @field_validator("diffaugment")
    @classmethod
    def _policy(cls, v: str) -> str:
        bad = [p for p in v.split(",") if p.strip() and p.strip() not in POLICIES]
        if bad:
            raise ValueError(f"unknown DiffAugment policies {bad}; use {sorted(POLICIES)}")
        return v
