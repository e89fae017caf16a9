"""Temperature scaling: one scalar ``T`` that makes a classifier's probabilities honest.

A network trained with cross-entropy is often over-confident. Temperature scaling (Guo et al.,
2017) divides its logits by ``T > 0`` before the softmax: ``T > 1`` softens, ``T < 1``
sharpens, and the arg-max (so accuracy, and ROC AUC per class for binary tasks) never changes.
:func:`fit_temperature` picks the ``T`` that minimises the negative log-likelihood of held-out
(validation) predictions; :func:`apply_temperature` applies it to probabilities, as
``softmax(log p / T)``, which for a single model equals ``softmax(logits / T)`` and for a
fused ensemble scales the fused distribution.

A validation set that lacks a class (a rare class of a handful of patients) still fits ``T`` on
the classes it has: :func:`calibration_scope` names them, and the fold's calibration record and
the report say so. With fewer than 2 classes present there is nothing to be calibrated against
(any ``T`` only stretches one class's confidence), so :func:`fit_temperature_present` raises
:class:`~sonogan.skipped.NotComputable` and the caller keeps ``T = 1`` with the reason
(:mod:`sonogan.skipped`).

The search runs over ``log T`` in ``[log 0.01, log 100]`` with bounded Brent (deterministic).
The NLL is convex in ``1 / T``, so it has one minimum along ``log T`` and the bounded search
finds it; as a safety net ``T = 1`` is kept when it scores at least as well, so fitting never
makes the fitting set's NLL worse.

Example:
    >>> import numpy as np
    >>> apply_temperature(np.array([[0.8, 0.2]]), 2.0).round(6).tolist()   # sqrt(.8) : sqrt(.2) = 2 : 1
    [[0.666667, 0.333333]]
    >>> from scipy.special import softmax
    >>> rng = np.random.default_rng(0)
    >>> logits = rng.normal(0, 2, (4000, 3))
    >>> y = (softmax(logits, axis=1).cumsum(axis=1) < rng.random((4000, 1))).sum(axis=1)  # y ~ softmax(logits)
    >>> bool(2.5 < fit_temperature(3 * logits, y) < 3.5)   # logits three times too confident -> T near 3
    True
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize_scalar
from scipy.special import log_softmax, logsumexp

from sonogan.errors import SonoganInputError
from sonogan.skipped import NotComputable

T_BOUNDS = (0.01, 100.0)
_EPS = 1e-12


def _check_scores(z: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row-shifted float64 scores (N, C) and int labels (N,), or a SonoganInputError."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y)
    if z.ndim != 2 or z.shape[0] == 0 or z.shape[1] < 2:
        raise SonoganInputError("temperature", f"scores have shape {z.shape}",
                                "pass validation logits or log-probabilities (N, C), N >= 1, C >= 2")
    if y.shape != (z.shape[0],) or not np.issubdtype(y.dtype, np.integer) or y.min() < 0 or y.max() >= z.shape[1]:
        raise SonoganInputError("temperature", "labels do not match the scores",
                                f"pass {z.shape[0]} integer labels in [0, {z.shape[1] - 1}]")
    if not np.all(np.isfinite(z)):
        raise SonoganInputError("temperature", "scores contain inf or NaN",
                                "clip probabilities before the log: np.log(np.clip(p, 1e-12, 1))")
    if np.all((z >= 0) & (z <= 1)) and np.allclose(z.sum(axis=1), 1.0):
        # probabilities passed where log-probabilities belong would fit a meaningless T
        raise SonoganInputError("temperature", "scores look like probabilities (rows in [0, 1] summing to 1)",
                                "pass np.log(probs) or the logits")
    return z - z.max(axis=1, keepdims=True), y.astype(np.int64)


def temperature_nll(z: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean NLL of ``softmax(z / T)`` at the true labels: what :func:`fit_temperature` minimises."""
    scaled = np.asarray(z, dtype=np.float64) / temperature
    return float(np.mean(logsumexp(scaled, axis=1) - scaled[np.arange(len(y)), y]))


def fit_temperature(logits_or_log_probs: np.ndarray, y: np.ndarray) -> float:
    """The ``T`` in :data:`T_BOUNDS` minimising validation NLL of ``softmax(z / T)``.

    ``logits_or_log_probs``: (N, C) logits, or ``np.log`` of probabilities (the same up to a
    per-row shift, which the softmax ignores). Deterministic for the same input.
    """
    z, y = _check_scores(logits_or_log_probs, y)
    result = minimize_scalar(lambda u: temperature_nll(z, y, float(np.exp(u))), method="bounded",
                             bounds=(np.log(T_BOUNDS[0]), np.log(T_BOUNDS[1])), options={"xatol": 1e-8})
    fitted = float(np.exp(result.x))
    # the safety net: never report a T that fits the fitting set worse than doing nothing
    return fitted if temperature_nll(z, y, fitted) <= temperature_nll(z, y, 1.0) else 1.0


def check_calibratable(y: np.ndarray) -> None:
    """:class:`NotComputable` when the validation labels ``y`` hold fewer than 2 classes (a single
    class gives no calibration target, only a stretched confidence)."""
    present = np.unique(np.asarray(y))
    if len(present) < 2:
        raise NotComputable(f"temperature scaling needs validation images of at least 2 classes, "
                            f"got {len(present)}")


def fit_temperature_present(logits_or_log_probs: np.ndarray, y: np.ndarray) -> float:
    """:func:`fit_temperature` on the classes present in ``y`` (see :func:`check_calibratable`)."""
    check_calibratable(y)
    return fit_temperature(logits_or_log_probs, y)


def calibration_scope(y: np.ndarray, class_names: list[str]) -> dict[str, list[str]]:
    """The classes a temperature was fitted on (present in the validation labels ``y``) and
    those absent, by name.

    Example:
        >>> calibration_scope(np.array([0, 2, 2]), ["benign", "borderline", "malignant"])
        {'fitted_on_classes': ['benign', 'malignant'], 'absent_from_validation': ['borderline']}
    """
    present = set(np.unique(np.asarray(y)).tolist())
    return {"fitted_on_classes": [c for k, c in enumerate(class_names) if k in present],
            "absent_from_validation": [c for k, c in enumerate(class_names) if k not in present]}


def apply_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """``softmax(log p / T)`` row-wise, float64 (N, C); probabilities are clipped at 1e-12 first."""
    if not (np.isfinite(temperature) and temperature > 0):
        raise SonoganInputError("temperature", f"T = {temperature}", "use a finite temperature > 0")
    p = np.asarray(probs, dtype=np.float64)
    if p.ndim != 2:
        raise SonoganInputError("temperature", f"probabilities have shape {p.shape}", "pass an (N, C) array")
    return np.exp(log_softmax(np.log(np.clip(p, _EPS, None)) / temperature, axis=1))
