"""Training state of a GAN run and its checkpoint (plain dicts of tensors, never pickled code).

Example:
    >>> from sonogan.synth.config import GanConfig
    >>> st = build_state(GanConfig(ngf=4, ndf=4), num_classes=1, device=torch.device("cpu"))
    >>> ckpt = st.to_checkpoint(meta={"training_ids": ["a", "b"]})
    >>> st2 = build_state(GanConfig(ngf=4, ndf=4), num_classes=1, device=torch.device("cpu"))
    >>> st2.load_checkpoint(ckpt)
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import nn

import sonogan
from sonogan.errors import SonoganInputError
from sonogan.torch_utils import load_torch_file
from sonogan.synth.config import GanConfig
from sonogan.synth.ema import make_ema
from sonogan.synth.nets import create_gan
from sonogan.train.accel import CPU_SPEED, Precision, amp_dtype, resolve_precision


@dataclass
class GanState:
    """Everything that must survive a kill for an identical continuation."""

    cfg: GanConfig
    G: nn.Module
    D: nn.Module
    G_ema: nn.Module
    loss: Any
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    scaler_g: torch.amp.GradScaler
    scaler_d: torch.amp.GradScaler
    gen: torch.Generator                      # batches, noise, augmentation, GP mixing; on the training
                                              # device, so drawing never syncs host and GPU
    np_rng: np.random.Generator               # host-side choices (which real images to show)
    num_classes: int
    iteration: int = 0
    history: list[dict] = field(default_factory=list)   # flushed mean losses
    quality: list[dict] = field(default_factory=list)   # stopping-rule distance curve
    best_fd: float = float("inf")
    best_iteration: int = -1
    bad_checks: int = 0
    stopped_early: bool = False

    def to_checkpoint(self, meta: dict[str, Any]) -> dict[str, Any]:
        return {
            "G": self.G.state_dict(), "D": self.D.state_dict(), "G_ema": self.G_ema.state_dict(),
            "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
            "scaler_g": self.scaler_g.state_dict(), "scaler_d": self.scaler_d.state_dict(),
            "iteration": self.iteration, "history": self.history, "quality": self.quality,
            "best_fd": self.best_fd, "best_iteration": self.best_iteration,
            "bad_checks": self.bad_checks, "stopped_early": self.stopped_early,
            "rng": {"torch": self.gen.get_state(), "numpy": self.np_rng.bit_generator.state},
            "config": self.cfg.model_dump(mode="json"), "num_classes": self.num_classes,
            "sonogan_version": sonogan.__version__, **meta,
        }

    def load_checkpoint(self, ckpt: dict[str, Any]) -> None:
        self.G.load_state_dict(ckpt["G"])
        self.D.load_state_dict(ckpt["D"])
        self.G_ema.load_state_dict(ckpt["G_ema"])
        self.opt_g.load_state_dict(ckpt["opt_g"])
        self.opt_d.load_state_dict(ckpt["opt_d"])
        self.scaler_g.load_state_dict(ckpt["scaler_g"])
        self.scaler_d.load_state_dict(ckpt["scaler_d"])
        self.iteration = int(ckpt["iteration"])
        self.history = list(ckpt["history"])
        self.quality = list(ckpt["quality"])
        self.best_fd, self.best_iteration = float(ckpt["best_fd"]), int(ckpt["best_iteration"])
        self.bad_checks, self.stopped_early = int(ckpt["bad_checks"]), bool(ckpt["stopped_early"])
        self.gen.set_state(ckpt["rng"]["torch"])
        self.np_rng.bit_generator.state = ckpt["rng"]["numpy"]


def use_channels_last(cfg: GanConfig, device: torch.device) -> bool:
    """The GANs' measured layout rule (at fp32, where :data:`sonogan.train.accel.CPU_SPEED` has
    no row, and on CUDA): ``channels_last`` when set; else on for CUDA, on CPU for 128 px or
    widths >= 64. Measured on 2 CPU cores (benchmarks/gan_speed.py): it cuts DCGAN step time by
    ~40 % at 128 px and ~10-15 % at 64 px with ngf = ndf = 64, but is ~10-20 % slower at 64 px
    with ngf = ndf = 32."""
    if cfg.channels_last is not None:
        return cfg.channels_last
    return device.type == "cuda" or cfg.resolution >= 128 or max(cfg.ngf, cfg.ndf) >= 64


# the width benchmarks/cpu_speed.py measures the GANs at: another width is another speed table.
# At fp32 the table's dcgan row agrees with use_channels_last (channels_last), so a default run
# keeps its layout and numbers.
MEASURED_WIDTH = 64
# the conditional families train the DCGAN's nets (plus a class embedding), so the DCGAN's rows apply
MEASURED_AS = {"cgan": "dcgan", "acgan": "dcgan"}


def gan_precision(cfg: GanConfig, device: torch.device) -> Precision:
    """How G and D train on ``device`` (:func:`sonogan.train.accel.resolve_precision`): on the
    CPU ``precision`` / ``memory_format`` for the family (measured at ngf = ndf = 64, and for the
    DCGAN nets at 32: ``dcgan-w32``; cgan / acgan use the DCGAN's rows; at other widths the layout
    of ``memory_format: auto`` is :func:`use_channels_last`'s); on CUDA
    ``amp`` and ``channels_last``, as before."""
    nets = MEASURED_AS.get(cfg.family, cfg.family)
    if cfg.ngf == cfg.ndf == MEASURED_WIDTH:
        family = nets
    elif cfg.precision == "auto" and cfg.ngf == cfg.ndf and f"{nets}-w{cfg.ngf}" in CPU_SPEED:
        # only under auto: a float32 run at this width keeps the older layout rule and its numbers
        family = f"{nets}-w{cfg.ngf}"
    else:
        family = f"{cfg.family} (ngf {cfg.ngf}, ndf {cfg.ndf})"
    rule = use_channels_last(cfg, torch.device("cpu"))
    why = f"channels_{'last' if rule else 'first'} by the GAN layout rule (channels_last at 128 px or widths >= 64)"
    cuda = Precision(device, amp_dtype(device) if cfg.amp else None, use_channels_last(cfg, device))
    return resolve_precision(device, cfg.precision, cfg.layout, family=family, size=cfg.resolution,
                             compile=cfg.compile, cuda=cuda, layout_rule=(rule, why))


def build_state(cfg: GanConfig, num_classes: int, device: torch.device,
                precision: Precision | None = None) -> GanState:
    """Fresh nets (seeded), Adam optimisers, EMA copy, scalers and generators for ``cfg``, in
    ``precision`` (default :func:`gan_precision`)."""
    precision = precision or gan_precision(cfg, device)
    G, D, loss = create_gan(cfg.family, cfg, num_classes=num_classes)
    G, D = precision.model(G.to(device)), precision.model(D.to(device))
    # loss scaling as before on CUDA (also under bfloat16); never on the CPU, whose autocast is bfloat16
    amp = precision.autocast_dtype is not None and device.type == "cuda"
    return GanState(
        cfg=cfg, G=G, D=D, G_ema=make_ema(G), loss=loss,
        # multi-tensor Adam also on CPU (fewer per-parameter kernel calls), fused on the CPU's bf16 path
        opt_g=torch.optim.Adam(G.parameters(), lr=cfg.lr_g, betas=cfg.betas, **precision.optimizer_kwargs()),
        opt_d=torch.optim.Adam(D.parameters(), lr=cfg.lr_d, betas=cfg.betas, **precision.optimizer_kwargs()),
        scaler_g=torch.amp.GradScaler(device.type, enabled=amp),
        scaler_d=torch.amp.GradScaler(device.type, enabled=amp),
        gen=torch.Generator(device=device).manual_seed(cfg.seed), np_rng=np.random.default_rng(cfg.seed),
        num_classes=num_classes)


CHECKPOINT_KEYS = ("G", "G_ema", "config", "num_classes", "classes")


def load_checkpoint_file(path: str | Path) -> dict[str, Any]:
    """``torch.load(weights_only=True)``: checkpoints hold tensors and plain Python values only.
    A missing, empty, truncated or foreign file is an input error naming the file."""
    fix = "pass another checkpoint (--checkpoint best, last or a .pt path), or train the GAN again"
    ckpt = load_torch_file(path, "train the GAN first or check the run folder", fix)
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt] if isinstance(ckpt, dict) else list(CHECKPOINT_KEYS)
    if missing:
        raise SonoganInputError(path, f"not a sonogan GAN checkpoint (missing {missing})", fix)
    return ckpt


@contextlib.contextmanager
def batch_stats(G: nn.Module) -> Iterator[nn.Module]:
    """Run G with batch statistics in BatchNorm without changing its running stats.

    The EMA weights do not match the running stats copied from G, so (as in the PyTorch
    DCGAN example) we sample with batch statistics; momentum 0 leaves the buffers untouched.
    """
    bns = [m for m in G.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.training, m.momentum) for m in bns]
    was = G.training
    G.eval()
    for m in bns:
        m.train()
        m.momentum = 0.0
    try:
        with torch.no_grad():
            yield G
    finally:
        for m, (tr, mom) in zip(bns, saved):
            m.train(tr)
            m.momentum = mom
        G.train(was)
