"""Predict image and DICOM files (or folders of them) with a trained model: one row per image.

Image files are decoded by the pipeline's own safe decoder (:func:`sonogan.imageio.decode_image`:
the pixel limit is checked from the header, images under :data:`~sonogan.imageio.MIN_SIDE` px
a side are refused); DICOM files go through the DICOM
importer's own path (:func:`sonogan.data.importers.dicom.read_cropped`: decoded, every frame
cropped to the scan region, the patient only as a salted hash), so a file gets exactly the
pixels it would have had in training. Then the model's own preset prepares them. Lesion masks
are optional (a lesion-ROI preset without a mask uses the whole scan area, and the row says so).

Patients: ``patient_id`` given for all inputs, a table ``file -> patient_id``, the salted
DICOM PatientID, or else every file is its own patient.

Example:
    >>> items, skipped = read_inputs([Path("scan.png"), Path("exam/IMG0001")])          # doctest: +SKIP
    >>> table = predict_items(Predictor.load("runs/exp/folds/fold0/baseline/m/best.pt"), items)  # doctest: +SKIP
    >>> table.columns[:6].tolist()                                                       # doctest: +SKIP
    ['file', 'frame', 'patient', 'predicted', 'confidence', 'roi']
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
from pydicom.misc import is_dicom

from sonogan.data.importers.dicom import Skip, read_cropped
from sonogan.errors import SonoganInputError
from sonogan.infer.predictor import ImageInput
from sonogan.imageio import MIN_SIDE, decode_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
DICOM_SUFFIXES = {".dcm", ".dicom"}


@dataclass
class InputImage:
    """One image to predict: where it came from, whose it is, its decoded RGB pixels."""

    file: str
    frame: int            # 1-based DICOM frame; 0 for an image file
    patient: str
    image: np.ndarray     # uint8 (H, W, 3), as decode_image gives a PNG of it
    mask: np.ndarray | None = None
    crop: str = ""        # DICOM crop method (regions / table / scan_area)
    mask_source: str = ""  # "given" (--mask) or "segmenter"


def _is_dicom(path: Path) -> bool:
    return path.suffix.lower() in DICOM_SUFFIXES or (path.suffix.lower() not in IMAGE_SUFFIXES and is_dicom(path))


def skip_reason(path: Path) -> str | None:
    """Why a file found in an input folder is not predicted, or None (predict it). Only the
    name and, without an image suffix, the DICOM preamble are read: a file that claims to be an
    image but cannot be decoded is not skipped, the decoder names it."""
    if path.name.startswith("."):
        return "hidden file"
    if path.suffix.lower() in IMAGE_SUFFIXES or _is_dicom(path):
        return None
    return (f"not an image or DICOM file ({path.suffix.lower() or 'no extension'}; predict reads "
            f"{', '.join(sorted(IMAGE_SUFFIXES))} and DICOM)")


def collect_images(inputs: Sequence[Path]) -> tuple[list[Path], list[dict[str, str]]]:
    """Image and DICOM files among ``inputs`` (files as given, folders searched recursively,
    sorted), and every other file found in a folder with the reason it is skipped
    (``file``, ``reason``), so no file is left out without a word."""
    files: list[Path] = []
    skipped: list[dict[str, str]] = []
    for path in map(Path, inputs):
        if path.is_dir():
            for found in sorted(p for p in path.rglob("*") if p.is_file()):
                why = skip_reason(found)
                if why is None:
                    files.append(found)
                else:
                    skipped.append({"file": str(found), "reason": why})
        elif path.is_file():
            files.append(path)
        else:
            raise SonoganInputError(path, "no such file or folder", "pass image or DICOM files or folders of them")
    if not files:
        first = f" ({len(skipped)} files skipped; first: {skipped[0]['file']}: {skipped[0]['reason']})" if skipped else ""
        raise SonoganInputError(", ".join(map(str, inputs)), f"no image or DICOM files found{first}",
                                f"pass files or folders with {', '.join(sorted(IMAGE_SUFFIXES))} images or DICOM")
    return files, skipped


def read_patients(path: Path) -> dict[str, str]:
    """``file,patient_id`` CSV -> {resolved path and bare file name: patient id}."""
    table = pd.read_csv(path, dtype=str, keep_default_na=False)
    if not {"file", "patient_id"} <= set(table.columns):
        raise SonoganInputError(path, "needs the columns file and patient_id", "one row per input file")
    out = {}
    for file, patient in zip(table["file"], table["patient_id"]):
        out[str((path.parent / file).resolve())] = patient
        out.setdefault(Path(file).name, patient)
    return out


def _as_rgb(frame: np.ndarray) -> np.ndarray:
    # what decode_image returns for the PNG the importer would write: grey becomes three equal channels
    return np.repeat(frame[..., None], 3, axis=2) if frame.ndim == 2 else frame[..., :3]


def read_inputs(files: Sequence[Path], masks: Sequence[Path | None] | None = None, salt: str | None = None,
                patients: Mapping[str, str] | None = None, patient_id: str | None = None,
                ) -> tuple[list[InputImage], list[dict[str, str]]]:
    """Decode every file (DICOM: every frame, cropped); returns the images and the skipped files.

    ``salt``: for the DICOM patient hashes (the import's salt gives the import's ids); None = a
    random one, so ids group this call's files and cannot be linked to anything else.
    """
    masks = list(masks) if masks is not None else [None] * len(files)
    if len(masks) != len(files):
        raise SonoganInputError("--mask", f"{len(masks)} masks for {len(files)} images", "give one mask per image")
    salt = salt or secrets.token_hex(16)
    fix = "pass a readable PNG/JPEG image"
    items: list[InputImage] = []
    skipped: list[dict[str, str]] = []
    for file, mask in zip(map(Path, files), masks):
        given = (patients or {}).get(str(file.resolve())) or (patients or {}).get(file.name)
        if _is_dicom(file):
            if mask is not None:
                raise SonoganInputError(mask, "a mask for a DICOM file", "masks go with image files only")
            try:
                dcm = read_cropped(file, salt)
            except Skip as why:
                skipped.append({"file": str(file), "reason": str(why)})
                continue
            patient = patient_id or given or dcm.patient or f"file-{dcm.file_hash}"
            items += [InputImage(str(file), k, patient, _as_rgb(f), None, dcm.crop)
                      for k, f in enumerate(dcm.frames, start=1)]
        else:
            # the safe decoder: pixel limit from the header, and no thumbnail-sized "scans"
            lesion = None if mask is None else decode_image(Path(mask), grey=True, fix=fix, min_side=MIN_SIDE)
            image = decode_image(file, fix=fix, min_side=MIN_SIDE)
            items.append(InputImage(str(file), 0, patient_id or given or str(file), image,
                                    lesion, mask_source="" if lesion is None else "given"))
    if not items:
        first = f" (first: {skipped[0]['file']}: {skipped[0]['reason']})" if skipped else ""
        raise SonoganInputError("predict", f"no image could be read{first}", "pass ultrasound images or DICOM files")
    return items, skipped


def locate_lesions(items: Sequence[InputImage], locator: Any) -> int:
    """Give every image without a mask the lesion mask a trained segmenter finds
    (:class:`sonogan.lesion.locator.Locator`); returns how many were found non-empty."""
    todo = [i for i in items if i.mask is None]
    for item, mask in zip(todo, locator.predict_masks([i.image for i in todo]) if todo else []):
        item.mask, item.mask_source = mask.astype(np.uint8), "segmenter"
    return sum(bool(i.mask.any()) for i in todo if i.mask is not None)


def _roi(item: InputImage, lesion_roi: bool) -> str:
    if not lesion_roi:
        return "scan area"
    if item.mask is None or not item.mask.any():  # the preset's fallback for a missing or empty mask
        return "whole scan (no mask)" if item.mask_source != "segmenter" else "whole scan (segmenter found nothing)"
    return "lesion mask" if item.mask_source == "given" else "segmenter mask"


def predict_items(predictor: ImageInput, items: Sequence[InputImage],
                  class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """A table with each image's predicted class, its probability and every class's probability;
    for a lesion-ROI preset also whether a lesion was found (``lesion_found``), the mask's area in
    the image's pixels (``mask_area``) and the loose frame cropped (``roi_box``: x0 y0 x1 y1, empty
    where the preset fell back to the whole scan area)."""
    prepared = [predictor.prepare_with_box(i.image, i.mask) for i in items]
    probs = predictor.predict_pixels(np.stack([p for p, _ in prepared]))
    names = list(class_names or getattr(predictor, "class_names"))
    lesion_roi = predictor.preset.roi == "lesion"
    table = pd.DataFrame({
        "file": [i.file for i in items], "frame": [i.frame for i in items], "patient": [i.patient for i in items],
        "predicted": [names[k] for k in probs.argmax(1)], "confidence": probs.max(1),
        "roi": [_roi(i, lesion_roi) for i in items],
        "dicom_crop": [i.crop for i in items]})
    if lesion_roi:
        table["lesion_found"] = [box is not None for _, box in prepared]
        table["mask_area"] = [0 if i.mask is None else int(np.count_nonzero(i.mask)) for i in items]
        table["roi_box"] = ["" if box is None else " ".join(map(str, box)) for _, box in prepared]
    for k, name in enumerate(names):
        table[f"p_{name}"] = probs[:, k]
    return table


def format_rows(table: pd.DataFrame, limit: int = 20) -> list[str]:
    """Short terminal lines: file (and frame), predicted class, confidence."""
    lines = [f"{Path(r.file).name}{f' frame {r.frame}' if r.frame else ''}: {r.predicted} ({r.confidence:.2f})"
             for r in table.head(limit).itertuples()]
    return lines + ([f"... and {len(table) - limit} more"] if len(table) > limit else [])
