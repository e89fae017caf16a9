"""The real images a GAN may see: one fold's TRAINING partition, one class (or all classes).

Only the fold's training partition is used (read by the one fold loader, which checks it with
``check_partition_ids``), so a GAN can never see validation or test images.

Example:
    >>> ds = load_dataset("runs/phantom")                                    # doctest: +SKIP
    >>> real = load_real_images(ds, "runs/phantom/splits.json", 0, "borderline", "gan-64")  # doctest: +SKIP
    >>> real.images.shape, len(real.ids)                                    # doctest: +SKIP
    (torch.Size([30, 1, 64, 64]), 30)
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sonogan.data.manifest import Dataset
from sonogan.data.splits import Splits
from sonogan.errors import SonoganInputError
from sonogan.preprocess.fold import Normaliser, Partition, load_fold


@dataclass
class RealImages:
    """Training images in [-1, 1] (N, C, S, S) float32, class indices (N,), their image ids."""

    images: torch.Tensor
    labels: torch.Tensor
    ids: list[str]
    classes: list[str]


def real_images(train: Partition, classes: list[str], class_name: str | None, channels: int,
                resolution: int, where: str = "training partition") -> RealImages:
    """The GAN's view of a fold's training partition (already in memory): one class (or all),
    mapped to [-1, 1] by :meth:`Normaliser.gan_range`."""
    keep = np.ones(len(train), bool) if class_name is None else train.labels == classes.index(class_name)
    part = train.select(keep)
    if len(part) < 2:
        raise SonoganInputError(where, f"class '{class_name}' has {len(part)} training image(s)",
                                "a GAN needs at least 2 training images; choose another class or fold")
    # pixels of another size are resized to the GAN's resolution (the synthetic images are resized
    # back to the preset's size when they join a training set)
    x = Normaliser.gan_range()(part.images, channels, resolution)
    return RealImages(images=x, labels=torch.from_numpy(part.labels), ids=part.ids, classes=list(classes))


def load_splits(splits: Any, ds: Dataset) -> Any:
    """Accept a loaded Splits object or a path to splits.json."""
    if isinstance(splits, (str, Path)):
        path = Path(splits)
        if not path.is_file():
            raise SonoganInputError(path, "splits file not found",
                                    f"create it with 'sonogan data split {ds.root}', or pass another with --splits")
        return Splits.load(path, ds)
    return splits


def load_real_images(ds: Dataset, splits: Any, fold: int | None, class_name: str | None, preset: str,
                     channels: int = 1, resolution: int = 64) -> RealImages:
    """The fold's training images of the class, through the one fold loader (cache built if absent)."""
    if class_name is not None and class_name not in ds.spec.classes:
        raise SonoganInputError(ds.root / "dataset.yaml", f"unknown class '{class_name}'",
                                f"use one of: {', '.join(ds.spec.classes)}")
    fd = load_fold(ds, load_splits(splits, ds), fold, preset)
    where = f"{ds.manifest_path} (fold {'all' if fold is None else fold})"
    return real_images(fd.train, list(ds.spec.classes), class_name, channels, resolution, where)
