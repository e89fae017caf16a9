"""Shared parts of the importers: options, the registry, spec resolution and file placement.

Every importer is a *scanner* that turns a source into ``(spec, rows)`` with absolute
source paths, then :func:`materialise` copies or links the files into the new dataset
folder and writes ``manifest.csv`` + ``dataset.yaml``. The source is only ever read.

Example:
    >>> opts = ImportOptions(link=True, rare_classes=["borderline"])
    >>> opts.image_col
    'image'
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from rich.progress import track

from sonogan.config import StrictModel, parse_config, read_yaml
from sonogan.data.manifest import Dataset, DatasetSpec, write_dataset
from sonogan.errors import SonoganInputError
from sonogan.registry import Registry

#: Image file extensions the folder importer picks up (case-insensitive).
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
#: Manifest columns that hold file paths (copied or linked on import).
PATH_COLUMNS = ("image", "mask", "clean_image")


class ImportOptions(StrictModel):
    """Options shared by all importers (``sonogan data import ... --link --spec ...``)."""

    link: bool = False  # False: copy files into the dataset; True: symlink. The source is never modified.
    spec: Path | None = None  # dataset.yaml giving class order, rare classes, clinical variable types
    name: str | None = None
    rare_classes: list[str] | None = None
    # csv importer: which CSV columns hold what (clinical columns = those declared in the spec)
    image_col: str = "image"
    mask_col: str = "mask"
    label_col: str = "label"
    patient_col: str = "patient_id"


@dataclass
class ImportedDataset(Dataset):
    """A Dataset that also remembers where each file came from (dataset path -> source path),
    so that errors found after import can name the user's original file."""

    origins: dict[str, str] = field(default_factory=dict)
    #: source files not imported: {"file": path relative to the source, "reason": why}
    skipped: list[dict[str, str]] = field(default_factory=list)


IMPORTERS: Registry[Dataset] = Registry("importer")
#: What an import did, beside manifest.csv: counts and every skipped source file with its reason.
REPORT_FILE = "import-report.json"


def read_report(out: Path) -> dict[str, Any] | None:
    """The ``import-report.json`` of an imported dataset (None for datasets made otherwise)."""
    path = Path(out) / REPORT_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def load_spec_file(path: Path) -> DatasetSpec:
    """Read a user-given dataset.yaml; errors name that file."""
    return parse_config(DatasetSpec, read_yaml(path), path)


def resolve_spec(options: ImportOptions, src: Path, found_classes: list[str], *,
                 default_name: str, masks: str, patients_known: bool,
                 default_rare: list[str] | None = None, extra: dict[str, Any] | None = None,
                 ) -> DatasetSpec:
    """Build the dataset spec: the user's --spec if given (its class order wins), else inferred.

    ``found_classes`` are the classes seen in the source; with a spec, each must be declared.
    ``patients_known`` always comes from the data (a spec cannot invent patient ids).
    """
    if options.spec is not None:
        spec = load_spec_file(Path(options.spec))
        unknown = [c for c in found_classes if c not in spec.classes]
        if unknown:
            raise SonoganInputError(options.spec, f"classes {unknown} found in {src} are not declared",
                                    "add them to 'classes' in this dataset.yaml or remove them from the source")
        data = spec.model_dump()
        data["patients_known"] = patients_known and spec.patients_known
    else:
        data = {"name": default_name, "classes": sorted(found_classes), "masks": masks,
                "patients_known": patients_known, "rare_classes": list(default_rare or [])}
        data.update(extra or {})
    if options.name:
        data["name"] = options.name
    if options.rare_classes is not None:
        data["rare_classes"] = list(options.rare_classes)
    return parse_config(DatasetSpec, data, options.spec or src)


def _place(src_file: Path, dst: Path, link: bool) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    if link:
        # absolute targets so the dataset folder can be moved without breaking links
        os.symlink(src_file.resolve(), dst)
    else:
        shutil.copy2(src_file, dst)  # copy2 keeps mtimes; the source is only read


def materialise(spec: DatasetSpec, rows: pd.DataFrame, out: Path, link: bool,
                progress: bool = False) -> ImportedDataset:
    """Copy/link the files of ``rows`` into ``out`` and write the dataset.

    ``rows`` holds absolute source paths in the path columns and, for each of them, the
    dataset-relative destination in ``_dst_<column>``; those helper columns are dropped.
    """
    rows = rows.copy()
    out.mkdir(parents=True, exist_ok=True)
    origins: dict[str, str] = {}
    placed: dict[str, str] = {}  # destination -> source, to catch two sources mapped to one file
    cols = [c for c in PATH_COLUMNS if c in rows.columns and f"_dst_{c}" in rows.columns]
    jobs = []
    for col in cols:
        for i, (s, d) in enumerate(zip(rows[col], rows[f"_dst_{col}"])):
            if s:
                jobs.append((col, i, Path(s), d))
    for col, i, s, d in track(jobs, description="importing files", disable=not progress):
        if d in placed and placed[d] != str(s):
            raise SonoganInputError(s, f"would overwrite {d}, already imported from {placed[d]}",
                                    "give the two files different names")
        if d not in placed:
            if not s.is_file():
                raise SonoganInputError(s, "file not found", "check the path in the source or restore the file")
            _place(s, out / d, link)
            placed[d] = str(s)
            origins[d] = str(s)
    for col in cols:
        rows[col] = rows[f"_dst_{col}"].where(rows[col] != "", "")
        rows = rows.drop(columns=[f"_dst_{col}"])
    ds = write_dataset(out, spec, rows)
    return ImportedDataset(root=ds.root, spec=ds.spec, manifest=ds.manifest, origins=origins)
