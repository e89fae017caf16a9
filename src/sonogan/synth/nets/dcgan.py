"""``dcgan``: the flagship paper's DCGAN (three transposed convs in G, three convs in D,
BatchNorm + LeakyReLU on all but the input and output layers, BCE loss).

Example:
    >>> from sonogan.synth.config import GanConfig
    >>> from sonogan.synth.nets import create_gan
    >>> G, D, loss = create_gan("dcgan", GanConfig(ngf=8, ndf=8))
"""

from __future__ import annotations

from typing import Any

from sonogan.synth.losses import BCELoss
from sonogan.synth.nets.families import GAN_FAMILIES
from sonogan.synth.nets.blocks import Discriminator, Generator, init_normal


def dcgan_nets(cfg: Any, num_classes: int = 0, d_norm: str = "bn", d_head: str = "plain",
               g_classes: int = 0) -> tuple[Generator, Discriminator]:
    """G: linear projection to 8x8x(4 ngf), then 3 transposed convs (x2 each) to 64x64 (+1 for 128).
    D: 3 strided convs (64 -> 8) (+1 for 128), then a linear logit."""
    G = Generator(cfg.z_dim, cfg.channels, cfg.resolution, base=8,
                  widths=[cfg.ngf * 4, cfg.ngf * 2, cfg.ngf], kernel=4, act="lrelu",
                  project_norm=False, num_classes=g_classes)
    D = Discriminator(cfg.channels, cfg.resolution, widths=[cfg.ndf, cfg.ndf * 2, cfg.ndf * 4],
                      kernel=4, norm=d_norm, head=d_head, num_classes=num_classes)
    init_normal(G)
    init_normal(D)
    return G, D


@GAN_FAMILIES.register("dcgan")
def make_dcgan(cfg: Any, num_classes: int = 1) -> tuple:
    G, D = dcgan_nets(cfg)
    return G, D, BCELoss()
