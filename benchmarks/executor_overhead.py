"""The Ray executor against the local one on the demo protocol: wall time, and the same numbers.

The demo config (configs/demo.yaml) runs on one phantom cohort (generated once, outside the
timing) three ways, one after another in one process (compare them as ratios: the machine is shared):
``local``; ``ray`` with one CPU (tasks one at a time: the executor's own overhead, target
<= 10 %); ``ray`` with every CPU (independent folds and arms in parallel). Every Ray run must
give metrics.json identical to the local run's. Writes benchmarks/results/executor_overhead.json.

Example:
    python benchmarks/executor_overhead.py --folds 0,1
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RESULT = REPO / "benchmarks" / "results" / "executor_overhead.json"


def timed_run(cfg, out: Path, executor: str, num_cpus: int | None) -> tuple[float, dict]:
    from sonogan.experiment.executors import make_executor
    from sonogan.experiment.protocol import run_experiment

    start = time.perf_counter()
    ex = make_executor(executor, num_cpus=num_cpus)  # Ray's start-up is part of its cost
    try:
        run = run_experiment(cfg, out, progress=False, executor=ex)
    finally:
        ex.close()
    return time.perf_counter() - start, json.loads((run / "metrics.json").read_text())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default=str(REPO / "configs" / "demo.yaml"))
    parser.add_argument("--folds", default="0,1", help="comma-separated folds (default 0,1)")
    args = parser.parse_args()

    import torch

    from sonogan.config import load_config
    from sonogan.experiment.config import ExperimentConfig
    from sonogan.phantom import generate_phantom

    cfg = load_config(ExperimentConfig, args.config)
    torch.set_num_threads(cfg.num_threads)
    work = Path(tempfile.mkdtemp(prefix="executor-bench-"))
    ds = generate_phantom(work / "phantom", cfg.phantom, progress=False)
    cfg = cfg.model_copy(update={"dataset": str(ds.root), "phantom": None,
                                 "folds": [int(k) for k in args.folds.split(",")]})
    cpus = os.cpu_count() or 1
    ways = [("local", "local", None), ("ray-1cpu", "ray", 1), (f"ray-{cpus}cpu", "ray", cpus)]
    walls: dict[str, float] = {}
    metrics: dict[str, dict] = {}
    for name, executor, n in ways:
        walls[name], metrics[name] = timed_run(cfg, work / name, executor, n)
        print(f"{name}: {walls[name]:.1f} s", flush=True)
    same = {name: metrics[name] == metrics["local"] for name in walls}
    result: dict[str, Any] = {
        "config": Path(args.config).name, "folds": cfg.folds, "wall_s": {k: round(v, 1) for k, v in walls.items()},
        "overhead_ray_1cpu": round(walls["ray-1cpu"] / walls["local"] - 1, 3),
        "speedup_ray_all_cpus": round(walls["local"] / walls[f"ray-{cpus}cpu"], 2),
        "identical_metrics": same, "num_threads": cfg.num_threads,
        "host": {"cpus": cpus, "platform": platform.platform(), "load_avg_1min_at_end": round(os.getloadavg()[0], 2)},
    }
    RESULT.parent.mkdir(exist_ok=True)
    RESULT.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return 0 if all(same.values()) else 1


def executor_block(r: dict[str, Any]) -> str:
    rows = ["| executor | wall | metrics identical to local |", "|---|---|---|"]
    rows += [f"| `{k}` | {v:.0f} s | {'yes' if r['identical_metrics'][k] else '**no**'} |" for k, v in r["wall_s"].items()]
    return (f"`{r['config']}`, folds {r['folds']}, {r['host']['cpus']} CPU cores (1-min load average at the end "
            f"{r['host']['load_avg_1min_at_end']}): Ray's overhead with tasks run one at a time "
            f"**{r['overhead_ray_1cpu'] * 100:+.1f} %** (target <= 10 %); with every core, "
            f"**{r['speedup_ray_all_cpus']:.2f}x** the local executor's speed.\n\n" + "\n".join(rows))


README_BLOCKS = {"executor-overhead": ("executor_overhead.json", executor_block)}

if __name__ == "__main__":
    sys.exit(main())
