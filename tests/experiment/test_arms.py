"""What each arm trains on (pure: no training): real images, plus synthetic images or
oversampled classic copies, never anything from validation or test."""

from __future__ import annotations

import numpy as np

from sonogan.experiment.config import ExperimentConfig
from sonogan.experiment.fold_data import FoldData
from sonogan.experiment.protocol import training_images


def fold() -> FoldData:
    y = np.array([0] * 10 + [1] * 2 + [2] * 6)
    images = np.arange(len(y), dtype=np.uint8).reshape(-1, 1, 1, 1).repeat(4, 1).repeat(4, 2)
    return FoldData(0, [f"t{i}" for i in range(len(y))], [], [], images, images[:0], images[:0], y, y[:0], y[:0], 0.0, 1.0)


def synthetic(n: int = 20) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, 4, 4, 1), 200, np.uint8), np.ones(n, np.int64)


def cfg(**kw) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"dataset": "x", "classic_arm": {"hflip": True}, **kw})


def test_baseline_is_the_real_training_images():
    fd = fold()
    x, y = training_images(cfg(), "baseline", fd, synthetic(), [1])
    assert np.array_equal(x, fd.train_images) and np.array_equal(y, fd.train_y)


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
