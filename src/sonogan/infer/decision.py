"""Decision support for new cases: per-image and per-patient predictions, referral, explanations, files.

:func:`decide` runs one model on decoded inputs (:mod:`sonogan.infer.predict_files`),
aggregates per patient (:mod:`sonogan.infer.patient`) with the referral operating point
(:func:`operating_point`: chosen on the model's own validation predictions when it lies in an
experiment run, or given by hand) and, on request, saves a Grad-CAM PNG per image and a
lesion-outline PNG per image with a mask (:mod:`sonogan.infer.explain`).
:func:`write_decision` writes ``<out>.csv`` (images), ``<out>-patients.csv``,
``<out>-summary.json`` and the ``<out>-explain/`` folder beside each other.

Example:
    >>> loaded = load_model("runs/exp")                                          # doctest: +SKIP
    >>> items, skipped = read_inputs([Path("scans")])                            # doctest: +SKIP
    >>> result = decide(loaded, items, skipped, operating_point(loaded))         # doctest: +SKIP
    >>> write_decision(result, Path("out/predictions.csv"), explain=True)        # doctest: +SKIP
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import pandas as pd

from sonogan.csvsafe import safe_csv_text
from sonogan.errors import SonoganInputError
from sonogan.infer.explain import gradcam, overlay_heatmap, overlay_mask, save_png
from sonogan.infer.pipeline import Pipeline
from sonogan.infer.patient import (DEFAULT_TARGET_ACCURACY, OperatingPoint, aggregate_patients,
                                   choose_referral_threshold, manual_operating_point)
from sonogan.infer.predict_files import InputImage, locate_lesions, predict_items
from sonogan.infer.resolve import LoadedModel, validation_predictions
from sonogan.lesion.locator import load_locator
from sonogan.outpaths import check_output
from sonogan.runs import atomic_write_text, write_json

#: Grad-CAM PNGs of inputs smaller than this are enlarged (nearest neighbour) so they can be read.
MIN_FIGURE_PX = 256


@dataclass
class Decision:
    """What :func:`decide` found for one set of inputs."""

    model: str
    class_names: list[str]
    images: pd.DataFrame
    patients: pd.DataFrame
    operating_point: OperatingPoint | None
    skipped: list[dict[str, str]]
    items: list[InputImage] = field(repr=False)
    clinical: dict[str, str] = field(default_factory=dict)
    segmenter: str | None = None     # the lesion segmenter that made the masks, if any


def operating_point(loaded: LoadedModel, target_accuracy: float = DEFAULT_TARGET_ACCURACY,
                    min_agreement: float = 1.0, refer_below: float | None = None) -> OperatingPoint | None:
    """A hand-given threshold, else one chosen on the model's validation predictions, else None."""
    if refer_below is not None:
        return manual_operating_point(refer_below, min_agreement)
    found = validation_predictions(loaded)
    if found is None:
        return None
    probs, y, source = found
    return choose_referral_threshold(probs, y, target_accuracy, min_agreement, source)


def parse_clinical(pairs: Sequence[str]) -> dict[str, str]:
    """``["age=54", "ca125=35"]`` -> ``{"age": "54", "ca125": "35"}``."""
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise SonoganInputError("--clinical", f"'{pair}' is not key=value", "pass e.g. --clinical age=54")
        out[key.strip()] = value.strip()
    return out


def decide(loaded: LoadedModel, items: Sequence[InputImage], skipped: list[dict[str, str]],
           point: OperatingPoint | None, clinical: dict[str, str] | None = None,
           segmenter: Path | None = None) -> Decision:
    """Predict every image (images without a mask get the ``segmenter``'s, when one is given),
    then aggregate per patient with the referral flag."""
    pipeline = loaded.predictor if isinstance(loaded.predictor, Pipeline) else None
    if pipeline is not None:  # the pipeline's own segmenter; a --segmenter is refused by the command
        locate_lesions(items, pipeline.locator)
    elif segmenter is not None and loaded.predictor.preset.roi == "lesion":
        locate_lesions(items, load_locator(segmenter))
    names = loaded.class_names
    images = predict_items(loaded.predictor, items, names)
    patients = aggregate_patients(images, "patient", names, point)
    used = pipeline.files["segmenter"] if pipeline is not None else segmenter
    return Decision(loaded.description, names, images, patients, point, skipped, list(items), dict(clinical or {}),
                    None if used is None else str(used))


def _stem(k: int, item: InputImage) -> str:
    # numbered, so two inputs of one name never collide; a DICOM frame is named by number only
    return f"{k + 1:04d}-{'dicom' if item.frame else Path(item.file).stem}" + (f"-f{item.frame}" if item.frame else "")


