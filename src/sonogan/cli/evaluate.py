"""``sonogan evaluate``: external validation of a trained model on a dataset it never saw.

Example:
    $ sonogan evaluate runs/exp datasets/external --out runs/exp-external
    $ sonogan evaluate runs/exp datasets/external --arm baseline --arm augmented --out runs/exp-ext-gains
    $ sonogan evaluate runs/exp/folds/fold0/augmented/ensemble.json datasets/external --out runs/fold0-ext
    $ sonogan evaluate deploy/pipeline.json datasets/mmotu-test --masks ignore --out runs/pipeline-predicted-masks
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from sonogan.errors import SonoganInputError
from sonogan.runs import RunDir, check_new_run

console = Console()


def evaluate_command(
    model: Path = typer.Argument(..., help="An experiment run folder, a best.pt, an ensemble.json or a pipeline.json."),
    dataset: Path = typer.Argument(..., help="A sonogan dataset folder the model never saw."),
    out: Path = typer.Option(..., "--out", "-o", help="New folder for results.json, predictions.csv and the report."),
    arm: Optional[List[str]] = typer.Option(None, "--arm", help="Arm(s) of a run folder (default baseline); "
                                            "with several, gains of each over the first."),
    model_name: Optional[str] = typer.Option(None, "--model", help="Classifier name or 'ensemble' inside a run "
                                             "(default: the arm's ensemble, else its one classifier)."),
    fold: Optional[int] = typer.Option(None, "--fold", help="One fold's model instead of every fold averaged."),
    baseline: Optional[Path] = typer.Option(None, "--baseline", help="A reference model (file or run) "
                                            "evaluated first; MODEL's gains over it are reported."),
    resamples: int = typer.Option(1000, "--resamples", min=10, help="Bootstrap resamples."),
    max_distance: int = typer.Option(4, "--max-distance", min=0, max=32,
                                     help="Perceptual-hash bits within which an image is a near duplicate."),
    seed: int = typer.Option(0, "--seed", help="Bootstrap seed."),
    masks: Optional[str] = typer.Option(None, "--masks", help="Lesion crops of an ROI model: 'true' (the dataset's "
                                        "drawn masks) or 'ignore' (a pipeline's own predicted masks); default "
                                        "true where the dataset has masks, else the pipeline's."),
) -> None:
    """Apply MODEL to DATASET with its own preprocessing and calibration: metrics with CIs, duplicates, report.

    Example: sonogan evaluate runs/exp datasets/external --arm baseline --arm augmented --out runs/exp-ext
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.data.manifest import load_dataset
    from sonogan.infer.external import evaluate_external, masks_used
    from sonogan.infer.external_report import headline_rows, too_few_text, write_external_report
    from sonogan.infer.resolve import load_model

    if masks not in (None, "true", "ignore"):
        raise SonoganInputError("--masks", f"'{masks}' is not a choice", "use --masks true or --masks ignore")
    arms = list(arm or [])
    if baseline is not None and len(arms) > 1:
        raise SonoganInputError("--baseline", "cannot be combined with several --arm", "use one or the other")
    check_new_run(out)  # before any model is loaded or image decoded
    if arms:
        models = [(a, load_model(model, a, model_name, fold)) for a in arms]
    else:
        loaded = load_model(model, None, model_name, fold)
        models = [(loaded.files[0].arm or model.parent.name, loaded)]
    if baseline is not None:
        models.insert(0, ("reference", load_model(baseline)))
    if len({name for name, _ in models}) < len(models):
        models = [(f"{k}-{name}", m) for k, (name, m) in enumerate(models)]
    ds = load_dataset(dataset)
    for _, m in models:  # a --masks the model or dataset cannot honour: one line, before the run folder exists
        masks_used(m, ds, masks)
    with RunDir.create(out, seed=seed, kind="evaluate") as run:
        run.set_info(models={name: m.description for name, m in models}, dataset=str(dataset))
        result = evaluate_external(models, ds, n_resamples=resamples, seed=seed, max_distance=max_distance,
                                   keep_hashes_in=run.path / "hashes", progress=True, masks=masks)
        report = write_external_report(result, run.path)
    for row in headline_rows(result):
        console.print("  ".join(f"{k}: {v}" for k, v in row.items()), highlight=False, markup=False)
    if too_few_text(result):
        console.print(too_few_text(result), highlight=False, markup=False)
    if result.duplicates:
        console.print(f"[yellow]warning[/]: {len(result.duplicate_ids)} external image(s) duplicate training images "
                      "(numbers given with and without them)")
    elif result.duplicate_check != "done":
        console.print(f"duplicate check {result.duplicate_check}", highlight=False, markup=False)
    console.print(f"report: [bold]{report}[/]")
