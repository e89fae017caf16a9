"""Validate a dataset: report every problem at once, warn about the rest.

Errors (SonoganInputError, one line each naming the file and the fix): bad ids, labels,
sources, provenance or clinical values (named by manifest line), empty classes or classes
with too few patients, and per file: missing, empty, undecodable, too large, multi-frame, a
real image under 32 px a side, mask missing / wrong size / empty. All are collected (at most one per row) and raised together as
:class:`ValidationErrors`, whose message lists the first 50. Warnings: unknown patients,
exact and near-duplicate images. Every image is read and decoded exactly once; the hashes
for duplicate search come from that same decode.

Example:
    >>> ds = load_dataset("datasets/mmotu")            # doctest: +SKIP
    >>> report = validate_dataset(ds, progress=True)   # doctest: +SKIP
    >>> report.n_images, report.warnings[0]            # doctest: +SKIP
    (1000, 'patients unknown: ...')
    >>> errors = [SonoganInputError(f"a{k}.png", "file is empty (0 bytes)", "restore it") for k in range(52)]
    >>> str(ValidationErrors(errors, "ds")).splitlines()[-3:]
    ['a49.png: file is empty (0 bytes); fix: restore it', '... and 2 more', '52 problems in ds; fix them all, then validate again']
"""

from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from rich.progress import track

from sonogan.data.duplicates import group_hashes, phash_int, read_image
from sonogan.data.manifest import SOURCES, Dataset, DatasetSpec, check_clinical_value
from sonogan.errors import SonoganInputError
from sonogan.imageio import MIN_SIDE, check_size


@dataclass
class ValidationReport:
    """What validation found. ``file_stats`` (per image sha256, phash, size and mask fraction)
    is for :mod:`sonogan.data.inspect` and is left out of :meth:`to_dict`."""

    n_images: int
    n_patients: int
    per_class: dict[str, int]
    per_source: dict[str, int]
    patients_known: bool
    duplicate_groups: dict[str, list[str]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    files_checked: bool = True
    seconds: float = 0.0
    file_stats: pd.DataFrame | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"n_images": self.n_images, "n_patients": self.n_patients, "per_class": self.per_class,
                "per_source": self.per_source, "patients_known": self.patients_known,
                "duplicate_groups": self.duplicate_groups, "warnings": self.warnings,
                "files_checked": self.files_checked, "seconds": round(self.seconds, 3)}


#: How many problems a :class:`ValidationErrors` message lists (all are kept in ``errors``).
MAX_LISTED = 50


class ValidationErrors(SonoganInputError):
    """Several problems at once. ``errors`` holds them all; the message lists the first
    :data:`MAX_LISTED` (one '<where>: <what>; fix: <how>' line each), "... and N more" and a
    summary line. ``where``/``what``/``fix`` are the first problem's."""

    def __init__(self, errors: list[SonoganInputError], subject: str | Path) -> None:
        first = errors[0]
        super().__init__(first.where, first.what, first.fix)
        self.errors = errors
        lines = [str(e) for e in errors[:MAX_LISTED]]
        if len(errors) > MAX_LISTED:
            lines.append(f"... and {len(errors) - MAX_LISTED} more")
        lines.append(f"{len(errors)} problems in {subject}; fix them all, then validate again")
        self.args = ("\n".join(lines),)


def raise_all(errors: list[SonoganInputError], subject: str | Path) -> None:
    """Raise nothing, the one error, or all of them as :class:`ValidationErrors`."""
    if len(errors) == 1:
        raise errors[0]
    if errors:
        raise ValidationErrors(errors, subject)


