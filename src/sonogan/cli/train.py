"""``sonogan train``: train one classifier on a fold's real training images (early stopping on
its validation images) into a run folder; under torchrun, data-parallel over GPUs or nodes.

Example:
    $ sonogan train runs/phantom --splits runs/phantom/splits.json --fold 0 --out runs/clf-f0
    $ torchrun --nproc_per_node 2 -m sonogan.cli.main train runs/phantom --splits runs/phantom/splits.json \\
        --fold 0 --config my-classifier.yaml --out runs/clf-f0-ddp
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from sonogan.config import load_config
from sonogan.errors import RunInterrupted, SonoganInputError

console = Console()


def train_command(
    dataset: Path = typer.Argument(..., help="Dataset folder (manifest.csv + dataset.yaml)."),
    splits: Path = typer.Option(..., "--splits", help="splits.json made by 'sonogan data split'."),
    fold: str = typer.Option("0", "--fold", help="Fold to train on; 'all' = every non-test image (no validation)."),
    out: Path = typer.Option(..., "--out", help="New run folder (or the run to continue with --resume)."),
    config: Optional[Path] = typer.Option(None, "--config", help="ClassifierTrainConfig YAML (default: the "
                                                                  "default config, a Frid-Adar CNN)."),
    preset: str = typer.Option("flagship-64", "--preset", help="Preprocessing preset of the images."),
    resume: bool = typer.Option(False, "--resume", help="Continue the run in --out (with its own config)."),
) -> None:
    """Train one classifier on a fold; run it under torchrun to use several GPUs or nodes (DDP).

    Example: torchrun --nproc_per_node 4 -m sonogan.cli.main train runs/phantom --splits
    runs/phantom/splits.json --fold 0 --config clf.yaml --out runs/clf-f0
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.train.config import ClassifierTrainConfig
    from sonogan.train.distributed import is_main
    from sonogan.train.fold_run import train_on_fold

    if resume:
        config = out / "config.yaml"  # a resumed run keeps its own options
    cfg = load_config(ClassifierTrainConfig, config) if config is not None else ClassifierTrainConfig()
    if fold != "all" and not fold.isdigit():
        raise SonoganInputError("--fold", f"'{fold}' is not a fold number", "pass 0, 1, ... or 'all'")
    try:
        run = train_on_fold(dataset, splits, None if fold == "all" else int(fold), cfg, out, preset=preset,
                            resume=resume)
    except KeyboardInterrupt as exc:
        if not (out / "run.json").is_file():
            raise
        again = ["sonogan", "train", str(dataset), "--splits", str(splits), "--fold", fold, "--preset", preset,
                 "--out", str(out), "--resume"]
        raise RunInterrupted(out, shlex.join(again)) from exc
    if is_main():
        console.print(f"classifier run -> [bold]{run}[/] (best.pt, history.json, metrics.json)")
