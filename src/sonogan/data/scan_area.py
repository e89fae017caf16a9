"""The scan area of an ultrasound frame: the fan or sector on its black background.

The DICOM importer crops to it (``sonogan data import --format dicom``) and preprocessing's
``ScanArea`` step (through :mod:`sonogan.preprocess.functional`) finds it with the same code,
which is why it lives here, below both. Boxes are ``(x0, y0, x1, y1)`` with ``x1``/``y1``
exclusive, so ``img[y0:y1, x0:x1]`` is the box; inputs are never modified.

Example:
    >>> import numpy as np
    >>> img = np.zeros((40, 60), np.uint8); img[10:30, 20:50] = 200
    >>> mask, box = detect_scan_area(img)
    >>> box, crop_box(img, box).shape, int(mask.sum())  # 20 x 30 less 2 px the opening rounds off each corner
    ((20, 10, 50, 30), (20, 30), 592)
"""

from __future__ import annotations

import cv2
import numpy as np

Box = tuple[int, int, int, int]


def check_uint8(img: np.ndarray, name: str = "image") -> None:
    """ValueError unless ``img`` is a uint8 ``HxW`` or ``HxWxC`` array."""
    if img.dtype != np.uint8 or img.ndim not in (2, 3):
        raise ValueError(f"{name} must be a uint8 HxW or HxWxC array, got {img.dtype} {img.shape}")


def to_grayscale(img: np.ndarray) -> np.ndarray:
    """RGB (HxWx3) or grey (HxW / HxWx1) -> grey HxW uint8 (ITU-R 601 luma, as OpenCV)."""
    check_uint8(img)
    if img.ndim == 2:
        return img.copy()
    if img.shape[2] == 1:
        return img[:, :, 0].copy()
    return cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)


def detect_scan_area(img: np.ndarray, threshold: int = 10,
                     morph_ksize: int = 5) -> tuple[np.ndarray, Box]:
    """Find the scan (fan/sector) on its black background.

    Threshold the grey image at ``> threshold``, open (removes thin text and calliper marks
    touching nothing) then close (fills dark cysts inside the fan), keep the largest external
    contour and fill it. Returns the filled mask (uint8 0/1, HxW) and its bounding box.
    An image with nothing above the threshold gives a full-image mask (nothing to remove).
    """
    grey = to_grayscale(img)
    h, w = grey.shape
    binary = (grey > threshold).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (morph_ksize, morph_ksize))
    binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, kernel)
    binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, kernel)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return np.ones((h, w), np.uint8), (0, 0, w, h)
    largest = max(contours, key=cv2.contourArea)
    mask = np.zeros((h, w), np.uint8)
    cv2.drawContours(mask, [largest], -1, color=1, thickness=cv2.FILLED)
    x, y, bw, bh = cv2.boundingRect(largest)
    return mask, (int(x), int(y), int(x + bw), int(y + bh))


def crop_box(img: np.ndarray, box: Box) -> np.ndarray:
    """Copy of ``img[y0:y1, x0:x1]``."""
    x0, y0, x1, y1 = box
    return img[y0:y1, x0:x1].copy()
