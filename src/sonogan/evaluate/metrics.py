"""Pure classification metrics: arrays in, numbers out (MONAI ``compute_*`` style).

Every function takes ``y_true`` (int array, shape (N,), values 0..C-1) and either
``y_pred`` (int array (N,)) or ``y_prob`` (float array (N, C), one score column per
class). Per-class metrics are one-vs-rest and return an array of shape (C,).

Undefined values (documented convention, used everywhere in sonogan):

* metrics whose denominator counts *predictions* -- precision (PPV) and NPV -- are 0
  when the model made no such prediction (as sklearn ``zero_division=0``): no calls,
  no credit;
* metrics whose denominator counts the *truth* -- sensitivity, F1 and ROC AUC need the
  class present, specificity needs at least one case of another class -- are NaN when
  the test set cannot measure them. The bootstrap counts such resamples instead of
  silently scoring them as 0; macro averages are NaN-ignoring means.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 0, 1, 2]); p = np.eye(3)[[0, 1, 1, 2]]
    >>> m = classification_metrics(y, p, ["benign", "malignant", "bot"])
    >>> m["accuracy"], m["sensitivity/benign"], m["precision/malignant"]
    (0.75, 0.5, 0.5)
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from scipy.stats import rankdata
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix as sk_confusion_matrix,
    f1_score,
    precision_score,
    recall_score,
    roc_auc_score,
)

PER_CLASS_METRICS = ("sensitivity", "specificity", "precision", "npv", "f1", "auc")


def _check(y_true: np.ndarray, n_classes: int, other: np.ndarray | None = None) -> np.ndarray:
    y_true = np.asarray(y_true).astype(np.int64, copy=False)
    if y_true.ndim != 1:
        raise ValueError(f"y_true must be 1-D, got shape {y_true.shape}")
    if y_true.size and (y_true.min() < 0 or y_true.max() >= n_classes):
        raise ValueError(f"y_true values must lie in 0..{n_classes - 1}")
    if other is not None and len(other) != len(y_true):
        raise ValueError(f"length mismatch: y_true has {len(y_true)} rows, the other array {len(other)}")
    return y_true


def predictions(y_prob: np.ndarray) -> np.ndarray:
    """Arg-max class per row of an (N, C) score array."""
    y_prob = np.asarray(y_prob, dtype=float)
    if y_prob.ndim != 2:
        raise ValueError(f"y_prob must be (N, C), got shape {y_prob.shape}")
    return y_prob.argmax(axis=1)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts, rows = true class, columns = predicted class (sklearn)."""
    y_true = _check(y_true, n_classes, y_pred)
    return sk_confusion_matrix(y_true, np.asarray(y_pred), labels=np.arange(n_classes))


