"""``dcgan-radford``: Radford et al. DCGAN as used by Frid-Adar et al. (liver lesions).

z = 100 uniform in [-1, 1] -> FC to 4x4x1024 -> four 5x5 fractionally-strided convs
(BatchNorm + ReLU, tanh output); D: four strided 5x5 convs with LeakyReLU(0.2) and a
sigmoid output. We keep D's output as a logit and use BCEWithLogits (sigmoid + BCE fused:
numerically stabler, same optimum). Weights N(0, 0.02); Adam 2e-4, beta1 0.5 (GanConfig defaults).

Example:
    >>> from sonogan.synth.config import GanConfig
    >>> from sonogan.synth.nets import create_gan
    >>> G, D, loss = create_gan("dcgan-radford", GanConfig(ngf=4, ndf=4))
    >>> G.z_dist
    'uniform'
"""

from __future__ import annotations

from typing import Any

from sonogan.synth.losses import BCELoss
from sonogan.synth.nets.families import GAN_FAMILIES
from sonogan.synth.nets.blocks import Discriminator, Generator, init_normal


@GAN_FAMILIES.register("dcgan-radford")
def make_dcgan_radford(cfg: Any, num_classes: int = 1) -> tuple:
    # ngf=64 gives the paper's 1024-512-256-128 widths.
    G = Generator(cfg.z_dim, cfg.channels, cfg.resolution, base=4,
                  widths=[cfg.ngf * 16, cfg.ngf * 8, cfg.ngf * 4, cfg.ngf * 2], kernel=5, act="relu",
                  project_norm=True, z_dist="uniform")
    D = Discriminator(cfg.channels, cfg.resolution,
                      widths=[cfg.ndf, cfg.ndf * 2, cfg.ndf * 4, cfg.ndf * 8], kernel=5, norm="bn")
    init_normal(G)
    init_normal(D)
    return G, D, BCELoss()
