"""A tiny phantom, a GAN trained for a few iterations on one fold's borderline images, and its samples."""

from __future__ import annotations

import pytest

from sonogan.data.manifest import load_dataset
from sonogan.data.splits import make_splits
from sonogan.phantom import PhantomConfig, generate_phantom


@pytest.fixture(scope="session")
def sampled(tmp_path_factory):
    """(dataset, splits.json, GAN run folder, synthetic dataset folder)."""
    from sonogan.synth.config import GanConfig
    from sonogan.synth.sample import sample_gan
    from sonogan.synth.trainer import train_gan

    root = tmp_path_factory.mktemp("audit") / "ds"
    ds = generate_phantom(root, PhantomConfig(n_benign=6, n_borderline=6, n_malignant=4, images_per_patient=2,
                                              image_size=64))
    splits = make_splits(ds, n_folds=2, test_fraction=0.2, seed=0, duplicate_groups={})
    splits.save(root / "splits.json")
    cfg = GanConfig(ngf=4, ndf=4, z_dim=8, batch_size=4, iterations=4, checkpoint_every=2, sample_every=2,
                    log_every=2, quality_every=2, quality_samples=8, device="cpu", preset="gan-64")
    gan = train_gan(ds, root / "splits.json", 0, "borderline", cfg, root.parent / "gan", progress=False)
    syn = root.parent / "syn"
    sample_gan(gan, 10, syn, seed=0)
    return load_dataset(root), root / "splits.json", gan, syn
