"""The MMOTU verdict (issue 18), one fold at a time: per-fold records that outlive the machine.

``--fold K`` runs fold K of the config (default configs/mmotu-verdict.yaml) on
../shared/datasets/mmotu-2d (imported as benchmarks/mmotu_experiment.py does; skipped with a
message when absent) into runs/bench/<name>-foldK (an unfinished one is resumed), and writes
its compact record to benchmarks/results/mmotu-verdict/foldK.json + foldK.npz
(sonogan.experiment.records.fold_record: every arm's and seed's validation and hold-out
probabilities, labels, ids, the synthetic sets' audit summary, software, CPU, precision,
threads, config hash) plus the cost of the run (wall time, peak memory, load average). Commit
the two files before starting the next fold.

``--merge`` pools whichever fold records exist, with the protocol's own pooling and bootstrap,
into benchmarks/results/mmotu_verdict.json; benchmarks/readme_tables.py renders it into the
README's ``mmotu-verdict`` block (README_BLOCKS below), which says which folds are in and
whether any arm meets the issue's target.

Run one fold at a time, with both cores and nothing else running.

Example:
    python benchmarks/mmotu_verdict.py --fold 0          # hours on a 2-core CPU; then commit the record
    python benchmarks/mmotu_verdict.py --merge           # pool the committed folds
    python benchmarks/readme_tables.py                   # the README block
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
MMOTU = REPO.parent / "shared" / "datasets" / "mmotu-2d"
RECORDS = REPO / "benchmarks" / "results" / "mmotu-verdict"
MERGED = REPO / "benchmarks" / "results" / "mmotu_verdict.json"
TARGET_GAIN = 0.10       # the target: rare-class F1 +10 points over the baseline ...
TARGET_ACCURACY = 0.80   # ... and 8-class top-1 >= 0.80 (pooled 5-fold CV)


def run_fold(config: Path, fold: int, work: Path, records: Path = RECORDS, seed: int | None = None) -> Path:
    """Run (or resume, or read back) fold ``fold``; returns its record's path. ``seed``: only this
    classifier seed of the config's ``classifier_seeds`` (every arm; the generators as in the full
    run), recorded as ``foldK-seedS``: a fold too long for one session runs seed by seed."""
    sys.path.insert(0, str(Path(__file__).parent))
    from mmotu_experiment import peak_rss_mb, prepare

    from sonogan.config import load_config
    from sonogan.experiment.config import ExperimentConfig
    from sonogan.experiment.protocol import run_experiment
    from sonogan.experiment.records import fold_record, write_record
    from sonogan.layout import is_run, read_info

    start, load_start = time.perf_counter(), os.getloadavg()
    work.mkdir(parents=True, exist_ok=True)
    cfg = load_config(ExperimentConfig, config)
    chunk: dict[str, Any] = {}
    if seed is not None:
        if seed not in cfg.seeds():
            raise SystemExit(f"--seed {seed}: not one of the config's classifier_seeds {cfg.seeds()}")
        if seed != cfg.seeds()[0]:
            raise SystemExit(f"--seed {seed}: the curation of the synthetic images uses the baseline of seed "
                             f"{cfg.seeds()[0]}; a run of another seed alone cannot curate them the same way yet")
        chunk = {"classifier_seeds": [seed]}
    cfg = cfg.model_copy(update={"dataset": str(prepare(cfg.name, work)), "folds": [fold], **chunk})
    run = work / (f"{cfg.name}-fold{fold}" + (f"-seed{seed}" if seed is not None else ""))
    status = read_info(run).get("status") if is_run(run) else None
    if status != "completed":
        run = run_experiment(None, run, resume=True) if status else run_experiment(cfg, run)
    record = fold_record(run, fold)
    if seed is not None:
        record["seed_chunk"] = seed
    record["cost"].update(wall_s_this_process=round(time.perf_counter() - start, 1), peak_rss_mb=peak_rss_mb(),
                          load_average_start=list(load_start), load_average_end=list(os.getloadavg()),
                          resumed=status is not None and status != "completed")
    path = write_record(record, records)
    print(f"written: {path} (+ .npz); commit both before the next fold:\n"
          f"  git add {path} {path.with_suffix('.npz')}")
    return path


def wall_s(cost: dict[str, Any]) -> float | None:
    """A fold's wall time from its run's start and end (run.json), or None."""
    from datetime import datetime

    if not cost.get("run_started") or not cost.get("run_finished"):
        return None
    return (datetime.fromisoformat(cost["run_finished"]) - datetime.fromisoformat(cost["run_started"])).total_seconds()


def target(result: dict[str, Any]) -> dict[str, Any]:
    """The issue's verdict on pooled out-of-fold numbers: a synthetic arm meets it when, for every
    rare class, its F1 gain over the baseline is >= TARGET_GAIN with a paired CI above 0 and its
    gain over the count-matched control has a paired CI above 0."""
    cv = result["cv"]
    per_arm = {}
    for arm in result["synthetic_arms"]:
        checks = {}
        for c in result["rare_classes"]:
            gain = cv["gain_vs_baseline"][arm][f"f1/{c}"]
            control = cv.get("gain_vs_control", {}).get(arm, {}).get(f"f1/{c}")
            checks[c] = bool(gain[0] >= TARGET_GAIN and gain[1] > 0 and control is not None and control[1] > 0)
        per_arm[arm] = checks
    best = max(result["arms"], key=lambda a: cv["ci"][a]["accuracy"][0])
    return {"gain": TARGET_GAIN, "per_arm": per_arm, "met_by": [a for a, c in per_arm.items() if all(c.values())],
            "accuracy": TARGET_ACCURACY, "best_accuracy_arm": best,
            "accuracy_met": cv["ci"][best]["accuracy"][0] >= TARGET_ACCURACY}


def merge(records_dir: Path, out: Path) -> dict[str, Any]:
    from sonogan.experiment.records import merge_records, read_record

    paths = sorted(p for p in records_dir.glob("fold*.json") if re.fullmatch(r"fold\d+\.json", p.name))
    if not paths:
        result: dict[str, Any] = {"folds_run": []}
    else:
        records = [read_record(p) for p in paths]
        result = merge_records(records)
        result["n_folds"] = records[0]["config"]["split"]["folds"]
        result["config_name"] = records[0]["config"]["name"]
        result["target"] = target(result)
        result["wall_s"] = {k: wall_s(c) for k, c in result["cost"].items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"written: {out} (folds {result['folds_run']})")
    return result


def _cell(v: list[float], sd: float | None) -> str:
    s = f"{v[0]:.3f} ({v[1]:.3f} to {v[2]:.3f})"
    return s + (f" ± {sd:.3f}" if sd is not None else "")


def _gain(v: list[float] | None, spread: dict[str, Any] | None) -> str:
    if v is None:
        return "—"
    s = f"{v[0]:+.3f} ({v[1]:+.3f} to {v[2]:+.3f})"
    return s + (f"; seeds {spread['min']:+.3f} to {spread['max']:+.3f}" if spread else "")


def verdict_block(r: dict[str, Any]) -> str:
    """The README block: which folds are in, the pooled table, the verdict, the cost."""
    if not r["folds_run"]:
        return ("No fold of the verdict has been recorded yet: `python benchmarks/mmotu_verdict.py --fold K` runs "
                "fold K and writes `benchmarks/results/mmotu-verdict/foldK.json`; `--merge` pools them here.")
    cv, rare, n = r["cv"], r["rare_classes"], r["n_folds"]
    seeds = r.get("classifier_seeds")
    sd = lambda a, k: cv.get("seed_sd", {}).get(a, {}).get(k)  # noqa: E731
    spread = lambda key, a, k: cv.get(key, {}).get(a, {}).get(k)  # noqa: E731
    folds = ", ".join(map(str, r["folds_run"]))
    lines = [f"`{r['config_name']}`: **Folds in: {folds} of 0-{n - 1}**"
             + ("" if len(r["folds_run"]) == n else f" (provisional: {len(r['folds_run'])} of {n} folds)")
             + f". Pooled out-of-fold images n = {r['n_cv']}; 95 % percentile bootstrap over "
             f"{r['bootstrap']['unit']}s ({r['bootstrap']['n_resamples']} resamples) of the seed-averaged "
             f"probabilities of {len(seeds) if seeds else 1} classifier seed(s); ± = SD over seeds; gains are paired, "
             "'seeds' = the range of the per-seed gains.", ""]
    metrics = ["accuracy", "macro_f1"] + [f"f1/{c}" for c in rare]
    head = "| arm | " + " | ".join(metrics) + " | " + " | ".join(
        f"gain f1/{c} vs baseline | vs {r.get('control_arm', 'control')}" for c in rare) + " |"
    lines += [head, "|" + "---|" * (1 + len(metrics) + 2 * len(rare))]
    for a in r["arms"]:
        cells = [_cell(cv["ci"][a][k], sd(a, k)) for k in metrics]
        for c in rare:
            k = f"f1/{c}"
            base = cv["gain_vs_baseline"].get(a, {}).get(k)
            ctrl = cv.get("gain_vs_control", {}).get(a, {}).get(k)
            cells += [_gain(base, spread("seed_gain_vs_baseline", a, k)),
                      _gain(ctrl, spread("seed_gain_vs_control", a, k))]
        lines.append(f"| {a} | " + " | ".join(cells) + " |")
    t = r["target"]
    rule = (f"Target: a synthetic arm raises the F1 of every rare class ({', '.join(rare)}) by >= "
            f"{t['gain']:+.2f} over the baseline with a paired CI above 0 and beats the count-matched control "
            "(paired CI above 0)")
    lines += ["", f"{rule}: " + (f"**met by {', '.join(t['met_by'])}**." if t["met_by"] else
                                 "**No arm meets the target** on the folds in: synthetic images did not make the "
                                 "classifier find the rare classes better than the real images alone and than "
                                 "re-drawing them (table above: every arm tried, its gains and CIs).")]
    lines.append(f"Top-1 target >= {t['accuracy']:.2f} (pooled CV): best arm {t['best_accuracy_arm']} at "
                 f"{cv['ci'][t['best_accuracy_arm']]['accuracy'][0]:.3f}: {'met' if t['accuracy_met'] else 'not met'}.")
    walls = {k: v for k, v in r["wall_s"].items() if v is not None}
    if walls:
        per = sum(walls.values()) / len(walls)
        env = next(iter(r["environment"].values()))
        lines.append(f"CPU cost: {', '.join(f'fold {k} {v / 3600:.1f} h' for k, v in walls.items())} wall "
                     f"({env['num_threads']} torch threads, {env['cpu_model']}); the 5-fold protocol ≈ "
                     f"{5 * per / 3600:.1f} h.")
    lines += ["", "Audit of the synthetic images (per fold and set: FID / precision / recall in the first feature "
              "space, near-copies flagged):", "", "| fold | set | class | FID | precision | recall | flagged |",
              "|---|---|---|---|---|---|---|"]
    for fold, sets in r["synthetic"].items():
        for name, by_class in sets.items():
            for c, info in by_class.items():
                numbers = info.get("audit_numbers")
                if not numbers or not numbers.get("fidelity"):
                    continue
                space, f = next(iter(numbers["fidelity"].items()))
                fmt = lambda v: "skipped" if v is None else f"{v:.2f}"  # noqa: E731
                lines.append(f"| {fold} | {name} | {c} | {fmt(f.get('fid'))} ({space}) | {fmt(f.get('precision'))} | "
                             f"{fmt(f.get('recall'))} | {info.get('audit', {}).get('flagged', '—')} |")
    return "\n".join(lines)


README_BLOCKS = {"mmotu-verdict": ("mmotu_verdict.json", verdict_block)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "mmotu-verdict.yaml"))
    parser.add_argument("--fold", type=int, default=None, help="run this fold and write its record")
    parser.add_argument("--seed", type=int, default=None,
                        help="with --fold: only this classifier seed (every arm), recorded as foldK-seedS")
    parser.add_argument("--merge", action="store_true", help="pool the existing fold records")
    parser.add_argument("--work", default=str(REPO / "runs" / "bench"), help="where the dataset and runs go")
    parser.add_argument("--records", default=str(RECORDS), help="folder of the fold records")
    parser.add_argument("--out", default=str(MERGED), help="the merged result (--merge)")
    args = parser.parse_args(argv)
    if args.fold is None and not args.merge:
        parser.error("give --fold K or --merge")
    if args.fold is not None:
        if not MMOTU.is_dir():
            print(f"MMOTU not found at {MMOTU}; this benchmark needs ../shared/datasets/mmotu-2d")
            return 0
        run_fold(Path(args.config), args.fold, Path(args.work), Path(args.records), seed=args.seed)
    if args.merge:
        merge(Path(args.records), Path(args.out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
