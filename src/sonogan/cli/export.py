"""``sonogan export``: a trained model as ONNX graphs, and its model card.

Example:
    $ sonogan export runs/exp/folds/fold0/augmented/frid-adar-cnn/best.pt --onnx --out deploy/frid
    $ sonogan export runs/exp/ensemble.json --onnx --out deploy/ensemble
    $ sonogan export runs/exp --card --out cards/exp --external runs/exp-external

The ONNX folder holds one ``.onnx`` per member (normaliser and flip TTA inside the graph) and
``onnx_model.json``; :class:`sonogan.infer.onnx.OnnxPredictor` runs it with ONNX Runtime. A
model inside an experiment run also gets its run's ``model_card.md`` / ``.json`` beside the graphs.
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from sonogan.errors import SonoganInputError
from sonogan.layout import read_info

console = Console()


def export_command(
    model: Path = typer.Argument(..., help="A best.pt or ensemble.json (--onnx), or a run folder (--card)."),
    onnx: bool = typer.Option(False, "--onnx", help="Write ONNX graphs."),
    card: bool = typer.Option(False, "--card", help="Write the run's model card (model_card.md, model_card.json)."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the exported files."),
    external: Optional[List[Path]] = typer.Option(None, "--external", help="'sonogan evaluate' folders to cite "
                                                  "as external validation in the card."),
) -> None:
    """Export MODEL for deployment without PyTorch (every graph checked against PyTorch) and/or its model card.

    Example: sonogan export runs/exp/ensemble.json --onnx --out deploy/ensemble
    """
    if not (onnx or card):
        raise SonoganInputError("export", "no export format chosen", "add --onnx and/or --card")
    # imported here: torch and the exporter are slow to import, and --help should stay fast
    from sonogan.infer.model_card import write_model_card
    from sonogan.infer.resolve import RUN_FILE, find_run

    is_run = model.is_dir() and (model / RUN_FILE).is_file()
    run_dir = model if is_run else find_run(model).run_dir
    kind = read_info(run_dir).get("kind") if run_dir is not None else None
    if kind in ("lesion", "annotation-remover"):
        # the model card and the ONNX graphs describe an experiment's classifiers (preset,
        # normaliser, fusion); a lesion or remover model needs its own exporter
        raise SonoganInputError(model, f"export takes experiment classifiers; this is a {kind} run's model",
                                "use the checkpoint itself (remover.pt / best.pt) where it is needed, "
                                "or export a 'sonogan experiment' run")
    if kind is not None and kind != "experiment":
        run_dir = None  # a run of another kind (e.g. 'sonogan train'): no experiment card
    if card and run_dir is None:
        raise SonoganInputError(model, "is not inside an experiment run, so its training data is unknown",
                                "pass the run folder (or a model inside one) for --card")
    if onnx:
        if is_run:
            raise SonoganInputError(model, "ONNX export takes one model file, not a run folder",
                                    "pass a best.pt or ensemble.json (e.g. folds/fold0/baseline/ensemble.json)")
        from sonogan.infer.onnx import META_NAME, export_onnx, read_onnx_meta

        folder = export_onnx(model, out)
        _, meta = read_onnx_meta(folder)
        console.print(f"{len(meta['members'])} member(s) -> [bold]{folder / META_NAME}[/] "
                      f"(max |ONNX - PyTorch| = {meta['max_abs_diff_vs_torch']:.1e})")
    if card or run_dir is not None:
        md, _ = write_model_card(run_dir, out, external or [])  # type: ignore[arg-type]
        console.print(f"model card -> [bold]{md}[/]")
