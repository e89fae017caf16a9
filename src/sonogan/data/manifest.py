"""The dataset contract (see docs/dataset-format.md): ``manifest.csv`` + ``dataset.yaml``.

A dataset is a folder (the *dataset root*) holding ``manifest.csv``, ``dataset.yaml`` and
usually the image files, with every path in the manifest relative to the root. Every
importer writes exactly this; everything downstream reads only this.

Example:
    >>> spec = DatasetSpec(name="toy", classes=["benign", "malignant"], rare_classes=["malignant"])
    >>> spec.class_index("malignant"), spec.masks
    (1, 'optional')
    >>> check_clinical_value(ClinicalVariable(type="continuous", min=18, max=100), "150")
    '150 is outside [18.0, 100.0]'
    >>> ds = load_dataset("runs/phantom")            # doctest: +SKIP
    >>> ds.spec.classes, len(ds.manifest)            # doctest: +SKIP
    (['benign', 'borderline', 'malignant'], 420)
    >>> report = validate_dataset(ds)                # raises SonoganInputError on bad input  # doctest: +SKIP
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import yaml
from pydantic import Field, field_validator, model_validator

from sonogan.config import StrictModel, parse_config, read_yaml
from sonogan.errors import SonoganInputError
from sonogan.runs import atomic_write_text

MANIFEST_NAME = "manifest.csv"
SPEC_NAME = "dataset.yaml"

#: Columns every manifest has, in this order (clinical variables follow).
CORE_COLUMNS = ["image_id", "image", "mask", "label", "patient_id", "source"]
#: Provenance of synthetic rows (empty for real rows).
PROVENANCE_COLUMNS = ["generator", "checkpoint_sha256", "synth_seed", "synth_fold", "synth_run"]
#: Optional columns with a meaning sonogan knows.
OPTIONAL_COLUMNS = ["clean_image", "annotated", "style", "width", "height"]
SOURCES = ("real", "synthetic")


class ClinicalVariable(StrictModel):
    """A declared clinical variable: its type, and allowed levels or range."""

    type: Literal["binary", "categorical", "continuous"]
    levels: list[str] | None = None
    min: float | None = None
    max: float | None = None
    unit: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _check(self) -> "ClinicalVariable":
        if self.type == "categorical" and not self.levels:
            raise ValueError("categorical variables need 'levels'")
        if self.type != "categorical" and self.levels:
            raise ValueError("'levels' only applies to categorical variables")
        return self


class DatasetSpec(StrictModel):
    """``dataset.yaml``: what the manifest means."""

    name: str
    classes: list[str] = Field(min_length=2, description="class names, in output order")
    rare_classes: list[str] = Field(default_factory=list)
    patients_known: bool = Field(
        True, description="False when patient_id defaults to the image id (reports say so)")
    masks: Literal["required", "optional", "none"] = "optional"
    clinical: dict[str, ClinicalVariable] = Field(default_factory=dict)
    min_patients_per_class: int = Field(
        2, ge=1, description="a class with fewer patients cannot be split and is an error")
    description: str | None = None
    citation: str | None = None

    @field_validator("classes")
    @classmethod
    def _unique_classes(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("class names must be unique")
        return v

    @model_validator(mode="after")
    def _rare_known(self) -> "DatasetSpec":
        unknown = [c for c in self.rare_classes if c not in self.classes]
        if unknown:
            raise ValueError(f"rare_classes {unknown} are not in classes")
        reserved = set(CORE_COLUMNS + PROVENANCE_COLUMNS + OPTIONAL_COLUMNS)
        clash = [c for c in self.clinical if c in reserved]
        if clash:
            raise ValueError(f"clinical variable names {clash} clash with manifest columns")
        return self

    def class_index(self, label: str) -> int:
        return self.classes.index(label)


@dataclass
class Dataset:
    """A loaded dataset: root folder, spec and manifest (one row per image)."""

    root: Path
    spec: DatasetSpec
    manifest: pd.DataFrame

    @property
    def manifest_path(self) -> Path:
        return self.root / MANIFEST_NAME

    def path(self, rel: str) -> Path:
        return self.root / rel

    def real(self) -> pd.DataFrame:
        return self.manifest[self.manifest["source"] == "real"]

    def patient_groups(self, ids: list[str]) -> np.ndarray | None:
        """The patient id of each image id, the bootstrap's resampling unit; None when the dataset
        has no patient ids (each image is then its own case and images are resampled)."""
        if not self.spec.patients_known:
            return None
        patient = self.manifest.set_index("image_id")["patient_id"]
        return patient.loc[list(ids)].to_numpy(dtype=str)


def normalise_manifest(df: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """Column order, defaults and dtypes of the contract; does not validate content."""
    df = df.copy()
    for col in CORE_COLUMNS + PROVENANCE_COLUMNS:
        if col not in df.columns:
            df[col] = ""
    df["source"] = df["source"].replace("", "real")
    df["mask"] = df["mask"].fillna("")
    df["patient_id"] = df["patient_id"].fillna("").astype(str)
    df.loc[df["patient_id"] == "", "patient_id"] = df["image_id"]
    ordered = CORE_COLUMNS + PROVENANCE_COLUMNS
    ordered += [c for c in OPTIONAL_COLUMNS if c in df.columns]
    ordered += [c for c in spec.clinical if c in df.columns]
    extra = [c for c in df.columns if c not in ordered]
    return df[ordered + extra].reset_index(drop=True)


def write_dataset(root: str | Path, spec: DatasetSpec, manifest: pd.DataFrame) -> Dataset:
    """Write ``dataset.yaml`` and ``manifest.csv`` into ``root`` (which must exist)."""
    root = Path(root)
    manifest = normalise_manifest(manifest, spec)
    atomic_write_text(root / SPEC_NAME, yaml.safe_dump(spec.model_dump(mode="json", exclude_none=True),
                                                       sort_keys=False, allow_unicode=True))
    # manifest.csv last and atomically: its presence marks a complete dataset folder
    atomic_write_text(root / MANIFEST_NAME, manifest.to_csv(index=False))
    return Dataset(root=root, spec=spec, manifest=manifest)


def load_spec(root: str | Path) -> DatasetSpec:
    path = Path(root) / SPEC_NAME
    if not path.is_file():
        raise SonoganInputError(path, "dataset.yaml not found",
                                "point at a folder made by 'sonogan data import' or 'sonogan data phantom'")
    return parse_config(DatasetSpec, read_yaml(path), path)


def load_dataset(root: str | Path) -> Dataset:
    """Read a dataset folder. Checks the columns; :func:`validate_dataset` checks the content."""
    root = Path(root)
    if not root.is_dir():
        raise SonoganInputError(root, "dataset folder not found", "check the path or run 'sonogan data import' first")
    spec = load_spec(root)
    path = root / MANIFEST_NAME
    if not path.is_file():
        raise SonoganInputError(path, "manifest.csv not found", "re-run 'sonogan data import' for this dataset")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise SonoganInputError(path, f"unreadable CSV ({str(exc).splitlines()[0]})",
                                "repair the CSV or re-import the dataset") from None
    missing = [c for c in ["image_id", "image", "label"] if c not in df.columns]
    if missing:
        raise SonoganInputError(path, f"missing columns {missing}",
                                "see docs/dataset-format.md for the manifest columns")
    return Dataset(root=root, spec=spec, manifest=normalise_manifest(df, spec))


def check_clinical_value(var: ClinicalVariable, value: str) -> str | None:
    """Return an error text for a bad clinical value, or None. Empty = missing (allowed)."""
    if value == "":
        return None
    if var.type == "binary":
        return None if value in {"0", "1"} else f"'{value}' is not 0 or 1"
    if var.type == "categorical":
        assert var.levels is not None
        return None if value in var.levels else f"'{value}' is not one of {var.levels}"
    try:
        x = float(value)
    except ValueError:
        return f"'{value}' is not a number"
    if math.isnan(x):
        return None
    if (var.min is not None and x < var.min) or (var.max is not None and x > var.max):
        return f"{x:g} is outside [{var.min}, {var.max}]"
    return None
