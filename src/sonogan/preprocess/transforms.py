"""Thin callable wrappers over :mod:`sonogan.preprocess.functional`, plus ``Compose``.

Each transform maps a uint8 array to a new array (the input is never modified). Random
transforms take an explicit ``np.random.Generator`` so the same seed gives the same output.

Example:
    >>> import numpy as np
    >>> t = Compose([MedianFilter(3), ScanArea(), Resize(32), ToGrayscale()])
    >>> img = np.zeros((50, 80, 3), np.uint8); img[5:45, 10:70] = 120
    >>> t(img).shape
    (32, 32)
    >>> flip = RandomHorizontalFlip(p=0.5, rng=np.random.default_rng(0))
    >>> flip(img).shape
    (50, 80, 3)
"""

from __future__ import annotations

from typing import Callable, Literal, Sequence

import cv2
import numpy as np

from sonogan.preprocess import functional as F

ArrayFn = Callable[[np.ndarray], np.ndarray]


class Compose:
    """Apply transforms in order."""

    def __init__(self, transforms: Sequence[ArrayFn]) -> None:
        self.transforms = list(transforms)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        for t in self.transforms:
            img = t(img)
        return img

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


class MedianFilter:
    def __init__(self, ksize: int = 3) -> None:
        self.ksize = ksize

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return F.median_filter(img, self.ksize)


class ScanArea:
    """Detect the scan area, zero the outside and crop to it."""

    def __init__(self, threshold: int = 10, crop: bool = True) -> None:
        self.threshold, self.crop = threshold, crop

    def __call__(self, img: np.ndarray) -> np.ndarray:
        mask, _ = F.detect_scan_area(img, self.threshold)
        return F.apply_scan_area(img, mask, crop=self.crop)


class Resize:
    def __init__(self, size: int | tuple[int, int], mode: Literal["pad", "stretch"] = "pad",
                 interpolation: int = cv2.INTER_AREA) -> None:
        self.size, self.mode, self.interpolation = size, mode, interpolation

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return F.resize(img, self.size, self.mode, self.interpolation)


class ToGrayscale:
    def __call__(self, img: np.ndarray) -> np.ndarray:
        return F.to_grayscale(img)


class ToRGB:
    def __call__(self, img: np.ndarray) -> np.ndarray:
        return F.to_rgb(img)


class CLAHE:
    def __init__(self, clip_limit: float = 2.0, tile: int = 8) -> None:
        self.clip_limit, self.tile = clip_limit, tile

    def __call__(self, img: np.ndarray) -> np.ndarray:
        return F.clahe(img, self.clip_limit, self.tile)


class RandomHorizontalFlip:
    """Mirror left-right with probability ``p``; draws from the generator it owns."""

    def __init__(self, p: float = 0.5, rng: np.random.Generator | None = None, seed: int = 0) -> None:
        self.p = p
        self.rng = rng if rng is not None else np.random.default_rng(seed)

    def __call__(self, img: np.ndarray) -> np.ndarray:
        if self.rng.random() < self.p:
            return img[:, ::-1].copy()
        return img.copy()
