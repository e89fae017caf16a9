"""Typed arms of the protocol and what each one trains on (pure: no training).

An :class:`Arm` says what is added to a fold's real training images: nothing (baseline),
synthetic images of the rare classes (augmented, synthetic-N) or of every class from the
all-class GAN (all-classes, ``synthetic_set='all'``), or N re-drawn copies of the
real rare-class images (classic-N, the count-matched oversampling control); and whether the
classic augmentation of ``classic_arm`` is applied. The 'synthetic-pretrain' arm trains in two
stages: :func:`pretraining_images` first, then the real training images alone. Names are only labels for folders and
tables: nothing parses them.

Which arms a config asks for is :meth:`sonogan.experiment.config.ExperimentConfig.arms`.

Example:
    >>> Arm(name="synthetic-5", kind="synthetic", n_synthetic=5).needs_synthetic
    True
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict

from sonogan.train.mixing import mix_real_synthetic

if TYPE_CHECKING:
    from sonogan.preprocess.fold import Partition


class Arm(BaseModel):
    """One arm: its name, what it adds per rare class, and whether classic augmentation runs."""

    model_config = ConfigDict(frozen=True)

    name: str
    kind: Literal["baseline", "classic", "synthetic", "oversample", "pretrain"]
    n_synthetic: int = 0          # synthetic images per rare class (mode 'count')
    n_classic: int = 0            # re-drawn real rare-class images per rare class
    mix_mode: Literal["count", "ratio", "balance"] = "count"
    classic_augment: bool = False
    synthetic_set: Literal["rare", "all"] = "rare"  # the rare-class generators' images, or the all-class GAN's

    @property
    def needs_synthetic(self) -> bool:
        return self.kind in ("synthetic", "pretrain")


def training_images(arm: Arm, real: "Partition", synthetic: "Partition | None", rare_indices: list[int],
                    seed: int, ratio: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """uint8 training images + labels of ``arm``: the fold's real training images, plus synthetic
    images or re-drawn real rare-class copies. Validation and test images never enter here."""
    images, labels = real.images, real.labels
    if arm.kind == "pretrain":  # its second stage: real images only (the first: pretraining_images)
        return images, labels
    if arm.kind == "oversample":  # the arm's classic augmentation varies the copies
        rng = np.random.default_rng(seed)
        picks = [rng.choice(np.flatnonzero(labels == c), arm.n_classic, replace=True) for c in rare_indices]
        idx = np.concatenate(picks)
        return np.concatenate([images, images[idx]]), np.concatenate([labels, labels[idx]])
    if not arm.needs_synthetic or synthetic is None:
        return images, labels
    present = [int(c) for c in np.unique(synthetic.labels)]
    if arm.mix_mode != "count":
        x, y, _ = mix_real_synthetic(images, labels, synthetic.images, synthetic.labels, mode=arm.mix_mode,
                                     ratio=ratio, seed=seed, classes=present)
    else:
        x, y, _ = mix_real_synthetic(images, labels, synthetic.images, synthetic.labels, mode="count",
                                     n={c: arm.n_synthetic for c in present}, seed=seed)
    return x, y


def pretraining_images(real: "Partition", synthetic: "Partition") -> tuple[np.ndarray, np.ndarray]:
    """First stage of the 'synthetic-pretrain' arm: every synthetic image, plus the real training
    images of the classes the generator does not cover (so every class is learnt; with a
    class-conditional generator of all classes the stage is synthetic only).

    Example:
        >>> from types import SimpleNamespace as P
        >>> real = P(images=np.zeros((4, 2, 2, 1), np.uint8), labels=np.array([0, 0, 1, 2]))
        >>> syn = P(images=np.ones((3, 2, 2, 1), np.uint8), labels=np.array([1, 1, 1]))
        >>> x, y = pretraining_images(real, syn)
        >>> y.tolist(), int(x.sum())
        ([0, 0, 2, 1, 1, 1], 12)
    """
    keep = ~np.isin(real.labels, np.unique(synthetic.labels))
    return (np.concatenate([real.images[keep], synthetic.images]),
            np.concatenate([real.labels[keep], synthetic.labels]))
