"""Remove annotations from image files (and DICOM frames) into a new folder.

Each input becomes ``OUT/<name>.png`` (``<name>-f<frame>.png`` for a DICOM frame; a repeated
name gets ``-2``, ``-3`` ...), and ``OUT/annotations.csv`` lists every file with the detector's
probability and whether the remover was applied.

Example:
    >>> table = apply_to_files("runs/annotations/mmotu/remover.pt", [Path("scans/")], Path("out/"))  # doctest: +SKIP
    >>> table.columns.tolist()                                                                         # doctest: +SKIP
    ['file', 'frame', 'output', 'detector_p', 'removed']
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, Sequence

import cv2
import pandas as pd

from sonogan.csvsafe import safe_csv_text
from sonogan.preprocess.remove_annotations import clean_image, loaded_remover
from sonogan.infer.predict_files import collect_images, read_inputs
from sonogan.runs import atomic_write_bytes, atomic_write_text, ensure_new_dir


def _free_name(stem: str, taken: set[str]) -> str:
    name, k = f"{stem}.png", 1
    while name in taken:
        k += 1
        name = f"{stem}-{k}.png"
    taken.add(name)
    return name


def apply_to_files(checkpoint: str | Path, inputs: Sequence[Path], out: Path,
                   apply_to: Literal["detected", "all"] = "detected", threshold: float = 0.5) -> pd.DataFrame:
    """Clean every image among ``inputs`` (files or folders) into the NEW folder ``out``."""
    files, not_images = collect_images(inputs)
    items, unreadable = read_inputs(files)
    skipped = not_images + unreadable  # listed in annotations.csv without an output
    remover, detector, cfg, _ = loaded_remover(checkpoint)
    out = ensure_new_dir(out)
    rows, taken = [], set()
    for item in items:
        image, prob = clean_image(item.image, remover, detector, cfg, apply_to, threshold)
        name = _free_name(Path(item.file).stem + (f"-f{item.frame}" if item.frame else ""), taken)
        atomic_write_bytes(out / name, cv2.imencode(".png", cv2.cvtColor(image, cv2.COLOR_RGB2BGR))[1].tobytes())
        rows.append({"file": item.file, "frame": item.frame, "output": name, "detector_p": round(prob, 4),
                     "removed": apply_to == "all" or prob >= threshold})
    rows += [{"file": s["file"], "frame": 0, "output": "", "detector_p": float("nan"), "removed": False}
             for s in skipped]
    table = pd.DataFrame(rows)
    atomic_write_text(out / "annotations.csv", safe_csv_text(table))  # file names: never a spreadsheet formula
    return table
