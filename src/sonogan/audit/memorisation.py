"""Memorisation: is a synthetic image a near-copy of a real training image?

For every synthetic image, its nearest real TRAINING image (the images the generator saw) in
each space (``pixel``: grey pixels in [0, 1] at 32 px; or a feature extractor's features), and the ratio
of that distance to the median real-to-real nearest-neighbour distance (each real image to its
nearest *other* real image). A ratio well below 1 means the synthetic image sits much closer to
one real image than real images sit to each other.

The threshold is calibrated, not guessed: augmented copies of the real images (small shift,
brightness / contrast change, blur and noise: what a memorising generator's near-copy looks
like) are scored the same way, and the threshold is the ``copy_quantile`` of their ratios, so
that share of such near-copies would be caught; it never exceeds ``max_ratio`` (0.5: a
near-copy is at least twice as close to a training image as real images are to each other),
so too strong an augmentation cannot turn novel images into "copies". Alaa et al. (2022, "authenticity") and
Carlini et al. (2023) motivate the nearest-neighbour test; the calibration is ours. A
synthetic image is flagged when any space flags it; flagged images are excluded from training
by default (:func:`exclude_flagged`). The real-to-real ratios below the threshold are reported
too: they are near-duplicates inside the real data, which the gate cannot be blamed for.

Example:
    >>> import numpy as np
    >>> real = np.array([[0.0], [10.0], [20.0]])
    >>> d, idx = nearest(np.array([[9.0], [30.0]]), real)
    >>> d.tolist(), idx.tolist()
    ([1.0, 10.0], [1, 2])
    >>> loo_nearest(real).tolist()
    [10.0, 10.0, 10.0]
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import cv2
import numpy as np
import torch
from torchvision.transforms.v2 import functional as TF

from sonogan.preprocess.fold import Partition, pixels_to_tensor
from sonogan.report.figures import new_figure, save_figure

Embed = Callable[[np.ndarray], np.ndarray]
"""uint8 (N, S, S, C) images -> (N, D) float vectors."""


def pixel_embed(images: np.ndarray, size: int = 32) -> np.ndarray:
    """The pixel space: grey pixels in [0, 1], area-downsampled (OpenCV) to at most ``size`` px and
    flattened. A memorised sample is rarely pixel-exact: at half resolution speckle and sub-pixel
    shifts weigh less (on MMOTU fold 0, 92 % of the calibration copies fall under the threshold
    cap at 32 px against 74 % at 64 px)."""
    grey = images.astype(np.float32).mean(axis=-1) / 255.0
    if size < max(grey.shape[1:]):
        grey = np.stack([cv2.resize(g, (size, size), interpolation=cv2.INTER_AREA) for g in grey])
    return grey.reshape(len(grey), -1).astype(np.float64)


def nearest(queries: np.ndarray, refs: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance of each query to its nearest reference row, and that row's index."""
    r = torch.from_numpy(np.asarray(refs, np.float64))
    dist, idx = [], []
    for i in range(0, len(queries), chunk):
        d = torch.cdist(torch.from_numpy(np.asarray(queries[i:i + chunk], np.float64)), r)
        m = d.min(dim=1)
        dist.append(m.values.numpy())
        idx.append(m.indices.numpy())
    return np.concatenate(dist), np.concatenate(idx)


def loo_nearest(refs: np.ndarray) -> np.ndarray:
    """Each reference row's distance to its nearest OTHER row."""
    r = torch.from_numpy(np.asarray(refs, np.float64))
    d = torch.cdist(r, r)
    d.fill_diagonal_(float("inf"))
    return d.min(dim=1).values.numpy()


