"""GAN families: a registry of factories returning ``(G, D, loss)``.

Families differ only in networks and losses; :mod:`sonogan.synth.trainer` runs them all.

Example:
    >>> from sonogan.synth.config import GanConfig
    >>> G, D, loss = create_gan("dcgan", GanConfig(ngf=8, ndf=8))
    >>> sorted(GAN_FAMILIES.names())[:2]
    ['acgan', 'cgan']
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from sonogan.synth.nets.families import CONDITIONAL, GAN_FAMILIES


def create_gan(name: str, cfg: Any, num_classes: int = 1) -> tuple[nn.Module, nn.Module, Any]:
    """Build (G, D, loss object) for family ``name``; weights are seeded by ``cfg.seed``.

    Construction runs inside ``torch.random.fork_rng`` with ``cfg.seed`` so it is
    deterministic without touching the caller's global RNG.
    """
    factory = GAN_FAMILIES.get(name)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        G, D, loss = factory(cfg, num_classes=num_classes)
    G.family = name  # type: ignore[assignment]
    if cfg.z_dist != "default":
        G.z_dist = cfg.z_dist  # type: ignore[assignment]
    return G, D, loss


def sample_z(G: nn.Module, n: int, gen: torch.Generator, device: torch.device | str = "cpu") -> torch.Tensor:
    """Noise for ``G`` from its distribution (normal, or uniform [-1, 1] for Radford/Frid-Adar)."""
    if getattr(G, "z_dist", "normal") == "uniform":
        z = torch.rand(n, G.z_dim, generator=gen, device=gen.device) * 2 - 1
    else:
        z = torch.randn(n, G.z_dim, generator=gen, device=gen.device)
    return z.to(device)


def discriminator_as_classifier(D: nn.Module) -> nn.Module:
    """Wrap an AC-GAN discriminator as a classifier returning class logits (Frid-Adar's comparison)."""
    if getattr(D, "aux", None) is None:
        raise ValueError("only AC-GAN discriminators (head='aux') have a class head")
    return _AuxClassifier(D)


class _AuxClassifier(nn.Module):
    def __init__(self, D: nn.Module) -> None:
        super().__init__()
        self.D = D

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.D(x)[1]


# Importing the family modules registers them (each imports the registry from families.py, not
# from here, so no family module imports this file back).
from sonogan.synth.nets import conditional, dcgan, dcgan_radford, sngan, wgan  # noqa: E402,F401
