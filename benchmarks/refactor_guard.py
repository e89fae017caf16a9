"""Guard rail for refactors: the metrics of the tiny experiment, lesion and remover runs
(and optionally `sonogan demo`) must not change when code only moves.

Runs each through the CLI, as a user would, into a temporary folder with one torch thread,
and writes every number of each run's ``metrics.json`` (timings and paths dropped) to one
JSON file. ``--compare OLD.json`` then lists every number that differs.

Example:
    python benchmarks/refactor_guard.py --out /tmp/guard-before.json            # before
    python benchmarks/refactor_guard.py --out /tmp/guard-after.json --compare /tmp/guard-before.json
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

TINY_EXPERIMENT = {
    "name": "tiny",
    "phantom": {"n_benign": 6, "n_borderline": 4, "n_malignant": 5, "images_per_patient": 2, "image_size": 96},
    "split": {"folds": 2, "test_fraction": 0.2, "seed": 0},
    "gan": {"family": "dcgan", "iterations": 6, "batch_size": 8, "ngf": 8, "ndf": 8, "checkpoint_every": 3,
            "sample_every": 3, "quality_every": 3, "quality_samples": 16, "ema_decay": 0.5},
    "synthetic": {"n_per_class": 12, "sweep": [6]},
    "classic_arm": {"hflip": True, "rotation": 10.0},
    "classic_sweep": [6],
    "classifiers": [{"model": "frid-adar-cnn", "epochs": 2, "batch_size": 16, "model_kwargs": {"widths": [4, 8, 8]}},
                    {"model": "resnet10t", "epochs": 1, "batch_size": 16}],
    "evaluation": {"n_resamples": 20, "tsne_max_real": 20, "tsne_max_synthetic": 10},
    "num_threads": 1,
    "audit": {"enabled": False},
}
TINY_LESION = {
    "name": "tiny-lesion", "seed": 0,
    "phantom": {"seed": 0, "n_benign": 6, "n_borderline": 4, "n_malignant": 5, "images_per_patient": 2,
                "image_size": 96},
    "split": {"folds": 2, "test_fraction": 0.2, "seed": 0},
    "preset": "full-64",
    "arms": ["segmentation", "classification", "classification+clinical", "multitask", "cascade"],
    "model": {"backbone": "unet", "backbone_kwargs": {"width": 4}},
    "train": {"image_size": 64, "epochs": 2, "batch_size": 8, "optimizer": "adam", "lr": 0.002},
    "cascade": {"margin": 0.15, "crop_size": 32},
    "evaluation": {"n_resamples": 50},
    "num_threads": 1,
}
TINY_REMOVER = {"remover": {"size": 32, "model_kwargs": {"features": [8, 16, 32]},
                            "detector_kwargs": {"widths": [8, 16], "hidden": 16}},
                "iterations": 40, "batch_size": 4, "checkpoint_every": 20, "eval_pairs": 16, "draw_scale": 2.0,
                "device": "cpu", "num_threads": 1}
DROP = ("time", "wall", "seconds", "_s", "path", "sha256", "commit", "host", "version")


def numbers(obj, prefix=""):
    """Flatten a JSON object to {dotted.key: value} for numbers and short strings."""
    out = {}
    if isinstance(obj, dict):
        for k, v in obj.items():
            if any(d in str(k).lower() for d in DROP):
                continue
            out.update(numbers(v, f"{prefix}{k}."))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            out.update(numbers(v, f"{prefix}{i}."))
    elif isinstance(obj, (int, float, bool)) or obj is None:
        out[prefix.rstrip(".")] = obj
    return out


def run(cmd: list[str]) -> None:
    print("$", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True)
    parser.add_argument("--compare", default=None)
    parser.add_argument("--demo", action="store_true", help="also run `sonogan demo` (minutes)")
    args = parser.parse_args()
    cli = str(Path(sys.executable).parent / "sonogan")
    result = {}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for name, cfg in (("experiment", TINY_EXPERIMENT), ("lesion", TINY_LESION)):
            (tmp / f"{name}.yaml").write_text(yaml.safe_dump(cfg))
            run([cli, name, str(tmp / f"{name}.yaml"), "--out", str(tmp / name)])
            result[name] = numbers(json.loads((tmp / name / "metrics.json").read_text()))
        run([cli, "data", "phantom", "--out", str(tmp / "phantom"), "--scale", "0.3"])
        run([cli, "data", "split", str(tmp / "phantom"), "--folds", "2"])
        (tmp / "remover.yaml").write_text(yaml.safe_dump(TINY_REMOVER))
        run([cli, "annotations", "train", str(tmp / "phantom"), "--out", str(tmp / "remover"),
             "--config", str(tmp / "remover.yaml")])
        result["remover"] = numbers(json.loads((tmp / "remover" / "metrics.json").read_text()))
        if args.demo:
            run([cli, "demo", "--out", str(tmp / "demo")])
            demo = sorted((tmp / "demo").glob("demo-*"))[-1]
            result["demo"] = numbers(json.loads((demo / "experiment" / "metrics.json").read_text()))
    Path(args.out).write_text(json.dumps(result, indent=1, sort_keys=True))
    print(f"written {args.out}: " + ", ".join(f"{k} {len(v)} numbers" for k, v in result.items()))
    if args.compare:
        old = json.loads(Path(args.compare).read_text())
        diffs = [(run_, k, old[run_].get(k), result[run_].get(k)) for run_ in old if run_ in result
                 for k in sorted(set(old[run_]) | set(result[run_])) if old[run_].get(k) != result[run_].get(k)]
        for d in diffs[:50]:
            print("DIFF", *d)
        print(f"{len(diffs)} differences")
        return 1 if diffs else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
