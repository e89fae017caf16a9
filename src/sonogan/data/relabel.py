"""Derive a dataset with merged or renamed classes (e.g. MMOTU 8 classes -> malignant vs benign).

The new dataset links to the source dataset's files (nothing is copied or modified) and
keeps every other column (the old label as ``original_label``); rows of unmapped classes
take ``default`` or are dropped. Files are not re-validated: they are the source's.

Example:
    >>> parse_mapping(["high_grade_serous=malignant", "simple_cyst = benign"])
    {'high_grade_serous': 'malignant', 'simple_cyst': 'benign'}
    >>> relabel_dataset(load_dataset("runs/mmotu"), {"high_grade_serous": "malignant"},
    ...                 "runs/mmotu-malignant", default="benign", rare=["malignant"])   # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

from sonogan.config import parse_config
from sonogan.data.importers.common import PATH_COLUMNS, materialise
from sonogan.data.manifest import Dataset, DatasetSpec, normalise_manifest
from sonogan.data.validate import check_rows, class_errors, raise_all
from sonogan.errors import SonoganInputError
from sonogan.runs import ensure_new_dir


def parse_mapping(items: list[str]) -> dict[str, str]:
    """``["a=x", "b=x"]`` -> ``{"a": "x", "b": "x"}`` (CLI form)."""
    mapping = {}
    for item in items:
        old, sep, new = item.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise SonoganInputError(f"--map {item}", "not of the form OLD=NEW", "write e.g. --map high_grade_serous=malignant")
        mapping[old.strip()] = new.strip()
    return mapping


def relabel_dataset(src: Dataset, mapping: dict[str, str], out: str | Path, default: str | None = None,
                    rare: list[str] | None = None, name: str | None = None) -> Dataset:
    """Write a new dataset in ``out`` whose labels are ``mapping[old]`` (else ``default``, else dropped).

    Everything is checked before ``out`` is created: the source's rows (errors name its
    manifest lines), the mapping, the new spec and the new classes' patient counts.
    """
    check_rows(src.manifest, src.spec, src.manifest_path)
    unknown = sorted(set(mapping) - set(src.spec.classes))
    if unknown:
        raise SonoganInputError(f"--map {unknown[0]}", f"class not in {src.root / 'dataset.yaml'}",
                                f"use one of {src.spec.classes}")
    new_label = {c: mapping.get(c, default) for c in src.spec.classes}
    classes: list[str] = []
    for c in src.spec.classes:  # new class order follows the source's order of first appearance
        if new_label[c] is not None and new_label[c] not in classes:
            classes.append(new_label[c])
    if len(classes) < 2:
        raise SonoganInputError("--map", f"only {classes} would remain", "map to at least two classes (or give --default)")
    # by default a new class is rare when every source class merged into it was rare
    rare = rare if rare is not None else [c for c in classes if all(new_label[o] != c or o in src.spec.rare_classes
                                                                   for o in src.spec.classes)]
    spec = parse_config(DatasetSpec, {**src.spec.model_dump(), "name": name or f"{src.spec.name}-relabelled",
                                      "classes": classes, "rare_classes": rare}, "--map/--rare")
    rows = src.manifest[src.manifest["label"].map(new_label).notna()].copy()
    rows["original_label"] = rows["label"]
    rows["label"] = rows["label"].map(new_label)
    problems = class_errors(Dataset(root=Path(out), spec=spec, manifest=normalise_manifest(rows, spec)))
    raise_all([SonoganInputError(f"--map (new classes {classes})", e.what, e.fix) for e in problems], "--map")
    for col in PATH_COLUMNS:
        if col in rows.columns:
            rows[f"_dst_{col}"] = rows[col]
            rows[col] = [str((src.root / p).resolve()) if p else "" for p in rows[col]]
    ds = materialise(spec, rows, ensure_new_dir(out, "dataset folder"), link=True)
    return Dataset(root=ds.root, spec=ds.spec, manifest=ds.manifest)
