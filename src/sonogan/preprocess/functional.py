"""Pure array operations for ultrasound preprocessing (OpenCV inside, numpy in and out).

Every function takes a uint8 ``HxW`` (grey) or ``HxWxC`` (RGB) array and returns a NEW
array; the input is never modified. Boxes are ``(x0, y0, x1, y1)`` with ``x1``/``y1``
exclusive, so ``img[y0:y1, x0:x1]`` is the box.

Example:
    >>> import numpy as np
    >>> img = np.zeros((40, 60), np.uint8); img[10:30, 20:50] = 200
    >>> mask, box = detect_scan_area(img)
    >>> box
    (20, 10, 50, 30)
    >>> resize(img, 32).shape
    (32, 32)
"""

from __future__ import annotations

from typing import Literal, Sequence

import cv2
import numpy as np

# Below data/ so that the DICOM importer crops with the same code; the pixel ops use them too.
from sonogan.data.scan_area import Box, check_uint8, crop_box, detect_scan_area, to_grayscale  # noqa: F401


def to_rgb(img: np.ndarray) -> np.ndarray:
    """Grey HxW (or HxWx1) -> HxWx3 by repeating the channel; RGB is returned as a copy."""
    check_uint8(img)
    if img.ndim == 3 and img.shape[2] == 3:
        return img.copy()
    grey = img if img.ndim == 2 else img[:, :, 0]
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2RGB)


def to_channels(img: np.ndarray, channels: int) -> np.ndarray:
    """Grey ``HxWx1`` (``channels=1``) or RGB ``HxWx3`` (``channels=3``) from either; the
    channel axis is always kept so every later op sees ``HxWxC``."""
    if channels == 1:
        return to_grayscale(img)[:, :, None]
    if channels == 3:
        return to_rgb(img)
    raise ValueError(f"channels must be 1 or 3, got {channels}")


