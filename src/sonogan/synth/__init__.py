"""Generative augmentation: GAN families (dcgan, dcgan-radford, cgan, acgan, wgan-gp, sngan) and
the diffusion family (ddpm), each with one training loop and sampling into synthetic datasets
with provenance.

The diffusion names are imported on first use: ``diffusers`` takes seconds to import, and the
GAN-only commands need not pay for it.

Example:
    >>> from sonogan.synth import GAN_FAMILIES
    >>> "dcgan" in GAN_FAMILIES
    True
    >>> from sonogan.synth import DIFFUSION_FAMILIES
    >>> DIFFUSION_FAMILIES
    ('ddpm',)
    >>> run = train_gan("runs/phantom", "runs/phantom/splits.json", 0, "borderline",
    ...                 GanConfig(iterations=2000), "runs/gan-f0")            # doctest: +SKIP
    >>> syn = sample_gan(run, 2000, Path("runs/syn-f0"))                   # doctest: +SKIP
    >>> run = fit_diffusion(real, DiffusionConfig(iterations=4000), "runs/ddpm-f0")  # doctest: +SKIP
    >>> syn = sample_diffusion(run, 2000, Path("runs/syn-ddpm-f0"), seed=0)          # doctest: +SKIP
"""

from pathlib import Path  # noqa: F401  (used in the example)
from typing import Any

from sonogan.synth.config import GanConfig
from sonogan.synth.diffusion_config import DIFFUSION_FAMILIES, DiffusionConfig
from sonogan.synth.nets import CONDITIONAL, GAN_FAMILIES, create_gan, discriminator_as_classifier, sample_z
from sonogan.synth.sample import sample_gan
from sonogan.synth.trainer import fit_gan, train_gan

_DIFFUSION = ("fit_diffusion", "sample_diffusion", "train_diffusion")

__all__ = ["CONDITIONAL", "DIFFUSION_FAMILIES", "DiffusionConfig", "GAN_FAMILIES", "GanConfig", "create_gan",
           "discriminator_as_classifier", "fit_diffusion", "fit_gan", "sample_diffusion", "sample_gan",
           "sample_z", "train_diffusion", "train_gan"]


def __getattr__(name: str) -> Any:
    if name in _DIFFUSION:  # lazily: see the module docstring
        from sonogan.synth import diffusion

        return getattr(diffusion, name)
    raise AttributeError(f"module 'sonogan.synth' has no attribute {name!r}")
