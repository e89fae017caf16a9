"""Real + synthetic mixing: exact counts per mode, deterministic with a seed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from sonogan.errors import SonoganInputError
from sonogan.train.mixing import mix_real_synthetic


def _data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    real_y = np.array([0] * 10 + [1] * 6 + [2] * 2)
    real_x = np.arange(len(real_y), dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 4, 4), np.float32)
    syn_y = np.array([2] * 20 + [1] * 5)
    syn_x = -1 - np.arange(len(syn_y), dtype=np.float32)[:, None, None, None] * np.ones((1, 1, 4, 4), np.float32)
    return real_x, real_y, syn_x, syn_y


@pytest.mark.parametrize("mode,kw,expected", [
    ("count", {"n": 3}, {1: 3, 2: 3}),
    ("count", {"n": {2: 7}}, {1: 0, 2: 7}),
    ("ratio", {"ratio": 0.5}, {1: 3, 2: 1}),
    ("balance", {}, {1: 4, 2: 8}),
])
def test_counts_exact(mode: str, kw: dict, expected: dict) -> None:
    rx, ry, sx, sy = _data()
    x, y, syn = mix_real_synthetic(rx, ry, sx, sy, mode=mode, seed=0, **kw)
    assert len(x) == len(y) == len(syn) == len(ry) + sum(expected.values())
    assert np.array_equal(x[:len(ry)], rx) and not syn[:len(ry)].any() and syn[len(ry):].all()
    for c, k in expected.items():
        assert int(((y == c) & syn).sum()) == k
    # synthetic rows carry their own images and labels (images are all negative here)
    assert (x[syn] < 0).all()
    assert np.array_equal(y[syn], [int(-v - 1 >= 20) + 2 * int(-v - 1 < 20) for v in x[syn][:, 0, 0, 0]])


def test_balance_reaches_majority_count() -> None:
    rx, ry, sx, sy = _data()
    _, y, _ = mix_real_synthetic(rx, ry, sx, sy, mode="balance", seed=0, classes=[2])
    assert np.bincount(y).tolist() == [10, 6, 10]


def test_deterministic_and_seed_dependent() -> None:
    rx, ry, sx, sy = _data()
    a = mix_real_synthetic(rx, ry, sx, sy, mode="count", n=5, seed=1)
    b = mix_real_synthetic(rx, ry, sx, sy, mode="count", n=5, seed=1)
    c = mix_real_synthetic(rx, ry, sx, sy, mode="count", n=5, seed=2)
    assert all(np.array_equal(u, v) for u, v in zip(a, b))
    assert not np.array_equal(a[0], c[0])


def test_torch_in_torch_out_and_errors() -> None:
    rx, ry, sx, sy = _data()
    x, y, syn = mix_real_synthetic(torch.from_numpy(rx), torch.from_numpy(ry), torch.from_numpy(sx),
                                   torch.from_numpy(sy), mode="count", n=2, seed=0)
    assert isinstance(x, torch.Tensor) and x.shape[0] == 22 and syn.dtype == torch.bool and int(syn.sum()) == 4
    with pytest.raises(SonoganInputError, match="only 5 exist"):
        mix_real_synthetic(rx, ry, sx, sy, mode="count", n=6, seed=0)
    with pytest.raises(SonoganInputError, match="unknown mode"):
        mix_real_synthetic(rx, ry, sx, sy, mode="many", seed=0)
    with pytest.raises(SonoganInputError, match="needs n"):
        mix_real_synthetic(rx, ry, sx, sy, mode="count", seed=0)
