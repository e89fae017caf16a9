"""Predict image files (or folders of them) with a trained model: one row per image.

The files are decoded by the pipeline's own decoder and prepared by the model's own preset,
so a file gets exactly the pixels it would have had in training. Lesion masks are optional
(a lesion-ROI preset without a mask uses the whole scan area, and the row says so).

Example:
    >>> table = predict_files(Predictor.load("runs/exp/folds/fold0/baseline/m/best.pt"),  # doctest: +SKIP
    ...                       [Path("scan.png")])
    >>> table.columns[:4].tolist()                                                       # doctest: +SKIP
    ['file', 'predicted', 'confidence', 'mask']
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pandas as pd

from sonogan.errors import SonoganInputError
from sonogan.infer.predictor import ImageInput
from sonogan.preprocess.cache import decode_image

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}


def collect_images(inputs: Sequence[Path]) -> list[Path]:
    """Image files among ``inputs``: files as given, folders searched recursively (sorted)."""
    files: list[Path] = []
    for path in map(Path, inputs):
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
        elif path.is_file():
            files.append(path)
        else:
            raise SonoganInputError(path, "no such file or folder", "pass image files or folders of images")
    if not files:
        raise SonoganInputError(", ".join(map(str, inputs)), "no image files found",
                                f"pass files or folders with {', '.join(sorted(IMAGE_SUFFIXES))} images")
    return files


def predict_files(predictor: ImageInput, files: Sequence[Path], masks: Sequence[Path | None] | None = None,
                  class_names: Sequence[str] | None = None) -> pd.DataFrame:
    """A table with each file's predicted class, its probability and every class's probability."""
    masks = list(masks) if masks is not None else [None] * len(files)
    if len(masks) != len(files):
        raise SonoganInputError("--mask", f"{len(masks)} masks for {len(files)} images", "give one mask per image")
    fix = "pass a readable PNG/JPEG image"
    images = [decode_image(Path(f), fix=fix) for f in files]
    lesions = [None if m is None else decode_image(Path(m), grey=True, fix=fix) for m in masks]
    probs = predictor.predict_images(images, lesions)
    names = list(class_names or getattr(predictor, "class_names"))
    table = pd.DataFrame({"file": [str(f) for f in files], "predicted": [names[k] for k in probs.argmax(1)],
                          "confidence": probs.max(1), "mask": [str(m) if m else "" for m in masks]})
    for k, name in enumerate(names):
        table[f"p_{name}"] = probs[:, k]
    return table


def format_rows(table: pd.DataFrame, limit: int = 20) -> list[str]:
    """Short terminal lines: file, predicted class, confidence."""
    lines = [f"{Path(r.file).name}: {r.predicted} ({r.confidence:.2f})" for r in table.head(limit).itertuples()]
    return lines + ([f"... and {len(table) - limit} more"] if len(table) > limit else [])

