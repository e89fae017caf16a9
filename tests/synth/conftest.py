"""Tiny in-memory training sets and configs for the synth tests."""

import pytest

from sonogan.data.manifest import load_dataset
from sonogan.phantom import PhantomConfig, generate_phantom
from sonogan.data.splits import make_splits
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


@pytest.fixture(scope="session")
def phantom(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom") / "ds"
    ds = generate_phantom(root, PhantomConfig(n_benign=6, n_borderline=6, n_malignant=4,
                                              images_per_patient=2, image_size=64))
    splits = make_splits(ds, n_folds=2, test_fraction=0.2, seed=0, duplicate_groups={})
    splits.save(root / "splits.json")
    return load_dataset(root), root / "splits.json"
