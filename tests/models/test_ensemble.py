"""Weighted fusion: simplex weights that minimise validation log-loss."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.models.ensemble import (WeightedFusionEnsemble, equal_weights, fit_fusion_weights, fuse,
                                     fusion_loss)


def _random_probs(rng: np.random.Generator, n: int, c: int) -> np.ndarray:
    return rng.dirichlet(np.ones(c), size=n)


def test_perfect_member_gets_almost_all_weight() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 3, size=200)
    perfect = np.eye(3)[y] * 0.999 + 0.001 / 3
    probs = [_random_probs(rng, 200, 3), perfect, _random_probs(rng, 200, 3)]
    w = fit_fusion_weights(probs, y)
    assert w[1] > 0.97
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0)


@pytest.mark.parametrize("objective", ["log_loss", "brier"])
def test_fused_loss_not_worse_than_best_member(objective: str) -> None:
    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, size=300)
    # members of varying quality: a noisy mix of the truth and random probabilities
    probs = [0.5 * (a * np.eye(3)[y] + (1 - a) * _random_probs(rng, 300, 3)) + 0.5 / 3 for a in (0.2, 0.5, 0.4)]
    w = fit_fusion_weights(probs, y, objective=objective)
    assert np.all(w >= 0) and w.sum() == pytest.approx(1.0)
    fused = fusion_loss(probs, y, w, objective)
    best_member = min(fusion_loss(probs, y, np.eye(3)[k], objective) for k in range(3))
    assert fused <= best_member + 1e-12
    assert fused <= fusion_loss(probs, y, equal_weights(3), objective) + 1e-12
    assert np.array_equal(w, fit_fusion_weights(probs, y, objective=objective))  # deterministic


def test_equal_weights_and_fuse_by_hand() -> None:
    assert np.allclose(equal_weights(4), 0.25)
    a = np.array([[1.0, 0.0], [0.5, 0.5]])
    b = np.array([[0.0, 1.0], [0.1, 0.9]])
    assert np.allclose(fuse([a, b], equal_weights(2)), [[0.5, 0.5], [0.3, 0.7]])
    assert np.allclose(fuse([a, b], np.array([0.25, 0.75])), [[0.25, 0.75], [0.2, 0.8]])
    # log-loss by hand: -(log 0.5 + log 0.7) / 2
    assert fusion_loss([a, b], np.array([0, 1]), equal_weights(2)) == pytest.approx(-(np.log(0.5) + np.log(0.7)) / 2)


def test_bad_inputs_raise() -> None:
    with pytest.raises(SonoganInputError):
        fit_fusion_weights([np.ones((3, 2)) / 2, np.ones((4, 2)) / 2], np.zeros(3, dtype=int))
    with pytest.raises(SonoganInputError):
        fit_fusion_weights([np.ones((3, 2)) / 2], np.array([0, 1, 2]))
    with pytest.raises(SonoganInputError):
        WeightedFusionEnsemble([torch.nn.Linear(2, 2)], weights=[0.5])


def test_ensemble_module_matches_numpy_fuse_and_saves_weights() -> None:
    torch.manual_seed(0)
    members = [torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)]
    ens = WeightedFusionEnsemble(members, weights=[0.3, 0.7])
    x = torch.randn(5, 4)
    with torch.no_grad():
        got = ens(x).numpy()
        member = [torch.softmax(m(x), 1).numpy() for m in members]
    assert np.allclose(got, fuse(member, np.array([0.3, 0.7])), atol=1e-6)
    assert np.allclose(got.sum(1), 1.0, atol=1e-6)
    state = ens.state_dict()
    assert torch.allclose(state["weights"], torch.tensor([0.3, 0.7]))
    other = WeightedFusionEnsemble([torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)])
    other.load_state_dict(state)
    assert torch.allclose(other(x), ens(x))
