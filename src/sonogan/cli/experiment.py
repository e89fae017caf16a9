"""``sonogan experiment``: the flagship protocol from one YAML config.

Example:
    $ sonogan experiment configs/demo.yaml --out runs/demo-experiment
    $ sonogan experiment --resume runs/demo-experiment
    $ sonogan experiment configs/mmotu.yaml --executor ray --address auto

    >>> parse_folds("0, 2")
    [0, 2]
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from sonogan.cli.resume import refuse_with_resume, resumable
from sonogan.config import load_config
from sonogan.errors import SonoganInputError
from sonogan.runs import check_new_run, next_run_dir

console = Console()


def parse_folds(text: str) -> list[int]:
    """'0,2' -> [0, 2]; anything but comma-separated whole numbers is an input error."""
    parts = [p.strip() for p in text.split(",")]
    if not all(p.isdigit() for p in parts):
        raise SonoganInputError("--folds", f"'{text}' is not a comma-separated list of fold numbers",
                                "pass fold numbers such as --folds 0,1")
    return [int(p) for p in parts]


def experiment_command(
    config: Optional[Path] = typer.Argument(None, help="Experiment YAML (see configs/)."),
    out: Optional[Path] = typer.Option(None, "--out", help="New run folder (default runs/<name>-NNN)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run folder (with its own config)."),
    folds: Optional[str] = typer.Option(None, "--folds", help="Comma-separated folds to run (overrides the config)."),
    executor: str = typer.Option("local", "--executor", help="Where the protocol's tasks run: local (this process, "
                                 "in order) or ray (Ray tasks; the numbers are the same)."),
    address: Optional[str] = typer.Option(None, "--address", help="Ray cluster to join (auto, or ray://host:port); "
                                          "default: start a local Ray instance."),
) -> None:
    """GAN per fold on the rare classes, baseline vs augmented classifiers, CIs, paired gains, report.

    Example: sonogan experiment configs/demo.yaml --out runs/demo-experiment
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.experiment.config import ExperimentConfig

    refuse_with_resume("experiment", resume, {"a CONFIG": config, "--folds": folds, "--out": out})
    if executor not in ("local", "ray"):
        raise SonoganInputError("--executor", f"unknown executor '{executor}'", "use local or ray")
    if address is not None and executor != "ray":
        raise SonoganInputError("--address", "is a Ray cluster address", "add --executor ray, or drop --address")
    if resume is None and config is None:
        raise SonoganInputError("sonogan experiment", "no config given", "pass a YAML file, e.g. configs/demo.yaml")
    if resume is not None:
        path = resume
        cfg = None
    else:
        overrides = {"folds": parse_folds(folds)} if folds else None
        cfg = load_config(ExperimentConfig, config, overrides)
        path = check_new_run(out or next_run_dir("runs", cfg.name))  # before the hours of work
    # heavy imports only once the arguments are known good
    from sonogan.experiment.protocol import run_experiment
    from sonogan.experiment.report import headline_lines

    with resumable("experiment", path):
        # each fold's validation numbers as the fold ends, not only at the end of the run
        path = run_experiment(cfg, path, resume=resume is not None, executor=executor, address=address,
                              echo=lambda line: console.print(line, highlight=False, markup=False))
    results = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
    for line in headline_lines(results, results["rare_classes"]):
        console.print(line, highlight=False, markup=False)
    console.print(f"[green]experiment finished[/]: [bold]{path / 'report.html'}[/] (metrics.json, summary.md)")
