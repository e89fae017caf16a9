"""The experiment report: ``report.html`` (self-contained), ``summary.md`` and figures.

Sections follow the flagship paper: Table 1 (per-class sensitivity, specificity, F1, AUC
with 95 % CIs), baseline vs augmented bars (Fig. 5), ROC curves (Fig. 6), confusion
matrices (Fig. 7), synthetic grids and their evolution (Fig. 4), loss curves, the
synthetic-count sweep (Frid-Adar Fig. 8), t-SNE of real vs synthetic features (Fig. 9),
the synthetic-image audit (fidelity, diversity, quality, memorisation gate), and the exact
command, config, data summary and software versions.

The report only draws: it reads ``metrics.json``-shaped results and files the protocol
saved (figures, histories, ``features.npz``) and imports no model or training code.

Example:
    >>> point = {"accuracy": [0.80, 0.7, 0.9], "macro_f1": [0.60, 0.5, 0.7], "f1/bot": [0.40, 0.2, 0.6]}
    >>> better = {"accuracy": [0.85, 0.75, 0.95], "macro_f1": [0.70, 0.6, 0.8], "f1/bot": [0.65, 0.4, 0.8]}
    >>> gain = {"accuracy": [0.05, -0.01, 0.1, 0.2], "macro_f1": [0.1, 0.0, 0.2, 0.04],
    ...         "f1/bot": [0.25, 0.1, 0.4, 0.0]}
    >>> scope = {"ci": {"baseline": point, "augmented": better}, "gain_vs_baseline": {"augmented": gain}}
    >>> results = {"primary_model": "cnn", "arms": ["baseline", "augmented"],
    ...            "bootstrap": {"ci": 0.95, "n_resamples": 1000, "unit": "patient"},
    ...            "n_cv": 120, "n_test": 30, "cv": scope, "test": scope}
    >>> print(headline_lines(results, ["bot"])[2])
      F1 bot 0.400 → 0.650 (+0.250, CI +0.100 to +0.400, p < 0.001)
    >>> write_report(cfg, ds, run, results, records, ["borderline"], test=pooled_test)   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from sonogan.audit.report import audit_section
from sonogan.config import to_yaml
from sonogan.data.manifest import Dataset
from sonogan.evaluate.calibration import reliability_curve
from sonogan.layout import fold_dir, model_dir
from sonogan.report import figures as fig
from sonogan.report.html import (TOO_FEW, Section, Table, format_ci, format_p, gain_table_rows, metrics_table_rows,
                                 render_report)
from sonogan.report.markdown import render_markdown_summary
from sonogan.runs import RunDir
from sonogan.study.report import run_reader_study_section

if TYPE_CHECKING:  # importing these at run time would pull in model and GAN code the report never calls
    from sonogan.experiment.config import ExperimentConfig
    from sonogan.experiment.results import Pooled

HEADLINE = ["accuracy", "macro_f1", "macro_auc"]
FEATURE_KEYS = ("features", "label", "synthetic", "model", "arm")
SCOPES = {"cv": "Cross-validation (pooled out-of-fold, {n} real images)",
          "test": "Hold-out test ({n} real images, fold models averaged)"}


def headline_metrics(rare: list[str]) -> list[str]:
    return HEADLINE + [f"f1/{c}" for c in rare] + [f"sensitivity/{c}" for c in rare]


def _too_few(scope: dict[str, Any]) -> dict[str, str]:
    return scope.get("too_few_to_test", {})  # absent from runs made before it existed


def _ci_cell(scope: dict[str, Any], arm: str, metric: str) -> str:
    """'point (low to high)', or 'point (too few to test)'."""
    value = scope["ci"][arm][metric]
    if metric in _too_few(scope):
        return f"{format_ci(value[0], float('nan'), float('nan'))} ({TOO_FEW})"
    return format_ci(*value[:3])


def _change(scope: dict[str, Any], metric: str) -> str:
    # '0.600 → 0.700 (+0.100, CI +0.000 to +0.200, p = 0.040)': baseline → augmented (gain, CI, p)
    base, aug = scope["ci"]["baseline"][metric][0], scope["ci"]["augmented"][metric][0]
    gain, low, high, p = scope["gain_vs_baseline"]["augmented"][metric][:4]
    if metric in _too_few(scope):  # the point only: no CI or p-value from so few cases
        return f"{base:.3f} → {aug:.3f} ({gain:+.3f}, {TOO_FEW}: {_too_few(scope)[metric]})"
    p_text = format_p(p)
    p_text = f"p {p_text}" if p_text[0] in "<>n" else f"p = {p_text}"
    return f"{base:.3f} → {aug:.3f} ({gain:+.3f}, CI {low:+.3f} to {high:+.3f}, {p_text})"


def headline_lines(results: dict[str, Any], rare: list[str]) -> list[str]:
    """Five lines for a terminal: the primary model's accuracy, macro-F1 and rare-class F1,
    baseline → augmented with the paired gain, for pooled cross-validation and the hold-out test."""
    boot = results["bootstrap"]
    if "augmented" not in results["arms"]:  # a baseline-only run: the recipe's numbers, no comparison
        return [f"{results['primary_model']}, baseline only ({round(100 * boot['ci'])} % bootstrap CI):"] + [
            f"{label.format(n=results['n_' + key])}: " + "; ".join(
                f"{m} {_ci_cell(results[key], 'baseline', m)}" for m in
                ["accuracy", "macro_f1"] + [f"f1/{c}" for c in rare]) for key, label in SCOPES.items()]
    lines = [f"{results['primary_model']}, baseline → augmented (gain = augmented − baseline, paired "
             f"{round(100 * boot['ci'])} % bootstrap CI over {boot['n_resamples']} {boot['unit']} resamples, p):"]
    for key, label in SCOPES.items():
        scope = results[key]
        lines.append(f"{label.format(n=results['n_' + key])}: accuracy {_change(scope, 'accuracy')}; "
                     f"macro-F1 {_change(scope, 'macro_f1')}")
        lines.append("  " + "; ".join(f"F1 {c} {_change(scope, f'f1/{c}')}" for c in rare))
    return lines


def too_few_note(results: dict[str, Any]) -> str:
    """A paragraph naming the classes whose per-class metrics are point estimates only ('too few
    to test'), per evaluated set; empty when every class had enough cases."""
    parts = []
    for key, label in (("test", "hold-out test"), ("cv", "pooled cross-validation")):
        reasons = sorted(set(_too_few(results[key]).values()))
        if reasons:
            parts.append(f"{label}: {'; '.join(reasons)}")
    if not parts:
        return ""
    minimum = results["bootstrap"].get("min_cases_to_test", "enough")
    return (f"\n\n**Too few to test** ({'; '.join(parts)}): the per-class metrics of these classes are shown as "
            f"point estimates without CI or p-value. Below {minimum} cases even an exact paired test cannot reach "
            f"p < 0.05, and a bootstrap cannot show variation between cases it never sees (docs/experiment.md). "
            f"Macro averages still weigh these classes equally with the others.")


def _fmt(v: list[float], digits: int = 3) -> str:
    if v[0] != v[0]:
        return "n/a"
    return f"{v[0]:.{digits}f}" if v[1] != v[1] else f"{v[0]:.{digits}f} ± {v[1]:.{digits}f}"  # one fold: no SD


def _gain_tables(scope: dict[str, Any], headline: list[str], where: str) -> list[Table]:
    return [Table(gain_table_rows(g, headline, arm=arm, too_few=_too_few(scope)),
                  caption=f"Paired gain: {arm} − baseline ({where})")
            for arm, g in scope["gain_vs_baseline"].items()]


def gan_figures(run_dir: Path, folds: list[int], rare: list[str]) -> list[tuple[Path, str]]:
    """Every fold's final samples beside real images; the first fold's evolution and loss curves."""
    real, generated = fig.FINAL_VS_REAL_PANELS
    out: list[tuple[Path, str]] = []
    for i, fold in enumerate(folds):
        for cls in rare:
            gan = fold_dir(run_dir, fold) / f"gan-{cls}"
            if i == 0:
                grids = sorted((gan / "grids").glob("*.png"))
                picks = sorted({0, len(grids) // 3, 2 * len(grids) // 3, len(grids) - 1}) if grids else []
                out += [(grids[k], f"fold {fold}, {cls}: fixed-noise samples at {grids[k].stem.replace('_', ' ')}")
                        for k in picks]
            if (gan / "final_vs_real.png").is_file():
                out.append((gan / "final_vs_real.png", f"fold {fold}, {cls}: final samples; left: {real}, "
                                                       f"right: {generated}"))
            if i == 0 and (gan / "loss_curves.png").is_file():
                out.append((gan / "loss_curves.png",
                            f"fold {fold}, {cls}: GAN losses and feature distance (stopping rule)"))
    return out


def _classifier_curves(run_dir: Path, arms: list[str], models: list[str], fold: int, figdir: Path) -> Path | None:
    histories: dict[str, dict[str, list[float]]] = {}
    for arm in arms:
        for model in models:
            path = model_dir(run_dir, fold, arm, model) / "history.json"
            if path.is_file():
                hist = json.loads(path.read_text())
                epochs = hist["epochs"] if isinstance(hist, dict) and "epochs" in hist else hist
                histories[f"{arm}/{model}"] = {k: [e[k] for e in epochs if k in e]
                                               for k in ("train_loss", "val_loss", "val_acc")}
    return fig.plot_loss_curves(histories, figdir / "classifier_curves.png",
                                title=f"Classifier training, fold {fold}") if histories else None


def load_features(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a fold's ``features.npz`` (written by the protocol), checked for the keys the t-SNE needs."""
    with np.load(path, allow_pickle=False) as saved:
        missing = [k for k in FEATURE_KEYS if k not in saved]
        if missing:
            raise ValueError(f"{path} lacks {', '.join(missing)}; it needs {', '.join(FEATURE_KEYS)}")
        return {k: saved[k] for k in FEATURE_KEYS}


def tsne_figure(run_dir: Path, folds: list[int], names: list[str], figdir: Path, seed: int) -> tuple[Path, str] | None:
    """t-SNE of the first fold that saved ``features.npz``, with its caption; None when no fold did."""
    for fold in folds:
        path = fold_dir(run_dir, fold) / "features.npz"
        if not path.is_file():
            continue
        f = load_features(path)
        model, arm = str(f["model"]), str(f["arm"])
        out = fig.plot_tsne(f["features"], f["label"], f["synthetic"], names, figdir / "tsne.png", seed=seed,
                            title=f"t-SNE of {model} features (fold {fold}, {arm} arm)")
        n_syn = int(f["synthetic"].sum())
        return out, (f"Fold {fold} (the first fold with saved features): penultimate-layer features of the {arm} "
                     f"arm's {model} for {len(f['label']) - n_syn} real training images (dots) and {n_syn} "
                     f"synthetic images (crosses); colour = class.")
    return None


def _summary_section(cfg: ExperimentConfig, ds: Dataset, results: dict[str, Any], rare: list[str],
                     headline: list[str]) -> Section:
    names = ds.spec.classes
    unit = "patients" if ds.spec.patients_known else "images (no patient ids: each image is its own case)"
    rows = [{"arm": arm, **{m: _ci_cell(results["test"], arm, m) for m in headline}} for arm in cfg.arm_names()]
    return Section(
        "Summary",
        f"Dataset **{ds.spec.name}**: {len(ds.manifest)} images, classes {', '.join(names)}; rare: "
        f"{', '.join(rare)}. Folds run: {results['folds_run']}. Model: **{results['primary_model']}**. Hold-out "
        f"test: {results['n_test']} real images, fold models' probabilities averaged; 95 % CIs by percentile "
        f"bootstrap ({cfg.evaluation.n_resamples} resamples of {unit}). "
        + ("Gains are augmented minus baseline with a *paired* bootstrap CI (same resamples for both arms) and a "
           "two-sided p-value. Synthetic images were used for training only; every evaluated image is real."
           if "augmented" in results["arms"] else "No generator in this run (baseline only); every evaluated "
                                                  "image is real.")
        + too_few_note(results),
        tables=[Table(rows, caption="Hold-out test, point (95 % CI)")]
        + _gain_tables(results["test"], headline, "hold-out test"))


def _confusion_figures(results: dict[str, Any], names: list[str], arms: list[str],
                       figdir: Path) -> list[tuple[Path, str]]:
    figures = []
    for arm in arms:
        path = fig.plot_confusion(np.array(results["test"]["confusion"][arm]), names, figdir / f"confusion_{arm}.png",
                                  title=f"{arm} arm, hold-out test")
        figures.append((path, f"Fig. 7-style confusion matrix, {arm} arm, hold-out test ({results['n_test']} real "
                              f"images, fold models' probabilities averaged); rows: true class, row-normalised"))
    return figures


def _comparison_section(ds: Dataset, results: dict[str, Any], test: Pooled, headline: list[str],
                        figdir: Path) -> Section:
    names, primary, ci = ds.spec.classes, results["primary_model"], results["test"]["ci"]
    if "augmented" not in results["arms"]:
        return Section("Baseline (no generator in this run)", "",
                       figures=_confusion_figures(results, names, ["baseline"], figdir))
    bars = fig.plot_metric_bars({m: ci["baseline"][m][0] for m in headline},
                                {m: ci["augmented"][m][0] for m in headline}, headline, figdir / "bars.png",
                                cis={arm: {m: ci[arm][m][1:3] for m in headline} for arm in ("baseline", "augmented")},
                                title=f"Hold-out test, {primary}")
    roc = fig.plot_roc_curves(test.y, test.probs["augmented"][primary], names, figdir / "roc.png",
                              y_prob_baseline=test.probs["baseline"][primary],
                              title="ROC, hold-out test (solid: augmented, dashed: baseline)")
    figures = [(bars, "Fig. 5-style bars: hold-out test, point estimate with 95 % CI"),
               (roc, "ROC curves per class, hold-out test (Fig. 6)")]
    figures += _confusion_figures(results, names, ["baseline", "augmented"], figdir)
    return Section("Baseline vs augmented", "", figures=figures)


def _calibration_cells(c: dict[str, Any]) -> dict[str, str]:
    """One calibration record as table cells: a fit on a validation set without some class says
    which classes it used; a skipped fit says why (issue 20)."""
    skipped = c.get("skipped", {}).get("temperature")
    absent = c.get("absent_from_validation")
    note = (f"skipped: {skipped}" if skipped else
            f"fitted on {', '.join(c['fitted_on_classes'])} (no {', '.join(absent)} in validation)" if absent else "")
    return {"temperature": "—" if skipped else f"{c['temperature']:.2f}", "ECE before": f"{c['ece_test']:.3f}",
            "ECE after": "—" if skipped else f"{c['ece_test_calibrated']:.3f}", "note": note}


def calibration_section(results: dict[str, Any], test: Pooled, figdir: Path) -> Section | None:
    """Reliability of the primary model's hold-out probabilities per arm (before calibration),
    and each fold's fitted temperature with the hold-out ECE before / after it."""
    per_fold = results.get("calibration") or {}
    if not per_fold:
        return None
    primary = results["primary_model"]
    curves = {arm: reliability_curve(test.y, by_model[primary]) for arm, by_model in test.probs.items()}
    path = fig.plot_reliability(curves, figdir / "reliability.png", title=f"Reliability, hold-out test, {primary}")
    rows = [{"fold": fold, "arm": arm, "model": model, **_calibration_cells(c)}
            for fold, by_arm in per_fold.items() for arm, by_model in by_arm.items() for model, c in by_model.items()]
    return Section(
        "Calibration", "Each model's temperature is fitted on its fold's validation predictions (temperature "
        "scaling) and stored with it; the Predictor applies it. ECE (15 bins, top label) is measured on the "
        "hold-out test, which the fit never saw. Every other number in this report uses the raw probabilities.",
        tables=[rows], figures=[(path, "reliability of the fold-averaged hold-out probabilities, before "
                                       "calibration; dashed: perfect calibration")])


def _cv_section(cfg: ExperimentConfig, results: dict[str, Any], headline: list[str]) -> Section:
    rows = [{"arm": arm, "model": m, **{f"val {k}": _fmt(block["val_mean_sd"][k]) for k in headline}}
            for arm in cfg.arm_names() for m, block in results["per_fold"][arm].items()]
    cv_ci = results["cv"]["ci"]
    return Section(
        "Cross-validation (mean ± SD across folds, validation partitions)",
        f"Pooled out-of-fold ({results['n_cv']} images), {results['primary_model']}: "
        + "; ".join(f"{arm} macro-F1 {format_ci(*cv_ci[arm]['macro_f1'][:3])}" for arm in cfg.arm_names()),
        tables=[rows] + _gain_tables(results["cv"], headline, "pooled out-of-fold"))


def sweep_points(cfg: ExperimentConfig) -> dict[str, list[tuple[int, str]]]:
    """(images added per rare class, arm name) of each configured sweep, baseline (0) first:
    'synthetic' holds the count-mode synthetic arms, 'classic copies' the re-drawn real copies."""
    arms = cfg.arms()
    sweeps = {"synthetic": (cfg.synthetic.sweep, [(a.n_synthetic, a.name) for a in arms
                                                  if a.kind == "synthetic" and a.mix_mode == "count"]),
              "classic copies": (cfg.classic_sweep, [(a.n_classic, a.name) for a in arms if a.kind == "oversample"])}
    return {label: [(0, "baseline")] + sorted(points)
            for label, (listed, points) in sweeps.items() if listed and points}


def _sweep_section(cfg: ExperimentConfig, results: dict[str, Any], rare: list[str], figdir: Path) -> Section | None:
    primary = results["primary_model"]
    metrics = ["macro_f1"] + [f"f1/{c}" for c in rare]
    figures = []
    for label, pairs in sweep_points(cfg).items():
        per_arm = [results["per_fold"][a][primary]["test_mean_sd"] for _, a in pairs]
        ys = {m: ([s[m][0] for s in per_arm], [s[m][1] for s in per_arm]) for m in metrics}
        path = fig.plot_sweep([n for n, _ in pairs], ys, figdir / f"sweep_{label.split()[0]}.png",
                              xlabel=f"{label} images added per rare class", title=f"Hold-out test vs {label} images")
        figures.append((path, f"{label} sweep (Frid-Adar Fig. 8)"))
    if not figures:
        return None
    return Section("Augmentation-size sweeps (Frid-Adar Fig. 8)",
                   "Hold-out test, mean ± SD across folds; x = images added per rare class (0 = baseline). "
                   "'classic copies' are real rare-class images re-drawn with the classic augmentation.",
                   figures=figures)


def _reproducibility_section(cfg: ExperimentConfig, ds: Dataset, run_dir: Path) -> Section:
    info = json.loads((run_dir / "run.json").read_text())
    known = ds.spec.patients_known
    return Section(
        "Reproducibility",
        f"Command: `{info.get('command')}`\n\nGit commit: `{info.get('git_commit')}`; seed {cfg.seed}; "
        f"started {info.get('started')}.\n\nData: {len(ds.manifest)} images, "
        f"{ds.manifest['patient_id'].nunique()} {'patients' if known else 'cases (patients unknown)'}."
        + ("" if known else " **Patients are unknown: splits and bootstrap are per image, which is optimistic "
                            "if one patient contributes several images.**"),
        tables=[[{"package": k, "version": v} for k, v in info.get("versions", {}).items()],
                [{"class": c, "images": int((ds.manifest["label"] == c).sum())} for c in ds.spec.classes]])


def config_section(cfg: ExperimentConfig) -> Section:
    """The full configuration as YAML in a fenced (``<pre>``) block, one key per line. Paths show
    their last part only: a report is shared, the folders of the machine that made it are not."""
    shown = cfg.model_copy(update={k: Path(v).name for k in ("dataset", "splits") if (v := getattr(cfg, k))})
    return Section("Configuration", "The configuration of this run (`config.yaml` in the run folder has the "
                   "full paths):\n\n```yaml\n" + to_yaml(shown).rstrip("\n") + "\n```")


def write_report(cfg: ExperimentConfig, ds: Dataset, run: RunDir, results: dict[str, Any], records: list[dict],
                 rare: list[str], test: Pooled) -> Path:
    """Write figures, ``report.html`` and ``summary.md`` into the run folder; ``test`` holds the
    hold-out predictions (from :func:`sonogan.experiment.results.pool_predictions`) for ROC curves."""
    run_dir = run.path
    figdir = run_dir / "figures"
    figdir.mkdir(exist_ok=True)
    headline = headline_metrics(rare)
    folds = [r["fold"] for r in records]
    sections = [_summary_section(cfg, ds, results, rare, headline)]
    sections += [Section(f"Table 1 — {arm} (hold-out test)", "",
                         tables=[metrics_table_rows(results["test"]["ci"][arm], ds.spec.classes,
                                                    too_few=_too_few(results["test"]))])
                 for arm in cfg.arm_names()]
    sections += [_comparison_section(ds, results, test, headline, figdir), _cv_section(cfg, results, headline)]
    calibration = calibration_section(results, test, figdir)
    sections += [calibration] if calibration else []
    sweep = _sweep_section(cfg, results, rare, figdir)
    sections += [sweep] if sweep else []
    curves = _classifier_curves(run_dir, results["arms"], [c.model for c in cfg.classifiers], folds[0], figdir)
    sections.append(Section(
        "Synthetic images and training curves",
        f"Final synthetic images beside real training images for every fold; for fold {folds[0]} also the "
        f"evolution of fixed-noise samples over GAN training (Fig. 4) and the loss curves (other folds' are in "
        f"`folds/fold<K>/gan-<class>/`).",
        figures=gan_figures(run_dir, folds, rare)
        + ([(curves, f"classifier loss/accuracy per epoch, fold {folds[0]}")] if curves else [])))
    tsne = tsne_figure(run_dir, folds, ds.spec.classes, figdir, cfg.seed) if cfg.evaluation.tsne else None
    if tsne is not None:
        sections.append(Section("t-SNE of real vs synthetic (Frid-Adar Fig. 9)", "", figures=[tsne]))
    audits = [(f"fold {r['fold']}, {cls}", run_dir / info["audit"]["folder"]) for r in records
              for cls, info in r.get("synthetic", {}).items() if "audit" in info]
    if audits:  # every fold's numbers; the first fold's figures (the rest are in folds/<K>/audit/)
        first = sum(1 for cls, info in records[0].get("synthetic", {}).items() if "audit" in info)
        sections.append(audit_section(audits, gate=cfg.audit.gate, figures_of=first))
    reader = run_reader_study_section(run_dir)  # <run>/reader_study.json from 'sonogan study export'
    sections += [reader] if reader else []
    sections += [_reproducibility_section(cfg, ds, run_dir), config_section(cfg)]
    title = f"sonogan experiment: {cfg.name}"
    render_markdown_summary(sections, run_dir / "summary.md", title=title)
    return render_report(sections, run_dir / "report.html", title=title)
