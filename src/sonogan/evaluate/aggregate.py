"""Combine per-fold results: mean +- SD across folds, and pooled out-of-fold predictions.

Example:
    >>> mean, sd = mean_sd_across_folds([{"accuracy": 0.8}, {"accuracy": 0.9}])["accuracy"]
    >>> round(mean, 3), round(sd, 4)
    (0.85, 0.0707)
    >>> import numpy as np
    >>> y, p, g, fold = pooled_out_of_fold([np.array([0, 1]), np.array([1])],
    ...                                    [np.eye(2)[[0, 1]], np.eye(2)[[0]]])
    >>> y.tolist(), fold.tolist()
    ([0, 1, 1], [0, 0, 1])
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np


def mean_sd_across_folds(per_fold: Sequence[Mapping[str, float]]) -> dict[str, tuple[float, float]]:
    """``{name: (mean, sample SD with ddof=1)}`` over folds, ignoring NaN folds.

    A metric missing from a fold counts as NaN there. The SD is NaN when fewer than two
    folds define the metric; the mean is NaN when none does.
    """
    names: list[str] = []
    for fold in per_fold:
        names.extend(k for k in fold if k not in names)
    out: dict[str, tuple[float, float]] = {}
    for name in names:
        values = np.array([float(fold.get(name, np.nan)) for fold in per_fold])
        values = values[~np.isnan(values)]
        mean = float(values.mean()) if values.size else float("nan")
        sd = float(values.std(ddof=1)) if values.size >= 2 else float("nan")
        out[name] = (mean, sd)
    return out


def pooled_out_of_fold(
    y_true_per_fold: Sequence[np.ndarray],
    y_prob_per_fold: Sequence[np.ndarray],
    groups_per_fold: Sequence[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray]:
    """Concatenate each fold's held-out predictions into one pooled test set.

    Returns ``(y_true, y_prob, groups, fold_index)``. With ``groups`` (patient ids) it
    raises ValueError when a patient is held out in two folds, because pooled
    out-of-fold scores are only valid when every patient is scored exactly once
    (patient-grouped CV).
    """
    if len(y_true_per_fold) != len(y_prob_per_fold):
        raise ValueError("y_true_per_fold and y_prob_per_fold need one entry per fold")
    if len(y_true_per_fold) == 0:
        raise ValueError("no folds given")
    y_true = np.concatenate([np.asarray(y) for y in y_true_per_fold])
    y_prob = np.concatenate([np.asarray(p, dtype=float) for p in y_prob_per_fold], axis=0)
    if len(y_true) != len(y_prob):
        raise ValueError(f"{len(y_true)} labels but {len(y_prob)} prediction rows")
    fold_index = np.concatenate([np.full(len(y), i) for i, y in enumerate(y_true_per_fold)])
    groups = None
    if groups_per_fold is not None:
        if len(groups_per_fold) != len(y_true_per_fold):
            raise ValueError("groups_per_fold needs one entry per fold")
        seen: dict[str, int] = {}
        for i, fold_groups in enumerate(groups_per_fold):
            for g in np.unique(np.asarray(fold_groups).astype(str)):
                if g in seen:
                    raise ValueError(f"patient '{g}' is held out in folds {seen[g]} and {i}; "
                                     "folds must be patient-disjoint")
                seen[g] = i
        groups = np.concatenate([np.asarray(g) for g in groups_per_fold])
        if len(groups) != len(y_true):
            raise ValueError(f"{len(groups)} group ids for {len(y_true)} cases")
    return y_true, y_prob, groups, fold_index