def augmented_copies(images: np.ndarray, copies: int = 2, seed: int = 0) -> np.ndarray:
    """``copies`` mildly augmented versions of each uint8 (N, S, S, C) image (torchvision ops):
    shift of up to 1 px, brightness and contrast x U(0.95, 1.05), Gaussian blur sigma
    U(0.1, 0.6), Gaussian noise sigma 2 grey levels. Seeded."""
    gen = torch.Generator().manual_seed(seed)
    x = pixels_to_tensor(images) / 255.0
    out = []
    for _ in range(copies):
        for img in x:
            u = torch.rand(6, generator=gen)
            dx, dy = int(round(float(u[0]) * 2 - 1)), int(round(float(u[1]) * 2 - 1))
            y = TF.affine(img, angle=0.0, translate=[dx, dy], scale=1.0, shear=[0.0, 0.0])
            y = TF.adjust_brightness(y, 0.95 + 0.1 * float(u[2]))
            y = TF.adjust_contrast(y, 0.95 + 0.1 * float(u[3])) if y.shape[0] in (1, 3) else y
            y = TF.gaussian_blur(y, kernel_size=[5, 5], sigma=[0.1 + 0.5 * float(u[4])] * 2)
            y = y + torch.randn(y.shape, generator=gen) * (2 / 255)
            out.append(y.clamp(0, 1))
    return (torch.stack(out) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


@dataclass
class SpaceResult:
    """One space's nearest-neighbour test of every synthetic image."""

    distance: np.ndarray  # (M,) to the nearest real training image
    nearest: np.ndarray  # (M,) its index among the real images
    ratio: np.ndarray  # (M,) distance / median real-to-real NN distance
    threshold: float  # ratio below which an image is a near-copy (calibrated)
    real_nn_median: float
    real_ratio_below: float  # share of real images this close to another real image
    copies_caught: float  # share of augmented real copies below the threshold

    @property
    def flagged(self) -> np.ndarray:
        return self.ratio < self.threshold

    def summary(self) -> dict:
        return {"threshold_ratio": round(self.threshold, 4), "real_nn_median": float(self.real_nn_median),
                "copies_caught": round(self.copies_caught, 4), "real_ratio_below": round(self.real_ratio_below, 4),
                "n_flagged": int(self.flagged.sum()), "min_ratio": round(float(self.ratio.min()), 4),
                "median_ratio": round(float(np.median(self.ratio)), 4)}


def space_test(real: np.ndarray, synthetic: np.ndarray, copies: np.ndarray, quantile: float,
               max_ratio: float = 0.5) -> SpaceResult:
    """The calibrated test in one space, from (N, D) real, (M, D) synthetic and (K, D) copy vectors;
    the threshold never exceeds ``max_ratio``."""
    real_nn = loo_nearest(real)
    scale = max(float(np.median(real_nn)), 1e-12)
    d, idx = nearest(synthetic, real)
    copy_ratio = nearest(copies, real)[0] / scale
    threshold = min(float(np.quantile(copy_ratio, quantile)), max_ratio)
    return SpaceResult(d, idx, d / scale, threshold, scale, float((real_nn / scale < threshold).mean()),
                       float((copy_ratio < threshold).mean()))


@dataclass
class Memorisation:
    """Every space's result and the combined flag (any space)."""

    spaces: dict[str, SpaceResult]

    @property
    def flagged(self) -> np.ndarray:
        return np.any([s.flagged for s in self.spaces.values()], axis=0)

    def summary(self, synthetic_ids: list[str]) -> dict:
        flagged = self.flagged
        return {"n_synthetic": int(len(flagged)), "n_flagged": int(flagged.sum()),
                "flagged_ids": [synthetic_ids[i] for i in np.flatnonzero(flagged)],
                "spaces": {name: s.summary() for name, s in self.spaces.items()}}


def memorisation_check(real: np.ndarray, synthetic: np.ndarray, embeds: dict[str, Embed], quantile: float = 0.95,
                       copies_per_image: int = 2, seed: int = 0, max_ratio: float = 0.5,
                       known: dict[str, tuple[np.ndarray, np.ndarray]] | None = None) -> Memorisation:
    """Nearest real training image of every synthetic image in each space of ``embeds``, with
    the threshold calibrated on augmented copies of ``real`` (uint8 (N, S, S, C) images).
    ``known[space]``: that space's (real, synthetic) vectors when the caller has them already
    (the audit's extractor features): only the copies are embedded then."""
    if len(real) < 2:
        raise ValueError("memorisation needs at least 2 real training images")
    copies = augmented_copies(real, copies_per_image, seed)
    known = known or {}
    out = {}
    for name, embed in embeds.items():
        r, s = known[name] if name in known else (embed(real), embed(synthetic))
        out[name] = space_test(r, s, embed(copies), quantile, max_ratio)
    return Memorisation(out)


def exclude_flagged(part: Partition, flagged_ids: list[str]) -> tuple[Partition, int]:
    """``part`` without the flagged near-copies, and how many were removed."""
    drop = set(flagged_ids)
    keep = np.array([i not in drop for i in part.ids], dtype=bool)
    return part.select(keep), int((~keep).sum())


def plot_memorisation_panel(synthetic: np.ndarray, real: np.ndarray, result: Memorisation, space: str,
                            path: str | Path, n: int = 8, title: str = "") -> Path:
    """The ``n`` synthetic images closest to a real training image in ``space`` (flagged first,
    outlined red), each above its nearest real image, with the distance ratio."""
    s = result.spaces[space]
    order = np.argsort(s.ratio, kind="stable")[:n]
    fig = new_figure(1.6 * len(order) + 0.4, 3.9)
    for col, i in enumerate(order):
        pair = ((synthetic[i], f"ratio {s.ratio[i]:.2f}"), (real[s.nearest[i]], "nearest real"))
        for row, (img, label) in enumerate(pair):
            ax = fig.add_subplot(2, len(order), row * len(order) + col + 1)
            ax.imshow(img[..., 0] if img.shape[-1] == 1 else img, cmap="gray", vmin=0, vmax=255)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(label, fontsize=8, color="red" if s.flagged[i] and row == 0 else "black")
            if s.flagged[i]:
                for spine in ax.spines.values():
                    spine.set(color="red", linewidth=2)
    fig.suptitle(title or f"Closest synthetic (top) vs nearest real training image (bottom), {space} space; "
                          f"threshold {s.threshold:.2f}", fontsize=9)
    return save_figure(fig, path)
