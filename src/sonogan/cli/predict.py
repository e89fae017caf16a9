"""``sonogan predict``: class probabilities of image and DICOM files, per image and per patient.

Example:
    $ sonogan predict runs/exp scans/ --out out/predictions.csv --explain
    $ sonogan predict runs/exp/folds/fold0/augmented/ensemble.json exam/ --patient-id case7 --out case7.csv
    $ sonogan predict runs/exp/folds/fold0/baseline/resnet10t/best.pt a.png b.png --mask a_mask.png --mask b_mask.png
    $ sonogan predict runs/mmotu-exp scans/ --segmenter runs/lesion-001/folds/fold0/segmentation/best.pt --out p.csv
    $ sonogan predict deploy/pipeline.json scans/ --out p.csv          # segmenter + ROI classifier: no mask needed
"""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer
from rich.console import Console

from sonogan.errors import SonoganInputError

console = Console()


def _print(line: str) -> None:
    # soft_wrap: a long file name stays on its line (one line per image or skipped file)
    console.print(line, highlight=False, markup=False, soft_wrap=True)


def predict_command(
    model: Path = typer.Argument(..., help="An experiment run folder, a best.pt, an ensemble.json, a pipeline.json "
                                 "(segmenter + lesion-ROI classifier) or an ONNX export folder."),
    inputs: List[Path] = typer.Argument(..., help="Image files, DICOM files and/or folders of them."),
    mask: Optional[List[Path]] = typer.Option(None, "--mask", help="Lesion mask per image file, in the same order."),
    segmenter: Optional[Path] = typer.Option(None, "--segmenter", help="A 'sonogan lesion' segmenter (best.pt) "
                                             "that finds the lesion on images without --mask."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="CSV per image; -patients.csv, -summary.json "
                                       "(and -explain/, -masks/) are written beside it."),
    masks_out: Optional[Path] = typer.Option(None, "--masks-out", help="New folder for the segmenter's mask PNG "
                                             "per image (default: <out>-masks/ beside the CSV)."),
    arm: Optional[str] = typer.Option(None, "--arm", help="Arm inside a run folder (default baseline)."),
    model_name: Optional[str] = typer.Option(None, "--model", help="Classifier name or 'ensemble' inside a run."),
    fold: Optional[int] = typer.Option(None, "--fold", help="One fold's model instead of every fold averaged."),
    patient_id: Optional[str] = typer.Option(None, "--patient-id", help="All inputs belong to this patient."),
    patients: Optional[Path] = typer.Option(None, "--patients", help="CSV with columns file, patient_id."),
    clinical: Optional[List[str]] = typer.Option(None, "--clinical", help="key=value, recorded with the prediction."),
    salt: Optional[str] = typer.Option(None, "--salt", help="Salt for DICOM patient hashes (the import's salt "
                                       "gives the dataset's ids; default: a random one)."),
    explain: bool = typer.Option(False, "--explain", help="Save a Grad-CAM PNG per image (needs --out)."),
    target_accuracy: float = typer.Option(0.90, "--target-accuracy", help="Referral: accuracy the answered "
                                          "validation images must reach; sets the confidence threshold."),
    refer_below: Optional[float] = typer.Option(None, "--refer-below", help="Referral threshold by hand "
                                                "(instead of choosing it on validation predictions)."),
    min_agreement: float = typer.Option(1.0, "--min-agreement", help="Refer a patient whose images agree less."),
) -> None:
    """Predict new images with the model's own preprocessing, normaliser and calibration; refer the unsure.

    Example: sonogan predict runs/exp scans/ --out out/predictions.csv --explain
    """
    # the command's code is imported when it runs, so `sonogan --help` starts without torch
    from sonogan.infer.decision import (check_new_folder, decide, decision_paths, masks_folder, operating_point,
                                        parse_clinical, write_decision, write_masks)
    from sonogan.infer.pipeline import is_pipeline
    from sonogan.infer.predict_files import collect_images, format_rows, read_inputs, read_patients
    from sonogan.infer.resolve import load_model

    if explain and out is None:
        raise SonoganInputError("--explain", "the heat maps need a place", "add --out FILE.csv")
    pipeline = is_pipeline(model)
    if pipeline and segmenter is not None:
        raise SonoganInputError("--segmenter", "the pipeline brings its own segmenter", "drop --segmenter")
    if masks_out is not None and not (pipeline or segmenter is not None):
        raise SonoganInputError("--masks-out", "no segmenter finds masks for this model",
                                "predict with a pipeline.json, or add --segmenter for a lesion-ROI model")
    masks_dir = masks_folder(out, masks_out) if pipeline or segmenter is not None else None
    # every output file checked before any work: a bad --out costs nothing
    planned = decision_paths(out, explain, masks_dir) if out is not None else {}
    if out is None and masks_dir is not None:
        check_new_folder(masks_dir)
    if patient_id and patients:
        raise SonoganInputError("--patient-id", "cannot be combined with --patients", "use one of them")
    values = parse_clinical(clinical or [])
    loaded = load_model(model, arm, model_name, fold)
    files, not_images = collect_images(inputs)
    items, unreadable = read_inputs(files, mask or None, salt, read_patients(patients) if patients else None,
                                    patient_id)
    skipped = not_images + unreadable  # every file of a folder is predicted or listed here with its reason
    if segmenter is not None and loaded.predictor.preset.roi != "lesion":
        _print("note: the model reads the whole scan area (no lesion ROI), so --segmenter is not used")
    decision = decide(loaded, items, skipped, operating_point(loaded, target_accuracy, min_agreement, refer_below),
                      values, segmenter)
    for line in format_rows(decision.images):
        _print(line)
    for row in decision.patients.itertuples():
        flag = f"  REFER ({row.refer_reason})" if getattr(row, "refer", False) else ""
        _print(f"patient {row.patient}: {row.predicted} (mean p {row.confidence:.2f}, vote {row.vote}, "
               f"agreement {row.agreement:.2f}, {row.images} image(s)){flag}")
    point = decision.operating_point
    _print(f"referral: {point.describe()}" if point else
           "referral: no operating point (the model has no validation predictions beside it); pass --refer-below")
    fallback = int((decision.images["roi"] == "whole scan (no mask)").sum())  # segmenter misses: the note below
    if fallback:
        _print(f"warning: {fallback} image(s) without a lesion mask: the lesion-ROI preset used the whole scan area "
               "(lower accuracy; give --mask or --segmenter)")
    if values:
        _print(f"clinical values recorded with the prediction, not used by this image-only model: {values}")
    if skipped:
        _print(f"skipped {len(skipped)} file(s)" + (f" (listed in {planned['summary']})" if planned else "") + ":")
    for item in skipped:
        _print(f"  {item['file']}: {item['reason']}")
    not_found = int((~decision.images["lesion_found"].astype(bool)).sum()) if "lesion_found" in decision.images else 0
    if decision.segmenter is not None and not_found:
        _print(f"note: the segmenter found no lesion on {not_found} image(s) (lesion_found false): "
               "classified on the whole scan area")
    if out is not None:
        paths = write_decision(decision, out, loaded if explain else None, masks_dir)
        console.print(f"{len(decision.images)} image(s), {len(decision.patients)} patient(s) -> [bold]{paths['images']}[/]"
                      + (f" (Grad-CAM in {paths['explain']})" if explain else ""))
    elif masks_dir is not None:
        write_masks(decision, masks_dir)
    if masks_dir is not None and masks_dir.is_dir():
        _print(f"lesion masks -> {masks_dir}")