def binary_mask(mask: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A lesion mask as ``HxW`` uint8 0/1 at ``shape`` (H, W): any non-zero pixel (in any
    channel of a colour mask) is lesion; a mask at another resolution is resized with nearest
    neighbour, which keeps it binary (some sources ship masks smaller than the image)."""
    lesion = (np.asarray(mask) > 0).astype(np.uint8)
    if lesion.ndim == 3:
        lesion = lesion.max(axis=2)
    if lesion.shape != tuple(shape):
        lesion = cv2.resize(lesion, (shape[1], shape[0]), interpolation=cv2.INTER_NEAREST)
    return lesion


def median_filter(img: np.ndarray, ksize: int = 3) -> np.ndarray:
    """Median filter with an odd ``ksize`` (the flagship uses 3x3 against speckle)."""
    check_uint8(img)
    if ksize < 1 or ksize % 2 == 0:
        raise ValueError(f"ksize must be odd and >= 1, got {ksize}")
    if ksize == 1:
        return img.copy()
    out = cv2.medianBlur(np.ascontiguousarray(img), ksize)
    return out.reshape(img.shape)  # medianBlur drops a trailing channel axis of size 1


def mask_box(mask: np.ndarray) -> Box | None:
    """Bounding box of the non-zero pixels of a 2-D mask, or None when it is empty."""
    ys, xs = np.nonzero(mask)
    if len(xs) == 0:
        return None
    return int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1


def apply_scan_area(img: np.ndarray, mask: np.ndarray, crop: bool = True) -> np.ndarray:
    """Zero everything outside the scan-area ``mask`` and (by default) crop to its box."""
    check_uint8(img)
    keep = mask.astype(bool)
    out = img.copy()
    out[~keep] = 0
    if crop:
        box = mask_box(keep)
        if box is not None:
            x0, y0, x1, y1 = box
            out = out[y0:y1, x0:x1].copy()
    return out


def loose_box(box: Box, shape: tuple[int, ...], margin: float = 0.15) -> Box:
    """Enlarge ``box`` by ``margin`` x its width (left and right) and x its height (top and
    bottom), rounded outwards, then clip to the image ``shape`` (H, W, ...)."""
    x0, y0, x1, y1 = box
    h, w = shape[0], shape[1]
    dx = int(np.ceil(margin * (x1 - x0)))
    dy = int(np.ceil(margin * (y1 - y0)))
    return max(0, x0 - dx), max(0, y0 - dy), min(w, x1 + dx), min(h, y1 + dy)


def roi_crop(img: np.ndarray, lesion_mask: np.ndarray, margin: float = 0.15) -> tuple[np.ndarray, Box]:
    """"Loose frame" ROI: the lesion's box enlarged by ``margin`` of its size on each side.

    Returns the crop and the clipped box. Raises ValueError on an empty mask (callers such as
    :func:`sonogan.preprocess.presets.apply_preset` fall back to the whole scan area).
    """
    check_uint8(img)
    if lesion_mask.shape[:2] != img.shape[:2]:
        raise ValueError(f"mask shape {lesion_mask.shape} differs from image shape {img.shape}")
    box = mask_box(lesion_mask)
    if box is None:
        raise ValueError("lesion mask is empty")
    box = loose_box(box, img.shape, margin)
    return crop_box(img, box), box


def resize(img: np.ndarray, size: int | tuple[int, int], mode: Literal["pad", "stretch"] = "pad",
           interpolation: int = cv2.INTER_AREA) -> np.ndarray:
    """Resize to ``size`` (int = square, or (height, width)).

    ``pad`` keeps the aspect ratio: scale the long side to fit, then centre on zeros.
    ``stretch`` ignores the aspect ratio. Pass ``interpolation=cv2.INTER_NEAREST`` for masks.
    """
    check_uint8(img)
    th, tw = (size, size) if isinstance(size, int) else size
    h, w = img.shape[:2]
    channels = img.shape[2:]
    if mode == "stretch":
        out = cv2.resize(img, (tw, th), interpolation=interpolation)
        return out.reshape((th, tw) + channels)
    if mode != "pad":
        raise ValueError(f"mode must be 'pad' or 'stretch', got {mode!r}")
    scale = min(th / h, tw / w)
    nh, nw = max(1, min(th, round(h * scale))), max(1, min(tw, round(w * scale)))
    scaled = cv2.resize(img, (nw, nh), interpolation=interpolation).reshape((nh, nw) + channels)
    out = np.zeros((th, tw) + channels, np.uint8)
    top, left = (th - nh) // 2, (tw - nw) // 2
    out[top:top + nh, left:left + nw] = scaled
    return out


def clahe(img: np.ndarray, clip_limit: float = 2.0, tile: int = 8) -> np.ndarray:
    """Contrast-limited adaptive histogram equalisation; RGB is equalised on the L of Lab so
    colours (overlays) keep their hue."""
    check_uint8(img)
    op = cv2.createCLAHE(clipLimit=clip_limit, tileGridSize=(tile, tile))
    if img.ndim == 2:
        return op.apply(img)
    if img.shape[2] == 1:
        return op.apply(img[:, :, 0])[:, :, None]
    lab = cv2.cvtColor(img, cv2.COLOR_RGB2LAB)
    lab[:, :, 0] = op.apply(np.ascontiguousarray(lab[:, :, 0]))
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def zscore_stats(images: np.ndarray | Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std (float32, shape (C,)) over images (N,H,W[,C]) or a list of them.

    Compute these over the TRAINING partition only; applying them to val/test avoids leakage.
    Sums run in float64 so large uint8 stacks do not lose precision.
    """
    total = None
    total_sq = None
    count = 0
    for img in images:
        arr = np.asarray(img, dtype=np.float64)
        arr = arr.reshape(-1, 1) if arr.ndim == 2 else arr.reshape(-1, arr.shape[-1])
        s, sq = arr.sum(axis=0), (arr * arr).sum(axis=0)
        total = s if total is None else total + s
        total_sq = sq if total_sq is None else total_sq + sq
        count += arr.shape[0]
    if total is None or count == 0:
        raise ValueError("zscore_stats needs at least one image")
    mean = total / count
    var = np.maximum(total_sq / count - mean * mean, 0.0)
    return mean.astype(np.float32), np.sqrt(var).astype(np.float32)


