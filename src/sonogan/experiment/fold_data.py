"""Tensors for one fold: real train/val/test from the cache, synthetic images, z-scoring.

Z-score statistics come from the fold's REAL training images only, so neither validation,
test nor synthetic images influence them.

Example:
    >>> fd = load_fold(ds, splits, fold=0, preset="flagship-64")        # doctest: +SKIP
    >>> x = to_model_input(fd.train_images, fd.mean, fd.std, in_chans=1, size=64)  # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from sonogan.data.manifest import Dataset
from sonogan.data.splits import Splits, check_partition_ids
from sonogan.preprocess.cache import build_cache, open_cache
from sonogan.preprocess.functional import zscore_stats


@dataclass
class FoldData:
    """uint8 images (N,S,S,C), int labels and ids of each real partition of a fold."""

    fold: int
    train_ids: list[str]
    val_ids: list[str]
    test_ids: list[str]
    train_images: np.ndarray
    val_images: np.ndarray
    test_images: np.ndarray
    train_y: np.ndarray
    val_y: np.ndarray
    test_y: np.ndarray
    mean: float
    std: float


def labels_of(ds: Dataset, ids: list[str]) -> np.ndarray:
    label = ds.manifest.set_index("image_id")["label"]
    return np.array([ds.spec.class_index(label[i]) for i in ids], dtype=np.int64)


def load_fold(ds: Dataset, splits: Splits, fold: int, preset: str) -> FoldData:
    """Real images of the fold's partitions, guarded by :func:`check_partition_ids`."""
    cache = open_cache(ds, preset)
    parts = {}
    for name in ("train", "val", "test"):
        ids = splits.partition(fold if name != "test" else None, name)
        check_partition_ids(ds, splits, fold if name != "test" else None, name, ids)
        images, _ = cache.get(ids)
        parts[name] = (ids, images, labels_of(ds, ids))
    # One scalar mean/std over all channels: grey images repeated to RGB stay identical.
    mean, std = zscore_stats(parts["train"][1])
    mean_f, std_f = float(np.mean(mean)), float(np.mean(std))
    return FoldData(fold, parts["train"][0], parts["val"][0], parts["test"][0],
                    parts["train"][1], parts["val"][1], parts["test"][1],
                    parts["train"][2], parts["val"][2], parts["test"][2], mean_f, max(std_f, 1e-6))


def load_synthetic(syn_ds: Dataset, preset: str, class_names: list[str], fold: int) -> tuple[np.ndarray, np.ndarray]:
    """All images of a sampled synthetic dataset, resized by ``preset``, with class indices.

    Refuses rows that are not synthetic or that came from another fold's GAN.
    """
    from sonogan.errors import SonoganInputError

    m = syn_ds.manifest
    bad = m[(m["source"] != "synthetic") | (m["synth_fold"].astype(str) != str(fold))]
    if len(bad):
        raise SonoganInputError(syn_ds.manifest_path, f"{len(bad)} rows are not synthetic images of fold {fold}",
                                "sample the GAN trained on this fold's training images")
    build_cache(syn_ds, preset)
    cache = open_cache(syn_ds, preset)
    ids = m["image_id"].tolist()
    images, _ = cache.get(ids)
    y = np.array([class_names.index(c) for c in m["label"]], dtype=np.int64)
    return images, y


def to_model_input(images: np.ndarray, mean: float, std: float, in_chans: int, size: int) -> torch.Tensor:
    """uint8 (N,S,S,C) -> float32 (N,in_chans,size,size), z-scored with the training stats."""
    x = torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()
    x = (x - mean) / std
    if x.shape[1] != in_chans:
        x = x.mean(dim=1, keepdim=True) if in_chans == 1 else x.expand(-1, in_chans, -1, -1).contiguous()
    if x.shape[-1] != size or x.shape[-2] != size:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x.contiguous()
