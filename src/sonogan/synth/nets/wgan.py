"""``wgan-gp``: DCGAN-shaped G; critic without BatchNorm (the penalty is per-sample), Wasserstein
loss + gradient penalty (``gp_weight``, default 10); use ``n_critic: 5`` (configs/gan/wgan-gp.yaml).

Example:
    >>> from sonogan.synth.config import GanConfig
    >>> from sonogan.synth.nets import create_gan
    >>> G, D, loss = create_gan("wgan-gp", GanConfig(ngf=4, ndf=4))
    >>> loss.gp_weight
    10.0
"""

from __future__ import annotations

from typing import Any

from sonogan.synth.losses import WassersteinGPLoss
from sonogan.synth.nets.families import GAN_FAMILIES
from sonogan.synth.nets.dcgan import dcgan_nets


@GAN_FAMILIES.register("wgan-gp")
def make_wgan_gp(cfg: Any, num_classes: int = 1) -> tuple:
    G, D = dcgan_nets(cfg, d_norm="none")
    return G, D, WassersteinGPLoss(cfg.gp_weight)
