"""``sngan``: DCGAN-shaped G; D with spectral normalisation on every layer (no BatchNorm), hinge loss.

Example:
    >>> from sonogan.synth.config import GanConfig
    >>> from sonogan.synth.nets import create_gan
    >>> G, D, loss = create_gan("sngan", GanConfig(ngf=4, ndf=4))
    >>> loss.name
    'hinge'
"""

from __future__ import annotations

from typing import Any

from sonogan.synth.losses import HingeLoss
from sonogan.synth.nets.families import GAN_FAMILIES
from sonogan.synth.nets.dcgan import dcgan_nets


@GAN_FAMILIES.register("sngan")
def make_sngan(cfg: Any, num_classes: int = 1) -> tuple:
    G, D = dcgan_nets(cfg, d_norm="sn")
    return G, D, HingeLoss()
