"""Annotation removal on MMOTU: train the remover + detector on clean-ish fold-0 training images
(pairs made on the fly), score held-out synthetic pairs on the fold-0 validation images (PSNR /
SSIM overall and inside the annotated region, before vs after; detector accuracy), and draw
before/after figures: held-out synthetic pairs and REAL MMOTU validation images, which carry
real burned-in callipers and labels (docs/img/annotation-removal-*.png).

The run is configs/annotations/remover-mmotu.yaml, sized for a shared 2-core CPU (128 px, 1 torch
thread, ~20 min). Writes benchmarks/results/annotation_removal.json; ``README_BLOCKS`` renders it.

Example:
    python benchmarks/annotation_removal.py --dataset runs/bench/mmotu
    python benchmarks/annotation_removal.py --config configs/annotations/remover-mmotu-plain.yaml --no-figures
    python benchmarks/annotation_removal.py --reuse runs/bench/annotation-remover-001 --config ...  # record only
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "annotation_removal.json"
IMG = REPO / "docs" / "img"


def _real_figure(ds: Any, ids: list[str], ckpt: Path, path: Path, n: int = 4) -> list[dict[str, Any]]:
    """The ``n`` validation images with the most marker colour (real callipers and labels),
    before and after removal at full resolution, with the detector's probability."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sonogan.annotations.images import marker_fraction
    from sonogan.preprocess.remove_annotations import clean_image, loaded_remover
    from sonogan.preprocess.cache import decode_image

    remover, detector, cfg, _ = loaded_remover(ckpt)
    rows = ds.manifest.set_index("image_id").loc[ids]
    images = {i: decode_image(ds.path(r["image"])) for i, r in rows.iterrows()}
    pick = sorted(images, key=lambda i: -marker_fraction(images[i]))[:n]
    fig, axes = plt.subplots(n, 2, figsize=(9, 3.2 * n))
    shown = []
    for row, image_id in zip(axes, pick):
        out, prob = clean_image(images[image_id], remover, detector, cfg, apply_to="all")
        for ax, img, title in zip(row, (images[image_id], out), (f"{image_id} (detector p={prob:.2f})", "annotations removed")):
            ax.imshow(img)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        shown.append({"image_id": image_id, "detector_p": round(prob, 3)})
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return shown


def _real_flag_rate(ds: Any, ids: list[str], ckpt: Path) -> float:
    """Share of real validation images (which nearly all carry real marks) the detector flags."""
    from sonogan.preprocess.remove_annotations import loaded_remover, to_model_input
    from sonogan.preprocess.cache import decode_image

    _, detector, cfg, _ = loaded_remover(ckpt)
    paths = ds.manifest.set_index("image_id").loc[ids, "image"]
    x = torch.from_numpy(np.stack([to_model_input(decode_image(ds.path(p)), cfg.channels, cfg.size) for p in paths]))
    with torch.no_grad():
        return float((torch.softmax(detector(x), dim=1)[:, 1] >= 0.5).float().mean())


