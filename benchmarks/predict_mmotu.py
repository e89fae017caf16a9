"""MMOTU decision support: external-style validation of trained runs and Grad-CAM on held-out images.

1. The hold-out test rows of the saved MMOTU splits (150 images no fold model trained or was
   selected on) become a dataset of their own, ``runs/agent-decision/mmotu-holdout``, through
   the csv importer with ``--link`` (the original dataset is only read).
2. ``sonogan evaluate``'s API on it: the default real-data model (configs/mmotu-baseline.yaml,
   the 5 fold models of EfficientNet-Lite0 ROI 160 averaged), and the GAN run's fold-0
   baseline vs augmented arms (paired gains). Each evaluation is a run folder under
   ``runs/agent-decision/``; the numbers go to ``benchmarks/results/mmotu_external.json``.
3. Grad-CAM of the default model on a few hold-out images, one per class, drawn into
   ``docs/img/predict-mmotu-gradcam.png``.

This is not an external validation in the clinical sense (same hospital, same scanners): it
shows the path works on real data; the duplicate check against the development images runs
for real.

Example:
    $ .venv/bin/python benchmarks/predict_mmotu.py
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from sonogan.data.importers import ImportOptions, import_dataset
from sonogan.data.manifest import load_dataset
from sonogan.data.splits import Splits
from sonogan.infer.explain import gradcam, overlay_heatmap
from sonogan.infer.external import evaluate_external
from sonogan.infer.external_report import write_external_report
from sonogan.infer.resolve import load_model
from sonogan.preprocess.cache import decode_image
from sonogan.report.figures import new_figure, save_figure
from sonogan.runs import RunDir, next_run_dir, write_json

ROOT = Path(__file__).resolve().parents[1]
MMOTU = ROOT / "runs" / "bench" / "mmotu"
DEFAULT_RUN = ROOT / "runs" / "bench" / "mmotu-baseline-lite0-roi-160-002"
GAN_RUN = ROOT / "runs" / "bench" / "mmotu-strong-001"
OUT = ROOT / "runs" / "agent-decision"
RESULT = ROOT / "benchmarks" / "results" / "mmotu_external.json"
FIGURE = ROOT / "docs" / "img" / "predict-mmotu-gradcam.png"
HEADLINE = ("accuracy", "balanced_accuracy", "macro_f1", "macro_auc", "ece", "f1/high_grade_serous",
            "f1/simple_cyst")


def holdout_dataset(out: Path) -> Path:
    """The hold-out test rows as their own dataset (symlinks; made once)."""
    if (out / "manifest.csv").is_file():
        return out
    ds = load_dataset(MMOTU)
    test = set(Splits.load(MMOTU / "splits.json", ds).test)
    rows = ds.manifest[ds.manifest["image_id"].isin(test)]
    table = pd.DataFrame({"image_id": rows["image_id"], "label": rows["label"], "patient_id": rows["patient_id"],
                          "image": [str((MMOTU / r).resolve()) for r in rows["image"]],
                          "mask": [str((MMOTU / r).resolve()) for r in rows["mask"]]})
    csv = out.parent / f"{out.name}.csv"
    csv.parent.mkdir(parents=True, exist_ok=True)
    table.to_csv(csv, index=False)
    import_dataset(csv, "csv", out, ImportOptions(link=True, spec=MMOTU / "dataset.yaml", name="mmotu-holdout"))
    return out


def evaluate(models: list[tuple[str, Any]], dataset: Path, prefix: str, resamples: int) -> tuple[dict, Path]:
    """One evaluation run folder; returns its results.json content and the folder."""
    out = next_run_dir(OUT, prefix)
    with RunDir.create(out, seed=0, kind="evaluate") as run:
        result = evaluate_external(models, dataset, n_resamples=resamples, keep_hashes_in=run.path / "hashes",
                                   progress=True)
        write_external_report(result, run.path)
    return result.to_json(), out


def summarise(res: dict, out: Path, wall: float) -> dict[str, Any]:
    keep = {name: {scope: {m: v[m] for m in HEADLINE} for scope, v in by.items()} for name, by in res["metrics"].items()}
    gains = {name: {scope: {m: v[m] for m in HEADLINE} for scope, v in by.items()}
             for name, by in res["gain_vs_first"].items()}
    return {"folder": str(out.relative_to(ROOT)), "models": res["models"], "n_images": res["n_images"],
            "class_counts": res["class_counts"], "bootstrap": res["bootstrap"],
            "duplicate_check": res["duplicate_check"], "n_duplicates": len(res["duplicate_ids"]),
            "metrics": keep, "gain_vs_first": gains, "wall_s": round(wall, 1)}


def gradcam_figure(run: Path, dataset: Path, path: Path) -> list[dict[str, Any]]:
    """One hold-out image per class: the model's input, its Grad-CAM, predicted vs true class."""
    loaded = load_model(run)
    ds = load_dataset(dataset)
    picks = ds.manifest.sort_values("image_id").groupby("label", sort=False).head(1)
    order = {c: k for k, c in enumerate(loaded.class_names)}
    picks = picks.sort_values("label", key=lambda s: s.map(order))
    fig = new_figure(2.0 * len(picks), 4.4)
    axes = fig.subplots(2, len(picks))
    shown = []
    for col, row in enumerate(picks.itertuples()):
        image = decode_image(ds.path(row.image))
        mask = decode_image(ds.path(row.mask), grey=True)
        pixels = loaded.predictor.prepare(image, mask)
        probs = loaded.predictor.predict_pixels(pixels[None])[0]
        k = int(probs.argmax())
        heat = gradcam(loaded.predictor, pixels, k)
        axes[0, col].imshow(pixels)
        axes[0, col].set_title(f"true: {row.label}", fontsize=7)
        axes[1, col].imshow(overlay_heatmap(pixels, heat))
        axes[1, col].set_title(f"pred: {loaded.class_names[k]} ({probs[k]:.2f})", fontsize=7,
                               color="green" if loaded.class_names[k] == row.label else "red")
        for ax in axes[:, col]:
            ax.axis("off")
        shown.append({"image_id": row.image_id, "label": row.label, "predicted": loaded.class_names[k],
                      "probability": round(float(probs[k]), 3)})
    fig.suptitle("MMOTU hold-out: lesion ROI (top) and Grad-CAM of the predicted class (bottom), "
                 "5-fold EfficientNet-Lite0 average", fontsize=8)
    save_figure(fig, path)
    return shown


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--resamples", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    dataset = holdout_dataset(OUT / "mmotu-holdout")
    results: dict[str, Any] = {"dataset": "MMOTU hold-out test rows of the saved splits (never trained on)",
                               "threads": args.threads}
    t = time.perf_counter()
    res, out = evaluate([("lite0-roi-160 5 folds", load_model(DEFAULT_RUN))], dataset, "mmotu-external", args.resamples)
    results["default_model"] = summarise(res, out, time.perf_counter() - t)
    t = time.perf_counter()
    arms = [(a, load_model(GAN_RUN, arm=a)) for a in ("baseline", "augmented")]
    res, out = evaluate(arms, dataset, "mmotu-external-gan", args.resamples)
    results["gan_fold0"] = summarise(res, out, time.perf_counter() - t)
    results["gradcam"] = gradcam_figure(DEFAULT_RUN, dataset, FIGURE)
    results["wall_s"] = round(time.perf_counter() - start, 1)
    write_json(RESULT, results)
    print(json.dumps({k: results[k] for k in ("wall_s",)}), RESULT)


