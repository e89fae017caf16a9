"""THE fold loader and THE normaliser: every model input in sonogan passes through here.

:func:`load_fold` returns, for each partition of one fold (train / val / test), the cached
uint8 images, lesion masks, class indices, declared clinical variables and image ids, each
partition checked by :func:`~sonogan.data.splits.check_partition_ids` (no synthetic image
outside its own fold's training partition, no image in two partitions).

:class:`Normaliser` maps uint8 (N, S, S, C) pixels to float (N, C', H, W) model input:
``(x - mean) / std + offset``, then the channel count and size the model wants. Its
statistics are fitted on the fold's REAL training images only (:meth:`Normaliser.fit`), saved
in every checkpoint and reused at inference, so validation, test, synthetic and new images
never influence them. The GAN's fixed range map to [-1, 1] is the same formula
(:meth:`Normaliser.gan_range`).

Example:
    >>> import numpy as np
    >>> images = np.array([[[[0]], [[255]]]], np.uint8).repeat(2, 0)   # (2, 2, 1, 1)
    >>> norm = Normaliser.fit(images)
    >>> norm.mean, norm.std
    ((127.5,), (127.5,))
    >>> norm(images, in_chans=3, size=2).shape
    torch.Size([2, 3, 2, 2])
    >>> Normaliser.gan_range()(images, 1, 2)[0, 0, :, 0].tolist()
    [-1.0, 1.0]
    >>> Normaliser.from_dict(norm.to_dict()) == norm
    True
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from sonogan.data.manifest import Dataset
from sonogan.data.splits import Splits, check_partition_ids
from sonogan.errors import SonoganInputError
from sonogan.preprocess.cache import build_cache, open_cache
from sonogan.preprocess.functional import zscore_stats

PARTITIONS = ("train", "val", "test")


@dataclass(frozen=True)
class Normaliser:
    """``(x - mean) / std + offset`` per channel (one value = all channels), then channels and size."""

    mean: tuple[float, ...]
    std: tuple[float, ...]
    offset: float = 0.0

    @classmethod
    def fit(cls, images: np.ndarray, per_channel: bool = False) -> "Normaliser":
        """Statistics of uint8 (N, S, S, C) training images. One scalar over all channels by
        default, so a grey image repeated to RGB stays identical in every channel."""
        if images.ndim != 4 or len(images) == 0:
            raise SonoganInputError("normaliser", f"needs training images (N, S, S, C), got shape {images.shape}",
                                    "fit it on a non-empty training partition")
        mean, std = zscore_stats(images)
        if not per_channel:
            mean, std = np.array([np.mean(mean)]), np.array([np.mean(std)])
        # a constant image set has std 0: dividing by it would give inf
        return cls(tuple(float(m) for m in mean), tuple(max(float(s), 1e-6) for s in std))

    @classmethod
    def gan_range(cls) -> "Normaliser":
        """The GANs' fixed map of [0, 255] to [-1, 1] (``x / 127.5 - 1``, bit for bit)."""
        return cls((0.0,), (127.5,), -1.0)

    @classmethod
    def imagenet(cls) -> "Normaliser":
        """ImageNet's RGB mean/std in [0, 255] units, for backbones pretrained on it."""
        return cls((123.675, 116.28, 103.53), (58.395, 57.12, 57.375))

    @classmethod
    def lite(cls) -> "Normaliser":
        """``(x - 127) / 128``: what the offline EfficientNet-Lite ImageNet weights were trained on."""
        return cls((127.0,), (128.0,))

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "offset": self.offset}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Normaliser":
        return cls(tuple(float(v) for v in d["mean"]), tuple(float(v) for v in d["std"]), float(d.get("offset", 0.0)))

    def tensor(self, x: torch.Tensor, in_chans: int, size: int) -> torch.Tensor:
        """float (N, C, H, W) pixels in [0, 255] -> normalised (N, in_chans, size, size).
        Torch ops only, so a model wrapper can apply it inside an exported graph."""
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
        x = (x - mean) / std
        if self.offset:
            x = x + self.offset
        if x.shape[1] != in_chans:
            x = x.mean(dim=1, keepdim=True) if in_chans == 1 else x.expand(-1, in_chans, -1, -1)
        if x.shape[-1] != size or x.shape[-2] != size:
            # antialias when shrinking (e.g. 224-px pixels into a 128-px GAN), else aliasing patterns
            shrink = size < min(x.shape[-2:])
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=shrink)
        return x.contiguous()

    def __call__(self, images: np.ndarray, in_chans: int, size: int) -> torch.Tensor:
        """uint8 (N, S, S, C) -> float32 (N, in_chans, size, size)."""
        return self.tensor(pixels_to_tensor(images), in_chans, size)


