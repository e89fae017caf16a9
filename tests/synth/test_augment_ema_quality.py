"""DiffAugment determinism/differentiability, EMA update, Fréchet distance."""

import numpy as np
import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.config import parse_config
from sonogan.synth.augment import diff_augment, translation
from sonogan.synth.config import GanConfig
from sonogan.synth.ema import ema_update, make_ema
from sonogan.synth.quality import FeatureExtractor, feature_stats, frechet_distance

POLICY = "color,translation,cutout"


def test_diffaugment_deterministic_per_generator():
    x = torch.rand(4, 1, 16, 16) * 2 - 1
    a = diff_augment(x, POLICY, torch.Generator().manual_seed(1))
    b = diff_augment(x, POLICY, torch.Generator().manual_seed(1))
    c = diff_augment(x, POLICY, torch.Generator().manual_seed(2))
    assert torch.equal(a, b) and not torch.equal(a, c) and not torch.equal(a, x)


def test_diffaugment_is_differentiable():
    x = (torch.rand(3, 3, 16, 16) * 2 - 1).requires_grad_(True)
    diff_augment(x, POLICY, torch.Generator().manual_seed(0)).square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_moves_pixels_by_whole_steps():
    x = torch.zeros(1, 1, 16, 16)
    x[0, 0, 8, 8] = 1.0
    y = translation(x, torch.Generator().manual_seed(3))
    assert y.sum() == 1.0 and set(y.unique().tolist()) == {0.0, 1.0}  # a shift, no blur


def test_empty_policy_is_identity_and_bad_policy_is_config_error():
    x = torch.rand(2, 1, 8, 8)
    assert diff_augment(x, "", torch.Generator()) is x
    with pytest.raises(SonoganInputError, match="diffaugment"):
        parse_config(GanConfig, {"diffaugment": "color,zoom"}, "x.yaml")


def test_ema_update_math():
    G = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.BatchNorm1d(2))
    G_ema = make_ema(G)
    with torch.no_grad():
        G[0].weight.fill_(1.0)
        G_ema[0].weight.fill_(3.0)
        G[1].running_mean.fill_(7.0)
    ema_update(G_ema, G, decay=0.75)
    assert torch.allclose(G_ema[0].weight, torch.full((2, 2), 2.5))  # 0.75*3 + 0.25*1
    assert torch.equal(G_ema[1].running_mean, G[1].running_mean)  # buffers copied
    assert not any(p.requires_grad for p in G_ema.parameters())
    ema_update(G_ema, G, decay=0.0)
    assert torch.equal(G_ema[0].weight, G[0].weight)


def test_frechet_distance_closed_form():
    # Diagonal covariances: FD = |mu1-mu2|^2 + sum (sqrt(a) - sqrt(b))^2
    mu1, mu2 = np.array([0.0, 1.0]), np.array([1.0, 1.0])
    s1, s2 = np.diag([1.0, 4.0]), np.diag([4.0, 1.0])
    assert frechet_distance(mu1, s1, mu2, s2, eps=0) == pytest.approx(1 + 1 + 1)


def test_feature_distance_ranks_closer_distribution_lower():
    g = torch.Generator().manual_seed(0)
    real = (torch.rand(64, 1, 64, 64, generator=g) * 0.5 - 0.5)
    near = (torch.rand(64, 1, 64, 64, generator=g) * 0.5 - 0.5)
    far = torch.rand(64, 1, 64, 64, generator=g) * 2 - 1
    fx = FeatureExtractor(1, seed=0)
    ref = feature_stats(fx(real))
    assert frechet_distance(*ref, *feature_stats(fx(near))) < frechet_distance(*ref, *feature_stats(fx(far)))
