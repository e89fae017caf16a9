"""Lesion segmentation metrics: Dice and IoU, per image and pooled, with bootstrap CIs.

Pure numpy functions on boolean masks (N, H, W), in the spirit of MONAI's ``compute_dice`` /
``compute_iou`` (which work on one-hot torch tensors and return NaN for an empty pair; here
an empty prediction of an empty truth scores 1, the convention of the MMOTU papers, so an
image without a lesion that is correctly left empty is not dropped from the mean).

- per image: ``2|P∩T| / (|P|+|T|)`` and ``|P∩T| / |P∪T|``, then averaged (``mean_iou``);
- pooled: the counts summed over all images first (``pooled_iou``), so large lesions weigh more.

Example:
    >>> import numpy as np
    >>> t = np.zeros((1, 4, 4), bool); t[0, :2, :2] = True          # 4 lesion pixels
    >>> p = np.zeros((1, 4, 4), bool); p[0, :2, :3] = True          # 6 predicted, 4 shared
    >>> float(dice(p, t)[0]), float(iou(p, t)[0])                    # 8/10, 4/6
    (0.8, 0.6666666666666666)
    >>> segmentation_metrics(t, p)["mean_dice"]
    0.8
"""

from __future__ import annotations

import numpy as np

from sonogan.evaluate.bootstrap import BootstrapResult, bootstrap_ci, paired_bootstrap_gain


def _counts(pred: np.ndarray, true: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-image (intersection, |pred|, |true|) of boolean (N, H, W) masks."""
    pred, true = np.asarray(pred, bool), np.asarray(true, bool)
    if pred.shape != true.shape:
        raise ValueError(f"prediction {pred.shape} and truth {true.shape} differ in shape")
    if pred.ndim == 2:
        pred, true = pred[None], true[None]
    axes = tuple(range(1, pred.ndim))
    return (pred & true).sum(axes).astype(np.float64), pred.sum(axes).astype(np.float64), true.sum(axes).astype(np.float64)


def dice(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-image Dice of boolean masks (N, H, W) or one (H, W); both empty -> 1."""
    inter, p, t = _counts(pred, true)
    den = p + t
    return np.where(den > 0, 2 * inter / np.maximum(den, 1), 1.0)


def iou(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-image IoU (Jaccard) of boolean masks; both empty -> 1."""
    inter, p, t = _counts(pred, true)
    union = p + t - inter
    return np.where(union > 0, inter / np.maximum(union, 1), 1.0)


def mask_counts(pred: np.ndarray, true: np.ndarray) -> np.ndarray:
    """Per-image (intersection, |pred|, |true|) as float (N, 3): everything the metrics need,
    so the bootstrap resamples three numbers per image instead of whole masks."""
    return np.stack(_counts(pred, true), axis=1)


def metrics_from_counts(counts: np.ndarray) -> dict[str, float]:
    """Mean per-image and pooled Dice / IoU from :func:`mask_counts` rows."""
    counts = np.asarray(counts, np.float64).reshape(-1, 3)
    if len(counts) == 0:
        return dict.fromkeys(("mean_dice", "mean_iou", "pooled_dice", "pooled_iou"), float("nan"))
    inter, p, t = counts.T
    den, union = p + t, p + t - inter
    per_dice = np.where(den > 0, 2 * inter / np.maximum(den, 1), 1.0)
    per_iou = np.where(union > 0, inter / np.maximum(union, 1), 1.0)
    return {"mean_dice": float(per_dice.mean()), "mean_iou": float(per_iou.mean()),
            "pooled_dice": float(2 * inter.sum() / den.sum()) if den.sum() else 1.0,
            "pooled_iou": float(inter.sum() / union.sum()) if union.sum() else 1.0}


def segmentation_metrics(true: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Mean per-image Dice / IoU and pooled Dice / IoU. Argument order (truth, prediction) as in
    :func:`sonogan.evaluate.bootstrap.bootstrap_ci`'s ``metric_fn(y_true, y_prob)``."""
    return metrics_from_counts(mask_counts(pred, true))


def _on_counts(_: np.ndarray, counts: np.ndarray) -> dict[str, float]:
    return metrics_from_counts(counts)


def segmentation_ci(true: np.ndarray, pred: np.ndarray, n_resamples: int = 1000, seed: int = 0,
                    ci: float = 0.95, groups: np.ndarray | None = None) -> BootstrapResult:
    """:func:`segmentation_metrics` with percentile-bootstrap CIs over images (or patients via ``groups``)."""
    counts = mask_counts(pred, true)
    return bootstrap_ci(_on_counts, np.zeros(len(counts)), counts, groups=groups, n_resamples=n_resamples,
                        ci=ci, seed=seed)


def segmentation_gain(true: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, n_resamples: int = 1000,
                      seed: int = 0, ci: float = 0.95, groups: np.ndarray | None = None) -> BootstrapResult:
    """Paired-bootstrap gain of masks B over masks A (B minus A) on the same images."""
    return paired_bootstrap_gain(_on_counts, np.zeros(len(true)), mask_counts(pred_a, true),
                                 mask_counts(pred_b, true), groups=groups, n_resamples=n_resamples, ci=ci, seed=seed)