def one_vs_rest_counts(cm: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Per-class (tp, fp, fn, tn) arrays from a confusion matrix."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm)
    fp = cm.sum(axis=0) - tp
    fn = cm.sum(axis=1) - tp
    tn = cm.sum() - tp - fp - fn
    return tp, fp, fn, tn


def _ratio(num: np.ndarray, den: np.ndarray, empty: float) -> np.ndarray:
    num = np.asarray(num, dtype=float)
    den = np.asarray(den, dtype=float)
    out = np.full(num.shape, empty, dtype=float)
    np.divide(num, den, out=out, where=den > 0)
    return out


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Share of correct predictions (sklearn ``accuracy_score``); NaN for an empty set."""
    if len(y_true) == 0:
        return float("nan")
    return float(accuracy_score(y_true, y_pred))


def sensitivity(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class recall TP/(TP+FN) (sklearn ``recall_score``); NaN for a class absent from y_true."""
    y_true = _check(y_true, n_classes, y_pred)
    return recall_score(y_true, y_pred, labels=np.arange(n_classes), average=None, zero_division=np.nan)


def precision(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class PPV TP/(TP+FP) (sklearn ``precision_score``); 0 when a class is never predicted."""
    y_true = _check(y_true, n_classes, y_pred)
    return precision_score(y_true, y_pred, labels=np.arange(n_classes), average=None, zero_division=0)


def f1(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class F1 = 2TP/(2TP+FP+FN) (sklearn ``f1_score``); NaN for a class absent from y_true."""
    y_true = _check(y_true, n_classes, y_pred)
    out = f1_score(y_true, y_pred, labels=np.arange(n_classes), average=None, zero_division=0).astype(float)
    out[np.bincount(y_true, minlength=n_classes) == 0] = np.nan
    return out


def specificity(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class TN/(TN+FP); NaN when every case belongs to the class.

    Hand-written from the confusion matrix: sklearn has no specificity function.
    """
    _, fp, _, tn = one_vs_rest_counts(confusion_matrix(y_true, y_pred, n_classes))
    return _ratio(tn, tn + fp, np.nan)


def npv(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """Per-class negative predictive value TN/(TN+FN); 0 when nothing is predicted negative.

    Hand-written from the confusion matrix: sklearn has no NPV function.
    """
    _, _, fn, tn = one_vs_rest_counts(confusion_matrix(y_true, y_pred, n_classes))
    return _ratio(tn, tn + fn, 0.0)


def roc_auc(y_true: np.ndarray, y_prob: np.ndarray) -> np.ndarray:
    """Per-class one-vs-rest ROC AUC (sklearn ``roc_auc_score``); NaN when a class is absent or universal."""
    y_prob = np.asarray(y_prob, dtype=float)
    y_true = _check(y_true, y_prob.shape[1], y_prob)
    out = np.full(y_prob.shape[1], np.nan)
    for c in range(y_prob.shape[1]):
        pos = y_true == c
        if 0 < pos.sum() < len(pos):
            out[c] = roc_auc_score(pos, y_prob[:, c])
    return out


def _fast_confusion(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    # np.bincount instead of sklearn.confusion_matrix: identical counts, but sklearn's
    # input validation costs ~0.5 ms per call, which dominates 1000 bootstrap resamples.
    return np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _fast_auc(y_true: np.ndarray, y_prob: np.ndarray) -> np.ndarray:
    # Mann-Whitney rank formula, mathematically identical to sklearn's trapezoidal
    # roc_auc_score (ties get average ranks = half credit); ~30x faster per call,
    # which keeps the bootstrap under a second. Tests check equality with sklearn.
    n, n_classes = y_prob.shape
    out = np.full(n_classes, np.nan)
    for c in range(n_classes):
        pos = y_true == c
        n_pos = int(pos.sum())
        n_neg = n - n_pos
        if n_pos == 0 or n_neg == 0:
            continue
        ranks = rankdata(y_prob[:, c])
        out[c] = (ranks[pos].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)
    return out


def _nanmean(values: np.ndarray) -> float:
    values = np.asarray(values, dtype=float)
    finite = values[~np.isnan(values)]
    return float(finite.mean()) if finite.size else float("nan")


def classification_metrics(
    y_true: np.ndarray,
    y_prob: np.ndarray,
    class_names: Sequence[str],
    y_pred: np.ndarray | None = None,
    fast: bool = True,
) -> dict[str, float]:
    """Every metric as one flat dict of floats (the shape the bootstrap wants).

    Keys: ``accuracy``, ``balanced_accuracy`` (= macro sensitivity), ``macro_<m>`` and
    ``<m>/<class>`` for m in sensitivity, specificity, precision, npv, f1, auc.
    ``y_pred`` defaults to the arg-max of ``y_prob``. ``fast=False`` computes the same
    numbers through the sklearn-backed functions above (slower; used as a reference).
    """
    y_prob = np.asarray(y_prob, dtype=float)
    n_classes = len(class_names)
    if y_prob.ndim != 2 or y_prob.shape[1] != n_classes:
        raise ValueError(f"y_prob must be (N, {n_classes}) for classes {list(class_names)}, got {y_prob.shape}")
    y_true = _check(y_true, n_classes, y_prob)
    y_pred = predictions(y_prob) if y_pred is None else np.asarray(y_pred).astype(np.int64)

    if fast:
        tp, fp, fn, tn = one_vs_rest_counts(_fast_confusion(y_true, y_pred, n_classes))
        present = (tp + fn) > 0
        per_class = {
            "sensitivity": _ratio(tp, tp + fn, np.nan),
            "specificity": _ratio(tn, tn + fp, np.nan),
            "precision": _ratio(tp, tp + fp, 0.0),
            "npv": _ratio(tn, tn + fn, 0.0),
            "f1": np.where(present, _ratio(2 * tp, 2 * tp + fp + fn, 0.0), np.nan),
            "auc": _fast_auc(y_true, y_prob),
        }
        acc = float(tp.sum() / len(y_true)) if len(y_true) else float("nan")
    else:
        per_class = {
            "sensitivity": sensitivity(y_true, y_pred, n_classes),
            "specificity": specificity(y_true, y_pred, n_classes),
            "precision": precision(y_true, y_pred, n_classes),
            "npv": npv(y_true, y_pred, n_classes),
            "f1": f1(y_true, y_pred, n_classes),
            "auc": roc_auc(y_true, y_prob),
        }
        acc = accuracy(y_true, y_pred)

    out: dict[str, float] = {"accuracy": acc,
                             "balanced_accuracy": _nanmean(per_class["sensitivity"])}
    for name in PER_CLASS_METRICS:
        out[f"macro_{name}"] = _nanmean(per_class[name])
    for name in PER_CLASS_METRICS:
        for c, cls in enumerate(class_names):
            out[f"{name}/{cls}"] = float(per_class[name][c])
    return out
