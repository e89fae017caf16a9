"""Torch datasets over the preprocessing cache.

The selected images are preloaded into ONE float32 tensor at construction: the datasets here
are small (1000 images at 64x64x1 = 16 MB), so this costs little memory, removes per-item
memmap reads and numpy->torch conversions, and makes ``num_workers=0`` loaders fast on CPU.

Z-score statistics come from the training partition only (:func:`train_val_test_datasets`
computes them from the fold's real training images and applies them to val and test), so no
validation or test pixel influences training.

Example:
    >>> cache = open_cache(ds, "flagship-64")                                   # doctest: +SKIP
    >>> data = train_val_test_datasets(cache, splits, 0, ds.spec.classes, ds=ds)  # doctest: +SKIP
    >>> x, y = data.train[0]; x.shape                                          # doctest: +SKIP
    torch.Size([1, 64, 64])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset as TorchDataset

from sonogan.errors import SonoganInputError
from sonogan.preprocess.cache import PreprocessCache
from sonogan.preprocess.functional import zscore_stats


class CachedImageDataset(TorchDataset):
    """(image CxHxW float32, label int) pairs, or (image, mask HxW float32, label) with
    ``return_mask=True``. Without ``mean``/``std`` pixels are scaled to [0, 1]; with them they
    are z-scored per channel in uint8 units: ``(x - mean) / std``."""

    def __init__(self, cache: PreprocessCache, image_ids: Sequence[str], class_names: Sequence[str],
                 mean: np.ndarray | Sequence[float] | None = None, std: np.ndarray | Sequence[float] | None = None,
                 transform: Callable[[torch.Tensor], torch.Tensor] | None = None, return_mask: bool = False) -> None:
        self.image_ids = list(image_ids)
        self.class_names = list(class_names)
        self.transform = transform
        self.return_mask = return_mask
        rows = cache.rows(self.image_ids)
        class_index = {c: k for k, c in enumerate(self.class_names)}
        labels = []
        for r in rows:
            label = cache.labels[r]
            if label not in class_index:
                raise SonoganInputError(cache.path, f"label '{label}' of '{cache.ids[r]}' is not in {self.class_names}",
                                        "pass the dataset's class names (dataset.yaml 'classes')")
            labels.append(class_index[label])
        self.labels = torch.tensor(labels, dtype=torch.long)
        images, masks = cache.get(self.image_ids)
        x = torch.from_numpy(images).permute(0, 3, 1, 2).float()  # (N,C,H,W)
        if (mean is None) != (std is None):
            raise ValueError("give both mean and std, or neither")
        if mean is None:
            x = x / 255.0
        else:
            m = torch.as_tensor(np.asarray(mean, np.float32)).view(1, -1, 1, 1)
            s = torch.as_tensor(np.maximum(np.asarray(std, np.float32), 1e-6)).view(1, -1, 1, 1)
            x = (x - m) / s
        self.images = x.contiguous()
        self.masks = torch.from_numpy(masks).float() if return_mask else None

    def __len__(self) -> int:
        return len(self.image_ids)

    def __getitem__(self, i: int):
        x = self.images[i]
        if self.transform is not None:
            x = self.transform(x)
        if self.return_mask:
            assert self.masks is not None
            return x, self.masks[i], int(self.labels[i])
        return x, int(self.labels[i])


@dataclass
class FoldData:
    train: CachedImageDataset
    val: CachedImageDataset | None
    test: CachedImageDataset
    mean: np.ndarray
    std: np.ndarray


def train_val_test_datasets(cache: PreprocessCache, splits, fold: int | None, class_names: Sequence[str],
                            ds=None, synthetic_ids: Sequence[str] = (),
                            transform: Callable[[torch.Tensor], torch.Tensor] | None = None) -> FoldData:
    """Datasets of one fold (``fold=None``: all development images as train, no val).

    Mean/std come from the fold's REAL training images only, so the normalisation is the same
    whether or not synthetic images (``synthetic_ids``, appended to train) are used. With ``ds``
    given every partition passes :func:`sonogan.data.splits.check_partition_ids` first.
    """
    from sonogan.data.splits import check_partition_ids

    train_real = splits.partition(fold, "train")
    val = splits.partition(fold, "val") if fold is not None else []
    test = splits.partition(fold, "test")
    train = train_real + list(synthetic_ids)
    if ds is not None:
        check_partition_ids(ds, splits, fold, "train", train)
        if fold is not None:
            check_partition_ids(ds, splits, fold, "val", val)
        check_partition_ids(ds, splits, fold, "test", test)
    mean, std = zscore_stats(cache.get(train_real)[0])
    make = lambda ids, t=None: CachedImageDataset(cache, ids, class_names, mean, std, t)  # noqa: E731
    return FoldData(train=make(train, transform), val=make(val) if val else None, test=make(test), mean=mean, std=std)
