"""The synthetic-image audit's cost on the demo's fold 0: the previous defaults vs the light default.

Setup (once, kept in ``--work``): the demo protocol (``configs/demo.yaml``) on fold 0 only, with
the audit off and 1 classifier epoch, so the fold's phantom, splits, DCGAN and samples exist
exactly as ``make demo`` makes them. Then, in ONE process, the audit of the fold's borderline
samples (the domain encoder trained as the experiment does, then ``audit_class``) runs under
each setting, round-robin, ``--repeats`` times; each stage's wall time is taken by wrapping the
audit module's functions. Settings:

- ``full``: the previous defaults (every synthetic image in the distribution metrics, the
  full-width domain encoder and the extractors in fp32), as ``audit: {profile: full}`` still runs it;
- ``light``: the default (synthetic set capped at 500 for FID/KID/PRDC/MS-SSIM/quality, a
  half-width domain encoder, encoder training and extractors in bf16 on a CPU with native bf16);
  the memorisation gate checks every sample in both.

Both run with the demo's audit settings (domain extractor) and with ``imagenet-lite0`` added
(the audit's general default). Also each setting's FID/KID, PRDC and flagged count (how much
the light default moves the numbers) and, as the yardstick, the spread of the domain space's
FID/KID over domain-encoder seeds under each profile. Writes benchmarks/results/audit_cost.json with the
thread count and the load average before and after.

Example:
    python benchmarks/audit_cost.py                       # ~6 min on one CPU thread
    python benchmarks/audit_cost.py --repeats 1 --n 2200  # the tiny experiment's 2,200 samples
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "audit_cost.json"
CLASS = "borderline"
STAGES = ("build_extractors", "cached_features", "extract", "fidelity_block", "diversity", "fit_niqe",
          "quality_summary", "memorisation_check", "_figures")


def setup(work: Path, n: int | None) -> Path:
    """The demo's fold 0 run (audit off, 1 classifier epoch), made once; ``n``: sample this many."""
    from sonogan.config import load_config
    from sonogan.experiment.config import ExperimentConfig
    from sonogan.experiment.protocol import run_experiment

    run = work / f"demo-fold0-n{n or 'demo'}"
    if (run / "run.json").is_file() and json.loads((run / "run.json").read_text())["status"] == "completed":
        return run
    cfg = load_config(ExperimentConfig, REPO / "configs" / "demo.yaml")
    synthetic = cfg.synthetic.model_copy(update={"sweep": []} | ({"n_per_class": n} if n else {}))
    clf = [c.model_copy(update={"epochs": 1}) for c in cfg.classifiers]
    cfg = cfg.model_copy(update={"folds": [0], "audit": cfg.audit.model_copy(update={"enabled": False}),
                                 "synthetic": synthetic, "classifiers": clf,
                                 "evaluation": cfg.evaluation.model_copy(update={"tsne": False})})
    return run_experiment(cfg, run, progress=False)


