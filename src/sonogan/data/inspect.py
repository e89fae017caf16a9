"""Inspect a dataset: counts, sizes, mask coverage, duplicates, clinical summaries, montages.

Runs :func:`validate_dataset` (one decode per image, which also yields sizes, mask
fractions and duplicate groups), then writes ``summary.json`` and one
``montage_<class>.png`` per class (up to 16 thumbnails, lesion outline in green). Given a
second dataset (``against``), it also lists the images found in both (exact or near
duplicates: leakage between a training set and an external test set).

Example:
    >>> ds = load_dataset("datasets/mmotu")                       # doctest: +SKIP
    >>> summary = inspect_dataset(ds, Path("runs/inspect-mmotu"))  # doctest: +SKIP
    >>> summary["per_class"]["high_grade_serous"]                 # doctest: +SKIP
    38
    >>> summary = inspect_dataset(ds, Path("runs/inspect-ext"), against=load_dataset("datasets/ext"))  # doctest: +SKIP
    >>> summary["against"]["n_exact"], summary["against"]["n_near"]                                    # doctest: +SKIP
    (0, 2)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pandas as pd
from rich.progress import track

from sonogan.data.duplicates import cross_pairs, dataset_hashes
from sonogan.data.manifest import Dataset
from sonogan.data.validate import ValidationReport, validate_dataset
from sonogan.errors import SonoganInputError
from sonogan.imageio import decode_image
from sonogan.runs import write_json

THUMB = 128
MONTAGE_MAX = 16


def _stats(x: pd.Series) -> dict[str, float]:
    x = pd.to_numeric(x, errors="coerce").dropna()
    if x.empty:
        return {"n": 0}
    return {"n": int(len(x)), "min": float(x.min()), "median": float(x.median()),
            "mean": float(x.mean()), "max": float(x.max())}


def clinical_summary(ds: Dataset) -> dict[str, dict[str, Any]]:
    """Per clinical variable and class: numeric stats (continuous) or level counts, plus missing."""
    out: dict[str, dict[str, Any]] = {}
    df = ds.manifest
    for name, var in ds.spec.clinical.items():
        per_class: dict[str, Any] = {}
        for cls in ds.spec.classes:
            values = df.loc[df["label"] == cls, name].astype(str)
            present = values[values != ""]
            entry: dict[str, Any] = {"missing": int((values == "").sum())}
            if var.type == "continuous":
                entry.update(_stats(present))
            else:
                entry["counts"] = {str(k): int(v) for k, v in present.value_counts().sort_index().items()}
            per_class[cls] = entry
        out[name] = {"type": var.type, "per_class": per_class}
    return out


def _thumb(path: Path, mask_path: Path | None, size: int = THUMB) -> np.ndarray:
    """Letterboxed BGR thumbnail with the mask outline drawn in green."""
    img = cv2.cvtColor(decode_image(path), cv2.COLOR_RGB2BGR)  # the safe decoder; BGR for cv2's drawing
    if mask_path is not None:
        try:
            mask = decode_image(mask_path, grey=True)
        except SonoganInputError:
            mask = None  # validation reports bad masks; a thumbnail just goes without the outline
        if mask is not None and mask.shape == img.shape[:2]:
            contours, _ = cv2.findContours((mask > 0).astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(img, contours, -1, (0, 255, 0), max(1, img.shape[1] // 150))
    h, w = img.shape[:2]
    s = size / max(h, w)
    small = cv2.resize(img, (max(1, round(w * s)), max(1, round(h * s))), interpolation=cv2.INTER_AREA)
    tile = np.zeros((size, size, 3), np.uint8)
    y, x = (size - small.shape[0]) // 2, (size - small.shape[1]) // 2
    tile[y:y + small.shape[0], x:x + small.shape[1]] = small
    return tile


def montage(ds: Dataset, rows: pd.DataFrame, n: int = MONTAGE_MAX, size: int = THUMB) -> np.ndarray:
    """A square grid of up to ``n`` thumbnails, evenly spaced through ``rows`` (deterministic)."""
    take = rows.iloc[np.unique(np.linspace(0, len(rows) - 1, min(n, len(rows))).round().astype(int))]
    cols = int(np.ceil(np.sqrt(len(take))))
    grid = np.zeros((size * int(np.ceil(len(take) / cols)), size * cols, 3), np.uint8)
    for k, (_, r) in enumerate(take.iterrows()):
        tile = _thumb(ds.path(r["image"]), ds.path(r["mask"]) if r["mask"] else None, size)
        cv2.putText(tile, str(r["image_id"])[:18], (2, size - 4), cv2.FONT_HERSHEY_SIMPLEX, 0.35,
                    (255, 255, 255), 1, cv2.LINE_AA)
        grid[(k // cols) * size:(k // cols + 1) * size, (k % cols) * size:(k % cols + 1) * size] = tile
    return grid


def cross_summary(ds: Dataset, stats: pd.DataFrame, other: Dataset, max_distance: int,
                  progress: bool = False) -> dict[str, Any]:
    """Images of ``ds`` (hashes from its validation ``stats``) also found in ``other``."""
    pairs = cross_pairs(stats.assign(image=list(ds.manifest["image"])), dataset_hashes(other, progress),
                        max_distance)
    n_exact = sum(p["kind"] == "exact" for p in pairs)
    return {"name": other.spec.name, "root": str(other.root), "max_distance": max_distance,
            "n_pairs": len(pairs), "n_exact": n_exact, "n_near": len(pairs) - n_exact, "pairs": pairs}


def inspect_dataset(ds: Dataset, out_dir: Path, progress: bool = False,
                    report: ValidationReport | None = None, against: Dataset | None = None,
                    max_distance: int = 4) -> dict:
    """Summarise ``ds`` into ``out_dir/summary.json`` and write a montage PNG per class.

    Pass the ``report`` of a :func:`validate_dataset` call you already made (with files checked)
    to avoid decoding every image again. With ``against`` (e.g. an external test set), the
    summary's ``against`` entry lists every image pair found in both datasets, exact or near."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    if report is None or report.file_stats is None:
        report = validate_dataset(ds, progress=progress)
    df = ds.manifest
    stats = report.file_stats
    assert stats is not None
    stats = stats.assign(label=list(df["label"]))
    per_patient = df.groupby("patient_id").size()
    summary: dict[str, Any] = {
        "name": ds.spec.name, "root": str(ds.root), **report.to_dict(),
        "per_class_source": {c: {str(k): int(v) for k, v in df[df["label"] == c]["source"].value_counts().items()}
                             for c in ds.spec.classes},
        "patients_per_class": {c: int(df.loc[df["label"] == c, "patient_id"].nunique()) for c in ds.spec.classes},
        "images_per_patient": _stats(per_patient),
        "image_width": _stats(stats["width"]), "image_height": _stats(stats["height"]),
        "mask_coverage": {c: _stats(stats.loc[stats["label"] == c, "mask_fraction"]) for c in ds.spec.classes},
        "n_duplicate_groups": len(report.duplicate_groups),
        "clinical": clinical_summary(ds),
        "montages": {},
    }
    if against is not None:
        summary["against"] = cross_summary(ds, stats, against, max_distance, progress)
    for cls in track(ds.spec.classes, description="montages", disable=not progress):
        rows = df[df["label"] == cls]
        if rows.empty:
            continue
        name = f"montage_{cls}.png"
        cv2.imwrite(str(out_dir / name), montage(ds, rows))
        summary["montages"][cls] = name
    write_json(out_dir / "summary.json", summary)
    return summary
