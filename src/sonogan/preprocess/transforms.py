"""Dictionary transforms: the steps of a preset, over a sample that carries image and mask together.

A sample is a dict with ``image`` (HxWxC uint8), ``mask`` (HxW uint8, 1 = lesion; all zeros
when the row has no mask), ``synthetic`` (already-cropped GAN output) and ``roi_fallback``
(set by :class:`LesionROI` when there was no lesion to crop to). Each transform is a small
frozen dataclass over pure functions of :mod:`sonogan.preprocess.functional` and returns a NEW
dict; its input is never modified. Steps marked ``real_only`` pass synthetic samples through.

Every transform has ``cache_token()``: a JSON-able dict of everything that decides its output
pixels. The preprocessing cache hashes the tokens of the whole pipeline into its key, so a
step that depends on a file (a learned annotation-removal network) adds the file's sha256 to
its token and a new checkpoint gives a new cache (see ``test_transforms.py`` for a toy one).

Why not MONAI's ``MapTransform``/``Compose``: they leave numpy uint8 pixels alone, but
``import monai.transforms`` takes ~4 s (4000+ modules) in the CLI and in every spawned cache
worker, where these steps need only OpenCV, and MONAI's ``Compose`` re-raises any error as a
``RuntimeError``, which would hide a ``SonoganInputError`` (one line, exit 2) from the CLI.
What they would give us is twenty lines: :class:`Compose` below.

Example:
    >>> import numpy as np
    >>> img = np.zeros((50, 80, 3), np.uint8); img[5:45, 10:70] = 120
    >>> pipe = Compose([Channels(1), ScanArea(), Resize(32)])
    >>> out = pipe(make_sample(img))
    >>> out["image"].shape, out["mask"].shape, out["roi_fallback"]
    ((32, 32, 1), (32, 32), False)
    >>> pipe.cache_token()[2]
    {'transform': 'Resize', 'size': 32, 'mode': 'pad'}
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Protocol, Sequence, runtime_checkable

import cv2
import numpy as np

import sonogan.preprocess.functional as F  # the module itself, not through preprocess/__init__.py (which imports this file)

Sample = dict[str, Any]


@runtime_checkable
class CacheTokened(Protocol):
    """Anything whose output the cache key must follow: a JSON-able token of its parameters."""

    def cache_token(self) -> Any: ...


def make_sample(image: np.ndarray, mask: np.ndarray | None = None, synthetic: bool = False) -> Sample:
    """The sample of one decoded image (uint8 RGB or grey) and its optional lesion mask (any
    non-zero = lesion, any resolution; see :func:`functional.binary_mask`)."""
    shape = image.shape[:2]
    lesion = np.zeros(shape, np.uint8) if mask is None else F.binary_mask(mask, shape)
    return {"image": image, "mask": lesion, "synthetic": synthetic, "roi_fallback": False}


class DictTransform(ABC):
    """A step over a sample. Subclasses are frozen dataclasses: their fields are the token."""

    real_only: ClassVar[bool] = True  # synthetic rows (GAN output, already cropped) skip the step

    def __call__(self, data: Sample) -> Sample:
        if data["synthetic"] and self.real_only:
            return dict(data)
        return self.apply(data)

    @abstractmethod
    def apply(self, data: Sample) -> Sample:
        """The step itself: a new dict with the changed keys replaced."""

    def cache_token(self) -> dict[str, Any]:
        return {"transform": type(self).__name__, **dataclasses.asdict(self)}  # type: ignore[call-overload]


class Compose:
    """Run transforms in order; its token is the list of theirs. Every step must have a
    ``cache_token()`` so nothing can change the pixels without changing the cache key."""

    def __init__(self, transforms: Sequence[CacheTokened]) -> None:
        untokened = [t for t in transforms if not isinstance(t, CacheTokened)]
        if untokened:
            raise TypeError(f"transforms without cache_token(): {untokened}")
        self.transforms = list(transforms)

    def __call__(self, data: Sample) -> Sample:
        for t in self.transforms:
            data = t(data)  # type: ignore[operator]
        return data

    def cache_token(self) -> list[Any]:
        return [t.cache_token() for t in self.transforms]

    def __repr__(self) -> str:
        return f"Compose({self.transforms!r})"


@dataclass(frozen=True)
class Channels(DictTransform):
    """Grey ``HxWx1`` or RGB ``HxWx3``; synthetic rows too (a GAN may emit either)."""

    channels: int = 1
    real_only: ClassVar[bool] = False

    def apply(self, data: Sample) -> Sample:
        return {**data, "image": F.to_channels(data["image"], self.channels)}


@dataclass(frozen=True)
class MedianFilter(DictTransform):
    """Median filter of odd size ``ksize`` against speckle (image only)."""

    ksize: int = 3

    def apply(self, data: Sample) -> Sample:
        return {**data, "image": F.median_filter(data["image"], self.ksize)}


@dataclass(frozen=True)
class ScanArea(DictTransform):
    """Zero the image outside the detected scan area and crop image and mask to its box; lesion
    pixels outside the scan area (annotation slips) are dropped from the mask."""

    threshold: int = 10

    def apply(self, data: Sample) -> Sample:
        area, box = F.detect_scan_area(data["image"], threshold=self.threshold)
        image = F.crop_box(F.apply_scan_area(data["image"], area, crop=False), box)
        return {**data, "image": image, "mask": F.crop_box(data["mask"] * area, box)}


@dataclass(frozen=True)
class LesionROI(DictTransform):
    """Crop image and mask to the lesion's loose frame (its box enlarged by ``margin`` of its
    size on each side). No lesion pixel: keep the whole frame and set ``roi_fallback``."""

    margin: float = 0.15

    def apply(self, data: Sample) -> Sample:
        if not data["mask"].any():
            return {**data, "roi_fallback": True}
        image, box = F.roi_crop(data["image"], data["mask"], self.margin)
        return {**data, "image": image, "mask": F.crop_box(data["mask"], box)}


@dataclass(frozen=True)
class CLAHE(DictTransform):
    """Contrast-limited adaptive histogram equalisation (image only)."""

    clip_limit: float = 2.0
    tile: int = 8

    def apply(self, data: Sample) -> Sample:
        return {**data, "image": F.clahe(data["image"], self.clip_limit, self.tile)}


@dataclass(frozen=True)
class Resize(DictTransform):
    """Resize to ``size`` x ``size``: the image with area averaging (no aliasing when
    shrinking), the mask with nearest neighbour (stays 0/1)."""

    size: int = 64
    mode: Literal["pad", "stretch"] = "pad"
    real_only: ClassVar[bool] = False

    def apply(self, data: Sample) -> Sample:
        image = F.resize(data["image"], self.size, self.mode, interpolation=cv2.INTER_AREA)
        mask = F.resize(data["mask"], self.size, self.mode, interpolation=cv2.INTER_NEAREST)
        return {**data, "image": image, "mask": mask}
