"""Real-only evaluation: pure metrics, bootstrap CIs, paired gains, fold aggregation.

Example:
    >>> import numpy as np
    >>> from sonogan.evaluate import classification_metrics, bootstrap_ci
    >>> y = np.array([0, 1, 1, 0]); p = np.eye(2)[[0, 1, 0, 0]]
    >>> classification_metrics(y, p, ["benign", "bot"])["accuracy"]
    0.75
"""

from sonogan.evaluate.aggregate import mean_sd_across_folds, pooled_out_of_fold
from sonogan.evaluate.bootstrap import BootstrapResult, bootstrap_ci, paired_bootstrap_gain
from sonogan.evaluate.metrics import classification_metrics, confusion_matrix

__all__ = [
    "BootstrapResult",
    "bootstrap_ci",
    "classification_metrics",
    "confusion_matrix",
    "mean_sd_across_folds",
    "paired_bootstrap_gain",
    "pooled_out_of_fold",
]
