"""Regenerate the README's result blocks from benchmarks/results/*.json (no number typed by hand).

Each block in README.md sits between ``<!-- bench:NAME -->`` and ``<!-- /bench:NAME -->`` and
is replaced by the Markdown that ``BLOCKS[NAME]`` renders from its JSON file. A block whose
JSON is missing is left as it is and reported. Any other ``benchmarks/*.py`` that defines
``README_BLOCKS = {NAME: (json_file, render_fn)}`` adds its blocks (so each benchmark keeps its
own renderer beside the code that writes its JSON).

Example:
    python benchmarks/readme_tables.py          # rewrites README.md in place
    python benchmarks/readme_tables.py --check  # exit 1 when README.md is stale
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import re
import sys
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"


def ci(v: list[float]) -> str:
    return f"{v[0]:.3f} ({v[1]:.3f} to {v[2]:.3f})"


def gain(v: list[float]) -> str:
    p = "< 0.001" if v[3] < 0.001 else f"{v[3]:.3f}"
    return f"{v[0]:+.3f} ({v[1]:+.3f} to {v[2]:+.3f}), p {p}"


def demo_block(r: dict[str, Any]) -> str:
    arms = [a for a in r["arms"] if a != "baseline"]
    head = "| scope | metric | baseline | " + " | ".join(f"{a} (gain vs baseline)" for a in arms) + " |"
    rows = [head, "|" + "---|" * (3 + len(arms))]
    for scope, label in (("cv", f"pooled out-of-fold (n={r['n_cv']})"), ("test", f"hold-out test (n={r['n_test']})")):
        for metric in r["ci"][scope]["baseline"]:
            cells = [f"{r['ci'][scope][a][metric][0]:.3f} ({gain(r['gain_vs_baseline'][scope][a][metric])})"
                     for a in arms]
            rows.append(f"| {label} | {metric} | {ci(r['ci'][scope]['baseline'][metric])} | " + " | ".join(cells) + " |")
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in r["stage_s"].items())
    return (f"`sonogan demo`: **{r['wall_s'] / 60:.1f} min** wall on {r['host']['cpus']} CPU cores "
            f"({stages}; {r['num_threads']} torch thread). Model: {r['primary_model']}; 95 % percentile bootstrap "
            f"CIs, gains are paired.\n\n" + "\n".join(rows))


def baseline_block(r: dict[str, Any]) -> str:
    rows = ["| variant | weights | folds | CV accuracy | CV macro-F1 | CV F1 high-grade serous | CV F1 simple cyst | "
            "hold-out accuracy | hold-out macro-F1 | wall, torch threads |", "|" + "---|" * 10]
    for e in r["entries"].values():
        cv, test = e["cv"], e["test"]
        rows.append(f"| `{e['variant']}`: {e['what']} | {e['weights']} | {','.join(map(str, e['folds']))} | "
                    f"{ci(cv['accuracy'])} | {ci(cv['macro_f1'])} | {ci(cv['f1/high_grade_serous'])} | "
                    f"{ci(cv['f1/simple_cyst'])} | {ci(test['accuracy'])} | {ci(test['macro_f1'])} | "
                    f"{e['wall_s'] / 60:.1f} min, {e.get('threads', 1)} thread{'s' if e.get('threads', 1) > 1 else ''} |")
    return "\n".join(rows)


def experiment_block(r: dict[str, Any]) -> str:
    """A benchmarks/mmotu_experiment.py result: baseline vs every other arm, pooled CV and hold-out."""
    arms = list(dict.fromkeys(row["arm"] for row in r["table"]))
    metrics = list(dict.fromkeys(row["metric"] for row in r["table"]))
    by = {(row["arm"], row["metric"]): row for row in r["table"]}
    lines = [f"`{Path(r['config']).name}`, folds {r['folds']}: **{r['wall_s'] / 60:.1f} min** wall, peak RSS "
             f"{r['peak_rss_mb']} MB.", "",
             "| scope | metric | baseline | " + " | ".join(f"{a} (gain vs baseline)" for a in arms) + " |",
             "|" + "---|" * (3 + len(arms))]
    for scope, pre, n in (("pooled out-of-fold", "cv_", r["n_cv"]), ("hold-out test", "", r["n_test"])):
        for m in metrics:
            base = by[(arms[0], m)][pre + "baseline"]
            cells = [f"{by[(a, m)][pre + 'arm_value'][0]:.3f} ({gain(by[(a, m)][pre + 'gain'])})" for a in arms]
            lines.append(f"| {scope} (n={n}) | {m} | {ci(base)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


BLOCKS: dict[str, tuple[str, Callable[[dict[str, Any]], str]]] = {
    "demo": ("demo.json", demo_block),
    "mmotu-baseline": ("mmotu_baseline.json", baseline_block),
    "mmotu-strong": ("mmotu-strong_experiment.json", experiment_block),
}


def all_blocks() -> dict[str, tuple[str, Callable[[dict[str, Any]], str]]]:
    """BLOCKS plus the ``README_BLOCKS`` of every other benchmark script that defines them."""
    blocks = dict(BLOCKS)
    for script in sorted((REPO / "benchmarks").glob("*.py")):
        if script.name == Path(__file__).name or "README_BLOCKS" not in script.read_text():
            continue
        spec = importlib.util.spec_from_file_location(f"_bench_{script.stem}", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        blocks.update(module.README_BLOCKS)
    return blocks


def render(readme: str) -> tuple[str, list[str]]:
    """README text with every known block regenerated, and the names of blocks left alone."""
    skipped = []
    for name, (file, fn) in all_blocks().items():
        path = RESULTS / file
        pattern = re.compile(rf"(<!-- bench:{name} -->\n)(?:.*?\n)?(<!-- /bench:{name} -->)", re.S)
        if not path.is_file() or not pattern.search(readme):
            skipped.append(name)
            continue
        body = fn(json.loads(path.read_text()))
        readme = pattern.sub(lambda m: m.group(1) + body + "\n" + m.group(2), readme)
    return readme, skipped


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--check", action="store_true", help="only report whether README.md is up to date")
    args = parser.parse_args()
    readme = REPO / "README.md"
    text, skipped = render(readme.read_text())
    for name in skipped:
        print(f"block '{name}': no results file or no markers; left as it is")
    if args.check:
        stale = text != readme.read_text()
        print("README.md is stale" if stale else "README.md is up to date")
        return int(stale)
    readme.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
