"""Diversity: mean pairwise MS-SSIM and SSIM within one image set (torchmetrics).

A generator that collapses onto a few modes makes images that resemble each other, so their
mean pairwise (MS-)SSIM rises above that of the real images. Pairs are drawn at random
(seeded); images are compared in grey, in [0, 1].

MS-SSIM's five standard scales need images of 112 px or more (7-px window): for smaller images the
first scales that fit are used with their standard weights renormalised to sum to 1
(:func:`ms_ssim_betas`), and the scale count is reported.

Example:
    >>> ms_ssim_betas(64, kernel_size=7)
    (0.0517, 0.3295, 0.3462, 0.2726)
    >>> import numpy as np
    >>> same = np.full((4, 32, 32, 1), 128, np.uint8)
    >>> pairwise_similarity(same, n_pairs=3)["ssim"]
    1.0
"""

from __future__ import annotations

import numpy as np
import torch
from torchmetrics.functional.image import (multiscale_structural_similarity_index_measure,
                                           structural_similarity_index_measure)

from sonogan.skipped import NotComputable, attempt, value_or_none

# Wang, Simoncelli & Bovik 2003, Table 1 (torchmetrics' default betas)
MS_SSIM_BETAS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ms_ssim_betas(size: int, kernel_size: int = 7) -> tuple[float, ...]:
    """The most standard MS-SSIM scales an image of ``size`` px allows, weights renormalised
    (torchmetrics' own check: size // (scales - 1) ** 2 > kernel_size - 1)."""
    n = len(MS_SSIM_BETAS)
    while n > 1 and size // max(1, n - 1) ** 2 <= kernel_size - 1:
        n -= 1
    betas = np.array(MS_SSIM_BETAS[:n])
    return tuple(float(round(b, 4)) for b in betas / betas.sum())


def random_pairs(n: int, n_pairs: int, seed: int = 0) -> np.ndarray:
    """Up to ``n_pairs`` distinct unordered pairs (i < j) of ``n`` items, seeded."""
    i, j = np.triu_indices(n, k=1)
    pick = np.random.default_rng(seed).permutation(len(i))[:n_pairs]
    return np.stack([i[pick], j[pick]], axis=1)


def _grey(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.astype(np.float32).mean(axis=-1, keepdims=True) / 255.0).permute(0, 3, 1, 2)


def pairwise_similarity(images: np.ndarray, n_pairs: int = 200, seed: int = 0, kernel_size: int = 7) -> dict:
    """Mean SSIM and MS-SSIM over random pairs of uint8 (N, S, S, C) images."""
    if len(images) < 2:
        raise NotComputable(f"diversity (pairwise SSIM) needs at least 2 images, got {len(images)}")
    pairs = random_pairs(len(images), n_pairs, seed)
    x = _grey(images)
    a, b = x[pairs[:, 0]], x[pairs[:, 1]]
    betas = ms_ssim_betas(min(images.shape[1:3]), kernel_size)
    ssim = structural_similarity_index_measure(a, b, data_range=1.0, kernel_size=kernel_size, reduction="none")
    ms = multiscale_structural_similarity_index_measure(a, b, data_range=1.0, kernel_size=kernel_size,
                                                        betas=betas, reduction="none")
    return {"ssim": round(float(ssim.mean()), 6), "ms_ssim": round(float(ms.mean()), 6),
            "n_pairs": int(len(pairs)), "ms_ssim_scales": len(betas)}


def diversity(real: np.ndarray, synthetic: np.ndarray, n_pairs: int = 200, seed: int = 0) -> dict:
    """Within-set similarity of the real and of the synthetic images (lower = more diverse); a set
    of fewer than 2 images gets None (nothing to pair)."""
    return {part: value_or_none(attempt(pairwise_similarity, images, n_pairs, seed))
            for part, images in (("real", real), ("synthetic", synthetic))}