def write_masks(decision: Decision, folder: Path) -> list[str]:
    """Save the segmenter's mask of every image as ``NNNN-<name>-mask.png`` (0 / 255, the image's
    own size) in ``folder``; returns each row's file name ("" for a given or no mask)."""
    names = []
    for k, item in enumerate(decision.items):
        if item.mask_source != "segmenter" or item.mask is None:
            names.append("")
            continue
        grey = np.where(item.mask > 0, 255, 0).astype(np.uint8)
        names.append(save_png(grey, folder / f"{_stem(k, item)}-mask.png").name)
    return names


def explain(loaded: LoadedModel, decision: Decision, folder: Path) -> list[str]:
    """Save one Grad-CAM overlay per image (for its predicted class) and, with a mask, the
    lesion outline on the input; returns the Grad-CAM file names (in table order)."""
    names = []
    for k, (item, predicted) in enumerate(zip(decision.items, decision.images["predicted"])):
        pixels = loaded.predictor.prepare(item.image, item.mask)
        heat = gradcam(loaded.predictor, pixels, decision.class_names.index(predicted))
        stem = _stem(k, item)
        scale = int(np.ceil(MIN_FIGURE_PX / pixels.shape[0]))
        names.append(save_png(overlay_heatmap(pixels, heat), folder / f"{stem}-gradcam.png", scale).name)
        if item.mask is not None:
            save_png(overlay_mask(item.image, item.mask), folder / f"{stem}-lesion.png")
    return names


def summary(decision: Decision) -> dict[str, Any]:
    """The JSON summary: model, operating point, counts, skipped files, clinical values."""
    op = decision.operating_point
    p = decision.patients
    return {"model": decision.model, "class_names": decision.class_names, "images": len(decision.images),
            "patients": len(p), "referred": int(p["refer"].sum()) if "refer" in p else None,
            "operating_point": None if op is None else {**op.to_dict(), "rule": op.describe()},
            "skipped": decision.skipped, "clinical": decision.clinical,
            "whole_scan_fallback": int(decision.images["roi"].str.startswith("whole scan").sum()),
            "segmenter": decision.segmenter,
            "intended_use": "decision support / second reader; not a diagnosis"}


def masks_folder(out: Path | None, masks_out: Path | None) -> Path | None:
    """Where the segmenter's mask PNGs go: ``masks_out``, else ``<out>-masks/`` beside the CSV."""
    if masks_out is not None:
        return Path(masks_out)
    return None if out is None else Path(f"{Path(out).with_suffix('')}-masks")


def check_new_folder(path: Path) -> None:
    """``path`` can be made as a new output folder (one line and exit 2 otherwise)."""
    check_output(path, "folder")
    if path.exists():  # a folder is fine to check_output; here it must be new
        raise SonoganInputError(path, "already exists", "choose a new output (results are never overwritten)")


def decision_paths(out: Path, explain: bool = False, masks: Path | None = None) -> dict[str, Path]:
    """The files :func:`write_decision` writes for ``out`` (and the ``masks`` folder), each
    checked as a new output (:func:`sonogan.outpaths.check_output`): call it before predicting,
    so a bad --out costs no work; missing parent folders are made when writing."""
    out = Path(out)
    stem = out.with_suffix("")
    paths = {"images": out, "patients": Path(f"{stem}-patients.csv"), "summary": Path(f"{stem}-summary.json")}
    if explain:
        paths["explain"] = Path(f"{stem}-explain")
    if masks is not None:
        paths["masks"] = Path(masks)
    for key, path in paths.items():
        if key in ("explain", "masks"):
            check_new_folder(path)
        else:
            check_output(path, "file")
    return paths


def write_decision(decision: Decision, out: Path, loaded: LoadedModel | None = None,
                   masks: Path | None = None) -> dict[str, Path]:
    """Write the files beside ``out`` (a new .csv path); with ``loaded``, the Grad-CAM folder
    too; with ``masks``, the segmenter's mask PNGs there (column ``mask_png``, relative to the CSV)."""
    out = Path(out)
    paths = decision_paths(out, explain=loaded is not None, masks=masks)
    out.parent.mkdir(parents=True, exist_ok=True)
    images = decision.images.copy()
    for key, value in decision.clinical.items():
        images[f"clinical_{key}"] = value
    if loaded is not None:
        images["gradcam"] = [f"{paths['explain'].name}/{n}" for n in explain(loaded, decision, paths["explain"])]
    if masks is not None:
        where = Path(os.path.relpath(Path(masks).resolve(), out.parent.resolve())).as_posix()
        images["mask_png"] = [f"{where}/{n}" if n else "" for n in write_masks(decision, Path(masks))]
    # file names, patient ids and clinical values are the user's text: never a spreadsheet formula
    atomic_write_text(paths["patients"], safe_csv_text(decision.patients))
    write_json(paths["summary"], {**summary(decision), "masks": None if masks is None else str(masks)})
    atomic_write_text(out, safe_csv_text(images))  # last: its presence marks a complete prediction
    return paths