def _cell(v: list[float | None]) -> str:
    return "n/a" if v[0] is None else f"{v[0]:.3f} ({v[1]:.3f} to {v[2]:.3f})"


def _gain(v: list[float | None]) -> str:
    if v[0] is None:
        return "n/a"
    p = "< 0.001" if v[3] < 0.001 else f"{v[3]:.3f}"
    return f"{v[0]:+.3f} ({v[1]:+.3f} to {v[2]:+.3f}), p {p}"


def external_block(r: dict[str, Any]) -> str:
    """README table: the default model and the GAN run's arms on the hold-out rows."""
    d, g = r["default_model"], r["gan_fold0"]
    rows = ["| model | " + " | ".join(HEADLINE) + " |", "|" + "---|" * (len(HEADLINE) + 1)]
    for block in (d, g):
        for name, by in block["metrics"].items():
            rows.append(f"| {name} | " + " | ".join(_cell(by["all"][m]) for m in HEADLINE) + " |")
    for name, by in g["gain_vs_first"].items():
        rows.append(f"| gain {name} − baseline (paired) | " + " | ".join(_gain(by["all"][m]) for m in HEADLINE) + " |")
    dup = (f"{d['n_duplicates']} of the {d['n_images']} images duplicate a development image"
           if d["duplicate_check"] == "done" else f"duplicate check {d['duplicate_check']}")
    return (f"`sonogan evaluate` on the {d['n_images']} MMOTU hold-out images as a separate dataset "
            f"({dup}); 95 % bootstrap CIs over {d['bootstrap']['n_resamples']} image resamples (MMOTU has no "
            f"patient ids). {r['wall_s'] / 60:.1f} min wall, {r['threads']} torch thread. Same hospital as "
            f"training: this checks the path, it is not a clinical external validation.\n\n" + "\n".join(rows))


README_BLOCKS = {"mmotu-external": ("mmotu_external.json", external_block)}

if __name__ == "__main__":
    main()
