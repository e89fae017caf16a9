"""``sonogan lesion``: segmentation, multitask, clinical fusion and cascade arms from one YAML config.

Example:
    $ sonogan lesion configs/lesion/demo.yaml --out runs/lesion-demo
    $ sonogan lesion --resume runs/lesion-demo
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console

from sonogan.cli.experiment import parse_folds
from sonogan.cli.resume import refuse_with_resume, resumable
from sonogan.config import load_config
from sonogan.errors import SonoganInputError
from sonogan.runs import check_new_run, next_run_dir

console = Console()


def headline(results: dict[str, Any]) -> list[str]:
    """One line per view: cross-validated accuracy or mean IoU with its CI.

    >>> headline({"classification": {"multitask": {"cv": {"accuracy": {"point": .7, "low": .6, "high": .8}}}},
    ...           "segmentation": {}})
    ['multitask: accuracy 0.700 [0.600, 0.800]']
    """
    lines = []
    for kind, key in (("segmentation", "mean_iou"), ("classification", "accuracy")):
        for name, res in results[kind].items():
            m = res["cv"][key]
            lines.append(f"{name}: {key.replace('_', ' ')} {m['point']:.3f} [{m['low']:.3f}, {m['high']:.3f}]")
    return lines


def lesion_command(
    config: Optional[Path] = typer.Argument(None, help="Lesion experiment YAML (see configs/lesion/*.yaml)."),
    out: Optional[Path] = typer.Option(None, "--out", help="New run folder (default runs/<name>-NNN)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue an interrupted run folder (with its own config)."),
    folds: Optional[str] = typer.Option(None, "--folds", help="Comma-separated folds to run (overrides the config)."),
) -> None:
    """Segmentation-only, classification-only, multitask, clinical fusion and cascade models per fold; IoU,
    accuracy, CIs and paired gains in metrics.json.

    Example: sonogan lesion configs/lesion/demo.yaml --out runs/lesion-demo
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.lesion.config import LesionExperimentConfig

    refuse_with_resume("lesion", resume, {"a CONFIG": config, "--folds": folds, "--out": out})
    if resume is None and config is None:
        raise SonoganInputError("sonogan lesion", "no config given", "pass a YAML file, e.g. configs/lesion/demo.yaml")
    cfg = None
    if resume is None:
        overrides = {"folds": parse_folds(folds)} if folds else None
        cfg = load_config(LesionExperimentConfig, config, overrides)
    # a new run folder checked before the hours of work
    path = resume if resume is not None else check_new_run(out or next_run_dir("runs", cfg.name))
    from sonogan.lesion.protocol import run_lesion  # heavy imports once the arguments are good

    with resumable("lesion", path):
        run_lesion(cfg, path, resume=resume is not None,
                   echo=lambda line: console.print(line, highlight=False, markup=False))
    for line in headline(json.loads((path / "metrics.json").read_text(encoding="utf-8"))):
        console.print(line, highlight=False, markup=False)
    console.print(f"[green]lesion experiment finished[/]: [bold]{path / 'metrics.json'}[/]")