def _synthetic_figure(data: Any, ckpt: Path, path: Path, n: int = 4) -> None:
    """Held-out synthetic pairs: annotated input, remover output, clean target."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from sonogan.annotations.evaluate import held_out_pairs
    from sonogan.models.remover import load_remover

    remover, _, cfg, _ = load_remover(ckpt)
    pairs = held_out_pairs(data, n, cfg.size, cfg.channels, seed=123)
    fig, axes = plt.subplots(n, 3, figsize=(7.5, 2.6 * n))
    for row, pair in zip(axes, pairs):
        x = torch.from_numpy(pair.annotated.transpose(2, 0, 1)[None].astype(np.float32) / 255)
        with torch.no_grad():
            out = (remover(x).clamp(0, 1)[0].numpy().transpose(1, 2, 0) * 255).round().astype(np.uint8)
        for ax, img, title in zip(row, (pair.annotated, out, pair.clean), ("synthetic marks", "removed", "clean")):
            ax.imshow(img.squeeze(), cmap="gray")
            ax.set_title(title, fontsize=9)
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def _rel(path: Path) -> str:
    path = path.resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def _classify(dataset: Path, remover: Path, reference: Path, done: Path | None = None) -> dict[str, Any]:
    """configs/mmotu-baseline-annotation-removed.yaml on fold 0 against the finished fold-0 run of
    configs/mmotu-baseline.yaml (``reference``): the configs must differ only in name and preset;
    accuracy and macro-F1 gains are paired (same images, same bootstrap resamples). ``done``: a
    finished run of that config to score instead of training one."""
    import os

    from sonogan.config import load_config
    from sonogan.evaluate.bootstrap import paired_bootstrap_gain
    from sonogan.evaluate.metrics import classification_metrics
    from sonogan.experiment.config import ExperimentConfig
    from sonogan.experiment.protocol import run_experiment
    from sonogan.runs import next_run_dir

    os.environ["SONOGAN_ANNOTATION_REMOVER"] = str(remover.resolve())
    ref_cfg = load_config(ExperimentConfig, reference / "config.yaml")
    cfg = load_config(ExperimentConfig, REPO / "configs" / "mmotu-baseline-annotation-removed.yaml").model_copy(
        update={"dataset": str(dataset.resolve()), "folds": ref_cfg.folds})
    differ = {k for k, v in cfg.model_dump().items() if ref_cfg.model_dump()[k] != v}
    if differ - {"name", "preset"}:
        raise SystemExit(f"reference run differs in more than the preset: {sorted(differ)}")
    if done is None:
        start = time.perf_counter()
        run = run_experiment(cfg, next_run_dir(REPO / "runs" / "bench", cfg.name), progress=sys.stdout.isatty())
        wall = time.perf_counter() - start
    else:
        run, info = done, json.loads((done / "run.json").read_text())
        if info["status"] != "completed" or load_config(ExperimentConfig, done / "config.yaml") != cfg:
            raise SystemExit(f"{done} is not a finished run of this config")
        wall = (datetime.fromisoformat(info["finished"]) - datetime.fromisoformat(info["started"])).total_seconds()
    classes = json.loads((run / "metrics.json").read_text())["class_names"]
    out: dict[str, Any] = {"run": _rel(run), "reference": _rel(reference), "folds": cfg.folds,
                           "wall_s": round(wall, 1), "remover": _rel(remover)}

    def keep(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
        m = classification_metrics(y, p, classes)
        return {"accuracy": m["accuracy"], "macro_f1": m["macro_f1"]}

    for part in ("val", "test"):
        a = np.load(reference / "folds" / "fold0" / "predictions.npz")
        b = np.load(run / "folds" / "fold0" / "predictions.npz")
        key = f"baseline|{cfg.classifiers[0].model}|{part}"
        assert np.array_equal(a[f"y|{part}"], b[f"y|{part}"]), "the two runs scored different images"
        res = paired_bootstrap_gain(keep, a[f"y|{part}"], a[key], b[key], n_resamples=1000, seed=0)
        out[part] = {"n": int(len(a[f"y|{part}"])), "original": keep(a[f"y|{part}"], a[key]),
                     "annotation_removed": keep(b[f"y|{part}"], b[key]),
                     "gain": {k: list(v) for k, v in res.items()}}
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=str(REPO / "runs" / "bench" / "mmotu"))
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "annotations" / "remover-mmotu.yaml")
    parser.add_argument("--iterations", type=int, help="override the config's iterations")
    parser.add_argument("--reuse", type=Path, help="a finished run folder (of --config): record it, no training")
    parser.add_argument("--no-figures", dest="figures", action="store_false", help="JSON entry only")
    parser.add_argument("--classify", type=Path, metavar="REMOVER_RUN",
                        help="instead: the fold-0 classifier on images cleaned by this run's remover vs the original")
    parser.add_argument("--classify-run", type=Path, help="with --classify: a finished run to score (no training)")
    parser.add_argument("--reference", type=Path, default=REPO / "runs" / "bench" / "mmotu-baseline-lite0-roi-160-001",
                        help="finished fold-0 run of configs/mmotu-baseline.yaml (benchmarks/mmotu_baseline.py)")
    args = parser.parse_args()
    if args.classify is not None:
        torch.set_num_threads(1)
        results = json.loads(RESULTS.read_text())
        results["classification"] = _classify(Path(args.dataset), args.classify / "remover.pt", args.reference,
                                              args.classify_run)
        RESULTS.write_text(json.dumps(results, indent=2) + "\n")
        print(json.dumps(results["classification"], indent=1))
        return 0
    from sonogan.annotations.images import load_clean_images
    from sonogan.annotations.train import RemoverTrainConfig, train_remover
    from sonogan.config import load_config
    from sonogan.data.manifest import load_dataset
    from sonogan.data.splits import Splits
    from sonogan.runs import next_run_dir

    start = time.perf_counter()
    if args.reuse is None:
        cfg = load_config(RemoverTrainConfig, args.config, {"iterations": args.iterations})
        run = next_run_dir(REPO / "runs" / "bench", "annotation-remover")
        train_remover(args.dataset, run, cfg, progress=True)
        wall = time.perf_counter() - start
    else:
        run = args.reuse
    metrics = json.loads((run / "metrics.json").read_text())
    cfg = load_config(RemoverTrainConfig, run / "config.yaml")   # what the run really used
    torch.set_num_threads(cfg.num_threads)
    if args.reuse is not None:
        wall = metrics["train_seconds"]  # the recorded run's own time (figures are not counted)
    entry = {"config_file": str(args.config.relative_to(REPO)) if args.config.is_relative_to(REPO) else str(args.config),
             "dataset": "MMOTU OTU_2d train split (runs/bench/mmotu)", "fold": cfg.fold, "size": cfg.remover.size,
             "gated": cfg.remover.gated, "iterations": cfg.iterations, "threads": cfg.num_threads,
             "config": cfg.model_dump(mode="json"),
             "run": str(run.relative_to(REPO)) if run.is_relative_to(REPO) else str(run),
             "wall_s": round(wall, 1), "metrics": metrics}
    ckpt = run / "remover.pt"
    ds = load_dataset(args.dataset)
    val = Splits.load(ds.root / "splits.json", ds).partition(cfg.fold, "val")
    entry["real_val_flagged"] = _real_flag_rate(ds, val, ckpt)
    if args.figures:
        IMG.mkdir(parents=True, exist_ok=True)
        entry["real_figure"] = _real_figure(ds, val, ckpt, IMG / "annotation-removal-mmotu.png")
        draw = int(round(cfg.remover.size * cfg.draw_scale))
        _synthetic_figure(load_clean_images(ds, val[:8], draw), ckpt, IMG / "annotation-removal-synthetic.png")
        entry["figures"] = ["docs/img/annotation-removal-mmotu.png", "docs/img/annotation-removal-synthetic.png"]
    results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {}
    results = results if "entries" in results else {"entries": {}}
    results["entries"][args.config.stem] = entry
    RESULTS.write_text(json.dumps(results, indent=2) + "\n")
    print(json.dumps({k: metrics[k] for k in ("before", "after", "detector_accuracy")}, indent=1))
    return 0


def render(r: dict[str, Any]) -> str:
    entries = list(r["entries"].values())
    first = entries[0]["metrics"]
    rows = ["| held-out synthetic pairs | PSNR (dB) | SSIM | PSNR inside the marks (dB) | MAE inside the marks | "
            "detector accuracy | real val images flagged | wall |", "|---|---|---|---|---|---|---|---|"]
    b = first["before"]
    rows.append(f"| annotated input (before) | {b['psnr']:.2f} | {b['ssim']:.3f} | {b['region_psnr']:.2f} | "
                f"{b['region_mae']:.3f} | | | |")
    for e in entries:
        a = e["metrics"]["after"]
        what = "gated U-Net (keeps unmarked pixels)" if e["gated"] else "plain U-Net (the thesis's)"
        rows.append(f"| {what}, `{e['config_file']}` | {a['psnr']:.2f} | {a['ssim']:.3f} | {a['region_psnr']:.2f} | "
                    f"{a['region_mae']:.3f} | {e['metrics']['detector_accuracy']:.3f} | "
                    f"{100 * e['real_val_flagged']:.0f} % | {e['wall_s'] / 60:.0f} min |")
    e = entries[-1]
    return (f"Removers trained on the {first['n_train_images']} clean-ish fold-0 training images of MMOTU "
            f"({e['size']} px, {e['iterations']} iterations of 8 pairs, alpha 300 / beta 1, {e['threads']} torch "
            f"thread on a shared 2-core machine; wall includes evaluation), scored on the same {first['n_pairs']} "
            f"synthetic pairs made on the {first['n_val_images']} fold-0 validation images (never trained on; marks "
            f"cover {100 * first['annotated_fraction']:.1f} % of the pixels), at 128 px. Detector accuracy: "
            "annotated vs clean version of each held-out image, threshold 0.5; 'real val images flagged': share "
            "of the real validation images (nearly all with real marks) it flags.\n\n" + "\n".join(rows)
            + "\n\n![before/after on real MMOTU images](docs/img/annotation-removal-mmotu.png)"
            + (_classification_block(r["classification"]) if "classification" in r else ""))


def _gain(v: list[float]) -> str:
    p = "< 0.001" if v[3] < 0.001 else f"{v[3]:.3f}"
    return f"{v[0]:+.3f} ({v[1]:+.3f} to {v[2]:+.3f}), p {p}"


def _classification_block(c: dict[str, Any]) -> str:
    rows = ["| fold-0 images | n | accuracy original | accuracy annotation-removed | gain (95 % CI) | "
            "macro-F1 original | macro-F1 annotation-removed | gain (95 % CI) |", "|" + "---|" * 8]
    for part, label in (("val", "validation"), ("test", "hold-out test")):
        v = c[part]
        rows.append(f"| {label} | {v['n']} | {v['original']['accuracy']:.3f} | {v['annotation_removed']['accuracy']:.3f} | "
                    f"{_gain(v['gain']['accuracy'])} | {v['original']['macro_f1']:.3f} | "
                    f"{v['annotation_removed']['macro_f1']:.3f} | {_gain(v['gain']['macro_f1'])} |")
    return ("\n\nOriginal vs annotation-removed, fold 0: `configs/mmotu-baseline.yaml` (run "
            f"`{c['reference']}`) against `configs/mmotu-baseline-annotation-removed.yaml` (run `{c['run']}`, "
            f"{c['wall_s'] / 60:.0f} min), identical but for the preset; paired bootstrap (1000 resamples) on the same "
            "images.\n\n" + "\n".join(rows))

README_BLOCKS = {"annotation-removal": ("annotation_removal.json", render)}

if __name__ == "__main__":
    sys.exit(main())
