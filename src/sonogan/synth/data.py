"""The real images a GAN may see: one fold's TRAINING partition, one class (or all classes).

Only ids from ``splits.partition(fold, "train")`` are read, and they are re-checked with
``check_partition_ids`` so a GAN can never see validation or test images.

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
from sonogan.errors import SonoganInputError


@dataclass
class RealImages:
    """Training images in [-1, 1] (N, C, S, S) float32, class indices (N,), their image ids."""

    images: torch.Tensor
    labels: torch.Tensor
    ids: list[str]
    classes: list[str]


def to_tensor(images: np.ndarray, channels: int) -> torch.Tensor:
    """uint8 (N, S, S, C) -> float32 (N, channels, S, S) in [-1, 1] (grey <-> RGB as needed)."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float() / 127.5 - 1.0
    if x.shape[1] != channels:
        x = x.mean(1, keepdim=True) if channels == 1 else x.expand(-1, channels, -1, -1).clone()
    return x.contiguous()


def load_splits(splits: Any, ds: Dataset) -> Any:
    """Accept a loaded Splits object or a path to splits.json."""
    if isinstance(splits, (str, Path)):
        path = Path(splits)
        if not path.is_file():
            raise SonoganInputError(path, "splits file not found",
                                    f"create it with 'sonogan data split {ds.root}' and pass --splits")
        from sonogan.data.splits import Splits

        return Splits.load(path, ds)
    return splits


def select_training_ids(ds: Dataset, splits: Any, fold: int | None, class_name: str | None) -> tuple[list[str], list[str]]:
    """(ids, labels) of real training images of ``fold`` for ``class_name`` (None = all classes)."""
    if class_name is not None and class_name not in ds.spec.classes:
        raise SonoganInputError(ds.root / "dataset.yaml", f"unknown class '{class_name}'",
                                f"use one of: {', '.join(ds.spec.classes)}")
    from sonogan.data.splits import check_partition_ids

    train_ids = set(splits.partition(fold, "train"))
    df = ds.real()
    df = df[df["image_id"].isin(train_ids)]
    if class_name is not None:
        df = df[df["label"] == class_name]
    ids, labels = df["image_id"].tolist(), df["label"].tolist()
    if len(ids) < 2:
        what = f"class '{class_name}' has {len(ids)} training image(s) in fold {'all' if fold is None else fold}"
        raise SonoganInputError(ds.root / "manifest.csv", what,
                                "a GAN needs at least 2 training images; choose another class or fold")
    check_partition_ids(ds, splits, fold, "train", ids)
    return ids, labels


def load_real_images(ds: Dataset, splits: Any, fold: int | None, class_name: str | None, preset: str,
                     channels: int = 1, resolution: int = 64) -> RealImages:
    """Read the fold's training images of the class from the preprocessing cache (built if absent)."""
    from sonogan.preprocess.cache import build_cache, open_cache

    splits = load_splits(splits, ds)
    ids, labels = select_training_ids(ds, splits, fold, class_name)
    build_cache(ds, preset)  # no-op when the cache is current
    images, _ = open_cache(ds, preset).get(ids)
    if images.shape[1] != resolution:
        raise SonoganInputError(f"preset '{preset}'", f"images are {images.shape[1]} px but the GAN is {resolution} px",
                                f"use a {resolution}-px preset (e.g. gan-{resolution}) or set resolution: {images.shape[1]}")
    classes = list(ds.spec.classes)
    y = torch.tensor([classes.index(lab) for lab in labels], dtype=torch.long)
    return RealImages(images=to_tensor(images, channels), labels=y, ids=ids, classes=classes)
