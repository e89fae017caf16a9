"""Tiny in-memory training sets and configs for the synth tests."""

import pytest
import torch

from sonogan.synth.config import GanConfig
from sonogan.synth.data import RealImages


@pytest.fixture
def tiny_real() -> RealImages:
    g = torch.Generator().manual_seed(0)
    return RealImages(images=torch.rand(8, 1, 64, 64, generator=g) * 2 - 1,
                      labels=torch.tensor([0, 1] * 4), ids=[f"img-{k}" for k in range(8)],
                      classes=["benign", "borderline"])


def make_tiny_cfg(**kw) -> GanConfig:
    base = dict(ngf=4, ndf=4, z_dim=8, batch_size=4, iterations=6, checkpoint_every=3, sample_every=3,
                log_every=2, quality_every=3, quality_samples=8, diffaugment="color,translation,cutout",
                ema_decay=0.9, device="cpu")
    base.update(kw)
    return GanConfig(**base)


@pytest.fixture
def tiny_cfg():
    """Factory: a tiny, fast GanConfig with overrides."""
    return make_tiny_cfg
