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

With several classifier seeds (``classifier_seeds``) every number above is computed from the
seed-averaged probabilities (the bootstrap over patients, or images, of those), and each scope
adds ``seed_sd`` (the standard deviation over seeds of the metric computed from each seed's own
predictions) and ``seed_gain_vs_baseline`` / ``seed_gain_vs_control`` (each seed's paired
point gain, and their min, max and SD): the seeds' share of the uncertainty. With the
count-matched control (``synthetic.matched_control``) each scope adds ``gain_vs_control``: every
synthetic arm minus the control, on the same resamples.

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
PARTS = ("val", "test")


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


def seed_average(arrays: list[np.ndarray]) -> np.ndarray:
    """An arm's probabilities over its classifier seeds: their mean (one seed: its own array)."""
    return arrays[0] if len(arrays) == 1 else np.mean(np.stack(arrays), axis=0)


def control_arm(cfg: ExperimentConfig) -> str | None:
    """The count-matched oversampling control's arm, when the config has it."""
    name = f"classic-{cfg.synthetic.n_per_class}"
    return name if cfg.synthetic.matched_control and name in cfg.arm_names() else None


def fold_arrays(cfg: ExperimentConfig, saved: Any, fold: int) -> dict[str, Any]:
    """One fold's entry of :func:`pool_folds` from its ``predictions.npz`` arrays (``saved``: that
    file, or the same keys from a fold record): labels, each (arm, model)'s probabilities and,
    with several classifier seeds, each seed's (``seed_probs[seed]``)."""
    arms, models, seeds = cfg.arm_names(), model_names(cfg), cfg.seeds()
    entry = {"fold": fold, "val_y": saved["y|val"], "test_y": saved["y|test"],
             "probs": {a: {m: {p: saved[f"{a}|{m}|{p}"] for p in PARTS} for m in models} for a in arms}}
    if len(seeds) > 1:
        entry["seed_probs"] = {s: {a: {m: {p: saved[f"{a}|{m}|{p}|seed-{s}"] for p in PARTS} for m in models}
                                   for a in arms} for s in seeds}
    return entry


def pool_folds(cfg: ExperimentConfig, per_fold: list[dict[str, Any]], val_groups: list[np.ndarray],
               test_groups: np.ndarray | None, patients_known: bool) -> tuple[Pooled, Pooled, list[dict]]:
    """(out-of-fold validation, fold-averaged test, ``per_fold``) of every arm and model from the
    folds' :func:`fold_arrays`. ``val_groups``: each fold's validation patients (image ids when
    patients are unknown: pooled_out_of_fold refuses a case held out in two folds)."""
    arms, models = cfg.arm_names(), model_names(cfg)
    val_y = [f["val_y"] for f in per_fold]
    pool = lambda a, m: pooled_out_of_fold(val_y, [f["probs"][a][m]["val"] for f in per_fold], val_groups)  # noqa: E731
    y_oof, _, groups_oof, _ = pool(arms[0], models[0])
    oof = Pooled(y_oof, groups_oof if patients_known else None,
                 {a: {m: pool(a, m)[1] for m in models} for a in arms})
    test = Pooled(per_fold[0]["test_y"], test_groups,
                  {a: {m: np.mean([f["probs"][a][m]["test"] for f in per_fold], axis=0) for m in models} for a in arms})
    return oof, test, per_fold


def seed_pools(cfg: ExperimentConfig, pooled: tuple[Pooled, Pooled, list[dict]], model: str
               ) -> dict[str, dict[int, Pooled]]:
    """``{"cv": {seed: Pooled}, "test": {seed: Pooled}}``: each classifier seed's own predictions
    of ``model``, pooled as :func:`pool_folds` pools the seed-averaged ones (same cases, same order)."""
    oof, test, per_fold = pooled
    out: dict[str, dict[int, Pooled]] = {"cv": {}, "test": {}}
    for s in cfg.seeds():
        probs = [f["seed_probs"][s] for f in per_fold]
        out["cv"][s] = Pooled(oof.y, oof.groups, {a: {model: np.concatenate([p[a][model]["val"] for p in probs])}
                                                  for a in oof.probs})
        out["test"][s] = Pooled(test.y, test.groups, {a: {model: np.mean([p[a][model]["test"] for p in probs], axis=0)}
                                                      for a in test.probs})
    return out


def pool_predictions(cfg: ExperimentConfig, ds: Dataset, records: list[dict], run_dir: Path) -> tuple[Pooled, Pooled, list[dict]]:
    """(out-of-fold validation, fold-averaged test, per-fold raw) predictions of every arm and model."""
    per_fold = [fold_arrays(cfg, np.load(fold_dir(run_dir, rec["fold"]) / "predictions.npz"), rec["fold"])
                for rec in records]
    val_groups = [ds.patient_groups(rec["val_ids"]) if ds.spec.patients_known else np.array(rec["val_ids"]) for rec in records]
    return pool_folds(cfg, per_fold, val_groups, ds.patient_groups(records[0]["test_ids"]), ds.spec.patients_known)


def _ci_block(cfg: ExperimentConfig, metric_fn, pooled: Pooled, model: str,
              class_names: list[str]) -> tuple[dict, dict, dict[str, str]]:
    """(CIs per arm, paired gains per arm, ``{metric: reason}`` of the too-few-to-test metrics,
    whose CIs and p-values are withheld)."""
    ev = cfg.evaluation
    cis, too_few = {}, {}
    for arm, by_model in pooled.probs.items():
        res = bootstrap_ci(metric_fn, pooled.y, by_model[model], groups=pooled.groups,
                           n_resamples=ev.n_resamples, ci=ev.ci, seed=cfg.seed)
        too_few = too_few_to_test(res, pooled.y, class_names, pooled.groups)
        cis[arm] = withhold_tests(res, too_few)
    gains = _paired_gains(cfg, metric_fn, pooled, model, "baseline", [a for a in pooled.probs if a != "baseline"],
                          too_few)
    return cis, gains, too_few


