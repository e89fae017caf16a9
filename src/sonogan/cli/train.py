"""``sonogan train``: train one classifier on a fold's real training images (early stopping on
its validation images) into a run folder; under torchrun, data-parallel over GPUs or nodes.

Example:
    $ sonogan train runs/phantom --fold 0 --out runs/clf-f0
    $ sonogan train --resume runs/clf-f0         # after a kill (its own config, dataset and splits copy)
    $ torchrun --nproc_per_node 2 -m sonogan.cli.main train runs/phantom --fold 0 \\
        --config my-classifier.yaml --out runs/clf-f0-ddp
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Optional

import typer
from rich.console import Console

from sonogan import layout
from sonogan.cli.resume import refuse_with_resume, resumable
from sonogan.config import load_config
from sonogan.errors import SonoganInputError
from sonogan.runs import check_new_run

if TYPE_CHECKING:  # imported when the command runs: sonogan.train brings torch, and --help should stay fast
    from sonogan.train.config import ClassifierTrainConfig

DEFAULT_PRESET = "flagship-64"
console = Console()


def _resumed(run: Path, dataset: Path | None) -> tuple[ClassifierTrainConfig, Path, str, str]:
    """(config, dataset, fold, preset) a resumed classifier run continues with: its own (:mod:`sonogan.layout`)."""
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.train.config import ClassifierTrainConfig

    info = layout.read_info(run)
    cfg = layout.resume_config(run, ClassifierTrainConfig)
    fold = "all" if info.get("fold") is None else str(info["fold"])
    return cfg, layout.resume_dataset(run, dataset), fold, info.get("preset", DEFAULT_PRESET)


def train_command(
    dataset: Optional[Path] = typer.Argument(None, help="Dataset folder (manifest.csv + dataset.yaml)."),
    splits: Optional[Path] = typer.Option(
        None, "--splits", help="splits.json (default: the dataset's, made by 'sonogan data split')."),
    fold: Optional[str] = typer.Option(
        None, "--fold", help="Fold to train on (default 0); 'all' = every non-test image (no validation)."),
    out: Optional[Path] = typer.Option(None, "--out", help="New run folder."),
    config: Optional[Path] = typer.Option(None, "--config", help="ClassifierTrainConfig YAML (default: the "
                                                                  "default config, a Frid-Adar CNN)."),
    preset: Optional[str] = typer.Option(
        None, "--preset", help=f"Preprocessing preset of the images (default {DEFAULT_PRESET})."),
    resume: Optional[Path] = typer.Option(
        None, "--resume", help="Continue an interrupted run folder (with its own config, dataset, splits copy, "
                               "fold and preset)."),
) -> None:
    """Train one classifier on a fold; run it under torchrun to use several GPUs or nodes (DDP).

    Example: torchrun --nproc_per_node 4 -m sonogan.cli.main train runs/phantom --fold 0
    --config clf.yaml --out runs/clf-f0
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.train.config import ClassifierTrainConfig
    from sonogan.train.distributed import is_main
    from sonogan.train.fold_run import train_on_fold

    refuse_with_resume("train", resume, {"--splits": splits, "--fold": fold, "--out": out, "--config": config,
                                         "--preset": preset})
    if resume is not None:
        cfg, dataset, fold, preset = _resumed(resume, dataset)
        out = resume
    else:
        if dataset is None or out is None:
            # no default --out: under torchrun every rank must name the same folder
            raise SonoganInputError("sonogan train", "no dataset given" if dataset is None else "no --out given",
                                    "pass DATASET and --out RUN (or --resume RUN)")
        check_new_run(out)  # before the dataset is read or a network built (every rank, before rank 0 makes it)
        cfg = load_config(ClassifierTrainConfig, config) if config is not None else ClassifierTrainConfig()
        fold = fold or "0"
        if fold != "all" and not fold.isdigit():
            raise SonoganInputError("--fold", f"'{fold}' is not a fold number", "pass 0, 1, ... or 'all'")
    with resumable("train", out):
        run = train_on_fold(dataset, splits, None if fold == "all" else int(fold), cfg, out,
                            preset=preset or DEFAULT_PRESET, resume=resume is not None)
    if is_main():
        console.print(f"classifier run -> [bold]{run}[/] (best.pt, history.json, metrics.json)")
