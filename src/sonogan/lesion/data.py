"""From a fold's cached partitions to the lesion models' tensors, and the cascade's crops.

A partition (:class:`sonogan.preprocess.fold.Partition`) holds uint8 whole-scan images and
masks at the preset's size. :func:`partition_tensors` makes the batch dict every lesion task
reads: normalised images and masks at the model's size, ``has_mask`` (an image whose manifest
row names no mask file trains the classifier only), labels, and the encoded clinical variables.

:func:`lesion_crops` is the cascade's second stage input: each image cropped to the loose frame
of a mask (the true one, or the segmenter's prediction), resized with padding. An empty
predicted mask keeps the whole scan area and is counted, so the caller can warn.

Example:
    >>> import numpy as np
    >>> images = np.full((2, 32, 32, 1), 80, np.uint8)
    >>> masks = np.zeros((2, 32, 32), bool); masks[0, 8:16, 8:16] = True
    >>> crops, fallback = lesion_crops(images, masks, margin=0.0, size=16)
    >>> crops.shape, fallback.tolist()
    ((2, 16, 16, 1), [False, True])
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as TF

from sonogan.data.manifest import Dataset
from sonogan.models.clinical import ClinicalEncoder
from sonogan.preprocess import functional as F
from sonogan.preprocess.fold import Normaliser, Partition


def mask_flags(ds: Dataset, ids: list[str]) -> np.ndarray:
    """True where the manifest row names a mask file (an empty mask of a lesion-free image is
    still a mask; a missing file is not)."""
    named = ds.manifest.set_index("image_id")["mask"].fillna("").astype(str).reindex(ids).fillna("")
    return (named.str.strip() != "").to_numpy()


def resize_masks(masks: np.ndarray, size: int) -> torch.Tensor:
    """uint8/bool (N, S, S) masks -> float (N, 1, size, size) in {0, 1} (area average, then > 0.5)."""
    x = torch.from_numpy(np.ascontiguousarray(masks, dtype=np.float32))[:, None]
    if x.shape[-1] != size:
        x = TF.interpolate(x, size=(size, size), mode="area")
    return (x > 0.5).float()


def upsample_probs(probs: np.ndarray, size: int) -> np.ndarray:
    """float (N, s, s) probabilities -> (N, size, size), bilinear (to crop at the cache's resolution)."""
    x = torch.from_numpy(np.ascontiguousarray(probs, dtype=np.float32))[:, None]
    if x.shape[-1] != size:
        x = TF.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    return x[:, 0].numpy()


def partition_tensors(part: Partition, has_mask: np.ndarray, norm: Normaliser, in_chans: int, size: int,
                      clinical: ClinicalEncoder | None = None, images: np.ndarray | None = None,
                      masks: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """The batch dict of a partition (``images`` / ``masks`` replace the partition's own, e.g. crops)."""
    images = part.images if images is None else images
    masks = part.masks if masks is None else masks
    out = {"image": norm(images, in_chans, size), "mask": resize_masks(masks, size),
           "has_mask": torch.from_numpy(np.array(has_mask, bool)),
           "label": torch.from_numpy(part.labels.astype(np.int64))}
    if clinical is not None:
        out["clinical"] = torch.from_numpy(clinical.transform(part.clinical))
    return out


def lesion_crops(images: np.ndarray, masks: np.ndarray, margin: float, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Loose-frame crops (N, size, size, C) of uint8 images by boolean masks of the same size,
    and which images had an empty mask (those keep the whole image)."""
    crops = np.zeros((len(images), size, size, images.shape[-1]), np.uint8)
    fallback = np.zeros(len(images), bool)
    for i, (image, mask) in enumerate(zip(images, masks)):
        if mask.any():
            image = F.roi_crop(image, mask.astype(np.uint8), margin)[0]
        else:
            fallback[i] = True
        crops[i] = F.resize(image, size, "pad").reshape(size, size, -1)
    return crops, fallback
