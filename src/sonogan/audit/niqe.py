"""NIQE (Mittal, Soundararajan & Bovik 2013) with its pristine model fitted on in-domain real images.

Hand-written because no licence-clean offline library ships it: pyiqa is non-commercial and
downloads its parameters, scikit-image and torchmetrics have no NIQE, and the original
MATLAB model was fitted on natural photographs, not ultrasound. Here the "pristine"
multivariate Gaussian is fitted on the fold's REAL training images, so NIQE measures how far a
synthetic image's natural-scene statistics lie from those of real scans of the same domain.

Per patch (``patch`` px, and ``patch / 2`` on the half-size image) 18 features: the GGD shape
and variance of the MSCN coefficients, and the AGGD shape, mean, left and right variance of
the four neighbour products (horizontal, vertical, two diagonals); 36 in all. The shapes are
found by moment matching on a grid of 0.2..10 in steps of 0.001, as in the reference code.
The pristine fit keeps patches sharper than 0.75 x the sharpest (mean local deviation), as in
the paper; a scored image uses all its patches.
NIQE = sqrt((mu1 - mu2)^T ((S1 + S2) / 2)^+ (mu1 - mu2)).

Example:
    >>> import numpy as np
    >>> x = np.random.default_rng(0).normal(size=200_000)
    >>> round(float(ggd_fit_rows(x[None])[0, 0]), 1)         # a Gaussian has GGD shape 2
    2.0
    >>> niqe_distance(np.zeros(2), np.eye(2), np.array([3.0, 4.0]), np.eye(2))
    5.0
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
from scipy.special import gamma as G

from sonogan.skipped import NotComputable

_SHAPES = np.arange(0.2, 10.0, 0.001)
# r(a) = Gamma(2/a)^2 / (Gamma(1/a) Gamma(3/a)): the (E|x|)^2 / E[x^2] of a GGD of shape a
_R = G(2 / _SHAPES) ** 2 / (G(1 / _SHAPES) * G(3 / _SHAPES))
_SHIFTS = ((0, 1), (1, 0), (1, 1), (1, -1))  # horizontal, vertical, main and secondary diagonal


def _shape_for(ratio: np.ndarray) -> np.ndarray:
    """Grid shape whose r(a) is nearest ``ratio`` (vectorised over patches)."""
    return _SHAPES[np.abs(_R[None, :] - np.asarray(ratio).reshape(-1, 1)).argmin(axis=1)]


def ggd_fit_rows(x: np.ndarray) -> np.ndarray:
    """(shape, variance) of a zero-mean generalised Gaussian for each row of ``x``, by moment matching."""
    var = np.mean(x ** 2, 1)
    shape = _shape_for(np.mean(np.abs(x), 1) ** 2 / np.maximum(var, 1e-12))
    return np.stack([shape, var], axis=1)


def aggd_fit_rows(x: np.ndarray) -> np.ndarray:
    """(shape, mean, left variance, right variance) of an asymmetric GGD for each row of ``x``
    (Lasmar, Stitou & Berthoumieu 2009)."""
    neg, pos = x < 0, x > 0
    left = np.sqrt((x ** 2 * neg).sum(1) / np.maximum(neg.sum(1), 1))
    right = np.sqrt((x ** 2 * pos).sum(1) / np.maximum(pos.sum(1), 1))
    g = left / np.maximum(right, 1e-12)
    r_hat = np.mean(np.abs(x), 1) ** 2 / np.maximum(np.mean(x ** 2, 1), 1e-12)
    shape = _shape_for(r_hat * (g ** 3 + 1) * (g + 1) / (g ** 2 + 1) ** 2)
    mean = (right - left) * G(2 / shape) / G(1 / shape) * np.sqrt(G(1 / shape) / G(3 / shape))
    return np.stack([shape, mean, left ** 2, right ** 2], axis=1)


def mscn(grey: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean-subtracted contrast-normalised coefficients of a [0, 255] float image and its local
    deviation (7 x 7 Gaussian, sigma 7/6, C = 1), with OpenCV's filter."""
    mu = cv2.GaussianBlur(grey, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE)
    sigma = np.sqrt(np.abs(cv2.GaussianBlur(grey * grey, (7, 7), 7 / 6, borderType=cv2.BORDER_REPLICATE) - mu * mu))
    return (grey - mu) / (sigma + 1), sigma


