"""Exponential moving average of the generator's weights (used for sampling and grids).

Example:
    >>> import torch
    >>> G = torch.nn.Linear(2, 2)
    >>> G_ema = make_ema(G)
    >>> ema_update(G_ema, G, decay=0.999)
"""

from __future__ import annotations

import copy

import torch
from torch import nn


def make_ema(G: nn.Module) -> nn.Module:
    """A frozen copy of ``G``."""
    G_ema = copy.deepcopy(G)
    G_ema.requires_grad_(False)
    return G_ema


@torch.no_grad()
def ema_update(G_ema: nn.Module, G: nn.Module, decay: float) -> None:
    """ema <- decay * ema + (1 - decay) * G for parameters; buffers (BN stats) are copied."""
    # one multi-tensor call instead of a Python loop per parameter (as timm's ModelEmaV3 does)
    torch._foreach_lerp_(list(G_ema.parameters()), [p.detach() for p in G.parameters()], 1.0 - decay)
    for be, b in zip(G_ema.buffers(), G.buffers()):
        be.copy_(b)