def row_errors(df: pd.DataFrame, spec: DatasetSpec, table: str | Path) -> list[SonoganInputError]:
    """Row-level problems (no file access), at most one per row; each names ``table`` and the
    line of the row (row i is line i + 2 of the CSV: line 1 is the header)."""
    missing_cols = [c for c in spec.clinical if c not in df.columns]
    if missing_cols:  # every row would repeat it: one error, and no per-row clinical checks
        return [SonoganInputError(table, f"clinical columns {missing_cols} are missing",
                                  "add the columns (empty = missing value) or remove them from dataset.yaml")]
    seen: dict[str, int] = {}
    cols = {c: list(df[c]) if c in df.columns else [""] * len(df)
            for c in ["image_id", "image", "mask", "label", "source", "generator", "checkpoint_sha256"]}
    clinical = {name: [str(v) for v in df[name]] for name in spec.clinical}
    errors = []
    for i in range(len(df)):
        problem = _row_problem(i, {c: v[i] for c, v in cols.items()}, seen, spec,
                               {name: v[i] for name, v in clinical.items()})
        if problem:
            errors.append(SonoganInputError(f"{table}, line {i + 2}", *problem))
        seen.setdefault(cols["image_id"][i], i)
    return errors


def _row_problem(i: int, row: dict[str, str], seen: dict[str, int], spec: DatasetSpec,
                 clinical: dict[str, str]) -> tuple[str, str] | None:
    """(what, fix) of the first problem of row ``i``, or None."""
    image_id, label, source = row["image_id"], row["label"], row["source"] or "real"
    if not image_id:
        return "empty image_id", "give every row a unique image_id"
    if image_id in seen:
        return f"duplicate image_id '{image_id}' (also on row {seen[image_id] + 1})", "make image ids unique"
    if not row["image"]:
        return "empty image path", "fill in the image column"
    if label not in spec.classes:
        return (f"label '{label}' is not one of {spec.classes}",
                "fix the label or add the class to 'classes' in dataset.yaml")
    if source not in SOURCES:
        return f"source '{source}' is not 'real' or 'synthetic'", "fix the source column"
    if source == "synthetic" and not (row["generator"] and row["checkpoint_sha256"]):
        return ("synthetic row without generator/checkpoint_sha256 provenance",
                "regenerate it with 'sonogan synth sample' (which records provenance)")
    if spec.masks == "required" and source == "real" and not row["mask"]:
        return ("no mask, but dataset.yaml says masks: required",
                "add the mask path or set masks: optional in dataset.yaml")
    for name, var in spec.clinical.items():
        problem = check_clinical_value(var, clinical[name])
        if problem:
            return f"clinical variable '{name}': {problem}", "correct the value or leave it empty (missing)"
    return None


def check_rows(df: pd.DataFrame, spec: DatasetSpec, table: str | Path) -> None:
    """Raise every row-level problem of ``df`` at once (see :func:`row_errors`)."""
    raise_all(row_errors(df, spec, table), table)


def class_errors(ds: Dataset) -> list[SonoganInputError]:
    """Every declared class has real images from at least ``min_patients_per_class`` patients.

    A purely synthetic dataset (a GAN's samples, which keep the source's class list so their
    labels mean the same) is never split, so the rule does not apply to it.
    """
    real = ds.real()
    if real.empty and len(ds.manifest):
        return []
    errors = []
    for cls in ds.spec.classes:
        rows = real[real["label"] == cls]
        n = rows["patient_id"].nunique()
        if rows.empty:
            errors.append(SonoganInputError(ds.root / "dataset.yaml", f"class '{cls}' has no images",
                                            "add images of this class or remove it from 'classes'"))
        elif n < ds.spec.min_patients_per_class:
            errors.append(SonoganInputError(
                ds.manifest_path, f"class '{cls}' has {n} patient(s), too few patients to split "
                f"(min_patients_per_class={ds.spec.min_patients_per_class})",
                "add images from more patients, merge the class, or lower min_patients_per_class in dataset.yaml"))
    return errors


def check_row_files(ds: Dataset, image: str, mask: str, masks_required: bool, min_side: int = 1) -> dict[str, Any]:
    """Decode one row's image (and mask) once; return sha256, phash and size stats. An image
    with a side under ``min_side`` px is refused (real rows get :data:`~sonogan.imageio.MIN_SIDE`)."""
    img_path = ds.path(image)
    sha, img = read_image(img_path)
    check_size(img_path, img.width, img.height, min_side)
    stats: dict[str, Any] = {"sha256": sha, "phash": phash_int(img), "width": img.width,
                             "height": img.height, "mask_fraction": np.nan}
    if mask:
        mask_path = ds.path(mask)
        if not mask_path.is_file():
            raise SonoganInputError(mask_path, f"mask file not found (for {image})",
                                    "restore the mask or clear its path in manifest.csv")
        _, m = read_image(mask_path)
        if m.size != img.size:
            raise SonoganInputError(mask_path, f"mask is {m.width}x{m.height} but its image {image} is "
                                    f"{img.width}x{img.height}", "resize the mask (nearest) to the image size")
        arr = np.asarray(m)
        fg = arr.any(axis=-1) if arr.ndim == 3 else arr > 0
        stats["mask_fraction"] = float(fg.mean())
        if masks_required and not fg.any():
            raise SonoganInputError(mask_path, "mask is empty (all zero) but dataset.yaml says masks: required",
                                    "draw the lesion in the mask, or remove the row")
    return stats


