"""Numbers of an experiment: per-fold metrics (mean +- SD), pooled out-of-fold and hold-out
test metrics with bootstrap CIs, and the paired bootstrap CI of every gain over baseline.

Two evaluations, both on REAL images only:
- *cross-validation*: each fold's validation predictions pooled (every real non-test image is
  predicted once, by the fold that did not train on it);
- *hold-out test*: the fold models' test probabilities averaged (the cross-validation
  ensemble), plus each fold's own test metrics for mean +- SD.
When several classifiers are fused, fusion weights are fitted on the fold's validation
images, so the pooled validation numbers of the ensemble are slightly optimistic; the
hold-out test numbers are not.

A class with fewer than :data:`~sonogan.evaluate.bootstrap.MIN_CASES_TO_TEST` cases (patients
when known) in an evaluated set keeps the point estimates of its per-class metrics but no CI or
p-value (NaN), and each scope lists them with the reason under ``"too_few_to_test"``.

Example:
    >>> pooled = pool_predictions(cfg, ds, records, run_dir)             # doctest: +SKIP
    >>> results = compute_results(cfg, ds, pooled, records, ["borderline"])   # doctest: +SKIP
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sonogan.data.manifest import Dataset
from sonogan.evaluate.aggregate import mean_sd_across_folds, pooled_out_of_fold
from sonogan.evaluate.bootstrap import (MIN_CASES_TO_TEST, bootstrap_ci, paired_bootstrap_gain, too_few_to_test,
                                        withhold_tests)
from sonogan.evaluate.metrics import classification_metrics, confusion_matrix, predictions
from sonogan.experiment.config import ExperimentConfig
from sonogan.layout import fold_dir

ENSEMBLE = "ensemble"
ENSEMBLE_EQUAL = "ensemble-equal"


@dataclass
class Pooled:
    """Labels, patient groups and per-(arm, model) probabilities of one evaluation set."""

    y: np.ndarray
    groups: np.ndarray | None
    probs: dict[str, dict[str, np.ndarray]]   # arm -> model -> (N, C)


def model_names(cfg: ExperimentConfig) -> list[str]:
    """Members, then the fused ensemble, then (weighted fusion only) the equal-weight reference."""
    names = [c.model for c in cfg.classifiers]
    if len(names) == 1:
        return names
    return names + [ENSEMBLE] + ([ENSEMBLE_EQUAL] if cfg.ensemble == "weighted" else [])


def primary_model(cfg: ExperimentConfig) -> str:
    """The model every headline number is about: the ensemble, or the single classifier."""
    return ENSEMBLE if len(cfg.classifiers) > 1 else cfg.classifiers[0].model


def pool_predictions(cfg: ExperimentConfig, ds: Dataset, records: list[dict], run_dir: Path) -> tuple[Pooled, Pooled, list[dict]]:
    """(out-of-fold validation, fold-averaged test, per-fold raw) predictions of every arm and model."""
    arms, models = cfg.arm_names(), model_names(cfg)
    per_fold = []
    for rec in records:
        saved = np.load(fold_dir(run_dir, rec["fold"]) / "predictions.npz")
        per_fold.append({"fold": rec["fold"], "val_y": saved["y|val"], "test_y": saved["y|test"],
                         "probs": {a: {m: {p: saved[f"{a}|{m}|{p}"] for p in ("val", "test")} for m in models} for a in arms}})
    test_ids = records[0]["test_ids"]
    val_y = [f["val_y"] for f in per_fold]
    # patients when known, else image ids: pooled_out_of_fold refuses a case held out in two folds
    val_groups = [ds.patient_groups(rec["val_ids"]) if ds.spec.patients_known else np.array(rec["val_ids"]) for rec in records]
    pool = lambda a, m: pooled_out_of_fold(val_y, [f["probs"][a][m]["val"] for f in per_fold], val_groups)  # noqa: E731
    y_oof, _, groups_oof, _ = pool(arms[0], models[0])
    oof = Pooled(y_oof, groups_oof if ds.spec.patients_known else None,
                 {a: {m: pool(a, m)[1] for m in models} for a in arms})
    test = Pooled(per_fold[0]["test_y"], ds.patient_groups(test_ids),
                  {a: {m: np.mean([f["probs"][a][m]["test"] for f in per_fold], axis=0) for m in models} for a in arms})
    return oof, test, per_fold


def _ci_block(cfg: ExperimentConfig, metric_fn, pooled: Pooled, model: str,
              class_names: list[str]) -> tuple[dict, dict, dict[str, str]]:
    """(CIs per arm, paired gains per arm, ``{metric: reason}`` of the too-few-to-test metrics,
    whose CIs and p-values are withheld)."""
    ev = cfg.evaluation
    cis, gains, too_few = {}, {}, {}
    for arm, by_model in pooled.probs.items():
        res = bootstrap_ci(metric_fn, pooled.y, by_model[model], groups=pooled.groups,
                           n_resamples=ev.n_resamples, ci=ev.ci, seed=cfg.seed)
        too_few = too_few_to_test(res, pooled.y, class_names, pooled.groups)
        cis[arm] = withhold_tests(res, too_few)
        if arm != "baseline":
            g = paired_bootstrap_gain(metric_fn, pooled.y, pooled.probs["baseline"][model], by_model[model],
                                      groups=pooled.groups, n_resamples=ev.n_resamples, ci=ev.ci, seed=cfg.seed)
            gains[arm] = withhold_tests(g, too_few)
    return cis, gains, too_few


def compute_results(cfg: ExperimentConfig, ds: Dataset, pooled: tuple[Pooled, Pooled, list[dict]], records: list[dict],
                    rare: list[str]) -> dict[str, Any]:
    """Everything ``metrics.json`` holds (JSON-ready), from :func:`pool_predictions`' output."""
    names = ds.spec.classes
    metric_fn = lambda y, p: classification_metrics(y, p, names)  # noqa: E731
    oof, test, per_fold = pooled
    primary = primary_model(cfg)
    folds: dict[str, dict[str, Any]] = {}
    for arm in cfg.arm_names():
        folds[arm] = {}
        for m in model_names(cfg):
            val_m = [metric_fn(f["val_y"], f["probs"][arm][m]["val"]) for f in per_fold]
            test_m = [metric_fn(f["test_y"], f["probs"][arm][m]["test"]) for f in per_fold]
            folds[arm][m] = {"val_mean_sd": {k: list(v) for k, v in mean_sd_across_folds(val_m).items()},
                             "test_mean_sd": {k: list(v) for k, v in mean_sd_across_folds(test_m).items()},
                             "test_per_fold": test_m}
    test_ci, test_gain, test_few = _ci_block(cfg, metric_fn, test, primary, names)
    oof_ci, oof_gain, oof_few = _ci_block(cfg, metric_fn, oof, primary, names)
    point = {scope: {arm: {m: metric_fn(pool.y, p) for m, p in by_model.items()} for arm, by_model in pool.probs.items()}
             for scope, pool in (("test", test), ("cv", oof))}
    confusion = {arm: confusion_matrix(test.y, predictions(p[primary]), len(names)).tolist()
                 for arm, p in test.probs.items()}
    return {
        "class_names": names, "rare_classes": rare, "primary_model": primary, "arms": cfg.arm_names(),
        "models": model_names(cfg), "folds_run": [r["fold"] for r in records],
        "patients_known": ds.spec.patients_known,
        "bootstrap": {"n_resamples": cfg.evaluation.n_resamples, "ci": cfg.evaluation.ci,
                      "unit": "patient" if ds.spec.patients_known else "image",
                      "min_cases_to_test": MIN_CASES_TO_TEST},
        "n_test": int(len(test.y)), "n_cv": int(len(oof.y)),
        "test": {"ci": test_ci, "gain_vs_baseline": test_gain, "confusion": confusion, "too_few_to_test": test_few},
        "cv": {"ci": oof_ci, "gain_vs_baseline": oof_gain, "too_few_to_test": oof_few},
        "point": point,
        "per_fold": folds,
        "fusion_weights": {r["fold"]: r.get("fusion_weights", {}) for r in records},
        "synthetic": {r["fold"]: r.get("synthetic", {}) for r in records},
        "calibration": {r["fold"]: r.get("calibration", {}) for r in records},
    }
