"""The lesion-aware models on MMOTU (and the phantom demo): IoU and accuracy tables, paired gains.

Runs a ``sonogan lesion`` config (default configs/lesion/mmotu.yaml: EfficientNet-Lite0 U-Net,
96 px, 6 epochs, sized for one CPU thread) on the chosen folds of the saved MMOTU splits and
records the cross-validated numbers (each fold's validation images, pooled), the hold-out test
mean over folds, the paired gains, wall time and thread count in benchmarks/results/<result>.json.
``README_BLOCKS`` renders them. A finished or interrupted run folder is resumed, not redone.

Example:
    python benchmarks/mmotu_lesion.py --folds 0                       # MMOTU fold 0, ~40 min on 1 thread
    python benchmarks/mmotu_lesion.py --config configs/lesion/demo.yaml --result lesion_demo.json
    python benchmarks/mmotu_lesion.py --merge runs/bench/lesion-mmotu,runs/bench/lesion-mmotu-fold1
"""

from __future__ import annotations

import argparse
import json
import platform
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def run_seconds(run_dir: Path) -> float:
    """Wall time of a finished run from its run.json (started -> finished; a resumed run counts
    from its first start, so its idle gap is included: said so in the README)."""
    info = json.loads((run_dir / "run.json").read_text())
    start, end = (datetime.fromisoformat(info[k]) for k in ("started", "finished"))
    return (end - start).total_seconds()


def record(config: Path, run_dirs: list[Path], threads: int) -> dict[str, Any]:
    """The results JSON of one run, or of several runs of the same config pooled by fold."""
    from sonogan.config import load_config
    from sonogan.lesion.config import LesionExperimentConfig
    from sonogan.lesion.protocol import summarise_runs
    from sonogan.runs import git_commit

    cfg = load_config(LesionExperimentConfig, run_dirs[0] / "config.yaml")
    results = (json.loads((run_dirs[0] / "metrics.json").read_text()) if len(run_dirs) == 1
               else summarise_runs(run_dirs))
    return {"config": str(config.relative_to(REPO)), "runs": [str(d.relative_to(REPO)) if d.is_relative_to(REPO) else str(d) for d in run_dirs], "git_commit": git_commit(),
            "date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "threads": threads,
            "host": platform.platform(), "wall_seconds": round(sum(run_seconds(d) for d in run_dirs), 1),
            "image_size": cfg.train.image_size, "epochs": cfg.train.epochs, "backbone": cfg.model.backbone,
            "results": results}


def run(config: Path, dataset: Path | None, folds: list[int] | None, out: Path, threads: int) -> None:
    """Run (or resume) the config in ``out``."""
    import torch

    from sonogan.config import load_config
    from sonogan.lesion.config import LesionExperimentConfig
    from sonogan.lesion.protocol import run_lesion

    torch.set_num_threads(threads)
    overrides: dict[str, Any] = {"num_threads": threads}
    if dataset is not None:
        overrides["dataset"] = str(dataset.resolve())
    if folds is not None:
        overrides["folds"] = folds
    cfg = load_config(LesionExperimentConfig, config, overrides)
    resume = (out / "run.json").is_file()
    run_lesion(None if resume else cfg, out, resume=resume, progress=False)


def _ci(m: dict[str, Any], scale: float = 1.0, digits: int = 3) -> str:
    if m.get("point") is None:
        return "n/a"
    return f"{m['point'] * scale:.{digits}f} [{m['low'] * scale:.{digits}f}, {m['high'] * scale:.{digits}f}]"


def render(data: dict[str, Any]) -> str:
    """Markdown tables: segmentation IoU / Dice, classification accuracy, paired gains."""
    r = data["results"]
    head = (f"`{data['config']}` — {data['backbone']}, {data['image_size']} px, {data['epochs']} epochs, folds "
            f"{r['folds']} ({r['n_cv']} validation images pooled; hold-out test: mean over folds), "
            f"{data['threads']} torch thread(s) per run, wall time {data['wall_seconds'] / 60:.0f} min "
            f"({len(data['runs'])} run(s)).")
    seg = ["| segmentation view | mean IoU [95% CI] | mean Dice | pooled IoU | test mean IoU |", "|---|---|---|---|---|"]
    for name, v in r["segmentation"].items():
        cv = v["cv"]
        seg.append(f"| {name} | {_ci(cv['mean_iou'])} | {cv['mean_dice']['point']:.3f} | "
                   f"{cv['pooled_iou']['point']:.3f} | {v['test_mean']['mean_iou']:.3f} |")
    cls = ["| classification view | accuracy [95% CI] | balanced acc. | macro-F1 | test accuracy |",
           "|---|---|---|---|---|"]
    for name, v in r["classification"].items():
        cv = v["cv"]
        cls.append(f"| {name} | {_ci(cv['accuracy'])} | {cv['balanced_accuracy']['point']:.3f} | "
                   f"{cv['macro_f1']['point']:.3f} | {v['test_mean']['accuracy']:.3f} |")
    gains = ["| comparison (B vs A) | what B adds | gain [95% CI] | p |", "|---|---|---|---|"]
    for name, g in r["gains"].items():
        keys = ("mean_iou",) if g["what"] == "segmentation" else ("accuracy", "balanced_accuracy")
        for key in keys:
            p = g[key].get("p_value")
            gains.append(f"| {name} | {g['what']} | {key.replace('_', ' ')} {_ci(g[key], digits=3)} | "
                         f"{'n/a' if p is None else f'{p:.3f}'} |")
    fallback = "".join(f" Cascade `{a}`: {n} val/test images had an empty predicted mask (whole scan classified)."
                       for a, n in r.get("cascade_fallback", {}).items() if n)
    return "\n".join([head + fallback, "", *seg, "", *cls, "", *gains])


README_BLOCKS = {"mmotu-lesion": ("mmotu_lesion.json", render), "lesion-demo": ("lesion_demo.json", render)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", type=Path, default=REPO / "configs" / "lesion" / "mmotu.yaml")
    ap.add_argument("--dataset", type=Path, default=None,
                    help="dataset folder (default: the config's; MMOTU benchmarks use runs/bench/mmotu)")
    ap.add_argument("--folds", default=None, help="comma-separated folds (default: the config's)")
    ap.add_argument("--out", type=Path, default=None, help="run folder (default runs/bench/<config name>)")
    ap.add_argument("--result", default="mmotu_lesion.json", help="file name under benchmarks/results/")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--merge", default=None, help="comma-separated finished run folders of this config (different "
                    "folds) to pool into one result instead of running")
    args = ap.parse_args()
    config = args.config.resolve()
    folds = [int(f) for f in args.folds.split(",")] if args.folds else None
    if args.merge:
        run_dirs = [Path(d).resolve() for d in args.merge.split(",")]
    else:
        run_dirs = [(args.out or REPO / "runs" / "bench" / f"lesion-{config.stem}").resolve()]
        run(config, args.dataset, folds, run_dirs[0], args.threads)
    data = record(config, run_dirs, args.threads)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / args.result).write_text(json.dumps(data, indent=1) + "\n")
    print(render(data))


if __name__ == "__main__":
    main()
