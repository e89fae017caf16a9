"""Explanations saved as PNG: Grad-CAM heat maps (captum) and lesion-mask overlays.

:func:`gradcam` asks captum's ``LayerGradCam`` where the network looked for a class: the
gradient of the class score with respect to the feature maps of the network's last
convolution (:func:`last_conv`), averaged per channel, weighs those maps; only positive
evidence is kept (ReLU) and the map is upsampled to the model's input
(``LayerAttribution.interpolate``). It is computed on exactly the pixels the model sees (the
preset's output, normalised as in training). For an ensemble, each member's map is weighted
like its probabilities; fold models are averaged equally. Maps are scaled to [0, 1] per image,
so they show *where*, not *how much*.

:func:`overlay_heatmap` blends a map onto the image with OpenCV's JET colour map;
:func:`overlay_mask` draws a lesion mask's outline, so a reader sees which region the
lesion-ROI preset used.

Example:
    >>> import numpy as np, torch
    >>> from sonogan.infer.predictor import Member, Predictor
    >>> from sonogan.models.classifiers import create_classifier
    >>> from sonogan.preprocess.fold import Normaliser
    >>> from sonogan.preprocess.presets import get_preset
    >>> _ = torch.manual_seed(0)
    >>> model = create_classifier("frid-adar-cnn", num_classes=2, widths=(4, 4, 4)).eval()
    >>> p = Predictor([Member("m", model, Normaliser((100.0,), (50.0,)), 1, 64)], np.ones(1), ["a", "b"],
    ...               get_preset("full-64"))
    >>> pixels = np.random.default_rng(0).integers(0, 256, (64, 64, 1), dtype=np.uint8)
    >>> heat = gradcam(p, pixels, target=1)
    >>> heat.shape, bool(heat.min() >= 0 and heat.max() <= 1)
    ((64, 64), True)
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import torch
from captum.attr import LayerAttribution, LayerGradCam
from PIL import Image
from torch import nn

from sonogan.errors import SonoganInputError
from sonogan.infer.predictor import ImageInput, Member, Predictor

_EPS = 1e-12


def last_conv(model: nn.Module) -> nn.Conv2d:
    """The network's last ``Conv2d`` in module order: the deepest spatial feature maps
    (e.g. EfficientNet's ``conv_head``, a ResNet's last block conv)."""
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise SonoganInputError(type(model).__name__, "has no convolution layer", "Grad-CAM needs a CNN")
    return convs[-1]


def member_gradcam(member: Member, pixels: np.ndarray, target: int) -> np.ndarray:
    """One member's raw Grad-CAM (S, S) float64 of uint8 pixels (S, S, C) for class ``target``."""
    x = member.normaliser(pixels[None], member.in_chans, member.image_size).to(next(member.model.parameters()).device)
    with torch.enable_grad():  # the Predictor may be used under no_grad; Grad-CAM needs gradients
        attr = LayerGradCam(member.model, last_conv(member.model)).attribute(x, target=int(target),
                                                                             relu_attributions=True)
    size = pixels.shape[:2]
    up = LayerAttribution.interpolate(attr.detach(), size, interpolate_mode="bilinear")
    return up[0].mean(0).clamp_min(0).cpu().double().numpy()


def _members(predictor: ImageInput) -> list[tuple[Member, float]]:
    """(member, weight) of a Predictor or of a fold average of Predictors (weights sum to 1)."""
    if isinstance(predictor, Predictor):
        return [(m, float(w)) for m, w in zip(predictor.members, predictor.weights)]
    classifier = getattr(predictor, "classifier", None)  # a Pipeline: its classifier reads the crop
    if classifier is not None:
        return _members(classifier)
    inner = getattr(predictor, "predictors", None)
    if inner:
        return [(m, w / len(inner)) for p in inner for m, w in _members(p)]
    raise SonoganInputError(type(predictor).__name__, "has no PyTorch members",
                            "explain with the PyTorch model (best.pt / ensemble.json / run), not the ONNX export")


def gradcam(predictor: ImageInput, pixels: np.ndarray, target: int) -> np.ndarray:
    """Weighted Grad-CAM of every member, scaled to [0, 1] (all zeros when no positive evidence)."""
    heat = sum(w * member_gradcam(m, pixels, target) for m, w in _members(predictor))
    heat = np.asarray(heat, dtype=np.float64)
    top = heat.max()
    return heat / top if top > _EPS else np.zeros_like(heat)


def _rgb(pixels: np.ndarray) -> np.ndarray:
    img = pixels if pixels.ndim == 3 else pixels[..., None]
    return np.repeat(img, 3, axis=2) if img.shape[2] == 1 else img[..., :3]


def overlay_heatmap(pixels: np.ndarray, heat: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    """uint8 RGB: the image with the map in JET colours (red = most evidence) blended on top."""
    colour = cv2.applyColorMap(np.uint8(np.clip(heat, 0, 1) * 255), cv2.COLORMAP_JET)[..., ::-1]
    blend = (1 - alpha) * _rgb(pixels).astype(np.float64) + alpha * colour
    return np.clip(blend, 0, 255).astype(np.uint8)


def overlay_mask(image: np.ndarray, mask: np.ndarray, colour: tuple[int, int, int] = (0, 255, 0)) -> np.ndarray:
    """uint8 RGB: the image with the outline of ``mask`` (non-zero = lesion) drawn on it."""
    out = np.ascontiguousarray(_rgb(image).copy())
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    if binary.shape != out.shape[:2]:
        binary = cv2.resize(binary, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_NEAREST)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    thickness = max(1, round(min(out.shape[:2]) / 150))
    cv2.drawContours(out, contours, -1, colour, thickness)
    return out


def save_png(image: np.ndarray, path: Path, scale: int = 1) -> Path:
    """Save uint8 RGB (optionally enlarged by ``scale`` with nearest-neighbour pixels); no metadata."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if scale > 1:
        image = cv2.resize(image, (image.shape[1] * scale, image.shape[0] * scale), interpolation=cv2.INTER_NEAREST)
    Image.fromarray(np.ascontiguousarray(image)).save(path)
    return path
