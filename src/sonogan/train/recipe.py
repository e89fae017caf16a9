"""The fine-tuning recipe's parts: optimiser (timm's, with layer-wise lr decay), a per-step
warm-up + cosine schedule, weight EMA (timm), and test-time augmentation.

All of them keep their state in plain ``state_dict``s, so ``last.pt`` resumes them exactly.

Example:
    >>> import torch
    >>> from sonogan.train.config import ClassifierTrainConfig
    >>> cfg = ClassifierTrainConfig(optimizer="adamw", lr=1e-3, schedule="cosine", warmup_epochs=1, epochs=4)
    >>> model = torch.nn.Linear(2, 2)
    >>> opt = make_optimizer(cfg, model)
    >>> sched = make_scheduler(cfg, opt, steps_per_epoch=10)
    >>> [round(lr_factor(cfg, s, 10), 3) for s in (0, 9, 10, 25, 39)]
    [0.1, 1.0, 1.0, 0.478, 0.01]
"""

from __future__ import annotations

import math

import torch
from timm.optim import create_optimizer_v2
from timm.utils import ModelEmaV3
from torch import nn

from sonogan.train.config import ClassifierTrainConfig


def make_optimizer(cfg: ClassifierTrainConfig, model: nn.Module,
                   kernels: dict[str, bool] | None = None) -> torch.optim.Optimizer:
    """Adam / SGD over all parameters as before; AdamW (or any optimiser with layer decay)
    through timm, which also keeps weight decay off biases and norm layers. ``kernels``: the
    implementation, ``{"foreach": True}`` or ``{"fused": True}``
    (:meth:`sonogan.train.accel.Precision.optimizer_kwargs`); None: torch's default."""
    kernels = kernels or {}
    if cfg.optimizer == "adamw" or cfg.layer_decay is not None:
        return create_optimizer_v2(model, opt=cfg.optimizer if cfg.optimizer != "sgd" else "nesterov", lr=cfg.lr,
                                   weight_decay=cfg.weight_decay, momentum=cfg.momentum, layer_decay=cfg.layer_decay,
                                   **kernels)
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, **kernels)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                           nesterov=cfg.nesterov and cfg.momentum > 0, **kernels)


def lr_factor(cfg: ClassifierTrainConfig, step: int, steps_per_epoch: int) -> float:
    """Multiplier of each group's base lr at optimiser step ``step`` (0-based)."""
    if cfg.schedule == "constant":
        return 1.0
    warmup = cfg.warmup_epochs * steps_per_epoch
    if step < warmup:
        return (step + 1) / warmup
    total = max(cfg.epochs * steps_per_epoch - warmup, 1)
    progress = min((step - warmup) / max(total - 1, 1), 1.0)
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def make_scheduler(cfg: ClassifierTrainConfig, optimizer: torch.optim.Optimizer,
                   steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    """A per-step LambdaLR of :func:`lr_factor` (a state_dict, so a resume continues it).
    The factor is a few lines of arithmetic; torch's LambdaLR keeps the stepping and state."""
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: lr_factor(cfg, step, steps_per_epoch))


def make_ema(cfg: ClassifierTrainConfig, model: nn.Module) -> ModelEmaV3 | None:
    """timm's weight EMA (a copy of the model, updated after every optimiser step), or None."""
    return None if cfg.ema_decay is None else ModelEmaV3(model, decay=cfg.ema_decay)


@torch.no_grad()
def tta_logits(model: nn.Module, x: torch.Tensor, tta: str) -> torch.Tensor:
    """Logits of ``x``; with ``tta="hflip"`` the mean of the softmax of x and of its mirror,
    returned as log-probabilities so a softmax recovers that mean."""
    if tta == "none":
        return model(x)
    probs = (torch.softmax(model(x).float(), 1) + torch.softmax(model(x.flip(-1)).float(), 1)) / 2
    return probs.clamp_min(1e-12).log()