def _warn_duplicates(ds: Dataset, groups: dict[str, list[str]]) -> list[str]:
    if not groups:
        return []
    labels = dict(zip(ds.manifest["image_id"], ds.manifest["label"]))
    n_exact = sum(k.startswith("exact") for k in groups)
    n_images = sum(len(v) for v in groups.values())
    out = [f"{n_exact} exact and {len(groups) - n_exact} near-duplicate image groups ({n_images} images); "
           "each group is kept in one split group"]
    mixed = [k for k, ids in groups.items() if len({labels[i] for i in ids}) > 1]
    if mixed:
        out.append(f"{len(mixed)} duplicate groups mix labels (e.g. {mixed[0]}: {groups[mixed[0]][:4]}); "
                   "check those labels")
    return out


def _file_results(ds: Dataset, progress: bool, workers: int | None) -> list[dict[str, Any] | SonoganInputError]:
    """:func:`check_row_files` of every row, in row order: its stats, or its (first) problem."""
    required = ds.spec.masks == "required"

    def one(job: tuple[str, str, str]) -> dict[str, Any] | SonoganInputError:
        try:  # synthetic images are the preset's size, which may be below a real scan's minimum
            return check_row_files(ds, job[0], job[1], required, MIN_SIDE if job[2] != "synthetic" else 1)
        except SonoganInputError as exc:
            return exc

    jobs = list(zip(ds.manifest["image"], ds.manifest["mask"], ds.manifest["source"]))
    # PIL releases the GIL while decoding, so threads overlap file reads and decodes;
    # map() yields in row order, so problems are listed in manifest order
    with ThreadPoolExecutor(max_workers=workers or min(4, os.cpu_count() or 1)) as pool:
        return list(track(pool.map(one, jobs), total=len(jobs), description="validating images",
                          disable=not progress))


def validate_dataset(ds: Dataset, check_files: bool = True, progress: bool = False,
                     max_distance: int = 4, workers: int | None = None) -> ValidationReport:
    """Check ``ds``; return a report with warnings, or raise every problem found at once
    (one SonoganInputError, or :class:`ValidationErrors` listing them in manifest order)."""
    t0 = time.perf_counter()
    df, spec = ds.manifest, ds.spec
    errors = row_errors(df, spec, ds.manifest_path) + class_errors(ds)
    warnings = []
    if not spec.patients_known:
        warnings.append("patients unknown: patient_id defaults to the image id, so each image is treated "
                        "as its own case; say so in any report")
    groups: dict[str, list[str]] = {}
    stats = None
    if check_files:
        results = _file_results(ds, progress, workers)
        errors += [r for r in results if isinstance(r, SonoganInputError)]
        raise_all(errors, ds.root)
        stats = pd.DataFrame(results)
        stats.insert(0, "image_id", list(df["image_id"]))
        groups = group_hashes(list(df["image_id"]), list(stats["sha256"]), list(stats["phash"]), max_distance)
        warnings += _warn_duplicates(ds, groups)
    raise_all(errors, ds.root)
    counts = df["label"].value_counts()
    return ValidationReport(
        n_images=len(df), n_patients=int(df["patient_id"].nunique()),
        per_class={c: int(counts.get(c, 0)) for c in spec.classes},
        per_source={str(k): int(v) for k, v in df["source"].value_counts().items()},
        patients_known=spec.patients_known, duplicate_groups=groups, warnings=warnings,
        files_checked=check_files, seconds=time.perf_counter() - t0, file_stats=stats)
