"""The experiment report: ``report.html`` (self-contained), ``summary.md`` and figures.

Sections follow the flagship paper: Table 1 (per-class sensitivity, specificity, F1, AUC
with 95 % CIs), baseline vs augmented bars (Fig. 5), ROC curves (Fig. 6), confusion
matrices (Fig. 7), synthetic grids and their evolution (Fig. 4), loss curves, the
synthetic-count sweep (Frid-Adar Fig. 8), t-SNE of real vs synthetic features (Fig. 9),
and the exact command, config, data summary and software versions.

Example:
    >>> write_report(cfg, ds, run, results, records, ["borderline"], test=pooled_test)   # doctest: +SKIP
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from sonogan.config import to_yaml
from sonogan.data.manifest import Dataset
from sonogan.experiment.config import ExperimentConfig
from sonogan.experiment.results import Pooled
from sonogan.report import figures as fig
from sonogan.report.html import Section, Table, format_ci, gain_table_rows, metrics_table_rows, render_report
from sonogan.report.markdown import render_markdown_summary
from sonogan.runs import RunDir

HEADLINE = ["accuracy", "macro_f1", "macro_auc"]


def headline_metrics(rare: list[str]) -> list[str]:
    return HEADLINE + [f"f1/{c}" for c in rare] + [f"sensitivity/{c}" for c in rare]


def small_class_warning(ds: Dataset, y: np.ndarray, groups: np.ndarray | None, names: list[str],
                        minimum: int = 5) -> str:
    """A sentence for classes with fewer than ``minimum`` test cases (patients when known):
    a bootstrap cannot show between-case variation it never sees, so such CIs are too narrow."""
    small = []
    for k, name in enumerate(names):
        cases = len(set(groups[y == k])) if groups is not None else int((y == k).sum())
        if cases < minimum:
            small.append(f"{name} ({cases})")
    if not small:
        return ""
    unit = "patients" if ds.spec.patients_known else "images"
    return (f"\n\n**Caution:** the hold-out test holds few {unit} of {', '.join(small)}; their CIs and gains are "
            f"unreliable (too narrow). Prefer the pooled cross-validation numbers below.")


def _fmt(v: list[float], digits: int = 3) -> str:
    return "n/a" if v[0] != v[0] else f"{v[0]:.{digits}f} ± {v[1]:.{digits}f}"


def _gan_figures(run_dir: Path, records: list[dict], rare: list[str]) -> list[tuple[Path, str]]:
    out: list[tuple[Path, str]] = []
    first = records[0]["fold"]
    for cls in rare:
        gan = run_dir / "folds" / f"fold{first}" / f"gan-{cls}"
        if not gan.is_dir():
            continue
        grids = sorted((gan / "grids").glob("*.png"))
        picks = [grids[i] for i in sorted({0, len(grids) // 3, 2 * len(grids) // 3, len(grids) - 1})] if grids else []
        for p in picks:
            out.append((p, f"fold {first}, {cls}: fixed-noise samples at {p.stem.replace('_', ' ')}"))
        for name, caption in (("final_vs_real.png", "final synthetic images (left) beside real training images"),
                              ("loss_curves.png", "GAN losses and feature distance (stopping rule)")):
            if (gan / name).is_file():
                out.append((gan / name, f"fold {first}, {cls}: {caption}"))
    return out


def _classifier_curves(run_dir: Path, cfg: ExperimentConfig, fold: int, figdir: Path) -> Path | None:
    histories: dict[str, dict[str, list[float]]] = {}
    for arm in cfg.arms():
        for clf in cfg.classifiers:
            path = run_dir / "folds" / f"fold{fold}" / arm / clf.model / "history.json"
            if path.is_file():
                hist = json.loads(path.read_text())
                epochs = hist["epochs"] if isinstance(hist, dict) and "epochs" in hist else hist
                histories[f"{arm}/{clf.model}"] = {k: [e[k] for e in epochs if k in e]
                                                    for k in ("train_loss", "val_loss", "val_acc")}
    return fig.plot_loss_curves(histories, figdir / "classifier_curves.png",
                                title=f"Classifier training, fold {fold}") if histories else None


def _tsne(cfg: ExperimentConfig, ds: Dataset, run_dir: Path, records: list[dict], rare: list[str], figdir: Path) -> Path | None:
    """Penultimate features of fold-0's augmented classifier for real training and synthetic images."""
    import torch

    from sonogan.data.manifest import load_dataset
    from sonogan.experiment.fold_data import load_fold, load_synthetic, to_model_input
    from sonogan.data.splits import Splits
    from sonogan.models.checkpoint import load_classifier
    from sonogan.models.classifiers import penultimate_features

    fold = records[0]["fold"]
    fold_dir = run_dir / "folds" / f"fold{fold}"
    ckpt = fold_dir / "augmented" / cfg.classifiers[0].model / "best.pt"
    if not ckpt.is_file():
        return None
    model, _ = load_classifier(ckpt)
    splits = Splits.load(Path(cfg.splits) if cfg.splits else ds.root / "splits.json", ds)
    fd = load_fold(ds, splits, fold, cfg.preset)
    rng = np.random.default_rng(cfg.seed)
    real_idx = rng.permutation(len(fd.train_y))[: cfg.evaluation.tsne_max_real]
    syn_x, syn_y = [], []
    for cls in rare:
        x, y = load_synthetic(load_dataset(fold_dir / f"synthetic-{cls}"), cfg.preset, ds.spec.classes, fold)
        keep = rng.permutation(len(y))[: cfg.evaluation.tsne_max_synthetic // max(len(rare), 1)]
        syn_x.append(x[keep])
        syn_y.append(y[keep])
    images = np.concatenate([fd.train_images[real_idx]] + syn_x)
    labels = np.concatenate([fd.train_y[real_idx]] + syn_y)
    is_syn = np.concatenate([np.zeros(len(real_idx), bool)] + [np.ones(len(y), bool) for y in syn_y])
    c = cfg.classifiers[0]
    with torch.no_grad():
        feats = penultimate_features(model.eval(), to_model_input(images, fd.mean, fd.std, c.in_chans, c.image_size))
    return fig.plot_tsne(feats.cpu().numpy(), labels, is_syn, ds.spec.classes, figdir / "tsne.png", seed=cfg.seed,
                         title=f"t-SNE of {c.model} features (fold {fold}, augmented arm)")


def write_report(cfg: ExperimentConfig, ds: Dataset, run: RunDir, results: dict[str, Any], records: list[dict],
                 rare: list[str], test: Pooled) -> Path:
    """Write figures, ``report.html`` and ``summary.md`` into the run folder; ``test`` holds the
    hold-out predictions (from :func:`sonogan.experiment.results.pool_predictions`) for ROC curves."""
    run_dir = run.path
    figdir = run_dir / "figures"
    figdir.mkdir(exist_ok=True)
    names, arms, primary = ds.spec.classes, cfg.arms(), results["primary_model"]
    ci, gain = results["test"]["ci"], results["test"]["gain_vs_baseline"]
    unit = "patients" if ds.spec.patients_known else "images (no patient ids: each image is its own case)"
    sections: list[Section] = []
    headline = headline_metrics(rare)

    summary_rows = []
    for arm in arms:
        row = {"arm": arm}
        for m in headline:
            row[m] = format_ci(*ci[arm][m][:3])
        summary_rows.append(row)
    gain_rows = {arm: Table(gain_table_rows(gain[arm], headline), caption=f"Paired gain: {arm} minus baseline (hold-out test)")
                 for arm in gain}
    warning = small_class_warning(ds, test.y, test.groups, names)
    sections.append(Section(
        "Summary",
        f"Dataset **{ds.spec.name}**: {len(ds.manifest)} images, classes {', '.join(names)}; rare: "
        f"{', '.join(rare)}. Folds run: {results['folds_run']}. Model: **{primary}**. Hold-out test: "
        f"{results['n_test']} real images, fold models' probabilities averaged; 95 % CIs by percentile bootstrap "
        f"({cfg.evaluation.n_resamples} resamples of {unit}). Gains are augmented minus baseline with a *paired* "
        f"bootstrap CI (same resamples for both arms) and a two-sided p-value. Synthetic images were used for "
        f"training only; every evaluated image is real." + warning,
        tables=[Table(summary_rows, caption="Hold-out test, point (95 % CI)")] + list(gain_rows.values())))

    for arm in arms:
        sections.append(Section(f"Table 1 — {arm} (hold-out test)", "",
                                tables=[metrics_table_rows(ci[arm], names)]))

    bars = fig.plot_metric_bars({m: ci["baseline"][m][0] for m in headline},
                                {m: ci["augmented"][m][0] for m in headline}, headline, figdir / "bars.png",
                                cis={"baseline": {m: ci["baseline"][m][1:3] for m in headline},
                                     "augmented": {m: ci["augmented"][m][1:3] for m in headline}})
    roc = fig.plot_roc_curves(test.y, test.probs["augmented"][primary], names, figdir / "roc.png",
                              y_prob_baseline=test.probs["baseline"][primary],
                              title="ROC, hold-out test (solid: augmented, dashed: baseline)")
    cms = [fig.plot_confusion(np.array(results["test"]["confusion"][arm]), names, figdir / f"confusion_{arm}.png",
                              title=f"Confusion matrix, {arm}") for arm in ("baseline", "augmented")]
    sections.append(Section("Baseline vs augmented", "", figures=[(bars, "Fig. 5-style bars with 95 % CIs"),
                                                                   (roc, "ROC curves per class (Fig. 6)")]
                            + [(p, "Fig. 7-style confusion matrix (rows: truth, normalised)") for p in cms]))

    cv_rows = []
    for arm in arms:
        for m, block in results["per_fold"][arm].items():
            cv_rows.append({"arm": arm, "model": m, **{f"val {k}": _fmt(block["val_mean_sd"][k]) for k in headline}})
    cv_ci = results["cv"]["ci"]
    sections.append(Section(
        "Cross-validation (mean ± SD across folds, validation partitions)",
        f"Pooled out-of-fold ({results['n_cv']} images), {primary}: "
        + "; ".join(f"{arm} macro-F1 {format_ci(*cv_ci[arm]['macro_f1'][:3])}" for arm in arms),
        tables=[cv_rows] + [Table(gain_table_rows(results["cv"]["gain_vs_baseline"][a], headline),
                                  caption=f"Paired gain: {a} minus baseline (pooled out-of-fold)")
                            for a in results["cv"]["gain_vs_baseline"]]))

    sweep_figs = []
    metrics_to_plot = ["macro_f1"] + [f"f1/{c}" for c in rare]
    for prefix, top, label in (("synthetic-", "augmented", "synthetic"), ("classic-", "classic", "classic copies")):
        sweep_arms = [a for a in arms if a.startswith(prefix)]
        if not sweep_arms:
            continue
        counts = {"baseline": 0, **{a: int(a.split("-", 1)[1]) for a in sweep_arms}}
        if top == "augmented" and cfg.synthetic.mode == "count":
            counts["augmented"] = cfg.synthetic.n_per_class
        pairs = sorted((n, a) for a, n in counts.items())
        ys = {m: ([results["per_fold"][a][primary]["test_mean_sd"][m][0] for _, a in pairs],
                  [results["per_fold"][a][primary]["test_mean_sd"][m][1] for _, a in pairs]) for m in metrics_to_plot}
        path = fig.plot_sweep([n for n, _ in pairs], ys, figdir / f"sweep_{prefix.rstrip('-')}.png",
                              xlabel=f"{label} images added per rare class",
                              title=f"Hold-out test vs {label} images")
        sweep_figs.append((path, f"{label} sweep (Frid-Adar Fig. 8)"))
    if sweep_figs:
        sections.append(Section("Augmentation-size sweeps (Frid-Adar Fig. 8)",
                                "Hold-out test, mean ± SD across folds; x = images added per rare class "
                                "(0 = baseline). 'classic copies' are real rare-class images re-drawn with the "
                                "classic augmentation.", figures=sweep_figs))

    gan_figs = _gan_figures(run_dir, records, rare)
    curves = _classifier_curves(run_dir, cfg, records[0]["fold"], figdir)
    tsne = _tsne(cfg, ds, run_dir, records, rare, figdir) if cfg.evaluation.tsne else None
    sections.append(Section("Synthetic images and training curves",
                            "Evolution of fixed-noise samples over GAN training (Fig. 4), final samples beside "
                            "real training images, and loss curves.",
                            figures=gan_figs + ([(curves, "classifier loss/accuracy per epoch")] if curves else [])))
    if tsne is not None:
        sections.append(Section("t-SNE of real vs synthetic (Frid-Adar Fig. 9)",
                                "Dots: real training images; crosses: synthetic images.", figures=[(tsne, "")]))

    info = json.loads((run_dir / "run.json").read_text())
    sections.append(Section(
        "Reproducibility",
        f"Command: `{info.get('command')}`\n\nGit commit: `{info.get('git_commit')}`; seed {cfg.seed}; "
        f"started {info.get('started')}.\n\nData: {len(ds.manifest)} images, "
        f"{ds.manifest['patient_id'].nunique()} {'patients' if ds.spec.patients_known else 'cases (patients unknown)'}."
        + (" **Patients are unknown: splits and bootstrap are per image, which is optimistic if one patient "
           "contributes several images.**" if not ds.spec.patients_known else ""),
        tables=[[{"package": k, "version": v} for k, v in info.get("versions", {}).items()],
                [{"class": c, "images": int((ds.manifest["label"] == c).sum())} for c in names]]))
    sections.append(Section("Configuration", "```\n" + to_yaml(cfg) + "```"))
    render_markdown_summary(sections, run_dir / "summary.md", title=f"sonogan experiment: {cfg.name}")
    return render_report(sections, run_dir / "report.html", title=f"sonogan experiment: {cfg.name}")
