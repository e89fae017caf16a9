"""What each arm trains on (pure: no training): real images, plus synthetic images or
oversampled classic copies, never anything from validation or test."""

from __future__ import annotations

import numpy as np

import pandas as pd

from sonogan.experiment.arms import training_images as arm_images
from sonogan.experiment.config import ExperimentConfig
from sonogan.preprocess.fold import Partition


def part(images: np.ndarray, y: np.ndarray) -> Partition:
    return Partition([f"t{i}" for i in range(len(y))], images, images[..., 0], y, pd.DataFrame(index=range(len(y))))


def fold() -> Partition:
    y = np.array([0] * 10 + [1] * 2 + [2] * 6)
    images = np.arange(len(y), dtype=np.uint8).reshape(-1, 1, 1, 1).repeat(4, 1).repeat(4, 2)
    return part(images, y)


def synthetic(n: int = 20) -> Partition:
    return part(np.full((n, 4, 4, 1), 200, np.uint8), np.ones(n, np.int64))


def training_images(c: ExperimentConfig, name: str, real: Partition, syn: Partition, rare: list[int]):
    arm = {a.name: a for a in c.arms()}[name]
    return arm_images(arm, real, syn, rare, seed=c.seed, ratio=c.synthetic.ratio)


def cfg(**kw) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"dataset": "x", "classic_arm": {"hflip": True}, **kw})


def test_baseline_is_the_real_training_images():
    fd = fold()
    x, y = training_images(cfg(), "baseline", fd, synthetic(), [1])
    assert np.array_equal(x, fd.images) and np.array_equal(y, fd.labels)


def test_augmented_count_and_sweep_add_exactly_n_synthetic_rare_images():
    fd = fold()
    x, y = training_images(cfg(synthetic={"n_per_class": 20, "sweep": [5]}), "augmented", fd, synthetic(), [1])
    assert len(y) == 18 + 20 and (y == 1).sum() == 22 and (x == 200).all(axis=(1, 2, 3)).sum() == 20
    x, y = training_images(cfg(synthetic={"n_per_class": 20, "sweep": [5]}), "synthetic-5", fd, synthetic(), [1])
    assert len(y) == 18 + 5


def test_balance_mode_lifts_the_rare_class_to_the_largest():
    x, y = training_images(cfg(synthetic={"n_per_class": 20, "mode": "balance"}), "augmented", fold(), synthetic(), [1])
    assert (y == 1).sum() == (y == 0).sum() == 10


def test_classic_copies_are_real_rare_images_only():
    fd = fold()
    x, y = training_images(cfg(classic_sweep=[7]), "classic-7", fd, synthetic(), [1])
    assert len(y) == 18 + 7 and (y[18:] == 1).all()
    assert set(x[18:, 0, 0, 0].tolist()) <= {10, 11}  # copies of the two real rare images, no synthetic pixels
    x2, _ = training_images(cfg(classic_sweep=[7]), "classic-7", fd, synthetic(), [1])
    assert np.array_equal(x, x2)  # seeded


def test_synthetic_pretrain_stages_synthetic_then_real_only():
    from sonogan.experiment.arms import pretraining_images

    fd = fold()
    c = cfg(synthetic={"n_per_class": 20, "pretrain_finetune": {"finetune_epochs": 2}})
    assert c.arm_names()[-1] == "synthetic-pretrain"
    x, y = training_images(c, "synthetic-pretrain", fd, synthetic(), [1])
    assert np.array_equal(x, fd.images) and np.array_equal(y, fd.labels)  # stage 2: real only
    x, y = pretraining_images(fd, synthetic())
    # stage 1: the synthetic images stand in for the class they cover; the other classes stay real
    assert (y == 1).sum() == 20 and (x[y == 1] == 200).all()
    assert (y == 0).sum() == 10 and (y == 2).sum() == 6 and not (x[y != 1] == 200).any()
