"""Time `sonogan demo` end to end and record its headline numbers for the README.

Runs the demo (phantom -> validate -> split -> preprocess -> inspect -> 5-fold experiment ->
report) into a temporary folder as a user would (`sonogan demo`), then writes
benchmarks/results/demo.json: wall time, the demo's own stage timings, thread count and the
primary model's baseline / augmented numbers with CIs and paired gains.

Example:
    python benchmarks/demo.py            # then: python benchmarks/readme_tables.py
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "benchmarks" / "results" / "demo.json"
METRICS = ["accuracy", "macro_f1", "f1/borderline", "sensitivity/borderline"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", default=None, help="keep the demo's run folder under this parent folder")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        parent = Path(args.keep) if args.keep else Path(tmp)
        start = time.perf_counter()
        subprocess.run([str(Path(sys.executable).parent / "sonogan"), "demo", "--out", str(parent)], check=True)
        wall = time.perf_counter() - start
        run = sorted(parent.glob("demo-*"))[-1]
        demo = json.loads((run / "metrics.json").read_text())
        m = json.loads((run / "experiment" / "metrics.json").read_text())
        info = json.loads((run / "experiment" / "run.json").read_text())
    scopes = {scope: {arm: {k: m[scope]["ci"][arm][k] for k in METRICS} for arm in m["arms"]}
              for scope in ("cv", "test")}
    gains = {scope: {arm: {k: g[k] for k in METRICS} for arm, g in m[scope]["gain_vs_baseline"].items()}
             for scope in ("cv", "test")}
    result = {"command": "sonogan demo", "wall_s": round(wall, 1), "stage_s": demo["timings_s"],
              "num_threads": info.get("num_threads"), "primary_model": m["primary_model"], "arms": m["arms"],
              "n_cv": m["n_cv"], "n_test": m["n_test"], "ci": scopes, "gain_vs_baseline": gains,
              "host": {"cpus": os.cpu_count(), "platform": platform.platform()}}
    OUT.write_text(json.dumps(result, indent=2))
    print(f"demo: {wall / 60:.1f} min; written {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
