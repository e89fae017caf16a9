"""Apply a trained model to new images: a :class:`Predictor` rebuilds itself from one file.

A classifier checkpoint (``best.pt``) or an ensemble file (``ensemble.json``, member paths
relative to it) holds everything: the preprocessing preset, the train-only normaliser, each
member's input size and channels, the class names and the fusion weights. The predictor runs
preset -> normaliser -> model(s) -> weighted fusion of probabilities, the same code path the
experiment used, so it reproduces the experiment's predictions.

Example:
    >>> p = Predictor.load("runs/demo/folds/fold0/augmented/frid-adar-cnn/best.pt")   # doctest: +SKIP
    >>> probs = p.predict_images([image], masks=[lesion_mask])                         # doctest: +SKIP
    >>> dict(zip(p.class_names, probs[0].round(3)))                                    # doctest: +SKIP
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from sonogan.errors import SonoganInputError
from sonogan.infer.calibration import apply_temperature
from sonogan.models.checkpoint import load_classifier
from sonogan.models.ensemble import fuse, read_ensemble_file
from sonogan.preprocess import functional as F
from sonogan.preprocess import transforms as T
from sonogan.preprocess.fold import Normaliser
from sonogan.preprocess.presets import PreprocessConfig, build_transforms
from sonogan.train.loop import predict_proba


def crop_with_box(steps: Sequence[T.DictTransform], image: np.ndarray,
                  mask: np.ndarray | None = None) -> tuple[np.ndarray, F.Box | None]:
    """The preset's uint8 (S, S, C) pixels of ``image`` (exactly :func:`~sonogan.preprocess.presets.apply_preset`:
    the same steps in the same order) and the lesion-ROI box it cropped, on the original image's
    pixels; None when the preset has no lesion ROI or fell back to the whole scan area (empty mask).

    The box is followed through the steps that move pixels: the scan-area crop (found with the
    step's own function and threshold) shifts it, the lesion ROI is the loose frame of the mask
    as the step sees it (lesion pixels outside the scan area already dropped).
    """
    data = T.make_sample(image, mask, False)
    x, y, box = 0, 0, None
    for step in steps:
        if isinstance(step, T.ScanArea):
            x0, y0, _, _ = F.detect_scan_area(data["image"], threshold=step.threshold)[1]
            x, y = x + x0, y + y0
        elif isinstance(step, T.LesionROI):
            found = F.mask_box(data["mask"])
            if found is not None:
                bx0, by0, bx1, by1 = F.loose_box(found, data["mask"].shape, step.margin)
                box = (x + bx0, y + by0, x + bx1, y + by1)
        data = step(data)
    return data["image"], box


@dataclass
class Member:
    """One classifier with the input its training used."""

    name: str
    model: nn.Module
    normaliser: Normaliser
    in_chans: int
    image_size: int
    tta: str = "none"


class ImageInput(ABC):
    """Decoded images -> the preset's pixels -> ``predict_pixels``: shared by the PyTorch and the
    ONNX Runtime predictors, which differ only in how they run the networks."""

    preset: PreprocessConfig

    @abstractmethod
    def predict_pixels(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Probabilities (N, C) of already preprocessed uint8 (N, S, S, C) pixels."""

    def prepare(self, image: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """One decoded image (and optional lesion mask) -> the preset's uint8 (S, S, C) pixels."""
        return self.prepare_with_box(image, mask)[0]

    def prepare_with_box(self, image: np.ndarray, mask: np.ndarray | None = None) -> tuple[np.ndarray, F.Box | None]:
        """The preset's pixels and the lesion-ROI box on ``image`` (None: no ROI, or the whole scan area)."""
        return crop_with_box(build_transforms(self.preset), image, mask)

    def predict_images(self, images: Sequence[np.ndarray],
                       masks: Sequence[np.ndarray | None] | None = None) -> np.ndarray:
        """Probabilities (N, C) of decoded images (uint8 grey or RGB), with optional lesion masks."""
        masks = list(masks) if masks is not None else [None] * len(images)
        if len(masks) != len(images):
            raise SonoganInputError("predict", f"{len(masks)} masks for {len(images)} images",
                                    "pass one mask (or None) per image")
        pixels = np.stack([self.prepare(img, m) for img, m in zip(images, masks)])
        return self.predict_pixels(pixels)


@dataclass
class Predictor(ImageInput):
    """Members sharing one preprocessing preset, fused with simplex weights."""

    members: list[Member]
    weights: np.ndarray
    class_names: list[str]
    preset: PreprocessConfig
    temperature: float = 1.0      # fitted on validation (sonogan.infer.calibration); 1 = uncalibrated

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu") -> "Predictor":
        """From a classifier checkpoint (``.pt``) or an ensemble file (``.json``)."""
        path = Path(path)
        if path.suffix == ".json":
            paths, weights, temperature = read_ensemble_file(path)
        else:
            paths, weights = {path.parent.name or "model": path}, np.ones(1)
            temperature = None
        loaded = [(name, *load_classifier(p, map_location=device)) for name, p in paths.items()]
        metas = [meta for _, _, meta in loaded]
        for meta, p in zip(metas, paths.values()):
            if meta.get("normaliser") is None or not meta.get("preprocess"):
                raise SonoganInputError(p, "checkpoint has no normaliser or preprocessing preset",
                                        "use a checkpoint written by 'sonogan experiment' or train_classifier")
        first = metas[0]
        for meta, p in zip(metas[1:], list(paths.values())[1:]):
            if meta["preprocess"] != first["preprocess"] or meta["class_names"] != first["class_names"]:
                raise SonoganInputError(p, "members differ in preprocessing or classes",
                                        "fuse only models trained on the same preset and classes")
        members = [Member(name, model, Normaliser.from_dict(meta["normaliser"]), meta["input"]["in_chans"],
                          meta["input"]["image_size"] or PreprocessConfig.model_validate(meta["preprocess"]).size,
                          meta["input"].get("tta", "none"))
                   for name, model, meta in loaded]
        if temperature is None:  # one checkpoint: its own fitted temperature, if any
            temperature = float(first.get("calibration", {}).get("temperature", 1.0))
        return cls(members, weights, list(first["class_names"]), PreprocessConfig.model_validate(first["preprocess"]),
                   temperature)

    def predict_pixels(self, pixels: np.ndarray, batch_size: int = 256) -> np.ndarray:
        """Probabilities (N, C) of already preprocessed uint8 (N, S, S, C) pixels."""
        probs = [predict_proba(m.model, m.normaliser(pixels, m.in_chans, m.image_size), batch_size, m.tta)
                 for m in self.members]
        fused = fuse(probs, self.weights)
        return fused if self.temperature == 1.0 else apply_temperature(fused, self.temperature)

    @property
    def device(self) -> torch.device:
        return next(self.members[0].model.parameters()).device
