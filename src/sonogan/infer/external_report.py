"""Write an external validation into a folder: results.json, predictions.csv, report.html and report.md.

Drawing only (:mod:`sonogan.report`): the numbers come from
:func:`~sonogan.infer.external.evaluate_external`.

Example:
    >>> write_external_report(result, Path("runs/external-eval"))        # doctest: +SKIP
    PosixPath('runs/external-eval/report.html')
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sonogan.csvsafe import safe_csv_text
from sonogan.evaluate.calibration import reliability_curve
from sonogan.evaluate.metrics import confusion_matrix, predictions
from sonogan.infer.external import ExternalResult, predictions_table
from sonogan.report.figures import plot_confusion, plot_reliability, plot_roc_curves
from sonogan.report.html import Section, format_ci, gain_table_rows, metrics_table_rows, render_report
from sonogan.report.markdown import render_markdown_summary
from sonogan.runs import atomic_write_text, write_json

HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc", "ece")
SCOPES = {"all": "all external images", "no_duplicates": "without images duplicated from training"}


def headline_rows(result: ExternalResult) -> list[dict[str, str]]:
    """One row per (model, scope) with the headline metrics and their CIs."""
    rows = []
    for name, by_scope in result.metrics.items():
        for scope, values in by_scope.items():
            n = len(result.ids) if scope == "all" else len(result.ids) - len(result.duplicate_ids)
            rows.append({"Model": name, "Images": f"{SCOPES[scope]} (n={n})", "Masks": result.masks.get(name, ""),
                         **{m: format_ci(*values[m][:3]) for m in HEADLINE}})
    return rows


def _summary(result: ExternalResult) -> Section:
    counts = ", ".join(f"{c} {int((result.y == k).sum())}" for k, c in enumerate(result.class_names))
    unit = result.bootstrap["unit"]
    models = "\n".join(f"- **{n}**: `{d}`" + (f"; lesion crops from **{result.masks[n]}**" if n in result.masks else "")
                       for n, d in result.descriptions.items())
    fallback = "".join(f"\n- {n}: {k} image(s) " + ("where the segmenter found no lesion"
                                                    if result.masks.get(n) == "predicted masks" else
                                                    "without a lesion mask")
                       + " were cropped to the whole scan area (the lesion-ROI preset's fallback)"
                       for n, k in result.roi_fallback.items() if k)
    text = (f"External dataset **{result.dataset}**: {len(result.ids)} real images ({counts}); "
            f"{result.bootstrap['ci']:.0%} percentile-bootstrap CIs over {result.bootstrap['n_resamples']} "
            f"resamples of {unit}s. Each model used its own preprocessing preset, normaliser, test-time "
            f"augmentation and fitted temperature (1 = none stored).\n\n{models}{fallback}")
    return Section("Summary", text=text, tables=[headline_rows(result)])


def _duplicates(result: ExternalResult) -> Section:
    if result.duplicate_check != "done":
        return Section("Duplicates of training images", text=f"Check {result.duplicate_check}.")
    if not result.duplicates:
        return Section("Duplicates of training images",
                       text="No external image is an exact or near duplicate of a development image.")
    text = (f"**Warning:** {len(result.duplicate_ids)} external image(s) are exact or near duplicates of images "
            "the models were developed on; the tables give every number with and without them.")
    rows = [{"external image": d["b"], "development image": d["a"], "run": d["run"], "kind": d["kind"],
             "phash distance": d["distance"]} for d in result.duplicates]
    return Section("Duplicates of training images", text=text, tables=[rows])


def _per_model(result: ExternalResult, name: str, figdir: Path) -> Section:
    p = result.probs[name]
    cm = confusion_matrix(result.y, predictions(p), len(result.class_names))
    figures = [(plot_confusion(cm, result.class_names, figdir / f"confusion_{name}.png", title=f"{name}"),
                "Confusion matrix, all external images"),
               (plot_roc_curves(result.y, p, result.class_names, figdir / f"roc_{name}.png", title=f"ROC, {name}"),
                "One-vs-rest ROC curves")]
    tables = [metrics_table_rows(values, result.class_names, metrics=("sensitivity", "specificity", "f1", "auc"),
                                 too_few=result.too_few.get(scope, {}))
              for scope, values in result.metrics[name].items() if scope == "all"]
    return Section(f"Per class: {name}", text=too_few_text(result), tables=tables, figures=figures)


def too_few_text(result: ExternalResult) -> str:
    """Which classes are too small to test in this external set, and why no CI is shown (issue 20)."""
    reasons = sorted({reason for reason in result.too_few.get("all", {}).values()})
    if not reasons:
        return ""
    minimum = result.bootstrap.get("min_cases_to_test")
    return (f"Below {minimum} cases a class's metrics are point estimates marked 'too few to test', without a "
            f"CI or p-value (docs/experiment.md): {'; '.join(reasons)}.")


def _gains(result: ExternalResult) -> Section | None:
    if not result.gains:
        return None
    first = next(iter(result.metrics))
    tables = [gain_table_rows(g, HEADLINE, arm=name, reference=first, too_few=result.too_few.get(scope, {}))
              for name, by_scope in result.gains.items() for scope, g in by_scope.items() if scope == "all"]
    text = (f"Paired bootstrap (the same resampled {result.bootstrap['unit']}s for both models) of each model's gain "
            f"over **{first}**, on all external images; `results.json` has the gains without duplicates too.")
    return Section("Paired gains", text=text, tables=tables)


def _calibration(result: ExternalResult, figdir: Path) -> Section:
    curves = {name: reliability_curve(result.y, p, n_bins=10) for name, p in result.probs.items()}
    path = plot_reliability(curves, figdir / "reliability.png", title="Reliability, external images")
    return Section("Calibration", text="Top-label reliability of the calibrated probabilities (10 bins).",
                   figures=[(path, "Reliability diagram")])


def write_external_report(result: ExternalResult, out: Path) -> Path:
    """All outputs into the existing folder ``out``; returns the HTML report's path."""
    out = Path(out)
    figdir = out / "figures"
    write_json(out / "results.json", result.to_json())
    # image ids and file names come from the user's dataset: never a spreadsheet formula
    atomic_write_text(out / "predictions.csv", safe_csv_text(predictions_table(result)))
    sections = [_summary(result), _duplicates(result)]
    sections += [s for s in [_gains(result)] if s is not None]
    sections += [_per_model(result, name, figdir) for name in result.probs]
    sections.append(_calibration(result, figdir))
    title = f"External validation on {result.dataset}"
    render_markdown_summary(sections, out / "report.md", title=title)
    return render_report(sections, out / "report.html", title=title,
                         footer="sonogan evaluate: decision support, not a diagnosis. "
                                f"{int(np.size(result.y))} images.")