def _paired_gains(cfg: ExperimentConfig, metric_fn, pooled: Pooled, model: str, reference: str, arms: list[str],
                  too_few: dict[str, str]) -> dict[str, dict[str, list[float]]]:
    """Each arm minus ``reference`` with its paired bootstrap CI and p (tests of too-few classes withheld)."""
    ev = cfg.evaluation
    return {arm: withhold_tests(paired_bootstrap_gain(metric_fn, pooled.y, pooled.probs[reference][model],
                                                      pooled.probs[arm][model], groups=pooled.groups,
                                                      n_resamples=ev.n_resamples, ci=ev.ci, seed=cfg.seed), too_few)
            for arm in arms}


def _sd(values: list[float]) -> float:
    """Sample SD (ddof=1) of the seeds' values; NaN when a seed's value is undefined."""
    return float(np.std(values, ddof=1))


def _seed_spread(metric_fn, pools: dict[int, Pooled], model: str, control: str | None,
                 synthetic_arms: list[str]) -> dict[str, Any]:
    """One scope's seed block: ``seed_sd[arm][metric]`` and each seed's point gain over the
    baseline (and the control) with its min, max and SD."""
    values = {s: {a: metric_fn(p.y, by_model[model]) for a, by_model in p.probs.items()} for s, p in pools.items()}
    seeds = list(pools)
    arms = list(values[seeds[0]])
    names = list(values[seeds[0]][arms[0]])
    block: dict[str, Any] = {"seed_sd": {a: {k: _sd([values[s][a][k] for s in seeds]) for k in names} for a in arms}}
    refs = {"seed_gain_vs_baseline": ("baseline", [a for a in arms if a != "baseline"])}
    if control is not None:
        refs["seed_gain_vs_control"] = (control, synthetic_arms)
    for key, (ref, compared) in refs.items():
        block[key] = {}
        for a in compared:
            block[key][a] = {}
            for k in names:
                g = [values[s][a][k] - values[s][ref][k] for s in seeds]
                block[key][a][k] = {"per_seed": g, "min": min(g), "max": max(g), "sd": _sd(g)}
    return block


def compute_results(cfg: ExperimentConfig, ds: Dataset, pooled: tuple[Pooled, Pooled, list[dict]], records: list[dict],
                    rare: list[str]) -> dict[str, Any]:
    """Everything ``metrics.json`` holds (JSON-ready), from :func:`pool_predictions`' output."""
    return {**pooled_numbers(cfg, list(ds.spec.classes), ds.spec.patients_known, pooled, rare),
            "fusion_weights": {r["fold"]: r.get("fusion_weights", {}) for r in records},
            "synthetic": {r["fold"]: r.get("synthetic", {}) for r in records},
            "calibration": {r["fold"]: r.get("calibration", {}) for r in records}}


def pooled_numbers(cfg: ExperimentConfig, names: list[str], patients_known: bool,
                   pooled: tuple[Pooled, Pooled, list[dict]], rare: list[str]) -> dict[str, Any]:
    """The numbers of :func:`compute_results` that come from predictions alone (CIs, gains, seed
    spread, per-fold metrics): what ``benchmarks/mmotu_verdict.py --merge`` recomputes from the
    folds' records."""
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
    scopes: dict[str, dict[str, Any]] = {"test": {}, "cv": {}}
    control = control_arm(cfg)
    synthetic_arms = [a.name for a in cfg.arms() if a.needs_synthetic]
    if control is not None:
        scopes["test"]["gain_vs_control"] = _paired_gains(cfg, metric_fn, test, primary, control, synthetic_arms,
                                                          test_few)
        scopes["cv"]["gain_vs_control"] = _paired_gains(cfg, metric_fn, oof, primary, control, synthetic_arms, oof_few)
    if len(cfg.seeds()) > 1:
        for scope, pools in seed_pools(cfg, pooled, primary).items():
            scopes[scope].update(_seed_spread(metric_fn, pools, primary, control, synthetic_arms))
    point = {scope: {arm: {m: metric_fn(pool.y, p) for m, p in by_model.items()} for arm, by_model in pool.probs.items()}
             for scope, pool in (("test", test), ("cv", oof))}
    confusion = {arm: confusion_matrix(test.y, predictions(p[primary]), len(names)).tolist()
                 for arm, p in test.probs.items()}
    return {
        "class_names": names, "rare_classes": rare, "primary_model": primary, "arms": cfg.arm_names(),
        "models": model_names(cfg), "folds_run": [f["fold"] for f in per_fold],
        "patients_known": patients_known,
        **({"classifier_seeds": cfg.seeds()} if len(cfg.seeds()) > 1 else {}),
        **({"control_arm": control} if control is not None else {}),
        "bootstrap": {"n_resamples": cfg.evaluation.n_resamples, "ci": cfg.evaluation.ci,
                      "unit": "patient" if patients_known else "image",
                      "min_cases_to_test": MIN_CASES_TO_TEST},
        "n_test": int(len(test.y)), "n_cv": int(len(oof.y)),
        "test": {"ci": test_ci, "gain_vs_baseline": test_gain, "confusion": confusion, "too_few_to_test": test_few,
                 **scopes["test"]},
        "cv": {"ci": oof_ci, "gain_vs_baseline": oof_gain, "too_few_to_test": oof_few, **scopes["cv"]},
        "point": point,
        "per_fold": folds,
    }
