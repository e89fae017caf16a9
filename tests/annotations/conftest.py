"""A clean phantom (no burned-in annotations) with saved splits, and tiny remover configs.

Example: ``train_remover(clean_phantom, tmp_path / "run", tiny_cfg(iterations=40))``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import pytest

from sonogan.models.remover import RemoverConfig
from sonogan.annotations.train import RemoverTrainConfig
from sonogan.data.splits import make_splits
from sonogan.phantom import PhantomConfig, generate_phantom


def tiny_train_cfg(**overrides) -> RemoverTrainConfig:
    """A remover small enough to train in seconds on 32-px images."""
    base = dict(remover=RemoverConfig(size=32, model_kwargs={"features": [8, 16, 32]},
                                      detector_kwargs={"widths": [8, 16], "hidden": 16}),
                iterations=40, batch_size=4, checkpoint_every=20, eval_pairs=16, draw_scale=2.0, device="cpu")
    return RemoverTrainConfig(**{**base, **overrides})


@pytest.fixture(scope="session")
def clean_phantom(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("annotations") / "phantom"
    ds = generate_phantom(root, PhantomConfig(n_benign=6, n_borderline=6, n_malignant=6, images_per_patient=1,
                                              image_size=64, annotated_fraction=0.0))
    make_splits(ds, n_folds=2, test_fraction=0.2, seed=0, duplicate_groups={}).save(root / "splits.json")
    return root


@pytest.fixture()
def tiny_cfg() -> Callable[..., RemoverTrainConfig]:
    return tiny_train_cfg


def write_tiny_checkpoint(path: Path, seed: int = 0, gain: float = 1.0) -> Path:
    """An untrained 32-px remover + detector; ``gain`` 1 makes the remover change its input."""
    import torch

    from sonogan.models.remover import build_nets, save_remover

    cfg = tiny_train_cfg().remover
    torch.manual_seed(seed)
    remover, detector = build_nets(cfg)
    with torch.no_grad():
        remover.gain.fill_(gain)
    return save_remover(path, remover, detector, cfg)


@pytest.fixture()
def tiny_checkpoint() -> Callable[..., Path]:
    return write_tiny_checkpoint
