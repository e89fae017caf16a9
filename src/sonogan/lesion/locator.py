"""Find the lesion on new images: a trained segmenter rebuilt from its checkpoint.

:func:`load_locator` reads a ``sonogan-lesion`` checkpoint (the ``best.pt`` of a
``segmentation``, ``cgan-segmentation`` or ``multitask`` arm of ``sonogan lesion``). The file
carries everything the model saw in training: the whole-scan preprocessing preset, the
train-only normaliser, the input size and whether masks were post-processed.
:meth:`Locator.predict_masks` runs that preset on each image, segments it, and maps the mask
back onto the original pixels (inverse of the scan-area crop and the padded resize), so the
caller can crop its own loose frame exactly as it would with a hand-drawn mask.

Example:
    >>> loc = load_locator("runs/lesion-demo-001/folds/fold0/segmentation/best.pt")   # doctest: +SKIP
    >>> masks = loc.predict_masks([image])                                         # doctest: +SKIP
    >>> masks[0].shape == image.shape[:2], masks[0].dtype                          # doctest: +SKIP
    (True, dtype('bool'))
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch
from torch import nn

from sonogan.errors import SonoganInputError
from sonogan.lesion.train import load_lesion
from sonogan.models.segmentation import postprocess_mask
from sonogan.preprocess import functional as F
from sonogan.preprocess import transforms as T
from sonogan.preprocess.fold import Normaliser
from sonogan.preprocess.presets import PreprocessConfig, build_transforms


def scan_box(steps: list[T.DictTransform], image: np.ndarray) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """(the preset's image before its final resize, the box of the original image it covers).

    Runs the preset's steps up to the resize; where a step is the scan-area crop, its box is
    found with the same function and threshold the step uses.
    """
    data = T.make_sample(image, None, False)
    h, w = image.shape[:2]
    box = (0, 0, w, h)
    for step in steps[:-1]:
        if isinstance(step, T.ScanArea):
            box = F.detect_scan_area(data["image"], threshold=step.threshold)[1]
        data = step(data)
    return data["image"], box


def unpad(square: np.ndarray, crop_hw: tuple[int, int]) -> np.ndarray:
    """Invert ``functional.resize(..., mode="pad")`` on a float map: the square's centred content,
    resized bilinearly back to the crop's height and width (threshold it afterwards, so the
    mask edge stays where the probabilities say and is not shifted by nearest-neighbour rounding)."""
    size = square.shape[0]
    h, w = crop_hw
    scale = min(size / h, size / w)
    nh, nw = max(1, min(size, round(h * scale))), max(1, min(size, round(w * scale)))
    top, left = (size - nh) // 2, (size - nw) // 2
    inner = np.ascontiguousarray(square[top:top + nh, left:left + nw], dtype=np.float32)
    return cv2.resize(inner, (w, h), interpolation=cv2.INTER_LINEAR)


class MaskFinder(ABC):
    """Whole-scan preset -> lesion probability map -> a boolean mask on the original pixels:
    shared by the PyTorch :class:`Locator` and the ONNX Runtime twin
    (:class:`sonogan.infer.onnx.OnnxLocator`), which differ only in how they run the net."""

    preset: PreprocessConfig
    postprocess: bool
    threshold: float

    @abstractmethod
    def square_probs(self, pixels: np.ndarray) -> np.ndarray:
        """Lesion probabilities (S, S) float32 of one preset-prepared uint8 (S, S, C) image."""

    def predict_masks(self, images: list[np.ndarray]) -> list[np.ndarray]:
        """Boolean lesion masks (H, W) on each uint8 (H, W, C) or (H, W) image's own pixels."""
        steps = build_transforms(self.preset)
        out: list[np.ndarray] = []
        for image in images:
            if image.dtype != np.uint8 or image.ndim not in (2, 3):
                raise SonoganInputError("locator", f"image of dtype {image.dtype} and shape {image.shape}",
                                        "pass decoded uint8 (H, W) or (H, W, C) images")
            before, box = scan_box(steps, image)
            square = self.square_probs(steps[-1](T.make_sample(before, None, False))["image"])
            x0, y0, x1, y1 = box
            crop = unpad(square, before.shape[:2]) if self.preset.resize_mode == "pad" else cv2.resize(
                square, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR)
            mask = crop > self.threshold
            if self.postprocess:
                mask = postprocess_mask(mask)
            full = np.zeros(image.shape[:2], bool)
            full[y0:y1, x0:x1] = mask
            out.append(full)
        return out


class SegmenterProbs(nn.Module):
    """A lesion model's backbone (encoder + decoder) as a probability map of ``size`` x ``size`` px.

    The backbone alone: a multitask model's head, and the clinical variables it may need, play
    no part in finding the lesion. Also what :func:`sonogan.infer.onnx.export_segmenter_onnx` exports."""

    def __init__(self, model: nn.Module, size: int) -> None:
        super().__init__()
        self.backbone = model.backbone
        self.size = size  # the preset's pixel size: the map is drawn back onto those pixels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        prob = torch.sigmoid(self.backbone(x).float())
        return nn.functional.interpolate(prob, size=(self.size, self.size), mode="bilinear", align_corners=False)


@dataclass
class Locator(MaskFinder):
    """A segmenter with its preprocessing; see :func:`load_locator`."""

    model: nn.Module
    preset: PreprocessConfig
    normaliser: Normaliser
    image_size: int
    in_chans: int
    postprocess: bool
    threshold: float = 0.5

    @torch.no_grad()
    def square_probs(self, pixels: np.ndarray) -> np.ndarray:
        x = self.normaliser(pixels[None], self.in_chans, self.image_size)
        return SegmenterProbs(self.model, pixels.shape[0])(x)[0, 0].numpy()


def locator_from_checkpoint(model: nn.Module, meta: dict[str, Any], where: str | Path) -> Locator:
    """A :class:`Locator` from a loaded lesion model and its checkpoint metadata."""
    if not getattr(model, "segments", False):
        raise SonoganInputError(where, "this lesion model has no segmentation output",
                                "pass the best.pt of a segmentation, cgan-segmentation or multitask arm")
    preset = PreprocessConfig.model_validate(meta["preprocess"])
    if preset.roi != "none":
        raise SonoganInputError(where, "the segmenter was trained on lesion crops, not whole scans",
                                "train it with a whole-scan preset (roi: none)")
    return Locator(model, preset, Normaliser.from_dict(meta["normaliser"]), int(meta["image_size"]),
                   int(meta["in_chans"]), bool(meta.get("postprocess", False)))


def load_locator(path: str | Path) -> Locator:
    """The segmenter saved at ``path`` (a ``sonogan lesion`` arm's ``best.pt``), ready for new images."""
    model, meta = load_lesion(path)
    return locator_from_checkpoint(model, meta, path)
