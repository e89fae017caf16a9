"""Patient-level answers from per-image probabilities, and when to refer instead of answer.

A patient is usually scanned more than once. :func:`aggregate_patients` turns the image rows
of one patient into one answer two ways: the **mean probability** over the images (its
arg-max is the patient's class, its maximum the patient's *confidence*) and the **majority
vote** of the images' predicted classes; the **agreement** is the share of the patient's
images whose own prediction is the patient's class (1.0 for one image), an uncertainty
measure that needs no calibration.

Referral (decision support, second reader): a patient is flagged for a human read when the
model is unsure, i.e. its confidence is below the operating point's threshold, or when its
images disagree (agreement below ``min_agreement``). The threshold is chosen on
**validation** predictions (never on the data being predicted) by
:func:`choose_referral_threshold`: the smallest confidence ``t`` such that the validation
images with confidence >= ``t`` are classified with at least the target accuracy. The
:class:`OperatingPoint` records the threshold, the target, and what it gave on validation
(share of images referred, accuracy of those kept), so every prediction file can say it.

Example:
    >>> import numpy as np
    >>> val_p = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.55, 0.45]])
    >>> val_y = np.array([0, 0, 1, 0])
    >>> op = choose_referral_threshold(val_p, val_y, target_accuracy=0.9, source="toy")
    >>> op.threshold, op.val_referred, op.val_accuracy_kept
    (0.8, 0.5, 1.0)
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"patient": ["a", "a", "b"], "p_x": [0.9, 0.3, 0.85], "p_y": [0.1, 0.7, 0.15]})
    >>> out = aggregate_patients(rows, "patient", ["x", "y"], op)
    >>> out[["patient", "predicted", "vote", "agreement", "refer"]].values.tolist()
    [['a', 'x', 'tie', 0.5, True], ['b', 'x', 'x', 1.0, False]]
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd

from sonogan.errors import SonoganInputError

DEFAULT_TARGET_ACCURACY = 0.90


@dataclass(frozen=True)
class OperatingPoint:
    """Refer when confidence < ``threshold`` (or agreement < ``min_agreement``); chosen on validation."""

    threshold: float
    target_accuracy: float
    min_agreement: float
    val_n: int
    val_referred: float          # share of validation images the threshold refers
    val_accuracy_kept: float     # accuracy of the validation images it keeps (NaN if none kept)
    reached: bool                # False: no threshold reached the target; everything below the top is referred
    source: str                  # which validation predictions, e.g. "fold 0 validation (calibrated)"

    def to_dict(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "OperatingPoint":
        d = dict(d)
        d["val_accuracy_kept"] = float("nan") if d.get("val_accuracy_kept") is None else d["val_accuracy_kept"]
        return cls(**d)

    def describe(self) -> str:
        """One line for a terminal or a report."""
        if self.val_n == 0:
            return f"refer when confidence < {self.threshold:.3f} (set by hand, not chosen on validation data)"
        kept = "n/a" if np.isnan(self.val_accuracy_kept) else f"{self.val_accuracy_kept:.3f}"
        aim = "" if self.reached else f" (target {self.target_accuracy:.2f} not reached on validation)"
        return (f"refer when confidence < {self.threshold:.3f} or agreement < {self.min_agreement:.2f}: "
                f"chosen on {self.val_n} images of {self.source} for accuracy >= {self.target_accuracy:.2f} "
                f"among the kept; there it referred {self.val_referred:.0%} and the kept were {kept} accurate{aim}")


def manual_operating_point(threshold: float, min_agreement: float = 1.0) -> OperatingPoint:
    """An operating point given by hand (``--refer-below``), marked as not chosen on validation."""
    if not 0.0 <= threshold <= 1.0:
        raise SonoganInputError("--refer-below", f"{threshold} is not a probability", "pass a value in [0, 1]")
    return OperatingPoint(float(threshold), float("nan"), float(min_agreement), 0, float("nan"), float("nan"),
                          True, "given by hand")


def choose_referral_threshold(val_probs: np.ndarray, val_y: np.ndarray,
                              target_accuracy: float = DEFAULT_TARGET_ACCURACY, min_agreement: float = 1.0,
                              source: str = "validation") -> OperatingPoint:
    """The smallest confidence threshold whose kept validation images reach ``target_accuracy``.

    Candidates are the validation confidences themselves (keeping ``conf >= t``). When no
    candidate reaches the target, the highest confidence is used (only the most confident
    images are answered) and ``reached`` is False.
    """
    p = np.asarray(val_probs, dtype=np.float64)
    y = np.asarray(val_y)
    if p.ndim != 2 or len(p) == 0 or len(y) != len(p):
        raise SonoganInputError("referral", f"validation probabilities {p.shape} and labels {y.shape}",
                                "pass (N, C) validation probabilities with N >= 1 labels")
    if not 0.0 < target_accuracy <= 1.0:
        raise SonoganInputError("--target-accuracy", f"{target_accuracy}", "pass a value in (0, 1]")
    conf = p.max(axis=1)
    correct = p.argmax(axis=1) == y
    order = np.argsort(-conf, kind="stable")
    # accuracy of the k most confident images, for every k: one pass instead of one per threshold
    kept_acc = np.cumsum(correct[order]) / np.arange(1, len(order) + 1)
    sorted_conf = conf[order]
    ok = np.flatnonzero(kept_acc >= target_accuracy)
    # a threshold must keep every image of equal confidence together: only ends of tie runs count
    ends = np.r_[sorted_conf[1:] != sorted_conf[:-1], True]
    ok = ok[ends[ok]]
    reached = ok.size > 0
    k = int(ok.max()) if reached else int(np.flatnonzero(ends)[0])
    threshold = float(sorted_conf[k])
    keep = conf >= threshold
    return OperatingPoint(threshold, float(target_accuracy), float(min_agreement), int(len(y)),
                          float(1.0 - keep.mean()), float(correct[keep].mean()) if keep.any() else float("nan"),
                          bool(reached), source)


def _vote(predicted: Sequence[str]) -> str:
    counts = pd.Series(list(predicted)).value_counts()
    top = counts[counts == counts.iloc[0]]
    return str(top.index[0]) if len(top) == 1 else "tie"


def aggregate_patients(table: pd.DataFrame, patient_col: str, class_names: Sequence[str],
                       operating_point: OperatingPoint | None = None) -> pd.DataFrame:
    """One row per patient: images, mean probability per class, predicted class, confidence,
    majority vote, agreement, and (with an operating point) the referral flag and its reason.

    ``table`` has ``p_<class>`` columns (one row per image) and ``patient_col``.
    """
    cols = [f"p_{c}" for c in class_names]
    missing = [c for c in cols + [patient_col] if c not in table.columns]
    if missing:
        raise SonoganInputError("patients", f"prediction table lacks columns {missing}",
                                "pass the table predict_items made (sonogan predict)")
    rows = []
    for patient, part in table.groupby(patient_col, sort=True):
        probs = part[cols].to_numpy(dtype=np.float64)
        mean = probs.mean(axis=0)
        k = int(mean.argmax())
        image_pred = [class_names[j] for j in probs.argmax(axis=1)]
        agreement = float(np.mean([c == class_names[k] for c in image_pred]))
        row: dict[str, Any] = {patient_col: patient, "images": len(part), "predicted": class_names[k],
                               "confidence": float(mean[k]), "vote": _vote(image_pred), "agreement": agreement}
        row.update({c: float(v) for c, v in zip(cols, mean)})
        if operating_point is not None:
            unsure = row["confidence"] < operating_point.threshold
            split = agreement < operating_point.min_agreement
            row["refer"] = bool(unsure or split)
            row["refer_reason"] = "; ".join(r for r, on in (("low confidence", unsure), ("images disagree", split))
                                            if on)
        rows.append(row)
    return pd.DataFrame(rows)
