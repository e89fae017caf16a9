"""Weighted fusion of classifier probabilities, as in the flagship (VGG16 + ResNet50 + InceptionV3).

The fused prediction is ``p(x) = sum_m w_m * p_m(x)`` with weights on the simplex
(``w_m >= 0``, ``sum w_m = 1``). :func:`fit_fusion_weights` picks the weights that minimise
the **mean validation log-loss** ``-1/N sum_i log p(x_i)[y_i]`` (or the multi-class Brier
score with ``objective="brier"``). Both objectives are convex in ``w``, so SLSQP from the
equal-weight start finds the global optimum deterministically.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 1, 1])
    >>> good = np.eye(2)[y] * 0.98 + 0.01
    >>> bad = np.full((3, 2), 0.5)
    >>> w = fit_fusion_weights([good, bad], y)
    >>> bool(w[0] > 0.99)
    True
    >>> fuse([good, bad], equal_weights(2)).shape
    (3, 2)
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
from scipy.optimize import minimize

from sonogan.errors import SonoganInputError
from sonogan.runs import read_format_json, write_json

_EPS = 1e-12


def _stack(probs: Sequence[np.ndarray]) -> np.ndarray:
    """(M, N, C) float64 array; checks every member has the same shape."""
    if len(probs) == 0:
        raise SonoganInputError("fusion", "no member probabilities", "pass at least one (N, C) array")
    arrs = [np.asarray(p, dtype=np.float64) for p in probs]
    if any(a.ndim != 2 or a.shape != arrs[0].shape for a in arrs):
        raise SonoganInputError("fusion", f"member shapes differ: {[a.shape for a in arrs]}",
                                "pass (N, C) probabilities for the same samples from every member")
    return np.stack(arrs)


def equal_weights(m: int) -> np.ndarray:
    """The reference fusion: every member weighs 1/M."""
    return np.full(m, 1.0 / m)


def fuse(probs: Sequence[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Weighted average of member probabilities: (N, C)."""
    stack = _stack(probs)
    w = np.asarray(weights, dtype=np.float64)
    if w.shape != (stack.shape[0],):
        raise SonoganInputError("fusion", f"{w.size} weights for {stack.shape[0]} members", "pass one weight per member")
    return np.tensordot(w, stack, axes=1)


def fusion_loss(probs: Sequence[np.ndarray], y: np.ndarray, weights: np.ndarray, objective: str = "log_loss") -> float:
    """The objective :func:`fit_fusion_weights` minimises, at ``weights``."""
    fused = fuse(probs, weights)
    y = np.asarray(y, dtype=int)
    if objective == "log_loss":
        return float(-np.mean(np.log(np.clip(fused[np.arange(len(y)), y], _EPS, None))))
    onehot = np.eye(fused.shape[1])[y]
    return float(np.mean(np.sum((fused - onehot) ** 2, axis=1)))


def fit_fusion_weights(probs: Sequence[np.ndarray], y: np.ndarray, objective: str = "log_loss") -> np.ndarray:
    """Simplex weights (M,) minimising the validation ``objective`` ("log_loss" or "brier").

    Deterministic: SLSQP with analytic gradients, started from equal weights. As a safety net
    the result is compared with every single member (the simplex corners) and the best is
    kept, so the fused loss is never worse than the best member on the fitting set.
    """
    if objective not in ("log_loss", "brier"):
        raise SonoganInputError("fusion", f"unknown objective '{objective}'", "use 'log_loss' or 'brier'")
    stack = _stack(probs)
    y = np.asarray(y, dtype=int)
    m, n, c = stack.shape
    if y.shape != (n,) or (n and (y.min() < 0 or y.max() >= c)):
        raise SonoganInputError("fusion", "labels do not match the probabilities",
                                f"pass {n} integer labels in [0, {c - 1}]")
    if m == 1:
        return np.ones(1)
    p_true = stack[:, np.arange(n), y]  # (M, N): each member's probability of the true class
    onehot = np.eye(c)[y]

    def loss_and_grad(w: np.ndarray) -> tuple[float, np.ndarray]:
        if objective == "log_loss":
            q = np.clip(w @ p_true, _EPS, None)
            return float(-np.mean(np.log(q))), -(p_true / q).mean(axis=1)
        resid = np.tensordot(w, stack, axes=1) - onehot  # (N, C)
        return float(np.mean(np.sum(resid ** 2, axis=1))), 2.0 * np.einsum("mnc,nc->m", stack, resid) / n

    res = minimize(loss_and_grad, equal_weights(m), jac=True, method="SLSQP", bounds=[(0.0, 1.0)] * m,
                   constraints=[{"type": "eq", "fun": lambda w: np.sum(w) - 1.0, "jac": lambda w: np.ones(m)}],
                   options={"ftol": 1e-12, "maxiter": 500})
    w = np.clip(res.x, 0.0, None)
    w = w / w.sum() if w.sum() > 0 else equal_weights(m)
    candidates = [w, equal_weights(m)] + [np.eye(m)[k] for k in range(m)]
    return min(candidates, key=lambda cand: loss_and_grad(cand)[0])


ENSEMBLE_FORMAT = "sonogan-ensemble"


def write_ensemble_file(path: Path, members: dict[str, Path], weights: Sequence[float], objective: str,
                        temperature: float = 1.0) -> Path:
    """``ensemble.json``: member checkpoints by path RELATIVE to the file's folder (the folder
    can be moved or shared) and their simplex weights."""
    rel = {}
    for name, member in members.items():
        if Path(member).is_absolute():
            raise SonoganInputError(path, f"member '{name}' has an absolute path", "give paths relative to the file")
        rel[name] = Path(member).as_posix()
    write_json(path, {"format": ENSEMBLE_FORMAT, "version": 1, "members": rel,
                      "weights": [float(w) for w in weights], "objective": objective,
                      "temperature": float(temperature)})
    return path


def simplex_weights(values: Sequence[float], n: int, where: str | Path) -> np.ndarray:
    """``values`` as float64 fusion weights, refused unless one per member, >= 0, summing to 1."""
    weights = np.asarray(values, dtype=np.float64)
    if weights.shape != (n,) or np.any(weights < 0) or not np.isclose(weights.sum(), 1.0):
        raise SonoganInputError(where, f"weights {weights.tolist()} are not on the simplex",
                                "give one non-negative weight per member, summing to 1")
    return weights


def read_ensemble_file(path: Path) -> tuple[dict[str, Path], np.ndarray, float]:
    """(member name -> absolute checkpoint path, weights, temperature) of an ``ensemble.json``."""
    path = Path(path)
    blob = read_format_json(path, ENSEMBLE_FORMAT, "ensemble file", "pass an ensemble.json written by sonogan")
    members = {name: path.parent / rel for name, rel in blob["members"].items()}
    return members, simplex_weights(blob["weights"], len(members), path), float(blob.get("temperature", 1.0))
