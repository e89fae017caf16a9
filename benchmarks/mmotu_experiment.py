"""Rerun the MMOTU experiment table: wall time, peak memory, baseline vs augmented.

Imports ../shared/datasets/mmotu-2d (symlinks, nothing copied), splits it, runs the
experiment config (default configs/mmotu.yaml) and writes
benchmarks/results/<config-name>_experiment.json plus a Markdown table on stdout.

Example:
    python benchmarks/mmotu_experiment.py                       # 5 folds, configs/mmotu.yaml
    python benchmarks/mmotu_experiment.py --folds 0 --config configs/mmotu-malignant.yaml
    python benchmarks/mmotu_experiment.py --config configs/mmotu-strong.yaml --folds 0 \
        --extend runs/bench/mmotu-strong-001     # add the config's new arms to a finished run

``--extend RUN`` copies a finished run whose config differs from this one only by added arms
(checked), keeps every trained piece (generators, samples, classifiers: same config and seeds,
so a fresh run would recompute them byte for byte), trains only the new arms and recomputes
the derived outputs. The recorded wall time is the old run's plus the extension's.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MMOTU = REPO.parent / "shared" / "datasets" / "mmotu-2d"


def peak_rss_mb() -> float:
    """Peak resident memory of this process and its (finished) children, in MB."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return round(max(own, children) / 1024, 1)  # Linux reports KiB


def prepare(cfg_name: str, work: Path) -> Path:
    from sonogan.data.importers import import_dataset
    from sonogan.data.manifest import load_dataset
    from sonogan.data.relabel import relabel_dataset
    from sonogan.data.importers import ImportOptions

    ds_dir = work / "mmotu"
    if not (ds_dir / "manifest.csv").is_file():
        import_dataset(MMOTU, "mmotu", ds_dir, ImportOptions(link=True))
    if cfg_name == "mmotu-malignant":
        bin_dir = work / "mmotu-malignant"
        if not (bin_dir / "manifest.csv").is_file():
            relabel_dataset(load_dataset(ds_dir), {"high_grade_serous": "malignant"}, bin_dir, default="benign",
                            rare=["malignant"], name="mmotu-malignant")
        return bin_dir
    return ds_dir


# config keys whose change only adds arms (each arm trains independently with its own seed)
ARM_ONLY_KEYS = {("synthetic", "pretrain_finetune"), ("synthetic", "matched_control"), ("synthetic", "sweep"),
                 ("classic_sweep",)}


def _without_arm_keys(cfg) -> dict:
    d = cfg.model_dump(mode="json")
    for key in ARM_ONLY_KEYS:
        parent = d
        for k in key[:-1]:
            parent = parent[k]
        parent.pop(key[-1])
    return d


