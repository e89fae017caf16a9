"""``sonogan experiment``: the flagship protocol from one YAML config.

Example:
    $ sonogan experiment configs/demo.yaml --out runs/demo-experiment
    $ sonogan experiment --resume runs/demo-experiment
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

console = Console()


def experiment_command(
    config: Optional[Path] = typer.Argument(None, help="Experiment YAML (see configs/)."),
    out: Optional[Path] = typer.Option(None, "--out", help="New run folder (default runs/<name>-NNN)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run folder."),
    folds: Optional[str] = typer.Option(None, "--folds", help="Comma-separated folds to run (overrides the config)."),
) -> None:
    """GAN per fold on the rare classes, baseline vs augmented classifiers, CIs, paired gains, report.

    Example: sonogan experiment configs/demo.yaml --out runs/demo-experiment
    """
    from sonogan.config import load_config
    from sonogan.errors import SonoganInputError
    from sonogan.experiment.config import ExperimentConfig
    from sonogan.experiment.protocol import run_experiment
    from sonogan.runs import next_run_dir

    if resume is not None:
        path = run_experiment(None, resume, resume=True)
    else:
        if config is None:
            raise SonoganInputError("sonogan experiment", "no config given", "pass a YAML file, e.g. configs/demo.yaml")
        overrides = {"folds": [int(f) for f in folds.split(",")]} if folds else None
        cfg = load_config(ExperimentConfig, config, overrides)
        path = run_experiment(cfg, out or next_run_dir("runs", cfg.name))
    console.print(f"[green]experiment finished[/]: [bold]{path / 'report.html'}[/] (metrics.json, summary.md)")
