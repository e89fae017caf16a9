"""Metrics of the lesion experiment: cross-validated (pooled validation predictions of all folds),
with bootstrap CIs, the paired gains between arms, and the hold-out test per fold.

CIs and gains resample whole patients (all images of a drawn patient together, as the flagship
experiment does), so several images of one patient do not narrow the interval; a dataset without
patient ids (e.g. MMOTU) resamples images. ``metrics.json`` names the unit.

Views: each arm's own output, plus ``cascade@true`` / ``mask-shape@true`` (the same model fed
the TRUE mask's crop / shape), so "predicted vs true mask" is a paired comparison on the same
images. Segmentation views are scored on the images that have a mask, at the model's input
size; ``<arm>+post`` is the same mask after the morphological clean-up.

Per class, the cross-validation reports sensitivity and F1 too; a class with fewer than 6 patients
(images without patient ids) in the pooled validation keeps their point estimates only, marked
'too few to test' under ``too_few_to_test`` (as the experiment does, issue 20), and
``absent_from_validation`` names the folds whose validation set lacks a class.

Example:
    >>> import numpy as np
    >>> y = np.array([0, 1, 1, 0]); p = np.eye(2)[[0, 1, 0, 0]].astype(float)
    >>> m = cls_metrics(y, p, ["a", "b"])
    >>> m["accuracy"], m["sensitivity/b"]
    (0.75, 0.5)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sonogan.data.manifest import Dataset
from sonogan.evaluate.bootstrap import (MIN_CASES_TO_TEST, bootstrap_ci, paired_bootstrap_gain, too_few_to_test,
                                        withhold_result)
from sonogan.evaluate.metrics import classification_metrics
from sonogan.evaluate.segmentation import segmentation_ci, segmentation_gain, segmentation_metrics
from sonogan.lesion.arms import COMPARISONS
from sonogan.lesion.data import resize_masks
from sonogan.models.segmentation import postprocess_mask

CLS_KEYS = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc")
PER_CLASS = ("sensitivity", "f1")  # the cross-validation's per-class metrics (the rare class's finding rate)
SEG_KEYS = ("mean_iou", "mean_dice", "pooled_iou", "pooled_dice")


def cls_metrics(y: np.ndarray, p: np.ndarray, classes: list[str]) -> dict[str, float]:
    m = classification_metrics(y, p, classes)
    return {k: m[k] for k in (*CLS_KEYS, *(f"{name}/{c}" for name in PER_CLASS for c in classes))}


def absent_classes(truth: dict[int, dict[str, np.ndarray]], classes: list[str]) -> dict[int, list[str]]:
    """Folds whose validation set lacks a class, and which."""
    out = {f: [c for k, c in enumerate(classes) if not (t["val_y"] == k).any()] for f, t in truth.items()}
    return {f: absent for f, absent in out.items() if absent}


def class_views(preds: dict[str, dict[str, np.ndarray]], part: str) -> dict[str, np.ndarray]:
    """Every classification view's probabilities on ``part`` (val / test) of one fold."""
    out: dict[str, np.ndarray] = {}
    for arm, saved in preds.items():
        if f"{part}_proba" in saved:
            out[arm] = saved[f"{part}_proba"]
        if f"{part}_proba_true" in saved:
            out[f"{arm}@true"] = saved[f"{part}_proba_true"]
    return out


def mask_views(preds: dict[str, dict[str, np.ndarray]], part: str) -> dict[str, np.ndarray]:
    """Every segmentation view's boolean masks on ``part`` of one fold (raw threshold and cleaned)."""
    out: dict[str, np.ndarray] = {}
    for arm, saved in preds.items():
        if f"{part}_mask_prob" in saved:
            raw = saved[f"{part}_mask_prob"].astype(np.float32) > 0.5
            out[arm] = raw
            out[f"{arm}+post"] = np.stack([postprocess_mask(m) for m in raw]) if len(raw) else raw
    return out


def _json(res: Any) -> dict[str, Any]:
    return res.to_json()


