"""``sonogan export``: a trained model (``best.pt``) or ensemble (``ensemble.json``) as ONNX graphs.

Example:
    $ sonogan export runs/exp/folds/fold0/augmented/frid-adar-cnn/best.pt --onnx --out deploy/frid
    $ sonogan export runs/exp/ensemble.json --onnx --out deploy/ensemble

The folder holds one ``.onnx`` per member (normaliser and flip TTA inside the graph) and
``onnx_model.json``; :class:`sonogan.infer.onnx.OnnxPredictor` runs it with ONNX Runtime.
"""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

from sonogan.errors import SonoganInputError

console = Console()


def export_command(
    model: Path = typer.Argument(..., help="A classifier checkpoint (best.pt) or an ensemble file (ensemble.json)."),
    onnx: bool = typer.Option(False, "--onnx", help="Write ONNX graphs (the one export format so far)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the .onnx files and onnx_model.json."),
) -> None:
    """Export MODEL for deployment without PyTorch; every graph is checked against PyTorch.

    Example: sonogan export runs/exp/ensemble.json --onnx --out deploy/ensemble
    """
    if not onnx:
        raise SonoganInputError("export", "no export format chosen", "add --onnx")
    # imported here: torch and the exporter are slow to import, and --help should stay fast
    from sonogan.infer.onnx import META_NAME, export_onnx, read_onnx_meta

    folder = export_onnx(model, out)
    _, meta = read_onnx_meta(folder)
    console.print(f"{len(meta['members'])} member(s) -> [bold]{folder / META_NAME}[/] "
                  f"(max |ONNX - PyTorch| = {meta['max_abs_diff_vs_torch']:.1e})")
