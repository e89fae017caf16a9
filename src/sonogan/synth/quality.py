"""Feature distance for the stopping rule: Fréchet distance between real and generated images
on domain features that need no download.

Features = global-average-pooled activations of a small *fixed random-init* conv net (seeded,
never trained) + a 16-bin intensity histogram + gradient-magnitude statistics. We cannot use
FID's pretrained Inception offline, and random conv features are known to track FID's ranking
reasonably for texture-like images. The Fréchet distance is hand-written with
``scipy.linalg.sqrtm`` because no pinned library ships it without Inception weights.

Example:
    >>> import torch
    >>> fx = FeatureExtractor(channels=1, seed=0)
    >>> a = torch.rand(32, 1, 64, 64) * 2 - 1
    >>> round(frechet_distance(*feature_stats(fx(a)), *feature_stats(fx(a))), 6)
    0.0
"""

from __future__ import annotations

import numpy as np
import scipy.linalg
import torch
import torch.nn.functional as F
from torch import nn


class FeatureExtractor(nn.Module):
    """Fixed random conv features + intensity histogram + gradient stats; input in [-1, 1]."""

    def __init__(self, channels: int = 1, seed: int = 0, width: int = 16) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            layers: list[nn.Module] = []
            cin = channels
            for cout in (width, width * 2, width * 3):
                layers += [nn.Conv2d(cin, cout, 3, 2, 1), nn.ReLU()]
                cin = cout
            self.net = nn.Sequential(*layers).eval()
        self.requires_grad_(False)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> np.ndarray:
        x = x.float()
        if x.shape[-1] != 64:  # one scale for every resolution keeps the distance comparable
            x = F.interpolate(x, size=(64, 64), mode="area")
        deep = self.net(x).mean(dim=(2, 3))
        gray = x.mean(1)
        hist = torch.stack([torch.histc(g, bins=16, min=-1, max=1) for g in gray]) / gray[0].numel()
        gy, gx = gray[:, 1:, :-1] - gray[:, :-1, :-1], gray[:, :-1, 1:] - gray[:, :-1, :-1]
        mag = (gx ** 2 + gy ** 2).sqrt().flatten(1)
        grad = torch.stack([mag.mean(1), mag.std(1), (mag > 0.1).float().mean(1)], dim=1)
        return torch.cat([deep, hist * 4, grad * 4], dim=1).cpu().double().numpy()


def feature_stats(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance of (N, D) features."""
    return feats.mean(0), np.cov(feats, rowvar=False)


def frechet_distance(mu1: np.ndarray, s1: np.ndarray, mu2: np.ndarray, s2: np.ndarray,
                     eps: float = 1e-6) -> float:
    """||mu1 - mu2||^2 + Tr(S1 + S2 - 2 sqrt(S1 S2)); eps*I keeps small-sample covariances invertible."""
    off = np.eye(len(mu1)) * eps
    covmean = scipy.linalg.sqrtm((s1 + off) @ (s2 + off))
    covmean = np.real(covmean)  # tiny imaginary parts come from numerical error
    fd = float(((mu1 - mu2) ** 2).sum() + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))
    return max(fd, 0.0)  # rank-deficient covariances can give a tiny negative value
