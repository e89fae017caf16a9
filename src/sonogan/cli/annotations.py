"""``sonogan annotations``: train, apply and evaluate the burned-in annotation remover.

Example:
    $ sonogan annotations train runs/mmotu --out runs/annotations/mmotu --iterations 1500
    $ sonogan annotations train --resume runs/annotations/mmotu
    $ sonogan annotations apply runs/annotations/mmotu/remover.pt scans/ --out scans-clean/
    $ sonogan annotations evaluate runs/annotations/mmotu/remover.pt
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from sonogan.cli.resume import refuse_with_resume, resumable
from sonogan.config import load_config, parse_config
from sonogan.errors import SonoganInputError
from sonogan.outpaths import check_new_folder, check_output
from sonogan.runs import check_new_run, next_run_dir, write_json

console = Console()
annotations_app = typer.Typer(no_args_is_help=True, help="Remove burned-in annotations (text, arrows, callipers).")


def _summary(m: dict) -> None:
    for key in ("before", "after", "gain"):
        v = m[key]
        console.print(f"{key:>6}: PSNR {v['psnr']:.2f} dB, SSIM {v['ssim']:.3f}, inside the marks PSNR "
                      f"{v['region_psnr']:.2f} dB, MAE {v['region_mae']:.3f}", highlight=False)
    console.print(f"detector accuracy {m['detector_accuracy']:.3f} on {m['n_pairs']} held-out pairs", highlight=False)


@annotations_app.command("train")
def train_command(
    dataset: Optional[Path] = typer.Argument(None, help="Dataset folder (clean images, masks optional); its "
                                             "splits from 'sonogan data split'."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="New run folder (default runs/annotations-NNN)."),
    resume: Optional[Path] = typer.Option(None, "--resume", help="Continue a killed run folder (with its own "
                                          "config, dataset and splits)."),
    config: Optional[Path] = typer.Option(None, "--config", "-c", help="YAML RemoverTrainConfig."),
    fold: Optional[int] = typer.Option(None, "--fold", help="Train on this fold's training partition."),
    iterations: Optional[int] = typer.Option(None, "--iterations"),
    seed: Optional[int] = typer.Option(None, "--seed"),
) -> None:
    """Train the remover and detector on synthetic marks drawn on the fold's training images.

    Example: sonogan annotations train runs/mmotu --out runs/annotations/mmotu
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.annotations.train import RemoverTrainConfig, train_remover

    refuse_with_resume("annotations train", resume, {"a DATASET": dataset, "--out": out, "--config": config,
                                                     "--fold": fold, "--iterations": iterations, "--seed": seed})
    cfg = None
    if resume is None:
        if dataset is None:
            raise SonoganInputError("sonogan annotations train", "no dataset given",
                                    "pass the DATASET folder (or --resume RUN)")
        overrides = {k: v for k, v in {"fold": fold, "iterations": iterations, "seed": seed}.items() if v is not None}
        cfg = (load_config(RemoverTrainConfig, config, overrides) if config is not None else
               parse_config(RemoverTrainConfig, overrides, "options"))
    run = resume if resume is not None else check_new_run(out or next_run_dir("runs", "annotations"))
    with resumable("annotations train", run):
        path = train_remover(dataset, run, cfg, resume=resume is not None, progress=True)
    _summary(json.loads((run / "metrics.json").read_text(encoding="utf-8")))
    console.print(f"remover -> [bold]{path}[/]  (use it: export SONOGAN_ANNOTATION_REMOVER={path.resolve()})")


@annotations_app.command("apply")
def apply_command(
    checkpoint: Path = typer.Argument(..., help="remover.pt from 'sonogan annotations train'."),
    inputs: List[Path] = typer.Argument(..., help="Image files, DICOM files and/or folders."),
    out: Path = typer.Option(..., "--out", "-o", help="New folder for the cleaned PNGs and annotations.csv."),
    all_images: bool = typer.Option(False, "--all", help="Apply to every image, not only those the detector flags."),
    threshold: float = typer.Option(0.5, "--threshold", help="Detector probability from which the remover runs."),
) -> None:
    """Write every input without its burned-in annotations.

    Example: sonogan annotations apply runs/annotations/mmotu/remover.pt scans/ --out scans-clean/
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.annotations.apply import apply_to_files

    check_new_folder(out)  # before the remover is loaded or an image decoded
    table = apply_to_files(checkpoint, inputs, out, "all" if all_images else "detected", threshold)
    console.print(f"{int(table['removed'].sum())} of {len(table)} images cleaned -> [bold]{out}[/] "
                  "(annotations.csv lists the detector's probabilities)")


@annotations_app.command("evaluate")
def evaluate_command(
    checkpoint: Path = typer.Argument(..., help="remover.pt from 'sonogan annotations train'."),
    dataset: Optional[Path] = typer.Argument(None, help="Dataset (default: the one it was trained on)."),
    fold: Optional[int] = typer.Option(None, "--fold", help="Its validation images are used (default: the training fold)."),
    n_pairs: int = typer.Option(200, "--pairs", help="Held-out synthetic pairs."),
    seed: int = typer.Option(1, "--seed"),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Also write the metrics to this new JSON file."),
) -> None:
    """PSNR / SSIM before and after, inside the marks and overall, and detector accuracy.

    Example: sonogan annotations evaluate runs/annotations/mmotu/remover.pt
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.annotations.evaluate import evaluate_checkpoint

    if out is not None:  # an existing file, a parent that is a file, a read-only place: one line, before work
        check_output(out, "file")
    metrics = evaluate_checkpoint(checkpoint, dataset, fold, n_pairs, seed)
    _summary(metrics)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json(out, metrics)
