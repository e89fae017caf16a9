"""Fidelity of synthetic images in a feature space: FID, KID and precision / recall / density /
coverage.

FID and KID are torchmetrics' (``FrechetInceptionDistance`` / ``KernelInceptionDistance``)
given a custom ``feature=`` module. The audit computes features once per image set (real
ones cached under a hash, see :mod:`sonogan.audit.features`), so the module handed to
torchmetrics is :class:`PrecomputedFeatures`, an identity over those features. KID is
reported beside FID because FID is strongly biased at the few hundred images a rare class has.

Precision / recall (Kynkäänniemi et al. 2019) and density / coverage (Naeem et al. 2020) are
pure functions of two feature matrices: k-NN balls around each real (and each synthetic)
sample, strict ``<`` as in the authors' reference code.

Example:
    >>> import numpy as np
    >>> real = np.array([[0.0], [1.0], [2.0], [10.0]])
    >>> fake = np.array([[0.5], [20.0]])   # one good sample, one outlier with a huge k-NN ball
    >>> {k: round(v, 3) for k, v in prdc(real, fake, k=1).items()}   # recall is fooled, coverage is not
    {'precision': 0.5, 'recall': 1.0, 'density': 1.0, 'coverage': 0.5}
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from scipy.spatial.distance import cdist
from torch import nn
from torchmetrics.image.fid import FrechetInceptionDistance
from torchmetrics.image.kid import KernelInceptionDistance

from sonogan.skipped import NotComputable


class PrecomputedFeatures(nn.Module):
    """torchmetrics' ``feature=`` module for features computed beforehand: the identity."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = int(num_features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def fid_kid(real: np.ndarray, fake: np.ndarray, kid_subsets: int = 50, seed: int = 0) -> dict[str, float]:
    """FID and KID (mean, SD over subsets) of (N, D) real and (M, D) synthetic features.

    KID's subset size is min(1000, N, M) (torchmetrics draws subsets with torch's global RNG,
    so it runs under a forked, seeded RNG: same features, same KID).
    """
    if len(real) < 2 or len(fake) < 2:
        raise NotComputable(f"FID/KID need at least 2 real and 2 synthetic images, got {len(real)} and {len(fake)}")
    dim = real.shape[1]
    r, f = torch.from_numpy(np.asarray(real, np.float64)), torch.from_numpy(np.asarray(fake, np.float64))
    fid = FrechetInceptionDistance(feature=PrecomputedFeatures(dim)).set_dtype(torch.float64)
    fid.update(r, real=True)
    fid.update(f, real=False)
    size = min(1000, len(real), len(fake))
    with warnings.catch_warnings():  # "will save all extracted features": that is what we give it
        warnings.filterwarnings("ignore", message=".*save all extracted features.*")
        kid = KernelInceptionDistance(feature=PrecomputedFeatures(dim), subsets=kid_subsets, subset_size=size)
    kid.update(r, real=True)
    kid.update(f, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid_mean": float(kid_mean), "kid_std": float(kid_std),
            "kid_subset_size": size}


def knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance of each row of ``x`` to its k-th nearest other row."""
    if len(x) <= k:
        raise NotComputable(f"PRDC's k-NN balls need more than k={k} images per set, got {len(x)}")
    d = cdist(x, x)
    return np.partition(d, k, axis=1)[:, k]  # column 0 is the point itself (distance 0)


def prdc(real: np.ndarray, fake: np.ndarray, k: int = 5) -> dict[str, float]:
    """Precision, recall (Kynkäänniemi 2019), density and coverage (Naeem 2020) with k-NN balls.

    precision: share of synthetic samples inside some real sample's k-NN ball;
    recall: share of real samples inside some synthetic sample's ball;
    density: mean number of real balls holding a synthetic sample, divided by k;
    coverage: share of real balls holding at least one synthetic sample.
    """
    real_r, fake_r = knn_radii(real, k), knn_radii(fake, k)
    d = cdist(real, fake)  # (N real, M synthetic)
    inside_real = d < real_r[:, None]
    return {"precision": float(inside_real.any(axis=0).mean()),
            "recall": float((d < fake_r[None, :]).any(axis=1).mean()),
            "density": float(inside_real.sum(axis=0).mean() / k),
            "coverage": float((d.min(axis=1) < real_r).mean())}
