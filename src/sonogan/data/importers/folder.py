"""Import a class-per-folder tree: ``SRC/<class>/*.png`` (+ optional masks and patients.csv).

Layout understood:
    SRC/<class>/<name>.{png,jpg,jpeg,bmp,tif}     images; classes = subfolder names
    SRC/<class>/masks/<stem>.*  or  SRC/masks/<class>/<stem>.*   optional masks (same stem)
    SRC/patients.csv            optional, columns ``image`` (file name, or <class>/<file name>)
                                and ``patient_id``; without it patients are unknown

Example:
    >>> from sonogan.data.importers import import_dataset
    >>> ds = import_dataset(Path("scans"), "folder", Path("datasets/scans"))  # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from sonogan.data.importers.common import (IMAGE_EXTS, IMPORTERS, ImportedDataset, ImportOptions,
                                           materialise, resolve_spec)
from sonogan.errors import SonoganInputError

PATIENTS_FILE = "patients.csv"


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTS
                  and not p.name.startswith("."))


def _find_mask(src: Path, cls: str, stem: str) -> Path | None:
    for folder in (src / cls / "masks", src / "masks" / cls):
        if folder.is_dir():
            for p in _images_in(folder):
                if p.stem == stem:
                    return p
    return None


def read_patients(path: Path) -> dict[str, str]:
    """``patients.csv`` -> {image file name or <class>/<name>: patient_id}."""
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, UnicodeDecodeError, pd.errors.EmptyDataError) as exc:
        raise SonoganInputError(path, f"unreadable CSV ({str(exc).splitlines()[0]})",
                                "write it as CSV with columns image,patient_id") from None
    if not {"image", "patient_id"} <= set(df.columns):
        raise SonoganInputError(path, f"needs columns image,patient_id (has {list(df.columns)})",
                                "rename the columns")
    return dict(zip(df["image"].str.strip(), df["patient_id"].str.strip()))


def scan_folder(src: Path, options: ImportOptions) -> tuple[list[str], pd.DataFrame, bool]:
    """Find classes, images, masks and patients; rows hold absolute source paths."""
    classes = sorted(p.name for p in src.iterdir()
                     if p.is_dir() and p.name != "masks" and not p.name.startswith("."))
    if not classes:
        raise SonoganInputError(src, "no class subfolders found",
                                "put images in SRC/<class>/ (one folder per class)")
    patients_path = src / PATIENTS_FILE
    patients = read_patients(patients_path) if patients_path.is_file() else None
    rows = []
    for cls in classes:
        for img in _images_in(src / cls):
            mask = _find_mask(src, cls, img.stem)
            patient = ""
            if patients is not None:
                patient = patients.get(f"{cls}/{img.name}", patients.get(img.name, ""))
                if not patient:
                    raise SonoganInputError(patients_path, f"no patient_id for {cls}/{img.name}",
                                            "add a row for every image (image,patient_id)")
            rows.append({
                "image_id": f"{cls}-{img.stem}", "label": cls, "patient_id": patient,
                "image": str(img), "_dst_image": f"images/{cls}/{img.name}",
                "mask": str(mask) if mask else "",
                "_dst_mask": f"masks/{cls}/{mask.name}" if mask else "",
            })
    if not rows:
        raise SonoganInputError(src, f"no images ({', '.join(IMAGE_EXTS)}) in the class folders",
                                "put images in SRC/<class>/")
    df = pd.DataFrame(rows)
    dup = df[df["image_id"].duplicated()]
    if len(dup):
        raise SonoganInputError(dup["image"].iloc[0], "two images in one class share this file stem",
                                "rename one of them (image ids are <class>-<stem>)")
    return classes, df, patients is not None


@IMPORTERS.register("folder")
def import_folder(src: Path, out: Path, options: ImportOptions, progress: bool = False) -> ImportedDataset:
    """Import ``SRC/<class>/*`` into the new dataset folder ``out``."""
    src = Path(src)
    classes, df, patients_known = scan_folder(src, options)
    has_masks = bool((df["mask"] != "").any())
    spec = resolve_spec(options, src, classes, default_name=src.resolve().name,
                        masks="optional" if has_masks else "none", patients_known=patients_known)
    return materialise(spec, df, Path(out), options.link, progress)
