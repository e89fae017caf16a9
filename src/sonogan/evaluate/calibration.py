"""Pure calibration metrics: does a predicted probability of 0.8 come true 80 % of the time?

Conventions as in :mod:`sonogan.evaluate.metrics`: ``y_true`` int (N,), ``y_prob`` float
(N, C). Calibration here is **top-label**: each prediction's confidence is its largest
probability and it is correct when that class is the true one (Guo et al., 2017).

Bins are ``n_bins`` equal-width intervals of [0, 1], closed on the right: ``(lo, hi]``, the
first one ``[0, hi]``, so a confidence of exactly 0.5 with 4 bins falls in ``(0.25, 0.5]``.

* :func:`reliability_curve` -> per bin: mean confidence, accuracy, count (NaN, NaN, 0 for an
  empty bin, so every bin keeps its place on a plot);
* :func:`expected_calibration_error` = ``sum_b n_b / N * |accuracy_b - confidence_b|``
  (NaN for no samples);
* :func:`negative_log_likelihood` = ``-mean log p[y]``, what temperature scaling minimises.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 1, 1, 0])
    >>> p = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6]])
    >>> round(expected_calibration_error(y, p, n_bins=4), 6)
    0.25
    >>> conf, acc, counts = reliability_curve(y, p, n_bins=4)
    >>> conf.round(2).tolist(), acc.tolist(), counts.tolist()
    ([nan, nan, 0.65, 0.85], [nan, nan, 0.5, 0.5], [0, 0, 2, 2])
"""

from __future__ import annotations

import numpy as np

from sonogan.evaluate.metrics import _check

_EPS = 1e-12


def _top_label(y_true: np.ndarray, y_prob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(confidence, correct as 0/1) of each row, after the shape checks."""
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_prob.ndim != 2:
        raise ValueError(f"y_prob must be (N, C), got shape {y_prob.shape}")
    y_true = _check(y_true, y_prob.shape[1], y_prob)
    return y_prob.max(axis=1), (y_prob.argmax(axis=1) == y_true).astype(np.float64)


def bin_index(confidence: np.ndarray, n_bins: int) -> np.ndarray:
    """Bin of each confidence among ``n_bins`` equal-width ``(lo, hi]`` bins of [0, 1].

    >>> bin_index(np.array([0.0, 0.25, 0.26, 1.0]), 4).tolist()
    [0, 0, 1, 3]
    """
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    inner = np.linspace(0.0, 1.0, n_bins + 1)[1:-1]
    # side="left": a value equal to an edge belongs to the bin the edge closes
    return np.searchsorted(inner, np.asarray(confidence, dtype=np.float64), side="left")


def reliability_curve(y_true: np.ndarray, y_prob: np.ndarray,
                      n_bins: int = 15) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per bin (n_bins,): mean top-label confidence, accuracy (both NaN when empty), count."""
    conf, correct = _top_label(y_true, y_prob)
    idx = bin_index(conf, n_bins)
    counts = np.bincount(idx, minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):  # empty bins are NaN on purpose
        mean_conf = np.bincount(idx, weights=conf, minlength=n_bins) / counts
        accuracy = np.bincount(idx, weights=correct, minlength=n_bins) / counts
    return mean_conf, accuracy, counts


def expected_calibration_error(y_true: np.ndarray, y_prob: np.ndarray, n_bins: int = 15) -> float:
    """Top-label ECE with equal-width bins: ``sum_b n_b / N |acc_b - conf_b|`` (NaN for N = 0)."""
    conf, acc, counts = reliability_curve(y_true, y_prob, n_bins)
    n = counts.sum()
    if n == 0:
        return float("nan")
    filled = counts > 0
    return float(np.sum(counts[filled] / n * np.abs(acc[filled] - conf[filled])))


def negative_log_likelihood(y_true: np.ndarray, y_prob: np.ndarray) -> float:
    """Mean ``-log p[y]`` (probabilities clipped at 1e-12, so a confident miss costs ~27.6).

    >>> round(negative_log_likelihood(np.array([0, 1]), np.array([[0.5, 0.5], [0.75, 0.25]])), 6)
    1.039721
    """
    y_prob = np.asarray(y_prob, dtype=np.float64)
    if y_prob.ndim != 2:
        raise ValueError(f"y_prob must be (N, C), got shape {y_prob.shape}")
    y_true = _check(y_true, y_prob.shape[1], y_prob)
    if y_true.size == 0:
        return float("nan")
    return float(-np.mean(np.log(np.clip(y_prob[np.arange(len(y_true)), y_true], _EPS, None))))