def pixels_to_tensor(images: np.ndarray) -> torch.Tensor:
    """uint8 (N, S, S, C) numpy -> float32 (N, C, S, S) torch in [0, 255]: the one layout change."""
    return torch.from_numpy(np.ascontiguousarray(images)).permute(0, 3, 1, 2).float()


@dataclass
class Partition:
    """One partition's cached images (N,S,S,C uint8), masks (N,S,S uint8), labels, clinical, ids."""

    ids: list[str]
    images: np.ndarray
    masks: np.ndarray
    labels: np.ndarray
    clinical: pd.DataFrame

    def __len__(self) -> int:
        return len(self.ids)

    def select(self, keep: np.ndarray) -> "Partition":
        """The rows ``keep`` (a boolean mask or indices), in that order."""
        idx = np.flatnonzero(keep) if keep.dtype == bool else np.asarray(keep)
        return Partition([self.ids[i] for i in idx], self.images[idx], self.masks[idx], self.labels[idx],
                         self.clinical.iloc[idx].reset_index(drop=True))


@dataclass
class FoldData:
    """The real partitions of one fold (``fold=None``: every development image as train, no val)
    and the normaliser fitted on its real training images."""

    fold: int | None
    train: Partition
    val: Partition
    test: Partition
    normaliser: Normaliser


def labels_of(ds: Dataset, ids: list[str]) -> np.ndarray:
    """Class indices (dataset.yaml order) of ``ids``."""
    label = ds.manifest.set_index("image_id")["label"]
    return np.array([ds.spec.class_index(label[i]) for i in ids], dtype=np.int64)


def clinical_of(ds: Dataset, ids: list[str]) -> pd.DataFrame:
    """The declared clinical variables of ``ids`` as strings ("" = missing), one row per id."""
    cols = [c for c in ds.spec.clinical if c in ds.manifest.columns]
    table = ds.manifest.set_index("image_id")[cols].reindex(ids)
    return table.fillna("").astype(str).reset_index(drop=True)


def load_partition(ds: Dataset, ids: list[str], preset: str) -> Partition:
    """Cached pixels of ``ids`` (the cache must be built) with labels and clinical variables."""
    images, masks = open_cache(ds, preset).get(ids)
    return Partition(list(ids), images, masks, labels_of(ds, ids), clinical_of(ds, ids))


def load_fold(ds: Dataset, splits: Splits, fold: int | None, preset: str, per_channel: bool = False,
              allow_no_masks: bool = False) -> FoldData:
    """Real images of each partition of ``fold`` (checked) and the train-only normaliser."""
    build_cache(ds, preset, allow_no_masks=allow_no_masks)  # a no-op when the cache is current
    parts = {}
    for name in PARTITIONS:
        part_fold = None if name == "test" else fold
        if fold is None and name == "val":
            ids: list[str] = []  # a final model trains on every development image: no validation
        else:
            ids = splits.partition(part_fold, name)
            check_partition_ids(ds, splits, part_fold, name, ids)
        parts[name] = load_partition(ds, ids, preset)
    return FoldData(fold, parts["train"], parts["val"], parts["test"],
                    Normaliser.fit(parts["train"].images, per_channel=per_channel))


def load_synthetic(syn_ds: Dataset, preset: str, class_names: list[str], fold: int | None) -> Partition:
    """Every image of a sampled synthetic dataset, resized by ``preset``, as a training partition.

    Refuses rows that are not synthetic or that came from another fold's generator.
    """
    m = syn_ds.manifest
    want = "all" if fold is None else str(fold)
    bad = m[(m["source"] != "synthetic") | (m["synth_fold"].astype(str) != want)]
    if len(bad):
        raise SonoganInputError(syn_ds.manifest_path, f"{len(bad)} rows are not synthetic images of fold {want}",
                                "sample the generator trained on this fold's training images")
    build_cache(syn_ds, preset)
    ids = m["image_id"].tolist()
    images, masks = open_cache(syn_ds, preset).get(ids)
    y = np.array([class_names.index(c) for c in m["label"]], dtype=np.int64)
    return Partition(ids, images, masks, y, pd.DataFrame(index=range(len(ids))))