def timed(times: dict[str, float]):
    """Wrap the audit modules' stage functions so each call adds its wall time to ``times``."""
    import sonogan.audit.audit as audit_mod
    import sonogan.audit.run as run_mod

    def wrap(module: Any, name: str) -> None:
        fn = getattr(module, name)
        original = getattr(fn, "__wrapped__", fn)

        @functools.wraps(original)
        def inner(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                times[name] = times.get(name, 0.0) + time.perf_counter() - t0
        setattr(module, name, inner)

    for name in STAGES:
        wrap(run_mod if name == "build_extractors" else audit_mod, name)


def audit_once(run: Path, cfg: Any, out: Path, times: dict[str, float]) -> dict[str, Any]:
    """One audit of fold 0's borderline samples under ``cfg`` (a fresh domain encoder and feature
    cache, as a new experiment fold has)."""
    import shutil

    import sonogan.audit.audit as audit_mod
    import sonogan.audit.run as run_mod
    from sonogan.data.manifest import load_dataset
    from sonogan.data.splits import Splits
    from sonogan.preprocess.fold import load_fold, load_synthetic

    ds = load_dataset(run / "dataset")
    classes = list(ds.spec.classes)
    fd = load_fold(ds, Splits.load(run / "splits.json", ds), 0, "flagship-64")
    syn = load_synthetic(load_dataset(run / "folds" / "fold0" / f"synthetic-{CLASS}"), "flagship-64", classes, 0)
    shutil.rmtree(out, ignore_errors=True)
    timed(times)
    t0 = time.perf_counter()
    extractors = run_mod.build_extractors(cfg, fd.train, classes, out / "domain-encoder")
    record = audit_mod.audit_class(run_mod.class_inputs(fd, syn, classes, CLASS), cfg, extractors, out / CLASS,
                                   cache_dir=out / "cache")
    times["total"] = time.perf_counter() - t0
    return record


def fidelity_numbers(record: dict[str, Any]) -> dict[str, dict[str, float | None]]:
    return {space: {k: block.get(k) for k in ("fid", "kid_mean", "precision", "coverage")}
            for space, block in record["fidelity"].items()}


def encoder_seed_spread(run: Path, demo_audit: dict[str, Any], work: Path, seeds: int) -> dict[str, Any]:
    """The domain space's FID, KID and flagged count over domain-encoder seeds, per profile: how far
    the numbers move from one encoder to the next, the yardstick for the light profile's change."""
    from sonogan.audit.config import AuditConfig

    out: dict[str, Any] = {}
    for profile in ("full", "light"):
        rows = []
        for seed in range(seeds):
            cfg = AuditConfig.model_validate({**demo_audit, "extractors": ["domain"], "profile": profile,
                                              "domain_encoder": {"seed": seed}})
            record = audit_once(run, cfg, work / "audit" / f"seed-{profile}", {})
            block = record["fidelity"]["domain"]
            rows.append({"seed": seed, "fid": block["fid"], "kid_mean": block["kid_mean"],
                         "n_flagged": record["memorisation"]["n_flagged"]})
            print(f"encoder seed {seed}, {profile}: {rows[-1]}", flush=True)
        out[profile] = rows
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, default=REPO / "runs" / "bench-audit-cost")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--n", type=int, default=None, help="synthetic images per class (default: the demo's)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seeds", type=int, default=3, help="domain-encoder seeds for the spread of its FID/KID")
    parser.add_argument("--out", type=Path, default=RESULT)
    args = parser.parse_args(argv)

    import torch

    import yaml

    from sonogan.audit.config import AuditConfig

    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    run = setup(args.work, args.n)
    # the demo's own audit keys (not a resolved dump: that would carry the light profile's choices)
    demo_audit = yaml.safe_load((REPO / "configs" / "demo.yaml").read_text())["audit"]
    settings = {}
    for extractors in (["domain"], ["domain", "imagenet-lite0"]):
        for profile in ("full", "light"):
            cfg = AuditConfig.model_validate({**demo_audit, "extractors": extractors, "profile": profile})
            settings[f"{'+'.join(extractors)}|{profile}"] = cfg
    runs: dict[str, list[dict[str, float]]] = {k: [] for k in settings}
    numbers: dict[str, Any] = {}
    for _ in range(args.repeats):
        for name, cfg in settings.items():  # round-robin: the machine's noise hits every setting alike
            times: dict[str, float] = {}
            record = audit_once(run, cfg, args.work / "audit" / name.replace("|", "-"), times)
            runs[name].append(times)
            numbers[name] = {"fidelity": fidelity_numbers(record), "n_synthetic": record["n_synthetic"],
                             "n_flagged": record["memorisation"]["n_flagged"],
                             "distribution_sample": record.get("distribution_sample")}
            print(f"{name}: {times['total']:.1f} s", flush=True)
    median = {name: {stage: round(statistics.median(t.get(stage, 0.0) for t in ts), 2)
                     for stage in ("total", *STAGES)} for name, ts in runs.items()}
    spread = encoder_seed_spread(run, demo_audit, args.work, args.seeds)
    speedup = {ex: round(median[f"{ex}|full"]["total"] / median[f"{ex}|light"]["total"], 2)
               for ex in ("domain", "domain+imagenet-lite0")}
    result = {"what": "audit of the demo's fold 0 borderline samples (configs/demo.yaml), previous defaults "
                      "(profile: full) vs the light default, round-robin in one process",
              "threads": args.threads, "repeats": args.repeats, "load_average_before": load_before,
              "load_average_after": os.getloadavg(), "torch": torch.__version__,
              "median_seconds": median, "speedup_full_over_light": speedup, "numbers": numbers,
              "domain_encoder_seed_spread": spread,
              "settings": {k: v.model_dump(mode="json") for k, v in settings.items()}}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({"median_total_s": {k: v["total"] for k, v in median.items()}, "speedup": speedup}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
