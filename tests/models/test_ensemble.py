"""Weighted fusion: simplex weights that minimise validation log-loss."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.models.ensemble import (equal_weights, fit_fusion_weights, fuse, read_ensemble_file, write_ensemble_file,
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


def test_ensemble_file_has_relative_members_and_survives_a_move(tmp_path) -> None:
    folder = tmp_path / "arm"
    folder.mkdir()
    write_ensemble_file(folder / "ensemble.json", {"a": Path("a/best.pt"), "b": Path("b/best.pt")}, [0.25, 0.75],
                        "validation log-loss")
    text = (folder / "ensemble.json").read_text()
    assert str(tmp_path) not in text and '"a/best.pt"' in text
    moved = tmp_path / "moved"
    folder.rename(moved)
    members, weights, _ = read_ensemble_file(moved / "ensemble.json")
    assert members == {"a": moved / "a/best.pt", "b": moved / "b/best.pt"} and weights.tolist() == [0.25, 0.75]
    with pytest.raises(SonoganInputError, match="absolute path"):
        write_ensemble_file(folder / "x.json", {"a": tmp_path / "a.pt"}, [1.0], "equal weights")
    (moved / "bad.json").write_text('{"format": "sonogan-ensemble", "members": {"a": "a.pt"}, "weights": [0.5]}')
    with pytest.raises(SonoganInputError, match="simplex"):
        read_ensemble_file(moved / "bad.json")
    (moved / "empty.json").write_text("")
    with pytest.raises(SonoganInputError, match="cannot read"):
        read_ensemble_file(moved / "empty.json")
