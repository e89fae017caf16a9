"""How well annotations were removed: PSNR and SSIM over the image (torchmetrics) and the
error inside the annotated region (the pixels the marks covered), all pure functions of
images in [0, ``data_range``] shaped HxW or HxWxC.

The region metrics are written here because no library restricts PSNR to a mask; they are
the plain formulas (``10 log10(R^2 / MSE)`` over the masked pixels of every channel).

Example:
    >>> import numpy as np
    >>> clean = np.zeros((4, 4)); pred = clean.copy(); pred[0, 0] = 0.5
    >>> region = np.zeros((4, 4), np.uint8); region[0, :2] = 1
    >>> round(region_mse(pred, clean, region), 4), round(region_psnr(pred, clean, region), 2)  # (0.25 + 0) / 2
    (0.125, 9.03)
    >>> round(psnr(pred, clean), 2)   # MSE 0.25 / 16
    18.06
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torchmetrics.functional.image import peak_signal_noise_ratio, structural_similarity_index_measure


def _nchw(img: np.ndarray) -> torch.Tensor:
    arr = np.asarray(img, dtype=np.float64)
    arr = arr[:, :, None] if arr.ndim == 2 else arr
    return torch.from_numpy(arr).permute(2, 0, 1)[None]


def psnr(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio over the whole image, in dB (inf when identical)."""
    if np.array_equal(pred, target):
        return math.inf
    return float(peak_signal_noise_ratio(_nchw(pred), _nchw(target), data_range=data_range))


def ssim(pred: np.ndarray, target: np.ndarray, data_range: float = 1.0) -> float:
    """Structural similarity (Gaussian window 11, sigma 1.5, the standard constants)."""
    return float(structural_similarity_index_measure(_nchw(pred), _nchw(target), data_range=data_range))


def _region(mask: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    region = np.asarray(mask).astype(bool)
    if region.shape != tuple(shape[:2]):
        raise ValueError(f"mask {region.shape} does not match the image {shape[:2]}")
    return region


def region_mse(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Mean squared error over the masked pixels (every channel); nan for an empty mask."""
    region = _region(mask, np.shape(pred))
    if not region.any():
        return math.nan
    diff = (np.asarray(pred, np.float64) - np.asarray(target, np.float64))[region]
    return float((diff ** 2).mean())


def region_mae(pred: np.ndarray, target: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute error over the masked pixels (every channel); nan for an empty mask."""
    region = _region(mask, np.shape(pred))
    if not region.any():
        return math.nan
    return float(np.abs((np.asarray(pred, np.float64) - np.asarray(target, np.float64))[region]).mean())


def region_psnr(pred: np.ndarray, target: np.ndarray, mask: np.ndarray, data_range: float = 1.0) -> float:
    """PSNR over the masked pixels only, in dB (inf when they match, nan for an empty mask)."""
    mse = region_mse(pred, target, mask)
    if math.isnan(mse):
        return math.nan
    return math.inf if mse == 0 else 10 * math.log10(data_range ** 2 / mse)


def pair_metrics(pred: np.ndarray, clean: np.ndarray, mask: np.ndarray, data_range: float = 1.0) -> dict[str, float]:
    """Every metric of one restored (or still annotated) image against its clean twin."""
    return {"psnr": psnr(pred, clean, data_range), "ssim": ssim(pred, clean, data_range),
            "region_psnr": region_psnr(pred, clean, mask, data_range),
            "region_mae": region_mae(pred, clean, mask)}
