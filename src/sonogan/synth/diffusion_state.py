"""Networks, schedulers, training state and checkpoints of a diffusion run (plain dicts of
tensors, never pickled code: ``torch.load(weights_only=True)`` reads every checkpoint).

Example:
    >>> from sonogan.synth.diffusion_config import DiffusionConfig
    >>> cfg = DiffusionConfig(widths=(8, 16), norm_groups=8, device="cpu")
    >>> st = build_state(cfg, num_classes=1, device=torch.device("cpu"))
    >>> ckpt = st.to_checkpoint(meta={"training_ids": ["a"], "classes": ["benign", "borderline"]})
    >>> st2 = build_state(cfg, num_classes=1, device=torch.device("cpu"))
    >>> st2.load_checkpoint(ckpt)
    >>> is_diffusion_checkpoint(ckpt)
    True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from diffusers.optimization import get_constant_schedule_with_warmup
from torch import nn

import sonogan
from sonogan.errors import SonoganInputError
from sonogan.torch_utils import load_torch_file
from sonogan.synth.diffusion_config import DiffusionConfig
from sonogan.synth.ema import make_ema
from sonogan.train.accel import Precision, resolve_precision

# The key that tells a diffusion checkpoint from a GAN one (which holds "G_ema").
CHECKPOINT_KEYS = ("unet_ema", "config", "num_classes", "classes")


def build_unet(cfg: DiffusionConfig, num_classes: int) -> UNet2DModel:
    """diffusers' UNet2DModel sized by ``cfg``; class embeddings only for a class-conditional run.
    Initialised from ``cfg.seed`` inside a forked RNG: diffusers draws initial weights from the
    global RNG, which this must neither depend on nor change."""
    levels = len(cfg.widths)
    down = ["DownBlock2D"] * levels
    up = ["UpBlock2D"] * levels
    if cfg.attention:  # at the deepest level only: attention at 64x64 costs more than the convolutions
        down[-1], up[0] = "AttnDownBlock2D", "AttnUpBlock2D"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        return UNet2DModel(
            sample_size=cfg.resolution, in_channels=cfg.channels, out_channels=cfg.channels,
            block_out_channels=tuple(cfg.widths), layers_per_block=cfg.layers_per_block,
            down_block_types=tuple(down), up_block_types=tuple(up), norm_num_groups=cfg.norm_groups,
            add_attention=cfg.attention, num_class_embeds=num_classes if cfg.class_conditional else None)


def noise_scheduler(cfg: DiffusionConfig) -> DDPMScheduler:
    """The training noise schedule (epsilon prediction)."""
    return DDPMScheduler(num_train_timesteps=cfg.train_timesteps, beta_schedule=cfg.beta_schedule,
                         prediction_type="epsilon", clip_sample=True)


def ddim_scheduler(cfg: DiffusionConfig) -> DDIMScheduler:
    """The sampler on the training schedule's betas (built directly, not ``from_config``, so no
    warning about DDPM-only keys)."""
    return DDIMScheduler(num_train_timesteps=cfg.train_timesteps, beta_schedule=cfg.beta_schedule,
                         prediction_type="epsilon", clip_sample=True, set_alpha_to_one=False)


@dataclass
class DiffusionState:
    """Everything that must survive a kill for an identical continuation."""

    cfg: DiffusionConfig
    unet: nn.Module
    unet_ema: nn.Module
    opt: torch.optim.Optimizer
    lr_sched: torch.optim.lr_scheduler.LambdaLR
    scaler: torch.amp.GradScaler
    gen: torch.Generator        # batches, flips, timesteps, noise; on the training device, so
                                # drawing never syncs host and GPU, and no global RNG is touched
    num_classes: int
    iteration: int = 0
    history: list[dict] = field(default_factory=list)   # flushed mean losses

    def to_checkpoint(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {
            "unet": self.unet.state_dict(), "unet_ema": self.unet_ema.state_dict(),
            "opt": self.opt.state_dict(), "lr_sched": self.lr_sched.state_dict(),
            "scaler": self.scaler.state_dict(), "rng": {"torch": self.gen.get_state()},
            "iteration": self.iteration, "history": self.history, "kind": "diffusion",
            "config": self.cfg.model_dump(mode="json"), "num_classes": self.num_classes,
            "sonogan_version": sonogan.__version__, **meta,
        }

    def load_checkpoint(self, ckpt: dict[str, Any]) -> None:
        self.unet.load_state_dict(ckpt["unet"])
        self.unet_ema.load_state_dict(ckpt["unet_ema"])
        self.opt.load_state_dict(ckpt["opt"])
        self.lr_sched.load_state_dict(ckpt["lr_sched"])
        self.scaler.load_state_dict(ckpt["scaler"])
        self.gen.set_state(ckpt["rng"]["torch"])
        self.iteration = int(ckpt["iteration"])
        self.history = list(ckpt["history"])


def diffusion_precision(cfg: DiffusionConfig, device: torch.device) -> Precision:
    """How the UNet trains on ``device`` (:func:`sonogan.train.accel.resolve_precision` for the
    family at its resolution); on CUDA float16 autocast when ``amp``, as before."""
    cuda = Precision(device, torch.float16 if cfg.amp else None)
    return resolve_precision(device, cfg.precision, cfg.memory_format, family=cfg.family, size=cfg.resolution,
                             cuda=cuda)


def build_state(cfg: DiffusionConfig, num_classes: int, device: torch.device,
                precision: Precision | None = None) -> DiffusionState:
    """Fresh UNet (seeded), EMA copy, AdamW with warm-up, scaler and the run's generator, in
    ``precision`` (default :func:`diffusion_precision`)."""
    precision = precision or diffusion_precision(cfg, device)
    unet = precision.model(build_unet(cfg, num_classes).to(device))
    opt = torch.optim.AdamW(unet.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay,
                            **precision.optimizer_kwargs())
    return DiffusionState(
        cfg=cfg, unet=unet, unet_ema=make_ema(unet), opt=opt,
        # diffusers' warm-up schedule: its lambda is a closure, so the state_dict stays plain values
        lr_sched=get_constant_schedule_with_warmup(opt, cfg.warmup),
        scaler=torch.amp.GradScaler(device.type, enabled=precision.autocast_dtype is not None and device.type == "cuda"),
        gen=torch.Generator(device=device).manual_seed(cfg.seed), num_classes=num_classes)


def is_diffusion_checkpoint(ckpt: Any) -> bool:
    return isinstance(ckpt, dict) and "unet_ema" in ckpt


def load_diffusion_checkpoint(path: str | Path) -> dict[str, Any]:
    """A diffusion run's checkpoint, checked for the keys sampling and resuming need."""
    ckpt = load_torch_file(path, "train the ddpm run first or check the run folder",
                           "pass another checkpoint (--checkpoint last or a .pt path), or train the ddpm run again")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt] if isinstance(ckpt, dict) else list(CHECKPOINT_KEYS)
    if missing:
        raise SonoganInputError(path, f"not a sonogan diffusion checkpoint (missing {missing})",
                                "pass the last.pt of a 'sonogan synth train --model ddpm' run")
    return ckpt


def load_ema_unet(ckpt: dict[str, Any]) -> tuple[nn.Module, DiffusionConfig]:
    """The EMA UNet (what samples) rebuilt from a checkpoint's own config."""
    cfg = DiffusionConfig.model_validate(ckpt["config"])
    unet = build_unet(cfg, int(ckpt["num_classes"]))
    unet.load_state_dict(ckpt["unet_ema"])
    return unet.eval().requires_grad_(False), cfg