def _patches(a: np.ndarray, p: int) -> np.ndarray:
    h, w = (a.shape[0] // p) * p, (a.shape[1] // p) * p
    return a[:h, :w].reshape(h // p, p, w // p, p).swapaxes(1, 2).reshape(-1, p, p)


def _scale_features(grey: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    """(patches, 18) features and (patches,) sharpness at one scale."""
    coef, sigma = mscn(grey)
    blocks = _patches(coef, p)
    flat = blocks.reshape(len(blocks), -1)
    feats = [ggd_fit_rows(flat)]
    for dy, dx in _SHIFTS:
        # products of each coefficient with its neighbour, inside each patch
        a = blocks[:, :p - dy, max(0, -dx):p - max(0, dx)]
        b = blocks[:, dy:, max(0, dx):p + min(0, dx)]
        feats.append(aggd_fit_rows((a * b).reshape(len(blocks), -1)))
    return np.concatenate(feats, axis=1), _patches(sigma, p).mean(axis=(1, 2))


def to_grey(image: np.ndarray) -> np.ndarray:
    """uint8 (H, W) or (H, W, C) -> float64 (H, W) in [0, 255] (mean of channels)."""
    image = np.asarray(image, dtype=np.float64)
    return image.mean(axis=-1) if image.ndim == 3 else image


def niqe_features(image: np.ndarray, patch: int = 16) -> tuple[np.ndarray, np.ndarray]:
    """(patches, 36) NIQE features of one image and each patch's sharpness."""
    grey = to_grey(image)
    f1, sharp = _scale_features(grey, patch)
    half = cv2.resize(grey, (grey.shape[1] // 2, grey.shape[0] // 2), interpolation=cv2.INTER_CUBIC)
    f2, _ = _scale_features(half, patch // 2)
    n = min(len(f1), len(f2))  # odd sizes: the half-size image may hold fewer patches
    return np.concatenate([f1[:n], f2[:n]], axis=1), sharp[:n]


@dataclass(frozen=True)
class NiqeModel:
    """The pristine multivariate Gaussian: mean (36,) and covariance (36, 36) of patch features."""

    mean: np.ndarray
    cov: np.ndarray
    patch: int
    n_patches: int


def fit_niqe(images: np.ndarray, patch: int = 16, sharpness: float = 0.75) -> NiqeModel:
    """Fit the pristine model on uint8 (N, S, S, C) in-domain real images."""
    feats, sharp = zip(*(niqe_features(im, patch) for im in images))
    f, s = np.concatenate(feats), np.concatenate(sharp)
    keep = f[s > sharpness * s.max()] if s.max() > 0 else f
    if len(keep) < 2:
        raise NotComputable(f"NIQE needs at least 2 sharp {patch}-px patches in the fold's real training images "
                            f"to fit its reference model, found {len(keep)}")
    return NiqeModel(keep.mean(0), np.cov(keep, rowvar=False), patch, int(len(keep)))


def niqe_distance(mu1: np.ndarray, cov1: np.ndarray, mu2: np.ndarray, cov2: np.ndarray) -> float:
    """sqrt((mu1 - mu2)^T pinv((cov1 + cov2) / 2) (mu1 - mu2))."""
    d = mu1 - mu2
    return float(np.sqrt(max(d @ np.linalg.pinv((cov1 + cov2) / 2) @ d, 0.0)))


def niqe_score(model: NiqeModel, image: np.ndarray) -> float:
    """NIQE of one image against the pristine model (lower = closer to the real images)."""
    f, _ = niqe_features(image, model.patch)
    cov = np.cov(f, rowvar=False) if len(f) > 1 else np.zeros_like(model.cov)
    return niqe_distance(model.mean, model.cov, f.mean(0), cov)
