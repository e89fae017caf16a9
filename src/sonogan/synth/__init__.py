"""GAN augmentation: families (dcgan, dcgan-radford, cgan, acgan, wgan-gp, sngan), one training
loop, sampling into synthetic datasets with provenance.

Example:
    >>> from sonogan.synth import GAN_FAMILIES
    >>> "dcgan" in GAN_FAMILIES
    True
    >>> run = train_gan("runs/phantom", "runs/phantom/splits.json", 0, "borderline",
    ...                 GanConfig(iterations=2000), "runs/gan-f0")            # doctest: +SKIP
    >>> syn = sample_gan(run, 2000, Path("runs/syn-f0"))                   # doctest: +SKIP
"""

from pathlib import Path  # noqa: F401  (used in the example)

from sonogan.synth.config import GanConfig
from sonogan.synth.nets import CONDITIONAL, GAN_FAMILIES, create_gan, discriminator_as_classifier, sample_z
from sonogan.synth.sample import sample_gan
from sonogan.synth.trainer import fit_gan, train_gan

__all__ = ["CONDITIONAL", "GAN_FAMILIES", "GanConfig", "create_gan", "discriminator_as_classifier",
           "fit_gan", "sample_gan", "sample_z", "train_gan"]