def extend_run(old: Path, cfg, work: Path) -> tuple[Path, float]:
    """A new run folder: ``old`` (finished) with ``cfg``'s added arms still to train; returns it
    and the old run's wall time in seconds."""
    from datetime import datetime

    from sonogan.config import load_config, to_yaml
    from sonogan.experiment.config import ExperimentConfig
    from sonogan.runs import next_run_dir

    old_cfg = load_config(ExperimentConfig, old / "config.yaml")
    info = json.loads((old / "run.json").read_text())
    if info.get("status") != "completed":
        sys.exit(f"{old}: not a finished run (status {info.get('status')}); resume it instead")
    if _without_arm_keys(old_cfg) != _without_arm_keys(cfg) or not set(old_cfg.arm_names()) < set(cfg.arm_names()):
        sys.exit(f"{old}: its config differs from {cfg.name}'s by more than added arms; run it afresh")
    new = next_run_dir(work, cfg.name)
    shutil.copytree(old, new, symlinks=True)
    for derived in ["metrics.json", "report.html", "summary.md", "figures", *new.glob("folds/*/fold.json"),
                    *new.glob("folds/*/predictions.npz")]:
        path = new / derived
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    (new / "config.yaml").write_text(to_yaml(cfg))
    old_wall = (datetime.fromisoformat(info["finished"]) - datetime.fromisoformat(info["started"])).total_seconds()
    info.update(status="interrupted", extended_from=old.name, extended_from_wall_s=round(old_wall, 1))
    (new / "run.json").write_text(json.dumps(info, indent=2))
    return new, old_wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "mmotu.yaml"))
    parser.add_argument("--folds", default=None, help="comma-separated folds (default: all)")
    parser.add_argument("--work", default=str(REPO / "runs" / "bench"), help="where datasets and runs go")
    parser.add_argument("--resume", default=None, help="continue this run folder")
    parser.add_argument("--extend", default=None, help="a finished run of this config minus some arms: train "
                        "only the added arms (see above)")
    args = parser.parse_args()
    if not MMOTU.is_dir():
        print(f"MMOTU not found at {MMOTU}; this benchmark needs ../shared/datasets/mmotu-2d")
        return 0

    from sonogan.config import load_config
    from sonogan.experiment.config import ExperimentConfig
    from sonogan.experiment.protocol import run_experiment
    from sonogan.runs import next_run_dir

    start = time.perf_counter()
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    cfg = load_config(ExperimentConfig, args.config)
    ds_dir = prepare(cfg.name, work)
    update = {"dataset": str(ds_dir)}
    if args.folds:
        update["folds"] = [int(f) for f in args.folds.split(",")]
    cfg = cfg.model_copy(update=update)
    t_prep = time.perf_counter() - start
    old_wall = 0.0
    if args.extend:
        new, old_wall = extend_run(Path(args.extend), cfg, work)
        run = run_experiment(None, new, resume=True)
    elif args.resume:
        run = run_experiment(None, args.resume, resume=True)
    else:
        run = run_experiment(cfg, next_run_dir(work, cfg.name))
    wall = time.perf_counter() - start + old_wall
    metrics = json.loads((run / "metrics.json").read_text())
    rare = metrics["rare_classes"]
    keys = ["accuracy", "macro_f1"] + [f"f1/{c}" for c in rare] + [f"sensitivity/{c}" for c in rare]
    primary = metrics["primary_model"]
    rows = []
    for arm in metrics["arms"][1:]:
        for k in keys:
            rows.append({"arm": arm, "metric": k, "baseline": metrics["test"]["ci"]["baseline"][k],
                         "arm_value": metrics["test"]["ci"][arm][k], "gain": metrics["test"]["gain_vs_baseline"][arm][k],
                         "cv_baseline": metrics["cv"]["ci"]["baseline"][k], "cv_arm_value": metrics["cv"]["ci"][arm][k],
                         "cv_gain": metrics["cv"]["gain_vs_baseline"][arm][k],
                         "fold_mean_sd_baseline": metrics["per_fold"]["baseline"][primary]["test_mean_sd"][k],
                         "fold_mean_sd_arm": metrics["per_fold"][arm][primary]["test_mean_sd"][k]})
    result = {"config": args.config, "run": str(run), "folds": metrics["folds_run"], "wall_s": round(wall, 1),
              "prepare_s": round(t_prep, 1), "peak_rss_mb": peak_rss_mb(), "n_test": metrics["n_test"],
              "n_cv": metrics["n_cv"], "host": {"cpus": os.cpu_count(), "platform": platform.platform()},
              "extended_from": Path(args.extend).name if args.extend else None,
              "table": rows}
    out = REPO / "benchmarks" / "results" / f"{cfg.name}_experiment.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    fmt = lambda v: f"{v[0]:.3f} ({v[1]:.3f} to {v[2]:.3f})"  # noqa: E731
    print(f"\n{cfg.name}: folds {metrics['folds_run']}, wall {wall / 60:.1f} min, peak RSS {result['peak_rss_mb']} MB")
    for scope, n, pre in (("hold-out test", metrics["n_test"], ""), ("pooled out-of-fold", metrics["n_cv"], "cv_")):
        print(f"\n| {scope} (n={n}) | arm | baseline | arm | gain (paired 95% CI) | p |")
        print("|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {r['metric']} | {r['arm']} | {fmt(r[pre + 'baseline'])} | {fmt(r[pre + 'arm_value'])} | "
                  f"{fmt(r[pre + 'gain'])} | {r[pre + 'gain'][3]:.3f} |")
    print(f"\nwritten: {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
