"""``sonogan export``: a trained model as ONNX graphs, and its model card.

Example:
    $ sonogan export runs/exp/folds/fold0/augmented/frid-adar-cnn/best.pt --onnx --out deploy/frid
    $ sonogan export runs/exp/ensemble.json --onnx --out deploy/ensemble
    $ sonogan export runs/lesion-demo/folds/fold0/multitask/best.pt --onnx --out deploy/lesion
    $ sonogan export runs/annotations/mmotu --onnx --out deploy/remover
    $ sonogan export deploy/pipeline.json --onnx --out deploy/pipeline-onnx
    $ sonogan export runs/exp --card --out cards/exp --external runs/exp-external

The ONNX folder holds one ``.onnx`` per member (normaliser and flip TTA inside the graph) and
``onnx_model.json``; :class:`sonogan.infer.onnx.OnnxPredictor` runs it with ONNX Runtime. A
lesion arm that classifies the whole scan (classification, multitask) is one such member; an
arm that needs clinical values or its segmenter's crops is refused. An annotation remover
becomes ``detector.onnx`` + ``remover.onnx`` with ``onnx_remover.json``; a ``pipeline.json``
(segmenter + lesion-ROI classifier) becomes ``segmenter.onnx`` + ``classifier/`` + a ``pipeline.json``
pointing at them. A model inside an
experiment run also gets its run's ``model_card.md`` / ``.json`` beside the graphs.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from sonogan.errors import SonoganInputError
from sonogan.layout import REMOVER_FILE, read_info
from sonogan.outpaths import check_output

console = Console()


def _write_onnx(model: Path, out: Path, remover: bool) -> None:
    """The ONNX graphs of ``model`` in ``out``: a remover's detector and remover, else a classifier's members."""
    # imported here: torch and the exporter are slow to import, and --help should stay fast
    from sonogan.infer import onnx
    from sonogan.infer.resolve import export_predictor

    from sonogan.infer.pipeline import CLASSIFIER_ONNX, FILE_NAME, export_pipeline_onnx, is_pipeline

    if is_pipeline(model):
        folder = export_pipeline_onnx(model, out)
        seg = json.loads((folder / FILE_NAME).read_text(encoding="utf-8"))["segmenter_onnx"]
        _, meta = onnx.read_onnx_meta(folder / CLASSIFIER_ONNX)
        console.print(f"segmenter + {len(meta['members'])} classifier member(s) -> [bold]{folder / FILE_NAME}[/] "
                      f"(max |ONNX - PyTorch| = {max(seg['max_abs_diff_vs_torch'], meta['max_abs_diff_vs_torch']):.1e})")
        return
    if remover:
        folder = onnx.export_remover_onnx(model, out)
        meta = json.loads((folder / onnx.REMOVER_META_NAME).read_text(encoding="utf-8"))
        console.print(f"detector and remover -> [bold]{folder / onnx.REMOVER_META_NAME}[/] "
                      f"(max |ONNX - PyTorch| = {meta['max_abs_diff_vs_torch']:.1e})")
        return
    folder = onnx.export_onnx(export_predictor(model), out)
    _, meta = onnx.read_onnx_meta(folder)
    console.print(f"{len(meta['members'])} member(s) -> [bold]{folder / onnx.META_NAME}[/] "
                  f"(max |ONNX - PyTorch| = {meta['max_abs_diff_vs_torch']:.1e})")


def export_command(
    model: Path = typer.Argument(..., help="A best.pt or ensemble.json (experiment, train, lesion), a pipeline.json, "
                                          "a remover.pt or remover run (--onnx); an experiment run folder (--card)."),
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
    check_output(out, "folder")  # a parent that is a file, a read-only or system folder: one line, before any export
    # imported here: torch and the exporter are slow to import, and --help should stay fast
    from sonogan.infer.model_card import write_model_card
    from sonogan.infer.resolve import REMOVER_KIND, RUN_FILE, find_run

    is_run = model.is_dir() and (model / RUN_FILE).is_file()
    run_dir = model if is_run else find_run(model).run_dir
    kind = read_info(run_dir).get("kind") if run_dir is not None else None
    remover = kind == REMOVER_KIND or model.name == REMOVER_FILE
    if remover and is_run:
        model, is_run = model / REMOVER_FILE, False  # the run's one model
    if kind != "experiment":
        run_dir = None  # a lesion, remover or 'sonogan train' run: the card describes an experiment's classifiers
    if card and run_dir is None:
        raise SonoganInputError(model, "is not inside an experiment run, so its training data is unknown",
                                "pass the run folder (or a model inside one) for --card")
    if onnx:
        if is_run:
            raise SonoganInputError(model, "ONNX export takes one model file, not a run folder",
                                    "pass a best.pt or ensemble.json (e.g. folds/fold0/baseline/ensemble.json, "
                                    "or a lesion run's folds/fold0/classification/best.pt)")
        _write_onnx(model, out, remover)
    if card or run_dir is not None:
        md, _ = write_model_card(run_dir, out, external or [])  # type: ignore[arg-type]
        console.print(f"model card -> [bold]{md}[/]")
