"""DiffAugment (Zhao et al. 2020): differentiable augmentations applied to real AND fake
images before D, so D cannot memorise a tiny training set (e.g. 38 images).

Policies by string, comma-separated: ``color`` (brightness, saturation, contrast),
``translation`` (integer shifts up to 1/8 of the side, zero fill), ``cutout`` (a zeroed square
of half the side). Every op draws from the caller's ``torch.Generator``: same generator
state -> same augmentation. Images are in [-1, 1], shape (N, C, H, W).

Example:
    >>> import torch
    >>> g = torch.Generator().manual_seed(0)
    >>> x = torch.zeros(2, 1, 8, 8, requires_grad=True)
    >>> diff_augment(x, "color,translation,cutout", g).shape
    torch.Size([2, 1, 8, 8])
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F


def _rand(x: torch.Tensor, gen: torch.Generator, *shape: int) -> torch.Tensor:
    return torch.rand(*shape, generator=gen, device=gen.device).to(device=x.device, dtype=x.dtype)


def brightness(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    return x + (_rand(x, gen, x.shape[0], 1, 1, 1) - 0.5)


def saturation(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    mean = x.mean(dim=1, keepdim=True)  # a no-op for 1-channel images, as in the original
    return (x - mean) * (_rand(x, gen, x.shape[0], 1, 1, 1) * 2) + mean


def contrast(x: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
    mean = x.mean(dim=[1, 2, 3], keepdim=True)
    return (x - mean) * (_rand(x, gen, x.shape[0], 1, 1, 1) + 0.5) + mean


def translation(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.125) -> torch.Tensor:
    """Integer-pixel shift with zero fill, via grid_sample (exact at integer shifts, differentiable)."""
    n, _, h, w = x.shape
    max_shift = torch.tensor([int(w * ratio + 0.5), int(h * ratio + 0.5)])
    shift = (torch.randint(-2 ** 30, 2 ** 30, (n, 2), generator=gen, device=gen.device).cpu()
             % (2 * max_shift + 1)) - max_shift
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0] = 1
    theta[:, 1, 1] = 1
    theta[:, 0, 2] = -2 * shift[:, 0].float() / w
    theta[:, 1, 2] = -2 * shift[:, 1].float() / h
    grid = F.affine_grid(theta.to(x), list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="nearest", padding_mode="zeros", align_corners=False)


def cutout(x: torch.Tensor, gen: torch.Generator, ratio: float = 0.5) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    cy = (_rand(x, gen, n, 1, 1) * (h + (1 - ch % 2))).long().to(x.device)
    cx = (_rand(x, gen, n, 1, 1) * (w + (1 - cw % 2))).long().to(x.device)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys - cy + ch // 2).clamp(0, h) < ch) & ((ys - cy + ch // 2) >= 0) \
        & ((xs - cx + cw // 2) >= 0) & ((xs - cx + cw // 2) < cw)
    return x * (~inside).unsqueeze(1).to(x.dtype)


POLICIES: dict[str, list[Callable[[torch.Tensor, torch.Generator], torch.Tensor]]] = {
    "color": [brightness, saturation, contrast],
    "translation": [translation],
    "cutout": [cutout],
}


def diff_augment(x: torch.Tensor, policy: str, gen: torch.Generator) -> torch.Tensor:
    """Apply the comma-separated ``policy`` to ``x`` with randomness from ``gen`` ('' = identity)."""
    for name in (p.strip() for p in policy.split(",")):
        if name:
            for op in POLICIES[name]:
                x = op(x, gen)
    return x
