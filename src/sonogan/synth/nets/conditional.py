"""Class-conditional families trained over all classes at once.

- ``cgan``: G gets z concatenated with a class embedding; D is a projection discriminator
  (logit + <embed(y), features>).
- ``acgan``: same G; D has a real/fake head and an auxiliary classifier head
  (see :func:`sonogan.synth.nets.discriminator_as_classifier`).

Example:
    >>> import torch
    >>> from sonogan.synth.config import GanConfig
    >>> from sonogan.synth.nets import create_gan
    >>> G, D, loss = create_gan("acgan", GanConfig(ngf=4, ndf=4), num_classes=3)
    >>> x = G(torch.zeros(2, 100), torch.tensor([0, 2]))
    >>> [t.shape[-1] for t in D(x, torch.tensor([0, 2]))]
    [2, 3]
"""

from __future__ import annotations

from typing import Any

from sonogan.synth.losses import ACGANLoss, BCELoss
from sonogan.synth.nets.families import GAN_FAMILIES
from sonogan.synth.nets.dcgan import dcgan_nets


@GAN_FAMILIES.register("cgan")
def make_cgan(cfg: Any, num_classes: int = 1) -> tuple:
    G, D = dcgan_nets(cfg, num_classes=num_classes, d_head="projection", g_classes=num_classes)
    return G, D, BCELoss()


@GAN_FAMILIES.register("acgan")
def make_acgan(cfg: Any, num_classes: int = 1) -> tuple:
    G, D = dcgan_nets(cfg, num_classes=num_classes, d_head="aux", g_classes=num_classes)
    return G, D, ACGANLoss()
