"""``sonogan predict``: class probabilities of image files from a trained model or ensemble.

Example:
    $ sonogan predict runs/exp/folds/fold0/augmented/ensemble.json scans/ --out predictions.csv
    $ sonogan predict runs/exp/folds/fold0/baseline/resnet10t/best.pt a.png b.png --mask a_mask.png --mask b_mask.png
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

console = Console()


def predict_command(
    model: Path = typer.Argument(..., help="A classifier checkpoint (best.pt) or an ensemble file (ensemble.json)."),
    inputs: List[Path] = typer.Argument(..., help="Image files and/or folders of images."),
    mask: Optional[List[Path]] = typer.Option(None, "--mask", help="Lesion mask per image, in the same order."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="CSV with every class's probability per image."),
) -> None:
    """Predict new images with the model's own preprocessing, normaliser and calibration.

    Example: sonogan predict runs/exp/folds/fold0/augmented/ensemble.json scans/ --out predictions.csv
    """
    from sonogan.errors import SonoganInputError
    from sonogan.infer.predict_files import collect_images, format_rows, predict_files
    from sonogan.infer.predictor import Predictor
    from sonogan.runs import atomic_write_text

    if out is not None and out.exists():
        raise SonoganInputError(out, "already exists", "choose a new --out file (results are never overwritten)")
    files = collect_images(inputs)
    table = predict_files(Predictor.load(model), files, mask or None)
    for line in format_rows(table):
        console.print(line, highlight=False, markup=False)
    if out is not None:
        atomic_write_text(out, table.to_csv(index=False))
        console.print(f"{len(table)} image(s) -> [bold]{out}[/]")