def summarise(cfg: Any, classes: list[str], truth: dict[int, dict[str, np.ndarray]],
              preds: dict[int, dict[str, dict[str, np.ndarray]]]) -> dict[str, Any]:
    """The results dict of a run. ``truth[fold]``: ``{val_y, test_y, val_mask, test_mask,
    val_has, test_has}`` (masks at the model's input size) and ``val_groups`` (patient ids,
    absent when the dataset has none: then images are resampled), as :func:`truth_of` makes it."""
    folds = sorted(preds)
    n_res, ci, seed = cfg.evaluation.n_resamples, cfg.evaluation.ci, cfg.seed
    y = np.concatenate([truth[f]["val_y"] for f in folds])
    by_patient = all("val_groups" in truth[f] for f in folds)
    groups = np.concatenate([truth[f]["val_groups"] for f in folds]) if by_patient else None
    cls = {name: np.concatenate([class_views(preds[f], "val")[name] for f in folds])
           for name in class_views(preds[folds[0]], "val")}
    has = np.concatenate([truth[f]["val_has"] for f in folds])
    true_masks = np.concatenate([truth[f]["val_mask"] for f in folds])[has]
    seg = {name: np.concatenate([mask_views(preds[f], "val")[name] for f in folds])[has]
           for name in mask_views(preds[folds[0]], "val")}
    seg_groups = None if groups is None else groups[has]
    boot = {"n_resamples": n_res, "ci": ci, "seed": seed}
    fn = lambda t, p: cls_metrics(t, p, classes)  # noqa: E731
    too_few = too_few_to_test(fn(y, next(iter(cls.values()))) if cls else {}, y, classes, groups)
    out: dict[str, Any] = {"name": cfg.name, "folds": folds, "classes": classes, "n_cv": int(len(y)),
                           "n_cv_masks": int(has.sum()), "ci": ci, "n_resamples": n_res,
                           "bootstrap_unit": "patient" if by_patient else "image",
                           "min_cases_to_test": MIN_CASES_TO_TEST, "too_few_to_test": too_few,
                           "absent_from_validation": absent_classes({f: truth[f] for f in folds}, classes),
                           "classification": {}, "segmentation": {}, "gains": {}, "cascade_fallback": {}}
    for name, p in cls.items():
        test = [cls_metrics(truth[f]["test_y"], class_views(preds[f], "test")[name], classes) for f in folds]
        out["classification"][name] = {"cv": _json(withhold_result(bootstrap_ci(fn, y, p, groups=groups, **boot),
                                                                   too_few)),
                                       "test_mean": {k: float(np.mean([t[k] for t in test])) for k in CLS_KEYS}}
    for name, m in seg.items():
        test = []
        for f in folds:
            th = truth[f]["test_has"]
            test.append(segmentation_metrics(truth[f]["test_mask"][th], mask_views(preds[f], "test")[name][th]))
        out["segmentation"][name] = {"cv": _json(segmentation_ci(true_masks, m, n_res, seed, ci, groups=seg_groups)),
                                     "test_mean": {k: float(np.mean([t[k] for t in test])) for k in SEG_KEYS}}
    for a, b, label in COMPARISONS:
        if a in cls and b in cls:
            out["gains"][f"{b} vs {a}"] = {"a": a, "b": b, "what": label, **_json(
                withhold_result(paired_bootstrap_gain(fn, y, cls[a], cls[b], groups=groups, **boot), too_few))}
    for a, b in (("segmentation", "multitask"), ("segmentation", "cgan-segmentation"), ("segmentation", "segmentation+post")):
        if a in seg and b in seg:
            out["gains"][f"{b} vs {a} (masks)"] = {"a": a, "b": b, "what": "segmentation", **_json(
                segmentation_gain(true_masks, seg[a], seg[b], n_res, seed, ci, groups=seg_groups))}
    for arm in cfg.arms:
        flags = [preds[f][arm][f"{p}_fallback"] for f in folds for p in ("val", "test") if f"{p}_fallback" in preds[f][arm]]
        if flags:
            out["cascade_fallback"][arm] = int(sum(int(x.sum()) for x in flags))
    return out


def truth_of(ds: Dataset, fd: Any, has: dict[str, np.ndarray], size: int) -> dict[str, np.ndarray]:
    """Labels, masks at the model's size and mask flags of a fold's val and test partitions, and
    the validation images' patient ids (``val_groups``) when the dataset knows them."""
    out: dict[str, np.ndarray] = {}
    groups = ds.patient_groups(fd.val.ids)
    if groups is not None:
        out["val_groups"] = groups
    for p in ("val", "test"):
        part = getattr(fd, p)
        out[f"{p}_y"] = part.labels
        out[f"{p}_mask"] = resize_masks(part.masks, size)[:, 0].numpy() > 0.5
        out[f"{p}_has"] = has[p]
    return out
